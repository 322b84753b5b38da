"""Tensor and the autograd engine: dtypes, graph walks, grad mode, errors and seeding."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tinytorch.core import (
    Function,
    GradcheckError,
    Tensor,
    arange,
    enable_grad,
    full,
    gradcheck,
    is_grad_enabled,
    manual_seed,
    no_grad,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from tinytorch.core import functional as F

# ---------------------------------------------------------------------------------- dtypes


def test_python_floats_and_lists_become_float32():
    assert Tensor([1.0]).dtype == np.float32
    assert Tensor(1.0).dtype == np.float32
    assert Tensor([[1, 2], [3, 4]]).dtype == np.float32
    assert Tensor(3).shape == ()
    assert tensor([1.0, 2.0]).dtype == np.float32


def test_numpy_arrays_keep_their_dtype():
    assert Tensor(np.zeros(3)).dtype == np.float64
    assert Tensor(np.zeros(3, np.float32)).dtype == np.float32
    assert Tensor(np.arange(3)).dtype == np.int64
    assert Tensor(np.float64(2.0)).dtype == np.float64
    assert Tensor([True, False]).dtype == np.bool_


def test_dtype_argument_casts():
    assert Tensor(np.zeros(3), dtype=np.float32).dtype == np.float32
    assert Tensor([1, 2], dtype=np.int64).dtype == np.int64
    assert Tensor([1.0], dtype="float64").dtype == np.float64


def test_tensor_wraps_tensor():
    a = Tensor([1.0, 2.0])
    np.testing.assert_array_equal(Tensor(a).data, a.data)


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(lambda x: x * 2.0, id="mul-float"),
        pytest.param(lambda x: x * np.float64(2.0), id="mul-np.float64"),
        pytest.param(lambda x: 2.0 * x, id="rmul-float"),
        pytest.param(lambda x: np.float64(2.0) * x, id="rmul-np.float64"),
        pytest.param(lambda x: x + 1, id="add-int"),
        pytest.param(lambda x: 1.0 - x, id="rsub"),
        pytest.param(lambda x: x / 3.0, id="div"),
        pytest.param(lambda x: 1.0 / x, id="rdiv"),
        pytest.param(lambda x: x**2.0, id="pow2"),
        pytest.param(lambda x: x ** np.float64(0.5), id="pow-np"),
        pytest.param(lambda x: 2.0**x, id="rpow"),
        pytest.param(lambda x: x.exp().log().sqrt(), id="exp-log-sqrt"),
        pytest.param(lambda x: x.tanh().sigmoid().relu(), id="activations"),
        pytest.param(lambda x: x.gelu(), id="gelu"),
        pytest.param(lambda x: x.gelu("tanh"), id="gelu-tanh"),
        pytest.param(lambda x: x.mean() + x.var() + x.std(axis=0).sum(), id="reductions"),
        pytest.param(lambda x: x.clamp(0.5, 1.5).abs(), id="clamp-abs"),
        pytest.param(lambda x: F.softmax(x) + F.log_softmax(x, axis=0), id="softmax"),
        pytest.param(lambda x: F.layer_norm(x, 3), id="layer_norm"),
        pytest.param(lambda x: F.mse_loss(x, np.ones((2, 3))), id="mse-float64-target"),
        pytest.param(lambda x: F.cross_entropy(x, np.array([0, 2])), id="cross_entropy"),
        pytest.param(lambda x: x.masked_fill(np.eye(2, 3, dtype=bool), 0.5), id="masked_fill"),
        pytest.param(lambda x: F.where(x.data > 1, x, 0.0), id="where-scalar"),
    ],
)
def test_float32_stays_float32_and_grads_are_float32(op):
    x = Tensor(np.array([[1.0, 2.0, 0.7], [0.3, 1.2, 1.9]], dtype=np.float32), requires_grad=True)
    out = op(x)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad is not None and x.grad.dtype == np.float32


def test_float32_leaf_grad_is_float32_even_through_float64_ops():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * Tensor(np.array([3.0, 4.0]))  # float64 array: promotes, as in NumPy
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_float32_linear_stays_float32():
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    w = Tensor(np.ones((4, 3), np.float32), requires_grad=True)
    b = Tensor(np.ones(4, np.float32), requires_grad=True)
    out = F.linear(x, w, b)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


def test_requires_grad_needs_a_float_tensor():
    with pytest.raises(TypeError, match="int64"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match="floating"):
        Tensor(np.array([True]), requires_grad=True)
    with pytest.raises(TypeError):
        Tensor(np.arange(3)).requires_grad_()


def test_creation_helpers():
    assert zeros(2, 3).shape == (2, 3) and zeros(2, 3).dtype == np.float32
    assert ones((2, 3)).shape == (2, 3)
    assert zeros(2, dtype=np.float64).dtype == np.float64
    assert ones(3, requires_grad=True).requires_grad
    np.testing.assert_array_equal(full((2,), 7.0).data, [7.0, 7.0])
    assert full((2,), 7.0).dtype == np.float32
    x = Tensor(np.zeros((2, 2)))
    assert zeros_like(x).dtype == np.float64 and ones_like(x).data.sum() == 4
    assert arange(5).dtype == np.int64 and arange(1, 7, 2).tolist() == [1, 3, 5]


def test_attributes_and_conversions():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert x.shape == (2, 3) and x.ndim == 2 and x.dim() == 2 and x.size == 6 and x.numel() == 6
    assert len(x) == 2
    assert x.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert x.numpy() is x.data
    assert Tensor([[3.5]]).item() == 3.5
    with pytest.raises(ValueError, match="one element"):
        x.item()
    assert x.long().dtype == np.int64
    assert x.is_leaf and x.grad_fn is None


def test_repr():
    assert repr(Tensor([1.0, 2.0])) == "Tensor([1., 2.])"
    assert "dtype=float64" in repr(Tensor(np.zeros(2)))
    assert "requires_grad=True" in repr(Tensor([1.0], requires_grad=True))
    assert "grad_fn=<MulBackward>" in repr(Tensor([1.0], requires_grad=True) * 2)


def test_comparisons_give_bool_tensors_outside_the_graph():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result, expected in [
        (x > 1.5, [False, True, True]),
        (x >= 2.0, [False, True, True]),
        (x < Tensor([2.0, 2.0, 2.0]), [True, False, False]),
        (x <= 1.0, [True, False, False]),
        (x.eq(2.0), [False, True, False]),
        (x.ne(2.0), [True, False, True]),
    ]:
        assert result.dtype == np.bool_ and not result.requires_grad
        assert result.tolist() == expected


def test_ndarray_on_the_left_uses_tensor_ops():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = np.array([3.0, 4.0]) * x
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


# ---------------------------------------------------------------------------------- backward


def test_simple_backward_value():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [[2.0, 4.0], [6.0, 8.0]])


def test_iterative_backward_on_a_10000_op_chain():
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(500)  # the walk must not depend on the recursion limit
    try:
        y.backward()
    finally:
        sys.setrecursionlimit(limit)
    np.testing.assert_allclose(x.grad, 1.0001**10_000, rtol=1e-9)


def test_deep_chain_of_mixed_ops():
    x = Tensor(np.array([0.5, -0.25]), requires_grad=True)
    y = x
    for _ in range(3000):
        y = (y + 0.001).tanh() * 1.0
    y.sum().backward()
    assert np.isfinite(x.grad).all() and x.grad.shape == (2,)


def test_gradients_accumulate_across_backward_calls():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0 + 2.0, 3.0 + 4.0])
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_diamond_graph():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    a = x * 2.0
    b = a.exp()
    c = a * a
    (b + c + a).sum().backward()  # d/dx = 2 (e^{2x} + 2·2x + 1)
    np.testing.assert_allclose(x.grad, 2 * (np.exp(2 * x.data) + 4 * x.data + 1))


def test_same_tensor_used_twice_in_one_op():
    x = Tensor(np.array([1.5, -0.5]), requires_grad=True)
    (x * x + x / x + x - x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)


def test_diamond_gradcheck():
    x = Tensor(np.random.default_rng(0).normal(size=(3, 2)), requires_grad=True)

    def f(x):
        h = x.tanh()
        return h @ h.T @ x + h.sum(axis=0) * x[:, :1]

    assert gradcheck(f, [x])


def test_leaf_grads_are_independent_arrays():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()
    a.grad[0] = 100.0
    assert b.grad[0] == 1.0


def test_grad_of_broadcast_input_is_reduced_to_its_shape():
    a = Tensor(np.ones((3, 1)), requires_grad=True)
    b = Tensor(np.ones((1, 4)), requires_grad=True)
    (a + b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (1, 4)
    np.testing.assert_array_equal(a.grad, np.full((3, 1), 4.0))
    np.testing.assert_array_equal(b.grad, np.full((1, 4), 3.0))


def test_second_backward_without_retain_graph_raises_clear_runtime_error():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_backward_through_a_freed_subgraph_raises_clear_runtime_error():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * x
    h.sum().backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        (h * 2.0).sum().backward()


def test_retain_graph_allows_a_second_backward():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).exp().sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * first)


def test_backward_on_non_scalar_needs_gradient():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2.0
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    g = np.arange(6.0).reshape(2, 3)
    y.backward(gradient=g)
    np.testing.assert_array_equal(x.grad, 2 * g)


def test_backward_gradient_shape_must_match():
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2.0
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        y.backward(gradient=np.ones((3, 2)))


def test_backward_on_one_element_non_0d_tensor():
    x = Tensor(np.array([2.0]), requires_grad=True)
    (x * x).backward()
    np.testing.assert_array_equal(x.grad, [4.0])


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()


def test_leaves_without_requires_grad_get_no_grad():
    x = Tensor(np.ones(2), requires_grad=True)
    c = Tensor(np.ones(2))
    (x * c).sum().backward()
    assert c.grad is None and not c.requires_grad


def test_non_leaf_grads_are_not_kept_unless_retained():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3.0
    kept = x * 2.0
    kept.retain_grad()
    (h * kept).sum().backward()
    assert h.grad is None
    np.testing.assert_array_equal(kept.grad, h.data)
    assert not h.is_leaf and h.grad_fn is not None


def test_branch_that_does_not_reach_root_gets_nothing():
    x = Tensor(np.ones(2), requires_grad=True)
    unused = x * 5.0  # noqa: F841 - a branch not part of the loss
    (x * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


# ---------------------------------------------------------------------------------- grad mode


def test_no_grad_context():
    x = Tensor(np.ones(2), requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2.0 + x.exp()
    assert is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None


def test_no_grad_decorator():
    x = Tensor(np.ones(2), requires_grad=True)

    @no_grad()
    def evaluate(t):
        assert not is_grad_enabled()
        return (t * t).sum()

    out = evaluate(x)
    assert not out.requires_grad
    assert is_grad_enabled()
    assert evaluate.__name__ == "evaluate"


def test_no_grad_restores_mode_after_exception_and_nests():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0  # noqa: B018
    assert is_grad_enabled()
    x = Tensor(np.ones(2), requires_grad=True)
    with no_grad():
        with enable_grad():
            assert (x * 2.0).requires_grad
        with no_grad():
            pass
        assert not is_grad_enabled()
    assert is_grad_enabled()


def test_detach():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    d = (x * 2.0).detach()
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.data, [2.0, 4.0])
    (x * d).sum().backward()  # d is a constant here
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    assert x.detach().data is x.data  # shares memory, as torch.Tensor.detach


# ---------------------------------------------------------------------------------- errors


def test_broadcast_mismatch_names_shapes():
    for op in (lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b):
        with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
            op(Tensor(np.ones((2, 3))), Tensor(np.ones(4)))


def test_matmul_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5)))


def test_reshape_invalid_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*6 elements.*\(4, 2\)"):
        Tensor(np.ones((2, 3))).reshape(4, 2)


def test_linear_mismatch_names_expected_last_dim():
    w = Tensor(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"expected last dim 3.*\(2, 5\)"):
        F.linear(Tensor(np.ones((2, 5))), w)


def test_cross_entropy_target_out_of_range_reports_the_class():
    with pytest.raises(ValueError, match="class 7.*3 classes"):
        F.cross_entropy(Tensor(np.zeros((2, 3))), np.array([0, 7]))


# ---------------------------------------------------------------------------------- gradcheck


class _WrongSquareFunction(Function, op="wrong_square"):
    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, grad):
        return grad * self.x  # should be 2·x·grad


class _SumsUpstreamFunction(Function, op="sums_upstream"):
    """Right for an all-ones upstream gradient, wrong for any other: gradcheck must catch it."""

    def forward(self, x):
        return 2 * x

    def backward(self, grad):
        return np.full_like(grad, 2 * grad.mean())


def test_gradcheck_catches_a_wrong_backward():
    x = Tensor(np.random.default_rng(0).normal(size=(3,)), requires_grad=True)
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(lambda x: _WrongSquareFunction.apply(x), [x])
    assert gradcheck(lambda x: _WrongSquareFunction.apply(x), [x], raise_exception=False) is False


def test_gradcheck_uses_an_uneven_upstream_gradient():
    x = Tensor(np.random.default_rng(0).normal(size=(4,)), requires_grad=True)
    with pytest.raises(GradcheckError):
        gradcheck(lambda x: _SumsUpstreamFunction.apply(x), [x])


def test_gradcheck_refuses_float32_and_no_grad_inputs():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda x: x * 2, [Tensor([1.0], requires_grad=True)])
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(lambda x: x * 2, [Tensor(np.ones(2))])


# ---------------------------------------------------------------------------------- random


def test_manual_seed_gives_identical_randn():
    manual_seed(123)
    a = randn(4, 3).numpy().copy()
    r1 = rand(5).numpy().copy()
    manual_seed(123)
    b = randn(4, 3).numpy()
    r2 = rand(5).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(r1, r2)
    assert a.dtype == np.float32 and a.shape == (4, 3)
    manual_seed(124)
    assert not np.array_equal(randn(4, 3).numpy(), a)


def test_manual_seed_makes_dropout_repeatable():
    x = Tensor(np.ones((4, 5), np.float32))
    manual_seed(7)
    a = F.dropout(x, 0.5).numpy()
    manual_seed(7)
    b = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)


def test_randn_statistics_and_dtype():
    manual_seed(0)
    x = randn(20000, dtype=np.float64)
    assert x.dtype == np.float64
    assert abs(float(x.data.mean())) < 0.05 and abs(float(x.data.std()) - 1) < 0.05
    u = rand(20000).data
    assert u.min() >= 0 and u.max() < 1


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_manual_seed_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed"):
        manual_seed(bad)


def test_a_backward_of_the_wrong_shape_is_refused_not_reshaped():
    """A (5, 4) gradient for a (4, 5) input has the right size: reshaping it would train on
    transposed values without a word. Broadcast axes are still summed, size-1 axes still fit."""
    from tinytorch.core.autograd import Function

    class TransposedGradFunction(Function, op="transposed_grad"):
        def forward(self, x):
            return x * 2

        def backward(self, grad):
            return (grad * 2).T

    x = Tensor(np.ones((4, 5), np.float32), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"transposed_grad: backward returned a gradient of shape "
                                           r"\(5, 4\) for an input of shape \(4, 5\)"):
        TransposedGradFunction.apply(x).sum().backward()

    class ColumnGradFunction(Function, op="column_grad"):
        def forward(self, x):
            return x.copy()

        def backward(self, grad):
            return grad.reshape(-1)  # (3,) for a (3, 1) input: only a size-1 axis differs

    c = Tensor(np.ones((3, 1), np.float32), requires_grad=True)
    (ColumnGradFunction.apply(c) * Tensor(np.arange(3.0, dtype=np.float32).reshape(3, 1))).sum().backward()
    assert c.grad.shape == (3, 1) and c.grad.ravel().tolist() == [0.0, 1.0, 2.0]
    b = Tensor(np.ones((1, 5), np.float32), requires_grad=True)
    (b * Tensor(np.ones((4, 5), np.float32))).sum().backward()  # broadcast: summed over the 4 rows
    assert b.grad.tolist() == [[4.0] * 5]
