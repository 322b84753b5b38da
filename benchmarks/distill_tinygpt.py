"""Does distillation pay? A TinyGPT student distilled from a trained teacher against the same
student trained alone on Tiny Shakespeare.

Three runs of the real CLI, one after the other, all with the same seed (so the same initial
student weights and the same batches), the same size, batch, learning rate, warmup and
validation split (the teacher's, so the teacher never saw the validation text):

1. ``tito language distill --teacher T --max-steps N`` (temperature, alpha as given);
2. ``tito language train`` of the same student for the same N steps (equal steps);
3. ``tito language train`` of the same student for the wall time run 1 took (equal time: the
   teacher's forward passes make a distillation step dearer, so the student alone gets more steps).

Each run's final checkpoint (and the teacher) is then evaluated here on the whole validation
split (plain cross-entropy), so a final evaluation that a busy machine shortened does not count. The JSON says which run won, by how much, and the load average around each
run (the machine is shared: run times are noisy, step counts of runs 1-2 are not).

Usage: uv run python benchmarks/distill_tinygpt.py --teacher checkpoints/tinygpt.safetensors
       [--max-steps 2000] [--temperature 2] [--alpha 0.5] [--d-model D] [--layers L] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import emit

from tinytorch.core.data import DataLoader
from tinytorch.core.training import Trainer
from tinytorch.language.data import TokenWindows, load_shakespeare, split_tokens
from tinytorch.language.training import lm_loss, load_checkpoint

TITO = [sys.executable, "-m", "tito"]


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _run(args: list[str]) -> dict:
    """Run one tito command with --json; its result, wall seconds and the load around it."""
    before, start = _load(), time.perf_counter()
    proc = subprocess.run(TITO + args + ["--json", "--sample", "0"], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"tito {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    keep = ("steps", "seconds", "stop_reason", "train_loss", "val_loss", "val_perplexity", "tokens_per_sec",
            "settings", "student_parameters", "shortened_eval")
    return {"command": "tito " + " ".join(args), "wall_seconds": round(seconds, 1), "load_before": before,
            "load_after": _load(), **{k: result[k] for k in keep if k in result}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="a checkpoint of `tito language train`")
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--d-model", type=int, help="student width [default: half the teacher's]")
    parser.add_argument("--heads", type=int, help="student heads [default: the teacher's]")
    parser.add_argument("--layers", type=int, help="student blocks [default: the teacher's]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", default="1", help="BLAS threads of every run (1: fairest on a shared machine)")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--no-equal-time", action="store_true", help="skip run 3")
    args = parser.parse_args()

    teacher, tokenizer, meta = load_checkpoint(args.teacher)
    tc = teacher.config
    run = meta["tinytorch.language"].get("train", {})
    d_model = args.d_model or tc.d_model // 2
    heads, layers = args.heads or tc.num_heads, args.layers or tc.num_layers
    batch, lr, val_fraction = run.get("batch_size", 12), run.get("lr", 3e-3), run.get("val_fraction", 0.1)
    shared = ["--batch-size", str(batch), "--lr", str(lr), "--val-fraction", str(val_fraction),
              "--seed", str(args.seed), "--threads", args.threads, "--eval-every", str(args.eval_every)]
    size = ["--d-model", str(d_model), "--heads", str(heads), "--layers", str(layers), "--context", str(tc.max_seq_len)]

    # Every model's loss on the whole validation split, read the way the runs read it: a run whose
    # final evaluation a busy machine shortened (``shortened_eval``) is measured again here.
    text = load_shakespeare()
    _, val_tokens = split_tokens(tokenizer.encode(text), val_fraction)
    val_loader = DataLoader(TokenWindows(np.asarray(val_tokens, dtype=np.int64), tc.max_seq_len), batch_size=batch)

    def full_val_loss(model) -> float:
        return round(Trainer(model, None, lm_loss, progress=False).evaluate(val_loader)["loss"], 4)

    teacher_val = full_val_loss(teacher)

    with tempfile.TemporaryDirectory() as tmp:
        distilled = _run(["language", "distill", "--teacher", args.teacher, "--out", str(Path(tmp) / "d.safetensors"),
                          "--temperature", str(args.temperature), "--alpha", str(args.alpha),
                          "--max-steps", str(args.max_steps), *size, *shared])
        alone = _run(["language", "train", "--out", str(Path(tmp) / "a.safetensors"),
                      "--max-steps", str(args.max_steps), *size, *shared])
        alone_time = None
        if not args.no_equal_time:
            alone_time = _run(["language", "train", "--out", str(Path(tmp) / "t.safetensors"),
                               "--time-budget", str(distilled["seconds"]), *size, *shared])
        for result, name in ((distilled, "d"), (alone, "a"), (alone_time, "t")):
            path = Path(tmp) / f"{name}.safetensors"
            if result is not None:  # the checkpoint holds the final weights (none if no step fitted)
                result["val_loss_whole_split"] = full_val_loss(load_checkpoint(path)[0]) if path.exists() else None

    def verdict(other: dict) -> dict | None:
        if other["val_loss_whole_split"] is None or distilled["val_loss_whole_split"] is None:
            return None
        diff = other["val_loss_whole_split"] - distilled["val_loss_whole_split"]
        return {"val_loss_alone_minus_distilled": round(diff, 4),
                "winner": "distilled" if diff > 0 else "alone" if diff < 0 else "tie"}

    emit("distill_tinygpt", {
        "teacher": {"path": args.teacher, "parameters": teacher.num_parameters(), "d_model": tc.d_model,
                    "heads": tc.num_heads, "layers": tc.num_layers, "context": tc.max_seq_len,
                    "val_loss_whole_split": teacher_val},
        "student": {"d_model": d_model, "heads": heads, "layers": layers, "parameters": distilled.get("student_parameters")},
        "temperature": args.temperature, "alpha": args.alpha, "max_steps": args.max_steps, "seed": args.seed,
        "distilled": distilled, "alone_equal_steps": alone, "alone_equal_time": alone_time,
        "equal_steps": verdict(alone), "equal_time": verdict(alone_time) if alone_time else None,
    })


if __name__ == "__main__":
    main()
