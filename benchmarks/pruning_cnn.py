"""Pruning the Fashion-MNIST CNN: accuracy before and after one epoch of fine-tuning, and speed.

Starts from a checkpoint of the default recipe (``tito vision train``: SmallCNN, 10 epochs) and
measures, all in one run:

* float32: test accuracy and Offline throughput (images/s of eval-mode forwards at batch 64).
* 90 % global unstructured (``prune.global_unstructured`` with ``L1Unstructured`` over every
  Conv and Linear weight): test accuracy right after pruning and after one epoch of masked
  fine-tuning through core's ``Trainer`` (the masks hold: pruned weights stay exactly zero,
  checked at the end), its throughput (zeros in dense arrays buy nothing), and its checkpoint
  written with the masks (``weight_orig`` + ``weight_mask``).
* 50 % structured (``prune.shrink``: half the channels of both convolutions and half the
  hidden neurons removed, ranked by the L1 norm of each channel's weights times its
  BatchNorm's |γ|/√(var+ε)): accuracy right after shrinking and after one epoch of fine-tuning,
  parameters, FLOPs (perf's tracer) and throughput.

Throughput: the float32 and pruned models are timed alternately for ``--rounds`` rounds, each
a median of ``--repeats`` forwards; a ratio is the median of the rounds' ratios, so every
ratio is measured in this run against its float32 baseline.

Fine-tuning: the recipe's training split (the 90 % not held out), its augmentation and batch
size, AdamW with the recipe's weight decay, ``--lr`` peak with 0.1 epoch of warmup and a cosine
decay to zero over the one epoch.

Usage: TINYTORCH_DATA=... uv run python benchmarks/pruning_cnn.py CHECKPOINT [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from pathlib import Path

import numpy as np
from _common import emit, median_time

from tinytorch.core import Tensor, manual_seed, nn, no_grad, optim
from tinytorch.core.checkpoint import save_model_state
from tinytorch.core.nn.utils import prune
from tinytorch.core.optim.lr_scheduler import WarmupCosineLR
from tinytorch.core.threads import get_num_threads, set_num_threads, training_threads
from tinytorch.core.training import Trainer, accuracy
from tinytorch.perf.flops import FLOPsCounter
from tinytorch.vision.train import TrainConfig, evaluate_model, load_trained_model, make_loaders

BATCH = 64


def weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, "weight") of every Conv and Linear: what global pruning ranks together."""
    return [(m, "weight") for m in model.modules()
            if type(m).__name__ in ("Conv2d", "Linear")]


def fine_tune(model: nn.Module, config: TrainConfig, loaders, lr: float, seed: int) -> dict:
    """One epoch of the recipe's data through core's Trainer; returns timing and last loss."""
    train_loader = loaders[0]
    manual_seed(seed)
    optimizer = optim.AdamW(optim.weight_decay_groups(model, config.weight_decay), lr=lr)
    steps = len(train_loader)
    scheduler = WarmupCosineLR(optimizer, total_steps=steps, warmup_steps=max(1, steps // 10))
    trainer = Trainer(model, optimizer, nn.CrossEntropyLoss(), metrics={"accuracy": accuracy},
                      scheduler=scheduler, progress=False, unit="images", on_nonfinite="stop")
    start = time.perf_counter()
    history = trainer.fit(train_loader, epochs=1)
    return {"steps": trainer.global_step, "seconds": round(time.perf_counter() - start, 1),
            "final_train_loss": history.steps[-1]["loss"], "stop_reason": history.stop_reason}


def test_accuracy(model: nn.Module, test_set) -> float:
    return round(100 * evaluate_model(model, test_set).accuracy, 2)


def throughput_ratios(base: nn.Module, others: dict[str, nn.Module], x: Tensor, rounds: int,
                      repeats: int) -> dict:
    """images/s of each model and its ratio to ``base``, rounds alternating the models."""
    models = {"float32": base, **others}
    for m in models.values():
        m.eval()
    seconds: dict[str, list[float]] = {name: [] for name in models}
    ratios: dict[str, list[float]] = {name: [] for name in others}
    with no_grad():
        for _ in range(rounds):
            for name, m in models.items():
                seconds[name].append(median_time(lambda m=m: m(x), repeats=repeats, warmup=2))
            for name in others:
                ratios[name].append(seconds["float32"][-1] / seconds[name][-1])
    out = {name: {"images_per_sec": round(BATCH / statistics.median(s), 1)} for name, s in seconds.items()}
    for name, r in ratios.items():
        out[name]["ratio_to_float32"] = round(statistics.median(r), 3)
        out[name]["ratio_per_round"] = [round(v, 3) for v in r]
    return out


def flops(model: nn.Module, x: Tensor) -> int:
    model.eval()
    with no_grad():
        return FLOPsCounter().trace(model, x).forward.matmul_flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a tito vision train checkpoint (SmallCNN on Fashion-MNIST)")
    parser.add_argument("--sparsity", type=float, default=0.9, help="global unstructured amount")
    parser.add_argument("--structured", type=float, default=0.5, help="share of channels/neurons removed")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of the fine-tuning")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=None, help="where the pruned checkpoints are written")
    parser.add_argument("--limit", type=int, default=None, help="fine-tune on the first N images only (a quick check)")
    args = parser.parse_args()
    set_num_threads(training_threads(args.threads))

    base, info = load_trained_model(args.checkpoint)
    config = TrainConfig(**info["config"])
    config.limit = args.limit
    loaders = make_loaders(config)
    test_set = loaders[4]
    x = Tensor(test_set.__getitems__(np.arange(BATCH))[0])  # a normalized test batch
    result: dict = {"checkpoint": str(args.checkpoint), "model": info["model"], "batch": BATCH,
                    "threads": get_num_threads(), "fine_tune_lr": args.lr,
                    "load_before": os.getloadavg()}
    result["float32"] = {"test_accuracy": test_accuracy(base, test_set),
                         "parameters": base.num_parameters(), "matmul_flops": flops(base, x)}

    # ---- global unstructured, masked fine-tuning
    sparse = copy.deepcopy(base)
    prune.global_unstructured(weights(sparse), prune.L1Unstructured, amount=args.sparsity)
    masks = {name: m.weight_mask.numpy().copy() for name, m in sparse.named_modules()
             if prune.is_pruned(m) and hasattr(m, "weight_mask")}
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.size for m in masks.values())
    entry = {"amount": args.sparsity, "weight_sparsity": round(1 - kept / total, 4),
             "per_layer_sparsity": {k: round(1 - float(m.mean()), 4) for k, m in masks.items()},
             "test_accuracy_before_fine_tuning": test_accuracy(sparse, test_set)}
    entry["fine_tuning"] = fine_tune(sparse, config, loaders, args.lr, args.seed)
    entry["test_accuracy"] = test_accuracy(sparse, test_set)
    entry["masks_held"] = all(
        bool(np.all(m.weight.numpy()[masks[name] == 0] == 0)) and np.array_equal(m.weight_mask.numpy(), masks[name])
        for name, m in sparse.named_modules() if name in masks)
    entry["points_below_float32"] = round(result["float32"]["test_accuracy"] - entry["test_accuracy"], 2)
    result["unstructured"] = entry

    # ---- structured: channels and neurons removed, then fine-tuned
    small = copy.deepcopy(base)
    entry = {"amount": args.structured, "groups": prune.shrink(small, x, amount=args.structured)}
    entry["parameters"] = small.num_parameters()
    entry["matmul_flops"] = flops(small, x)
    entry["test_accuracy_before_fine_tuning"] = test_accuracy(small, test_set)
    entry["fine_tuning"] = fine_tune(small, config, loaders, args.lr, args.seed)
    entry["test_accuracy"] = test_accuracy(small, test_set)
    entry["points_below_float32"] = round(result["float32"]["test_accuracy"] - entry["test_accuracy"], 2)
    entry["flops_ratio_to_float32"] = round(result["float32"]["matmul_flops"] / entry["matmul_flops"], 3)
    result["structured"] = entry

    result["offline_throughput_batch64"] = throughput_ratios(
        base, {"unstructured": sparse, "structured": small}, x, args.rounds, args.repeats)
    result["load_after"] = os.getloadavg()

    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        # with masks: weight_orig + weight_mask per pruned layer (tito core summary reports them)
        save_model_state(out / "cnn_pruned90_masked.safetensors", sparse, metadata={"vision": info})
        result["saved"] = [str(out / "cnn_pruned90_masked.safetensors")]
    emit("pruning_cnn", result)


if __name__ == "__main__":
    main()
