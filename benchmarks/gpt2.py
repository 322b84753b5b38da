"""GPT-2 124M (the real config, random weights): greedy generation speed, memory, logits agreement.

Measures, in one run:
- TinyTorch: ``TinyGPT.from_pretrained`` of a directory written by ``save_pretrained``, then
  batch 1, greedy, 64 new tokens after an 8-token prompt with the KV cache (median of repeats),
  with generate's own thread choice and on one BLAS thread; the peak RSS of that process
  (``resource.getrusage`` and /proc's VmHWM: loading and generating, nothing else runs in it);
- the same directory loaded by transformers' ``GPT2LMHeadModel.from_pretrained`` in the
  reference interpreter (``TINYTORCH_REFERENCE_PYTHON``), on 2 threads, ``generate`` greedy with
  its KV cache, 64 new tokens (``min_new_tokens`` so a random model's <|endoftext|> never stops
  it early); its peak RSS; max |logits difference| on a (1, 64) batch; greedy tokens in common;
- fine-tuning GPT-2 124M: training tokens/s (forward, cross-entropy, backward, AdamW) at a
  small batch, on the weights as loaded.

Targets (issue 14): >= 45 new tokens/s, >= 1.5x transformers on the same 2 threads, peak RSS
while generating <= 1.2 GB. The machine is shared: run it when ``uptime`` is low; the JSON
records the load average before and after.
Usage: uv run python benchmarks/gpt2.py [--repeats N] [--train-steps N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import emit, run_reference

GPT2 = {"vocab_size": 50257, "d_model": 768, "num_heads": 12, "num_layers": 12, "max_seq_len": 1024}
PROMPT, NEW_TOKENS, LOGIT_TOKENS = 8, 64, 64
TRAIN_BATCH, TRAIN_CONTEXT = 4, 128

TORCH_CODE = """
import json, resource, statistics, sys, time
import numpy as np, torch, transformers
torch.set_num_threads(2)
directory, repeats, prompt_len, new, logit_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
model = transformers.GPT2LMHeadModel.from_pretrained(directory).eval()
rng = np.random.default_rng(0)
prompt = torch.tensor(rng.integers(0, 50257, (1, prompt_len)))
def gen():
    with torch.no_grad():
        return model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new,
                              min_new_tokens=new, do_sample=False, use_cache=True, pad_token_id=0)
out = gen()
times = []
for _ in range(repeats):
    t0 = time.perf_counter(); out = gen(); times.append(time.perf_counter() - t0)
ids = torch.tensor(np.random.default_rng(1).integers(0, 50257, (1, logit_tokens)))
with torch.no_grad():
    logits = model(ids).logits[0].numpy()
np.save(directory + "/reference_logits.npy", logits)
print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__,
                  "threads": torch.get_num_threads(), "seconds": statistics.median(times),
                  "tokens_per_sec": new / statistics.median(times),
                  "new_tokens": out.shape[1] - prompt_len, "tokens": out[0, prompt_len:].tolist(),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(directory: str, repeats: int) -> None:
    """Run in a fresh process: load, generate, report speed and this process's peak RSS."""
    from tinytorch.core import no_grad
    from tinytorch.core.threads import get_num_threads, thread_limit
    from tinytorch.language import TinyGPT

    t0 = time.perf_counter()
    model = TinyGPT.from_pretrained(directory)
    load_seconds = time.perf_counter() - t0
    rss_after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    prompt = np.random.default_rng(0).integers(0, GPT2["vocab_size"], (1, PROMPT))

    def timed(threads: int | None) -> tuple[float, np.ndarray]:
        with contextlib.nullcontext() if threads is None else thread_limit(threads):
            out = model.generate(prompt, NEW_TOKENS, temperature=0)  # warm-up
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                model.generate(prompt, NEW_TOKENS, temperature=0)
                times.append(time.perf_counter() - t)
        return statistics.median(times), out

    seconds, out = timed(None)
    seconds_one, _ = timed(1)
    ids = np.random.default_rng(1).integers(0, GPT2["vocab_size"], (1, LOGIT_TOKENS))
    with no_grad():
        logits = model(ids).data[0]
    np.save(Path(directory) / "tinytorch_logits.npy", logits)
    print(json.dumps({
        "vm_hwm_mb": _vm_hwm_mb(),
        "load_seconds": load_seconds, "blas_threads": get_num_threads(),
        "tokens_per_sec": NEW_TOKENS / seconds, "tokens_per_sec_one_thread": NEW_TOKENS / seconds_one,
        "tokens": out[0, PROMPT:].tolist(), "logits_dtype": str(logits.dtype),
        "peak_rss_mb_after_load": rss_after_load,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def _vm_hwm_mb() -> float:
    """This process's peak RSS from /proc (the kernel's high-water mark of its own memory)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build(directory: str) -> None:
    """Write GPT-2 124M with random weights (seed 0) in Hugging Face's layout."""
    from tinytorch.core import manual_seed
    from tinytorch.language import TinyGPT

    manual_seed(0)
    TinyGPT(**GPT2).save_pretrained(directory)


def fine_tune(directory: str, steps: int) -> dict:
    from tinytorch.core import functional as F
    from tinytorch.core.optim import AdamW
    from tinytorch.language import TinyGPT

    model = TinyGPT.from_pretrained(directory).train()
    opt = AdamW(model.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    x = rng.integers(0, GPT2["vocab_size"], (TRAIN_BATCH, TRAIN_CONTEXT))
    y = rng.integers(0, GPT2["vocab_size"], (TRAIN_BATCH, TRAIN_CONTEXT))
    times, losses = [], []
    for _ in range(steps + 1):  # the first step allocates gradients and AdamW's moments
        t = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
        losses.append(float(loss.data))
    step = statistics.median(times[1:])
    return {"batch": TRAIN_BATCH, "context": TRAIN_CONTEXT, "steps_timed": steps, "step_seconds": step,
            "tokens_per_sec": TRAIN_BATCH * TRAIN_CONTEXT / step, "losses": losses,
            "dropout": "GPT-2's 0.1 at every site (train mode)"}


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--build", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.repeats)
        return
    if args.build:
        build(args.build)
        return

    load_before = load_average()
    with tempfile.TemporaryDirectory() as directory:
        # Built and measured in their own processes: a forked child inherits its parent's peak
        # RSS in getrusage, so this process stays small and each figure is one process's own.
        subprocess.run([sys.executable, __file__, "--build", directory], check=True)
        size_mb = (Path(directory) / "model.safetensors").stat().st_size / 2**20
        proc = subprocess.run([sys.executable, __file__, "--child", directory, "--repeats", str(args.repeats)],
                              capture_output=True, text=True, check=True)
        ours = json.loads(proc.stdout.strip().splitlines()[-1])
        reference = run_reference(
            "import sys; sys.argv = ['x'] + " + repr([directory, str(args.repeats), str(PROMPT), str(NEW_TOKENS),
                                                     str(LOGIT_TOKENS)]) + "\n" + TORCH_CODE)
        if "tokens_per_sec" in reference:
            ref_logits = np.load(Path(directory) / "reference_logits.npy")
            our_logits = np.load(Path(directory) / "tinytorch_logits.npy")
            reference["max_abs_logits_diff"] = float(np.abs(ref_logits - our_logits).max())
            reference["logits_scale"] = float(np.abs(ref_logits).max())
            same = [a == b for a, b in zip(ours["tokens"], reference["tokens"])]
            reference["greedy_tokens_equal"] = f"{sum(same)}/{len(same)}"
            reference["first_differing_token"] = same.index(False) if not all(same) else None
        train = fine_tune(directory, args.train_steps)
    result = {
        "model": {**GPT2, "parameters": 124439808, "weights_mb": round(size_mb, 1), "weights": "random (seed 0)"},
        "generate": {"batch": 1, "prompt_tokens": PROMPT, "new_tokens": NEW_TOKENS, "greedy": True, "kv_cache": True,
                     **{k: v for k, v in ours.items() if k != "tokens"}, "target_tokens_per_sec": 45,
                     "target_peak_rss_mb": 1.2 * 1024},
        "transformers": {k: v for k, v in reference.items() if k != "tokens"},
        "fine_tune": train,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    if "tokens_per_sec" in reference:
        result["ratio_to_transformers"] = ours["tokens_per_sec"] / reference["tokens_per_sec"]
        result["target_ratio_to_transformers"] = 1.5
    emit("gpt2", result)


if __name__ == "__main__":
    main()
