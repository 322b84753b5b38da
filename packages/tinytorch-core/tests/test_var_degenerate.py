"""var/std when the reduction has no degrees of freedom left (N <= correction): as PyTorch.

PyTorch divides by max(N - correction, 0), so the forward is inf (or nan for a constant slice)
and the backward is 2·(x - mean)/0·grad: ±inf where x differs from the mean, nan where it equals
it (0 · inf). Before issue 13 the backward raised ZeroDivisionError.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.core import Tensor
from tinytorch.core.gradcheck import gradcheck

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def test_var_of_one_element_has_a_nan_gradient():
    x = Tensor(np.array([2.0]), requires_grad=True)
    y = x.var()
    assert np.isnan(y.data)
    y.backward()
    assert x.grad.shape == (1,) and np.isnan(x.grad).all()


def test_var_with_correction_equal_to_n_gives_infinite_gradients_like_pytorch():
    x = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    y = x.var(axis=1, correction=2)
    np.testing.assert_array_equal(y.data, [np.inf, np.inf])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [[-np.inf, np.inf], [-np.inf, np.inf]])  # torch's values


def test_std_with_no_degrees_of_freedom_has_nan_gradients_like_pytorch():
    x = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    x.std(axis=1, correction=3).sum().backward()
    assert np.isnan(x.grad).all()


def test_float32_stays_float32_in_the_degenerate_case():
    x = Tensor(np.array([1.0, 5.0], dtype=np.float32), requires_grad=True)
    x.var(correction=2).backward()
    assert x.grad.dtype == np.float32 and np.isinf(x.grad).all()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 6), correction=st.integers(0, 1), seed=st.integers(0, 10_000))
def test_var_gradcheck_when_degrees_of_freedom_remain(n, correction, seed):
    x = Tensor(np.random.default_rng(seed).normal(size=(3, n)), requires_grad=True)
    assert gradcheck(lambda t: t.var(axis=1, correction=correction), [x], seed=seed)
