"""Wall time of one training step of the demo ViT in PyTorch (CPU), for bench/vit-vs-pytorch.sh.

The same model and recipe as peft4j's demo (io.peft4j.nn.VisionTransformer, VitStepTiming): 28x28
images cut into 7x7 patches (17 tokens with the class token), width 64, 4 pre-norm blocks of 4 heads,
MLP 128 with exact GELU, a head on the class token; batch 128, AdamW lr 1e-3, weight decay 0.05.
Runs: "full" (all parameters trained) and "lora-qk" (LoRA r=8, alpha=16 on q and k, the base frozen,
written out as PEFT's LoRA Linear computes it). Attention either as explicit batched matmuls and a
softmax (--attention matmul, the usual hand-written ViT) or torch's fused
scaled_dot_product_attention (--attention sdpa). Prints one line per run:
"<run> median_ms <m> mean_ms <m> min_ms <m>".
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoraLinear(nn.Module):
    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.randn(r, base.in_features) / base.in_features ** 0.5)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling


class Attention(nn.Module):
    def __init__(self, width, heads, fused):
        super().__init__()
        self.heads, self.fused = heads, fused
        self.q, self.k, self.v, self.o = (nn.Linear(width, width) for _ in range(4))

    def forward(self, x):
        b, t, w = x.shape
        h, dh = self.heads, w // self.heads
        q, k, v = (p(x).view(b, t, h, dh).transpose(1, 2) for p in (self.q, self.k, self.v))
        if self.fused:
            a = F.scaled_dot_product_attention(q, k, v)
        else:
            a = torch.softmax(q @ k.transpose(-2, -1) * dh ** -0.5, dim=-1) @ v
        return self.o(a.transpose(1, 2).reshape(b, t, w))


class Block(nn.Module):
    def __init__(self, width, heads, mlp, fused):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width, eps=1e-6), nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, heads, fused)
        self.fc1, self.fc2 = nn.Linear(width, mlp), nn.Linear(mlp, width)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, fused, image=28, patch=7, width=64, depth=4, heads=4, mlp=128, classes=10):
        super().__init__()
        self.patch, self.side = patch, image // patch
        self.patch_embed = nn.Linear(patch * patch, width)
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, self.side * self.side + 1, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, heads, mlp, fused) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        b, p, s = x.shape[0], self.patch, self.side
        x = x.view(b, s, p, s, p).permute(0, 1, 3, 2, 4).reshape(b, s * s, p * p)
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.patch_embed(x)], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0])


def time_steps(model, warmup, steps, batch=128):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, 28 * 28, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    ms = []
    for s in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if s >= warmup:
            ms.append((time.perf_counter() - t0) * 1e3)
    return ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attention", choices=["matmul", "sdpa"], default="matmul")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for run in ("full", "lora-qk"):
        model = ViT(fused=a.attention == "sdpa")
        if run == "lora-qk":
            for p in model.parameters():
                p.requires_grad_(False)
            for blk in model.blocks:
                blk.attn.q = LoraLinear(blk.attn.q, 8, 16)
                blk.attn.k = LoraLinear(blk.attn.k, 8, 16)
        ms = time_steps(model, a.warmup, a.steps)
        print(f"{run} median_ms {statistics.median(ms):.3f} mean_ms {statistics.mean(ms):.3f} min_ms {min(ms):.3f}")


if __name__ == "__main__":
    main()
