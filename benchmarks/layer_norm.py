"""Layer norm at GPT training size: forward + backward through ``functional.layer_norm``.

B·T = 16·128 rows of d = 256 in float32 (TinyGPT's training batch), with weight and bias, as
``nn.LayerNorm`` runs it. Also the batch-1 decode size (1 row) through the same Function. Run
it under two source trees (PYTHONPATH) in one session to compare commits.
Usage: uv run python benchmarks/layer_norm.py [--repeats N]
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import emit, median_time

import tinytorch.core as core
from tinytorch.core import Tensor
from tinytorch.core import functional as F


def measure(rows: int, d: int, repeats: int, number: int) -> dict:
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((rows, d), dtype=np.float32) + 0.5, requires_grad=True)
    weight = Tensor(rng.standard_normal(d, dtype=np.float32), requires_grad=True)
    bias = Tensor(rng.standard_normal(d, dtype=np.float32), requires_grad=True)
    grad = rng.standard_normal((rows, d), dtype=np.float32)

    def forward():
        return F.layer_norm(x, d, weight, bias)

    def forward_backward():
        forward().backward(grad)

    return {"rows": rows, "d": d,
            "forward_ms": 1e3 * median_time(forward, repeats=repeats, number=number),
            "forward_backward_ms": 1e3 * median_time(forward_backward, repeats=repeats, number=number)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    emit("layer_norm", {"tinytorch_core": core.__file__,
                        "training": measure(16 * 128, 256, args.repeats, number=5),
                        "decode": measure(1, 256, args.repeats, number=200)})


if __name__ == "__main__":
    main()
