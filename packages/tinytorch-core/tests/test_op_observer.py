"""Op observers: what Function.apply and backward report, and that unobserved ops pay nothing."""

from __future__ import annotations

import numpy as np

from tinytorch.core import Tensor, register_op_observer
from tinytorch.core import functional as F
from tinytorch.core.autograd import _SETTINGS_KEY


def test_forward_and_backward_carry_the_op_settings():
    seen = []

    def observer(phase, fn, inputs, output, seconds, settings):
        seen.append((phase, fn.op, dict(settings), seconds >= 0))

    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    with register_op_observer(observer):
        y = x.gelu(approximate="tanh").sum(axis=1, keepdims=True)
        y.backward(np.array([[0.5], [-2.0]]))
    assert seen == [
        ("forward", "gelu", {"approximate": "tanh"}, True),
        ("forward", "sum", {"axis": 1, "keepdims": True}, True),
        ("backward", "sum", {"axis": 1, "keepdims": True}, True),
        ("backward", "gelu", {"approximate": "tanh"}, True),
    ]


def test_layer_norm_reports_its_normalized_ndim():
    seen = []
    with register_op_observer(lambda phase, fn, i, o, s, settings: seen.append((fn.op, settings))):
        F.layer_norm(Tensor(np.ones((2, 3, 4), np.float32)), (3, 4))
    (op, settings), = seen
    assert op == "layer_norm" and settings["normalized_ndim"] == 2


def test_unobserved_ops_store_nothing_and_observed_settings_are_freed_by_backward():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x.sum(axis=0)
    assert _SETTINGS_KEY not in y._ctx.__dict__  # no observer: nothing kept
    with register_op_observer(lambda *args: None):
        z = x.sum(axis=0)
        ctx = z._ctx
        assert ctx.__dict__[_SETTINGS_KEY] == {"axis": 0, "keepdims": False}
        z.backward()
    assert _SETTINGS_KEY not in ctx.__dict__  # freed with the saved arrays


def test_observer_registered_after_forward_gets_empty_settings():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x.sum(axis=0)
    seen = []
    with register_op_observer(lambda phase, fn, i, o, s, settings: seen.append((phase, settings))):
        y.backward()
    assert seen == [("backward", {})]
