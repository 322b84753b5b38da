"""PyTorch's ``dim``/``keepdim`` work beside NumPy's ``axis``/``keepdims`` (issue 22 §4), with the
values NumPy gives, and both spellings of one argument at once are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import Tensor
from tinytorch.core import functional as F

X = np.random.default_rng(0).standard_normal((3, 4, 5))

REDUCTIONS = [
    ("sum", np.sum), ("mean", np.mean), ("max", np.max), ("min", np.min),
    ("var", lambda a, axis, keepdims: np.var(a, axis=axis, keepdims=keepdims, ddof=1)),
    ("std", lambda a, axis, keepdims: np.std(a, axis=axis, keepdims=keepdims, ddof=1)),
    ("argmax", np.argmax), ("argmin", np.argmin),
]


@pytest.mark.parametrize("name, reference", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions_take_dim_and_keepdim(name, reference, dim, keepdim):
    got = getattr(Tensor(X), name)(dim=dim, keepdim=keepdim).data
    want = reference(X, axis=dim, keepdims=keepdim)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # the two spellings are one argument: NumPy's names give the same array
    same = getattr(Tensor(X), name)(axis=dim, keepdims=keepdim).data
    np.testing.assert_array_equal(got, same)


def test_dim_tuple_and_mixed_spellings():
    np.testing.assert_allclose(Tensor(X).sum(dim=(0, 2)).data, X.sum(axis=(0, 2)))
    np.testing.assert_allclose(Tensor(X).mean(axis=1, keepdim=True).data, X.mean(axis=1, keepdims=True))
    np.testing.assert_allclose(Tensor(X).max(dim=2, keepdims=True).data, X.max(axis=2, keepdims=True))
    assert Tensor(X).sum(1).shape == (3, 5)  # positional, as both libraries allow


def test_softmax_split_and_joins_take_dim():
    shifted = np.exp(X - X.max(axis=0, keepdims=True))
    want = shifted / shifted.sum(axis=0, keepdims=True)
    np.testing.assert_allclose(Tensor(X).softmax(dim=0).data, want, rtol=1e-12)
    np.testing.assert_allclose(F.softmax(Tensor(X), dim=0).data, want, rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(Tensor(X), dim=1).data,
                               Tensor(X).log_softmax(axis=1).data, rtol=1e-12)
    np.testing.assert_allclose(np.exp(Tensor(X).log_softmax(dim=0).data), want, rtol=1e-12)
    # the default stays the last axis
    last = np.exp(X - X.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(F.softmax(Tensor(X)).data, last / last.sum(-1, keepdims=True), rtol=1e-12)
    a, b = Tensor(X), Tensor(X + 1)
    np.testing.assert_array_equal(F.cat([a, b], dim=1).data, np.concatenate([X, X + 1], axis=1))
    np.testing.assert_array_equal(F.stack([a, b], dim=2).data, np.stack([X, X + 1], axis=2))
    assert [p.shape for p in a.split(2, dim=1)] == [(3, 2, 5), (3, 2, 5)]
    assert [p.shape for p in a.chunk(2, dim=2)] == [(3, 4, 3), (3, 4, 2)]
    assert a.unsqueeze(dim=1).shape == (3, 1, 4, 5)
    assert a.unsqueeze(dim=1).squeeze(dim=1).shape == (3, 4, 5)


@pytest.mark.parametrize("call", [
    lambda t: t.sum(axis=0, dim=1),
    lambda t: t.mean(keepdims=True, keepdim=True),
    lambda t: t.argmax(axis=1, dim=1),
    lambda t: t.softmax(axis=0, dim=0),
    lambda t: F.cat([t, t], axis=0, dim=0),
    lambda t: t.unsqueeze(axis=0, dim=0),
])
def test_both_spellings_are_refused_by_name(call):
    with pytest.raises(TypeError, match=r"both (axis=0 and dim=[01]|axis=1 and dim=1|keepdims=True and keepdim=True)"):
        call(Tensor(X))


def test_unsqueeze_needs_an_axis():
    with pytest.raises(TypeError, match="unsqueeze: missing the axis"):
        Tensor(X).unsqueeze()


def test_dim_gradient_is_the_axis_gradient():
    upstream = np.random.default_rng(1).standard_normal((3, 1, 5))
    a, b = Tensor(X, requires_grad=True), Tensor(X, requires_grad=True)
    (a.mean(dim=1, keepdim=True) * Tensor(upstream)).sum().backward()
    (b.mean(axis=1, keepdims=True) * Tensor(upstream)).sum().backward()
    np.testing.assert_allclose(a.grad, np.broadcast_to(upstream / 4, X.shape))
    np.testing.assert_array_equal(a.grad, b.grad)
