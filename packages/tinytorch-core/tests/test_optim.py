"""Optimizers, LR schedulers and gradient clipping against update rules written out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tinytorch.core import Tensor
from tinytorch.core.optim import (
    SGD,
    Adam,
    AdamW,
    Optimizer,
    clip_grad_norm_,
    clip_grad_value_,
    lr_scheduler,
)

P0 = np.array([[0.5, -1.5, 2.0], [0.25, 3.0, -0.75]])
# Three steps of gradients; the last one is small so AMSGrad's running max matters.
GRADS = [
    np.array([[1.0, -2.0, 0.5], [3.0, -0.25, 0.1]]),
    np.array([[-0.5, 1.0, 2.0], [0.2, 0.4, -3.0]]),
    np.array([[0.01, -0.02, 0.03], [0.02, 0.01, -0.01]]),
]


def param(values=P0, dtype=np.float64) -> Tensor:
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


def run(opt: Optimizer, p: Tensor, grads=GRADS) -> np.ndarray:
    for g in grads:
        p.grad = g.astype(p.data.dtype)
        opt.step()
    return p.data


# ----------------------------------------------------------------------------- reference rules
def sgd_reference(
    p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False
):
    """torch.optim.SGD's documented algorithm, written out directly."""
    p = p.copy()
    b = None
    for g in grads:
        g = -g if maximize else g
        g = g + weight_decay * p
        if momentum != 0:
            b = g.copy() if b is None else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        p = p - lr * g
    return p


def adam_reference(
    p,
    grads,
    lr,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    decoupled=False,
    maximize=False,
):
    """torch.optim.Adam / AdamW's documented algorithm, written out directly."""
    p = p.copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    v_max = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        if decoupled:
            p = p - lr * weight_decay * p
        else:
            g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        if amsgrad:
            v_max = np.maximum(v_max, v)
            v_hat = v_max
        else:
            v_hat = v
        m_hat = m / (1 - beta1**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) / math.sqrt(1 - beta2**t) + eps)
    return p


# ----------------------------------------------------------------------------- SGD
SGD_CASES = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.1, momentum=0.9),
    "dampening": dict(lr=0.05, momentum=0.8, dampening=0.3),
    "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True),
    "weight_decay": dict(lr=0.1, weight_decay=0.01),
    "momentum_weight_decay": dict(lr=0.1, momentum=0.9, weight_decay=0.1),
    "nesterov_weight_decay_maximize": dict(
        lr=0.1, momentum=0.5, weight_decay=0.2, nesterov=True, maximize=True
    ),
}


@pytest.mark.parametrize("name", list(SGD_CASES))
def test_sgd_matches_reference(name):
    kwargs = SGD_CASES[name]
    p = param()
    got = run(SGD([p], **kwargs), p)
    np.testing.assert_allclose(got, sgd_reference(P0, GRADS, **kwargs), rtol=1e-13, atol=1e-15)


def test_sgd_momentum_by_hand():
    # buf1 = g1 = 1, p = 1 - 0.1;  buf2 = 0.9 * 1 + 2 = 2.9, p -= 0.29;  buf3 = 2.61 + 0 = 2.61
    p = param([1.0])
    run(SGD([p], lr=0.1, momentum=0.9), p, [np.array([1.0]), np.array([2.0]), np.array([0.0])])
    np.testing.assert_allclose(p.data, [1.0 - 0.1 - 0.29 - 0.261], rtol=1e-14)


def test_sgd_nesterov_by_hand():
    # step 1: buf = 1, update g + 0.9 * buf = 1.9; step 2: buf = 0.9 + 1 = 1.9, g = 1 + 1.71
    p = param([0.0])
    run(SGD([p], lr=1.0, momentum=0.9, nesterov=True), p, [np.array([1.0]), np.array([1.0])])
    np.testing.assert_allclose(p.data, [-(1.9 + 2.71)], rtol=1e-14)


# ----------------------------------------------------------------------------- Adam / AdamW
ADAM_CASES = {
    "default": dict(lr=0.01),
    "betas_eps": dict(lr=0.1, betas=(0.8, 0.9), eps=0.1),  # a large eps checks its placement
    "l2": dict(lr=0.01, weight_decay=0.1),
    "amsgrad": dict(lr=0.01, amsgrad=True),
    "amsgrad_l2_maximize": dict(
        lr=0.01, betas=(0.3, 0.5), weight_decay=0.05, amsgrad=True, maximize=True
    ),
}


def _reference_kwargs(kwargs):
    kwargs = dict(kwargs)
    beta1, beta2 = kwargs.pop("betas", (0.9, 0.999))
    return dict(kwargs, beta1=beta1, beta2=beta2)


@pytest.mark.parametrize("name", list(ADAM_CASES))
def test_adam_matches_reference(name):
    kwargs = ADAM_CASES[name]
    p = param()
    got = run(Adam([p], **kwargs), p)
    expected = adam_reference(P0, GRADS, **_reference_kwargs(kwargs))
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adamw_matches_reference_with_decoupled_decay(amsgrad):
    kwargs = dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.5, amsgrad=amsgrad)
    p = param()
    got = run(AdamW([p], **kwargs), p)
    expected = adam_reference(P0, GRADS, decoupled=True, **_reference_kwargs(kwargs))
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)
    # ... and the decay really is decoupled: it differs from Adam's L2 version.
    l2 = adam_reference(P0, GRADS, **_reference_kwargs(kwargs))
    assert not np.allclose(got, l2)


def test_adamw_default_weight_decay_is_1e_2():
    assert AdamW([param()]).param_groups[0]["weight_decay"] == 1e-2
    assert Adam([param()]).param_groups[0]["weight_decay"] == 0.0


def test_adam_first_step_by_hand():
    # m = 0.1 g, v = 0.001 g^2 -> m_hat = g, v_hat = g^2: the step is lr * g / (|g| + eps).
    p = param([1.0, 1.0])
    run(Adam([p], lr=0.5, eps=0.0), p, [np.array([4.0, -0.01])])
    np.testing.assert_allclose(p.data, [0.5, 1.5], rtol=1e-12)


def test_adam_state_has_per_parameter_step_count():
    a, b = param(), param()
    opt = Adam([a, b], lr=0.01)
    a.grad = GRADS[0]
    opt.step()
    a.grad, b.grad = GRADS[1], GRADS[1]
    opt.step()
    assert opt.state[0]["step"] == 2
    assert opt.state[1]["step"] == 1
    # b's first step uses step count 1 for its bias correction.
    np.testing.assert_allclose(b.data, adam_reference(P0, [GRADS[1]], lr=0.01), rtol=1e-13)


# ----------------------------------------------------------------------------- common semantics
OPTIMIZERS = {
    "sgd": lambda ps: SGD(ps, lr=0.1),
    "sgd_nesterov_wd": lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
    "sgd_dampening_maximize": lambda ps: SGD(
        ps, lr=0.1, momentum=0.9, dampening=0.5, maximize=True
    ),
    "adam": lambda ps: Adam(ps, lr=0.01, weight_decay=0.1),
    "adam_amsgrad": lambda ps: Adam(ps, lr=0.01, amsgrad=True, maximize=True),
    "adamw": lambda ps: AdamW(ps, lr=0.01, amsgrad=True),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_float32_parameter_stays_float32(name):
    p64, p32 = param(), param(dtype=np.float32)
    run(OPTIMIZERS[name]([p64]), p64)
    opt32 = OPTIMIZERS[name]([p32])
    run(opt32, p32)
    assert p32.data.dtype == np.float32
    for value in opt32.state[0].values():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32
    np.testing.assert_allclose(p32.data, p64.data, rtol=1e-5, atol=1e-6)


def test_numpy_float64_hyperparameters_do_not_promote_float32():
    p = param(dtype=np.float32)
    opt = Adam(
        [p],
        lr=np.float64(0.01),
        betas=(np.float64(0.9), 0.999),
        eps=np.float64(1e-8),
        weight_decay=np.float64(0.1),
    )
    run(opt, p)
    assert p.data.dtype == np.float32


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_step_updates_in_place_and_never_touches_grad(name):
    a, b = param(), param()
    opt = OPTIMIZERS[name]([a, b])
    data_a = a.data
    for g in GRADS:
        shared = g.copy()
        a.grad = b.grad = shared  # one gradient array shared by two parameters
        opt.step()
        np.testing.assert_array_equal(shared, g)
    assert a.data is data_a
    np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_parameters_without_grad_are_skipped(name):
    a, b = param(), param()
    opt = OPTIMIZERS[name]([a, b])
    a.grad = GRADS[0]
    opt.step()
    np.testing.assert_array_equal(b.data, P0)
    assert 1 not in opt.state or not opt.state[1]
    assert not np.array_equal(a.data, P0)


def test_zero_grad():
    p = param()
    opt = SGD([p], lr=0.1)
    g = GRADS[0].copy()
    p.grad = g
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad, np.zeros_like(P0))
    np.testing.assert_array_equal(g, GRADS[0])  # a new array, the old one is untouched
    opt.zero_grad()
    assert p.grad is None


def test_param_groups_use_their_own_hyperparameters():
    a, b = param(), param()
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.01, "momentum": 0.9}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert opt.param_groups[0]["momentum"] == 0
    for g in GRADS:
        a.grad, b.grad = g, g
        opt.step()
    np.testing.assert_allclose(a.data, sgd_reference(P0, GRADS, lr=0.1), rtol=1e-13)
    np.testing.assert_allclose(b.data, sgd_reference(P0, GRADS, lr=0.01, momentum=0.9), rtol=1e-13)


def test_add_param_group_and_duplicates():
    a, b = param(), param()
    opt = Adam([a], lr=0.1)
    opt.add_param_group({"params": b, "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="more than one parameter group"):
        SGD([b, b], lr=0.1)


def test_invalid_params():
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        SGD(param(), lr=0.1)
    with pytest.raises(TypeError, match="only optimize Tensors"):
        SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match="floating-point"):
        SGD([Tensor(np.arange(3))], lr=0.1)


def test_closure_is_called_and_its_loss_returned():
    p = param()

    def closure():
        p.grad = GRADS[0]
        return 42.0

    assert SGD([p], lr=0.1).step(closure) == 42.0
    np.testing.assert_allclose(p.data, P0 - 0.1 * GRADS[0])


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda p: SGD([p], lr=-0.1), r"lr: -0\.1"),
        (lambda p: SGD([p], lr=float("nan")), r"lr: nan"),
        (lambda p: SGD([p], lr=0.1, momentum=-0.9), r"momentum: -0\.9"),
        (lambda p: SGD([p], lr=0.1, weight_decay=-1e-4), r"weight_decay: -0\.0001"),
        (lambda p: SGD([p], lr=0.1, nesterov=True), r"nesterov=True requires momentum > 0"),
        (lambda p: SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), r"dampening=0\.1"),
        (lambda p: SGD([{"params": [p], "lr": -1.0}], lr=0.1), r"lr: -1\.0"),
        (lambda p: SGD([p], lr="0.1"), r"lr: '0\.1'"),
        (lambda p: Adam([p], lr=-1e-3), r"lr: -0\.001"),
        (lambda p: Adam([p], betas=(1.0, 0.999)), r"betas\[0\]: 1\.0"),
        (lambda p: Adam([p], betas=(0.9, -0.1)), r"betas\[1\]: -0\.1"),
        (lambda p: Adam([p], betas=0.9), r"betas: 0\.9"),
        (lambda p: Adam([p], eps=-1e-8), r"eps: -1e-08"),
        (lambda p: AdamW([p], weight_decay=-0.01), r"weight_decay: -0\.01"),
    ],
)
def test_bad_hyperparameters_name_the_argument_and_value(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make(param())


# ----------------------------------------------------------------------------- state dicts
def _plain(value):
    """True if value is a plain number/bool/array/tuple/list/dict of those."""
    if isinstance(value, (bool, int, float, np.ndarray)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(v) for v in value.values())
    return False


def _through_json(sd):
    """What a checkpoint keeps: arrays as they are, everything else through JSON."""
    arrays = {
        i: {k: v for k, v in e.items() if isinstance(v, np.ndarray)} for i, e in sd["state"].items()
    }
    scalars = {
        i: {k: v for k, v in e.items() if not isinstance(v, np.ndarray)}
        for i, e in sd["state"].items()
    }
    meta = json.loads(json.dumps({"scalars": scalars, "param_groups": sd["param_groups"]}))
    state = {key: {**meta["scalars"][key], **arrays[int(key)]} for key in meta["scalars"]}
    return {"state": state, "param_groups": meta["param_groups"]}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_dict_round_trip_continues_like_an_uninterrupted_run(name):
    make = OPTIMIZERS[name]
    extra = [GRADS[2] * 3, GRADS[0] - 1]

    full_a, full_b = param(), param(P0 * 2)
    full = make([full_a, full_b])
    for g in GRADS + extra:
        full_a.grad, full_b.grad = g, -g
        full.step()

    a, b = param(), param(P0 * 2)
    first = make([a, b])
    for g in GRADS:
        a.grad, b.grad = g, -g
        first.step()
    sd = first.state_dict()
    assert _plain(sd)
    assert sorted(sd["state"]) == ([] if name == "sgd" else [0, 1])  # plain SGD keeps no state
    assert sd["param_groups"][0]["params"] == [0, 1]
    saved = _through_json(sd)
    weights = a.data.copy(), b.data.copy()

    # Keep stepping the first optimizer: the state dict must be a snapshot, not live buffers.
    a.grad = b.grad = GRADS[0]
    first.step()

    ra, rb = param(weights[0]), param(weights[1])
    resumed = make([ra, rb])
    resumed.param_groups[0]["lr"] = 123.0  # overwritten by the loaded hyperparameters
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == full.param_groups[0]["lr"]
    assert all(x is y for x, y in zip(resumed.param_groups[0]["params"], [ra, rb], strict=True))
    for g in extra:
        ra.grad, rb.grad = g, -g
        resumed.step()
    np.testing.assert_array_equal(ra.data, full_a.data)
    np.testing.assert_array_equal(rb.data, full_b.data)


def test_load_state_dict_restores_tuple_betas_and_casts_to_parameter_dtype():
    p = param()
    opt = Adam([p], lr=0.01, betas=(0.8, 0.9))
    run(opt, p)
    q = param(dtype=np.float32)
    other = Adam([q], lr=0.5)
    other.load_state_dict(_through_json(opt.state_dict()))
    assert other.param_groups[0]["betas"] == (0.8, 0.9)
    assert other.param_groups[0]["lr"] == 0.01
    assert other.state[0]["step"] == 3
    assert other.state[0]["exp_avg"].dtype == np.float32


def test_load_state_dict_mismatches_are_named():
    a, b = param(), param()
    opt = Adam([a, b], lr=0.01)
    a.grad = b.grad = GRADS[0]
    opt.step()
    sd = opt.state_dict()

    two_groups = Adam([{"params": [param()]}, {"params": [param()]}])
    with pytest.raises(ValueError, match=r"has 1 parameter group\(s\), but the optimizer has 2"):
        two_groups.load_state_dict({"state": {}, "param_groups": [sd["param_groups"][0]]})
    with pytest.raises(ValueError, match="group 0 has 2 parameter.*but 1 in the optimizer"):
        Adam([param()]).load_state_dict(sd)
    with pytest.raises(
        ValueError,
        match=r"'exp_avg' of parameter 1 has shape \(2, 3\), but the "
        r"parameter has shape \(3,\)",
    ):
        Adam([param(), param([1.0, 2.0, 3.0])]).load_state_dict(sd)
    with pytest.raises(ValueError, match="state for parameter 7"):
        Adam([param(), param()]).load_state_dict({**sd, "state": {7: {"step": 1}}})
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        Adam([param()]).load_state_dict({"state": {}})


# ----------------------------------------------------------------------------- schedulers
def _sgd(lr=1.0, groups=None):
    if groups is not None:
        return SGD([{"params": [param()], "lr": g} for g in groups], lr=lr)
    return SGD([param()], lr=lr)


def _lrs(opt, scheduler, n, group=0):
    """The lr in effect for n epochs (read, step the optimizer, step the scheduler)."""
    out = []
    for _ in range(n):
        out.append(opt.param_groups[group]["lr"])
        assert scheduler.get_last_lr()[group] == out[-1]
        scheduler.step()
    return out


def test_step_lr():
    opt = _sgd(0.5)
    got = _lrs(opt, lr_scheduler.StepLR(opt, step_size=3, gamma=0.1), 10)
    np.testing.assert_allclose(got, [0.5 * 0.1 ** (t // 3) for t in range(10)], rtol=1e-14)


def test_multistep_lr():
    opt = _sgd(1.0)
    got = _lrs(opt, lr_scheduler.MultiStepLR(opt, milestones=[2, 5], gamma=0.5), 8)
    assert got == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]


def test_exponential_lr():
    opt = _sgd(2.0)
    got = _lrs(opt, lr_scheduler.ExponentialLR(opt, gamma=0.9), 6)
    np.testing.assert_allclose(got, [2.0 * 0.9**t for t in range(6)], rtol=1e-14)


def test_cosine_annealing_lr_closed_form():
    base, eta_min, T = 0.1, 0.001, 10
    opt = _sgd(base)
    got = _lrs(opt, lr_scheduler.CosineAnnealingLR(opt, T_max=T, eta_min=eta_min), 15)
    expected = [eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / T)) / 2 for t in range(15)]
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    assert got[0] == base and math.isclose(got[T], eta_min)


def test_linear_lr():
    opt = _sgd(1.0)
    got = _lrs(opt, lr_scheduler.LinearLR(opt, start_factor=0.25, end_factor=1.0, total_iters=4), 7)
    np.testing.assert_allclose(got, [0.25, 0.4375, 0.625, 0.8125, 1.0, 1.0, 1.0], rtol=1e-14)


def test_lambda_lr_per_group():
    opt = _sgd(groups=[1.0, 0.1])
    sched = lr_scheduler.LambdaLR(opt, [lambda t: 1.0 / (t + 1), lambda t: 2.0**t])
    assert _lrs(opt, sched, 3, group=0) == [1.0, 0.5, 1.0 / 3]
    assert opt.param_groups[1]["lr"] == 0.1 * 2.0**3
    with pytest.raises(ValueError, match="expected 2 lr_lambda"):
        lr_scheduler.LambdaLR(opt, [lambda t: 1.0])


def nanogpt_lr(it, base, warmup, total, min_lr):
    """nanoGPT's train.py get_lr written out (warmup (it + 1) / (warmup + 1), then cosine)."""
    if it < warmup:
        return base * (it + 1) / (warmup + 1)
    if it >= total:
        return min_lr
    decay_ratio = (it - warmup) / (total - warmup)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (base - min_lr)


@pytest.mark.parametrize("warmup, total, ratio", [(10, 50, 0.1), (0, 20, 0.0), (5, 5, 0.5)])
def test_warmup_cosine(warmup, total, ratio):
    base = 6e-4
    opt = _sgd(base)
    got = _lrs(opt, lr_scheduler.warmup_cosine(opt, warmup, total, min_lr_ratio=ratio), total + 5)
    expected = [nanogpt_lr(t, base, warmup, total, base * ratio) for t in range(total + 5)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-18)
    if 0 < warmup < total:
        assert got[0] == pytest.approx(base / (warmup + 1)) and got[warmup] == pytest.approx(base)
    assert got[-1] == pytest.approx(base * ratio)


def test_warmup_cosine_total_set_later_and_warmup_fraction():
    base = 1.0
    opt = _sgd(base)
    sched = lr_scheduler.WarmupCosineLR(opt, total_steps=None, warmup_fraction=0.1, min_lr_ratio=0.1)
    # Total unknown: a fractional warmup has not begun.
    assert sched.get_last_lr() == [0.0]
    for _ in range(3):
        sched.step()
    sched.set_total_steps(40)  # warmup becomes 4 steps; step 3 is its last warmup step
    assert sched.warmup == 4 and sched.get_last_lr()[0] == pytest.approx(4 / 5)
    got = [sched.get_last_lr()[0]]
    for _ in range(40):
        sched.step()
        got.append(sched.get_last_lr()[0])
    expected = [nanogpt_lr(t, base, 4, 40, 0.1) for t in range(3, 44)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    state = sched.state_dict()
    assert state["total_steps"] == 40 and state["warmup_fraction"] == 0.1


def test_warmup_cosine_validates():
    with pytest.raises(ValueError, match="total_steps must be an integer >= 10, got 5"):
        lr_scheduler.warmup_cosine(_sgd(), warmup_steps=10, total_steps=5)
    with pytest.raises(ValueError, match="min_lr_ratio: 2"):
        lr_scheduler.warmup_cosine(_sgd(), warmup_steps=1, total_steps=5, min_lr_ratio=2)


def test_sequential_lr_warmup_then_cosine():
    opt = _sgd(1.0)
    warmup = lr_scheduler.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=3)
    cosine = lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    sched = lr_scheduler.SequentialLR(opt, [warmup, cosine], milestones=[3])
    got = _lrs(opt, sched, 8)
    expected = [0.1 + 0.9 * t / 3 for t in range(3)] + [
        (1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)


def test_scheduler_stores_initial_lr_and_drives_the_optimizer():
    p = param([0.0])
    opt = SGD([p], lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    assert opt.param_groups[0]["initial_lr"] == 1.0
    for _ in range(3):
        p.grad = np.array([1.0])
        opt.step()
        sched.step()
    np.testing.assert_allclose(p.data, [-(1.0 + 0.5 + 0.25)])
    assert opt.param_groups[0]["initial_lr"] == 1.0


def test_scheduler_resume_from_state_dicts():
    def make():
        opt = _sgd(groups=[1.0, 0.5])
        return opt, lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.01)

    opt, sched = make()
    reference = _lrs(opt, sched, 10, group=1)

    opt, sched = make()
    _lrs(opt, sched, 4)
    opt_sd = _through_json(opt.state_dict())
    sched_sd = json.loads(json.dumps(sched.state_dict()))

    opt2 = _sgd(groups=[0.3, 0.3])
    opt2.load_state_dict(opt_sd)
    sched2 = lr_scheduler.CosineAnnealingLR(opt2, T_max=10, eta_min=0.01, last_epoch=3)
    sched2.load_state_dict(sched_sd)
    assert sched2.last_epoch == 4
    assert sched2.base_lrs == [1.0, 0.5]
    assert _lrs(opt2, sched2, 6, group=1) == reference[4:]


def test_scheduler_resume_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(_sgd(), step_size=1, last_epoch=3)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda o: lr_scheduler.StepLR(o, step_size=0), r"StepLR: step_size must be an integer >= 1, got 0"),
        (lambda o: lr_scheduler.StepLR(o, step_size=2, gamma=-1), r"gamma must be a finite number >= 0.0, got -1"),
        (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=0), r"T_max must be an integer >= 1, got 0"),
        (lambda o: lr_scheduler.MultiStepLR(o, milestones=[5, 2]), r"increasing"),
        (lambda o: lr_scheduler.LinearLR(o, total_iters=0), r"total_iters must be an integer >= 1, got 0"),
    ],
)
def test_scheduler_bad_arguments(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make(_sgd())


# ----------------------------------------------------------------------------- clipping
def test_clip_grad_norm_scales_by_global_norm():
    a, b, c = param([0.0, 0.0]), param([0.0]), param([0.0])
    ga, gb = np.array([3.0, 4.0]), np.array([12.0])
    a.grad, b.grad = ga, gb  # c has no grad and is ignored
    total = clip_grad_norm_([a, b, c], max_norm=1.0)
    assert isinstance(total, float)
    assert total == pytest.approx(13.0, rel=1e-14)
    scale = 1.0 / (13.0 + 1e-6)
    np.testing.assert_allclose(a.grad, [3.0 * scale, 4.0 * scale], rtol=1e-14)
    np.testing.assert_allclose(b.grad, [12.0 * scale], rtol=1e-14)
    # New arrays: the originals are untouched.
    np.testing.assert_array_equal(ga, [3.0, 4.0])
    assert c.grad is None
    assert clip_grad_norm_([a, b], max_norm=1.0) == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_below_threshold_leaves_grads():
    p = param([0.0, 0.0])
    g = np.array([0.3, 0.4])
    p.grad = g
    assert clip_grad_norm_(p, max_norm=1.0) == pytest.approx(0.5)
    assert p.grad is g


@pytest.mark.parametrize("norm_type, expected", [(float("inf"), 12.0), (1.0, 19.0), (3.0, None)])
def test_clip_grad_norm_other_norms(norm_type, expected):
    a, b = param([0.0, 0.0]), param([0.0])
    a.grad, b.grad = np.array([3.0, -4.0]), np.array([-12.0])
    if expected is None:
        expected = (27.0 + 64.0 + 1728.0) ** (1.0 / 3.0)
    total = clip_grad_norm_([a, b], max_norm=2.0, norm_type=norm_type)
    assert total == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(b.grad, [-12.0 * 2.0 / (expected + 1e-6)], rtol=1e-12)


def test_clip_grad_norm_keeps_float32_and_checks_nonfinite():
    p = param([0.0, 0.0], dtype=np.float32)
    p.grad = np.array([30.0, 40.0], dtype=np.float32)
    clip_grad_norm_([p], max_norm=5.0)
    assert p.grad.dtype == np.float32
    np.testing.assert_allclose(p.grad, [3.0, 4.0], rtol=1e-6)
    p.grad = np.array([np.inf, 1.0], dtype=np.float32)
    with pytest.raises(RuntimeError, match="inf"):
        clip_grad_norm_([p], max_norm=1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm: -1"):
        clip_grad_norm_([p], max_norm=-1)
    assert clip_grad_norm_([param()], max_norm=1.0) == 0.0  # no gradients at all


def test_clip_grad_value():
    p = param([0.0, 0.0, 0.0], dtype=np.float32)
    g = np.array([-3.0, 0.5, 3.0], dtype=np.float32)
    p.grad = g
    clip_grad_value_([p], 1.0)
    np.testing.assert_array_equal(p.grad, [-1.0, 0.5, 1.0])
    assert p.grad.dtype == np.float32
    np.testing.assert_array_equal(g, [-3.0, 0.5, 3.0])
    with pytest.raises(ValueError, match="clip_value: -1"):
        clip_grad_value_([p], -1)
