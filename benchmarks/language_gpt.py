"""TinyGPT (the design summary's model: vocab 65, d_model 256, 8 heads, 4 layers, context 128) throughput.

Measures, in one run:
- training tokens/s at batch 16 x context 128 (forward, cross-entropy, backward, AdamW step);
- model FLOPs utilisation: the step's matmul FLOPs (6·N·tokens for the weights plus attention's
  12·L·B·T²·d, the PaLM-appendix convention) against a raw NumPy float32 GEMM measured here;
- generation tokens/s at batch 1 with the KV cache, sampling included (500 new tokens, median of
  ``--generations`` runs);
- with TINYTORCH_REFERENCE_PYTHON pointing at a Python with torch: the same model in PyTorch
  eager (same step, same shapes) in a subprocess, and the ratio.

Targets (issue 5): training >= 0.5 of PyTorch eager; generation >= 600 new tokens/s.
Usage: uv run python benchmarks/language_gpt.py [--repeats N] [--generations N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _common import emit, median_time, run_reference

from tinytorch.core import functional as F
from tinytorch.core import manual_seed
from tinytorch.core.optim import AdamW
from tinytorch.language import TinyGPT

V, D, H, L, T, B = 65, 256, 8, 4, 128, 16
GEN_TOKENS = 500

TORCH_CODE = f"""
import json, math, time, statistics, torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0)
V, D, H, L, T, B = {V}, {D}, {H}, {L}, {T}, {B}
class Block(nn.Module):
    def __init__(s):
        super().__init__()
        s.ln1, s.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        s.qkv, s.proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
        s.fc, s.out = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)
    def forward(s, x):
        b, t, c = x.shape
        q, k, v = s.qkv(s.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, H, c // H).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + s.proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + s.out(F.gelu(s.fc(s.ln2(x)), approximate="tanh"))
class GPT(nn.Module):
    def __init__(s):
        super().__init__()
        s.wte, s.wpe = nn.Embedding(V, D), nn.Embedding(T, D)
        s.blocks = nn.ModuleList([Block() for _ in range(L)])
        s.ln_f, s.head = nn.LayerNorm(D), nn.Linear(D, V, bias=False)
        s.head.weight = s.wte.weight
    def forward(s, idx):
        x = s.wte(idx) + s.wpe(torch.arange(idx.shape[1]))
        for blk in s.blocks: x = blk(x)
        return s.head(s.ln_f(x))
m = GPT()
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
x = torch.randint(0, V, (B, T)); y = torch.randint(0, V, (B, T))
def step():
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(m(x).view(-1, V), y.view(-1)).backward()
    opt.step()
for _ in range(3): step()
ts = []
for _ in range({{repeats}}):
    t0 = time.perf_counter(); step(); ts.append(time.perf_counter() - t0)
m.eval()
idx = torch.zeros(1, 1, dtype=torch.long)
n = 100
with torch.no_grad():
    t0 = time.perf_counter()
    for _ in range(n):  # no KV cache: the whole (cropped) context every step, as nanoGPT
        logits = m(idx[:, -T:])[:, -1]
        nxt = torch.multinomial(F.softmax(logits, -1), 1)
        idx = torch.cat([idx, nxt], 1)
    gen = n / (time.perf_counter() - t0)
print(json.dumps({{"torch": torch.__version__, "threads": torch.get_num_threads(),
                  "step_seconds": statistics.median(ts), "tokens_per_sec": B * T / statistics.median(ts),
                  "generate_no_cache_tokens_per_sec": gen}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--generations", type=int, default=5, help="timed 500-token generations")
    args = parser.parse_args()

    manual_seed(0)
    model = TinyGPT(V, D, H, L, T)
    params = model.num_parameters()
    opt = AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = rng.integers(0, V, (B, T))
    y = rng.integers(0, V, (B, T))

    def train_step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    step = median_time(train_step, repeats=args.repeats, warmup=2)
    tokens = B * T
    # Matmul FLOPs of one step: 6 per weight per token (fwd + 2 bwd; the embedding lookup is not a
    # matmul, but the tied head is) + attention's Q·Kᵀ and P·V: 2·2·B·T²·d forward, x3 with backward.
    non_embedding = params - model.wpe.weight.size
    step_flops = 6 * non_embedding * tokens + 3 * 4 * L * B * T * T * D

    a = rng.standard_normal((2048, 1024), dtype=np.float32)
    w = rng.standard_normal((1024, 1024), dtype=np.float32)
    gemm = median_time(lambda: a @ w, repeats=9)
    gemm_gflops = 2 * 2048 * 1024 * 1024 / gemm / 1e9
    achieved = step_flops / step / 1e9

    model.eval()
    prompt = np.zeros((1, 1), dtype=np.int64)
    model.generate(prompt, 50, seed=0)
    gen_times = []
    for _ in range(args.generations):
        t0 = time.perf_counter()
        model.generate(prompt, GEN_TOKENS, temperature=1.0, top_k=None, seed=0)
        gen_times.append(time.perf_counter() - t0)
    gen_tps = GEN_TOKENS / statistics.median(gen_times)

    # check: cached and uncached logits agree
    ids = rng.integers(0, V, (1, T))
    from tinytorch.core import no_grad

    caches = model.new_cache(1)
    with no_grad():
        full = model(ids).data
        inc = np.concatenate([model(ids[:, t : t + 1], caches).data for t in range(T)], axis=1)

    reference = run_reference(TORCH_CODE.replace("{repeats}", str(args.repeats)))
    result = {
        "model": {"vocab": V, "d_model": D, "heads": H, "layers": L, "context": T, "batch": B,
                  "parameters": params},
        "train": {"step_seconds": step, "tokens_per_sec": tokens / step, "step_gflop": step_flops / 1e9,
                  "achieved_gflops": achieved},
        "raw_numpy_gemm_gflops": gemm_gflops,
        "mfu_vs_numpy_gemm": achieved / gemm_gflops,
        "generate": {"new_tokens": GEN_TOKENS, "runs": args.generations, "batch": 1, "kv_cache": True, "sampling": "temperature 1.0",
                     "tokens_per_sec": gen_tps, "target": 600},
        "cached_vs_uncached_max_abs_diff": float(np.abs(full - inc).max()),
        "pytorch": reference,
        "target_ratio_to_pytorch": 0.5,
    }
    if "tokens_per_sec" in reference:
        result["ratio_to_pytorch"] = (tokens / step) / reference["tokens_per_sec"]
        result["pytorch"]["mfu_vs_numpy_gemm"] = step_flops / reference["step_seconds"] / 1e9 / gemm_gflops
    emit("language_gpt", result)


if __name__ == "__main__":
    main()
