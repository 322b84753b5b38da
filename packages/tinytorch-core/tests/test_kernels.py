"""The array kernels against float64 formulas written out term by term, and their dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import kernels as K

rng = np.random.default_rng(0)


def _numeric_grad(fn, x, upstream, eps=1e-6):
    """Central differences of sum(fn(x) * upstream) in float64."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[i] += eps
        minus[i] -= eps
        grad[i] = ((fn(plus) - fn(minus)) * upstream).sum() / (2 * eps)
    return grad


@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 3, 5), (2, 1, 3, 5), (3, 5), (5,)])
def test_linear_is_one_gemm_over_any_leading_shape(shape):
    x = rng.standard_normal(shape)
    w, b = rng.standard_normal((4, 5)), rng.standard_normal(4)
    expected = np.einsum("...k,ok->...o", x, w) + b
    np.testing.assert_allclose(K.linear(x, w, b), expected, rtol=1e-12)
    np.testing.assert_allclose(K.linear(x, w), expected - b, rtol=1e-12)


@pytest.mark.parametrize("normalized_ndim", [1, 2])
def test_layer_norm_matches_formula_and_its_backward_matches_finite_differences(normalized_ndim):
    x = rng.standard_normal((3, 4, 5)) * 3 + 2
    shape = x.shape[3 - normalized_ndim:]
    w, b = rng.standard_normal(shape), rng.standard_normal(shape)
    axes = tuple(range(3 - normalized_ndim, 3))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    expected = (x - mu) / np.sqrt(var + 1e-5) * w + b
    out, xhat, std = K.layer_norm(x, w, b, 1e-5, normalized_ndim)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xhat.reshape(x.shape) * w + b, expected, rtol=1e-10, atol=1e-12)

    upstream = rng.standard_normal(x.shape)
    dx, dw, db = K.layer_norm_backward(upstream, xhat, std, w)
    ln = lambda a: K.layer_norm(a, w, b, 1e-5, normalized_ndim)[0]  # noqa: E731
    np.testing.assert_allclose(dx, _numeric_grad(ln, x, upstream), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        dw, _numeric_grad(lambda a: K.layer_norm(x, a, b, 1e-5, normalized_ndim)[0], w, upstream),
        rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(db, upstream.sum(axis=tuple(range(3 - normalized_ndim))), rtol=1e-12)


def test_layer_norm_without_affine_returns_xhat():
    x = rng.standard_normal((4, 6))
    out, xhat, _ = K.layer_norm(x)
    np.testing.assert_allclose(out.mean(axis=-1), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=-1), 1 / (1 + 1e-5 / x.var(axis=-1)), rtol=1e-10)
    assert np.shares_memory(out, xhat)  # no copy when there is nothing to scale


@pytest.mark.parametrize("form", ["erf", "tanh"])
def test_gelu_kernels_value_and_backward(form):
    x = np.linspace(-4, 4, 17)
    from math import erf, pi, sqrt, tanh

    if form == "erf":
        forward, backward = K.gelu_erf, K.gelu_erf_backward
        expected = [v * 0.5 * (1 + erf(v / sqrt(2))) for v in x]
    else:
        forward, backward = K.gelu_tanh, K.gelu_tanh_backward
        expected = [0.5 * v * (1 + tanh(sqrt(2 / pi) * (v + 0.044715 * v**3))) for v in x]
    out, saved = forward(x)
    np.testing.assert_allclose(out, expected, atol=1e-7)
    upstream = rng.standard_normal(x.shape)
    np.testing.assert_allclose(backward(upstream, x, saved),
                               _numeric_grad(lambda a: forward(a)[0], x, upstream), atol=1e-6)


def test_softmax_and_log_softmax_along_an_axis():
    x = rng.standard_normal((3, 4)) * 10
    e = np.exp(x - x.max(axis=0))
    np.testing.assert_allclose(K.softmax(x, axis=0), e / e.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(K.log_softmax(x, axis=0), np.log(e / e.sum(axis=0)), rtol=1e-10)


def test_masked_softmax_is_in_place_and_zeroes_fully_masked_rows():
    scores = rng.standard_normal((2, 3, 4))
    bias = np.triu(np.full((3, 4), -np.inf), k=1)
    bias[0] = -np.inf  # query 0 sees nothing
    expected = np.exp(scores + bias)
    expected /= np.where(expected.sum(-1, keepdims=True) == 0, 1, expected.sum(-1, keepdims=True))
    out = K.masked_softmax_(scores, bias)
    assert out is scores
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert np.all(out[:, 0] == 0) and not np.isnan(out).any()
    np.testing.assert_allclose(out[:, 1:].sum(-1), 1, rtol=1e-12)


def test_kernels_keep_float32():
    x = rng.standard_normal((4, 8), dtype=np.float32)
    w, b = np.ones(8, np.float32), np.zeros(8, np.float32)
    arrays = [K.linear(x, np.ones((3, 8), np.float32), np.zeros(3, np.float32)), K.softmax(x),
              K.log_softmax(x), K.masked_softmax_(x.copy()), K.sigmoid(x), K.erf(x),
              *K.gelu_erf(x), *K.gelu_tanh(x), *K.layer_norm(x, w, b),
              K.gelu_tanh_backward(x, x, K.gelu_tanh(x)[1]), K.gelu_erf_backward(x, x, K.gelu_erf(x)[1])]
    out, xhat, std = K.layer_norm(x, w, b)
    arrays += [g for g in K.layer_norm_backward(x, xhat, std, w)]
    assert [a.dtype for a in arrays] == [np.float32] * len(arrays)
