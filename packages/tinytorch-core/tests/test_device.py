"""CPU only: PyTorch's device calls work for the CPU and fail with one clear message otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import Tensor, gradcheck, nn

CPU_ONLY = r"^TinyTorch runs on the CPU only \(NumPy\); got device '{}'"


@pytest.mark.parametrize("call, shown", [
    (lambda t: t.to("cuda"), "cuda"),
    (lambda t: t.to("cuda:1"), "cuda:1"),
    (lambda t: t.to(device="mps"), "mps"),
    (lambda t: t.to("cuda", "float64"), "cuda"),
    (lambda t: t.cuda(), "cuda"),
    (lambda t: t.cuda(0), "cuda:0"),
])
def test_tensor_and_module_refuse_gpus(call, shown):
    with pytest.raises(RuntimeError, match=CPU_ONLY.format(shown)):
        call(Tensor([1.0]))
    with pytest.raises(RuntimeError, match=CPU_ONLY.format(shown)):
        call(nn.Linear(2, 3))


def test_cpu_is_a_no_op():
    x = Tensor([1.0, 2.0], requires_grad=True)
    assert x.to("cpu") is x and x.cpu() is x and x.to(device="cpu:0") is x
    assert x.device == "cpu"
    model = nn.Linear(2, 3)
    weight = model.weight.data
    assert model.to("cpu") is model and model.cpu() is model
    assert model.weight.data is weight  # nothing copied


def test_to_dtype_casts_tensors_differentiably_and_modules_in_place():
    x = Tensor(np.arange(3.0, dtype=np.float32), requires_grad=True)
    y = x.to("cpu", np.float64)
    assert y.dtype == np.float64 and x.to(np.float32) is x
    assert Tensor([1.0]).to(y).dtype == np.float64  # .to(other) takes other's dtype
    (y * y).sum().backward()  # the gradient flows back through the cast, in x's dtype
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [0.0, 2.0, 4.0]
    assert gradcheck(lambda t: (t.to(dtype="float64") * t).sum(),
                     [Tensor(np.random.default_rng(0).standard_normal(4), requires_grad=True)])
    model = nn.Linear(2, 3).to(dtype="float64")
    assert model.weight.dtype == np.float64 and model.bias.dtype == np.float64


def test_to_rejects_what_is_neither_device_nor_dtype():
    with pytest.raises(TypeError, match=r"Tensor.to: expected a dtype or a device, got 'gpu'"):
        Tensor([1.0]).to("gpu")
    with pytest.raises(TypeError, match=r"Linear.to: expected a device and/or a dtype"):
        nn.Linear(2, 2).to("float32", "float64")
