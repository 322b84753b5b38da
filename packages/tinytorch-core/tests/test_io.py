"""tinytorch.core.io: safetensors checkpoints, atomic writes and clear errors on bad files."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from tinytorch.core import Tensor
from tinytorch.core import io as tio
from tinytorch.core.io import CheckpointError, check_state, load, load_metadata, save


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "f32": rng.normal(size=(3, 4)).astype(np.float32),
        "f64": rng.normal(size=(2, 2, 3)),
        "i64": rng.integers(-(2**62), 2**62, size=(5,), dtype=np.int64),
        "bool": rng.random((4, 2)) > 0.5,
        "u8": rng.integers(0, 256, size=(7,), dtype=np.uint8),
        "scalar_f32": np.array(3.5, dtype=np.float32),
        "scalar_i64": np.array(-7, dtype=np.int64),
        "scalar_bool": np.array(True),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "special": np.array([np.nan, np.inf, -np.inf, -0.0, np.finfo(np.float64).tiny]),
    }


def _files_in(directory) -> list[str]:
    return sorted(os.listdir(directory))


# ---------------------------------------------------------------------------------- round trip


def test_round_trip_is_exact_for_every_dtype_and_0d(tmp_path):
    arrays = _arrays()
    path = tmp_path / "ckpt.safetensors"
    save(arrays, path)
    state, _ = load(path)
    assert set(state) == set(arrays)
    for key, want in arrays.items():
        got = state[key]
        assert got.dtype == want.dtype, key
        assert got.shape == want.shape, key
        np.testing.assert_array_equal(got, want)
        assert got.tobytes() == want.tobytes(), key  # bit-exact (nan payloads, -0.0)


def test_loaded_arrays_are_writable(tmp_path):
    save({"w": np.ones((2, 2), np.float32)}, tmp_path / "a.safetensors")
    state, _ = load(tmp_path / "a.safetensors")
    state["w"][0, 0] = 5.0
    assert state["w"][0, 0] == 5.0


def test_tensors_non_contiguous_and_big_endian_arrays(tmp_path):
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    state = {
        "tensor": Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True),
        "transposed": base.T,
        "strided": base[::2, ::-3],
        "big_endian": np.arange(5, dtype=">i4"),
        "np_scalar": np.float32(2.25),
    }
    save(state, tmp_path / "a.safetensors")
    loaded, _ = load(tmp_path / "a.safetensors")
    np.testing.assert_array_equal(loaded["tensor"], state["tensor"].data)
    assert loaded["tensor"].dtype == np.float32
    np.testing.assert_array_equal(loaded["transposed"], base.T)
    np.testing.assert_array_equal(loaded["strided"], base[::2, ::-3])
    np.testing.assert_array_equal(loaded["big_endian"], np.arange(5))
    assert loaded["big_endian"].dtype == np.int32
    assert loaded["np_scalar"].shape == () and loaded["np_scalar"] == np.float32(2.25)


def test_empty_state(tmp_path):
    save({}, tmp_path / "e.safetensors", metadata={"note": "nothing"})
    state, meta = load(tmp_path / "e.safetensors")
    assert state == {} and meta["note"] == "nothing"


def test_metadata_round_trip_nested_json(tmp_path):
    metadata = {
        "config": {"d_model": 64, "layers": [1, 2, {"heads": 4}], "name": "gpt", "drop": 0.1},
        "epoch": 7,
        "loss": 1.25,
        "done": False,
        "nothing": None,
        "text": "plain string",
        "unicode": "héllo ✓",
        "np_values": {"lr": np.float32(0.5), "steps": np.int64(3), "arr": np.arange(3)},
    }
    path = tmp_path / "m.safetensors"
    save({"w": np.zeros(2)}, path, metadata=metadata)
    _, meta = load(path)
    for key in ("config", "epoch", "loss", "done", "nothing", "text", "unicode"):
        assert meta[key] == metadata[key], key
    assert meta["np_values"] == {"lr": 0.5, "steps": 3, "arr": [0, 1, 2]}
    assert meta["tinytorch.format_version"] == 1
    versions = meta["tinytorch.versions"]
    assert isinstance(versions, dict) and "tinytorch-core" in versions
    assert load_metadata(path) == meta


def test_metadata_is_stored_as_json_strings_in_the_header(tmp_path):
    import safetensors

    path = tmp_path / "m.safetensors"
    save({"w": np.zeros(2, np.float32)}, path, metadata={"config": {"a": [1, 2]}})
    with safetensors.safe_open(str(path), framework="numpy") as f:
        raw = f.metadata()
    assert all(isinstance(v, str) for v in raw.values())
    assert json.loads(raw["config"]) == {"a": [1, 2]}
    assert raw["tinytorch.format_version"] == "1"
    assert json.loads(raw["tinytorch.versions"])["tinytorch-core"]


def test_automatic_keys_are_rewritten_on_resave(tmp_path):
    path = tmp_path / "m.safetensors"
    save({"w": np.zeros(2)}, path, metadata={"tinytorch.format_version": 99, "x": 1})
    state, meta = load(path)
    save(state, path, metadata=meta)  # loading then saving again must work
    assert load_metadata(path)["tinytorch.format_version"] == 1


def test_foreign_safetensors_file_with_plain_string_metadata(tmp_path):
    import safetensors.numpy

    path = tmp_path / "hf.safetensors"
    path.write_bytes(safetensors.numpy.save({"w": np.ones(3, np.float16)}, {"format": "pt"}))
    state, meta = load(path)
    assert meta == {"format": "pt"}
    assert state["w"].dtype == np.float16


def test_newer_format_version_is_refused(tmp_path):
    import safetensors.numpy

    path = tmp_path / "future.safetensors"
    blob = safetensors.numpy.save({"w": np.ones(3)}, {"tinytorch.format_version": "2"})
    path.write_bytes(blob)
    with pytest.raises(CheckpointError, match="format version 2") as e:
        load(path)
    assert str(path) in str(e.value)


def test_nested_state_is_flattened_and_unflattens(tmp_path):
    layer = {"weight": np.ones((2, 2)), "bias": np.zeros(2)}
    nested = {"model": {"layer": layer}, "step": np.array(3)}
    flat = tio.flatten_state(nested)
    assert set(flat) == {"model.layer.weight", "model.layer.bias", "step"}
    assert tio.unflatten_state(flat).keys() == nested.keys()
    save(nested, tmp_path / "n.safetensors")
    state, _ = load(tmp_path / "n.safetensors")
    assert set(state) == set(flat)
    back = tio.unflatten_state(state)
    np.testing.assert_array_equal(back["model"]["layer"]["weight"], np.ones((2, 2)))


def test_flatten_unflatten_conflicts():
    with pytest.raises(ValueError, match="'a.b'"):
        tio.flatten_state({"a.b": 1, "a": {"b": 2}})
    with pytest.raises(ValueError, match="'a.b'"):
        tio.unflatten_state({"a": 1, "a.b": 2})
    with pytest.raises(ValueError, match="'a'"):
        tio.unflatten_state({"a.b": 1, "a": 2})
    with pytest.raises(TypeError, match="1"):
        tio.flatten_state({"a": {1: 2}})


def test_creates_parent_directories(tmp_path):
    path = tmp_path / "deep" / "er" / "c.safetensors"
    save({"w": np.zeros(1)}, path)
    assert path.exists()


def test_accepts_str_paths_and_keeps_file_mode(tmp_path):
    path = tmp_path / "a.safetensors"
    save({"w": np.zeros(1)}, str(path))
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # not the temp file's 0o600
    os.chmod(path, 0o640)
    save({"w": np.ones(1)}, str(path))
    assert os.stat(path).st_mode & 0o777 == 0o640
    np.testing.assert_array_equal(load(str(path))[0]["w"], np.ones(1))


def test_module_never_imports_pickle():
    import ast
    from pathlib import Path

    modules = sorted(Path(tio.__file__).parent.glob("*.py"))  # the io package's every module
    assert len(modules) >= 5
    imported = set()
    for node in (n for m in modules for n in ast.walk(ast.parse(m.read_text(encoding="utf-8")))):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"pickle", "cPickle", "dill", "joblib", "marshal", "shelve"}


# ---------------------------------------------------------------------------------- bad input


def test_non_string_key_is_refused(tmp_path):
    with pytest.raises(TypeError, match="3"):
        save({3: np.zeros(1)}, tmp_path / "a.safetensors")
    assert _files_in(tmp_path) == []


def test_object_dtype_is_refused_naming_key(tmp_path):
    with pytest.raises(TypeError, match="'bad'.*object"):
        save({"ok": np.zeros(1), "bad": np.array([1, "x"], dtype=object)}, tmp_path / "a.st")
    with pytest.raises(TypeError, match="'s'"):
        save({"s": np.array(["a", "b"])}, tmp_path / "a.st")
    assert _files_in(tmp_path) == []


def test_non_array_value_is_refused_naming_key(tmp_path):
    with pytest.raises(TypeError, match="'lst'.*list"):
        save({"lst": [1.0, 2.0]}, tmp_path / "a.st")


def test_non_json_metadata_is_refused_naming_key(tmp_path):
    with pytest.raises(TypeError, match="'fn'"):
        save({"w": np.zeros(1)}, tmp_path / "a.st", metadata={"fn": object()})
    with pytest.raises(TypeError, match="metadata keys"):
        save({"w": np.zeros(1)}, tmp_path / "a.st", metadata={1: "x"})
    assert _files_in(tmp_path) == []


def test_reserved_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match="__metadata__"):
        save({"__metadata__": np.zeros(1)}, tmp_path / "a.st")


# ---------------------------------------------------------------------------------- atomicity


@pytest.fixture
def old_checkpoint(tmp_path):
    path = tmp_path / "model.safetensors"
    save({"w": np.arange(4.0)}, path, metadata={"version": "old"})
    return path


def _assert_old_intact(path):
    state, meta = load(path)
    np.testing.assert_array_equal(state["w"], np.arange(4.0))
    assert meta["version"] == "old"
    assert _files_in(path.parent) == [path.name], "a temp file was left behind"


def test_failure_at_replace_leaves_old_file_and_no_temp(old_checkpoint, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("simulated crash during rename")

    monkeypatch.setattr(tio.os, "replace", boom)
    with pytest.raises(OSError, match="simulated crash"):
        save({"w": np.zeros(1000)}, old_checkpoint, metadata={"version": "new"})
    monkeypatch.undo()
    _assert_old_intact(old_checkpoint)


def test_failure_at_fsync_leaves_old_file_and_no_temp(old_checkpoint, monkeypatch):
    def boom(fd):
        raise OSError("simulated disk full")

    monkeypatch.setattr(tio.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        save({"w": np.zeros(1000)}, old_checkpoint, metadata={"version": "new"})
    monkeypatch.undo()
    _assert_old_intact(old_checkpoint)


def test_interrupt_while_writing_bytes_leaves_old_file(old_checkpoint, monkeypatch):
    real = tio.tempfile.NamedTemporaryFile

    class HalfWriter:
        """Writes half the bytes, then dies like a process killed mid-write."""

        def __init__(self, f):
            self._f = f

        def write(self, data):
            self._f.write(data[: len(data) // 2])
            self._f.flush()
            raise KeyboardInterrupt

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            self._f.__enter__()
            return self

        def __exit__(self, *exc):
            return self._f.__exit__(*exc)

    monkeypatch.setattr(tio.tempfile, "NamedTemporaryFile", lambda **kw: HalfWriter(real(**kw)))
    with pytest.raises(KeyboardInterrupt):
        save({"w": np.zeros(1000)}, old_checkpoint, metadata={"version": "new"})
    monkeypatch.undo()
    _assert_old_intact(old_checkpoint)


def test_failure_in_serialisation_leaves_old_file(old_checkpoint, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("serializer exploded")

    monkeypatch.setattr(tio.safetensors, "_serialize", boom)
    with pytest.raises(RuntimeError, match="serializer exploded"):
        save({"w": np.zeros(3)}, old_checkpoint)
    monkeypatch.undo()
    _assert_old_intact(old_checkpoint)


def test_successful_overwrite_leaves_only_the_target(old_checkpoint):
    save({"w": np.ones(2)}, old_checkpoint, metadata={"version": "new"})
    state, meta = load(old_checkpoint)
    np.testing.assert_array_equal(state["w"], np.ones(2))
    assert meta["version"] == "new"
    assert _files_in(old_checkpoint.parent) == [old_checkpoint.name]


def test_save_fsyncs_file_and_directory(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}") if os.path.exists("/proc") else fd)
        real(fd)

    monkeypatch.setattr(tio.os, "fsync", spy)
    save({"w": np.zeros(2)}, tmp_path / "a.safetensors")
    assert len(synced) == 2
    if os.path.exists("/proc"):
        assert synced[1] == os.path.realpath(tmp_path)


# ---------------------------------------------------------------------------------- bad files


def _assert_checkpoint_error(path, *fragments):
    with pytest.raises(CheckpointError) as e:
        load(path)
    message = str(e.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    # The header-only readers give the same error.
    with pytest.raises(CheckpointError):
        load_metadata(path)
    with pytest.raises(CheckpointError):
        tio.inspect(path)
    return message


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    for reader in (load, load_metadata, tio.inspect):
        with pytest.raises(FileNotFoundError) as e:
            reader(path)
        assert str(path) in str(e.value)


@pytest.mark.parametrize("keep", [0.999, 0.5, 0.1])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "t.safetensors"
    save({"a": np.arange(100.0), "b": np.ones((10, 10), np.float32)}, path, metadata={"x": 1})
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * keep)])
    message = _assert_checkpoint_error(path)
    assert "truncated" in message


def test_truncated_inside_the_data_names_the_tensor(tmp_path):
    path = tmp_path / "t.safetensors"
    save({"only": np.arange(100.0)}, path)
    path.write_bytes(path.read_bytes()[:-8])
    _assert_checkpoint_error(path, "truncated", "'only'")


def test_random_bytes(tmp_path):
    path = tmp_path / "random.safetensors"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 100, dtype=np.uint8).tobytes())
    _assert_checkpoint_error(path, "not a safetensors file", "header length", "file size 100")


def test_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("These are not the weights you are looking for.\n" * 3)
    _assert_checkpoint_error(path, "not a safetensors file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    _assert_checkpoint_error(path, "empty")


def test_tiny_file(tmp_path):
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(b"\x01\x02\x03")
    _assert_checkpoint_error(path, "too short")


def test_zip_file(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x04\x95 not really a pickle")
    _assert_checkpoint_error(path, "not a safetensors file")


def test_pickle_file_is_not_unpickled(tmp_path):
    path = tmp_path / "model.pkl"
    # protocol-4 pickle bytes of {"w": [1.0]}; never executed, only rejected.
    path.write_bytes(b"\x80\x04\x95\x11\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01w\x94]\x94G?\xf0"
                     b"\x00\x00\x00\x00\x00\x00as.")
    _assert_checkpoint_error(path, "not a safetensors file")


def _raw_file(path, header: dict | bytes, data: bytes = b"") -> None:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)


def test_header_not_json(tmp_path):
    path = tmp_path / "h.safetensors"
    _raw_file(path, b"{not json at all}")
    _assert_checkpoint_error(path, "not valid JSON")


def test_header_not_an_object(tmp_path):
    path = tmp_path / "h.safetensors"
    _raw_file(path, b"[1, 2, 3]")
    _assert_checkpoint_error(path, "JSON object")


def test_header_offsets_beyond_file(tmp_path):
    path = tmp_path / "h.safetensors"
    _raw_file(path, {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8)
    _assert_checkpoint_error(path, "'w'", "truncated")


def test_header_offsets_disagree_with_shape(tmp_path):
    path = tmp_path / "h.safetensors"
    _raw_file(path, {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8)
    _assert_checkpoint_error(path, "'w'", "16 bytes")


def test_header_unknown_dtype(tmp_path):
    path = tmp_path / "h.safetensors"
    _raw_file(path, {"w": {"dtype": "BF17", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4)
    _assert_checkpoint_error(path, "'w'", "BF17")


def test_header_overlapping_tensors(tmp_path):
    path = tmp_path / "h.safetensors"
    header = {
        "a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
        "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]},
    }
    _raw_file(path, header, b"\0" * 6)
    _assert_checkpoint_error(path, "'b'", "overlap")


def test_trailing_garbage(tmp_path):
    path = tmp_path / "h.safetensors"
    save({"w": np.zeros(2)}, path)
    with open(path, "ab") as f:
        f.write(b"garbage")
    _assert_checkpoint_error(path, "after the last tensor")


# ---------------------------------------------------------------------------------- inspect


def test_inspect_reports_tensors_metadata_and_parameter_count(tmp_path):
    path = tmp_path / "i.safetensors"
    state = {
        "layers.10.weight": np.zeros((2, 3), np.float32),
        "layers.2.weight": np.zeros((4, 5), np.float32),
        "step": np.array(3, np.int64),
    }
    save(state, path, metadata={"epoch": 4})
    info = tio.inspect(path)
    assert [t.name for t in info.tensors] == ["layers.2.weight", "layers.10.weight", "step"]
    assert info.tensors[0] == ("layers.2.weight", (4, 5), "float32")
    assert info.tensors[2] == ("step", (), "int64")
    assert info.num_parameters == 6 + 20 + 1
    assert info.metadata["epoch"] == 4
    assert info.file_size == os.path.getsize(path)
    assert info.nbytes == (6 + 20) * 4 + 8


# ---------------------------------------------------------------------------------- check_state


def test_check_state_passes_on_match():
    expected = {"w": (2, 3), "b": np.zeros(3), "t": Tensor(np.zeros((1,)))}
    loaded = {"w": np.zeros((2, 3)), "b": np.ones(3), "t": np.zeros(1)}
    assert check_state(expected, loaded) == ([], [])


def test_check_state_missing_key_named():
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): 'decoder.bias'"):
        check_state({"w": (2,), "decoder.bias": (3,)}, {"w": np.zeros(2)})


def test_check_state_unexpected_key_named():
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): 'extra.weight'"):
        check_state({"w": (2,)}, {"w": np.zeros(2), "extra.weight": np.zeros(1)})


def test_check_state_shape_mismatch_names_key_and_both_shapes():
    with pytest.raises(CheckpointError) as e:
        check_state({"w": (2, 3), "b": [3]}, {"w": np.zeros((3, 2)), "b": np.zeros(3)})
    message = str(e.value)
    assert "'w': expected shape (2, 3), got (3, 2)" in message
    assert "'b'" not in message


def test_check_state_reports_everything_at_once_with_source():
    with pytest.raises(CheckpointError) as e:
        check_state(
            {"a": (1,), "b": (2,), "c": (3,)},
            {"b": np.zeros(5), "c": np.zeros(3), "z": np.zeros(1)},
            source="run/best.safetensors",
        )
    message = str(e.value)
    assert "run/best.safetensors" in message
    assert "'a'" in message and "'z'" in message and "'b': expected shape (2,), got (5,)" in message


def test_check_state_non_strict_reports_but_still_checks_shapes():
    result = check_state({"a": (1,), "b": (2,)}, {"b": np.zeros(2), "z": np.zeros(1)}, strict=False)
    assert result.missing == ["a"] and result.unexpected == ["z"]
    with pytest.raises(CheckpointError, match="'b'"):
        check_state({"b": (2,)}, {"b": np.zeros(3)}, strict=False)


def test_check_state_on_loaded_checkpoint(tmp_path):
    path = tmp_path / "c.safetensors"
    save({"w": np.zeros((4, 4), np.float32)}, path)
    state, _ = load(path)
    with pytest.raises(CheckpointError, match=r"'w': expected shape \(4, 8\), got \(4, 4\)"):
        check_state({"w": (4, 8)}, state, source=str(path))


# ---------------------------------------------------------------------------------- destinations (issue 13)


def test_check_destination_refuses_what_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for path, kind in [("/dev/null", "character device"), (tmp_path / "fifo", "FIFO"),
                       (tmp_path / "dir", "directory")]:
        with pytest.raises(tio.DestinationError) as err:
            tio.check_destination(path, what="--out")
        assert str(err.value).startswith(f"--out {path}: ") and kind in str(err.value)
    assert tio.check_destination(tmp_path / "new.safetensors") == tmp_path / "new.safetensors"
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_save_over_a_device_node_refuses_and_leaves_the_device(tmp_path):
    import stat

    device = tmp_path / "null"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a second /dev/null
    with pytest.raises(tio.DestinationError, match="character device"):
        save({"w": np.zeros(2)}, device)
    assert stat.S_ISCHR(os.lstat(device).st_mode), "the device was replaced by a regular file"
    assert _files_in(tmp_path) == ["null"]


def test_save_over_a_fifo_refuses_instead_of_replacing_it(tmp_path):
    import stat

    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(tio.DestinationError, match="FIFO"):
        save({"w": np.zeros(2)}, tmp_path / "pipe")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)


def test_parent_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    target = tmp_path / "runs" / "model.safetensors"
    with pytest.raises(tio.DestinationError) as err:
        save({"w": np.zeros(2)}, target)
    assert str(target) in str(err.value) and f"{tmp_path / 'runs'} is a file, not a directory" in str(err.value)
    with pytest.raises(tio.DestinationError, match="is a file, not a directory"):
        tio.check_destination(tmp_path / "runs" / "deeper" / "m.safetensors")


def test_missing_parent_is_created_or_refused_on_request(tmp_path):
    target = tmp_path / "a" / "b" / "m.safetensors"
    assert tio.check_destination(target) == target  # save creates parents
    with pytest.raises(tio.DestinationError, match="does not exist"):
        tio.check_destination(target, create_parents=False)
    assert not (tmp_path / "a").exists(), "checking must not create anything"


def test_read_only_directory_is_refused_before_writing(old_checkpoint, monkeypatch):
    directory = old_checkpoint.parent
    real_access = os.access
    # As root, permission bits do not stop writes, so the check is what is tested here.
    monkeypatch.setattr(tio.os, "access", lambda p, mode, **kw: (
        False if os.path.realpath(p) == os.path.realpath(directory) and mode & os.W_OK
        else real_access(p, mode, **kw)))
    with pytest.raises(tio.DestinationError) as err:
        save({"w": np.zeros(2)}, old_checkpoint, metadata={"version": "new"})
    assert f"{directory} is not writable" in str(err.value) and str(old_checkpoint) in str(err.value)
    monkeypatch.undo()
    _assert_old_intact(old_checkpoint)


def test_symlink_destination_writes_its_target_and_keeps_the_link(tmp_path):
    real = tmp_path / "real.safetensors"
    save({"w": np.zeros(2)}, real)
    link = tmp_path / "latest.safetensors"
    link.symlink_to(real)
    save({"w": np.ones(2)}, link, metadata={"version": "new"})
    assert link.is_symlink() and os.readlink(link) == str(real)
    np.testing.assert_array_equal(load(real)[0]["w"], np.ones(2))
    assert tio.check_destination(link) == real
    assert sorted(_files_in(tmp_path)) == ["latest.safetensors", "real.safetensors"]


def test_disk_full_names_the_destination_keeps_the_old_file_and_removes_the_temp(old_checkpoint, monkeypatch):
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tio.os, "fsync", full)
    with pytest.raises(OSError) as err:
        save({"w": np.zeros(1000)}, old_checkpoint, metadata={"version": "new"})
    monkeypatch.undo()
    message = str(err.value)
    assert str(old_checkpoint) in message and "No space left on device" in message, message
    assert "unchanged" in message and err.value.errno == errno.ENOSPC
    _assert_old_intact(old_checkpoint)


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_save_removes_stale_temp_files_of_the_same_destination_only(old_checkpoint):
    import time

    directory, dead, alive = old_checkpoint.parent, _dead_pid(), os.getppid()
    stale = directory / f".model.safetensors.tmp-{dead}-abc12345"
    legacy = directory / ".model.safetensors.k2j4h5g6.tmp"  # what the previous io.save left
    live = directory / f".model.safetensors.tmp-{alive}-def45678"
    fresh_legacy = directory / ".model.safetensors.zz99yy88.tmp"
    other = directory / f".other.safetensors.tmp-{dead}-abc12345"
    lookalike = directory / f".model.safetensors.tmp-{dead}-abc12345.keep"
    for p in (stale, legacy, live, fresh_legacy, other, lookalike):
        p.write_bytes(b"x" * 100)
    two_hours_ago = time.time() - 7200
    os.utime(legacy, (two_hours_ago, two_hours_ago))
    save({"w": np.ones(2)}, old_checkpoint)
    left = set(_files_in(directory))
    assert stale.name not in left and legacy.name not in left
    assert {live.name, fresh_legacy.name, other.name, lookalike.name, "model.safetensors"} == left


def test_temp_file_name_records_the_writer_pid(old_checkpoint, monkeypatch):
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        real(src, dst)

    monkeypatch.setattr(tio.os, "replace", spy)
    save({"w": np.ones(2)}, old_checkpoint)
    assert len(seen) == 1 and seen[0].startswith(f".model.safetensors.tmp-{os.getpid()}-")


def test_write_atomic_is_public_for_other_files(tmp_path):
    path = tmp_path / "tok.json"
    tio.write_atomic(path, b"{}")
    assert path.read_bytes() == b"{}" and _files_in(tmp_path) == ["tok.json"]
    with pytest.raises(tio.DestinationError):
        tio.write_atomic(tmp_path, b"{}")


# ---------------------------------------------------------------------------------- hostile headers (issue 13)


def _raw_safetensors(path, header: bytes, data: bytes = b""):
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)


def test_deeply_nested_json_header_is_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "deep.safetensors"
    _raw_safetensors(path, b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    message = _assert_checkpoint_error(path, "nested")
    assert "RecursionError" not in message


def test_deeply_nested_metadata_value_is_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "deepmeta.safetensors"
    value = "[" * 200_000 + "]" * 200_000
    # A TinyTorch file (its values are JSON); another writer's strings are never decoded.
    metadata = {"tinytorch.format_version": "1", "config": value}
    _raw_safetensors(path, json.dumps({"__metadata__": metadata}).encode())
    with pytest.raises(CheckpointError) as err:
        load(path)
    assert str(path) in str(err.value) and "'config'" in str(err.value) and "nested" in str(err.value)
    with pytest.raises(CheckpointError, match="nested"):
        load_metadata(path)


# ---------------------------------------------------------------------------------- names (issue 13)


def test_inspect_accepts_names_with_unicode_digits(tmp_path):
    path = tmp_path / "u.safetensors"
    names = ["layer1²", "layer10", "layer2", "x٣", "½", "block.①.w"]
    save({n: np.zeros(1, np.float32) for n in names}, path)
    listed = [t.name for t in tio.inspect(path).tensors]
    assert sorted(listed) == sorted(names)
    assert listed.index("layer2") < listed.index("layer10")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6, unique=True))
def test_natural_order_is_total_for_any_names(names):
    ordered = sorted(names, key=tio._natural_key)  # never raises, whatever the characters
    assert sorted(ordered) == sorted(names)
    assert sorted(["a2", "a10", "a1"], key=tio._natural_key) == ["a1", "a2", "a10"]


# ---------------------------------------------------------------------------------- metadata checks (issue 13)


def test_require_metadata_names_file_key_and_expected_type(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    meta = {"optimizer": "adam", "epoch": 3, "flag": True, "history": {"loss": [1.0]}}
    assert tio.require(meta, "epoch", int, path) == 3
    assert tio.require(meta, "history", dict, path) == {"loss": [1.0]}
    with pytest.raises(CheckpointError) as err:
        tio.require(meta, "rng_state", dict, path)
    assert str(err.value) == f"{path}: checkpoint metadata 'rng_state' is missing (expected a dict)"
    with pytest.raises(CheckpointError) as err:
        tio.require(meta, "optimizer", dict, path)
    assert str(err.value) == f"{path}: checkpoint metadata 'optimizer' is a str ('adam'), expected a dict"
    with pytest.raises(CheckpointError, match="'flag' is a bool .*expected an int"):
        tio.require(meta, "flag", int, path)
    with pytest.raises(CheckpointError, match="expected an int or a float"):
        tio.require({"lr": "x"}, "lr", (int, float), path)
    assert tio.require(meta, "missing", dict, path, default=None) is None
    with pytest.raises(CheckpointError, match="'history.loss' is a list"):
        tio.require(meta, "history.loss", dict, path)
    assert tio.require(meta, "history.loss", list, path) == [1.0]


def test_tensor_shapes_reads_the_header_only(tmp_path, monkeypatch):
    path = tmp_path / "s.safetensors"
    save({"a": np.zeros((2, 3), np.float32), "b": {"c": np.zeros(4, np.int64)}}, path)
    # core.io reads every tensor's bytes through _read_tensor (no other reader since it writes
    # and reads the format itself): patching it to fail proves no data is read.
    monkeypatch.setattr(tio.safetensors, "_read_tensor", lambda *a: (_ for _ in ()).throw(AssertionError("data read")))
    assert tio.tensor_shapes(path) == {"a": (2, 3), "b.c": (4,)}


def test_disk_full_in_the_middle_of_the_write(old_checkpoint, monkeypatch):
    import errno

    real = tio.tempfile.NamedTemporaryFile

    class FullDisk:
        """Writes the first 100 bytes, then the disk is full (as a write to /dev/full)."""

        def __init__(self, f):
            self._f = f

        def write(self, data):
            self._f.write(data[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            self._f.__enter__()
            return self

        def __exit__(self, *exc):
            return self._f.__exit__(*exc)

    monkeypatch.setattr(tio.tempfile, "NamedTemporaryFile", lambda **kw: FullDisk(real(**kw)))
    with pytest.raises(OSError) as err:
        save({"w": np.zeros(1000)}, old_checkpoint, metadata={"version": "new"})
    monkeypatch.undo()
    assert str(err.value).startswith(f"checkpoint {old_checkpoint}: could not write it (No space left on device)")
    _assert_old_intact(old_checkpoint)
