"""Which float layer becomes which quantized layer: one table, filled by the packages that own the layers.

Core registers ``nn.Linear``; vision registers its ``Conv2d`` when it is imported
(``tinytorch.vision.quantized``), so ``prepare``/``convert``/``quantize_dynamic`` quantize
convolutions without core knowing vision exists. A quantized class builds itself from the float
layer with ``from_float(layer, weight_observer=None, input_observer=None)`` (as torch.ao's
``from_float``): ``input_observer`` None means dynamic quantization (activation qparams from each
batch at run time), a calibrated observer means static.
"""

from __future__ import annotations

from typing import Any

from ..nn.layers import Linear
from ..nn.module import Module

_QUANTIZED: dict[type, type] = {}


def register_quantized_module(float_cls: type, quantized_cls: type) -> None:
    """Map ``float_cls`` to ``quantized_cls`` (which must have a ``from_float`` classmethod).

    Registering the same pair again is a no-op; a different class for an already registered
    float class replaces it (the last registration wins, as a plugin override).

    Args:
        float_cls: a Module subclass (e.g. ``nn.Linear``).
        quantized_cls: its quantized counterpart.

    >>> from tinytorch.core import nn
    >>> get_quantized_module_class(nn.Linear).__name__
    'QuantizedLinear'
    """
    for name, cls in (("float_cls", float_cls), ("quantized_cls", quantized_cls)):
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            raise TypeError(f"register_quantized_module: {name} must be a Module subclass, got {cls!r}")
    if not callable(getattr(quantized_cls, "from_float", None)):
        raise TypeError(f"register_quantized_module: {quantized_cls.__name__} has no from_float classmethod")
    _QUANTIZED[float_cls] = quantized_cls


def get_quantized_module_class(float_cls: type) -> type | None:
    """The quantized class registered for ``float_cls`` (exactly that class, as torch.ao's
    mappings: a subclass with its own forward is not assumed to compute the same thing), or None.

    Args:
        float_cls: a Module subclass.

    >>> from tinytorch.core import nn
    >>> get_quantized_module_class(nn.ReLU) is None
    True
    """
    return _QUANTIZED.get(float_cls)


def quantized_module_mappings() -> dict[type, type]:
    """A copy of the whole table: float class -> quantized class.

    >>> from tinytorch.core import nn
    >>> quantized_module_mappings()[nn.Linear].__name__
    'QuantizedLinear'
    """
    return dict(_QUANTIZED)


def check_linear_target(config: dict, module: Any) -> None:
    """ValueError unless ``module`` is the float Linear a stored config quantized (sizes from the
    config's ``in_features``/``out_features``): the ``check_target`` of every quantized Linear.

    >>> from tinytorch.core import nn
    >>> check_linear_target({"in_features": 4, "out_features": 2}, nn.Linear(4, 3))
    Traceback (most recent call last):
        ...
    ValueError: the model's Linear is 4 -> 3, the file's 4 -> 2
    """
    if not isinstance(module, Linear):
        raise ValueError(f"the model has a {type(module).__name__} there, not a Linear")
    if (module.in_features, module.out_features) != (config["in_features"], config["out_features"]):
        raise ValueError(f"the model's Linear is {module.in_features} -> {module.out_features}, the file's "
                         f"{config['in_features']} -> {config['out_features']}")


__all__ = ["check_linear_target", "register_quantized_module", "get_quantized_module_class", "quantized_module_mappings"]
