package io.peft4j.nn;

import io.peft4j.backend.Backend;
import io.peft4j.tensor.DType;
import io.peft4j.tensor.Tensor;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A pre-norm Vision Transformer for square single-channel images given as rows [b, side²]:
 * patches of patch×patch pixels → {@code patch_embed} (a Linear on each flattened patch) → a
 * learned {@code cls_token} in front → plus the learned {@code pos_embed} → (prompt tokens, when a
 * prompt is active, after the class token) → {@code blocks.0..depth-1} → {@code norm} → {@code head}
 * on the class token. Parameter names follow timm's ViT (cls_token, pos_embed, blocks.N.norm1,
 * blocks.N.attn.q/k/v/o, blocks.N.mlp.fc1/fc2, norm, head).
 */
public final class VisionTransformer extends Module implements PromptHost {

    /** The sizes; a checkpoint records them as metadata (see {@link #metadata}). */
    public record Config(int imageSize, int patch, int width, int depth, int heads, int mlpWidth, int classes) {
        /** The demo's ViT: 28×28 images, 7×7 patches (17 tokens), width 64, 4 blocks of 4 heads, MLP 128, 10 classes. */
        public static final Config DEMO = new Config(28, 7, 64, 4, 4, 128, 10);

        public Config {
            if (imageSize <= 0 || patch <= 0 || imageSize % patch != 0) {
                throw new IllegalArgumentException("ViT image size " + imageSize + " does not split into patches of " + patch);
            }
            if (width <= 0 || depth <= 0 || heads <= 0 || mlpWidth <= 0 || classes <= 0) {
                throw new IllegalArgumentException("ViT sizes must be positive: " + this);
            }
            if (width % heads != 0) throw new IllegalArgumentException("ViT width " + width + " does not split into " + heads + " heads");
        }

        public int patchesPerImage() { return (imageSize / patch) * (imageSize / patch); }

        /** Tokens per image: the class token and one per patch. */
        public int tokens() { return patchesPerImage() + 1; }

        /** Checkpoint metadata keys {@code peft4j.vit.<size>}. */
        public Map<String, String> metadata() {
            Map<String, String> m = new LinkedHashMap<>();
            m.put(META_PREFIX + "image_size", Integer.toString(imageSize));
            m.put(META_PREFIX + "patch", Integer.toString(patch));
            m.put(META_PREFIX + "width", Integer.toString(width));
            m.put(META_PREFIX + "depth", Integer.toString(depth));
            m.put(META_PREFIX + "heads", Integer.toString(heads));
            m.put(META_PREFIX + "mlp_width", Integer.toString(mlpWidth));
            m.put(META_PREFIX + "classes", Integer.toString(classes));
            return m;
        }

        /** The sizes a checkpoint's metadata records; every key must be there and be a number. */
        public static Config fromMetadata(Map<String, String> meta, String source) {
            int[] v = new int[7];
            String[] keys = {"image_size", "patch", "width", "depth", "heads", "mlp_width", "classes"};
            for (int i = 0; i < keys.length; i++) {
                String s = meta.get(META_PREFIX + keys[i]);
                if (s == null) throw new IllegalArgumentException(source + ": metadata lacks '" + META_PREFIX + keys[i] + "' (not a ViT checkpoint?)");
                try {
                    v[i] = Integer.parseInt(s);
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException(source + ": metadata '" + META_PREFIX + keys[i] + "' is '" + s + "', not an integer");
                }
            }
            return new Config(v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
        }

        @Override
        public String toString() {
            return "ViT " + imageSize + "x" + imageSize + "/" + patch + ", width " + width + ", depth " + depth + ", heads " + heads
                    + ", mlp " + mlpWidth + ", classes " + classes;
        }
    }

    public static final String META_PREFIX = "peft4j.vit.";
    /** Prompt tokens go after the class token. */
    static final long PROMPT_AT = 1;

    private final Config config;
    private final Parameter clsToken;
    private final Parameter posEmbed;
    private final Linear patchEmbed;
    private final Sequential blocks;
    private final LayerNorm norm;
    private final Linear head;
    private final Map<String, Parameter> prompts = new LinkedHashMap<>();
    private String activePrompt;
    private long batch;
    private long tokensWithPrompt;

    /** Linears as torch.nn.Linear (Philox, from seed), cls_token and pos_embed ~ N(0, 0.02²), LayerNorms 1 and 0. */
    public VisionTransformer(Backend backend, Config config, long seed) {
        this.config = config;
        int w = config.width();
        Tensor cls = Tensor.zeros(DType.F32, 1, w);
        backend.rngNormal(seed, 0, 0f, 0.02f, cls);
        this.clsToken = addParameter(new Parameter("cls_token", cls, true, false));
        Tensor pos = Tensor.zeros(DType.F32, config.tokens(), w);
        backend.rngNormal(seed + 1, 0, 0f, 0.02f, pos);
        this.posEmbed = addParameter(new Parameter("pos_embed", pos, true, false));
        this.patchEmbed = addChild("patch_embed", new Linear(backend, (long) config.patch() * config.patch(), w, true, seed + 2));
        this.blocks = addChild("blocks", new Sequential());
        for (int i = 0; i < config.depth(); i++) {
            blocks.add(Integer.toString(i), new TransformerBlock(backend, w, config.heads(), config.mlpWidth(), false, seed + 16L * (i + 1)));
        }
        this.norm = addChild("norm", new LayerNorm(w, 1e-6f));
        this.head = addChild("head", new Linear(backend, w, config.classes(), true, seed + 3));
    }

    public Config config() { return config; }

    /** Checkpoint metadata: the sizes. */
    public Map<String, String> metadata() { return config.metadata(); }

    @Override
    public Tensor forward(StepContext ctx, Tensor x) {
        long pixels = (long) config.imageSize() * config.imageSize();
        if (x.rank() != 2 || x.dim(1) != pixels) {
            throw new IllegalArgumentException("ViT expects images [b, " + pixels + "], got " + x.describe());
        }
        Backend be = ctx.backend();
        long b = x.dim(0);
        int w = config.width();
        long p = config.patchesPerImage();
        Tensor patches = ctx.allocate(b * p, (long) config.patch() * config.patch());
        be.patchify(config.imageSize(), config.imageSize(), config.patch(), x, patches);
        Tensor embedded = patchEmbed.forward(ctx, patches);
        Tensor tokens = ctx.allocate(b * config.tokens(), w);
        be.tokensInsert(b, 0, embedded, clsToken.value(), tokens);
        // Position embedding: one bias over each image's [tokens·width] row.
        be.biasAdd(posEmbed.value().view((long) config.tokens() * w), tokens.view(b, (long) config.tokens() * w));
        Parameter prompt = activePrompt == null ? null : prompts.get(activePrompt);
        if (prompt != null) {
            Tensor withPrompt = ctx.allocate(b * (config.tokens() + prompt.value().dim(0)), w);
            be.tokensInsert(b, PROMPT_AT, tokens, prompt.value(), withPrompt);
            tokens = withPrompt;
        }
        long t = tokens.dim(0) / b;
        for (Module blk : blocks.children().values()) ((TransformerBlock) blk).attention().setSequenceLength(t);
        Tensor h = norm.forward(ctx, blocks.forward(ctx, tokens));
        Tensor cls = ctx.allocate(b, w);
        be.tokensGather(b, 0, h, cls);
        batch = b;
        tokensWithPrompt = t;
        return head.forward(ctx, cls);
    }

    @Override
    public Tensor backward(StepContext ctx, Tensor g, boolean needInputGrad) {
        Backend be = ctx.backend();
        int w = config.width();
        Tensor dcls = head.backward(ctx, g, true);
        Tensor dh = ctx.allocate(batch * tokensWithPrompt, w);
        be.tokensGatherBackward(batch, 0, dcls, dh);
        Tensor dtokens = blocks.backward(ctx, norm.backward(ctx, dh, true), true);
        Parameter prompt = activePrompt == null ? null : prompts.get(activePrompt);
        if (prompt != null) {
            boolean embedTrains = clsToken.requiresGrad() || posEmbed.requiresGrad() || patchEmbed.trainableParameters().size() > 0;
            Tensor dbase = embedTrains ? ctx.allocate(batch * config.tokens(), w) : null;
            be.tokensInsertBackward(batch, config.tokens(), prompt.value().dim(0), PROMPT_AT, dtokens,
                    dbase, prompt.requiresGrad() ? prompt.grad() : null);
            if (dbase == null) return null;
            dtokens = dbase;
        }
        if (posEmbed.requiresGrad()) {
            be.colsum(dtokens.view(batch, (long) config.tokens() * w), posEmbed.grad().view((long) config.tokens() * w), true);
        }
        boolean patchTrains = !patchEmbed.trainableParameters().isEmpty();
        if (clsToken.requiresGrad() || patchTrains) {
            Tensor dembedded = patchTrains ? ctx.allocate(batch * config.patchesPerImage(), w) : null;
            be.tokensInsertBackward(batch, config.patchesPerImage(), 1, 0, dtokens, dembedded,
                    clsToken.requiresGrad() ? clsToken.grad() : null);
            if (patchTrains) patchEmbed.backward(ctx, dembedded, false);
        }
        return null;   // no gradient for the pixels
    }

    // ---- PromptHost ----

    @Override
    public long tokenWidth() { return config.width(); }

    @Override
    public void addPrompt(String name, Parameter prompt) {
        Tensor v = prompt.value();
        if (v.rank() != 2 || v.dim(1) != config.width() || v.dim(0) <= 0) {
            throw new IllegalArgumentException("a prompt for this ViT must be [n, " + config.width() + "], got " + v.describe());
        }
        if (prompts.putIfAbsent(name, prompt) != null) throw new IllegalArgumentException("the ViT already has prompt '" + name + "'");
    }

    @Override
    public void removePrompt(String name) {
        if (prompts.remove(name) == null) throw new IllegalArgumentException("the ViT has no prompt '" + name + "'");
        if (name.equals(activePrompt)) activePrompt = null;
    }

    @Override
    public void setActivePrompt(String name) {
        if (name != null && !prompts.containsKey(name)) throw new IllegalArgumentException("the ViT has no prompt '" + name + "' (has " + prompts.keySet() + ")");
        activePrompt = name;
    }

    @Override
    public String activePrompt() { return activePrompt; }

    @Override
    public Map<String, Parameter> prompts() { return Collections.unmodifiableMap(prompts); }

    /** Own parameters, then each prompt as PEFT names it in a live model. */
    @Override
    protected Map<String, Parameter> parametersForNaming() {
        Map<String, Parameter> out = new LinkedHashMap<>(localParameters());
        prompts.forEach((n, p) -> out.put("prompt_encoder." + n + ".embedding.weight", p));
        return out;
    }

    @Override
    public void close() {
        prompts.clear();   // prompts belong to whoever attached them
        super.close();
    }
}
