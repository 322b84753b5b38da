"""`summary(model, input_size)`: a torchinfo-style table of layers, output shapes and parameters.

It runs one real forward pass (in eval mode, without recording a graph) under a
`ModuleTracker`, so the shapes are the ones the model actually produces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor
from .module import Module
from .tracker import ModuleTracker


@dataclass
class LayerRow:
    """One row of a ``ModelSummary``: a module's name, type, depth, output shape and parameters."""
    name: str
    kind: str
    depth: int
    output_shape: tuple | None
    params: int  # parameters owned by this module and its descendants
    own_params: int  # parameters registered directly on this module
    has_children: bool
    output_bytes: int


@dataclass
class ModelSummary:
    """What ``summary`` measured; ``print(s)`` shows the torchinfo-style table.

    Attributes:
        model_name: the model's class name.
        rows: one ``LayerRow`` per module (depth-first).
        input_shapes: the shapes of the inputs fed.
        total_params: every parameter element, shared ones counted once.
        trainable_params: those with ``requires_grad``.
        param_bytes: bytes of the parameters.

    >>> from tinytorch.core import nn
    >>> s = summary(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), (2, 4))
    >>> s.total_params, s.rows[1].output_shape
    (40, (2, 8))
    """
    model_name: str
    rows: list[LayerRow]
    input_shapes: list[tuple]
    input_bytes: int
    total_params: int
    trainable_params: int
    param_bytes: int
    depth: int = 3
    extra: dict = field(default_factory=dict)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def forward_backward_bytes(self) -> int:
        """Activations kept for backward and their gradients: 2 x the bytes of every layer output."""
        return 2 * sum(r.output_bytes for r in self.rows if not r.has_children)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "layers": [
                {
                    "name": r.name,
                    "type": r.kind,
                    "depth": r.depth,
                    "output_shape": list(r.output_shape) if r.output_shape is not None else None,
                    "params": r.params,
                }
                for r in self.rows
            ],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "input_size_mb": self.input_bytes / 1e6,
            "forward_backward_pass_size_mb": self.forward_backward_bytes / 1e6,
            "params_size_mb": self.param_bytes / 1e6,
        }

    def table_rows(self) -> list[tuple[str, str, str]]:
        """(layer, output shape, param #) strings for the rows within ``depth``."""
        out = []
        counters: dict[int, int] = {}
        for r in self.rows:
            if r.depth > self.depth:
                continue
            counters[r.depth] = counters.get(r.depth, 0) + 1
            for d in list(counters):
                if d > r.depth:
                    del counters[d]
            label = "    " * (r.depth - 1) + f"{r.kind}: {r.depth}-{counters[r.depth]}"
            shape = str(list(r.output_shape)) if r.output_shape is not None else "--"
            shows_children = r.has_children and r.depth < self.depth
            if shows_children:
                count = f"{r.own_params:,}" if r.own_params else "--"
            else:
                count = f"{r.params:,}" if r.params else "--"
            out.append((label, shape, count))
        return out

    def __str__(self) -> str:
        rows = self.table_rows()
        header = ("Layer (type:depth-idx)", "Output Shape", "Param #")
        widths = [max(len(header[i]), *(len(r[i]) for r in rows)) + 2 for i in range(3)]
        width = sum(widths)
        line = "=" * width

        def fmt(r):
            return r[0].ljust(widths[0]) + r[1].ljust(widths[1]) + r[2].rjust(widths[2] - 2)

        mb = 1e6
        total = self.input_bytes + self.forward_backward_bytes + self.param_bytes
        parts = [line, fmt(header), line, fmt((self.model_name, "--", "--"))]
        parts += [fmt(r) for r in rows]
        parts += [
            line,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            line,
            f"Input size (MB): {self.input_bytes / mb:.2f}",
            f"Forward/backward pass size (MB): {self.forward_backward_bytes / mb:.2f}",
            f"Params size (MB): {self.param_bytes / mb:.2f}",
            f"Estimated Total Size (MB): {total / mb:.2f}",
            line,
        ]
        return "\n".join(parts)

    __repr__ = __str__


def _first_shape(output: Any) -> tuple | None:
    if isinstance(output, Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return tuple(output[0].shape)
    return None


def _output_bytes(output: Any) -> int:
    if isinstance(output, Tensor):
        return output.data.nbytes
    if isinstance(output, (tuple, list)):
        return sum(_output_bytes(o) for o in output)
    return 0


def summary(
    model: Module,
    input_size: Sequence[int] | Sequence[Sequence[int]] | None = None,
    input_data: Any = None,
    dtypes: Sequence[Any] | None = None,
    depth: int = 3,
) -> ModelSummary:
    """Summarise ``model`` like ``torchinfo.summary``.

    Args:
        model: the module to run.
        input_size: shape of the input *including the batch dimension*, e.g. (1, 3, 32, 32), or
            a list of shapes for several inputs.
        input_data: real inputs instead of zeros (Tensors or arrays; a tuple for several).
        dtypes: the dtype of each generated input (default float32; token ids need int64).
        depth: how many levels of nested modules to show.

    Returns:
        a ``ModelSummary``; ``print(summary(...))`` shows the table.

    >>> from tinytorch.core import nn
    >>> s = summary(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), (1, 4))
    >>> s.total_params
    58
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be a Module, got {type(model).__name__}")
    if input_data is None:
        if input_size is None:
            raise ValueError("summary: give input_size (including the batch dimension) or input_data")
        sizes = list(input_size)
        shapes = [tuple(s) for s in sizes] if sizes and not isinstance(sizes[0], (int, np.integer)) else [tuple(sizes)]
        for s in shapes:
            if not s or any(not isinstance(n, (int, np.integer)) or n <= 0 for n in s):
                raise ValueError(f"summary: input_size must be positive integers, got {s}")
        dtypes = list(dtypes) if dtypes is not None else [np.float32] * len(shapes)
        inputs = [Tensor(np.zeros(s, dtype=dt)) for s, dt in zip(shapes, dtypes)]
    else:
        raw = input_data if isinstance(input_data, (tuple, list)) else (input_data,)
        inputs = [x if isinstance(x, Tensor) else Tensor(np.asarray(x)) for x in raw]
    input_bytes = sum(x.data.nbytes for x in inputs)

    # One real forward with every submodule tracked; calls are in entry order (pre-order).
    was_training = model.training
    try:
        model.eval()
        with no_grad(), ModuleTracker(model, include_root=False) as tracker:
            model(*inputs)
    finally:
        model.train(was_training)
    rows = [
        LayerRow(
            name=call.name,
            kind=type(call.module).__name__,
            depth=call.name.count(".") + 1,
            output_shape=_first_shape(call.output),
            params=sum(p.size for p in call.module.parameters()),
            own_params=sum(p.size for p in call.module.parameters(recurse=False)),
            has_children=bool(call.module._modules),
            output_bytes=_output_bytes(call.output),
        )
        for call in tracker.calls
    ]

    params = list(model.parameters())
    return ModelSummary(
        model_name=type(model).__name__,
        rows=rows,
        input_shapes=[tuple(x.shape) for x in inputs],
        input_bytes=input_bytes,
        total_params=sum(p.size for p in params),
        trainable_params=sum(p.size for p in params if p.requires_grad),
        param_bytes=sum(p.data.nbytes for p in params) + sum(b.data.nbytes for b in model.buffers()),
        depth=depth,
    )
