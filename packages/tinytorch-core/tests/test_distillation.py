"""KL divergence, the distillation loss and distillation through the Trainer.

The closed forms are written out here in NumPy, independently of the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import Tensor, data, gradcheck, manual_seed, nn, optim
from tinytorch.core import functional as F
from tinytorch.core.training import Distiller, Trainer


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _distributions(rng, rows=4, classes=6):
    q = rng.dirichlet(np.ones(classes), size=rows)
    p = rng.dirichlet(np.ones(classes), size=rows)
    return q, p


# ------------------------------------------------------------------------------------- kl_div


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_reductions_against_closed_form(log_target):
    rng = np.random.default_rng(0)
    q, p = _distributions(rng)
    pointwise = p * (np.log(p) - np.log(q))  # KL(p ‖ q) term by term
    target = np.log(p) if log_target else p
    x = Tensor(np.log(q))

    def kl(reduction):
        return F.kl_div(x, target, reduction=reduction, log_target=log_target).numpy()

    np.testing.assert_allclose(kl("none"), pointwise, rtol=1e-12)
    np.testing.assert_allclose(kl("sum"), pointwise.sum(), rtol=1e-12)
    np.testing.assert_allclose(kl("batchmean"), pointwise.sum() / 4, rtol=1e-12)  # KL per row
    np.testing.assert_allclose(kl("mean"), pointwise.sum() / 24, rtol=1e-12)  # per element (PyTorch's default)
    np.testing.assert_allclose(F.kl_div(x, target, log_target=log_target).numpy(), pointwise.mean(), rtol=1e-12)
    # the module form is the same function
    np.testing.assert_allclose(nn.KLDivLoss("batchmean", log_target)(x, target).numpy(), pointwise.sum() / 4,
                               rtol=1e-12)


def test_kl_div_zero_target_probability_contributes_nothing():
    x = Tensor(np.log(np.array([[0.2, 0.3, 0.5]])))
    p = np.array([[0.0, 0.4, 0.6]])  # 0·log 0 = 0, as PyTorch's xlogy
    expected = 0.4 * np.log(0.4 / 0.3) + 0.6 * np.log(0.6 / 0.5)
    out = F.kl_div(x, p, reduction="sum")
    assert np.isfinite(out.item())
    np.testing.assert_allclose(out.item(), expected, rtol=1e-12)


def test_kl_div_broadcasts_and_checks_arguments():
    rng = np.random.default_rng(1)
    q, p = _distributions(rng, rows=3)
    out = F.kl_div(Tensor(np.log(q)), p[0], reduction="none")  # one target row for every input row
    np.testing.assert_allclose(out.numpy(), p[0] * (np.log(p[0]) - np.log(q)), rtol=1e-12)
    with pytest.raises(ValueError, match="reduction must be 'batchmean'.*got 'avg'"):
        F.kl_div(Tensor(np.log(q)), p, reduction="avg")
    with pytest.raises(ValueError, match=r"input \(3, 6\) and target \(3, 5\) do not broadcast"):
        F.kl_div(Tensor(np.log(q)), p[:, :5])
    with pytest.raises(ValueError, match="batchmean.*scalar"):
        F.kl_div(Tensor(np.float64(0.0)), 1.0, reduction="batchmean")
    with pytest.raises(TypeError, match="input must be a Tensor"):
        F.kl_div(np.log(q), p)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_gradcheck(reduction, log_target):
    rng = np.random.default_rng(2)
    q, p = _distributions(rng, rows=3, classes=5)
    x = Tensor(np.log(q), requires_grad=True)
    t = Tensor(np.log(p) if log_target else p, requires_grad=True)
    assert gradcheck(lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=log_target), [x, t])
    # composed with log_softmax, as distillation uses it: logits in, any real values
    z = Tensor(rng.normal(size=(3, 5)), requires_grad=True)
    assert gradcheck(lambda a: F.kl_div(F.log_softmax(a), p, reduction=reduction), [z])


# ------------------------------------------------------------------------------------- distillation loss


def _distillation_closed_form(student, teacher, labels, temperature, alpha):
    """alpha·T²·KL(softmax(teacher/T) ‖ softmax(student/T)) per position + (1-alpha)·CE, and its gradient."""
    v = student.shape[-1]
    s2, t2, y = student.reshape(-1, v), teacher.reshape(-1, v), labels.reshape(-1)
    n = len(y)
    log_q, log_p = _log_softmax(s2 / temperature), _log_softmax(t2 / temperature)
    kl = (np.exp(log_p) * (log_p - log_q)).sum() / n
    log_probs = _log_softmax(s2)
    ce = -log_probs[np.arange(n), y].mean()
    # d/ds of T²·KL is T·(q_T - p_T)/n; of CE, (softmax(s) - onehot)/n
    onehot = np.eye(v)[y]
    grad = alpha * temperature * (np.exp(log_q) - np.exp(log_p)) / n + (1 - alpha) * (np.exp(log_probs) - onehot) / n
    return alpha * temperature**2 * kl + (1 - alpha) * ce, grad.reshape(student.shape)


@pytest.mark.parametrize("temperature,alpha", [(4.0, 0.7), (1.0, 0.5), (2.5, 1.0), (3.0, 0.0)])
def test_distillation_loss_at_temperature_against_closed_form(temperature, alpha):
    rng = np.random.default_rng(3)
    student = rng.normal(size=(2, 3, 7)) * 3
    teacher = rng.normal(size=(2, 3, 7)) * 3
    labels = rng.integers(0, 7, size=(2, 3))
    expected, expected_grad = _distillation_closed_form(student, teacher, labels, temperature, alpha)
    s = Tensor(student, requires_grad=True)
    loss = F.distillation_loss(s, teacher, labels, temperature=temperature, alpha=alpha)
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-10)
    loss.backward()
    # the T² factor keeps the soft gradient at alpha·T·(q_T - p_T): without it, 1/T² of that
    np.testing.assert_allclose(s.grad, expected_grad, rtol=1e-9, atol=1e-14)
    module = nn.DistillationLoss(temperature, alpha)
    np.testing.assert_allclose(module(Tensor(student), Tensor(teacher), labels).item(), expected, rtol=1e-10)


def test_distillation_loss_gradcheck_and_constant_teacher():
    rng = np.random.default_rng(4)
    s = Tensor(rng.normal(size=(4, 5)), requires_grad=True)
    t = Tensor(rng.normal(size=(4, 5)), requires_grad=True)
    labels = rng.integers(0, 5, size=4)
    assert gradcheck(lambda a: F.distillation_loss(a, t, labels, temperature=3.0, alpha=0.6), [s])
    F.distillation_loss(s, t, labels, temperature=3.0, alpha=0.6).backward()
    assert t.grad is None  # the teacher's distribution is a constant target


def test_distillation_loss_checks_arguments():
    s, t = Tensor(np.zeros((2, 4))), np.zeros((2, 4))
    for bad in (0, -1.0, float("inf"), float("nan"), True, "2"):
        with pytest.raises(ValueError, match=f"temperature must be a finite number > 0, got {bad!r}"):
            F.distillation_loss(s, t, [0, 1], temperature=bad)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"alpha must be a finite number in \[0.0, 1.0\]"):
            nn.DistillationLoss(alpha=bad)
    with pytest.raises(ValueError, match=r"teacher logits \(2, 5\) and student logits \(2, 4\) differ"):
        F.distillation_loss(s, np.zeros((2, 5)), [0, 1])


# ------------------------------------------------------------------------------------- through the Trainer


def _toy_problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return x, y


def _teacher(x, y):
    manual_seed(0)
    teacher = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=32, shuffle=True, seed=0)
    Trainer(teacher, optim.Adam(teacher.parameters(), lr=0.02), nn.CrossEntropyLoss(), progress=False).fit(
        loader, epochs=5)
    for p in teacher.parameters():
        p.grad = None  # what its own training left
    return teacher


def _kl_to_teacher(student, teacher, x, temperature):
    """KL(teacher_T ‖ student_T) per row, in NumPy."""
    teacher.eval()
    student.eval()
    log_p = _log_softmax(teacher(Tensor(x)).numpy() / temperature)
    log_q = _log_softmax(student(Tensor(x)).numpy() / temperature)
    return float((np.exp(log_p) * (log_p - log_q)).sum(axis=-1).mean())


def test_distiller_trains_the_student_and_never_the_teacher():
    x, y = _toy_problem()
    teacher = _teacher(x, y)
    before = {k: v.copy() for k, v in teacher.state_dict().items()}
    manual_seed(1)
    student = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    distiller = Distiller(teacher, temperature=2.0, alpha=1.0)
    assert not teacher.training
    teacher.train()  # put back in training mode by mistake: the Distiller still runs it in eval mode (no dropout)
    kl_before = _kl_to_teacher(student, teacher, x, 2.0)
    teacher.train()
    # Labels that carry nothing of the teacher: with alpha 1 the student learns from the teacher
    # alone, so its distribution can only approach the teacher's if the Trainer ran the teacher.
    noise = np.random.default_rng(5).integers(0, 3, size=len(y))
    loader = data.DataLoader(data.TensorDataset(x, noise), batch_size=32, shuffle=True, seed=0)
    trainer = Trainer(student, optim.Adam(student.parameters(), lr=0.02), distiller, progress=False)
    history = trainer.fit(loader, epochs=6, val_data=loader)
    assert not teacher.training
    kl_after = _kl_to_teacher(student, teacher, x, 2.0)
    assert kl_after < 0.2 * kl_before, (kl_before, kl_after)
    assert all(p.grad is None for p in teacher.parameters())
    assert not distiller.teacher_logits(Tensor(x)).requires_grad  # no graph is recorded for the teacher
    for name, value in teacher.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    # evaluation is the plain cross-entropy on the labels (comparable with a student trained alone)
    student.eval()
    ce = F.cross_entropy(student(Tensor(x)), noise).item()
    np.testing.assert_allclose(history.evals[-1]["val_loss"], ce, rtol=1e-5)
    assert history.steps[-1]["loss"] != pytest.approx(history.evals[-1]["val_loss"], rel=1e-3)


def test_distiller_loss_equals_distillation_loss_of_the_teacher_outputs():
    x, y = _toy_problem()
    manual_seed(2)
    teacher = nn.Sequential(nn.Linear(4, 3))
    student = nn.Sequential(nn.Linear(4, 3))
    xs, ys = Tensor(x[:16]), y[:16]
    out = student(xs)
    got = Distiller(teacher, temperature=3.0, alpha=0.25)(out, ys, xs).item()
    expected, _ = _distillation_closed_form(out.numpy().astype(np.float64), teacher(xs).numpy().astype(np.float64),
                                            ys, 3.0, 0.25)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert Distiller(teacher)(out, ys).item() == pytest.approx(F.cross_entropy(out, ys).item())


def test_distiller_checks_arguments():
    with pytest.raises(TypeError, match="teacher must be a Module, got function"):
        Distiller(lambda x: x)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0, got 0"):
        Distiller(nn.Linear(2, 2), temperature=0)
    teacher, student = nn.Linear(2, 5), nn.Linear(2, 4)
    xs = Tensor(np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"teacher logits \(3, 5\) and student logits \(3, 4\) differ in shape"):
        Distiller(teacher)(student(xs), [0, 1, 2], xs)
