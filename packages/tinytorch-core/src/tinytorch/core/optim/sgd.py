"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay (as PyTorch)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .optimizer import Optimizer, ParamsT, check_non_negative, check_number


class SGD(Optimizer):
    """Stochastic gradient descent, with exactly ``torch.optim.SGD``'s update.

    For each parameter ``p`` with gradient ``g`` (``mu`` = momentum, ``tau`` = dampening)::

        g = -g                       if maximize
        g = g + weight_decay * p     if weight_decay != 0
        b = g                        at the first step (no dampening), then
        b = mu * b + (1 - tau) * g
        g = g + mu * b               if nesterov, else g = b      (when momentum != 0)
        p = p - lr * g

    Args:
        params: Tensors or parameter-group dicts to optimize.
        lr: learning rate (>= 0).
        momentum: momentum factor (>= 0); 0 disables the momentum buffer.
        dampening: dampening for momentum.
        weight_decay: L2 penalty added to the gradient (>= 0).
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening == 0).
        maximize: maximize the objective instead of minimizing it.

    >>> import numpy as np
    >>> from tinytorch.core import Tensor
    >>> p = Tensor(np.array([1.0, -1.0]), requires_grad=True)
    >>> opt = SGD([p], lr=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     p.grad = np.array([1.0, 1.0])
    ...     opt.step()
    >>> p.data  # steps of 0.1 * 1, then 0.1 * (0.9 * 1 + 1)
    array([ 0.71, -1.29])
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
    ):
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        name = type(self).__name__
        check_non_negative(name, "lr", group["lr"])
        check_non_negative(name, "momentum", group["momentum"])
        check_non_negative(name, "weight_decay", group["weight_decay"])
        dampening = group["dampening"]
        check_number(name, "dampening", dampening)
        if group["nesterov"] and (group["momentum"] <= 0 or dampening != 0):
            raise ValueError(
                f"{name}: nesterov=True requires momentum > 0 and dampening == 0, got "
                f"momentum={group['momentum']!r} and dampening={dampening!r}"
            )

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = float(group["lr"])
        momentum = float(group["momentum"])
        dampening = float(group["dampening"])
        weight_decay = float(group["weight_decay"])
        nesterov = bool(group["nesterov"])
        maximize = bool(group["maximize"])
        scratch = self._scratch

        for p, grad, state in self._params_with_grad(group):
            param = p.data
            g = grad  # never written to: it may be shared with other tensors
            g_is_scratch = False
            if weight_decay != 0.0:
                g = np.multiply(param, weight_decay, out=scratch.get(param, 0))
                if maximize:
                    np.subtract(g, grad, out=g)
                else:
                    np.add(g, grad, out=g)
                g_is_scratch = True
            elif maximize:
                g = np.negative(grad, out=scratch.get(param, 0))
                g_is_scratch = True

            if momentum != 0.0:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = g.copy()
                else:
                    np.multiply(buf, momentum, out=buf)
                    if dampening == 0.0:
                        np.add(buf, g, out=buf)
                    else:
                        tmp = np.multiply(g, 1.0 - dampening, out=scratch.get(param, 1))
                        np.add(buf, tmp, out=buf)
                if nesterov:
                    tmp = np.multiply(buf, momentum, out=scratch.get(param, 1))
                    g = np.add(tmp, g, out=tmp)
                    g_is_scratch = True
                else:
                    g = buf
                    g_is_scratch = False

            if g_is_scratch:
                step = np.multiply(g, -lr, out=g)
            else:
                step = np.multiply(g, -lr, out=scratch.get(param, 1))
            np.add(param, step, out=param)
