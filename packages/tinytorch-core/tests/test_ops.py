"""Every differentiable op of tinytorch.core: float64 gradient checks and forward values.

``gradcheck`` draws a random, uneven upstream gradient, so a backward that sums where it should
not (or forgets to undo broadcasting) fails here. Inputs stay small (a few dozen elements).
"""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import Tensor, cat, gradcheck, ops, stack, where
from tinytorch.core import functional as F
from tinytorch.core.testing import make_tensor


def _t(*shape, seed=0, positive=False, away_from_zero=False, requires_grad=True) -> Tensor:
    """A float64 test tensor; ``positive`` for log/sqrt/pow, ``away_from_zero`` for kinks."""
    return make_tensor(*shape, seed=seed, positive=positive, away_from_zero=away_from_zero,
                       requires_grad=requires_grad)


# ---------------------------------------------------------------------------------- binary

BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 1), (1, 4)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 3, 4)),
    ((2, 1, 4), (3, 1)),
    ((2, 3), ()),
    ((), (2, 3)),
    ((), ()),
]


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize(
    "op",
    [
        pytest.param(lambda a, b: a + b, id="add"),
        pytest.param(lambda a, b: a - b, id="sub"),
        pytest.param(lambda a, b: a * b, id="mul"),
        pytest.param(lambda a, b: a / b, id="div"),
    ],
)
def test_binary_gradcheck(op, shapes):
    a = _t(*shapes[0], seed=1, away_from_zero=True)
    b = _t(*shapes[1], seed=2, away_from_zero=True)
    assert gradcheck(op, [a, b])
    expected = op(a.data, b.data)
    np.testing.assert_allclose(op(a, b).data, expected)
    assert op(a, b).shape == np.shape(expected)


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(lambda a, b: a + b, id="add"),
        pytest.param(lambda a, b: a * b, id="mul"),
        pytest.param(lambda a, b: a / b, id="div"),
    ],
)
def test_binary_only_one_side_requires_grad(op):
    a = _t(3, 4, seed=1, away_from_zero=True)
    b = _t(4, seed=2, away_from_zero=True, requires_grad=False)
    assert gradcheck(op, [a, b])
    assert gradcheck(op, [b, a])
    assert b.grad is None


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(lambda x: x + 2.0, id="add-scalar"),
        pytest.param(lambda x: 2.0 + x, id="radd"),
        pytest.param(lambda x: x - 0.5, id="sub-scalar"),
        pytest.param(lambda x: 1.5 - x, id="rsub"),
        pytest.param(lambda x: x * 3, id="mul-int"),
        pytest.param(lambda x: np.float64(-2.0) * x, id="rmul-np"),
        pytest.param(lambda x: x / 4.0, id="div-scalar"),
        pytest.param(lambda x: 1.0 / x, id="rdiv"),
        pytest.param(lambda x: np.arange(4.0) + x, id="ndarray-radd"),
        pytest.param(lambda x: -x, id="neg"),
    ],
)
def test_scalar_operand_gradcheck(op):
    assert gradcheck(op, [_t(3, 4, away_from_zero=True)])


def test_zero_dim_tensors_broadcast_against_everything():
    s = _t(seed=3, away_from_zero=True)
    x = _t(2, 3, seed=4)
    assert s.shape == ()
    assert gradcheck(lambda s, x: s * x + s / (x * x + 1) - x * s * s, [s, x])


# ---------------------------------------------------------------------------------- pow


@pytest.mark.parametrize("p", [2, 2.0, 3, 0.5, -1.5, np.float64(1.7), 0.0, 1.0])
def test_pow_scalar_gradcheck(p):
    x = _t(3, 4, positive=True)
    assert gradcheck(lambda x: x**p, [x])
    np.testing.assert_allclose((x**p).data, x.data**p)


def test_pow_scalar_integer_exponent_negative_base():
    x = _t(3, 4, away_from_zero=True)
    assert gradcheck(lambda x: x**3, [x])
    assert gradcheck(lambda x: x**2, [x])


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3), ())], ids=str)
def test_pow_tensor_exponent_gradcheck(shapes):
    a = _t(*shapes[0], seed=1, positive=True)
    b = _t(*shapes[1], seed=2)
    assert gradcheck(lambda a, b: a**b, [a, b])
    np.testing.assert_allclose((a**b).data, a.data**b.data)


def test_rpow_gradcheck():
    x = _t(3, 4)
    assert gradcheck(lambda x: 2.0**x, [x])
    np.testing.assert_allclose((2.0**x).data, 2.0**x.data)


def test_pow_exponent_only_requires_grad():
    a = _t(3, 4, positive=True, requires_grad=False)
    b = _t(3, 4, seed=2)
    assert gradcheck(lambda b: a**b, [b])


# ---------------------------------------------------------------------------------- matmul

MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((3, 4), (2, 4, 5)),
    ((2, 3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((4,), (2, 4, 3)),
    ((2, 3, 4), (4,)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_gradcheck(shapes):
    a = _t(*shapes[0], seed=1)
    b = _t(*shapes[1], seed=2)
    out = a @ b
    expected = a.data @ b.data
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.data, expected)
    assert gradcheck(lambda a, b: a @ b, [a, b])


def test_matmul_one_side_and_with_ndarray():
    a = _t(3, 4, seed=1)
    w = np.random.default_rng(5).normal(size=(4, 2))
    assert gradcheck(lambda a: a @ w, [a])
    assert gradcheck(lambda a: w.T @ a.T, [a])


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        Tensor(np.zeros((3, 4))) @ Tensor(np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        Tensor(np.zeros(4)) @ Tensor(np.zeros(3))
    with pytest.raises(ValueError, match="matmul"):
        Tensor(np.zeros(())) @ Tensor(np.zeros(3))


# ---------------------------------------------------------------------------------- unary


@pytest.mark.parametrize(
    "name, fn, reference, kwargs",
    [
        ("exp", lambda x: x.exp(), np.exp, {}),
        ("log", lambda x: x.log(), np.log, {"positive": True}),
        ("sqrt", lambda x: x.sqrt(), np.sqrt, {"positive": True}),
        ("tanh", lambda x: x.tanh(), np.tanh, {}),
        ("sigmoid", lambda x: x.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), {}),
        ("relu", lambda x: x.relu(), lambda a: np.maximum(a, 0), {"away_from_zero": True}),
        ("abs", lambda x: x.abs(), np.abs, {"away_from_zero": True}),
        ("neg", lambda x: -x, np.negative, {}),
    ],
)
def test_unary_gradcheck_and_values(name, fn, reference, kwargs):
    x = _t(3, 4, **kwargs)
    assert gradcheck(fn, [x]), name
    np.testing.assert_allclose(fn(x).data, reference(x.data), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_gradcheck(approximate):
    x = Tensor(np.linspace(-3, 3, 20).reshape(4, 5) + 0.013, requires_grad=True)
    assert gradcheck(lambda x: x.gelu(approximate=approximate), [x])
    assert gradcheck(lambda x: F.gelu(x, approximate=approximate), [x])


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        _t(3).gelu(approximate="fast")


@pytest.mark.parametrize(
    "kwargs", [{"min": -0.5}, {"max": 0.4}, {"min": -0.5, "max": 0.4}], ids=str
)
def test_clamp_gradcheck(kwargs):
    # keep values away from the bounds, where the derivative jumps
    x = Tensor(np.array([[-1.3, -0.7, -0.2, 0.1], [0.3, 0.6, 1.1, -0.45]]), requires_grad=True)
    assert gradcheck(lambda x: x.clamp(**kwargs), [x])
    np.testing.assert_allclose(x.clamp(**kwargs).data, np.clip(x.data, kwargs.get("min"),
                                                               kwargs.get("max")))
    assert x.clip(**kwargs).shape == x.shape


def test_clamp_passes_gradient_only_inside():
    x = Tensor(np.array([-2.0, 0.0, 2.0]), requires_grad=True)
    x.clamp(-1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0])


def test_relu_gradient_is_zero_for_negative_inputs():
    x = Tensor(np.array([-1.0, 2.0, -3.0]), requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_drops_a_non_finite_gradient_where_the_input_is_not_positive(dtype):
    # As torch.relu: the gradient is 0 where x <= 0 even when upstream is nan or inf there.
    x = Tensor(np.array([-1.0, 0.0, 2.0, 3.0], dtype=dtype), requires_grad=True)
    upstream = np.array([np.nan, np.inf, 5.0, np.nan], dtype=dtype)
    x.relu().backward(upstream)
    assert x.grad.dtype == dtype
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 5.0, np.nan])


def test_sigmoid_is_stable_for_large_inputs():
    x = Tensor(np.array([-1000.0, 0.0, 1000.0]), requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = x.sigmoid()
        y.sum().backward()
    np.testing.assert_allclose(y.data, [0.0, 0.5, 1.0])
    assert np.isfinite(x.grad).all()


def test_astype_gradcheck_and_grad_dtype():
    x = _t(3, 4)
    assert gradcheck(lambda x: x.astype(np.float64) * 2, [x])
    # A float32 detour: the gradient comes back in the leaf's dtype.
    x.grad = None
    x32 = x.astype(np.float32)
    assert x32.dtype == np.float32
    w = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    (x32 * Tensor(w)).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad, w, rtol=1e-6)
    assert x.float().dtype == np.float32 and x.float().double().dtype == np.float64


# ---------------------------------------------------------------------------------- reductions

AXES = [None, 0, 1, -1, (0, 2), (2, 0), (0, 1, 2), ()]
# Variance over no axes divides by zero (N - 1 = 0), so var/std skip axis=().
REDUCTIONS = [
    (name, axis)
    for name in ("sum", "mean", "max", "min", "var", "std")
    for axis in AXES
    if not (name in ("var", "std") and axis == ())
]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("name, axis", REDUCTIONS, ids=[f"{n}-{a}" for n, a in REDUCTIONS])
def test_reduction_gradcheck_and_values(name, axis, keepdims):
    x = _t(2, 3, 4, seed=7)
    fn = lambda x: getattr(x, name)(axis=axis, keepdims=keepdims)  # noqa: E731
    extra = {"ddof": 1} if name in ("var", "std") else {}
    expected = getattr(np, name)(x.data, axis=axis, keepdims=keepdims, **extra)
    out = fn(x)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    assert gradcheck(fn, [x])


@pytest.mark.parametrize("correction", [0, 1, 2])
def test_var_correction(correction):
    x = _t(3, 5, seed=8)
    np.testing.assert_allclose(x.var(axis=1, correction=correction).data,
                               np.var(x.data, axis=1, ddof=correction))
    assert gradcheck(lambda x: x.var(axis=1, correction=correction), [x])
    assert gradcheck(lambda x: x.std(axis=0, correction=correction), [x])


def test_reductions_of_zero_dim_tensor():
    x = _t(seed=9)
    for name in ("sum", "mean", "max", "min"):
        assert gradcheck(lambda x, name=name: getattr(x, name)(), [x])


def test_max_ties_share_the_gradient():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


def test_argmax_argmin():
    x = Tensor(np.array([[1.0, 5.0, 3.0], [7.0, 2.0, 2.5]]))
    np.testing.assert_array_equal(x.argmax(axis=1).data, [1, 0])
    np.testing.assert_array_equal(x.argmin(axis=0).data, [0, 1, 1])
    assert x.argmax().item() == 3


def test_reduction_axis_out_of_range():
    with pytest.raises(ValueError, match="axis 3"):
        _t(2, 3).sum(axis=3)


# ---------------------------------------------------------------------------------- shape


@pytest.mark.parametrize(
    "name, fn, expected_shape",
    [
        ("reshape", lambda x: x.reshape(4, 6), (4, 6)),
        ("reshape-tuple", lambda x: x.reshape((3, -1)), (3, 8)),
        ("view", lambda x: x.view(-1), (24,)),
        ("permute", lambda x: x.permute(2, 0, 1), (4, 2, 3)),
        ("permute-list", lambda x: x.permute([1, 2, 0]), (3, 4, 2)),
        ("permute-negative", lambda x: x.permute(-1, 0, 1), (4, 2, 3)),
        ("transpose", lambda x: x.transpose(0, 2), (4, 3, 2)),
        ("transpose-default", lambda x: x.transpose(), (2, 4, 3)),
        ("T", lambda x: x.T, (4, 3, 2)),
        ("unsqueeze0", lambda x: x.unsqueeze(0), (1, 2, 3, 4)),
        ("unsqueeze-1", lambda x: x.unsqueeze(-1), (2, 3, 4, 1)),
        ("unsqueeze1", lambda x: x.unsqueeze(1), (2, 1, 3, 4)),
        ("flatten", lambda x: x.flatten(), (24,)),
        ("flatten1", lambda x: x.flatten(1), (2, 12)),
        ("flatten0-1", lambda x: x.flatten(0, 1), (6, 4)),
        ("expand", lambda x: x[:, :1, :].expand(2, 5, 4), (2, 5, 4)),
        ("expand-leading", lambda x: x.expand(3, 2, 3, 4), (3, 2, 3, 4)),
        ("expand-minus-one", lambda x: x[:1].expand((4, -1, -1)), (4, 3, 4)),
    ],
)
def test_shape_op_gradcheck(name, fn, expected_shape):
    x = _t(2, 3, 4, seed=11)
    assert fn(x).shape == expected_shape, name
    assert gradcheck(fn, [x]), name


def test_shape_values_match_numpy():
    x = _t(2, 3, 4, seed=11)
    np.testing.assert_array_equal(x.permute(2, 0, 1).data, np.transpose(x.data, (2, 0, 1)))
    np.testing.assert_array_equal(x.T.data, x.data.T)
    np.testing.assert_array_equal(x.transpose(0, 1).data, np.swapaxes(x.data, 0, 1))
    np.testing.assert_array_equal(x.reshape(6, 4).data, x.data.reshape(6, 4))
    v = _t(3, 1)
    np.testing.assert_array_equal(v.expand(2, 3, 5).data, np.broadcast_to(v.data, (2, 3, 5)))


@pytest.mark.parametrize(
    "fn, expected_shape",
    [
        (lambda x: x.squeeze(), (3, 4)),
        (lambda x: x.squeeze(0), (3, 1, 4)),
        (lambda x: x.squeeze(2), (1, 3, 4)),
        (lambda x: x.squeeze(-2), (1, 3, 4)),
        (lambda x: x.squeeze(1), (1, 3, 1, 4)),  # not size 1: unchanged
    ],
)
def test_squeeze_gradcheck(fn, expected_shape):
    x = _t(1, 3, 1, 4, seed=12)
    assert fn(x).shape == expected_shape
    assert gradcheck(fn, [x])


def test_reshape_invalid_names_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        _t(2, 3).reshape(4, 2)


def test_permute_invalid():
    with pytest.raises(ValueError, match="permut"):
        _t(2, 3).permute(0, 0)


# ---------------------------------------------------------------------------------- getitem

REPEATED_ROWS = np.array([1, 1, 3, 1])
MASK_2D = np.array([[True, False, True, False, True], [False, False, True, True, False],
                    [True, True, True, False, False], [False, False, False, False, True]])

GETITEM_CASES = [
    ("int", lambda x: x[1]),
    ("negative-int", lambda x: x[-1]),
    ("int-int", lambda x: x[2, -2]),
    ("slice", lambda x: x[1:3]),
    ("slice-2d", lambda x: x[1:, :-2]),
    ("negative-step", lambda x: x[::-1]),
    ("negative-steps-2d", lambda x: x[::-2, 3:0:-2]),
    ("none", lambda x: x[None]),
    ("none-middle", lambda x: x[:, None, 1:3]),
    ("ellipsis", lambda x: x[..., 0]),
    ("ellipsis-none", lambda x: x[1, ..., None]),
    ("int-array-repeated", lambda x: x[REPEATED_ROWS]),
    ("list-repeated", lambda x: x[[0, 0, 2]]),
    ("int-array-2d-repeated", lambda x: x[np.array([[0, 1], [1, 1]])]),
    ("columns-repeated", lambda x: x[:, [0, 2, 2, 0]]),
    ("pairs-repeated", lambda x: x[[0, 0, 2, 0], [1, 1, 3, 1]]),
    ("slice-and-array", lambda x: x[1:, [4, 4]]),
    ("negative-array", lambda x: x[np.array([-1, -1, 0])]),
    ("tensor-index", lambda x: x[Tensor(np.array([3, 3, 0]))]),
    ("bool-mask-full", lambda x: x[MASK_2D]),
    ("bool-mask-rows", lambda x: x[np.array([True, False, True, True])]),
    ("bool-mask-tensor", lambda x: x[Tensor(MASK_2D)]),
    ("bool-mask-columns", lambda x: x[:, np.array([False, True, True, False, True])]),
]


@pytest.mark.parametrize("name, fn", GETITEM_CASES, ids=[c[0] for c in GETITEM_CASES])
def test_getitem_gradcheck(name, fn):
    x = _t(4, 5, seed=13)
    expected = fn(_NumpyProxy(x.data))
    out = fn(x)
    assert out.shape == expected.shape, name
    np.testing.assert_array_equal(out.data, expected)
    assert gradcheck(fn, [x]), name


class _NumpyProxy:
    """Applies a test's index to the plain array (Tensors inside the index become arrays)."""

    def __init__(self, array):
        self.array = array

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.data
        return self.array[index]


def test_getitem_repeated_indices_accumulate():
    x = Tensor(np.zeros(4), requires_grad=True)
    x[np.array([1, 1, 1, 3])].sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 3, 0, 1])


def test_getitem_3d_mixed():
    x = _t(3, 4, 2, seed=14)
    assert gradcheck(lambda x: x[[2, 0, 2], :, 1], [x])
    assert gradcheck(lambda x: x[..., [1, 1]], [x])
    assert gradcheck(lambda x: x[1:, [0, 3, 3]], [x])


def test_getitem_out_of_range_names_shape():
    with pytest.raises(IndexError, match=r"\(4, 5\)"):
        _t(4, 5)[7]


# ---------------------------------------------------------------------------------- joining


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_gradcheck(axis):
    shapes = {0: [(2, 3), (1, 3), (3, 3)], 1: [(2, 1), (2, 3), (2, 2)], -1: [(2, 2), (2, 1)]}
    tensors = [_t(*s, seed=i) for i, s in enumerate(shapes[axis])]
    out = cat(tensors, axis=axis)
    np.testing.assert_array_equal(out.data, np.concatenate([t.data for t in tensors], axis=axis))
    assert gradcheck(lambda *ts: cat(list(ts), axis=axis), tensors)
    assert gradcheck(lambda *ts: F.concat(list(ts), axis=axis), tensors)


def test_concat_with_constant_input():
    a, b = _t(2, 3, seed=1), _t(2, 3, seed=2, requires_grad=False)
    assert gradcheck(lambda a: cat([b, a, b], axis=0), [a])


def test_concat_shape_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        cat([_t(2, 3), _t(2, 4)], axis=0)
    with pytest.raises(ValueError, match="non-empty"):
        cat([])


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack_gradcheck(axis):
    tensors = [_t(2, 3, seed=i) for i in range(3)]
    out = stack(tensors, axis=axis)
    np.testing.assert_array_equal(out.data, np.stack([t.data for t in tensors], axis=axis))
    assert gradcheck(lambda *ts: stack(list(ts), axis=axis), tensors)


def test_stack_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        stack([_t(2, 3), _t(3, 2)])


@pytest.mark.parametrize(
    "sections, axis, sizes",
    [(2, 0, [2, 2, 1]), ([1, 4], 0, [1, 4]), (3, 1, [3, 1]), ([2, 0, 2], -1, [2, 0, 2])],
)
def test_split_function_gradcheck(sections, axis, sizes):
    x = _t(5, 4, seed=15)
    pieces = ops.split(x, sections, axis=axis)
    assert [p.shape[axis] for p in pieces] == sizes
    np.testing.assert_array_equal(cat(pieces, axis=axis).data, x.data)
    # Use the pieces unevenly, so each one's gradient is checked.
    assert gradcheck(lambda x: tuple(ops.split(x, sections, axis=axis)), [x])


def test_split_errors():
    with pytest.raises(ValueError, match="add up"):
        ops.split(_t(5, 4), [2, 2])
    with pytest.raises(ValueError, match="positive"):
        ops.split(_t(5, 4), 0)


def test_tensor_split_method_gradcheck():
    x = _t(5, 4, seed=15)
    assert [p.shape for p in x.split(2)] == [(2, 4), (2, 4), (1, 4)]
    assert [p.shape for p in x.split([1, 3], axis=1)] == [(5, 1), (5, 3)]
    assert gradcheck(lambda x: tuple(x.split(2)), [x])


def test_tensor_chunk_method_gradcheck():
    x = _t(5, 4, seed=15)
    assert [p.shape for p in x.chunk(3)] == [(2, 4), (2, 4), (1, 4)]
    assert [p.shape for p in x.chunk(2, axis=1)] == [(5, 2), (5, 2)]
    assert gradcheck(lambda x: tuple(x.chunk(2, axis=1)), [x])


# ---------------------------------------------------------------------------------- where & mask


def test_where_gradcheck_with_broadcasting():
    cond = np.random.default_rng(16).random((3, 4)) > 0.5
    a, b = _t(3, 1, seed=1), _t(1, 4, seed=2)
    out = where(cond, a, b)
    np.testing.assert_array_equal(out.data, np.where(cond, a.data, b.data))
    assert gradcheck(lambda a, b: where(cond, a, b), [a, b])
    assert gradcheck(lambda a, b: where(Tensor(cond), a, b), [a, b])


def test_where_with_scalar_branch():
    cond = np.array([[True, False, True], [False, True, False]])
    x = _t(2, 3, seed=3)
    assert gradcheck(lambda x: where(cond, x, 0.0), [x])
    assert gradcheck(lambda x: where(cond, -1.0, x), [x])
    assert where(cond, x, 0.0).dtype == np.float64


@pytest.mark.parametrize("mask_shape", [(3, 4), (1, 4), (3, 1)], ids=str)
def test_masked_fill_gradcheck(mask_shape):
    mask = np.random.default_rng(17).random(mask_shape) > 0.5
    x = _t(3, 4, seed=18)
    out = x.masked_fill(mask, 5.0)
    np.testing.assert_array_equal(out.data, np.where(mask, 5.0, x.data))
    assert gradcheck(lambda x: x.masked_fill(mask, 5.0), [x])
    assert gradcheck(lambda x: x.masked_fill(Tensor(mask), -2.0), [x])


def test_masked_fill_minus_inf_then_softmax_gradcheck():
    causal = np.triu(np.ones((4, 4), dtype=bool), k=1)
    x = _t(2, 4, 4, seed=19)
    probs = F.softmax(x.masked_fill(causal, float("-inf")), axis=-1)
    np.testing.assert_array_equal(probs.data[:, causal], 0.0)
    np.testing.assert_allclose(probs.data.sum(-1), 1.0)
    assert gradcheck(lambda x: F.softmax(x.masked_fill(causal, float("-inf")), axis=-1), [x])


# ---------------------------------------------------------------------------------- composites


def test_composite_expression_gradcheck():
    a, b, c = _t(3, 4, seed=1), _t(4, 2, seed=2), _t(2, seed=3)

    def f(a, b, c):
        h = (a @ b + c).tanh()
        return (h * h).sum(axis=1) / (1.0 + h.abs().mean()) + h.max(axis=0, keepdims=True).T

    assert gradcheck(f, [a, b, c])


def test_gradcheck_random_direction_mode():
    x = _t(6, 7, seed=20)
    assert gradcheck(lambda x: (x * x).sum(axis=0).sqrt(), [x], max_elements=10, directions=4)
