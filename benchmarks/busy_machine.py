"""A busy machine: one core held by another program, TinyTorch before and after its thread policy.

Issue 22 §2: with another program holding a core, two OpenBLAS threads spin-wait for each other.
This holds one core with ``python3 -c "while True: pass"`` for the whole run and measures, in
alternating rounds (the machine is shared, so its load drifts; both policies see the same drift):

* ``before``: the old policy, one BLAS thread per physical core whatever the load
  (``--threads N`` with N = physical cores);
* ``after``: ``--threads auto``, which now leaves the cores other programs hold
  (`tinytorch.core.threads.choose_threads`).

Figures: Fashion-MNIST training images/s (``tito vision train fashion-mnist --limit L --epochs 1
--json``: the last evaluation row's ``images_per_sec``) and ``tito performance profile MODEL
--json`` per-layer times (forward + backward, ms) and the plain step. Each run also records the
threads it used, what the contention probe saw, and the 1-minute load average before it.
Medians over the rounds. Needs the Fashion-MNIST files under ``$TINYTORCH_DATA``.

Usage: uv run python benchmarks/busy_machine.py [--rounds R] [--limit L] [--model mlp] [--no-hold]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import emit

from tinytorch.core.threads import physical_cores

TITO = [sys.executable, "-m", "tito"]


def _tito(*args: str) -> dict:
    proc = subprocess.run([*TITO, *args], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"tito {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def train(threads: str, limit: int, folder: Path) -> dict:
    out = folder / f"busy-{threads}.safetensors"
    out.unlink(missing_ok=True)
    load = os.getloadavg()[0]
    result = _tito("vision", "train", "fashion-mnist", "--limit", str(limit), "--epochs", "1",
                   "--threads", threads, "--out", str(out), "--json")
    last = result["history"]["evals"][-1]
    return {"threads_setting": threads, "threads_used": result["threads"],
            "images_per_sec": last["images_per_sec"], "contention": result["contention"],
            "test_accuracy": result["test_accuracy"], "load_1min_before": load}


def profile(threads: str, model: str, repeats: int) -> dict:
    load = os.getloadavg()[0]
    result = _tito("performance", "profile", model, "--threads", threads, "--repeats", str(repeats),
                   "--json")
    return {"threads_setting": threads, "step_ms": result["total_s"] * 1e3,
            "layers_ms": {l["name"]: (l["forward_s"] + l["backward_s"]) * 1e3 for l in result["layers"]},
            "contention": result["contention"], "load_1min_before": load}


def _median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=5000, help="training images (before the validation split)")
    parser.add_argument("--model", default="mlp", help="the model `tito performance profile` times")
    parser.add_argument("--repeats", type=int, default=5, help="profile repeats")
    parser.add_argument("--no-hold", action="store_true", help="measure without holding a core (a baseline)")
    args = parser.parse_args()
    if not os.environ.get("TINYTORCH_DATA"):
        raise SystemExit("set TINYTORCH_DATA to the folder holding fashion-mnist/ (or run `tito data download fashion-mnist`)")
    before = str(physical_cores())  # the old policy: every physical core, whatever the load
    hog = None if args.no_hold else subprocess.Popen([sys.executable, "-c", "while True: pass"])
    runs: dict[str, dict[str, list[dict]]] = {"train": {"before": [], "after": []},
                                               "profile": {"before": [], "after": []}}
    try:
        time.sleep(1.0)  # let the held core show in the load
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                # alternate which policy goes first, so a drift in load hits both alike
                order = [("before", before), ("after", "auto")][:: 1 if r % 2 == 0 else -1]
                for name, setting in order:
                    runs["train"][name].append(train(setting, args.limit, Path(tmp)))
                    runs["profile"][name].append(profile(setting, args.model, args.repeats))
                    print(f"round {r + 1} {name}: {runs['train'][name][-1]['images_per_sec']:.0f} images/s, "
                          f"{args.model} step {runs['profile'][name][-1]['step_ms']:.2f} ms", file=sys.stderr)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    summary = {}
    for name in ("before", "after"):
        t, p = runs["train"][name], runs["profile"][name]
        layers = sorted(p[0]["layers_ms"])
        summary[name] = {
            "threads": sorted({x["threads_used"] for x in t}),
            "images_per_sec_median": _median_of(t, "images_per_sec"),
            "profile_step_ms_median": _median_of(p, "step_ms"),
            "profile_layers_ms_median": {l: statistics.median(x["layers_ms"][l] for x in p) for l in layers},
            "training_contended_runs": sum(bool(x["contention"] and x["contention"].get("contended")) for x in t),
        }
    summary["images_per_sec_after_over_before"] = (summary["after"]["images_per_sec_median"]
                                                   / summary["before"]["images_per_sec_median"])
    summary["profile_step_before_over_after"] = (summary["before"]["profile_step_ms_median"]
                                                 / summary["after"]["profile_step_ms_median"])
    emit("busy_machine", {"held_core": not args.no_hold, "rounds": args.rounds, "limit": args.limit,
                          "profile_model": args.model, "physical_cores": physical_cores(),
                          "summary": summary, "runs": runs})


if __name__ == "__main__":
    main()
