"""The model-level workflows of ``torch.ao.quantization``: ``quantize_dynamic``, static
post-training quantization (``prepare`` → calibrate → ``convert``) and quantization-aware training
(``prepare_qat`` → train → ``convert``).

Which layers are quantized, and into what, comes from the registry (``nn.Linear`` from core,
``Conv2d`` from vision). ``prepare`` wraps each such layer in an `ObservedModule` that watches
its input; calibration is running real batches through the model in eval mode; ``convert``
replaces each wrapper by the quantized layer built from the float layer and the observer's range.

>>> import numpy as np
>>> from tinytorch.core import Tensor, nn
>>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
>>> prepared = prepare(model)
>>> for _ in range(4):                                   # calibration batches
...     _ = prepared(Tensor(np.random.default_rng(0).normal(size=(32, 8)).astype(np.float32)))
>>> quantized = convert(prepared)
>>> [type(m).__name__ for m in quantized]
['QuantizedLinear', 'ReLU', 'QuantizedLinear']
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import NamedTuple

from ..nn.module import Module
from ..tensor import Tensor
from .fake_quantize import FakeQuantize
from .functional import check_qdtype
from .observers import MinMaxObserver, MovingAverageMinMaxObserver, PerChannelMinMaxObserver
from .registry import get_quantized_module_class, quantized_module_mappings


class QConfig(NamedTuple):
    """How to observe a layer's input (``activation``) and its ``weight``: two zero-argument
    factories (an observer or FakeQuantize class, or ``X.with_args(...)``), as torch.ao's QConfig.

    >>> default_qconfig.activation().dtype, default_qconfig.weight().qscheme
    ('uint8', 'per_channel_symmetric')
    """

    activation: Callable[[], Module]
    weight: Callable[[], Module]


_weight_observer = PerChannelMinMaxObserver.with_args(ch_axis=0, dtype="int8", qscheme="per_channel_symmetric")

default_qconfig = QConfig(activation=MinMaxObserver.with_args(dtype="uint8"), weight=_weight_observer)
default_qat_qconfig = QConfig(
    activation=FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, dtype="uint8"),
    weight=FakeQuantize.with_args(observer=PerChannelMinMaxObserver, ch_axis=0, dtype="int8",
                                  qscheme="per_channel_symmetric"),
)


class ObservedModule(Module):
    """A float layer with its input observed (``prepare``) or fake-quantized, weight included
    (``prepare_qat``).

    ``input_observer`` is an observer (returns its input; calibration only records ranges) or a
    `FakeQuantize` (QAT: rounds the input). With ``weight_fake_quant`` the layer runs with its
    weight replaced, for the call, by the fake-quantized weight: a graph node over the real
    Parameter, so the optimizer updates the float weight through the straight-through estimator.
    The weight's observer is reset every call, so the grid always fits the current weight.

    Args:
        layer: the float layer (a registered class).
        input_observer: observer or FakeQuantize of the input.
        weight_fake_quant: FakeQuantize of the weight, or None.

    >>> from tinytorch.core import nn
    >>> prepare(nn.Sequential(nn.Linear(2, 2)))[0]
    ObservedModule(
      (layer): Linear(in_features=2, out_features=2, bias=True)
      (input_observer): MinMaxObserver(dtype=uint8, qscheme=per_tensor_affine, min_val=inf, max_val=-inf)
    )
    """

    def __init__(self, layer: Module, input_observer: Module, weight_fake_quant: FakeQuantize | None = None):
        super().__init__()
        self.layer = layer
        self.input_observer = input_observer
        self.weight_fake_quant = weight_fake_quant

    def forward(self, x: Tensor) -> Tensor:
        x = self.input_observer(x)
        if self.weight_fake_quant is None:
            return self.layer(x)
        weight = self.layer._parameters["weight"]
        if self.weight_fake_quant.observer_enabled:
            self.weight_fake_quant.activation_post_process.reset_min_max_vals()
        self.layer._parameters["weight"] = self.weight_fake_quant(weight)
        try:
            return self.layer(x)
        finally:
            self.layer._parameters["weight"] = weight

    def observers(self) -> tuple[Module, Module | None]:
        """(the input's observer, the weight's observer or None), unwrapping FakeQuantize."""
        def unwrap(m):
            return m.activation_post_process if isinstance(m, FakeQuantize) else m
        wfq = self.weight_fake_quant
        return unwrap(self.input_observer), None if wfq is None else unwrap(wfq)


def _replace(model: Module, inplace: bool, make: Callable[[Module], Module | None], owner: str) -> Module:
    """Copy ``model`` (unless ``inplace``) and swap every child for which ``make`` returns a module.
    A swapped child's own children are not visited."""
    if not isinstance(model, Module):
        raise TypeError(f"{owner}: model must be a Module, got {type(model).__name__}")
    model = model if inplace else copy.deepcopy(model)
    root = make(model)
    if root is not None:
        return root
    count = 0
    stack = [model]
    while stack:
        parent = stack.pop()
        for name, child in list(parent.named_children()):
            new = make(child)
            if new is None:
                stack.append(child)
            else:
                parent._modules[name] = new  # in place: setattr would move it to the end of the order
                count += 1
    if count == 0:
        raise ValueError(f"{owner}: the model has no layer to quantize (registered: "
                         f"{', '.join(_registered_names())})")
    return model


def _registered_names() -> list[str]:
    return sorted(f"{c.__module__}.{c.__qualname__}" for c in quantized_module_mappings())


def _quantizable(module: Module) -> bool:
    return get_quantized_module_class(type(module)) is not None


def prepare(model: Module, qconfig: QConfig | None = None, inplace: bool = False) -> Module:
    """Wrap every quantizable layer in an `ObservedModule` that records its input's range.

    Then run calibration batches through the model in eval mode (a few hundred real images is
    plenty) and call `convert`.

    Args:
        model: a float model.
        qconfig: observers to use (default `default_qconfig`: uint8 min-max activations, int8
            per-channel symmetric weights).
        inplace: change ``model`` itself instead of a copy.

    Returns:
        The prepared model.

    >>> from tinytorch.core import nn
    >>> prepared = prepare(nn.Sequential(nn.Linear(3, 3), nn.ReLU()))
    >>> _ = prepared(Tensor([[-1.0, 0.0, 2.0]]))            # one calibration batch
    >>> obs = prepared[0].input_observer
    >>> float(obs.min_val.data), float(obs.max_val.data)
    (-1.0, 2.0)
    """
    qconfig = qconfig or default_qconfig

    def make(m):
        return ObservedModule(m, qconfig.activation()) if _quantizable(m) else None

    return _replace(model, inplace, make, "prepare")


def prepare_qat(model: Module, qconfig: QConfig | None = None, inplace: bool = False) -> Module:
    """Wrap every quantizable layer so training sees int8 rounding of its input and weight.

    Train the result as usual (its Parameters are the float model's), then `convert`.

    Args:
        model: a float model (it is put in training mode).
        qconfig: FakeQuantize factories (default `default_qat_qconfig`).
        inplace: change ``model`` itself instead of a copy.

    Returns:
        The model ready for quantization-aware training.

    >>> from tinytorch.core import nn
    >>> qat = prepare_qat(nn.Sequential(nn.Linear(3, 2)))
    >>> y = qat(Tensor([[0.5, -1.0, 2.0]]))
    >>> y.sum().backward()                                  # gradients reach the float weight
    >>> qat[0].layer.weight.grad.shape
    (2, 3)
    """
    qconfig = qconfig or default_qat_qconfig

    def make(m):
        return ObservedModule(m, qconfig.activation(), qconfig.weight()) if _quantizable(m) else None

    return _replace(model, inplace, make, "prepare_qat").train()


def convert(model: Module, inplace: bool = False) -> Module:
    """Replace every `ObservedModule` by its quantized layer (int8 weights, static int8 input
    qparams from the observer). The result is for inference and is put in eval mode.

    Args:
        model: a model from `prepare` (calibrated) or `prepare_qat` (trained).
        inplace: change ``model`` itself instead of a copy.

    Returns:
        The quantized model.

    Raises:
        ValueError: the model has no prepared layers.
        RuntimeError: a layer's input was never observed (no calibration batch ran).

    >>> from tinytorch.core import nn
    >>> prepared = prepare(nn.Sequential(nn.Linear(3, 3)))
    >>> _ = prepared(Tensor([[-1.0, 0.0, 2.0]]))
    >>> convert(prepared)[0]
    QuantizedLinear(in_features=3, out_features=3, int8 weights, static, input scale=0.01176)
    """
    def make(m):
        if not isinstance(m, ObservedModule):
            return None
        input_obs, weight_obs = m.observers()
        return get_quantized_module_class(type(m.layer)).from_float(m.layer, weight_obs, input_obs)

    if not any(isinstance(m, ObservedModule) for m in model.modules()):
        raise ValueError("convert: the model has no prepared layers; call prepare(model) or prepare_qat(model) first")
    return _replace(model, inplace, make, "convert").eval()


def quantize_dynamic(model: Module, qconfig_spec: Iterable[type] | None = None, dtype="int8",
                     inplace: bool = False) -> Module:
    """Quantize the weights of the given layer classes to int8 now and their inputs per batch at
    run time, as ``torch.ao.quantization.quantize_dynamic``.

    Args:
        model: a float model.
        qconfig_spec: the layer classes to quantize (default: every registered class).
        dtype: ``"int8"`` (``np.int8``), the only dynamic dtype.
        inplace: change ``model`` itself instead of a copy.

    Returns:
        The quantized model, in eval mode.

    >>> from tinytorch.core import nn
    >>> model = quantize_dynamic(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), {nn.Linear})
    >>> type(model[0]).__name__
    'QuantizedLinear'
    """
    if check_qdtype("quantize_dynamic", dtype) != "int8":
        raise ValueError(f"quantize_dynamic: dtype must be int8, got {dtype!r}")
    classes = set(quantized_module_mappings()) if qconfig_spec is None else set(qconfig_spec)
    for cls in classes:
        if get_quantized_module_class(cls) is None:
            raise ValueError(f"quantize_dynamic: qconfig_spec names {getattr(cls, '__name__', cls)!r}, which has no "
                             f"quantized layer (registered: {', '.join(_registered_names())})")

    def make(m):
        return get_quantized_module_class(type(m)).from_float(m) if type(m) in classes else None

    return _replace(model, inplace, make, "quantize_dynamic").eval()


__all__ = ["QConfig", "default_qconfig", "default_qat_qconfig", "ObservedModule", "prepare", "prepare_qat",
           "convert", "quantize_dynamic"]

