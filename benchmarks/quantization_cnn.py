"""int8 quantization of the Fashion-MNIST CNN: layer speed of W8A8 against float32, and test accuracy.

Speed: each layer of SmallCNN (1x28x28) at batch 64, float32 against its static W8A8 form
(``tinytorch.core.quantization``: int8 per-channel weights, uint8 activations, an exact integer
GEMM through float32 sgemm), measured alternately for ``--rounds`` rounds of ``median_time``;
each ratio is the median over the rounds of float32 time / W8A8 time (> 1: W8A8 faster), and the
whole model's images/s the same way. Target (issue 20): W8A8 Linear and Conv >= 0.8x float32.

Accuracy (with ``--checkpoint``, a `tito vision train` checkpoint): the real Fashion-MNIST test
set (10,000 images) through the float32 model, int8 per-channel weights (weights rounded to int8
and back, activations float), static W8A8 (``prepare`` -> ``--calibration-batches`` batches of real
training images -> ``convert``), dynamic W8A8 (``quantize_dynamic``), and int4 weights in groups
of 32 along the input (symmetric, rounded and back). Targets: int8 within 0.25 points of float32,
int4 within 0.5.

Usage: uv run python benchmarks/quantization_cnn.py [--checkpoint FILE] [--rounds R] [--repeats N]
       [--threads N] [--calibration-batches N]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
from _common import emit, median_time

from tinytorch.core import Tensor, nn, no_grad
from tinytorch.core import quantization as Q
from tinytorch.core.data import DataLoader
from tinytorch.core.threads import get_num_threads, set_num_threads
from tinytorch.vision import Conv2d, SmallCNN

BATCH = 64


def _calibrated(model: nn.Module, batches) -> nn.Module:
    prepared = Q.prepare(model.eval())
    with no_grad():
        for x in batches:
            prepared(x)
    return Q.convert(prepared)


def _alternate(fns: dict, rounds: int, repeats: int) -> dict[str, float]:
    """Median seconds of each fn per round, fns interleaved within every round."""
    samples = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(median_time(fn, repeats=repeats, warmup=2))
    return {name: statistics.median(v) for name, v in samples.items()}, samples


def layer_speed(rounds: int, repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    cases = [
        ("conv1 1->32 3x3 @28x28", Conv2d(1, 32, 3, padding=1, bias=False), (BATCH, 1, 28, 28)),
        ("conv2 32->64 3x3 @14x14", Conv2d(32, 64, 3, padding=1, bias=False), (BATCH, 32, 14, 14)),
        ("fc1 3136->128", nn.Linear(3136, 128), (BATCH, 3136)),
        ("fc2 128->10", nn.Linear(128, 10), (BATCH, 128)),
    ]
    rows = []
    for name, layer, shape in cases:
        x = Tensor(np.maximum(rng.normal(size=shape), 0).astype(np.float32))  # post-ReLU-like
        qlayer = _calibrated(nn.Sequential(layer), [x])[0]
        with no_grad():
            fns = {"float32": lambda f=layer, x=x: f(x), "w8a8": lambda q=qlayer, x=x: q(x)}
            medians, samples = _alternate(fns, rounds, repeats)
        ratios = [f / q for f, q in zip(samples["float32"], samples["w8a8"])]
        rows.append({"layer": name, "quantized_as": type(qlayer).__name__,
                     "float32_ms": medians["float32"] * 1e3, "w8a8_ms": medians["w8a8"] * 1e3,
                     "speed_vs_float32": statistics.median(ratios), "round_ratios": ratios,
                     "target": 0.8, "meets_target": statistics.median(ratios) >= 0.8})
    return rows


def model_speed(model: nn.Module, qmodel: nn.Module, rounds: int, repeats: int) -> dict:
    x = Tensor(np.random.default_rng(1).normal(size=(BATCH, *model.input_shape)).astype(np.float32))
    with no_grad():
        medians, samples = _alternate({"float32": lambda: model(x), "w8a8": lambda: qmodel(x)}, rounds, repeats)
    ratios = [f / q for f, q in zip(samples["float32"], samples["w8a8"])]
    return {"batch": BATCH, "float32_images_per_s": BATCH / medians["float32"],
            "w8a8_images_per_s": BATCH / medians["w8a8"], "speed_vs_float32": statistics.median(ratios)}


def _weights_rounded(model: nn.Module, quantize) -> nn.Module:
    """A copy whose Linear and Conv2d weights went through ``quantize`` (float -> float)."""
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, (nn.Linear, Conv2d)):
            m.weight.data = quantize(m.weight.data).astype(np.float32)
    return model


def int8_per_channel(w: np.ndarray) -> np.ndarray:
    obs = Q.PerChannelMinMaxObserver(ch_axis=0, dtype="int8", qscheme="per_channel_symmetric")
    obs(w)
    scale, zero = obs.calculate_qparams()
    return Q.dequantize(Q.quantize_per_channel(w, scale, zero, axis=0, dtype="int8")).numpy()


def int4_groups(w: np.ndarray, group: int = 32) -> np.ndarray:
    """Symmetric int4 with one scale per ``group`` consecutive inputs of each output row (rows
    padded with zeros to a whole number of groups; zeros change no group's maximum)."""
    rows = w.reshape(w.shape[0], -1)
    k = rows.shape[1]
    padded = np.zeros((rows.shape[0], -(-k // group) * group), dtype=np.float64)
    padded[:, :k] = rows
    groups = padded.reshape(-1, group)
    absmax = np.abs(groups).max(axis=1)
    scale, zero = Q.choose_qparams(-absmax, absmax, "int4", symmetric=True)
    back = Q.dequantize(Q.quantize_per_channel(groups, scale, zero, axis=0, dtype="int4")).numpy()
    return back.reshape(padded.shape)[:, :k].reshape(w.shape)


def accuracy(checkpoint: str, calibration_batches: int, rounds: int, repeats: int) -> dict:
    from tinytorch.vision.datasets import get_dataset
    from tinytorch.vision.train import NORMALIZATION, evaluate_model, load_trained_model
    from tinytorch.vision.transforms import Normalize

    model, info = load_trained_model(checkpoint)
    model.eval()
    name = info["config"]["dataset"]
    mean, std = NORMALIZATION[name]
    test = get_dataset(name)(None, train=False, transform=Normalize(mean, std))
    train = get_dataset(name)(None, train=True, transform=Normalize(mean, std))
    loader = DataLoader(train, batch_size=100, shuffle=True, seed=0)
    calibration = []
    for x, _ in loader:
        calibration.append(x if isinstance(x, Tensor) else Tensor(x))
        if len(calibration) == calibration_batches:
            break

    start = time.perf_counter()
    static = _calibrated(model, calibration)
    variants = {
        "float32": model,
        "int8 per-channel weights": _weights_rounded(model, int8_per_channel),
        "w8a8 static": static,
        "w8a8 dynamic": Q.quantize_dynamic(model),
        "int4 weights, groups of 32": _weights_rounded(model, int4_groups),
    }
    targets = {"int8 per-channel weights": 0.25, "w8a8 static": 0.25, "w8a8 dynamic": 0.25,
               "int4 weights, groups of 32": 0.5}
    results = {}
    for label, m in variants.items():
        acc = evaluate_model(m, test).accuracy
        results[label] = {"accuracy_percent": 100 * acc}
    base = results["float32"]["accuracy_percent"]
    for label, target in targets.items():
        drop = base - results[label]["accuracy_percent"]
        results[label].update({"points_below_float32": drop, "target_points": target,
                               "meets_target": drop <= target})
    return {"checkpoint": checkpoint, "dataset": name, "test_images": len(test.targets),
            "calibration_images": sum(len(b.data) for b in calibration), "variants": results,
            "whole_model": model_speed(model, static, rounds, repeats),
            "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="a `tito vision train` checkpoint (Fashion-MNIST)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calibration-batches", type=int, default=10)
    args = parser.parse_args()
    set_num_threads(args.threads)
    result = {"threads": get_num_threads(), "rounds": args.rounds, "repeats": args.repeats,
              "layers": layer_speed(args.rounds, args.repeats)}
    if args.checkpoint:
        result["accuracy"] = accuracy(args.checkpoint, args.calibration_batches, args.rounds, args.repeats)
    else:
        result["accuracy"] = {"skipped": "no --checkpoint given"}
        model = SmallCNN().eval()
        rng = np.random.default_rng(2)
        calib = [Tensor(rng.normal(size=(BATCH, 1, 28, 28)).astype(np.float32)) for _ in range(2)]
        result["whole_model_random_weights"] = model_speed(model, _calibrated(model, calib),
                                                           args.rounds, args.repeats)
    emit("quantization_cnn", result)


if __name__ == "__main__":
    main()
