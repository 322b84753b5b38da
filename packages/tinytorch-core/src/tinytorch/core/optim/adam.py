"""Adam and AdamW, with exactly PyTorch's update rules, in place and without temporaries.

Both keep, per parameter, a step count ``step`` and the moment estimates ``exp_avg`` (m) and
``exp_avg_sq`` (v), plus ``max_exp_avg_sq`` with ``amsgrad``. They differ only in weight decay:
Adam adds the L2 term ``weight_decay * p`` to the gradient (so it is rescaled by the adaptive
denominator); AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization") shrinks the
parameter directly, ``p -= lr * weight_decay * p``, before the Adam update.

The step runs every training iteration over every parameter, so it is written with NumPy
``out=`` operations into the moment buffers and one reusable work buffer: no parameter-sized
array is allocated per step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .optimizer import Optimizer, ParamsT, check_betas, check_non_negative


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with exactly ``torch.optim.Adam``'s update.

    For each parameter ``p`` with gradient ``g``, at step ``t = 1, 2, ...``::

        g = -g                                  if maximize
        g = g + weight_decay * p                if weight_decay != 0   (L2, Adam only)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                   if amsgrad (then v_max replaces v below)
        denom = sqrt(v) / sqrt(1 - beta2 ** t) + eps
        p = p - lr / (1 - beta1 ** t) * m / denom

    Args:
        params: Tensors or parameter-group dicts to optimize.
        lr: learning rate (>= 0).
        betas: decay rates (beta1, beta2) of the first and second moment estimates, in [0, 1).
        eps: added to the denominator for numerical stability (>= 0).
        weight_decay: L2 penalty coefficient (>= 0).
        amsgrad: use the maximum of all second moment estimates so far (AMSGrad).
        maximize: maximize the objective instead of minimizing it.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> p = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    >>> opt = Adam([p], lr=0.1)
    >>> p.grad = np.array([0.5, -3.0])
    >>> opt.step()
    >>> p.data.round(6)  # the first Adam step moves each coordinate by ~lr * sign(g)
    array([0.9, 2.1])
    """

    _decoupled_weight_decay = False

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
    ):
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        name = type(self).__name__
        check_non_negative(name, "lr", group["lr"])
        check_betas(name, group["betas"])
        check_non_negative(name, "eps", group["eps"])
        check_non_negative(name, "weight_decay", group["weight_decay"])

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        amsgrad = bool(group["amsgrad"])
        maximize = bool(group["maximize"])
        scratch = self._scratch
        w1 = 1.0 - beta1  # torch: exp_avg.lerp_(grad, 1 - beta1)

        for p, grad, state in self._params_with_grad(group):
            param = p.data
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(param)
                state["exp_avg_sq"] = np.zeros_like(param)
                if amsgrad:
                    state["max_exp_avg_sq"] = np.zeros_like(param)
            state["step"] += 1
            step = state["step"]
            m, v = state["exp_avg"], state["exp_avg_sq"]

            g = grad  # never written to: it may be shared with other tensors
            if self._decoupled_weight_decay:
                if weight_decay != 0.0:
                    np.multiply(param, 1.0 - lr * weight_decay, out=param)
                if maximize:
                    g = np.negative(grad, out=scratch.get(param, 1))
            elif weight_decay != 0.0:
                g = np.multiply(param, weight_decay, out=scratch.get(param, 1))
                if maximize:
                    np.subtract(g, grad, out=g)
                else:
                    np.add(g, grad, out=g)
            elif maximize:
                g = np.negative(grad, out=scratch.get(param, 1))

            tmp = scratch.get(param, 0)
            # m = lerp(m, g, w1), computed the way torch's lerp kernel does.
            np.subtract(g, m, out=tmp)
            if w1 < 0.5:
                np.multiply(tmp, w1, out=tmp)
                np.add(m, tmp, out=m)
            else:
                np.multiply(tmp, 1.0 - w1, out=tmp)
                np.subtract(g, tmp, out=m)
            # v = beta2 * v + (1 - beta2) * g * g
            np.multiply(v, beta2, out=v)
            np.multiply(g, g, out=tmp)
            np.multiply(tmp, 1.0 - beta2, out=tmp)
            np.add(v, tmp, out=v)

            if amsgrad:
                v_max = state.get("max_exp_avg_sq")
                if v_max is None:  # amsgrad switched on after some steps
                    v_max = state["max_exp_avg_sq"] = np.zeros_like(param)
                np.maximum(v_max, v, out=v_max)
                v = v_max

            bias_correction1 = 1.0 - beta1**step
            bias_correction2_sqrt = math.sqrt(1.0 - beta2**step)
            step_size = lr / bias_correction1
            # denom = sqrt(v) / sqrt(bias_correction2) + eps;  p -= step_size * m / denom
            denom = np.sqrt(v, out=tmp)
            np.divide(denom, bias_correction2_sqrt, out=denom)
            np.add(denom, eps, out=denom)
            update = np.divide(m, denom, out=tmp)
            np.multiply(update, -step_size, out=update)
            np.add(param, update, out=param)


class AdamW(Adam):
    """Adam with decoupled weight decay, with exactly ``torch.optim.AdamW``'s update.

    Each step first shrinks the parameter, ``p = p * (1 - lr * weight_decay)``, then applies the
    Adam update of :class:`Adam` to the raw gradient (no L2 term).

    Args:
        params: Tensors or parameter-group dicts to optimize.
        lr: learning rate (>= 0).
        betas: decay rates (beta1, beta2) of the moment estimates, in [0, 1).
        eps: added to the denominator for numerical stability (>= 0).
        weight_decay: decoupled weight decay coefficient (>= 0); default 1e-2 as in PyTorch.
        amsgrad: use the maximum of all second moment estimates so far (AMSGrad).
        maximize: maximize the objective instead of minimizing it.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> p = Tensor(np.array([1.0]), requires_grad=True)
    >>> opt = AdamW([p], lr=0.1, weight_decay=0.5)
    >>> p.grad = np.array([0.0])
    >>> opt.step()
    >>> p.data  # a zero gradient: only the decay 1 - 0.1 * 0.5 acts
    array([0.95])
    """

    _decoupled_weight_decay = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        maximize: bool = False,
    ):
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )
