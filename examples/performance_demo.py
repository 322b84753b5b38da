"""Why is my model slow? Hardware ceilings, exact FLOPs, a roofline and a layer profile.

Runs with tinytorch-core and tinytorch-perf alone (it builds a small MLP and a small
attention stack from core layers); every model an installed package registers in the
``tinytorch.models`` entry points (small_cnn, tinygpt, ...) is profiled too.

Usage: uv run python examples/performance_demo.py [--out roofline.png] [--full]
"""

from __future__ import annotations

import argparse

from rich.console import Console

from tinytorch.core import nn, randn
from tinytorch.perf import (
    CONVENTION,
    FLOPsCounter,
    ModelProfiler,
    RooflineModel,
    available_models,
    get_hardware_spec,
    load_model,
)
from tinytorch.perf.profiler import compare, comparison_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="roofline.png", help="roofline plot (.png or .svg)")
    parser.add_argument("--full", action="store_true", help="full hardware measurement (~3 s)")
    args = parser.parse_args()
    console = Console()

    spec = get_hardware_spec(quick=not args.full)
    console.print(f"[bold]{spec.cpu_name}[/]: measured {spec.measured_peak_gflops:.1f} GFLOP/s "
                  f"float32 GEMM, {spec.memory_bandwidth_gbs:.1f} GB/s STREAM copy, ridge "
                  f"{spec.ridge_point:.1f} FLOP/byte" + (" (quick estimate)" if spec.quick else ""))

    counter = FLOPsCounter()
    conv, shape = counter.conv2d((3, 32, 32), 64, kernel_size=3, stride=1, padding=1)
    console.print(f"conv2d 3x32x32 -> 64 (k3, s1, p1): {conv.matmul_flops:,} conv FLOPs + "
                  f"{conv.elementwise_flops:,} bias FLOPs, {conv.bytes:,} bytes, intensity "
                  f"{conv.intensity:.1f} FLOP/B  [{CONVENTION}]")

    mlp = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                        nn.Linear(256, 10))
    x = randn(128, 784)
    result = ModelProfiler(mlp, x, name="mlp-784", hardware=spec).profile(repeats=5)
    console.print(result.table())
    if result.note:  # other programs were busy while timing: the times are too slow
        console.print(f"[yellow]{result.note}[/]")
    roof = RooflineModel(spec)
    points = roof.points_from_profile(result, prefix=True)
    for p in points:
        console.print(f"  {p.name}: {p.advice}")

    models = {"mlp-784": (mlp, x)}
    for name in available_models():
        models[name] = load_model(name)
        r = ModelProfiler(*models[name], name=name, hardware=spec).profile(repeats=3)
        points += roof.points_from_profile(r, prefix=True)
        console.print(f"{name}: {r.flops / 1e6:,.1f} MFLOPs forward, step {r.total_s * 1e3:.1f} ms"
                      + (f" ({r.note})" if r.note else ""))
    roof.plot(points, args.out, title="TinyTorch layers on this machine")
    console.print(comparison_table(compare(models, repeats=3)))
    console.print(f"roofline plot: {args.out}")


if __name__ == "__main__":
    main()
