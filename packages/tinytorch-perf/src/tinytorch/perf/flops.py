"""The FLOP tracer: run a model and count every op it executes, per module.

Convention: **1 multiply-add = 2 FLOPs**; matmul/conv FLOPs are reported apart from elementwise
FLOPs (see ``tinytorch.perf.flop_formulas``, which holds every formula). ``FLOPsCounter.trace``
observes each op through core's op observer, counts it with ``FLOP_FORMULAS[fn.op]`` and gives
the count to the innermost module running; ``FLOPsCounter.analyze`` is that per-module view of
the forward pass, so there is one count of every layer, whichever method asks.

The closed forms and the op table are importable from here too (``flops.linear_flops``,
``flops.FLOP_FORMULAS``, ...), as they were before the formulas had a module of their own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .flop_formulas import (  # noqa: F401  (re-exported: the formulas' former home)
    CONVENTION,
    ELEMENTWISE_COST,
    FLOP_FORMULAS,
    MOVEMENT_OPS,
    REDUCTION_COST,
    OpCount,
    OpFormula,
    activation_flops,
    adaptive_avg_pool2d_flops,
    attention_flops,
    batchnorm2d_flops,
    conv2d_flops,
    conv2d_output_size,
    count_backward_op,
    count_forward_op,
    cross_entropy_flops,
    embedding_flops,
    groupnorm_flops,
    layernorm_flops,
    linear_flops,
    matmul_flops,
    pool2d_flops,
    reduction_flops,
    register_flop_formula,
    rmsnorm_flops,
    sdpa_flops,
    softmax_flops,
)

__all__ = ["FLOPsCounter", "TraceResult", "LayerCount"]


@dataclass
class LayerCount:
    """What one module executed (ops attributed to the innermost module that ran them).

    Attributes:
        name: the module's dotted name in the model (``"0"``, ``"blocks.1.attn"``).
        type: its class name.
        forward: the ops it ran in the forward pass.
        backward: the ops of its backward pass (when traced with ``backward=True``).
        ops: executed op counts by Function name.
        output_shape: shape of its output; ``output_bytes`` its size.
        params: parameters registered directly on it.

    >>> from tinytorch.core import nn, randn
    >>> layer = FLOPsCounter().trace(nn.Sequential(nn.Linear(8, 4)), randn(2, 8)).layers["0"]
    >>> layer.type, layer.forward.matmul_flops, layer.params
    ('Linear', 128, 36)
    """

    name: str
    type: str
    forward: OpCount = field(default_factory=OpCount)
    backward: OpCount = field(default_factory=OpCount)
    ops: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    output_shape: tuple[int, ...] | None = None
    output_bytes: int = 0
    saved_bytes: int = 0
    params: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "forward": self.forward.to_dict(),
                "backward": self.backward.to_dict(), "ops": dict(self.ops),
                "output_shape": list(self.output_shape) if self.output_shape else None,
                "output_bytes": self.output_bytes, "saved_bytes": self.saved_bytes,
                "params": self.params}


@dataclass
class TraceResult:
    """Per-layer and total counts of one traced forward (and optionally backward).

    Attributes:
        layers: name -> ``LayerCount``, in module order.
        forward: total of the forward pass; ``backward`` of the backward pass; ``total`` both.
        unknown_ops: Functions the tracer has no formula for (counted as data movement), by name.

    >>> from tinytorch.core import nn, randn
    >>> trace = FLOPsCounter().trace(nn.Linear(8, 4), randn(2, 8), backward=True)
    >>> trace.forward.matmul_flops, trace.backward.matmul_flops   # the input needs no gradient: dW only
    (128, 128)
    """

    layers: dict[str, LayerCount]
    forward: OpCount
    backward: OpCount
    unknown_ops: dict[str, int]

    @property
    def total(self) -> OpCount:
        return self.forward + self.backward

    def _repr_html_(self) -> str:
        """One row per layer (forward and backward FLOPs, bytes, intensity) and the totals (Jupyter)."""
        from tinytorch.core.viz import html_table

        def row(name: str, kind: str, fwd: OpCount, bwd: OpCount) -> tuple[str, ...]:
            return (name, kind, f"{fwd.matmul_flops:,}", f"{fwd.elementwise_flops:,}", f"{bwd.flops:,}",
                    f"{fwd.bytes:,}", f"{fwd.intensity:.2f}")

        rows = [row(lc.name, lc.type, lc.forward, lc.backward) for lc in self.layers.values()]
        rows.append(row("total", "", self.forward, self.backward))
        return html_table(("layer", "type", "fwd matmul FLOPs", "fwd elementwise FLOPs", "bwd FLOPs",
                           "fwd bytes", "FLOP/byte"), rows, CONVENTION, right=range(2, 7))

    def to_dict(self) -> dict[str, Any]:
        return {"convention": CONVENTION, "forward": self.forward.to_dict(),
                "backward": self.backward.to_dict(),
                "layers": [lc.to_dict() for lc in self.layers.values()],
                "unknown_ops": self.unknown_ops}


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _saved_bytes(fn: Any, inputs: tuple) -> int:
    """Bytes of arrays a Function kept for backward that are not (views of) its inputs."""
    seen = {id(_root(a)) for a in inputs if isinstance(a, np.ndarray)}
    total = 0
    for v in getattr(fn, "__dict__", {}).values():
        values = v if isinstance(v, tuple) else (v,)
        for a in values:
            if isinstance(a, np.ndarray) and id(_root(a)) not in seen:
                seen.add(id(_root(a)))
                total += a.nbytes
    return total


ROOT = "(model)"  # the label of the model itself (ops outside every submodule)


def _label(name: str) -> str:
    return name or ROOT


def _shape_of(x: Any) -> tuple[int, ...] | None:
    if hasattr(x, "shape"):
        return tuple(x.shape)
    if isinstance(x, (tuple, list)) and x:
        return _shape_of(x[0])
    return None


def _data_bytes(x: Any) -> int:
    data = getattr(x, "data", None)
    if isinstance(data, np.ndarray):
        return data.nbytes
    if isinstance(x, (tuple, list)):
        return sum(_data_bytes(v) for v in x)
    return 0


class FLOPsCounter:
    """Count FLOPs and bytes: closed forms per layer type, or by tracing a real forward/backward.

    >>> from tinytorch.core import nn, randn
    >>> counter = FLOPsCounter()
    >>> counter.linear(32, 784, 128).matmul_flops   # 2·N·I·O = 2·32·784·128
    6422528
    >>> trace = counter.trace(nn.Linear(784, 128), randn(32, 784))
    >>> trace.forward.matmul_flops
    6422528
    """

    convention = CONVENTION

    # closed forms, also usable as counter.linear(...), counter.conv2d(...)
    linear = staticmethod(linear_flops)
    conv2d = staticmethod(conv2d_flops)
    attention = staticmethod(attention_flops)
    matmul = staticmethod(matmul_flops)
    pool2d = staticmethod(pool2d_flops)
    batchnorm2d = staticmethod(batchnorm2d_flops)
    layernorm = staticmethod(layernorm_flops)
    activation = staticmethod(activation_flops)
    softmax = staticmethod(softmax_flops)
    embedding = staticmethod(embedding_flops)
    cross_entropy = staticmethod(cross_entropy_flops)

    # ------------------------------------------------------------------ tracing
    def trace(self, model: Any, example_input: Any, backward: bool = False) -> TraceResult:
        """Run ``model(example_input)`` (and backward of its output if asked) and count every
        op through core's op observer, attributing each to the innermost running module.

        Each op is counted by ``FLOP_FORMULAS[fn.op]`` from its arrays' shapes and the settings
        it was applied with; ops with no formula are listed by op name in ``unknown_ops``.
        """
        from tinytorch.core.autograd import register_op_observer
        from tinytorch.core.nn.tracker import ModuleTracker

        # Nothing of the forward is kept past its use: a module's output is measured as its call
        # ends, and an op's context only when a backward will need it. Keeping every call and
        # context held every activation and saved array at once (GPT-2 124M on 64 x 128
        # tokens: 10.6 GB, against 2.2 GB for the forward alone).
        outputs: dict[str, tuple[tuple[int, ...] | None, int]] = {}  # label -> first output's shape, bytes

        def measure_output(call: Any) -> None:
            label = _label(call.name)
            if label not in outputs:
                outputs[label] = (_shape_of(call.output), _data_bytes(call.output))

        tracker = ModuleTracker(model, on_exit=measure_output, keep_calls=False)
        modules = {_label(name): m for name, m in tracker.modules.items()}
        layers: dict[str, LayerCount] = {}
        fwd_of: dict[int, tuple[str, OpCount, str, Any]] = {}
        unknown: dict[str, int] = defaultdict(int)

        def layer(label: str) -> LayerCount:
            if label not in layers:
                module = modules.get(label)
                layers[label] = LayerCount(label, type(module).__name__ if module else "?")
            return layers[label]

        def observer(phase, fn, inputs, output, seconds, settings):
            if phase == "forward":
                count, kind = count_forward_op(fn, inputs, output, settings)
                call = tracker.current
                label = _label(call.name) if call is not None else ROOT
                lc = layer(label)
                lc.forward = lc.forward + count
                lc.ops[fn.op] += 1
                lc.saved_bytes += _saved_bytes(fn, inputs)
                if kind == "unknown":
                    unknown[fn.op] += 1
                if backward:  # the graph keeps fn alive anyway; holding it keeps ids unique
                    fwd_of[id(fn)] = (label, count, kind, fn)
            else:
                label, count, kind, _ = fwd_of.get(id(fn), (ROOT, OpCount(), "unknown", fn))
                lc = layer(label)
                lc.backward = lc.backward + count_backward_op(fn, count, kind, inputs[0], output)

        with tracker, register_op_observer(observer):
            out = model(example_input)
            if backward:
                _backward(out)
        for label, lc in layers.items():
            module = modules.get(label)
            if module is not None:
                lc.params = sum(p.size for p in module.parameters(recurse=False))
            lc.output_shape, lc.output_bytes = outputs.get(label, (None, 0))
        ordered = {k: layers[k] for k in modules if k in layers}
        fwd = sum((lc.forward for lc in ordered.values()), OpCount())
        bwd = sum((lc.backward for lc in ordered.values()), OpCount())
        return TraceResult(ordered, fwd, bwd, dict(unknown))

    # ------------------------------------------------------------------ per module
    def analyze(self, model: Any, example_input: Any) -> dict[str, OpCount]:
        """Forward FLOPs and bytes of every module that runs ops, without recording a graph.

        These are the per-module forward counts of ``trace`` (each op counted by
        ``FLOP_FORMULAS[fn.op]`` from its shapes and settings, and given to the innermost module
        running it), run under ``no_grad``: both views come from the one table. A layer built
        of sublayers (attention and its projections) shows its own ops; its children show theirs.

        Args:
            model: any Module.
            example_input: what ``model`` is called with.

        Returns:
            module name (``"(model)"`` for ops outside every submodule) -> its forward count,
            in module order.

        >>> from tinytorch.core import nn, randn
        >>> model = nn.Sequential(nn.Linear(8, 4), nn.GroupNorm(2, 4))
        >>> counts = FLOPsCounter().analyze(model, randn(3, 8))
        >>> counts["0"].matmul_flops, counts["1"].elementwise_flops   # 2·3·8·4; 12·7 + 2·3·2
        (192, 96)
        """
        from tinytorch.core import no_grad

        with no_grad():
            trace = self.trace(model, example_input)
        return {name: layer.forward for name, layer in trace.layers.items()}


def _backward(out: Any) -> None:
    """Backward of a model output (or the first Tensor in a tuple) with an all-ones gradient."""
    t = out[0] if isinstance(out, (tuple, list)) else out
    if getattr(t, "requires_grad", False):
        t.backward(np.ones_like(t.data))
