"""BLAS thread control (OpenBLAS through its C API)."""

import pytest

from tinytorch.core import get_num_threads, set_num_threads
from tinytorch.core.threads import auto_threads, thread_limit


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


def test_auto_threads_is_within_cpu_count():
    import os

    assert 1 <= auto_threads() <= (os.cpu_count() or 1)


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
