"""Decode and training speed of this checkout against an earlier revision, measured in one run.

Issue 19 moved decoding from a second, NumPy-only path onto the layers' one forward (under
``no_grad()``, with a KV cache) and asked that decode and training speed stay the same or
improve. This measures exactly that, against the revision before the change (``a34610a`` by
default):

* REV's packages are exported with ``git archive`` into a temporary folder; a child process
  imports them through ``PYTHONPATH``, another imports this checkout's, both with this
  checkout's NumPy and one BLAS thread (``OPENBLAS_NUM_THREADS=1``: repeatable on a shared
  machine).
* The two trees alternate, process by process, so both see the same drift of a busy machine.
  A round is one process per tree; each repeats its work ``--generations`` times and keeps its
  fastest CPU time. The figure is the median over the rounds of ``REV time / this time`` (> 1:
  this checkout is faster), with every round's ratio beside it.
* ``--task decode`` (default) times ``generate`` of ``--tokens`` tokens; ``--task train`` times
  ``--steps`` training steps (forward, cross-entropy, backward, AdamW) at batch ``--batch`` of
  full-context sequences of random tokens, in train mode.
* ``--instructions`` (needs ``valgrind``; decode only) also counts the instructions each tree
  executes per decoded token with callgrind: the count of a 120-token run minus a 20-token
  run, over 100 (within the tiny model's context, so no window slides).
  Unlike a clock it does not move with the machine's load (``PYTHONHASHSEED=0`` fixes the
  hashing; both runs load compiled modules), so it settles a ratio the clock leaves within noise.
  Instructions are not time: the GEMVs wait on memory at the same instruction count.

Models: ``tiny``, the 3.2M TinyGPT (vocab 65, d_model 256, 8 heads, 4 layers, context 128),
sampling at temperature 1 from a one-token prompt; ``gpt2``, GPT-2 124M's shapes with random
weights (the trained ones need a download), greedy from an 8-token prompt.

Usage: uv run python benchmarks/speed_against_revision.py [--rev a34610a] [--task decode|train]
       [--model tiny|gpt2] [--rounds 10] [--tokens 300] [--steps 5] [--batch 8]
       [--generations 5] [--instructions]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import emit

ROOT = Path(__file__).resolve().parents[1]

MODELS = {  # TinyGPT(vocab, d_model, heads, layers, context), prompt length, temperature
    "tiny": ((65, 256, 8, 4, 128), 1, 1.0),
    "gpt2": ((50257, 768, 12, 12, 1024), 8, 0.0),
}

# Run in each child: the same calls, which both trees' TinyGPT accept.
DECODE = """
import json, sys, time
import numpy as np
from tinytorch.core import manual_seed
from tinytorch.language import TinyGPT
cfg, prompt_len, temperature, tokens, generations = json.loads(sys.argv[1])
manual_seed(0)
model = TinyGPT(*cfg)
model.eval()
prompt = np.random.default_rng(0).integers(0, cfg[0], (1, prompt_len))
model.generate(prompt, 4, temperature=temperature, seed=0)  # warm up: caches, BLAS, imports
best = float("inf")
for _ in range(generations):
    start = time.process_time()
    model.generate(prompt, tokens, temperature=temperature, seed=0)
    best = min(best, time.process_time() - start)
print(json.dumps(best))
"""

TRAIN = """
import json, sys, time
import numpy as np
from tinytorch.core import manual_seed
from tinytorch.core.functional import cross_entropy
from tinytorch.core.optim import AdamW
from tinytorch.language import TinyGPT
cfg, batch, steps, repeats = json.loads(sys.argv[1])
manual_seed(0)
model = TinyGPT(*cfg)
model.train()
optimizer = AdamW(model.parameters(), lr=1e-3)
ids = np.random.default_rng(0).integers(0, cfg[0], (batch, cfg[4] + 1))
inputs, targets = ids[:, :-1], ids[:, 1:]  # (B, T) each


def step():
    loss = cross_entropy(model(inputs), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


step()  # warm up: caches, BLAS, the optimizer's state
best = float("inf")
for _ in range(repeats):
    start = time.process_time()
    for _ in range(steps):
        step()
    best = min(best, time.process_time() - start)
print(json.dumps(best))
"""


def export(rev: str, into: Path) -> str:
    """REV's packages/*/src as a PYTHONPATH (``git archive``: no worktree left behind)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "packages"],
                             capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"--rev {rev}: git archive failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    sources = sorted(str(p) for p in (into / "packages").glob("*/src"))
    if not sources:
        raise SystemExit(f"--rev {rev}: no packages/*/src in that revision")
    return os.pathsep.join(sources)


def child_env(pythonpath: str | None) -> dict[str, str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def child_seconds(pythonpath: str | None, child: str, args: list) -> float:
    import json

    proc = subprocess.run([sys.executable, "-c", child, json.dumps(args)], env=child_env(pythonpath),
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"the timed child failed ({'revision' if pythonpath else 'this checkout'}): "
                         f"{proc.stderr.strip().splitlines()[-1:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def instructions_per_token(pythonpath: str | None, cfg: list, folder: Path) -> int:
    """Callgrind's instruction count of a 120-token generation minus a 20-token one, / 100."""
    env = {**child_env(pythonpath), "PYTHONHASHSEED": "0"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-c", DECODE, json_args(cfg, 2, 1)], env=env, check=True,
                   capture_output=True)  # compile every module first: both counted runs load .pyc
    counts = []
    for tokens in (20, 120):
        out = folder / f"callgrind.{tokens}"
        proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                               "-c", DECODE, json_args(cfg, tokens, 1)], env=env, capture_output=True, text=True)
        found = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or not found:
            raise SystemExit(f"callgrind failed: {proc.stderr.strip().splitlines()[-1:]}")
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) // 100


def json_args(cfg: list, tokens: int, generations: int) -> str:
    import json

    return json.dumps([list(cfg[0]), cfg[1], cfg[2], tokens, generations])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="a34610a", help="the revision to compare against")
    parser.add_argument("--task", choices=("decode", "train"), default="decode")
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--rounds", type=int, default=10, help="alternating process pairs")
    parser.add_argument("--tokens", type=int, default=None, help="tokens per generation (tiny 300, gpt2 32)")
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed repeat (--task train)")
    parser.add_argument("--batch", type=int, default=8, help="sequences per training step (--task train)")
    parser.add_argument("--generations", type=int, default=5,
                        help="timed repeats per process, the fastest kept (generations, or --steps steps)")
    parser.add_argument("--instructions", action="store_true", help="also count instructions with callgrind")
    args = parser.parse_args()
    if args.instructions and args.task != "decode":
        parser.error("--instructions counts decoded tokens: it needs --task decode")
    for name in ("rounds", "generations", "steps", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    tokens = args.tokens or (300 if args.model == "tiny" else 32)
    if tokens < 1:
        parser.error(f"--tokens must be >= 1, got {tokens}")
    cfg = MODELS[args.model]
    if args.task == "decode":
        child, child_args, work = DECODE, [list(cfg[0]), cfg[1], cfg[2], tokens, args.generations], tokens
    else:  # tokens per timed repeat: every position of every sequence is a target
        child, child_args = TRAIN, [list(cfg[0]), args.batch, args.steps, args.generations]
        work = args.steps * args.batch * cfg[0][4]
    with tempfile.TemporaryDirectory() as tmp:
        revision = export(args.rev, Path(tmp))
        loads, ratios, rev_rates, this_rates = [], [], [], []
        for _ in range(args.rounds):
            loads.append(os.getloadavg()[0])
            rev_s = child_seconds(revision, child, child_args)
            this_s = child_seconds(None, child, child_args)
            ratios.append(rev_s / this_s)
            rev_rates.append(work / rev_s)
            this_rates.append(work / this_s)
        result = {
            "task": args.task, "model": args.model, "config": list(cfg[0]), "revision": args.rev,
            **({"tokens": tokens} if args.task == "decode" else {"batch": args.batch, "steps": args.steps}),
            "repeats_per_process": args.generations, "blas_threads": 1,
            "speed_ratio_median": statistics.median(ratios),
            "speed_ratio_meaning": f"{args.rev} CPU time / this checkout's, per alternating pair (> 1: faster now)",
            "speed_ratios": sorted(ratios),
            "tokens_per_sec_median": {"this": statistics.median(this_rates), args.rev: statistics.median(rev_rates)},
            "load_1min": {"min": min(loads), "max": max(loads)},
        }
        if args.instructions:
            if shutil.which("valgrind") is None:
                result["instructions"] = {"skipped": "valgrind is not on PATH"}
            else:
                this_count = instructions_per_token(None, cfg, Path(tmp))
                rev_count = instructions_per_token(revision, cfg, Path(tmp))
                result["instructions"] = {"per_token": {"this": this_count, args.rev: rev_count},
                                          "ratio": rev_count / this_count,
                                          "ratio_meaning": f"{args.rev} / this checkout (> 1: fewer now)"}
    emit(f"speed_against_revision_{args.task}_{args.model}", result)


if __name__ == "__main__":
    main()
