"""tinytorch.perf.optimize: the roofline verdict on hand-made measurements, and each layer's
before/after bytes and FLOPs from the tracer and the stored integers."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tinytorch.core import Tensor, nn
from tinytorch.core.quantization import Int8WeightOnlyConfig, quantize_
from tinytorch.perf.flops import FLOPsCounter
from tinytorch.perf.optimize import layer_changes, roofline_verdict
from tinytorch.perf.roofline import RooflineModel


@pytest.mark.parametrize("bound, bytes_ratio, flops_ratio, speedup, verdict, predicted", [
    # memory-bound, bytes fell 4x: a gain is predicted; confirmed only if it was measured
    ("memory-bound", 4.0, 1.0, 1.6, "confirmed", 4.0),
    ("memory-bound", 4.0, 1.0, 1.05, "not confirmed", 4.0),
    ("memory-bound", 4.0, 1.0, 0.5, "not confirmed", 4.0),
    # compute-bound, FLOPs unchanged: no change predicted, whatever the bytes did
    ("compute-bound", 4.0, 1.0, 1.02, "confirmed", 1.0),
    ("compute-bound", 4.0, 1.0, 0.7, "not confirmed", 1.0),
    ("compute-bound", 4.0, 1.0, 1.5, "not confirmed", 1.0),
    # compute-bound, FLOPs halved (structured pruning): a gain is predicted
    ("compute-bound", 1.0, 2.0, 1.9, "confirmed", 2.0),
    # memory-bound, bytes unchanged: no change predicted
    ("memory-bound", 1.0, 1.0, 0.95, "confirmed", 1.0),
])
def test_verdict_on_hand_made_measurements(bound, bytes_ratio, flops_ratio, speedup, verdict, predicted):
    v = roofline_verdict(bound, bytes_ratio, flops_ratio, speedup)
    assert v["verdict"] == verdict and v["predicted"] == predicted and v["measured"] == speedup


def test_verdict_tolerance_edges_and_bad_input():
    assert roofline_verdict("memory-bound", 4.0, 1.0, 1.11)["verdict"] == "confirmed"
    assert roofline_verdict("memory-bound", 4.0, 1.0, 1.09)["verdict"] == "not confirmed"
    assert roofline_verdict("memory-bound", 1.05, 1.0, 1.0)["verdict"] == "confirmed"  # 1.05: no change predicted
    with pytest.raises(ValueError, match="bound must be"):
        roofline_verdict("fast", 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="speedup must be a positive finite number, got 0"):
        roofline_verdict("memory-bound", 1.0, 1.0, 0)


def test_layer_changes_bytes_and_flops_of_a_weight_only_layer():
    rng = np.random.default_rng(0)
    before = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8)).eval()
    after = copy.deepcopy(before)
    quantize_(after, Int8WeightOnlyConfig())
    x = Tensor(rng.normal(size=(4, 64)).astype(np.float32))
    roof = RooflineModel(peak_gflops=100.0, bandwidth_gbs=10.0)
    changes = {c.name: c for c in layer_changes(before, after, x, roof, repeats=1)}
    first = changes["0"]
    assert first.type_before == "Linear" and first.type_after == "Int8WeightOnlyLinear"
    traced = FLOPsCounter().trace(before, x).layers["0"].forward
    assert first.flops == (traced.flops, traced.flops) and first.bytes[0] == traced.bytes
    assert not first.traced_after  # the widened product runs outside autograd
    # bytes: the float layer's traffic minus its float32 weight and bias, plus int8 weights,
    # float32 row scales and the float32 bias it stores
    b0 = first.bytes[0]
    assert first.bytes[1] == b0 - (64 * 32 + 32) * 4 + (64 * 32 + 32 * 4 + 32 * 4)
    # ~1.6 FLOP/byte, left of the ridge (10): memory-bound, so the prediction is the bytes' ratio
    assert first.bound[0] == "memory-bound"
    assert first.verdict["predicted"] == pytest.approx(first.bytes[0] / first.bytes[1])
    relu = changes["1"]
    assert relu.verdict == {} and relu.bytes[0] == relu.bytes[1]  # unchanged: no verdict
