"""Structured shrinking: remove output channels, neurons and attention heads for real.

Masks (``masks.py``) leave a tensor its size, so a pruned model runs as fast as before. Here a
layer's output channels are physically removed, with everything that reads them: a following
BatchNorm's parameters and running statistics, and the next Linear's or Conv's input columns
(through a ``Flatten`` too: one channel is H·W columns). The model gets smaller and faster,
and the FLOP tracer counts it as a model built that size.

A **group** is one set of channels that must go together. Groups are found by tracing one
forward on an example input: a *producer* (Linear, Conv) whose output passes only through
*per-channel* layers (BatchNorm) and *zero-preserving* elementwise layers (ReLU, pooling,
Dropout, ``Flatten``) into exactly one *consumer* (Linear, Conv) forms a group. The last layer
(whose output leaves the model), branches, and anything unknown in between never do.
Composite modules register their own groups (language's attention heads and MLP neurons).

Core knows no vision or language: a package tells it how its layers take part through
``register_layer`` (vision's Conv2d, BatchNorm2d, pooling) and ``register_structure`` (language's
``MultiHeadAttention``).

The masked model of a group (``mask_groups``: the producer's rows and bias, the BatchNorm's
scale and shift and the consumer's columns set to zero) computes exactly what the shrunk model
(``shrink``) computes: a removed channel is zero all the way to the consumer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ....autograd import no_grad, register_op_observer
from ...activation import GELU, ReLU, Tanh
from ...batchnorm import BatchNorm1d
from ...layers import Dropout, Flatten, Identity, Linear
from ...module import Module, Parameter
from ...tracker import ModuleTracker
from .masks import _count_to_prune, _hook_of, _norm, custom_from_mask, remove

__all__ = ["NORM_TENSORS", "ChannelSlice", "LayerRule", "StructuredGroup", "channel_group", "register_layer", "register_structure",
           "structured_groups", "mask_groups", "shrink"]


@dataclass(frozen=True)
class LayerRule:
    """How one layer type takes part in a channel group.

    Attributes:
        kind: ``"linear"`` (produces channels from its weight rows and consumes them in its
            columns: Linear, Conv), ``"norm"`` (one value per channel: BatchNorm) or
            ``"elementwise"`` (channel by channel and zero in, zero out: ReLU, max pooling).
        channel_axis: the channel axis of the activations it reads (1 for NCHW, -1 for Linear;
            None for an elementwise layer that works on any axis).
        outputs: (tensor name, axis) of the parameters and buffers that hold one entry per
            output channel (``("weight", 0), ("bias", 0)``; a norm's four vectors).
        inputs: (tensor name, axis) of those that hold one entry per input channel
            (``("weight", 1)``); a norm's are its ``outputs``.
        out_size: the attribute that counts the output channels (``"out_features"``).
        in_size: the attribute that counts the input channels (``"in_features"``).
        usable: whether this instance can take part (a grouped convolution cannot).

    >>> LayerRule("elementwise").kind
    'elementwise'
    """

    kind: str
    channel_axis: int | None = 1
    outputs: tuple[tuple[str, int], ...] = ()
    inputs: tuple[tuple[str, int], ...] = ()
    out_size: str | None = None
    in_size: str | None = None
    usable: Callable[[Module], bool] = lambda module: True


_LAYERS: dict[type, LayerRule] = {}
_STRUCTURES: dict[type, Callable[[str, Module], list[StructuredGroup]]] = {}


def register_layer(cls: type, rule: LayerRule) -> None:
    """Say how instances of ``cls`` (and its subclasses) take part in channel groups.

    >>> register_layer(Identity, LayerRule("elementwise"))
    """
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register_layer: cls must be a Module subclass, got {cls!r}")
    if rule.kind not in ("linear", "norm", "elementwise"):
        raise ValueError(f"register_layer: rule.kind must be 'linear', 'norm' or 'elementwise', got {rule.kind!r}")
    _LAYERS[cls] = rule


def register_structure(cls: type, groups: Callable[[str, Module], list[StructuredGroup]]) -> None:
    """Let instances of ``cls`` name their own groups: ``groups(name, module)`` returns them.

    Layers inside such a module are not traced into other groups.

    >>> register_structure(Identity, lambda name, module: [])
    >>> del _STRUCTURES[Identity]
    """
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register_structure: cls must be a Module subclass, got {cls!r}")
    _STRUCTURES[cls] = groups


def _lookup(table: dict, module: Module) -> Any:
    for cls in type(module).__mro__:
        if cls in table:
            return table[cls]
    return None


@dataclass(frozen=True)
class ChannelSlice:
    """Entries of ``module.<name>`` along ``axis``: ``index(channels)`` maps channel numbers
    of the group to positions on that axis (several per channel: a head's rows).

    >>> from tinytorch.core import nn
    >>> s = ChannelSlice(nn.Linear(2, 6), "weight", 0, lambda heads: (heads[:, None] * 3 + np.arange(3)).ravel())
    >>> s.index(np.array([1])).tolist()
    [3, 4, 5]
    """

    module: Module
    name: str
    axis: int
    index: Callable[[np.ndarray], np.ndarray]


def _tensor(module: Module, name: str) -> Any:
    if _hook_of(module, name) is not None:
        return module._parameters[name + "_orig"]
    return module._parameters.get(name, module._buffers.get(name))


@dataclass(eq=False)
class StructuredGroup:
    """Channels (or heads) that are removed together, and every tensor entry that holds them.

    Attributes:
        name: where in the model (the producer's name, or the structure's).
        size: how many channels (heads) the group has now.
        slices: the tensor entries per channel.
        scored: the slices whose Ln norm ranks the channels.
        sizes: (module, attribute, entries per channel) to update after shrinking.
        scale: per-channel factors multiplied into the ranking (BatchNorm's |γ|/√(var+ε)).

    >>> from tinytorch.core import nn
    >>> group = channel_group("0", nn.Linear(3, 4), nn.Linear(4, 2))
    >>> group.size, group.importance().shape
    (4, (4,))
    """

    name: str
    size: int
    slices: list[ChannelSlice]
    scored: list[ChannelSlice]
    sizes: list[tuple[Module, str, int]] = field(default_factory=list)
    scale: Callable[[], np.ndarray] | None = None

    def importance(self, n: Any = 1) -> np.ndarray:
        """(size,) Ln norm of each channel's scored entries, times ``scale`` if any."""
        parts = [self._per_channel(np.moveaxis(_tensor(s.module, s.name).data, s.axis, 0), s)
                 for s in self.scored]
        score = _norm("shrink", np.concatenate(parts, axis=1), n, (1,))
        return score * self.scale() if self.scale is not None else score

    def dropped_by_masks(self) -> np.ndarray:
        """The channels whose scored entries are all masked (pruned) already."""
        alive = np.zeros(self.size, dtype=bool)
        for s in self.scored:
            if _hook_of(s.module, s.name) is None:
                return np.array([], dtype=np.int64)
            mask = np.moveaxis(getattr(s.module, s.name + "_mask").data, s.axis, 0)
            alive |= (self._per_channel(mask, s) != 0).any(axis=1)
        return np.flatnonzero(~alive)

    def _per_channel(self, t: np.ndarray, s: ChannelSlice) -> np.ndarray:
        """(size, entries) of ``t`` (its slice axis first): row c holds channel c's entries."""
        return np.stack([t[s.index(np.array([c]))].reshape(-1) for c in range(self.size)])

    def mask(self, drop: Sequence[int]) -> None:
        """Zero the ``drop`` channels in every parameter of the group with pruning masks."""
        drop = np.asarray(drop, dtype=np.int64)
        for s in self.slices:
            t = _tensor(s.module, s.name)
            if not isinstance(t, Parameter):
                continue  # running statistics: a zero scale and shift already silence the channel
            mask = np.ones(t.shape, dtype=t.data.dtype)
            np.moveaxis(mask, s.axis, 0)[s.index(drop)] = 0
            custom_from_mask(s.module, s.name, mask)

    def shrink(self, keep: Sequence[int]) -> None:
        """Keep only the ``keep`` channels: every tensor of the group is cut to them, in place
        (the same Parameter objects), and the layers' size attributes follow. A pruning mask on
        a tensor of the group is made permanent first."""
        keep = np.asarray(keep, dtype=np.int64)
        for s in self.slices:
            if _hook_of(s.module, s.name) is not None:
                remove(s.module, s.name)
        for s in self.slices:
            t = _tensor(s.module, s.name)
            t.data = np.ascontiguousarray(np.take(t.data, s.index(keep), axis=s.axis))
            t.grad = None
        for module, attr, per_channel in self.sizes:
            object.__setattr__(module, attr, len(keep) * per_channel)
        self.size = len(keep)


def _rows(names: tuple[tuple[str, int], ...], module: Module,
          index: Callable[[np.ndarray], np.ndarray]) -> list[ChannelSlice]:
    return [ChannelSlice(module, name, axis, index) for name, axis in names if _tensor(module, name) is not None]


def _identity(channels: np.ndarray) -> np.ndarray:
    return channels


def channel_group(name: str, producer: Module, consumer: Module, followers: Sequence[Module] = (),
                  block: int = 1) -> StructuredGroup:
    """The group of ``producer``'s output channels, read by ``followers`` (norms) and by
    ``consumer``'s inputs, each channel being ``block`` consecutive consumer inputs (H·W after
    a ``Flatten``). Both layers need a ``"linear"`` rule, the followers a ``"norm"`` rule.

    >>> from tinytorch.core import nn
    >>> group = channel_group("fc", nn.Linear(3, 4), nn.Linear(8, 2), block=2)
    >>> group.shrink([0, 3]); group.slices[-1].module.in_features
    4
    """
    rule_p, rule_c = _lookup(_LAYERS, producer), _lookup(_LAYERS, consumer)
    if rule_p is None or rule_p.kind != "linear" or rule_c is None or rule_c.kind != "linear":
        raise TypeError(f"channel_group: producer and consumer must be registered linear layers, "
                        f"got {type(producer).__name__} and {type(consumer).__name__}")
    size = _tensor(producer, rule_p.outputs[0][0]).shape[rule_p.outputs[0][1]]

    def blocks(channels: np.ndarray) -> np.ndarray:
        return (channels[:, None] * block + np.arange(block)).reshape(-1)

    slices = _rows(rule_p.outputs, producer, _identity)
    sizes = [(producer, rule_p.out_size, 1)]
    norms = []
    for follower in followers:
        rule = _lookup(_LAYERS, follower)
        slices += _rows(rule.outputs, follower, _identity)
        sizes.append((follower, rule.out_size, 1))
        norms.append(follower)
    slices += _rows(rule_c.inputs, consumer, blocks if block > 1 else _identity)
    sizes.append((consumer, rule_c.in_size, block))

    def scale() -> np.ndarray:
        # A BatchNorm rescales each channel by |γ|/√(var + ε): rank the channel as it leaves it.
        out = np.ones(1)
        for bn in norms:
            gamma = _tensor(bn, "weight")
            var = _tensor(bn, "running_var")
            if gamma is not None:
                out = out * np.abs(gamma.data)
            if var is not None:
                out = out / np.sqrt(var.data.astype(np.float64) + bn.eps)
        return out

    return StructuredGroup(name, size, slices, scored=[slices[0]], sizes=sizes,
                           scale=scale if norms else None)


def _flatten_block(module: Flatten, shape: tuple[int, ...]) -> int | None:
    """Channels per position if ``module`` flattens (N, C, *spatial) into (N, C·prod(spatial))."""
    end = module.end_dim % len(shape)
    if module.start_dim % len(shape) != 1 or end != len(shape) - 1:
        return None
    return math.prod(shape[2:])


def _trace(model: Module, example_inputs: tuple) -> tuple[list, Any, dict[int, int]]:
    """The module calls of one forward, its output, and how many ops read each array."""
    modes = {m: m.training for m in model.modules()}
    reads: dict[int, int] = {}
    seen: list = []  # keeps every read array alive, so no id is reused during the trace

    def count(phase, fn, inputs, output, seconds, settings):
        if phase == "forward":
            seen.append(inputs)
            for a in inputs:
                reads[id(a)] = reads.get(id(a), 0) + 1

    model.eval()  # BatchNorm must not update its running statistics while we look
    try:
        with no_grad(), register_op_observer(count), ModuleTracker(model) as tracker:
            output = model(*example_inputs)
    finally:
        for m, mode in modes.items():
            object.__setattr__(m, "training", mode)
    return tracker.calls, output, reads


def structured_groups(model: Module, *example_inputs: Any) -> list[StructuredGroup]:
    """Every group of ``model``: traced producer → consumer chains and registered structures.

    Args:
        model: the model.
        *example_inputs: what to call it with once (in eval mode, without gradients).

    Returns:
        The groups, in the order their producers run.

    >>> from tinytorch.core import nn, randn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 2))
    >>> [(g.name, g.size) for g in structured_groups(model, randn(3, 4))]
    [('0', 8), ('2', 6)]
    """
    if not isinstance(model, Module):
        raise TypeError(f"structured_groups: model must be a Module, got {type(model).__name__}")
    calls, output, reads = _trace(model, example_inputs)
    groups: list[StructuredGroup] = []
    inside: set[int] = set()  # modules whose groups a structure names
    leaves = []
    for call in calls:
        if call.parent is not None and id(call.parent.module) in inside:
            inside.add(id(call.module))
            continue
        structure = _lookup(_STRUCTURES, call.module)
        if structure is not None:
            inside.add(id(call.module))
            groups += structure(call.name, call.module)
        elif _lookup(_LAYERS, call.module) is not None or not any(True for _ in call.module.children()):
            leaves.append(call)
    for i, call in enumerate(leaves):
        rule = _lookup(_LAYERS, call.module)
        if rule is None or rule.kind != "linear" or not rule.usable(call.module):
            continue
        found = _follow(call, leaves[i + 1:], reads, output)
        if found is not None:
            followers, consumer, block = found
            groups.append(channel_group(call.name, call.module, consumer, followers, block))
    return groups


def _follow(producer, later: list, reads: dict[int, int], model_output: Any):
    """(norm followers, consumer, block) if ``producer``'s output reaches one consumer through
    known per-channel layers only, else None."""
    out = producer.output
    axis = _lookup(_LAYERS, producer.module).channel_axis % out.ndim
    followers, block = [], 1
    for call in later:
        if out is model_output or reads.get(id(out.data), 0) != 1:
            return None  # leaves the model, or read by two ops (a branch): not ours to cut
        if not call.args or call.args[0] is not out:
            return None
        if isinstance(call.module, Flatten) and block == 1:
            block = _flatten_block(call.module, out.shape)
            if block is None or axis != 1:
                return None
            out, axis = call.output, 1
            continue
        rule = _lookup(_LAYERS, call.module)
        if rule is None or not rule.usable(call.module):
            return None
        if rule.channel_axis is not None and rule.channel_axis % out.ndim != axis:
            return None  # e.g. a pooling over the axis that holds the channels
        if rule.kind == "linear":
            return followers, call.module, block
        if rule.kind == "norm":
            if block != 1:
                return None
            followers.append(call.module)
        out = call.output
    return None


def _choose(group: StructuredGroup, amount: Any, n: Any) -> np.ndarray:
    """The channels to drop: the ``amount`` with the smallest importance (ties: lower index)."""
    k = _count_to_prune("shrink", amount, group.size)
    if k >= group.size:
        raise ValueError(f"shrink: amount {amount!r} would remove all {group.size} channels of {group.name!r}")
    return np.sort(np.argsort(group.importance(n), kind="stable")[:k])


def mask_groups(model: Module, *example_inputs: Any, amount: float | int, n: Any = 1) -> list[StructuredGroup]:
    """Mask the ``amount`` least important channels of every group (the masked twin of ``shrink``).

    Ranking: the Ln norm of each channel's producer weights, times |γ|/√(var+ε) of a following
    BatchNorm. The model keeps its size; ``shrink(model, *example_inputs)`` then removes exactly
    these channels, with the same outputs.

    Args:
        model: the model.
        *example_inputs: an input to trace the groups with.
        amount: a fraction of each group's channels, or a count.
        n: the norm's order.

    Returns:
        The groups.

    >>> from tinytorch.core import nn, randn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> _ = mask_groups(model, randn(3, 4), amount=0.5)
    >>> int((model[0].weight_mask.numpy().sum(axis=1) == 0).sum())
    4
    """
    groups = structured_groups(model, *example_inputs)
    drops = [_choose(g, amount, n) for g in groups]
    for group, drop in zip(groups, drops):
        group.mask(drop)
    return groups


def shrink(model: Module, *example_inputs: Any, amount: float | int | None = None, n: Any = 1) -> list[dict]:
    """Remove channels, neurons and heads from ``model`` for real, in place.

    With ``amount`` the ``amount`` least important channels of each group go (ranked as in
    ``mask_groups``; every group is ranked before any is cut). Without it, the channels that
    masks already removed go (after ``mask_groups`` or ``ln_structured(..., dim=0)`` on a
    producer). Optimizers built before hold stale state: build a new one.

    Args:
        model: the model.
        *example_inputs: an input to trace the groups with.
        amount: a fraction of each group's channels, or a count; None for the masked ones.
        n: the norm's order.

    Returns:
        One ``{"group", "before", "after"}`` per group.

    >>> from tinytorch.core import nn, randn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> shrink(model, randn(3, 4), amount=0.75)
    [{'group': '0', 'before': 8, 'after': 2}]
    >>> model
    Sequential(
      (0): Linear(in_features=4, out_features=2, bias=True)
      (1): ReLU()
      (2): Linear(in_features=2, out_features=2, bias=True)
    )
    """
    groups = structured_groups(model, *example_inputs)
    drops = [g.dropped_by_masks() if amount is None else _choose(g, amount, n) for g in groups]
    report = []
    for group, drop in zip(groups, drops):
        before = group.size
        group.shrink(np.setdiff1d(np.arange(before), drop))
        report.append({"group": group.name, "before": before, "after": group.size})
    return report


_LINEAR = LayerRule("linear", channel_axis=-1, outputs=(("weight", 0), ("bias", 0)), inputs=(("weight", 1),),
                    out_size="out_features", in_size="in_features")
# A BatchNorm's tensors with one entry per channel.
NORM_TENSORS = (("weight", 0), ("bias", 0), ("running_mean", 0), ("running_var", 0))
register_layer(Linear, _LINEAR)
register_layer(BatchNorm1d, LayerRule("norm", 1, NORM_TENSORS, NORM_TENSORS, "num_features", "num_features"))
for _cls in (ReLU, GELU, Tanh, Dropout, Identity):  # each maps 0 to 0 (Sigmoid does not)
    register_layer(_cls, LayerRule("elementwise", channel_axis=None))
