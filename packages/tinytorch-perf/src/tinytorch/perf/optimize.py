"""Profile → optimize → benchmark in one call: prune, fine-tune, quantize, save, and compare.

`optimize` takes a `BenchmarkTarget` (what ``tinytorch.benchmarks`` loaders return; perf never
imports vision or language), benchmarks it, prunes it -- global magnitude pruning (zeros in the
weights, masks held through fine-tuning) or, with ``structured``, core's ``prune.shrink``, which
removes whole channels, neurons and attention heads so the model is smaller and faster --
optionally fine-tunes it through the target's ``finetune`` (the loader's recipe), quantizes it
through core's one entry point ``quantize_``, writes the result with the target's ``save`` (a
shrunk model's file records its layer sizes, so the loader rebuilds it) and benchmarks the saved
file's model the same way. Every figure it reports is one of the two `BenchmarkReport` s or a
measurement of the two models' layers.

The per-layer part puts each layer of both models on the roofline: FLOPs and compulsory bytes
from the FLOP tracer (a quantized layer does the same multiply-adds as its float one, in
integers held in float32; its bytes are the float layer's minus its float weights plus what it
stores), time from timing the layer alone on the input it sees in the model. `roofline_verdict`
then states whether the roofline's advice predicted the measured change.

>>> roofline_verdict("memory-bound", bytes_ratio=4.0, flops_ratio=1.0, speedup=1.6)["verdict"]
'confirmed'
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["QUANTIZE_CHOICES", "LayerChange", "OptimizeResult", "roofline_verdict", "prune_model", "quantize_model",
           "apply_optimizations", "layer_measurements", "layer_changes", "layer_batch", "optimize", "TOLERANCE",
           "LAYER_INPUTS_BUDGET"]

QUANTIZE_CHOICES = ("int8", "int4", "w8a8", "none")

#: a measured speed ratio within 1 ± TOLERANCE counts as "no change" (timings on a shared machine
#: scatter by about that much)
TOLERANCE = 0.10

#: Bytes the layer table may hold in captured layer inputs. Each layer is timed alone on the input
#: it sees in its model, so one forward captures the input of every layer, of both models, and
#: they are all held at once: GPT-2 124M at the Offline batch (64 windows of 128 tokens) would
#: hold 6.8 GB. Above the budget the layers are timed on fewer samples (`layer_batch`), which the
#: report says.
LAYER_INPUTS_BUDGET = 1 << 30


def roofline_verdict(bound: str, bytes_ratio: float, flops_ratio: float, speedup: float,
                     tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Did the roofline predict what was measured? From one layer's before/after figures.

    The roofline says a memory-bound layer's time follows its bytes and a compute-bound layer's
    its FLOPs, so the predicted speedup is ``bytes_ratio`` (before / after) for a memory-bound
    layer and ``flops_ratio`` for a compute-bound one. A predicted gain (above 1 + tolerance) is
    *confirmed* when the measured ``speedup`` (time before / after) is above 1 + tolerance too; a
    predicted "no change" is confirmed when the speedup is within 1 ± tolerance. Anything else is
    *not confirmed*, with the reason.

    Args:
        bound: the layer's position before: ``"memory-bound"`` or ``"compute-bound"``.
        bytes_ratio: compulsory bytes before / after.
        flops_ratio: FLOPs before / after.
        speedup: measured time before / after.
        tolerance: the band around 1 that counts as no change.

    Returns:
        ``{"predicted": x, "measured": speedup, "verdict": "confirmed" | "not confirmed", "why": ...}``.

    >>> roofline_verdict("compute-bound", bytes_ratio=4.0, flops_ratio=1.0, speedup=1.02)["verdict"]
    'confirmed'
    >>> roofline_verdict("memory-bound", bytes_ratio=4.0, flops_ratio=1.0, speedup=0.5)["why"]
    'predicted up to 4.00x faster (memory-bound, bytes fell 4.00x); measured 0.50x'
    """
    if bound not in ("memory-bound", "compute-bound"):
        raise ValueError(f"roofline_verdict: bound must be 'memory-bound' or 'compute-bound', got {bound!r}")
    for name, value in (("bytes_ratio", bytes_ratio), ("flops_ratio", flops_ratio), ("speedup", speedup)):
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
            raise ValueError(f"roofline_verdict: {name} must be a positive finite number, got {value!r}")
    memory = bound == "memory-bound"
    predicted = bytes_ratio if memory else flops_ratio
    cause = f"{bound}, {'bytes' if memory else 'FLOPs'} fell {predicted:.2f}x"
    if predicted > 1 + tolerance:
        ok = speedup > 1 + tolerance
        why = f"predicted up to {predicted:.2f}x faster ({cause}); measured {speedup:.2f}x"
    else:
        ok = 1 - tolerance <= speedup <= 1 + tolerance
        cause = (f"{bound}, its {'bytes' if memory else 'FLOPs'} changed {predicted:.2f}x")
        why = f"predicted no change ({cause}); measured {speedup:.2f}x"
    return {"predicted": predicted, "measured": speedup, "verdict": "confirmed" if ok else "not confirmed",
            "why": why}


# ------------------------------------------------------------------------------ optimizing


def _prunable(model: Any) -> list[tuple[Any, str]]:
    """(module, "weight") of every Linear and convolution (2-D or more weights; not embeddings)."""
    from tinytorch.core import nn

    return [(m, "weight") for _, m in model.named_modules()
            if not isinstance(m, nn.Embedding) and isinstance(getattr(m, "weight", None), nn.Parameter)
            and m.weight.ndim >= 2]


def _check_quantize(quantize: str) -> None:
    if quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"--quantize must be one of {', '.join(QUANTIZE_CHOICES)}, got {quantize!r}")


def prune_model(target: Any, prune: float | None, structured: bool = False, finetune_steps: int = 0,
                echo: Callable[[str], None] = lambda s: None) -> dict:
    """Prune → fine-tune ``target.model`` in place (the first half of `apply_optimizations`).

    Pruning: global L1 over every Linear and convolution weight (``prune`` of them become zeros,
    masks held through the fine-tuning, then made permanent), or with ``structured`` core's
    ``prune.shrink``: ``prune`` of the channels, neurons and attention heads of every group
    removed (ranked by their weights' L1 norm, times a following BatchNorm's |γ|/√(var+ε)), traced
    on a few of the target's inputs. Fine-tuning: ``finetune_steps`` steps of the target's
    ``finetune`` (its package's recipe). Returns what was done.

    >>> from tinytorch.core import Tensor, nn
    >>> from tinytorch.perf.benchmark import BenchmarkTarget
    >>> model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    >>> target = BenchmarkTarget("mlp", model, lambda idx: Tensor(np.zeros((len(idx), 64), np.float32)), 8)
    >>> prune_model(target, 0.25, structured=True)["shrunk"]
    [{'group': '0', 'before': 32, 'after': 24}]
    """
    from tinytorch.core.nn.utils import prune as P

    model, done = target.model, {"prune": prune, "structured": structured, "finetune_steps": finetune_steps}
    if structured and not prune:
        raise ValueError("--structured needs --prune FRACTION (the share of channels, neurons and heads to remove)")
    params = _prunable(model) if prune and not structured else []  # now: once pruned, `weight` is no Parameter
    if params:
        P.global_unstructured(params, P.L1Unstructured, amount=prune)
        zeros = sum(int((m.weight.data == 0).sum()) for m, _ in params)
        done["pruned_weights"] = f"{zeros:,} of {sum(m.weight.data.size for m, _ in params):,}"
        echo(f"pruned {prune:.0%} of the Linear/conv weights by magnitude (global): {done['pruned_weights']} zero")
    elif structured:
        example = target.inputs(np.arange(min(8, target.num_samples)))
        done["shrunk"] = P.shrink(model, example, amount=prune)
        if not done["shrunk"]:
            raise ValueError(f"--structured: {type(model).__name__} has no channels, neurons or heads that "
                             "structured pruning can remove")
        echo(f"removed {prune:.0%} of the channels/neurons/heads: " + ", ".join(
            f"{g['group']} {g['before']}->{g['after']}" for g in done["shrunk"]))
    if finetune_steps:
        if target.finetune is None:
            raise ValueError(f"--finetune-steps: the loader of {target.checkpoint} offers no fine-tuning")
        echo(f"fine-tuning {finetune_steps} steps{' (masks held)' if params else ''}...")
        done["finetune"] = target.finetune(model, finetune_steps)
    for m, name in params:  # the masks become permanent zeros before quantizing and saving
        P.remove(m, name)
    model.eval()
    return done


def quantize_model(target: Any, quantize: str, calibration_samples: int = 256) -> dict:
    """Quantize ``target.model`` in place (the second half of `apply_optimizations`).

    ``quantize``: ``"int8"`` int8 weights with a scale per output channel: weight-only for Linear
    layers (``Int8WeightOnlyConfig``), dynamic W8A8 for the other registered layers (convolutions,
    which have no weight-only form); ``"int4"`` Q4_0 weight-only for the Linear layers whose
    in_features is a multiple of 32 (the rest stay float32); ``"w8a8"`` static W8A8 on every
    registered layer, calibrated on ``calibration_samples`` training samples; ``"none"``.
    Returns what was done.

    >>> from tinytorch.core import Tensor, nn
    >>> from tinytorch.perf.benchmark import BenchmarkTarget
    >>> model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    >>> target = BenchmarkTarget("mlp", model, lambda idx: Tensor(np.zeros((len(idx), 64), np.float32)), 8)
    >>> quantize_model(target, "int4")["kept_float32"]   # in_features 32 is one Q4_0 block
    []
    """
    from tinytorch.core import nn
    from tinytorch.core.quantization import (
        Int4WeightOnlyConfig,
        Int8DynamicActivationInt8WeightConfig,
        Int8StaticActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
        get_quantized_module_class,
        quantize_,
    )

    _check_quantize(quantize)
    model, done = target.model, {"quantize": quantize}
    if quantize == "int8":
        quantize_(model, Int8DynamicActivationInt8WeightConfig(),
                  filter_fn=lambda m, fqn: not isinstance(m, nn.Linear)) if any(
            get_quantized_module_class(type(m)) and not isinstance(m, nn.Linear) for m in model.modules()) else None
        quantize_(model, Int8WeightOnlyConfig())
    elif quantize == "int4":
        config = Int4WeightOnlyConfig(group_size=32)
        kept = [fqn for fqn, m in model.named_modules() if isinstance(m, nn.Linear) and m.in_features % 32]
        quantize_(model, config, filter_fn=lambda m, fqn: m.in_features % 32 == 0)
        done["kept_float32"] = kept
    elif quantize == "w8a8":
        if target.calibration is None:
            raise ValueError(f"--quantize w8a8: the loader of {target.checkpoint} offers no calibration data")
        batches = target.calibration(calibration_samples)
        quantize_(model, Int8StaticActivationInt8WeightConfig(batches))
        done["calibration_samples"] = sum(len(b) for b in batches)
    model.eval()
    return done


def apply_optimizations(target: Any, quantize: str, prune: float | None = None, finetune_steps: int = 0,
                        calibration_samples: int = 256, echo: Callable[[str], None] = lambda s: None,
                        structured: bool = False) -> dict:
    """Prune → fine-tune (`prune_model`) → quantize (`quantize_model`), on ``target.model`` in
    place. Returns what was done.

    >>> from tinytorch.core import Tensor, nn
    >>> from tinytorch.perf.benchmark import BenchmarkTarget
    >>> model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    >>> target = BenchmarkTarget("mlp", model, lambda idx: Tensor(np.zeros((len(idx), 64), np.float32)), 8)
    >>> apply_optimizations(target, "int4", prune=0.5)["kept_float32"]   # in_features 32 is one Q4_0 block
    []
    >>> [type(m).__name__ for m in model]
    ['Int4WeightOnlyLinear', 'ReLU', 'Int4WeightOnlyLinear']
    """
    done = prune_model(target, prune, structured, finetune_steps, echo)
    return {**done, **quantize_model(target, quantize, calibration_samples)}


# ------------------------------------------------------------------------------ layers


@dataclass
class LayerChange:
    """One layer before and after: its roofline position, both times, and the verdict.

    ``flops``, ``bytes``, ``seconds`` and ``bound`` are (baseline, optimized) pairs; ``verdict``
    is `roofline_verdict`'s result for a changed layer, empty for an unchanged one.

    >>> c = LayerChange("fc", "Linear", "Int8WeightOnlyLinear", (100, 100), (400, 130), (2e-6, 1e-6),
    ...                 ("memory-bound", "memory-bound"))
    >>> c.bytes[0] / c.bytes[1] > 3, c.verdict
    (True, {})
    """

    name: str
    type_before: str
    type_after: str
    flops: tuple[int, int]
    bytes: tuple[int, int]
    seconds: tuple[float, float]
    bound: tuple[str, str]
    verdict: dict[str, Any] = field(default_factory=dict)
    traced_after: bool = True  # False: a quantized layer's FLOPs, carried over (the tracer cannot see them)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _layer_inputs(model: Any, x: Any, names: list[str]) -> dict[str, Any]:
    """The input each named layer receives in one forward of ``model`` on ``x``."""
    from tinytorch.core import no_grad

    modules = dict(model.named_modules())
    seen: dict[str, Any] = {}
    patched = []
    for name in names:
        m = modules.get(name)
        if m is None:
            continue
        original = m.forward

        def spy(inp, *args, _name=name, _original=original, **kwargs):
            seen.setdefault(_name, inp)
            return _original(inp, *args, **kwargs)

        m.forward = spy
        patched.append(m)
    try:
        with no_grad():
            model(x)
    finally:
        for m in patched:
            del m.forward
    return seen


def layer_measurements(models: list[Any], x: Any, names: list[str], repeats: int = 5,
                       threads: int | None = 1) -> list[dict[str, float]]:
    """Median seconds of each named layer's forward alone, on the input it sees in its model, for
    each of ``models``; the models' timings alternate, so load from other processes hits all alike.
    ``threads``: BLAS threads while timing (default 1: repeatable on a shared machine; None: as set).

    >>> from tinytorch.core import Tensor, nn
    >>> model = nn.Sequential(nn.Linear(8, 4), nn.ReLU())
    >>> [sorted(t) for t in layer_measurements([model], Tensor(np.ones((2, 8), np.float32)), ["0", "1"])]
    [['0', '1']]
    """
    from tinytorch.core import no_grad

    calls = []
    for model in models:
        modules = dict(model.named_modules())
        calls.append({name: (modules[name], inp) for name, inp in _layer_inputs(model, x, names).items()})
    shared = [n for n in names if all(n in c for c in calls)]
    if threads is not None:
        from tinytorch.core.threads import thread_limit

        with thread_limit(threads):
            return layer_measurements(models, x, shared, repeats, threads=None)
    samples: list[dict[str, list[float]]] = [{n: [] for n in shared} for _ in models]
    with no_grad():
        for c in calls:  # warm-up
            for name in shared:
                module, inp = c[name]
                module(inp)
        for _ in range(repeats):
            for name in shared:
                for c, out in zip(calls, samples):
                    module, inp = c[name]
                    t0 = time.perf_counter()
                    module(inp)
                    out[name].append(time.perf_counter() - t0)
    return [{n: statistics.median(v) for n, v in out.items()} for out in samples]


def _leaf_names(model: Any) -> list[str]:
    """The named modules without children: a block's time would hold its children's, counted again."""
    return [n for n, m in model.named_modules() if n and not any(True for _ in m.children())]


def layer_batch(models: list[Any], x: Any, budget: int = LAYER_INPUTS_BUDGET) -> tuple[int, int]:
    """How many samples of the batch ``x`` the layer table times each layer on, so that the layer
    inputs `layer_measurements` captures (every leaf layer's, of every model, held at once) stay
    within ``budget`` bytes; and what the whole batch would have held. The bytes per sample are
    measured by capturing the inputs of one sample.

    Returns:
        ``(samples, bytes of the whole batch's inputs)``; at least 1 sample, at most ``len(x)``.

    >>> from tinytorch.core import Tensor, nn
    >>> model = nn.Sequential(nn.Linear(8, 4), nn.ReLU())  # a sample's inputs: 8 + 4 float32s
    >>> layer_batch([model, model], Tensor(np.ones((16, 8), np.float32)), budget=5 * 2 * 48)
    (5, 1536)
    """
    from .flops import _data_bytes

    batch = len(x)
    per_sample = sum(_data_bytes(v) for model in models
                     for v in _layer_inputs(model, x[:1], _leaf_names(model)).values())
    whole = per_sample * batch
    if whole <= budget:
        return batch, whole
    return max(1, min(batch, budget // max(per_sample, 1))), whole


def _stored_bytes(module: Any) -> int:
    return sum(int(p.data.nbytes) for p in module.parameters()) + sum(int(b.data.nbytes) for b in module.buffers())


def _forward_trace(model: Any, x: Any) -> Any:
    """The FLOP tracer's forward counts, without gradients (quantized layers are inference only)."""
    from tinytorch.core import no_grad

    from .flops import FLOPsCounter

    with no_grad():
        return FLOPsCounter().trace(model, x)


def layer_changes(before_model: Any, after_model: Any, x: Any, roofline: Any, repeats: int = 5,
                  before_weight_bytes: dict[str, int] | None = None, float_after: Any = None) -> list[LayerChange]:
    """Each layer with FLOPs of ``before_model`` on the roofline before and after (timed on one
    BLAS thread, see `layer_measurements`); a layer that changed gets a `roofline_verdict`, an
    unchanged one (BatchNorm, pooling...) shows how much the timings scatter.

    FLOPs and bytes before come from the FLOP tracer. After: a layer the tracer still sees is
    traced again; a quantized layer (whose integer GEMM runs outside autograd) does the FLOPs of
    the float layer it was made from, and its bytes are that layer's traced bytes minus its float
    weights plus what the quantized layer stores. That float layer is ``float_after``'s (the
    model as it was just before quantizing: after structured pruning it is smaller than
    ``before_model``'s), by default ``before_model``'s. ``before_weight_bytes``: name -> the float
    layer's parameter bytes when that is ``before_model`` (default: read from the model).

    >>> import copy
    >>> from tinytorch.core import Tensor, nn
    >>> from tinytorch.core.quantization import Int8WeightOnlyConfig, quantize_
    >>> from tinytorch.perf.roofline import RooflineModel
    >>> before = nn.Sequential(nn.Linear(64, 32))
    >>> after = copy.deepcopy(before)
    >>> quantize_(after, Int8WeightOnlyConfig())
    >>> roof = RooflineModel(peak_gflops=100.0, bandwidth_gbs=10.0)
    >>> [c] = layer_changes(before, after, Tensor(np.ones((1, 64), np.float32)), roof, repeats=1)
    >>> c.type_after, c.flops[0] == c.flops[1], c.bytes[1] < c.bytes[0] / 3
    ('Int8WeightOnlyLinear', True, True)
    """
    trace_before, trace_after = _forward_trace(before_model, x), _forward_trace(after_model, x)
    after_modules = dict(after_model.named_modules())
    if float_after is None:
        float_after, trace_float, float_bytes = before_model, trace_before, before_weight_bytes or {}
    else:
        trace_float, float_bytes = _forward_trace(float_after, x), {}
    float_modules = dict(float_after.named_modules())
    leaves = set(_leaf_names(before_model))
    names = [n for n, lc in trace_before.layers.items() if lc.forward.flops > 0 and n in leaves]
    t_before, t_after = layer_measurements([before_model, after_model], x, names, repeats)
    out = []
    for name in names:
        if name not in t_before or name not in t_after or name not in after_modules:
            continue
        lb = trace_before.layers[name]
        f0, b0 = lb.forward.flops, lb.forward.bytes
        la = trace_after.layers.get(name)
        traced = la is not None and la.forward.flops > 0
        if traced:
            f1, b1 = la.forward.flops, la.forward.bytes
        else:  # quantized: the float layer's multiply-adds, other weight bytes
            lf = trace_float.layers[name]
            weights = float_bytes.get(name, _stored_bytes(float_modules[name]))
            f1, b1 = lf.forward.flops, lf.forward.bytes - weights + _stored_bytes(after_modules[name])
        p0 = roofline.point(name, f0, b0, t_before[name], lb.ops)
        p1 = roofline.point(name, f1, b1, t_after[name], lb.ops)
        change = LayerChange(name, lb.type, type(after_modules[name]).__name__, (f0, f1), (b0, b1),
                             (t_before[name], t_after[name]), (p0.bound, p1.bound), traced_after=traced)
        changed = (f0, b0) != (f1, b1) or change.type_before != change.type_after
        if changed and t_after[name] > 0 and b1 > 0 and f1 > 0:
            change.verdict = roofline_verdict(p0.bound, b0 / b1, f0 / f1, t_before[name] / t_after[name])
        out.append(change)
    return out


# ------------------------------------------------------------------------------ the loop


@dataclass
class OptimizeResult:
    """What `optimize` did and measured: the two `BenchmarkReport` s (baseline, optimized),
    forward FLOPs of a batch (baseline, optimized), the `LayerChange` s, what was applied, the file.

    >>> result = optimize("cnn.safetensors", "cnn_int8.safetensors", "int8")  # doctest: +SKIP
    >>> result.after.model["disk_model_bytes"] / result.before.model["disk_model_bytes"]  # doctest: +SKIP
    0.2514
    """

    before: Any  # BenchmarkReport
    after: Any
    flops: tuple[int, int]
    layers: list[LayerChange]
    done: dict[str, Any]
    out: str
    layer_batch: int = 0  # the samples each layer was timed on (the Offline batch, unless over budget)
    layer_inputs_bytes: int = 0  # what the whole Offline batch's layer inputs would have held

    def to_dict(self) -> dict[str, Any]:
        return {"before": self.before.to_dict(), "after": self.after.to_dict(), "flops": list(self.flops),
                "layers": [c.to_dict() for c in self.layers], "done": self.done, "out": self.out,
                "layer_batch": self.layer_batch, "layer_inputs_bytes": self.layer_inputs_bytes}


def _check_offers(target: Any, quantize: str, finetune_steps: int) -> None:
    """Refuse, before anything is measured, what ``target``'s loader cannot do for this request.

    >>> from tinytorch.core import nn
    >>> from tinytorch.perf.benchmark import BenchmarkTarget
    >>> target = BenchmarkTarget("gpt2", nn.Linear(2, 2), lambda i: np.zeros((len(i), 2)), 4,
    ...                          checkpoint="gpt2/", description="GPT-2 directory: ...", save=print)
    >>> _check_offers(target, "int8", finetune_steps=10)
    Traceback (most recent call last):
    ...
    ValueError: --finetune-steps: CHECKPOINT gpt2/ (GPT-2 directory) offers no training data to fine-tune on; leave --finetune-steps out
    """
    _check_quantize(quantize)
    kind = f" ({target.description.split(':')[0]})" if target.description else ""
    what = f"CHECKPOINT {target.checkpoint}{kind}"
    if target.save is None:
        raise ValueError(f"{what}: its loader cannot save an optimized model")
    if finetune_steps and target.finetune is None:
        raise ValueError(f"--finetune-steps: {what} offers no training data to fine-tune on; leave "
                         "--finetune-steps out")
    if quantize == "w8a8" and target.calibration is None:
        raise ValueError(f"--quantize w8a8: {what} offers no calibration data; use int8 or int4 (weight-only)")


def _copy_model(model: Any) -> Any:
    import copy

    return copy.deepcopy(model)


def optimize(checkpoint: str, out: str, quantize: str, prune: float | None = None, finetune_steps: int = 0,
             settings: Any = None, accuracy_limit: int | None = None, layer_repeats: int = 5,
             calibration_samples: int = 256, echo: Callable[[str], None] = lambda s: None,
             structured: bool = False) -> OptimizeResult:
    """Benchmark ``checkpoint``, optimize it, save it to ``out``, benchmark ``out``: both reports,
    both FLOP counts and the per-layer roofline changes.

    Args:
        checkpoint: anything `load_target` recognizes (and whose loader offers ``save``).
        out: the optimized checkpoint (never ``checkpoint``; written atomically by the loader).
        quantize: ``"int8"``, ``"int4"``, ``"w8a8"`` or ``"none"`` (see `apply_optimizations`).
        prune: the fraction of weights to prune (with ``structured``: of channels, neurons and
            heads to remove), or None.
        finetune_steps: fine-tuning steps after pruning (0: none).
        settings: `BenchmarkSettings` of both runs.
        accuracy_limit: measure accuracy on the first N held-out samples (None: as ``settings``
            say, by default all of them).
        layer_repeats: timings per layer.
        calibration_samples: training samples for ``"w8a8"``'s calibration.
        echo: called with a line before each step.
        structured: remove whole channels, neurons and heads (``prune.shrink``) instead of
            zeroing single weights.

    >>> result = optimize("cnn.safetensors", "cnn_w8a8.safetensors", "w8a8", prune=0.5,
    ...                   finetune_steps=100)  # doctest: +SKIP
    >>> [c.verdict["verdict"] for c in result.layers if c.verdict]  # doctest: +SKIP
    ['confirmed', 'confirmed', 'confirmed', 'not confirmed']
    """
    from tinytorch.core import Tensor
    from tinytorch.core.paths import check_outputs

    from .benchmark import BenchmarkSettings, load_target, run_benchmark
    from .hardware import get_hardware_spec
    from .roofline import RooflineModel

    check_outputs({"--out": out}, {"CHECKPOINT": checkpoint})
    if prune is not None and not 0 < prune < 1:
        raise ValueError(f"--prune must be a fraction in (0, 1), got {prune!r}")
    if structured and prune is None:
        raise ValueError("--structured needs --prune FRACTION (the share of channels, neurons and heads to remove)")
    settings = settings or BenchmarkSettings()
    if accuracy_limit is not None:  # the benchmark measures accuracy as its settings say
        settings = replace(settings, accuracy_limit=accuracy_limit)
    target = load_target(checkpoint, accuracy_limit)
    _check_offers(target, quantize, finetune_steps)
    hardware = get_hardware_spec(quick=True)
    echo(f"benchmarking {checkpoint} (baseline)...")
    before = run_benchmark(target, settings, hardware=hardware)
    x = target.inputs(np.arange(min(settings.batch_size, target.num_samples)))
    x = x if isinstance(x, Tensor) or not isinstance(x, np.ndarray) or x.dtype.kind in "iu" else Tensor(x)
    original = _copy_model(target.model)
    weight_bytes = {n: _stored_bytes(m) for n, m in original.named_modules()}
    done = prune_model(target, prune, structured, finetune_steps, echo)
    # the float model the quantized layers are made from: smaller than the original once shrunk
    float_after = _copy_model(target.model) if structured and quantize != "none" else None
    done.update(quantize_model(target, quantize, calibration_samples))
    echo(f"writing {out}...")
    target.save(target.model, out)
    reloaded = load_target(out, accuracy_limit)
    echo(f"benchmarking {out} (optimized, as loaded from the file)...")
    after = run_benchmark(replace(reloaded, name=reloaded.name), settings, hardware=hardware)
    samples, whole = layer_batch([original, reloaded.model], x, LAYER_INPUTS_BUDGET)
    if samples < len(x):
        echo(f"timing each layer on {samples} of the batch's {len(x)} samples (the inputs of every layer "
             f"for all {len(x)} would hold {whole / 1e9:.1f} GB)")
    layers = layer_changes(original, reloaded.model, x[:samples], RooflineModel(hardware), layer_repeats,
                           weight_bytes, float_after)
    # the integer GEMMs run outside autograd: their (unchanged) multiply-adds are added back, from
    # the layer table's `samples`, in proportion (a Linear's or a convolution's grow with the batch)
    untraced = sum(c.flops[1] for c in layers if not c.traced_after) * len(x) // samples
    flops = (_forward_trace(original, x).forward.flops, _forward_trace(reloaded.model, x).forward.flops + untraced)
    return OptimizeResult(before, after, flops, layers, done, out, samples, whole)
