"""The one contention check (issue 22 §2): the trainers' throughput says when other programs
were busy. The probe is simulated: the real machine may be busy or quiet."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import Tensor, contention, manual_seed, nn, optim, training
from tinytorch.core.data import DataLoader, TensorDataset


class _Probe:
    others_cores = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.result = {"others_cores": self.others_cores, "load_1min": 3.0,
                       "contended": self.others_cores > contention.CONTENDED_CORES}
        return False


def _fit_lines(monkeypatch, others_cores: float) -> list[str]:
    monkeypatch.setattr(training, "ContentionProbe", type("P", (_Probe,), {"others_cores": others_cores}))
    manual_seed(0)
    model = nn.Linear(4, 2)
    x = Tensor(np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32))
    data = DataLoader(TensorDataset(x, Tensor(np.arange(16) % 2)), batch_size=4)
    lines: list[str] = []
    trainer = training.Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(),
                               progress=False, unit="images")
    from tinytorch.core.callbacks import ProgressBar

    trainer.callbacks.append(ProgressBar(mode="lines", unit="images", echo=lines.append, every_seconds=1e9))
    trainer.fit(data, epochs=2, val_data=data)
    assert trainer.throughput_contention["others_cores"] == others_cores
    return lines


def test_training_lines_say_when_the_throughput_was_contended(monkeypatch):
    lines = _fit_lines(monkeypatch, 0.98)
    assert len(lines) == 2
    for line in lines:
        # beside the figure: "<rate> images/s (contended: ...)"
        assert " images/s (contended: other processes used 0.98 cores while training (load average 3.00))" in line
    quiet = _fit_lines(monkeypatch, 0.1)
    assert quiet and all("images/s" in line and "contended" not in line for line in quiet)


def test_unreadable_counters_are_not_contention(monkeypatch):
    monkeypatch.setattr(contention, "system_busy_seconds", lambda: None)
    with contention.ContentionProbe() as probe:
        pass
    assert probe.result["others_cores"] is None and probe.result["contended"] is False
    assert contention.contention_note(probe.result) is None


def test_probe_counts_only_other_processes_cpu(monkeypatch):
    """System busy time 5 s more, of which this process used 1 s, over 2 s of wall: 2 cores."""
    busy = iter([100.0, 105.0])
    own = iter([10.0, 11.0])
    wall = iter([50.0, 52.0])
    monkeypatch.setattr(contention, "system_busy_seconds", lambda: next(busy))
    monkeypatch.setattr(contention.time, "process_time", lambda: next(own))
    monkeypatch.setattr(contention.time, "perf_counter", lambda: next(wall))
    with contention.ContentionProbe() as probe:
        pass
    assert probe.result["others_cores"] == pytest.approx(2.0)
    assert probe.result["own_cpu_per_wall"] == pytest.approx(0.5) and probe.result["contended"]


def test_proc_stat_busy_time_leaves_out_idle_and_iowait(monkeypatch, tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 20 30 1000 500 7 3 40 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(stat if path == "/proc/stat" else path, *a, **k))
    monkeypatch.setattr(contention.os, "sysconf", lambda name: 100)
    assert contention.system_busy_seconds() == pytest.approx((100 + 20 + 30 + 7 + 3 + 40) / 100)
