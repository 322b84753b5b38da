"""The roofline model: which ceiling limits each layer, and what would move it.

Attainable performance at arithmetic intensity I (FLOP/byte) is min(peak, bandwidth x I) with
the **measured** GEMM peak and STREAM bandwidth of `get_hardware_spec()`. A layer's point is
(intensity, achieved GFLOP/s); its advice is derived from where that point sits relative to
the ridge and to the ceilings, with the numbers that put it there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RooflineModel", "RooflinePoint", "CEILING_TOLERANCE"]

#: a point this much above the measured compute ceiling is a measurement problem (timer noise
#: and the ceiling's own best-of-N spread stay well inside it)
CEILING_TOLERANCE = 0.05


@dataclass
class RooflinePoint:
    """One layer on the roofline.

    Attributes:
        name: the layer.
        flops: its FLOPs; ``bytes`` its compulsory traffic; ``seconds`` its time.
        intensity: flops / bytes (FLOP/byte).
        achieved_gflops: flops / seconds / 1e9.
        attainable_gflops: the roof at its intensity, min(peak, bandwidth x intensity).
        bound: ``"memory-bound"`` (left of the ridge) or ``"compute-bound"``.
        efficiency: achieved / attainable (can exceed 1 when the data is served from cache).
        advice: what would move it, with the numbers that put it there.
        above_ceiling: achieved more than ``CEILING_TOLERANCE`` above the measured compute
            ceiling, which no code can do: a measurement problem (a ceiling measured on a busy
            machine, or a wrong time), flagged in the advice and on the plot.

    >>> p = RooflineModel(peak_gflops=100, bandwidth_gbs=10).point("fc", flops=2_000_000, bytes_moved=100_000, seconds=1e-4)
    >>> p.intensity, p.bound, round(p.achieved_gflops, 1), p.attainable_gflops
    (20.0, 'compute-bound', 20.0, 100.0)
    """
    name: str
    flops: int
    bytes: int
    seconds: float
    intensity: float
    achieved_gflops: float
    attainable_gflops: float
    bound: str
    efficiency: float
    advice: str
    above_ceiling: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class RooflineModel:
    """Roofline of one machine.

    Args:
        hardware: a `HardwareSpec` (its measured peak and bandwidth are the ceilings); or give
            ``peak_gflops`` and ``bandwidth_gbs`` directly.

    >>> roof = RooflineModel(peak_gflops=100.0, bandwidth_gbs=20.0)
    >>> roof.ridge_point, roof.classify(1.0), roof.attainable(1.0)
    (5.0, 'memory-bound', 20.0)
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "roofline.png"
    >>> _ = roof.plot([roof.point("fc", 2_000_000, 100_000, 1e-4)], out)
    >>> out.stat().st_size > 0
    True
    """

    def __init__(self, hardware: Any = None, peak_gflops: float | None = None,
                 bandwidth_gbs: float | None = None):
        if hardware is None and (peak_gflops is None or bandwidth_gbs is None):
            from .hardware import get_hardware_spec

            hardware = get_hardware_spec(quick=True)
        self.hardware = hardware
        self.peak_gflops = float(peak_gflops if peak_gflops is not None
                                 else hardware.measured_peak_gflops)
        self.bandwidth_gbs = float(bandwidth_gbs if bandwidth_gbs is not None
                                   else hardware.memory_bandwidth_gbs)
        if self.peak_gflops <= 0 or self.bandwidth_gbs <= 0:
            raise ValueError(f"RooflineModel needs positive ceilings, got peak "
                             f"{self.peak_gflops} GFLOP/s and bandwidth {self.bandwidth_gbs} GB/s")
        self.theoretical_gflops = getattr(hardware, "theoretical_peak_gflops", None)
        self.cache_bytes = getattr(hardware, "last_level_cache_bytes", None)

    @property
    def ridge_point(self) -> float:
        return self.peak_gflops / self.bandwidth_gbs

    def attainable(self, intensity: float) -> float:
        """min(peak, bandwidth x intensity): the best GFLOP/s possible at ``intensity`` FLOP/byte.

        >>> RooflineModel(peak_gflops=100, bandwidth_gbs=10).attainable(2.0)
        20.0
        """
        return min(self.peak_gflops, self.bandwidth_gbs * intensity)

    def classify(self, intensity: float) -> str:
        """``"memory-bound"`` left of the ridge point, else ``"compute-bound"``.

        >>> RooflineModel(peak_gflops=100, bandwidth_gbs=10).classify(2.0)
        'memory-bound'
        """
        return "memory-bound" if intensity < self.ridge_point else "compute-bound"

    # ------------------------------------------------------------------ points and advice
    def point(self, name: str, flops: int, bytes_moved: int, seconds: float,
              ops: Iterable[str] = ()) -> RooflinePoint:
        """A ``RooflinePoint`` (with advice) for a layer that did ``flops`` on ``bytes_moved`` in
        ``seconds``. ``ops``: the op names it ran (``"conv2d"``, ``"linear"``...), so the advice
        names remedies that apply to it.

        Raises:
            ValueError: a non-positive FLOP count, byte count or time.
        """
        if flops <= 0 or bytes_moved <= 0 or seconds <= 0:
            raise ValueError(f"roofline point {name!r} needs positive flops, bytes and seconds, "
                             f"got {flops}, {bytes_moved}, {seconds}")
        intensity = flops / bytes_moved
        achieved = flops / seconds / 1e9
        attainable = self.attainable(intensity)
        p = RooflinePoint(name, int(flops), int(bytes_moved), seconds, intensity, achieved,
                          attainable, self.classify(intensity), achieved / attainable, "",
                          achieved > self.peak_gflops * (1 + CEILING_TOLERANCE))
        p.advice = self.advise(p, set(ops))
        return p

    def advise(self, p: RooflinePoint, ops: Iterable[str] = ()) -> str:
        """Advice for a point, derived from its bound, its efficiency against the roof and (for
        the remedy near the ceiling) the op names it ran."""
        ridge, eff, ops = self.ridge_point, p.efficiency, set(ops)
        if p.above_ceiling:
            return (f"measurement problem: {p.achieved_gflops:.1f} GFLOP/s is "
                    f"{p.achieved_gflops / self.peak_gflops:.0%} of the measured compute ceiling "
                    f"({self.peak_gflops:.1f} GFLOP/s), which nothing can exceed; the ceiling was "
                    f"probably measured on a busy machine (tito performance hardware --refresh) "
                    f"or this layer's time is wrong")
        if p.bound == "memory-bound":
            if eff > 1.0:
                fits = (f"its {p.bytes / 1e6:.2f} MB fit in the {self.cache_bytes / 1e6:.0f} MB "
                        "cache" if self.cache_bytes and p.bytes <= self.cache_bytes
                        else "it is served from cache")
                return (f"above the DRAM roof ({eff:.1f}x the {p.attainable_gflops:.1f} GFLOP/s "
                        f"bandwidth allows at {p.intensity:.2f} FLOP/B): {fits}; larger inputs "
                        f"will fall to the roof, only higher intensity (fusion) lifts it")
            if eff < 0.25:
                return (f"memory-bound region (intensity {p.intensity:.2f} < ridge {ridge:.1f} "
                        f"FLOP/B) yet only {eff:.0%} of the bandwidth roof: per-op overhead "
                        f"and temporaries dominate, not DRAM traffic; fuse its elementwise ops "
                        f"or give each call more work (larger batch)")
            return (f"memory-bound at {eff:.0%} of the {p.attainable_gflops:.1f} GFLOP/s the "
                    f"bandwidth allows: raise intensity {ridge / p.intensity:.1f}x to reach the "
                    f"ridge ({ridge:.1f} FLOP/B) by fusing with neighbouring ops or a larger batch")
        if eff < 0.7:
            copies = ", im2col copies" if "conv2d" in ops else ""
            return (f"compute-bound (intensity {p.intensity:.1f} >= ridge {ridge:.1f}) but at "
                    f"{eff:.0%} of the {self.peak_gflops:.0f} GFLOP/s ceiling: overhead (Python "
                    f"dispatch{copies}, small GEMMs) costs up to {1 / max(eff, 1e-9):.1f}x; "
                    f"batch more work per GEMM")
        if "conv2d" in ops:
            remedy = "fewer channels, grouped or depthwise convolution"
        elif ops & {"linear", "matmul"}:
            remedy = "fewer features, a low-rank factorisation of the weight"
        else:
            remedy = "a smaller layer"
        return (f"near the compute ceiling ({eff:.0%} of {self.peak_gflops:.0f} GFLOP/s): only "
                f"fewer FLOPs help ({remedy})")

    def points_from_profile(self, result: Any, prefix: bool = False) -> list[RooflinePoint]:
        """One point per profiled layer with FLOPs (forward pass).

        ``prefix=True`` names each point ``model/layer`` (``small_cnn/features.0``), so that the
        layers of several models on one plot are told apart.
        """
        trace = getattr(result, "trace", None)
        ops = {name: set(lc.ops) for name, lc in trace.layers.items()} if trace else {}
        head = f"{result.model}/" if prefix else ""
        return [self.point(head + l.name, l.flops, l.bytes, l.forward_s, ops.get(l.name, ()))
                for l in result.layers if l.flops > 0 and l.bytes > 0 and l.forward_s > 0]

    # ------------------------------------------------------------------ plot
    def plot(self, points: Sequence[RooflinePoint] = (), path: str | Path | Iterable | None = None,
             title: str | None = None):
        """Log-log roofline with the measured ceilings, the ridge and one labelled point per
        layer. ``path`` may be one file or several (the suffix picks PNG or SVG)."""
        # A bare Figure renders through Agg (PNG) or the SVG backend: no pyplot, no display.
        from tinytorch.core.viz import label_points, new_figure

        fig = new_figure(9, 6)
        ax = fig.add_subplot(1, 1, 1)
        intensities = [p.intensity for p in points] + [self.ridge_point]
        lo = 10 ** math.floor(math.log10(max(min(intensities) / 4, 1e-3)))
        hi = 10 ** math.ceil(math.log10(max(intensities) * 4))
        ridge = self.ridge_point
        ax.plot([lo, ridge], [self.bandwidth_gbs * lo, self.peak_gflops], color="tab:blue",
                lw=2, label=f"memory ceiling {self.bandwidth_gbs:.1f} GB/s (STREAM copy)")
        ax.plot([ridge, hi], [self.peak_gflops, self.peak_gflops], color="tab:red", lw=2,
                label=f"compute ceiling {self.peak_gflops:.1f} GFLOP/s (float32 GEMM)")
        if self.theoretical_gflops:
            ax.axhline(self.theoretical_gflops, color="grey", ls="--", lw=1,
                       label=f"theoretical peak {self.theoretical_gflops:.1f} GFLOP/s")
        ax.axvline(ridge, color="grey", ls=":", lw=1, label=f"ridge point {ridge:.2f} FLOP/B")
        colors = {"memory-bound": "tab:blue", "compute-bound": "tab:red"}
        flagged = False
        for p in points:
            if p.above_ceiling:  # drawn where it is, marked as a measurement problem
                label = "_nolegend_" if flagged else "above the compute ceiling: measurement problem"
                flagged = True
                ax.scatter([p.intensity], [p.achieved_gflops], color="tab:orange", marker="X",
                           zorder=4, edgecolors="black", s=80, label=label, gid=f"point:{p.name}")
            else:
                ax.scatter([p.intensity], [p.achieved_gflops], color=colors[p.bound], zorder=3,
                           edgecolors="black", s=36, label="_nolegend_", gid=f"point:{p.name}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ymin = min([p.achieved_gflops for p in points] + [self.bandwidth_gbs * lo])
        ymax = max([p.achieved_gflops for p in points] + [self.peak_gflops])
        ax.set_ylim(max(ymin / 4, 1e-4), ymax * 3)  # never clip a point off the plot
        ax.set_xlabel("arithmetic intensity (FLOP/byte)")
        ax.set_ylabel("performance (GFLOP/s, 1 multiply-add = 2 FLOPs)")
        ax.set_title(title or "Roofline")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        # beside each point where there is room, else in a column right of the axes: never overlapping
        label_points(ax, [p.intensity for p in points], [p.achieved_gflops for p in points],
                     [p.name for p in points])
        if path is not None:
            paths = [path] if isinstance(path, (str, Path)) else list(path)
            for p in paths:
                p = Path(p)
                if p.suffix.lower() not in (".png", ".svg"):
                    raise ValueError(f"roofline plot path must end in .png or .svg, got {str(p)!r}")
                p.parent.mkdir(parents=True, exist_ok=True)
                fig.savefig(p, dpi=120, bbox_inches="tight")
        return fig
