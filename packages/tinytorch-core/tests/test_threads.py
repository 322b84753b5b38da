"""BLAS thread control (OpenBLAS through its C API)."""

import pytest

from tinytorch.core import get_num_threads, set_num_threads, threads
from tinytorch.core.threads import physical_cores, thread_limit, training_threads


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


def test_training_threads_ignore_the_load(monkeypatch):
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (50.0, 50.0, 50.0))
    assert training_threads("auto") == physical_cores()
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
