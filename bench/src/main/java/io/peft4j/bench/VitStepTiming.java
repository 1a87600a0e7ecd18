package io.peft4j.bench;

import io.peft4j.backend.Backend;
import io.peft4j.nn.Loss;
import io.peft4j.nn.Module;
import io.peft4j.nn.Parameter;
import io.peft4j.nn.StepContext;
import io.peft4j.nn.VisionTransformer;
import io.peft4j.peft.PeftModel;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import io.peft4j.train.AdamW;
import io.peft4j.variants.lora.LoraConfig;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Wall time of one training step of the demo ViT (128 images of 28×28, AdamW lr 1e-3, weight
 * decay 0.05) as the trainer runs it: zero the gradients, forward, cross-entropy, backward, AdamW.
 * Two runs: "full" (every parameter trained, as in pretraining) and "lora-qk" (LoRA r=8, α=16 on
 * attn.q and attn.k, the base frozen, as in the demo's fine-tuning). bench/pytorch/vit_step.py
 * times the same steps in PyTorch; bench/vit-vs-pytorch.sh runs both and prints the ratio.
 *
 * <p>Usage: {@code VitStepTiming [warmup steps] [timed steps]}; prints one line per run:
 * {@code <run> median_ms <m> mean_ms <m> min_ms <m>}.
 */
public final class VitStepTiming {
    public static final int BATCH = 128;

    private VitStepTiming() {}

    public static void main(String[] args) {
        int warmup = args.length > 0 ? Integer.parseInt(args[0]) : 20;
        int steps = args.length > 1 ? Integer.parseInt(args[1]) : 100;
        Backend be = Backend.cpu();
        for (String run : new String[] {"full", "lora-qk"}) {
            try (VisionTransformer vit = new VisionTransformer(be, VisionTransformer.Config.DEMO, 0)) {
                Module model = vit;
                PeftModel peft = null;
                if (run.equals("lora-qk")) {
                    peft = PeftModel.wrap(vit, LoraConfig.builder().r(8).alpha(16).targetModules("attn.q", "attn.k").build(), be, 0);
                    model = peft;
                }
                double[] ms = time(be, model, warmup, steps);
                Arrays.sort(ms);
                double mean = Arrays.stream(ms).average().orElse(0);
                System.out.printf("%s median_ms %.3f mean_ms %.3f min_ms %.3f%n", run, ms[ms.length / 2], mean, ms[0]);
                if (peft != null) peft.close();
            }
        }
    }

    private static double[] time(Backend be, Module model, int warmup, int steps) {
        Map<String, Parameter> trainable = new LinkedHashMap<>();
        for (Parameter p : model.trainableParameters()) trainable.put(p.name() + "#" + trainable.size(), p);
        SplittableRandom rnd = new SplittableRandom(1);
        float[] images = new float[BATCH * 784];
        int[] labels = new int[BATCH];
        for (int i = 0; i < images.length; i++) images[i] = (float) rnd.nextDouble();
        for (int i = 0; i < BATCH; i++) labels[i] = rnd.nextInt(10);
        Loss loss = Loss.crossEntropy();
        double[] ms = new double[steps];
        try (StepContext ctx = new StepContext(be); AdamW opt = new AdamW(0.9f, 0.999f, 1e-8f, 0.05f)) {
            for (int s = 0; s < warmup + steps; s++) {
                long t0 = System.nanoTime();
                ctx.begin(true, s);
                Tensor x = ctx.allocate(BATCH, 784).copyFrom(images);
                Tensor y = ctx.allocate(DType.I32, BATCH);
                for (int i = 0; i < BATCH; i++) y.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, i, labels[i]);
                for (Parameter p : trainable.values()) be.fill(0f, p.grad());
                Tensor out = model.forward(ctx, x);
                loss.forward(ctx, out, y);
                model.backward(ctx, loss.backward(ctx), false);
                opt.step(be, trainable, 1e-3f);
                if (s >= warmup) ms[s - warmup] = (System.nanoTime() - t0) / 1e6;
            }
        }
        return ms;
    }
}
