# PyTorch peer of bench/speed.ts: the same GPT (pre-LayerNorm, bias-free projections, tied
# embeddings, tanh GELU), batch, sequence length and AdamW step, timed on the CPU.
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln1 = nn.LayerNorm(d)
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, d, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.ln2 = nn.LayerNorm(d)
        self.w1 = nn.Linear(d, 4 * d, bias=False)
        self.w2 = nn.Linear(4 * d, d, bias=False)

    def forward(self, x, mask):
        b, t, d = x.shape
        y = self.ln1(x)
        q, k, v = (w(y).view(b, t, self.h, d // self.h).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        att = (q @ k.transpose(-2, -1)) / (d // self.h) ** 0.5 + mask[:t, :t]
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.wo(y)
        return x + self.w2(F.gelu(self.w1(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, context, layers, heads, width):
        super().__init__()
        self.wte = nn.Parameter(torch.randn(vocab, width) * 0.02)
        self.wpe = nn.Parameter(torch.randn(context, width) * 0.01)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.lnf = nn.LayerNorm(width)
        self.register_buffer("mask", torch.full((context, context), -1e9).triu(1))

    def forward(self, ids):
        x = self.wte[ids] + self.wpe[: ids.shape[1]]
        for block in self.blocks:
            x = block(x, self.mask)
        return self.lnf(x) @ self.wte.T


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    model = GPT(cfg["vocab"], cfg["context"], cfg["layers"], cfg["heads"], cfg["width"])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.01)
    ids = torch.randint(5, cfg["vocab"], (cfg["batch"], cfg["seq"]))
    targets = torch.randint(5, cfg["vocab"], (cfg["batch"], cfg["seq"]))
    times = []
    for step in range(cfg["warmup"] + cfg["steps"]):
        start = time.perf_counter()
        logits = model(ids)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= cfg["warmup"]:
            times.append((time.perf_counter() - start) * 1000)
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"ms": statistics.median(times), "params": params, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
