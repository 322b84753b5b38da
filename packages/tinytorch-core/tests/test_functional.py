"""tinytorch.core.functional: gradient checks and forward values against NumPy closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinytorch.core import Tensor, gradcheck, manual_seed
from tinytorch.core import functional as F
from tinytorch.core.testing import make_tensor


def _t(*shape, seed=0, scale=1.0, requires_grad=True) -> Tensor:
    return make_tensor(*shape, seed=seed, scale=scale, requires_grad=requires_grad)


def _np_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def _np_cross_entropy(logits, target, ignore_index=-100, reduction="mean", smoothing=0.0):
    classes = logits.shape[-1]
    logp = _np_log_softmax(logits.reshape(-1, classes))
    y = target.reshape(-1)
    losses = np.zeros(y.size)
    for i, c in enumerate(y):
        if c == ignore_index:
            continue
        losses[i] = (1 - smoothing) * -logp[i, c] + smoothing * -logp[i].mean()
    valid = y != ignore_index
    if reduction == "mean":
        return losses[valid].sum() / valid.sum()
    if reduction == "sum":
        return losses.sum()
    return losses.reshape(target.shape)


def _np_gelu(x: np.ndarray) -> np.ndarray:
    return x * 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


# ---------------------------------------------------------------------------------- linear


@pytest.mark.parametrize("x_shape", [(4, 3), (2, 3, 3), (3,)], ids=str)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_linear_gradcheck_and_values(x_shape, with_bias):
    x, w = _t(*x_shape, seed=1), _t(2, 3, seed=2)
    b = _t(2, seed=3) if with_bias else None
    out = F.linear(x, w, b)
    expected = x.data @ w.data.T + (b.data if with_bias else 0)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    inputs = [x, w, b] if with_bias else [x, w]
    assert gradcheck(lambda *a: F.linear(*a), inputs)


def test_linear_only_weight_requires_grad():
    x = _t(4, 3, seed=1, requires_grad=False)
    w, b = _t(2, 3, seed=2), _t(2, seed=3)
    assert gradcheck(lambda w, b: F.linear(x, w, b), [w, b])
    assert x.grad is None


def test_linear_mismatch_message():
    with pytest.raises(ValueError, match=r"expected last dim 3.*got input \(4, 5\)"):
        F.linear(_t(4, 5), _t(2, 3))


# ---------------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("axis", [-1, 0, 1, 2])
def test_softmax_and_log_softmax_gradcheck(axis):
    x = _t(2, 3, 4, seed=4)
    assert gradcheck(lambda x: F.softmax(x, axis=axis), [x])
    assert gradcheck(lambda x: F.log_softmax(x, axis=axis), [x])
    assert gradcheck(lambda x: x.softmax(axis=axis), [x])
    assert gradcheck(lambda x: x.log_softmax(axis=axis), [x])


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_values(axis):
    x = _t(3, 5, seed=5, scale=3.0)
    s = F.softmax(x, axis=axis).data
    np.testing.assert_allclose(s.sum(axis=axis), 1.0, rtol=1e-12)
    assert (s > 0).all()
    e = np.exp(x.data)
    np.testing.assert_allclose(s, e / e.sum(axis=axis, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(x, axis=axis).data, np.log(s), rtol=1e-12)


def test_softmax_is_stable_for_huge_logits():
    x = Tensor(np.array([[1000.0, 1000.0, -1000.0], [1e4, 0.0, -1e4]]), requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = F.softmax(x)
        ls = F.log_softmax(x)
        (s.sum() + ls.sum()).backward()
    np.testing.assert_allclose(s.data[0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(ls.data[0, :2], [np.log(0.5)] * 2)
    assert np.isfinite(ls.data).all() and np.isfinite(x.grad).all()


def test_softmax_float32():
    x = Tensor(np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32))
    s = F.softmax(x)
    assert s.dtype == np.float32
    np.testing.assert_allclose(s.data.sum(-1), 1.0, rtol=1e-6)


# ---------------------------------------------------------------------------------- cross entropy


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_2d_gradcheck_and_values(reduction, smoothing):
    logits = _t(5, 4, seed=6, scale=2.0)
    target = np.array([0, 3, 1, 3, 2])
    fn = lambda x: F.cross_entropy(x, target, reduction=reduction, label_smoothing=smoothing)  # noqa: E731
    expected = _np_cross_entropy(logits.data, target, reduction=reduction, smoothing=smoothing)
    out = fn(logits)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    assert gradcheck(fn, [logits])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_3d_with_ignore_index(reduction, smoothing):
    logits = _t(2, 3, 5, seed=7)  # (B, T, V)
    target = np.array([[1, -100, 4], [0, 0, -100]])
    fn = lambda x: F.cross_entropy(  # noqa: E731
        x, target, reduction=reduction, label_smoothing=smoothing
    )
    expected = _np_cross_entropy(logits.data, target, reduction=reduction, smoothing=smoothing)
    out = fn(logits)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    assert gradcheck(fn, [logits])
    logits.grad = None
    fn(logits).sum().backward()
    np.testing.assert_array_equal(logits.grad[0, 1], 0.0)  # ignored positions get no gradient
    np.testing.assert_array_equal(logits.grad[1, 2], 0.0)


def test_cross_entropy_custom_ignore_index_and_tensor_target():
    logits = _t(4, 3, seed=8)
    target = Tensor(np.array([2, 1, 1, 0]))
    fn = lambda x: F.cross_entropy(x, target, ignore_index=1)  # noqa: E731
    expected = _np_cross_entropy(logits.data, target.data, ignore_index=1)
    np.testing.assert_allclose(fn(logits).data, expected, rtol=1e-12)
    assert gradcheck(fn, [logits])


def test_cross_entropy_of_uniform_logits_is_log_c():
    for classes in (2, 10, 1000):
        logits = Tensor(np.zeros((3, classes), np.float32))
        loss = F.cross_entropy(logits, np.array([0, 1, classes - 1]))
        assert loss.dtype == np.float32
        np.testing.assert_allclose(loss.item(), math.log(classes), rtol=1e-6)


def test_cross_entropy_stable_and_exact_for_confident_logits():
    logits = Tensor(np.array([[1000.0, 0.0], [0.0, 1000.0]]), requires_grad=True)
    loss = F.cross_entropy(logits, np.array([0, 0]))
    np.testing.assert_allclose(loss.item(), 500.0)
    loss.backward()
    assert np.isfinite(logits.grad).all()


def test_cross_entropy_all_ignored_mean_is_nan():
    loss = F.cross_entropy(Tensor(np.zeros((2, 3))), np.array([-100, -100]))
    assert np.isnan(loss.item())


def test_cross_entropy_float32_grad():
    logits = Tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    F.cross_entropy(logits, np.array([0, 2])).backward()
    assert logits.grad.dtype == np.float32
    np.testing.assert_allclose(logits.grad, [[-1 / 3, 1 / 6, 1 / 6], [1 / 6, 1 / 6, -1 / 3]],
                               rtol=1e-6)


@pytest.mark.parametrize("bad", [3, 7, -1, -5])
def test_cross_entropy_target_out_of_range(bad):
    with pytest.raises(ValueError, match=f"target class {bad} is out of range for 3 classes"):
        F.cross_entropy(Tensor(np.zeros((2, 3))), np.array([0, bad]))


def test_cross_entropy_input_errors():
    logits = Tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        F.cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        F.cross_entropy(logits, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(logits, np.array([0, 1]), reduction="avg")


def test_cross_entropy_backward_twice_with_retain_graph():
    logits = _t(3, 4, seed=9)
    loss = F.cross_entropy(logits, np.array([0, 1, 3]))
    loss.backward(retain_graph=True)
    first = logits.grad.copy()
    logits.grad = None
    loss.backward()
    np.testing.assert_allclose(logits.grad, first, rtol=1e-12)


# ---------------------------------------------------------------------------------- nll & mse


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_matches_cross_entropy(reduction):
    logits = _t(5, 4, seed=10)
    target = np.array([1, 0, 3, 3, 2])
    fn = lambda x: F.nll_loss(F.log_softmax(x), target, reduction=reduction)  # noqa: E731
    np.testing.assert_allclose(
        fn(logits).data, F.cross_entropy(logits, target, reduction=reduction).data, rtol=1e-12
    )
    assert gradcheck(fn, [logits])
    assert gradcheck(lambda lp: F.nll_loss(lp, target, reduction=reduction), [_t(5, 4, seed=11)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_gradcheck_and_values(reduction):
    pred, target = _t(3, 4, seed=12), _t(3, 4, seed=13)
    out = F.mse_loss(pred, target, reduction=reduction)
    sq = (pred.data - target.data) ** 2
    expected = {"mean": sq.mean(), "sum": sq.sum(), "none": sq}[reduction]
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    assert gradcheck(lambda p, t: F.mse_loss(p, t, reduction=reduction), [pred, target])
    assert gradcheck(lambda p: F.mse_loss(p, target.data, reduction=reduction), [pred])


def test_nll_loss_negative_target_is_refused():
    lp = F.log_softmax(Tensor(np.zeros((2, 3))))
    with pytest.raises(ValueError, match="-1"):
        F.nll_loss(lp, np.array([0, -1]))


@pytest.mark.parametrize("loss", ["nll_loss", "mse_loss"])
def test_unknown_reduction_is_refused(loss):
    x = F.log_softmax(Tensor(np.zeros((2, 3))))
    target = np.array([0, 1]) if loss == "nll_loss" else np.zeros((2, 3))
    with pytest.raises(ValueError, match="reduction"):
        getattr(F, loss)(x, target, reduction="avg")


def test_mse_loss_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(4, 3\)"):
        F.mse_loss(_t(3, 4), _t(4, 3))


# ---------------------------------------------------------------------------------- layer norm


def _np_layer_norm(x, k, weight=None, bias=None, eps=1e-5):
    axes = tuple(range(x.ndim - k, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    out = (x - mu) / np.sqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


@pytest.mark.parametrize("normalized", [(4,), (3, 4)], ids=["last-dim", "last-two-dims"])
@pytest.mark.parametrize("affine", ["none", "weight", "bias", "both"])
def test_layer_norm_gradcheck_and_values(normalized, affine):
    x = _t(2, 3, 4, seed=14, scale=2.0)
    weight = _t(*normalized, seed=15) if affine in ("weight", "both") else None
    bias = _t(*normalized, seed=16) if affine in ("bias", "both") else None
    shape = normalized[0] if len(normalized) == 1 else normalized

    def fn(x, *params):
        it = iter(params)
        w = next(it) if weight is not None else None
        b = next(it) if bias is not None else None
        return F.layer_norm(x, shape, w, b)

    params = [p for p in (weight, bias) if p is not None]
    out = fn(x, *params)
    expected = _np_layer_norm(x.data, len(normalized), None if weight is None else weight.data,
                              None if bias is None else bias.data)
    np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-12)
    assert gradcheck(fn, [x, *params])


@pytest.mark.parametrize("k", [1, 2])
def test_layer_norm_output_has_mean_0_and_var_1(k):
    x = _t(5, 6, 7, seed=17, scale=10.0)
    x = x + 3.0
    normalized = x.shape[-k:]
    out = F.layer_norm(x, normalized, eps=0.0).data
    axes = tuple(range(3 - k, 3))
    np.testing.assert_allclose(out.mean(axis=axes), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=axes), 1.0, rtol=1e-12)


def test_layer_norm_eps_and_float32():
    x = Tensor(np.random.default_rng(18).normal(size=(4, 8)).astype(np.float32))
    out = F.layer_norm(x, 8, eps=1e-3)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.data, _np_layer_norm(x.data.astype(np.float64), 1, eps=1e-3),
                               rtol=1e-4, atol=1e-5)


def test_layer_norm_shape_mismatch():
    with pytest.raises(ValueError, match=r"trailing shape \(5,\).*\(2, 4\)"):
        F.layer_norm(_t(2, 4), 5)


# ---------------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_gradcheck_with_fixed_mask(p):
    x = _t(4, 6, seed=19)
    fn = lambda x: F.dropout(x, p, generator=np.random.default_rng(0))  # noqa: E731
    assert gradcheck(fn, [x])
    out = fn(x).data
    kept = out != 0
    np.testing.assert_allclose(out[kept], x.data[kept] / (1 - p), rtol=1e-6)


def test_dropout_statistics():
    x = Tensor(np.ones((200, 500), np.float32))
    out = F.dropout(x, 0.3, generator=np.random.default_rng(1)).data
    assert out.dtype == np.float32
    assert abs((out == 0).mean() - 0.3) < 0.01
    np.testing.assert_allclose(np.unique(out), [0.0, 1 / 0.7], rtol=1e-6)
    assert abs(out.mean() - 1.0) < 0.02  # inverted dropout keeps the expectation


def test_dropout_identity_cases():
    x = _t(3, 4)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert F.dropout(x, 1.0, training=False) is x


def test_dropout_p_one_zeroes_everything():
    x = _t(3, 4)
    out = F.dropout(x, 1.0)
    np.testing.assert_array_equal(out.data, 0.0)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, 0.0)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_bad_p(p):
    with pytest.raises(ValueError, match="p must be in"):
        F.dropout(_t(3), p)


def test_dropout_uses_the_global_seed():
    x = _t(5, 5)
    manual_seed(3)
    a = F.dropout(x, 0.5).data
    manual_seed(3)
    b = F.dropout(x, 0.5).data
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------- embedding


@pytest.mark.parametrize(
    "ids", [np.array([1, 3, 1, 1, 0]), np.array([[2, 2], [0, 2], [3, 3]]), np.array(2)], ids=str
)
def test_embedding_gradcheck_with_repeated_ids(ids):
    weight = _t(4, 3, seed=20)
    out = F.embedding(ids, weight)
    assert out.shape == ids.shape + (3,)
    np.testing.assert_array_equal(out.data, weight.data[ids])
    assert gradcheck(lambda w: F.embedding(ids, w), [weight])
    assert gradcheck(lambda w: F.embedding(Tensor(ids), w), [weight])


def test_embedding_repeated_ids_accumulate():
    weight = Tensor(np.zeros((4, 2)), requires_grad=True)
    F.embedding(np.array([1, 1, 1, 3]), weight).sum().backward()
    np.testing.assert_array_equal(weight.grad, [[0, 0], [3, 3], [0, 0], [1, 1]])


def test_embedding_empty_ids():
    weight = Tensor(np.ones((4, 2)), requires_grad=True)
    out = F.embedding(np.zeros((0,), dtype=np.int64), weight)
    assert out.shape == (0, 2)
    out.sum().backward()
    np.testing.assert_array_equal(weight.grad, 0.0)


def test_embedding_errors():
    weight = _t(4, 3)
    with pytest.raises(IndexError, match="index 4.*4 embeddings"):
        F.embedding(np.array([0, 4]), weight)
    with pytest.raises(IndexError, match="index -1"):
        F.embedding(np.array([-1]), weight)
    with pytest.raises(TypeError, match="integers"):
        F.embedding(np.array([0.0, 1.0]), weight)


# ---------------------------------------------------------------------------------- activations


def test_gelu_exact_value_at_one():
    assert abs(F.gelu(Tensor(np.array(1.0))).item() - 0.8413447460685429) < 1e-6
    assert abs(F.gelu(Tensor(1.0)).item() - 0.8413447460685429) < 1e-6  # float32 too


def test_gelu_matches_erf_closed_form():
    x = np.linspace(-6, 6, 241)
    np.testing.assert_allclose(F.gelu(Tensor(x)).data, _np_gelu(x), atol=1e-6)
    np.testing.assert_allclose(Tensor(x).gelu().data, _np_gelu(x), atol=1e-6)


def test_gelu_tanh_matches_formula():
    x = np.linspace(-6, 6, 241)
    expected = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(F.gelu(Tensor(x), approximate="tanh").data, expected, rtol=1e-12,
                               atol=1e-15)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "gelu"])
def test_functional_activation_gradcheck(name):
    x = Tensor(np.array([[-1.7, -0.4, 0.3], [0.8, 1.9, -2.6]]), requires_grad=True)
    fn = getattr(F, name)
    assert gradcheck(fn, [x])
    np.testing.assert_allclose(fn(x).data, getattr(x, name)().data)


def test_sigmoid_and_tanh_values():
    x = np.linspace(-5, 5, 11)
    np.testing.assert_allclose(F.sigmoid(Tensor(x)).data, 1 / (1 + np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(F.tanh(Tensor(x)).data, np.tanh(x), rtol=1e-12)
    np.testing.assert_allclose(F.relu(Tensor(x)).data, np.maximum(x, 0))


# ---------------------------------------------------------------------------------- a small network


def test_two_layer_network_gradcheck():
    x = _t(4, 3, seed=21)
    w1, b1 = _t(5, 3, seed=22), _t(5, seed=23)
    w2, b2 = _t(3, 5, seed=24), _t(3, seed=25)
    g, beta = _t(5, seed=26), _t(5, seed=27)
    target = np.array([0, 2, 1, 2])

    def loss(x, w1, b1, w2, b2, g, beta):
        h = F.layer_norm(F.linear(x, w1, b1), 5, g, beta).gelu()
        return F.cross_entropy(F.linear(h, w2, b2), target, label_smoothing=0.05)

    assert gradcheck(loss, [x, w1, b1, w2, b2, g, beta])
