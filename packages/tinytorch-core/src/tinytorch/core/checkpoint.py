"""The training-checkpoint layout, defined once for every package.

A checkpoint is one safetensors file (written atomically by ``tinytorch.core.io``):

- tensors ``model.<name>``: the model's ``state_dict()`` (PyTorch names and layouts);
- tensors ``optimizer.state.<param index>.<buffer>``: the optimizer's per-parameter arrays;
- JSON metadata ``kind = "tinytorch.training_checkpoint"``, the loop position (``epoch``,
  ``global_step``, ``batch_in_epoch``), the ``history``, the optimizer's type, param groups and
  scalar state, the LR schedulers' states and the global RNG state. A domain package adds its
  own entries (a model config, a tokenizer) through ``extra_metadata``.

A file with only ``model.*`` tensors (``save_model_state``) holds weights for inference.

>>> import tempfile, pathlib
>>> from tinytorch.core import nn
>>> model = nn.Linear(2, 3)
>>> with tempfile.TemporaryDirectory() as tmp:
...     save_model_state(pathlib.Path(tmp) / "w.safetensors", model, {"note": "weights"})
...     state, meta = load_model_state(pathlib.Path(tmp) / "w.safetensors")
>>> sorted(state), meta["note"]
(['bias', 'weight'], 'weights')
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from . import io

TRAINING_KIND = "tinytorch.training_checkpoint"
MODEL_PREFIX = "model."
OPTIMIZER_PREFIX = "optimizer.state."


def model_tensors(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A model state dict under the checkpoint's ``model.`` prefix.

    Args:
        state: ``model.state_dict()``.

    >>> list(model_tensors({"weight": np.zeros(1)}))
    ['model.weight']
    """
    return {MODEL_PREFIX + k: v for k, v in state.items()}


def model_state(tensors: dict[str, np.ndarray], path: Any = "the checkpoint") -> dict[str, np.ndarray]:
    """The model state dict stored in a checkpoint's tensors (the ``model.`` prefix removed).

    Args:
        tensors: all tensors of a checkpoint file.
        path: the file, named in the error.

    Raises:
        ValueError: there are no ``model.*`` tensors.

    >>> model_state({"model.weight": np.zeros(1), "optimizer.state.0.m": np.zeros(1)})
    {'weight': array([0.])}
    """
    state = {k[len(MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    if not state:
        raise ValueError(f"{path} holds no model weights (no 'model.*' tensors)")
    return state


def check_finite_weights(model: Any, what: str = "model") -> None:
    """Raise ``FloatingPointError`` naming the first parameter or buffer that is not finite.

    Nothing non-finite is ever written to a checkpoint: a diverged run must not replace the last
    good file.

    Args:
        model: a ``Module``.
        what: how to call the model in the message.

    >>> from tinytorch.core import nn
    >>> check_finite_weights(nn.Linear(2, 2))
    """
    for name, array in model.state_dict().items():
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            bad = int(np.size(array) - np.isfinite(array).sum())
            raise FloatingPointError(f"{what} weight {name!r} has {bad} non-finite value(s)")


def save_model_state(path: str | os.PathLike, model: Any, metadata: dict[str, Any] | None = None) -> None:
    """Atomically write ``model``'s weights (``model.*`` tensors) and JSON ``metadata``.

    Args:
        path: the safetensors file.
        model: a ``Module``.
        metadata: JSON-serialisable entries to store beside the weights.

    Raises:
        FloatingPointError: a weight is not finite (nothing is written).

    >>> import tempfile, pathlib
    >>> from tinytorch.core import nn
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save_model_state(pathlib.Path(tmp) / "w.safetensors", nn.Linear(2, 2))
    ...     sorted(io.load(pathlib.Path(tmp) / "w.safetensors")[0])
    ['model.bias', 'model.weight']
    """
    check_finite_weights(model)
    io.save(model_tensors(model.state_dict()), path, metadata=to_json(metadata or {}))


def load_model_state(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(model state dict, metadata) of a file written by `save_model_state` or a Trainer.

    Args:
        path: the safetensors file.

    >>> import tempfile, pathlib
    >>> from tinytorch.core import nn
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save_model_state(pathlib.Path(tmp) / "w.safetensors", nn.Linear(2, 3), {"note": "x"})
    ...     state, meta = load_model_state(pathlib.Path(tmp) / "w.safetensors")
    >>> state["weight"].shape, meta["note"]
    ((3, 2), 'x')
    """
    tensors, metadata = io.load(path)
    return model_state(tensors, path), metadata


def training_payload(model: Any, optimizer: Any, schedulers: list[Any], position: dict[str, int],
                     history: dict[str, Any], rng_state: dict[str, Any],
                     extra_metadata: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The tensors and metadata of a training checkpoint (see the module docstring).

    Args:
        model: the model.
        optimizer: its optimizer (with ``state_dict()``).
        schedulers: LR schedulers whose ``state_dict()`` is stored, in order.
        position: ``epoch``, ``global_step``, ``batch_in_epoch``.
        history: ``History.to_dict()``.
        rng_state: the global RNG state.
        extra_metadata: a domain package's entries.

    >>> from tinytorch.core import nn, optim
    >>> model = nn.Linear(2, 2)
    >>> tensors, meta = training_payload(model, optim.SGD(model.parameters(), lr=0.1), [],
    ...                                  {"epoch": 0, "global_step": 0}, {}, {})
    >>> sorted(tensors), meta["kind"]
    (['model.bias', 'model.weight'], 'tinytorch.training_checkpoint')
    """
    tensors = model_tensors(model.state_dict())
    opt_state = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in opt_state["state"].items():
        for name, value in entries.items():
            if isinstance(value, np.ndarray):
                tensors[f"{OPTIMIZER_PREFIX}{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    metadata = {
        "kind": TRAINING_KIND,
        **{k: int(v) for k, v in position.items()},
        "history": history,
        "optimizer": {"type": type(optimizer).__name__, "param_groups": opt_state["param_groups"],
                      "scalars": scalars},
        "rng_state": rng_state,
        "schedulers": [s.state_dict() for s in schedulers],
        **(extra_metadata or {}),
    }
    return tensors, to_json(metadata)


def read_training_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    """(model state, optimizer state dict, metadata) of a training checkpoint, checked.

    Args:
        path: a file written by ``Trainer.save_checkpoint``.

    Raises:
        ValueError: the file is not a training checkpoint, or an entry is missing or has the
            wrong type; the message names the file and the entry.

    >>> import tempfile, pathlib
    >>> from tinytorch.core import Trainer, nn, optim
    >>> model = nn.Linear(2, 2)
    >>> trainer = Trainer(model, optim.Adam(model.parameters()), nn.MSELoss(), progress=False)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     trainer.save_checkpoint(pathlib.Path(tmp) / "c.safetensors")
    ...     state, opt_state, meta = read_training_checkpoint(pathlib.Path(tmp) / "c.safetensors")
    >>> sorted(state), meta["global_step"]
    (['bias', 'weight'], 0)
    """
    tensors, metadata = io.load(path)
    if metadata.get("kind") != TRAINING_KIND:
        raise ValueError(f"{path} is not a TinyTorch training checkpoint (metadata kind is "
                         f"{metadata.get('kind')!r}, expected {TRAINING_KIND!r})")
    for key in ("epoch", "global_step"):
        if io.require(metadata, key, int, path) < 0:
            raise ValueError(f"{path}: checkpoint metadata {key!r} must be >= 0, got {metadata[key]}")
    if io.require(metadata, "batch_in_epoch", int, path, default=0) < 0:
        raise ValueError(f"{path}: checkpoint metadata 'batch_in_epoch' must be >= 0")
    opt = io.require(metadata, "optimizer", dict, path)
    for key, kind in (("optimizer.type", str), ("optimizer.param_groups", list), ("optimizer.scalars", dict)):
        io.require(metadata, key, kind, path)
    for key, kind in (("rng_state", dict), ("schedulers", list), ("history", dict)):
        io.require(metadata, key, kind, path)
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(OPTIMIZER_PREFIX):
            index, _, name = key[len(OPTIMIZER_PREFIX):].partition(".")
            if not index.isdecimal() or not name:
                raise ValueError(f"{path}: malformed optimizer tensor name {key!r}")
            state.setdefault(int(index), {})[name] = value
    for index, scalars in opt["scalars"].items():
        if not str(index).isdecimal() or not isinstance(scalars, dict):
            raise ValueError(f"{path}: malformed optimizer scalar state for parameter {index!r}")
        state.setdefault(int(index), {}).update(scalars)
    return model_state(tensors, path), {"state": state, "param_groups": opt["param_groups"]}, metadata


def to_json(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays and tuples turned into JSON types (NaN kept as null).

    >>> to_json({"a": np.float32(0.5), "b": (1, 2), "c": float("nan")})
    {'a': 0.5, 'b': [1, 2], 'c': None}
    """
    def default(v: Any) -> Any:
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
        raise TypeError(f"cannot store {type(v).__name__} in checkpoint metadata")

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return clean(json.loads(json.dumps(value, default=default)))


__all__ = [
    "TRAINING_KIND", "model_tensors", "model_state", "check_finite_weights", "save_model_state",
    "load_model_state", "training_payload", "read_training_checkpoint", "to_json",
]
