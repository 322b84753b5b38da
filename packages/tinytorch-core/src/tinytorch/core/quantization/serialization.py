"""Checkpoints of quantized models: narrow tensors in safetensors, the scheme in the metadata.

:func:`save_quantized` writes a model's weights as a TinyTorch model file (``model.*`` tensors,
see :mod:`tinytorch.core.checkpoint`): int8 weights as ``I8``, packed int4 as ``U8``, scales as
``F32``/``F16``, everything else as it is. Which layer holds which scheme goes in the metadata
key :data:`QUANTIZATION_KEY`, versioned::

    {"version": 1,
     "layers": {"blocks.0.attn.qkv": {"scheme": "int8_weight_only", "in_features": 768,
                                      "out_features": 2304, "bias": true}, ...}}

:func:`load_quantized` puts those modules back into a float model of the same architecture
(built without initialising its weights, as ``TinyGPT(init_weights=False)``) from the file
alone: every scheme, config and tensor shape is checked against the header and the model before
any tensor is read, non-finite scales are refused, and the remaining float tensors are loaded
as usual. Tied weights (a quantized output head and its embedding) are stored once.

**The scheme registry.** A scheme name maps to the module class that stores it
(:func:`register_scheme`). A class registers with a class attribute ``scheme`` (its name in
files) and three methods:

- ``scheme_config(self) -> dict``: the JSON-able settings that, with the tensors, rebuild it;
- ``scheme_tensors(cls, config) -> {name: (shape, dtype name)}``: the tensors a config needs
  (as ``state_dict`` names them under the layer), raising ``ValueError`` for a bad config;
- ``from_scheme(cls, config, tensors) -> Module``: the module, from the loaded arrays;

and, optionally, ``check_target(cls, config, module)`` raising ``ValueError`` when the float
module it replaces has other sizes, and ``float_weight_elements(cls, config)`` (how many float
weights the layer stands for, for the summary; default: ``qweight``'s rows times ``in_features``).
The weight-only modules and the W8A8 `QuantizedLinear` (dynamic or static) are registered here;
vision's ``QuantizedConv2d`` registers the same way when ``tinytorch.vision`` is imported.

>>> import tempfile, pathlib
>>> from tinytorch.core import nn
>>> from tinytorch.core.quantization import quantize_, Int8WeightOnlyConfig
>>> model = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
>>> quantize_(model, Int8WeightOnlyConfig())
>>> path = pathlib.Path(tempfile.mkdtemp()) / "q.safetensors"
>>> save_quantized(path, model)
>>> fresh = load_quantized(nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4)), path)
>>> type(fresh[0]).__name__, bool((fresh[0].qweight.numpy() == model[0].qweight.numpy()).all())
('Int8WeightOnlyLinear', True)
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ..checkpoint import MODEL_PREFIX, check_finite_weights, model_state, model_tensors, to_json
from ..nn import Module
from .modules import QuantizedLinear
from .weight_only import (
    Int4WeightOnlyEmbedding,
    Int4WeightOnlyLinear,
    Int8WeightOnlyEmbedding,
    Int8WeightOnlyLinear,
    _replace,
)

QUANTIZATION_KEY = "tinytorch.quantization"
"""Metadata key of a quantized checkpoint: ``{"version": 1, "layers": {name: {"scheme": ...}}}``."""

SCHEME_VERSION = 1
"""Version of the layout under :data:`QUANTIZATION_KEY` that this TinyTorch writes and reads."""

_SCHEMES: dict[str, type] = {}
_PROTOCOL = ("scheme_config", "scheme_tensors", "from_scheme")


def register_scheme(cls: type) -> type:
    """Register a quantized module class under its ``scheme`` name (usable as a decorator).

    Args:
        cls: a class with a string ``scheme`` and the methods ``scheme_config``,
            ``scheme_tensors`` and ``from_scheme`` (see the module docstring).

    Returns:
        ``cls``.

    Raises:
        TypeError: ``cls`` lacks a part of the protocol.
        ValueError: another class already holds the name.

    >>> sorted(registered_schemes())[:2]
    ['int4_weight_only', 'int4_weight_only_embedding']
    """
    name = getattr(cls, "scheme", None)
    missing = [m for m in _PROTOCOL if not callable(getattr(cls, m, None))]
    if not isinstance(name, str) or not name or missing:
        raise TypeError(f"register_scheme: {getattr(cls, '__name__', cls)!r} needs a string 'scheme' and the methods "
                        f"{', '.join(_PROTOCOL)} (missing: {', '.join(missing) or 'scheme'})")
    held = _SCHEMES.get(name, cls)
    if held is not cls and held.__qualname__ != cls.__qualname__:  # the same class imported again may replace itself
        raise ValueError(f"register_scheme: scheme {name!r} is already registered by {_SCHEMES[name].__name__}")
    _SCHEMES[name] = cls
    return cls


def registered_schemes() -> dict[str, type]:
    """Scheme name -> module class, for every registered scheme (a copy).

    >>> registered_schemes()["int8_weight_only"].__name__
    'Int8WeightOnlyLinear'
    """
    return dict(_SCHEMES)


for _cls in (Int8WeightOnlyLinear, Int4WeightOnlyLinear, Int8WeightOnlyEmbedding, Int4WeightOnlyEmbedding,
             QuantizedLinear):
    register_scheme(_cls)


# ----------------------------------------------------------------------------- save and load


def quantized_layers(model: Module) -> dict[str, Module]:
    """The modules of ``model`` whose class is a registered scheme, by name.

    >>> from tinytorch.core import nn
    >>> from tinytorch.core.quantization import quantize_, Int8WeightOnlyConfig
    >>> model = nn.Sequential(nn.Linear(32, 8), nn.ReLU())
    >>> quantize_(model, Int8WeightOnlyConfig())
    >>> list(quantized_layers(model))
    ['0']
    """
    classes = tuple(_SCHEMES.values())
    return {fqn: m for fqn, m in model.named_modules() if fqn and isinstance(m, classes)}


def float_weight_elements(cls: type, config: dict) -> int:
    """How many float weights a layer of scheme class ``cls`` with ``config`` stands for: the
    class's ``float_weight_elements(config)``, by default ``qweight``'s rows times ``in_features``
    (or ``embedding_dim``).

    >>> cls = registered_schemes()["int8_weight_only"]
    >>> float_weight_elements(cls, {"in_features": 100, "out_features": 10, "bias": False})
    1000
    """
    counted = getattr(cls, "float_weight_elements", None)
    if counted is not None:
        return int(counted(config))
    rows = cls.scheme_tensors(config)["qweight"][0][0]
    return int(rows * config.get("in_features", config.get("embedding_dim")))


def quantized_weight_count(model: Module) -> int:
    """How many weights ``model`` holds quantized (int8, int4...): what its quantized layers'
    float weights were. ``model.parameters()`` leaves them out (the integers are buffers).

    >>> from tinytorch.core import nn
    >>> from tinytorch.core.quantization import quantize_, Int8WeightOnlyConfig
    >>> model = nn.Sequential(nn.Linear(32, 8), nn.ReLU())
    >>> quantize_(model, Int8WeightOnlyConfig())
    >>> quantized_weight_count(model), sum(p.size for p in model.parameters())  # 32 x 8 weights; the bias
    (256, 8)
    """
    return sum(float_weight_elements(type(m), m.scheme_config()) for m in quantized_layers(model).values())


def save_quantized(path: str | os.PathLike, model: Module, metadata: dict[str, Any] | None = None) -> None:
    """Write a quantized model's weights and its scheme (metadata :data:`QUANTIZATION_KEY`), atomically.

    Args:
        path: the safetensors file.
        model: a model holding registered quantized modules (after `quantize_`).
        metadata: more JSON entries to keep (a language model's config and tokenizer...).

    Raises:
        ValueError: the model holds no quantized module, or ``metadata`` sets the scheme key.
        FloatingPointError: a weight or scale is not finite (nothing is written).

    >>> import tempfile, pathlib
    >>> from tinytorch.core import nn
    >>> from tinytorch.core.quantization import quantize_, Int4WeightOnlyConfig
    >>> model = nn.Sequential(nn.Linear(64, 8))
    >>> quantize_(model, Int4WeightOnlyConfig())
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "int4.safetensors"
    >>> save_quantized(path, model)
    >>> [(t.name, t.dtype) for t in io.inspect(path).tensors]
    [('model.0.bias', 'float32'), ('model.0.qweight', 'uint8'), ('model.0.scales', 'float16')]
    """
    layers = quantized_layers(model)
    if not layers:
        raise ValueError("save_quantized: the model holds no quantized module; quantize it first (quantize_)")
    if metadata and QUANTIZATION_KEY in metadata:
        raise ValueError(f"save_quantized: metadata must not set {QUANTIZATION_KEY!r}; it is written from the model")
    check_finite_weights(model, "save_quantized: the model's")
    scheme = {"version": SCHEME_VERSION,
              "layers": {fqn: {"scheme": m.scheme, **m.scheme_config()} for fqn, m in layers.items()}}
    io.save(model_tensors(model.state_dict()), path, metadata=to_json({**(metadata or {}), QUANTIZATION_KEY: scheme}))


def _fail(path: Path, message: str) -> io.CheckpointError:
    return io.CheckpointError(f"{path}: {message}")


def read_scheme(path: Path, metadata: dict[str, Any]) -> dict[str, tuple[type, dict]]:
    """The quantized layers a file's metadata declares: name -> (class, config), all validated.

    Args:
        path: the file, named in errors.
        metadata: its metadata (`io.load_metadata`).

    Raises:
        CheckpointError: no scheme, another version, an unknown scheme name or a bad config;
            the message names the file and the layer.

    >>> spec = {QUANTIZATION_KEY: {"version": 1, "layers": {"head": {"scheme": "int8_weight_only",
    ...         "in_features": 4, "out_features": 2, "bias": False}}}}
    >>> read_scheme(Path("q.safetensors"), spec)["head"][0].__name__
    'Int8WeightOnlyLinear'
    """
    spec = metadata.get(QUANTIZATION_KEY)
    if spec is None:
        raise _fail(path, f"not a quantized checkpoint (no {QUANTIZATION_KEY!r} metadata)")
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), dict):
        raise _fail(path, f"corrupt {QUANTIZATION_KEY!r} metadata: expected an object with 'version' and 'layers', "
                          f"got {str(spec)[:80]!r}")
    if spec.get("version") != SCHEME_VERSION:
        raise _fail(path, f"{QUANTIZATION_KEY!r} has version {repr(spec.get('version'))[:20]}; this TinyTorch "
                          f"reads version {SCHEME_VERSION}")
    out: dict[str, tuple[type, dict]] = {}
    for fqn, config in spec["layers"].items():
        name = config.get("scheme") if isinstance(config, dict) else None
        cls = _SCHEMES.get(name) if isinstance(name, str) else None
        if cls is None:
            raise _fail(path, f"layer {fqn[:80]!r} has scheme {str(name)[:40]!r}, which is not one of the "
                              f"registered schemes {sorted(_SCHEMES)}")
        try:
            cls.scheme_tensors(config)
        except (ValueError, TypeError) as e:
            raise _fail(path, f"layer {fqn[:80]!r} ({name}): {e}") from None
        out[fqn] = (cls, config)
    return out


def load_quantized(model: Module, path: str | os.PathLike) -> Module:
    """Put the quantized modules a file declares into ``model``, and load all its weights.

    ``model`` has the float architecture the file was quantized from; build it without
    initialising its weights when it is large (``TinyGPT(..., init_weights=False)``): its float
    arrays at quantized places are never touched, so they never take memory.

    Args:
        model: the float model, changed in place.
        path: a file written by `save_quantized`.

    Returns:
        ``model``, in eval mode.

    Raises:
        tinytorch.core.io.CheckpointError: the file is not a quantized checkpoint, declares a
            scheme that is unknown or malformed, a layer the model does not have (or has with
            other sizes), tensors of other shapes or dtypes than its scheme needs, or
            non-finite scales; or the float tensors do not match the model. Everything but the
            last two is checked from the header, before a tensor is read.

    >>> import tempfile, pathlib
    >>> from tinytorch.core import nn
    >>> from tinytorch.core.quantization import quantize_, Int8WeightOnlyConfig
    >>> model = nn.Sequential(nn.Linear(32, 4))
    >>> quantize_(model, Int8WeightOnlyConfig())
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "int8.safetensors"
    >>> save_quantized(path, model)
    >>> with nn.init.no_init():  # the float weights are replaced: never initialise them
    ...     skeleton = nn.Sequential(nn.Linear(32, 4))
    >>> type(load_quantized(skeleton, path)[0]).__name__
    'Int8WeightOnlyLinear'
    """
    path = Path(path)
    info = io.inspect(path)
    spec = read_scheme(path, info.metadata)
    header = {t.name: t for t in info.tensors}
    header.update({alias: header[stored] for alias, stored in info.aliases.items()})
    modules = dict(model.named_modules())
    for fqn, (cls, config) in spec.items():
        if fqn not in modules or not fqn:
            raise _fail(path, f"the file quantizes layer {fqn[:80]!r}, which the model ({type(model).__name__}) "
                              "does not have")
        check = getattr(cls, "check_target", None)
        try:
            if check is not None:
                check(config, modules[fqn])
        except ValueError as e:
            raise _fail(path, f"layer {fqn!r} ({cls.scheme}): {e}") from None
        for name, (shape, dtype) in cls.scheme_tensors(config).items():
            key = f"{MODEL_PREFIX}{fqn}.{name}"
            stored = header.get(key)
            if stored is None:
                raise _fail(path, f"layer {fqn!r} ({cls.scheme}) needs tensor {key!r}, which the file does not hold")
            if tuple(stored.shape) != tuple(shape) or stored.dtype != dtype:
                raise _fail(path, f"tensor {key!r} is {stored.dtype} {tuple(stored.shape)}; scheme {cls.scheme} "
                                  f"with the file's config needs {dtype} {tuple(shape)}")
    tensors, _ = io.load(path)
    state = model_state(tensors, path)
    for fqn, (cls, config) in spec.items():
        arrays = {name: state[f"{fqn}.{name}"] for name in cls.scheme_tensors(config)}
        for name, array in arrays.items():
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise _fail(path, f"tensor {MODEL_PREFIX}{fqn}.{name!s} holds "
                                  f"{int(array.size - np.isfinite(array).sum())} non-finite values")
        try:
            _replace(model, fqn, cls.from_scheme(config, arrays))
        except ValueError as e:
            raise _fail(path, f"layer {fqn!r} ({cls.scheme}): {e}") from None
    try:
        model.load_state_dict(state)
    except ValueError as e:
        raise _fail(path, f"the weights do not match the model: {e}") from None
    return model.eval()


def quantization_summary(info: io.CheckpointInfo) -> dict[str, Any] | None:
    """What is quantized in a checkpoint, from its header (`io.inspect`): per scheme, the layers and bytes.

    Returns None for a file without :data:`QUANTIZATION_KEY`. ``bytes`` counts the stored
    tensors of the quantized layers; tied ones (an output head and its embedding) are counted
    once, under the layer whose name stores them. ``float32_bytes`` is what the same weights
    take in float32.

    Args:
        info: the checkpoint's `io.inspect` result.

    Raises:
        CheckpointError: the scheme metadata is malformed.

    >>> import tempfile, pathlib
    >>> from tinytorch.core import nn
    >>> from tinytorch.core.quantization import quantize_, Int8WeightOnlyConfig
    >>> model = nn.Sequential(nn.Linear(100, 10, bias=False))
    >>> quantize_(model, Int8WeightOnlyConfig())
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "int8.safetensors"
    >>> save_quantized(path, model)
    >>> summary = quantization_summary(io.inspect(path))
    >>> summary["bytes"], summary["float32_bytes"]  # 1,000 int8 weights and 10 float32 scales
    (1040, 4000)
    """
    if QUANTIZATION_KEY not in info.metadata:
        return None
    spec = read_scheme(Path(info.path), info.metadata)
    sizes = {t.name: t.nbytes for t in info.tensors}  # stored tensors only: an alias has no bytes of its own
    schemes: dict[str, dict[str, Any]] = {}
    for fqn, (cls, config) in spec.items():
        entry = schemes.setdefault(cls.scheme, {"layers": [], "bytes": 0, "float32_bytes": 0})
        entry["layers"].append(fqn)
        names = [f"{MODEL_PREFIX}{fqn}.{name}" for name in cls.scheme_tensors(config)]
        stored = [sizes[n] for n in names if n in sizes]
        entry["bytes"] += sum(stored)
        if stored:  # tied copies add no float32 bytes either
            shapes = cls.scheme_tensors(config)
            entry["float32_bytes"] += 4 * float_weight_elements(cls, config) + sum(
                4 * math.prod(s) for n, (s, _) in shapes.items() if n == "bias")
    return {"version": SCHEME_VERSION, "schemes": schemes,
            "layers": sum(len(e["layers"]) for e in schemes.values()),
            "bytes": sum(e["bytes"] for e in schemes.values()),
            "float32_bytes": sum(e["float32_bytes"] for e in schemes.values())}


def summary_lines(info: io.CheckpointInfo, limit: int = 6) -> list[str]:
    """The lines ``tito core summary`` adds for a quantized checkpoint (nothing for another file).

    Args:
        info: the checkpoint's `io.inspect` result.
        limit: layer names shown per scheme.

    >>> import tempfile, pathlib
    >>> from tinytorch.core import nn
    >>> from tinytorch.core.quantization import quantize_, Int8WeightOnlyConfig
    >>> model = nn.Sequential(nn.Linear(100, 10, bias=False))
    >>> quantize_(model, Int8WeightOnlyConfig())
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "int8.safetensors"
    >>> save_quantized(path, model)
    >>> print("\\n".join(summary_lines(io.inspect(path))))
    quantized: 1 layer, 1,040 bytes (their weights in float32: 4,000 bytes)
      int8_weight_only: 1 layer, 1,040 bytes: 0
    """
    summary = quantization_summary(info)
    if summary is None:
        return []
    def layers(n: int) -> str:
        return f"{n} layer{'s' * (n != 1)}"

    def size(n: int) -> str:
        return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n:,} bytes"

    lines = [f"quantized: {layers(summary['layers'])}, {size(summary['bytes'])} "
             f"(their weights in float32: {size(summary['float32_bytes'])})"]
    for scheme, entry in summary["schemes"].items():
        names = entry["layers"]
        shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
        lines.append(f"  {scheme}: {layers(len(names))}, {size(entry['bytes'])}: {shown}")
    return lines


__all__ = ["QUANTIZATION_KEY", "SCHEME_VERSION", "register_scheme", "registered_schemes", "save_quantized",
           "load_quantized", "read_scheme", "quantization_summary", "quantized_layers", "summary_lines",
           "float_weight_elements", "quantized_weight_count"]
