"""Pruning the Fashion-MNIST CNN: accuracy before and after fine-tuning, and speed.

Starts from a checkpoint of the default recipe (``tito vision train``: SmallCNN, 10 epochs) and
measures, all in one run:

* float32: test and validation accuracy, parameters, FLOPs, Offline throughput (images/s of
  eval-mode forwards at batch 64).
* 90 % global unstructured (``prune.global_unstructured`` with ``L1Unstructured`` over every
  Conv and Linear weight): accuracy right after pruning and after ``--epochs`` of masked
  fine-tuning (the masks hold: pruned weights stay exactly zero, checked at the end), its
  throughput (zeros in dense arrays buy nothing), and its checkpoint written with the masks
  (``weight_orig`` + ``weight_mask``).
* 50 % structured (``prune.shrink``: half the channels of both convolutions and half the
  hidden neurons removed, ranked by the L1 norm of each channel's weights times its
  BatchNorm's |γ|/√(var+ε)): accuracy right after shrinking -- as cut, and with the BatchNorm
  statistics re-estimated on 100 training batches -- and after ``--epochs`` of fine-tuning,
  parameters, FLOPs (perf's tracer) and throughput; the model is saved with
  ``save_optimized`` and loaded back (``load_trained_model`` rebuilds the shrunk sizes from the
  file) to check that the file gives the same outputs.

Fine-tuning is vision's ``fine_tune``: the recipe's training split (the validation images stay
held out), its augmentation, batch size and weight decay, a new AdamW, ``--lr`` peak (default
2/3 of the recipe's peak) after 10 % of the steps of warmup, cosine decay to zero, over
``--epochs`` epochs (default 5: one epoch left 90 % unstructured 1 point short, five recover
it; the pruning API page lists accuracy against epochs). With ``--seeds N``
each fine-tuning runs N times (batch order, augmentation and dropout seeded 0..N-1) and every
result is listed: fine-tuning scatters by a few tenths of a point from seed to seed. Choose
settings on the validation accuracy; the test accuracy is the figure.

Throughput: the float32 and pruned models are timed alternately for ``--rounds`` rounds, each
a median of ``--repeats`` forwards; a ratio is the median of the rounds' ratios, so every
ratio is measured in this run against its float32 baseline.

Usage: TINYTORCH_DATA=... uv run python benchmarks/pruning_cnn.py CHECKPOINT [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
from pathlib import Path

import numpy as np
from _common import emit, median_time

from tinytorch.core import Tensor, manual_seed, nn, no_grad
from tinytorch.core.checkpoint import save_model_state
from tinytorch.core.nn.utils import prune
from tinytorch.core.threads import get_num_threads, set_num_threads, training_threads
from tinytorch.core.training import Trainer, accuracy
from tinytorch.perf.flops import FLOPsCounter
from tinytorch.vision.train import (
    TrainConfig,
    evaluate_model,
    fine_tune,
    load_trained_model,
    make_loaders,
    save_optimized,
)

BATCH = 64


def weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, "weight") of every Conv and Linear: what global pruning ranks together."""
    return [(m, "weight") for m in model.modules()
            if type(m).__name__ in ("Conv2d", "Linear")]


def accuracies(model: nn.Module, val_loader, test_set) -> dict:
    """Test accuracy (the figure) and validation accuracy (what settings are chosen on), in %."""
    val = Trainer(model, None, nn.CrossEntropyLoss(), metrics={"accuracy": accuracy},
                  progress=False).evaluate(val_loader)["accuracy"]
    return {"test_accuracy": round(100 * evaluate_model(model, test_set).accuracy, 2),
            "val_accuracy": round(100 * val, 2)}


def reestimate_batchnorm(model: nn.Module, loader, batches: int) -> None:
    """Running statistics as the cumulative average over ``batches`` training batches
    (``torch.optim.swa_utils.update_bn``), the weights unchanged."""
    norms = [m for m in model.modules() if hasattr(m, "reset_running_stats")]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative: batch k weighs 1/k
    model.train()
    with no_grad():
        for i, (x, _) in enumerate(loader):
            if i == batches:
                break
            model(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()


def fine_tuned(model: nn.Module, config: TrainConfig, args: argparse.Namespace, val_loader, test_set,
               check=None) -> tuple[nn.Module, list[dict]]:
    """``args.epochs`` epochs of ``fine_tune`` from ``model`` for each of ``args.seeds`` seeds;
    (the seed-0 model, every run)."""
    runs, first = [], None
    for seed in range(args.seeds):
        m = copy.deepcopy(model)
        manual_seed(seed)
        run = {"seed": seed, **fine_tune(m, config, epochs=args.epochs, lr=args.lr, seed=seed)}
        run.update(accuracies(m, val_loader, test_set))
        if check is not None:
            run.update(check(m))
        runs.append(run)
        first = m if first is None else first
    return first, runs


def summary(entry: dict, runs: list[dict], float32: dict) -> None:
    entry["fine_tuning"] = runs
    for key in ("test_accuracy", "val_accuracy"):
        values = [r[key] for r in runs]
        entry[key] = values[0] if len(values) == 1 else round(statistics.mean(values), 2)
        entry[key.replace("accuracy", "points_below_float32")] = round(float32[key] - entry[key], 2)


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
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate of the fine-tuning (default: vision's FINE_TUNE_LR_SCALE "
                             "x the recipe's peak)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of fine-tuning")
    parser.add_argument("--seeds", type=int, default=1, help="fine-tune each model this many times")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", default="auto")
    parser.add_argument("--out-dir", default=None, help="where the pruned checkpoints are written")
    parser.add_argument("--limit", type=int, default=None, help="fine-tune on the first N images only (a quick check)")
    parser.add_argument("--skip", choices=["unstructured", "structured"], help="measure only the other one")
    args = parser.parse_args()
    set_num_threads(training_threads(args.threads))

    base, info = load_trained_model(args.checkpoint)
    config = TrainConfig(**info["config"])
    config.limit = args.limit
    train_loader, val_loader, _, _, test_set = make_loaders(config)
    x = Tensor(test_set.__getitems__(np.arange(BATCH))[0])  # a normalized test batch
    result: dict = {"checkpoint": str(args.checkpoint), "model": info["model"], "batch": BATCH,
                    "threads": get_num_threads(), "fine_tune_lr": args.lr, "fine_tune_epochs": args.epochs,
                    "seeds": args.seeds,
                    "load_before": os.getloadavg()}
    float32 = {**accuracies(base, val_loader, test_set), "parameters": base.num_parameters(),
               "matmul_flops": flops(base, x)}
    result["float32"] = float32
    compared, saved = {}, []
    out = Path(args.out_dir) if args.out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)

    if args.skip != "unstructured":  # ---- global unstructured, masked fine-tuning
        sparse = copy.deepcopy(base)
        prune.global_unstructured(weights(sparse), prune.L1Unstructured, amount=args.sparsity)
        masks = {name: m.weight_mask.numpy().copy() for name, m in sparse.named_modules()
                 if prune.is_pruned(m) and hasattr(m, "weight_mask")}
        kept = sum(int(m.sum()) for m in masks.values())
        total = sum(m.size for m in masks.values())

        def masks_held(m: nn.Module) -> dict:
            return {"masks_held": all(
                bool(np.all(layer.weight.numpy()[masks[name] == 0] == 0))
                and np.array_equal(layer.weight_mask.numpy(), masks[name])
                for name, layer in m.named_modules() if name in masks)}

        entry = {"amount": args.sparsity, "weight_sparsity": round(1 - kept / total, 4),
                 "per_layer_sparsity": {k: round(1 - float(m.mean()), 4) for k, m in masks.items()},
                 "before_fine_tuning": accuracies(sparse, val_loader, test_set)}
        sparse, runs = fine_tuned(sparse, config, args, val_loader, test_set, masks_held)
        summary(entry, runs, float32)
        result["unstructured"] = entry
        compared["unstructured"] = sparse
        if out:  # with masks: weight_orig + weight_mask per pruned layer (tito core summary reports them)
            save_model_state(out / "cnn_pruned90_masked.safetensors", sparse, metadata={"vision": info})
            saved.append(str(out / "cnn_pruned90_masked.safetensors"))

    if args.skip != "structured":  # ---- structured: channels and neurons removed, then fine-tuned
        small = copy.deepcopy(base)
        entry = {"amount": args.structured, "groups": prune.shrink(small, x, amount=args.structured),
                 "parameters": small.num_parameters(), "matmul_flops": flops(small, x),
                 "before_fine_tuning": accuracies(small, val_loader, test_set)}
        recalibrated = copy.deepcopy(small)
        reestimate_batchnorm(recalibrated, train_loader, batches=100)
        entry["before_fine_tuning_batchnorm_reestimated"] = accuracies(recalibrated, val_loader, test_set)
        small, runs = fine_tuned(small, config, args, val_loader, test_set)
        summary(entry, runs, float32)
        entry["flops_ratio_to_float32"] = round(float32["matmul_flops"] / entry["matmul_flops"], 3)
        if out:  # the file records the shrunk sizes; loading it rebuilds them
            path = out / "cnn_structured50.safetensors"
            save_optimized(path, small, args.checkpoint)
            loaded, _ = load_trained_model(path)
            with no_grad():
                entry["file_round_trip_max_abs_diff"] = float(np.abs(loaded.eval()(x).numpy() - small(x).numpy()).max())
            entry["file_model_config"] = loaded.config
            saved.append(str(path))
        result["structured"] = entry
        compared["structured"] = small

    result["offline_throughput_batch64"] = throughput_ratios(base, compared, x, args.rounds, args.repeats)
    result["load_after"] = os.getloadavg()
    if saved:
        result["saved"] = saved
    emit("pruning_cnn", result)


if __name__ == "__main__":
    main()
