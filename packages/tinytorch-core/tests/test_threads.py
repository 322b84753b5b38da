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


def _openblas_or_skip():
    if get_num_threads() is None:
        pytest.skip("NumPy is not linked against OpenBLAS here")


def test_gemms_below_the_threading_size_do_not_depend_on_the_thread_count():
    """The statement in tinytorch.core.threads: OpenBLAS runs M·N·K < OPENBLAS_THREADED_MNK on one
    thread, so such products are bit-identical on 1 and 2 threads."""
    import numpy as np

    from tinytorch.core.threads import OPENBLAS_THREADED_MNK

    _openblas_or_skip()
    rng = np.random.default_rng(0)
    before = get_num_threads()
    shapes = [(m, k, n) for m in (1, 7, 32, 64, 100) for k in (16, 64, 200) for n in (3, 32, 128)
              if m * k * n < OPENBLAS_THREADED_MNK]
    shapes += [(40, 80, 81), (64, 64, 63)]  # just below the threshold
    try:
        for m, k, n in shapes:
            for dtype in (np.float32, np.float64):
                a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
                set_num_threads(1)
                one = a @ b
                set_num_threads(2)
                assert (a @ b).tobytes() == one.tobytes(), (m, k, n, dtype)
    finally:
        set_num_threads(before)


def _train_mlp(width: int, n_threads: int, steps: int = 6):
    """A few AdamW steps of a 2-layer MLP with ``n_threads`` BLAS threads; the weights' bytes."""
    import numpy as np

    from tinytorch.core import Tensor, manual_seed, nn, optim
    from tinytorch.core.data import DataLoader, TensorDataset
    from tinytorch.core.training import Trainer

    before = get_num_threads()
    set_num_threads(n_threads)
    try:
        manual_seed(0)
        model = nn.Sequential(nn.Linear(32, width), nn.GELU(), nn.LayerNorm(width), nn.Linear(width, 10))
        rng = np.random.default_rng(1)
        data = TensorDataset(Tensor(rng.standard_normal((steps * 64, 32)).astype(np.float32)),
                             Tensor(rng.integers(0, 10, steps * 64)))
        Trainer(model, optim.AdamW(model.parameters(), lr=1e-2), nn.CrossEntropyLoss(), progress=False).fit(
            DataLoader(data, batch_size=64, shuffle=True, seed=0), epochs=1)
        return b"".join(v.tobytes() for v in model.state_dict().values())
    finally:
        set_num_threads(before)


def test_same_seed_same_thread_count_same_weights_and_small_models_across_counts():
    """What is bit-identical (tinytorch.core.threads): a run repeated at the same thread count,
    whatever the GEMM sizes; and a run whose GEMMs are all below OPENBLAS_THREADED_MNK (width 16:
    64·32·16 = 32,768) on any thread count, since everything else NumPy does is single-threaded."""
    _openblas_or_skip()
    assert _train_mlp(16, 1) == _train_mlp(16, 2)
    wide_two = _train_mlp(512, 2)  # 64·32·512 = 1M: OpenBLAS splits these GEMMs between threads
    assert _train_mlp(512, 2) == wide_two
    assert _train_mlp(512, 1) == _train_mlp(512, 1)
