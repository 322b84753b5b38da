"""Observers: modules that watch the values flowing through them and choose quantization
parameters, as ``torch.ao.quantization.observer``.

An observer's ``forward(x)`` records statistics and returns ``x`` unchanged; ``calculate_qparams()``
turns them into ``(scale, zero_point)`` through `choose_qparams`. ``MinMaxObserver`` keeps the
running min and max; ``MovingAverageMinMaxObserver`` an exponential moving average of each
batch's min and max (what QAT uses, so one odd batch does not stretch the range for good);
``PerChannelMinMaxObserver`` a min and max per index of ``ch_axis`` (weights: one scale per output
channel); ``HistogramObserver`` a histogram, from which it picks the clipping range with the
least expected squared quantization error, so a few outliers do not cost every other value its
resolution.

The statistics are buffers (``min_val``, ``max_val``, ``histogram``), so a prepared model's
``state_dict`` carries its calibration.
"""

from __future__ import annotations

import functools

import numpy as np

from ..checks import check_int, check_real
from ..nn.module import Module
from .functional import QDTYPES, QSCHEMES, _check_axis, _finite_array, check_qdtype, choose_qparams


class ObserverBase(Module):
    """What every observer shares: the target ``dtype`` and ``qscheme``, the quantization range,
    and ``with_args`` (a factory with preset arguments, as torch.ao's).

    Args:
        dtype: ``"int8"``, ``"uint8"``, ``"int4"`` or ``"uint4"``.
        qscheme: ``"per_tensor_affine"``, ``"per_tensor_symmetric"`` (per-channel observers:
            ``"per_channel_affine"``, ``"per_channel_symmetric"``).
        eps: the smallest scale.

    >>> class LastBatchObserver(ObserverBase):        # the range of the latest batch only
    ...     def __init__(self):
    ...         super().__init__("uint8")
    ...         self.register_buffer("min_val", np.array(np.inf)); self.register_buffer("max_val", np.array(-np.inf))
    ...     def forward(self, x):
    ...         self.min_val.data, self.max_val.data = np.min(x), np.max(x)
    ...         return x
    >>> obs = LastBatchObserver(); _ = obs(np.array([0.0, 5.1]))
    >>> [round(float(v), 3) for v in obs.calculate_qparams()]
    [0.02, 0.0]
    """

    _per_channel = False

    def __init__(self, dtype: str = "uint8", qscheme: str = "per_tensor_affine",
                 eps: float = float(np.finfo(np.float32).eps)):
        super().__init__()
        owner = type(self).__name__
        self.dtype = check_qdtype(owner, dtype)
        wanted = [q for q in QSCHEMES if q.startswith("per_channel") == self._per_channel]
        if qscheme not in wanted:
            raise ValueError(f"{owner}: qscheme must be one of {', '.join(wanted)}, got {qscheme!r}")
        self.qscheme = qscheme
        self.quant_min, self.quant_max = QDTYPES[self.dtype]
        self.eps = check_real(owner, "eps", eps, minimum=0.0)

    @classmethod
    def with_args(cls, **kwargs):
        """A zero-argument factory of this observer with ``kwargs`` preset.

        >>> make = MinMaxObserver.with_args(dtype="int8", qscheme="per_tensor_symmetric")
        >>> make().dtype, make().qscheme
        ('int8', 'per_tensor_symmetric')
        """
        return functools.partial(cls, **kwargs)

    @property
    def symmetric(self) -> bool:
        return self.qscheme.endswith("symmetric")

    def _values(self, x) -> np.ndarray:
        return _finite_array(type(self).__name__, "x", x)

    def _observed(self) -> bool:
        return bool(np.isfinite(self.min_val.data).all())

    def calculate_qparams(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, zero_point) for the range seen so far (float32 and int64 arrays)."""
        if not self._observed():
            raise RuntimeError(f"{type(self).__name__}: calculate_qparams before any data was observed; "
                               "run calibration batches through the model first")
        return choose_qparams(self.min_val.data, self.max_val.data, self.dtype, self.symmetric, self.eps)

    def extra_repr(self) -> str:
        return f"dtype={self.dtype}, qscheme={self.qscheme}, min_val={self.min_val.data}, max_val={self.max_val.data}"


class MinMaxObserver(ObserverBase):
    """The running minimum and maximum of everything observed.

    >>> obs = MinMaxObserver(dtype="uint8")
    >>> _ = obs(np.array([-1.0, 2.0])); _ = obs(np.array([3.0]))
    >>> float(obs.min_val.data), float(obs.max_val.data)
    (-1.0, 3.0)
    >>> scale, zero = obs.calculate_qparams()
    >>> round(float(scale) * 255, 5), int(zero)
    (4.0, 64)
    """

    def __init__(self, dtype: str = "uint8", qscheme: str = "per_tensor_affine",
                 eps: float = float(np.finfo(np.float32).eps)):
        super().__init__(dtype, qscheme, eps)
        self.register_buffer("min_val", np.array(np.inf, dtype=np.float32))
        self.register_buffer("max_val", np.array(-np.inf, dtype=np.float32))

    def reset_min_max_vals(self) -> None:
        """Forget everything observed."""
        self.min_val.data = np.full_like(self.min_val.data, np.inf)
        self.max_val.data = np.full_like(self.max_val.data, -np.inf)

    def _update(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self.min_val.data = np.minimum(self.min_val.data, lo).astype(np.float32)
        self.max_val.data = np.maximum(self.max_val.data, hi).astype(np.float32)

    def forward(self, x):
        v = self._values(x)
        if v.size:
            self._update(v.min(), v.max())
        return x


class MovingAverageMinMaxObserver(MinMaxObserver):
    """An exponential moving average of each batch's min and max: the first batch sets them,
    then ``min ← min + c·(batch_min - min)`` (and so for max) with ``c = averaging_constant``.

    >>> obs = MovingAverageMinMaxObserver(averaging_constant=0.5)
    >>> _ = obs(np.array([0.0, 4.0])); _ = obs(np.array([-2.0, 2.0]))
    >>> float(obs.min_val.data), float(obs.max_val.data)
    (-1.0, 3.0)
    """

    def __init__(self, averaging_constant: float = 0.01, dtype: str = "uint8",
                 qscheme: str = "per_tensor_affine", eps: float = float(np.finfo(np.float32).eps)):
        super().__init__(dtype, qscheme, eps)
        self.averaging_constant = check_real(type(self).__name__, "averaging_constant",
                                             averaging_constant, minimum=0.0, maximum=1.0)

    def _update(self, lo, hi) -> None:
        if not self._observed():
            super()._update(lo, hi)
            return
        c = self.averaging_constant
        self.min_val.data = (self.min_val.data + c * (lo - self.min_val.data)).astype(np.float32)
        self.max_val.data = (self.max_val.data + c * (hi - self.max_val.data)).astype(np.float32)


class PerChannelMinMaxObserver(ObserverBase):
    """The running min and max of each index of ``ch_axis`` (for weights: axis 0, the output
    channels), giving one scale and zero point per channel.

    >>> obs = PerChannelMinMaxObserver(ch_axis=0, dtype="int8", qscheme="per_channel_symmetric")
    >>> _ = obs(np.array([[1.0, -2.0], [0.5, 0.25]]))
    >>> obs.max_val.data.tolist(), obs.calculate_qparams()[0].tolist() == np.float32([2 / 127.5, 0.5 / 127.5]).tolist()
    ([1.0, 0.5], True)
    """

    _per_channel = True

    def __init__(self, ch_axis: int = 0, dtype: str = "int8", qscheme: str = "per_channel_symmetric",
                 eps: float = float(np.finfo(np.float32).eps)):
        super().__init__(dtype, qscheme, eps)
        self.ch_axis = check_int(type(self).__name__, "ch_axis", ch_axis)
        self.register_buffer("min_val", np.full(0, np.inf, dtype=np.float32))
        self.register_buffer("max_val", np.full(0, -np.inf, dtype=np.float32))

    def _observed(self) -> bool:
        return self.min_val.data.size > 0

    def reset_min_max_vals(self) -> None:
        """Forget everything observed."""
        self.min_val.data = np.full(0, np.inf, dtype=np.float32)
        self.max_val.data = np.full(0, -np.inf, dtype=np.float32)

    def forward(self, x):
        v = self._values(x)
        axis = _check_axis(type(self).__name__, self.ch_axis, v.ndim)
        rows = np.moveaxis(v, axis, 0).reshape(v.shape[axis], -1)
        lo, hi = rows.min(axis=1), rows.max(axis=1)
        if self._observed():
            if lo.size != self.min_val.data.size:
                raise ValueError(f"{type(self).__name__}: saw {self.min_val.data.size} channels before, "
                                 f"now {lo.size} along axis {self.ch_axis}")
            lo, hi = np.minimum(self.min_val.data, lo), np.maximum(self.max_val.data, hi)
        self.min_val.data, self.max_val.data = lo.astype(np.float32), hi.astype(np.float32)
        return x


class HistogramObserver(MinMaxObserver):
    """A histogram of the values seen; ``calculate_qparams`` clips where quantization error is least.

    The histogram has ``bins`` equal bins over the running [min, max]; when a batch widens the
    range, the old counts are moved into the new bins (each old bin's count to the bin holding
    its centre). The clipping range [lo, hi] is then chosen as torch.ao's HistogramObserver
    does, greedily: starting from the whole range, move in whichever end drops the next
    ``step`` of probability mass with fewer bins, while the expected squared error keeps
    falling. The error of a candidate range with step Δ = (hi - lo)/(qmax - qmin) is the
    rounding noise Δ²/12 of every value inside plus (c - bound)² for the values of every bin
    centre c clipped outside.

    Args:
        bins: histogram bins.
        dtype: the quantized dtype.
        qscheme: per-tensor affine or symmetric.
        eps: the smallest scale.

    >>> from tinytorch.core.quantization import dequantize, quantize_per_tensor
    >>> x = np.random.default_rng(0).laplace(size=100_000)          # heavy tails
    >>> hist, minmax = HistogramObserver(), MinMaxObserver()
    >>> _ = hist(x); _ = minmax(x)
    >>> def mse(obs):
    ...     s, z = obs.calculate_qparams()
    ...     return float(((dequantize(quantize_per_tensor(x, float(s), int(z), "uint8")).numpy() - x) ** 2).mean())
    >>> bool(hist._clip_range()[1] < x.max()), mse(hist) < mse(minmax)    # clips the sparse tail, and gains
    (True, True)
    """

    def __init__(self, bins: int = 2048, dtype: str = "uint8", qscheme: str = "per_tensor_affine",
                 eps: float = float(np.finfo(np.float32).eps)):
        super().__init__(dtype, qscheme, eps)
        self.bins = check_int(type(self).__name__, "bins", bins, minimum=2)
        self.register_buffer("histogram", np.zeros(self.bins, dtype=np.float64))
        # the histogram's range in float64: rounding it to float32 could leave the extremes outside
        self.min_val.data, self.max_val.data = np.array(np.inf), np.array(-np.inf)

    def forward(self, x):
        v = self._values(x).astype(np.float64).ravel()
        if not v.size:
            return x
        lo, hi = min(v.min(), float(self.min_val.data)), max(v.max(), float(self.max_val.data))
        if hi == lo:  # one value so far: a range of width 0 has no bins
            hi = lo + max(abs(lo), 1.0) * 1e-6
        if self._observed():
            self.histogram.data = self._rebinned(lo, hi)
        new, _ = np.histogram(v, bins=self.bins, range=(lo, hi))
        self.histogram.data = self.histogram.data + new
        self.min_val.data, self.max_val.data = np.array(lo), np.array(hi)
        return x

    def reset_min_max_vals(self) -> None:
        """Forget everything observed, histogram included."""
        super().reset_min_max_vals()
        self.histogram.data = np.zeros(self.bins, dtype=np.float64)

    def _rebinned(self, lo: float, hi: float) -> np.ndarray:
        old_lo, old_hi = float(self.min_val.data), float(self.max_val.data)
        width = (old_hi - old_lo) / self.bins
        centres = old_lo + (np.arange(self.bins) + 0.5) * width
        index = np.clip(((centres - lo) / (hi - lo) * self.bins).astype(np.int64), 0, self.bins - 1)
        return np.bincount(index, weights=self.histogram.data, minlength=self.bins)

    def _error(self, first: int, last: int, centres: np.ndarray, width: float) -> float:
        """Expected squared error of clipping to bins [first, last] (inclusive)."""
        counts = self.histogram.data
        lo, hi = centres[first] - width / 2, centres[last] + width / 2
        step = (hi - lo) / (self.quant_max - self.quant_min)
        inside = counts[first:last + 1].sum() * step * step / 12
        below = (counts[:first] * (centres[:first] - lo) ** 2).sum()
        above = (counts[last + 1:] * (centres[last + 1:] - hi) ** 2).sum()
        return float(inside + below + above)

    def _clip_range(self) -> tuple[float, float]:
        counts = self.histogram.data
        lo, hi = float(self.min_val.data), float(self.max_val.data)
        width = (hi - lo) / self.bins
        centres = lo + (np.arange(self.bins) + 0.5) * width
        cdf = np.cumsum(counts) / counts.sum()
        first, last = 0, self.bins - 1
        best = self._error(first, last, centres, width)
        alpha, beta, step = 0.0, 1.0, 1e-5  # torch.ao's step: 0.001 % of the mass per move
        while alpha < beta:
            next_alpha, next_beta = alpha + step, beta - step
            left = min(int(np.searchsorted(cdf, next_alpha, side="left")), last)
            right = max(int(np.searchsorted(cdf, next_beta, side="left")), first)
            if left - first > last - right:   # the left end moves further for the same mass
                cand, alpha = (left, last), next_alpha
            else:
                cand, beta = (first, right), next_beta
            if cand == (first, last):
                continue
            if cand[0] > cand[1]:
                break
            error = self._error(*cand, centres, width)
            if error > best:
                break
            best, (first, last) = error, cand
        return centres[first] - width / 2, centres[last] + width / 2

    def calculate_qparams(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, zero_point) of the clipping range with the least expected squared error."""
        if not self._observed():
            return super().calculate_qparams()  # the "nothing observed" error
        lo, hi = self._clip_range()
        return choose_qparams(np.float64(lo), np.float64(hi), self.dtype, self.symmetric, self.eps)

    def extra_repr(self) -> str:
        return f"bins={self.bins}, " + super().extra_repr()


__all__ = ["ObserverBase", "MinMaxObserver", "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver",
           "HistogramObserver"]
