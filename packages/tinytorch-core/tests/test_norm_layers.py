"""BatchNorm1d, GroupNorm, RMSNorm and Embedding(padding_idx): torch.nn's names, layouts and maths.

Forward values are checked against NumPy formulas written here; gradients by float64 finite
differences with a random upstream gradient; state dicts are written as
``{k: v.numpy() for k, v in torch_layer.state_dict().items()}`` gives them (names, shapes,
dtypes) and loaded strictly. scripts/compare_torch_layers.py compares the same layers with
torch live (float64: every output, gradient and running statistic within 9e-15).
"""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import Tensor, gradcheck, nn
from tinytorch.core import functional as F
from tinytorch.core.nn.parallel import SyncBatchNorm

RNG = np.random.default_rng(1234)


def _t(*shape, grad=True):
    return Tensor(RNG.normal(size=shape), requires_grad=grad)


# ----------------------------------------------------------------------------- batch norm


def _bn_reference(x, mean, var, weight, bias, eps):
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    out = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return out * weight.reshape(shape) + bias.reshape(shape)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
def test_batch_norm_training_forward_and_running_stats_closed_form(shape):
    x = RNG.normal(2.0, 3.0, size=shape)
    w, b = RNG.normal(size=3), RNG.normal(size=3)
    rm, rv = np.full(3, 0.5), np.full(3, 2.0)
    axes = (0,) + tuple(range(2, len(shape)))
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    count = x.size // 3
    y = F.batch_norm(Tensor(x), rm, rv, Tensor(w), Tensor(b), training=True, momentum=0.3, eps=1e-5)
    np.testing.assert_allclose(y.numpy(), _bn_reference(x, mean, var, w, b, 1e-5), atol=1e-12)
    np.testing.assert_allclose(rm, 0.7 * 0.5 + 0.3 * mean, atol=1e-12)
    np.testing.assert_allclose(rv, 0.7 * 2.0 + 0.3 * var * count / (count - 1), atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_batch_norm_gradcheck(shape, training, affine):
    x = _t(*shape)
    params = {"both": [_t(3), _t(3)], "weight": [_t(3)], "none": []}[affine]
    rm, rv = (None, None) if training else (RNG.normal(size=3), RNG.uniform(0.5, 2.0, size=3))

    def fn(x, *p):
        return F.batch_norm(x, rm, rv, *p, training=training, eps=1e-3)
    assert gradcheck(fn, [x, *params])


def _torch_bn_state(c, dtype=np.float32):
    """What {k: v.numpy() for k, v in torch.nn.BatchNorm1d(c).state_dict().items()} holds."""
    return {"weight": RNG.normal(size=c).astype(dtype), "bias": RNG.normal(size=c).astype(dtype),
            "running_mean": RNG.normal(size=c).astype(dtype),
            "running_var": RNG.uniform(0.5, 2, size=c).astype(dtype),
            "num_batches_tracked": np.array(7, dtype=np.int64)}


def test_batchnorm1d_loads_a_torch_state_dict_strictly_and_evaluates_with_it():
    bn = nn.BatchNorm1d(4)
    state = _torch_bn_state(4)
    assert {k: (v.shape, v.dtype) for k, v in bn.state_dict().items()} == \
        {k: (v.shape, v.dtype) for k, v in state.items()}
    bn.load_state_dict(state, strict=True)
    bn.eval()
    x = RNG.normal(size=(5, 4, 3)).astype(np.float32)
    expected = _bn_reference(x.astype(np.float64), state["running_mean"], state["running_var"],
                             state["weight"], state["bias"], 1e-5)
    np.testing.assert_allclose(bn(Tensor(x)).numpy(), expected, atol=1e-5)
    bn.train()
    bn(Tensor(x))
    assert int(bn.num_batches_tracked.data) == 8


def test_batchnorm1d_cumulative_momentum_averages_every_batch():
    bn = nn.BatchNorm1d(2, momentum=None, dtype=np.float64)
    batches = [RNG.normal(m, 1.0, size=(8, 2)) for m in (1.0, 5.0, -3.0)]
    for b in batches:
        bn(Tensor(b))
    np.testing.assert_allclose(bn.running_mean.data, np.mean([b.mean(axis=0) for b in batches], axis=0),
                               atol=1e-12)
    np.testing.assert_allclose(bn.running_var.data, np.mean([b.var(axis=0, ddof=1) for b in batches], axis=0),
                               atol=1e-12)


def test_batchnorm1d_without_running_stats_uses_batch_statistics_in_eval():
    bn = nn.BatchNorm1d(3, track_running_stats=False, affine=False, dtype=np.float64).eval()
    x = RNG.normal(4.0, 2.0, size=(10, 3))
    np.testing.assert_allclose(bn(Tensor(x)).numpy(), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), atol=1e-12)
    assert bn.state_dict() == {}


def test_batchnorm1d_bias_false_has_no_bias_key():
    assert sorted(nn.BatchNorm1d(3, bias=False).state_dict()) == [
        "num_batches_tracked", "running_mean", "running_var", "weight"]


@pytest.mark.parametrize("make,match", [
    (lambda: nn.BatchNorm1d(3)(Tensor(np.zeros((2, 3, 4, 5), np.float32))), r"\(N, 3\) or \(N, 3, L\), got \(2, 3, 4, 5\)"),
    (lambda: nn.BatchNorm1d(3)(Tensor(np.zeros((2, 4), np.float32))), r"got \(2, 4\)"),
    (lambda: nn.BatchNorm1d(3)(Tensor(np.zeros((1, 3), np.float32))), "more than 1 value per channel"),
    (lambda: nn.BatchNorm1d(0), "num_features must be a positive integer, got 0"),
    (lambda: nn.BatchNorm1d(3, eps=0), "eps must be a number > 0, got 0"),
    (lambda: nn.BatchNorm1d(3, momentum=1.5), r"momentum must be in \[0, 1\] or None, got 1.5"),
    (lambda: SyncBatchNorm(3, eps=-1.0), "SyncBatchNorm: eps must be a number > 0"),
    (lambda: SyncBatchNorm(3, momentum=-0.1), "SyncBatchNorm: momentum must be in"),
])
def test_batchnorm_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ----------------------------------------------------------------------------- group norm


@pytest.mark.parametrize("shape,groups", [((2, 6, 5), 3), ((2, 6, 3, 4), 2), ((3, 4), 4)])
def test_group_norm_forward_closed_form(shape, groups):
    x = RNG.normal(1.0, 2.0, size=shape)
    w, b = RNG.normal(size=shape[1]), RNG.normal(size=shape[1])
    xg = x.reshape(shape[0], groups, -1)
    xhat = ((xg - xg.mean(-1, keepdims=True)) / np.sqrt(xg.var(-1, keepdims=True) + 1e-5)).reshape(shape)
    cshape = (1, shape[1]) + (1,) * (len(shape) - 2)
    expected = xhat * w.reshape(cshape) + b.reshape(cshape)
    layer = nn.GroupNorm(groups, shape[1], dtype=np.float64)
    layer.load_state_dict({"weight": w, "bias": b})
    np.testing.assert_allclose(layer(Tensor(x)).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(F.group_norm(Tensor(x), groups).numpy(), xhat, atol=1e-12)


@pytest.mark.parametrize("shape,groups", [((2, 6, 5), 3), ((2, 4, 3, 2), 2), ((2, 4, 3), 1)])
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_gradcheck(shape, groups, affine):
    x = _t(*shape)
    params = [_t(shape[1]), _t(shape[1])] if affine else []
    assert gradcheck(lambda x, *p: F.group_norm(x, groups, *p, eps=1e-3), [x, *params])


def test_group_norm_state_dict_is_torchs():
    assert {k: (v.shape, v.dtype) for k, v in nn.GroupNorm(2, 6).state_dict().items()} == {
        "weight": ((6,), np.float32), "bias": ((6,), np.float32)}
    assert nn.GroupNorm(2, 6, affine=False).state_dict() == {}
    assert sorted(nn.GroupNorm(2, 6, bias=False).state_dict()) == ["weight"]


def test_group_norm_bad_arguments():
    with pytest.raises(ValueError, match=r"num_channels \(4\) must be divisible by num_groups \(3\)"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match=r"GroupNorm expected input \(N, 4, \*\), got \(2, 3, 5\)"):
        nn.GroupNorm(2, 4)(Tensor(np.zeros((2, 3, 5), np.float32)))
    with pytest.raises(ValueError, match="C divisible by num_groups 2, got"):
        F.group_norm(Tensor(np.zeros((2, 3, 5))), 2)


# ----------------------------------------------------------------------------- RMS norm


def test_rms_norm_forward_closed_form_over_two_axes():
    x = RNG.normal(size=(2, 5, 3, 4))
    w = RNG.normal(size=(3, 4))
    ms = (x ** 2).mean(axis=(-2, -1), keepdims=True)
    layer = nn.RMSNorm((3, 4), eps=1e-6, dtype=np.float64)
    layer.load_state_dict({"weight": w})
    np.testing.assert_allclose(layer(Tensor(x)).numpy(), x / np.sqrt(ms + 1e-6) * w, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rms_norm_default_eps_is_the_input_dtypes_machine_epsilon(dtype):
    # mean(x²) = 1e-8 is below float32's eps (1.19e-7) and far above float64's (2.2e-16)
    x = np.full((1, 4), 1e-4, dtype=dtype)
    y = nn.RMSNorm(4, dtype=dtype)(Tensor(x)).numpy()
    expected = 1e-4 / np.sqrt(1e-8 + np.finfo(dtype).eps)
    np.testing.assert_allclose(y, np.full((1, 4), expected), rtol=1e-5)
    assert y.dtype == dtype


@pytest.mark.parametrize("normalized,shape", [(4, (3, 4)), ((2, 3), (2, 2, 3))])
@pytest.mark.parametrize("affine", [True, False])
def test_rms_norm_gradcheck(normalized, shape, affine):
    x = _t(*shape)
    wshape = (normalized,) if isinstance(normalized, int) else normalized
    params = [_t(*wshape)] if affine else []
    assert gradcheck(lambda x, *p: F.rms_norm(x, normalized, *p, eps=1e-4), [x, *params])


def test_rms_norm_state_dict_and_errors():
    assert {k: v.shape for k, v in nn.RMSNorm((3, 4)).state_dict().items()} == {"weight": (3, 4)}
    assert nn.RMSNorm(4, elementwise_affine=False).state_dict() == {}
    with pytest.raises(ValueError, match=r"rms_norm expected input \(\*, 4\), got \(2, 3\)"):
        nn.RMSNorm(4)(Tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match="eps must be a number >= 0 or None"):
        nn.RMSNorm(4, eps=-1.0)


# ----------------------------------------------------------------------------- embedding padding


def test_embedding_padding_row_starts_at_zero_and_gets_no_gradient():
    emb = nn.Embedding(10, 4, padding_idx=-2, dtype=np.float64)
    assert emb.padding_idx == 8
    np.testing.assert_array_equal(emb.weight.data[8], 0)
    assert np.abs(emb.weight.data[[0, 9]]).sum() > 0
    ids = np.array([[8, 1, 8], [3, 1, 8]])
    upstream = RNG.normal(size=(2, 3, 4))
    (emb(ids) * Tensor(upstream)).sum().backward()
    expected = np.zeros((10, 4))
    for (i, j), row in np.ndenumerate(ids):
        expected[row] += upstream[i, j]
    expected[8] = 0  # the padding row: used in forward, no gradient (as torch)
    np.testing.assert_allclose(emb.weight.grad, expected, atol=1e-12)


def test_embedding_with_padding_idx_gradcheck_on_the_rows_that_learn():
    # The padding row gets no gradient by definition; every other row's gradient is exact.
    ids = np.array([[0, 2, 0], [4, 2, 1]])
    rows = _t(4, 3)  # rows 1..4 of a 5-row table whose row 0 is the padding row

    def fn(rows):
        table = F.concat([Tensor(np.zeros((1, 3))), rows], axis=0)
        return F.embedding(ids, table, padding_idx=0)
    assert gradcheck(fn, [rows])


@pytest.mark.parametrize("bad", [10, -11, 2.0, True])
def test_embedding_padding_idx_out_of_range(bad):
    with pytest.raises(ValueError, match=r"padding_idx must be an integer in \[-10, 10\)"):
        nn.Embedding(10, 4, padding_idx=bad)


def test_embedding_state_dict_and_repr():
    emb = nn.Embedding(10, 4, padding_idx=1)
    emb.load_state_dict({"weight": np.arange(40, dtype=np.float32).reshape(10, 4)})
    assert emb(np.array([1])).tolist() == [[4.0, 5.0, 6.0, 7.0]]  # loaded as is, padding row too
    assert repr(emb) == "Embedding(10, 4, padding_idx=1)"


@pytest.mark.parametrize("bias", [True, False])
def test_sync_batchnorm_converted_from_batchnorm1d_keeps_its_tensors_and_outputs(bias):
    plain = nn.BatchNorm1d(3, bias=bias, dtype=np.float64)
    twin = nn.BatchNorm1d(3, bias=bias, dtype=np.float64)
    plain.weight.data[...] = [0.5, 2.0, -1.0]
    twin.load_state_dict(plain.state_dict())
    weight = twin.weight
    sync = SyncBatchNorm.convert_sync_batchnorm(twin)
    assert type(sync).__name__ == "SyncBatchNorm" and sync.weight is weight
    assert sorted(sync.state_dict()) == sorted(plain.state_dict())
    x = RNG.normal(1.0, 2.0, size=(6, 3, 4))
    np.testing.assert_allclose(sync(Tensor(x)).numpy(), plain(Tensor(x)).numpy(), atol=1e-12)
    for key, value in plain.state_dict().items():
        np.testing.assert_allclose(sync.state_dict()[key], value, atol=1e-12)
    sync.eval(), plain.eval()
    np.testing.assert_allclose(sync(Tensor(x)).numpy(), plain(Tensor(x)).numpy(), atol=1e-12)
