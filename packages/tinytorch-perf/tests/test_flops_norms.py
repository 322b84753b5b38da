"""FLOP formulas of the norms that follow torch.nn: BatchNorm1d, GroupNorm, RMSNorm (hand counts)."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import Tensor, nn
from tinytorch.perf import FLOPsCounter
from tinytorch.perf import flops as fl


def test_groupnorm_closed_form():
    # (2, 4, 3) in 2 groups: 24 elements x (5 + weight + bias) + 2 per (sample, group) = 168 + 8
    c = fl.groupnorm_flops((2, 4, 3), 2)
    assert c.elementwise_flops == 176 and c.matmul_flops == 0
    assert c.bytes == 4 * (2 * 24 + 2 * 4)  # x read, y written, weight and bias read
    assert fl.groupnorm_flops((2, 4, 3), 2, weight=False, bias=False).elementwise_flops == 24 * 5 + 8


def test_rmsnorm_closed_form():
    # (4, 8) rows of 8: 32 x (3 + weight) + 3 per row = 128 + 12
    c = fl.rmsnorm_flops((4, 8), 8)
    assert c.elementwise_flops == 140
    assert c.bytes == 4 * (2 * 32 + 8)
    assert fl.rmsnorm_flops((4, 8), 8, weight=False).elementwise_flops == 32 * 3 + 12


@pytest.mark.parametrize("shape", [(6, 5), (4, 5, 3)])
def test_traced_batchnorm1d_counts_8_per_element_training_and_4_eval(shape):
    x = Tensor(np.ones(shape, np.float32) * np.arange(shape[0], dtype=np.float32).reshape(-1, *[1] * (len(shape) - 1)))
    bn = nn.BatchNorm1d(5)
    n = int(np.prod(shape))
    trace = FLOPsCounter().trace(bn, x)
    assert trace.unknown_ops == {} and trace.forward.elementwise_flops == 8 * n
    assert FLOPsCounter().trace(bn.eval(), x).forward.elementwise_flops == 4 * n
    assert FLOPsCounter().trace(nn.BatchNorm1d(5, affine=False).eval(), x).forward.elementwise_flops == 2 * n


def test_traced_group_norm_and_rms_norm_read_their_settings():
    x = Tensor(np.random.default_rng(0).normal(size=(2, 6, 4)).astype(np.float32))
    # 48 elements x 7 + 2 per (sample, group): 3 groups -> 336 + 12, 6 groups -> 336 + 24
    assert FLOPsCounter().trace(nn.GroupNorm(3, 6), x).forward.elementwise_flops == 348
    assert FLOPsCounter().trace(nn.GroupNorm(6, 6), x).forward.elementwise_flops == 360
    # RMSNorm over the last axis (rows of 4): 48 x 4 + 3 x 12 rows; over (6, 4): 3 x 2 rows
    assert FLOPsCounter().trace(nn.RMSNorm(4), x).forward.elementwise_flops == 192 + 36
    assert FLOPsCounter().trace(nn.RMSNorm((6, 4)), x).forward.elementwise_flops == 192 + 6


def test_embedding_with_padding_idx_is_movement():
    trace = FLOPsCounter().trace(nn.Embedding(10, 4, padding_idx=0), np.array([[0, 3, 5]]))
    assert trace.unknown_ops == {} and trace.forward.flops == 0
