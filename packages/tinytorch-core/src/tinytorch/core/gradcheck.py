"""Finite-difference gradient checking, as ``torch.autograd.gradcheck``.

For a function f and inputs x, it draws a random upstream gradient u (uneven, so a backward that
sums where it should not is caught), then compares the analytic ∂⟨u, f(x)⟩/∂x from ``backward``
against central differences (⟨u, f(x+εeᵢ)⟩ - ⟨u, f(x-εeᵢ)⟩) / 2ε. Inputs must be float64: with
float32, rounding swamps the difference quotient.

For large inputs, ``max_elements`` switches to random directional derivatives: the analytic
⟨∇, v⟩ against (⟨u, f(x+εv)⟩ - ⟨u, f(x-εv)⟩) / 2ε for a few random unit vectors v.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .autograd import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when analytic and numerical gradients disagree (an ``AssertionError``).

    Its message names the input, the element (or random direction) and both values.

    >>> import numpy as np
    >>> from tinytorch.core import Function, Tensor
    >>> class BadSquareFunction(Function, op="bad_square"):
    ...     def forward(self, x):
    ...         self.x = x
    ...         return x * x
    ...     def backward(self, grad):
    ...         return self.x * grad          # should be 2·x·grad
    >>> x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    >>> try:
    ...     gradcheck(lambda t: BadSquareFunction.apply(t), [x])
    ... except GradcheckError:
    ...     print("caught")
    caught
    """


@dataclass
class GradcheckResult:
    """The worst element of one check: analytic vs numeric derivative and their difference."""
    ok: bool
    input_index: int
    element: tuple[int, ...] | None
    analytic: float
    numeric: float
    abs_error: float

    def report(self) -> str:
        """One line naming where the worst mismatch is and both values."""
        where = f"input {self.input_index}" + (
            f", element {self.element}" if self.element is not None else " (random direction)"
        )
        return (
            f"worst mismatch at {where}: analytic {self.analytic:.8g}, numeric {self.numeric:.8g}, "
            f"|difference| {self.abs_error:.3g}"
        )


def _outputs(fn: Callable, inputs: Sequence[Tensor]) -> list[Tensor]:
    out = fn(*inputs)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
    max_elements: int | None = 2000,
    directions: int = 8,
    raise_exception: bool = True,
) -> bool:
    """Check ``fn``'s backward against central finite differences.

    Args:
        fn: maps the input tensors to a tensor (or a tuple of tensors).
        inputs: float64 tensors; those with ``requires_grad=True`` are checked.
        eps: finite-difference step.
        atol: absolute tolerance: an element passes when
            |analytic - numeric| <= atol + rtol·|numeric|.
        rtol: relative tolerance (see ``atol``).
        seed: seeds the upstream gradient and the random directions.
        max_elements: inputs larger than this are checked along random directions.
        directions: how many random directions for large inputs.
        raise_exception: raise ``GradcheckError`` with the worst element instead of returning False.

    >>> from tinytorch.core import Tensor
    >>> import numpy as np
    >>> x = Tensor(np.random.default_rng(0).normal(size=(3, 4)), requires_grad=True)
    >>> gradcheck(lambda t: (t * t).tanh(), [x])
    True
    """
    inputs = list(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} must be float64 for finite differences, got {inputs[i].dtype}"
            )
    rng = np.random.default_rng(seed)
    outs = _outputs(fn, inputs)
    upstream = [rng.uniform(0.5, 1.5, size=o.shape) * rng.choice([-1.0, 1.0], size=o.shape)
                for o in outs]

    def objective() -> float:
        with no_grad():
            return float(sum(np.sum(o.data * u) for o, u in zip(_outputs(fn, inputs), upstream)))

    for i in checked:
        inputs[i].grad = None
    total = None
    for o, u in zip(outs, upstream):
        if not o.requires_grad:
            continue
        term = (o * Tensor(u)).sum()
        total = term if total is None else total + term
    if total is None:
        raise GradcheckError("gradcheck: no output depends on an input that requires grad")
    total.backward()

    worst: GradcheckResult | None = None

    def consider(index, element, analytic, numeric):
        nonlocal worst
        err = abs(analytic - numeric)
        ok = err <= atol + rtol * abs(numeric)
        excess = err - (atol + rtol * abs(numeric))
        if worst is None or excess > worst_excess[0]:
            worst_excess[0] = excess
            worst = GradcheckResult(ok, index, element, analytic, numeric, err)

    worst_excess = [-np.inf]
    for i in checked:
        x = inputs[i].data
        analytic = inputs[i].grad if inputs[i].grad is not None else np.zeros_like(x)
        if max_elements is None or x.size <= max_elements:
            for idx in np.ndindex(x.shape):
                original = x[idx]
                x[idx] = original + eps
                plus = objective()
                x[idx] = original - eps
                minus = objective()
                x[idx] = original
                consider(i, idx, float(analytic[idx]), (plus - minus) / (2 * eps))
        else:
            original = x.copy()
            for _ in range(directions):
                v = rng.normal(size=x.shape)
                v /= np.linalg.norm(v)
                x[...] = original + eps * v
                plus = objective()
                x[...] = original - eps * v
                minus = objective()
                x[...] = original
                consider(i, None, float(np.sum(analytic * v)), (plus - minus) / (2 * eps))
    assert worst is not None
    if not worst.ok:
        if raise_exception:
            raise GradcheckError("gradcheck failed: " + worst.report())
        return False
    return True
