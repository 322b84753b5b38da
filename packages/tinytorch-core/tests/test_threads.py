"""BLAS thread control (OpenBLAS through its C API)."""

import pytest

from tinytorch.core import get_num_threads, set_num_threads, threads
from tinytorch.core.threads import (
    choose_threads,
    free_cores,
    physical_cores,
    thread_limit,
    training_threads,
)


def test_set_and_get_round_trip():
    before = get_num_threads()
    if before is None:
        pytest.skip("NumPy is not linked against OpenBLAS here")
    try:
        assert set_num_threads(1) is True
        assert get_num_threads() == 1
    finally:
        set_num_threads(before)
    assert get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_count_is_refused(bad):
    with pytest.raises(ValueError, match="set_num_threads: n must be a positive integer"):
        set_num_threads(bad)


def test_physical_cores_counts_each_core_once(tmp_path, monkeypatch):
    # Four logical CPUs on two cores (hyper-threading): the topology files say so.
    real_open = open

    def fake_open(path, *args, **kwargs):
        path = str(path)
        if path.startswith("/sys/devices/system/cpu/cpu"):
            cpu = int(path.split("/cpu/cpu")[1].split("/")[0])
            value = "0" if path.endswith("physical_package_id") else str(cpu // 2)
            f = tmp_path / f"{cpu}-{path.rsplit('/', 1)[1]}"
            f.write_text(value + "\n")
            return real_open(f, *args, **kwargs)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr("builtins.open", fake_open)
    assert physical_cores() == 2


def test_auto_threads_leave_the_cores_other_programs_hold(monkeypatch):
    """A simulated contention probe: quiet, one of two CPUs held, everything held."""
    monkeypatch.delenv("TINYTORCH_RANK_THREADS", raising=False)
    monkeypatch.setattr(threads, "physical_cores", lambda: 2)
    monkeypatch.setattr(threads, "_cpus", lambda: 2)
    others = {"value": 0.05}
    monkeypatch.setattr(threads, "measure_contention", lambda seconds: {"others_cores": others["value"]})
    assert choose_threads("auto") == (2, None) and training_threads("auto") == 2
    others["value"] = 0.98  # `python3 -c "while True: pass"` holds a core
    n, note = choose_threads("auto")
    assert n == 1 and "0.98 cores busy" in note and "--threads 2" in note
    others["value"] = 0.3  # above CONTENDED_CORES: that CPU counts as taken
    assert choose_threads("auto")[0] == 1
    others["value"] = 5.0
    assert choose_threads("auto")[0] == 1  # never fewer than one
    others["value"] = None  # the probe could not read the counters: the hardware decides
    assert choose_threads("auto") == (2, None)
    assert choose_threads(2) == (2, None)  # a number is used as given, whatever the load
    monkeypatch.setenv("TINYTORCH_RANK_THREADS", "1")  # a rank of `tito run`: its share
    others["value"] = 0.0
    assert choose_threads("auto") == (1, None)
    assert free_cores(4, 8, 1.5) == 4 and free_cores(4, 4, 1.5) == 2 and free_cores(8, 8, 2.25) == 6


def test_training_threads_parse_numbers():
    assert training_threads(3) == 3 and training_threads("2") == 2
    for bad in (0, "0", "x", -1, 1.5, True):
        with pytest.raises(ValueError, match="threads must be a positive integer or 'auto'"):
            training_threads(bad)


def test_thread_limit_restores_the_previous_count():
    before = get_num_threads()
    if before is None:
        pytest.skip("NumPy is not linked against OpenBLAS here")
    set_num_threads(2)
    try:
        with thread_limit(1):
            assert get_num_threads() == 1
        assert get_num_threads() == 2
        with pytest.raises(RuntimeError), thread_limit(1):
            raise RuntimeError("restored even when the block fails")
        assert get_num_threads() == 2
    finally:
        set_num_threads(before)
