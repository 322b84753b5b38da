"""A model file cannot hang, flood or escape (issue 21 §3/§4), the io side.

FIFOs, directories and devices given as checkpoints; headers that pass the format's checks but
declare shapes no array can have, or more memory than the machine has; JSON nested deep enough
to break a recursive consumer; numbers too long for Python's int conversion. Every case must end
in one clear error naming the file (and the tensor or metadata key), never a hang, a bare NumPy
error or a message the size of the file. Whatever could hang runs in a subprocess with a timeout,
so a regression fails instead of blocking the suite.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tinytorch.core import io
from tinytorch.core.io import CheckpointError

HANG_TIMEOUT = 60  # seconds; each guarded call takes well under 5 on a loaded machine


def write_raw(path: Path, header: dict | bytes, data: bytes = b"") -> Path:
    """A safetensors file with exactly this header (dict or raw JSON bytes) and data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def run_isolated(code: str, address_space: int | None = None) -> dict:
    """Run ``code`` in a fresh interpreter that prints one JSON line; fail on a timeout.

    ``address_space`` caps the child's virtual memory (RLIMIT_AS), so a regression that allocates
    what the machine does not have fails at once instead of paging in gigabytes.
    """
    def cap() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    try:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                              text=True, timeout=HANG_TIMEOUT,
                              preexec_fn=cap if address_space else None)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {HANG_TIMEOUT} s: a reader blocked (hang)")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------- not a regular file (§1)

READERS = """
import json, os
from tinytorch.core import checkpoint, io
opened, real_open = [], os.open
os.open = lambda path, *args, **kw: opened.append(str(path)) or real_open(path, *args, **kw)
readers = {"load": io.load, "load_metadata": io.load_metadata, "tensor_shapes": io.tensor_shapes,
           "inspect": io.inspect, "load_model_state": checkpoint.load_model_state,
           "read_training_checkpoint": checkpoint.read_training_checkpoint}
out = {}
for name, reader in readers.items():
    try:
        reader(PATH)
        out[name] = "no error"
    except Exception as e:
        out[name] = [type(e).__name__, str(e)]
out["opened"] = opened
print(json.dumps(out))
"""


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_every_reader_refuses_what_is_not_a_regular_file_before_opening_it(tmp_path, kind):
    path = {"fifo": tmp_path / "model.safetensors", "directory": tmp_path,
            "device": Path("/dev/zero")}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    results = run_isolated(f"PATH = {str(path)!r}\n" + READERS)
    assert str(path) not in results.pop("opened"), "refused only after opening it"
    what = {"fifo": "a FIFO (named pipe)", "directory": "a directory",
            "device": "a character device"}[kind]
    for reader, result in results.items():
        assert result == ["NotRegularFileError",
                          f"checkpoint file {path}: is {what}, not a regular file"], reader
    assert issubclass(io.NotRegularFileError, ValueError)


def test_a_fifo_swapped_in_after_the_check_is_refused_without_blocking(tmp_path):
    # The stat before open cannot see a FIFO put in place after it: the open must not block
    # (O_NONBLOCK) and the fstat after it must refuse. Skip the first check to get there.
    fifo = tmp_path / "swapped.safetensors"
    os.mkfifo(fifo)
    result = run_isolated(f"""
        import json
        from pathlib import Path
        from tinytorch.core import io
        io.atomic.check_regular_file = lambda path, what="file": Path(path)
        try:
            io.load({str(fifo)!r})
            print(json.dumps("no error"))
        except Exception as e:
            print(json.dumps([type(e).__name__, str(e)]))
    """)
    assert result == ["NotRegularFileError",
                      f"checkpoint file {fifo}: is a FIFO (named pipe), not a regular file"]


def test_check_regular_file_is_the_one_check_for_any_reader(tmp_path):
    regular = tmp_path / "vocab.json"
    regular.write_text("{}")
    assert io.check_regular_file(regular, "tokenizer file") == regular
    assert io.check_regular_file(str(regular)) == regular
    link = tmp_path / "link.json"
    link.symlink_to(regular)
    assert io.check_regular_file(link) == link  # a symlink is followed
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "to_pipe").symlink_to(tmp_path / "pipe")
    with pytest.raises(io.NotRegularFileError) as err:
        io.check_regular_file(tmp_path / "to_pipe", "tokenizer file")
    assert str(err.value) == f"tokenizer file {tmp_path / 'to_pipe'}: is a FIFO (named pipe), not a regular file"
    for missing in (tmp_path / "nope.json", regular / "inside"):  # a parent that is a file too
        with pytest.raises(FileNotFoundError) as err:
            io.check_regular_file(missing, "tokenizer file")
        assert "tokenizer file not found" in str(err.value) and str(missing) in str(err.value)


def test_tito_core_summary_of_a_fifo_is_one_line_not_a_hang(tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    try:
        done = subprocess.run([sys.executable, "-m", "tito", "core", "summary", str(fifo)],
                              capture_output=True, text=True, timeout=HANG_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("tito core summary blocked on a FIFO")
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"Error: checkpoint file {fifo}: is a FIFO (named pipe), not a regular file"]


# ---------------------------------------------------------------------------------- shapes no array can have (§2)


def _f32(shape, offsets=(0, 0)) -> dict:
    return {"w": {"dtype": "F32", "shape": shape, "data_offsets": list(offsets)}}


def _refused_by_every_reader(path: Path, *fragments: str) -> str:
    for reader in (io.load, io.inspect, io.tensor_shapes):
        with pytest.raises(CheckpointError) as err:
            reader(path)
        message = str(err.value)
        assert message.startswith(f"{path}: ") and "'w'" in message, message
        for fragment in fragments:
            assert fragment in message, message
    return message


def test_a_dimension_beyond_numpy_with_a_zero_dimension_is_refused(tmp_path):
    # 0 elements and 0 bytes: today's byte count passes, and np.empty raises a bare ValueError.
    path = write_raw(tmp_path / "z.safetensors", _f32([0, 10**30]))
    _refused_by_every_reader(path, "more elements than an array can hold")
    path = write_raw(tmp_path / "z2.safetensors", _f32([0, 2**62, 3]))  # each dim fits, the size not
    _refused_by_every_reader(path, "more elements than an array can hold")


def test_more_dimensions_than_numpy_allows_are_refused_and_its_maximum_loads(tmp_path):
    most = 64 if int(np.__version__.split(".")[0]) >= 2 else 32  # NumPy 2 raised it from 32
    path = write_raw(tmp_path / "d.safetensors", _f32([1] * (most + 1), (0, 4)), b"\0" * 4)
    _refused_by_every_reader(path, f"{most + 1} dimensions", f"at most {most}")
    path = write_raw(tmp_path / "ok.safetensors", _f32([1] * most, (0, 4)), b"\0\0\x80\x3f")
    assert io.load(path)[0]["w"].shape == (1,) * most and io.load(path)[0]["w"].item() == 1.0


def test_a_shape_whose_size_has_more_digits_than_python_prints_is_refused(tmp_path):
    # Two 3,001-digit dimensions: each parses, but their product cannot even be printed.
    big = b"1" + b"0" * 3000
    path = write_raw(tmp_path / "p.safetensors",
                     b'{"w": {"dtype": "F32", "shape": [' + big + b", " + big + b'], "data_offsets": [0, 0]}}')
    message = _refused_by_every_reader(path, "more elements than an array can hold")
    assert len(message) < 400, "the message repeats the numbers of the file"


LOAD = """
import json
from tinytorch.core import io
try:
    io.load(PATH, **OPTIONS)
    print(json.dumps("no error"))
except Exception as e:
    print(json.dumps([type(e).__name__, str(e)]))
"""
CAPPED = 4 << 30  # bytes of address space for a child that loads: ample for Python and NumPy


def _sparse(path: Path, header: dict, data_bytes: int) -> Path:
    write_raw(path, header)
    try:
        os.truncate(path, path.stat().st_size + data_bytes)
    except OSError:
        pytest.skip("this filesystem cannot hold the sparse file")
    return path


def test_a_tensor_larger_than_the_machine_is_refused_before_allocating(tmp_path):
    # A 1 TiB tensor in a sparse file: the header is valid (inspect reads it), but loading would
    # allocate 1 TiB (MemoryError, or with overcommit a read of 1 TiB of zeros).
    limit = io.safetensors._memory_limit()
    if limit is None or limit >= 1 << 40:
        pytest.skip("needs a machine whose memory size is known and below 1 TiB")
    path = _sparse(tmp_path / "sparse.safetensors", _f32([1 << 38], (0, 1 << 40)), 1 << 40)
    assert io.inspect(path).nbytes == 1 << 40
    for options in ({}, {"bf16": "raw"}):
        result = run_isolated(f"PATH, OPTIONS = {str(path)!r}, {options!r}" + LOAD, CAPPED)
        assert result[0] == "CheckpointError", result
        assert result[1] == (f"{path}: tensor 'w' of shape (274877906944,) needs 1,099,511,627,776 "
                             f"bytes in memory, more than this machine's memory ({limit:,} bytes "
                             "of RAM and swap)")


def test_tensors_together_larger_than_the_machine_are_refused(tmp_path):
    limit = io.safetensors._memory_limit()
    if limit is None or limit >= 1 << 42:
        pytest.skip("needs a machine whose memory size is known and below 4 TiB")
    n = (limit * 3 // 5) // 4  # each tensor 60% of the machine, the two 120%
    header = {"a": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]},
              "b": {"dtype": "F32", "shape": [n], "data_offsets": [4 * n, 8 * n]}}
    path = _sparse(tmp_path / "two.safetensors", header, 8 * n)
    result = run_isolated(f"PATH, OPTIONS = {str(path)!r}, {{}}" + LOAD, CAPPED)
    assert result[0] == "CheckpointError", result
    assert result[1].startswith(f"{path}: the 2 tensors to load need {8 * n:,} bytes in memory"), result
    assert result[1].endswith("read fewer at a time with keys=")


def test_offsets_beyond_the_file_are_refused(tmp_path):
    path = write_raw(tmp_path / "b.safetensors", _f32([1 << 38], (0, 1 << 40)))
    _refused_by_every_reader(path, "truncated file")
    path = write_raw(tmp_path / "u64.safetensors",
                     b'{"w": {"dtype": "U8", "shape": [0], "data_offsets": [' + b"9" * 40 + b", " + b"9" * 40 + b"]}}")
    _refused_by_every_reader(path, "invalid data_offsets")


# ---------------------------------------------------------------------------------- deep JSON (§3)


def test_deeply_nested_header_names_the_file(tmp_path):
    deep = b"[" * 100_000 + b"]" * 100_000
    path = write_raw(tmp_path / "deep.safetensors", b'{"w": ' + deep + b"}")
    with pytest.raises(CheckpointError, match="nested too deeply"):
        io.inspect(path)
    # Deep enough to break a recursive consumer, not the parser: refused too, by its depth.
    path = write_raw(tmp_path / "deep2.safetensors",
                     b'{"w": {"dtype": "F32", "shape": [], "data_offsets": [0, 4], "x": ' + b"[" * 500 + b"]" * 500 + b"}}",
                     b"\0" * 4)
    with pytest.raises(CheckpointError) as err:
        io.load(path)
    assert str(err.value).startswith(f"{path}: corrupt header: its JSON is nested more than 64 levels")


def test_deeply_nested_metadata_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "m.safetensors"
    for depth, fits in [(64, True), (65, False), (900, False), (100_000, False)]:
        value = "[" * depth + "]" * depth
        write_raw(path, {"__metadata__": {"tinytorch.format_version": "1", "history": value}})
        if fits:
            assert io.load_metadata(path)["history"] == json.loads(value)
            continue
        for reader in (io.load, io.load_metadata, io.inspect):
            with pytest.raises(CheckpointError) as err:
                reader(path)
            assert str(err.value).startswith(f"{path}: metadata 'history' is JSON nested more than 64 levels"), err.value


def test_save_refuses_metadata_it_could_not_read_back(tmp_path):
    path = tmp_path / "m.safetensors"
    nested: list = []
    for _ in range(70):
        nested = [nested]
    with pytest.raises(ValueError, match=r"metadata\['history'\] is nested more than 64 levels"):
        io.save({"w": np.zeros(1)}, path, metadata={"history": nested})
    assert not path.exists()
    shallow = {"a": {"b": [[1, 2], {"c": [3]}]}}
    io.save({"w": np.zeros(1)}, path, metadata={"config": shallow})
    assert io.load_metadata(path)["config"] == shallow


# ---------------------------------------------------------------------------------- long numbers (§4)


def test_a_5000_digit_number_in_the_header_names_the_file(tmp_path):
    long = b"9" * 5000
    for header in (b'{"w": {"dtype": "F32", "shape": [' + long + b'], "data_offsets": [0, 4]}}',
                   b'{"w": {"dtype": "F32", "shape": [], "data_offsets": [0, ' + long + b"]}}"):
        path = write_raw(tmp_path / "n.safetensors", header, b"\0" * 4)
        for reader in (io.load, io.inspect, io.tensor_shapes, io.load_metadata):
            with pytest.raises(CheckpointError) as err:
                reader(path)
            message = str(err.value)
            assert message.startswith(f"{path}: corrupt header: a number of 5,000 digits"), message
            assert "set_int_max_str_digits" not in message  # no advice to loosen Python's guard


def test_long_numbers_are_refused_even_with_pythons_limit_lifted(tmp_path):
    if not hasattr(sys, "set_int_max_str_digits"):
        pytest.skip("Python without the int-string limit")
    path = write_raw(tmp_path / "n.safetensors", b'{"w": {"dtype": "F32", "shape": [0, ' + b"9" * 50_000 + b'], "data_offsets": [0, 0]}}')
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        with pytest.raises(CheckpointError, match="a number of 50,000 digits"):
            io.inspect(path)
    finally:
        sys.set_int_max_str_digits(before)


def test_a_5000_digit_number_in_metadata_names_the_file_and_the_key(tmp_path):
    path = write_raw(tmp_path / "m.safetensors",
                     {"__metadata__": {"tinytorch.format_version": "1", "epoch": "9" * 5000}})
    for reader in (io.load, io.load_metadata, io.inspect):
        with pytest.raises(CheckpointError) as err:
            reader(path)
        assert str(err.value) == (f"{path}: metadata 'epoch' holds a number of 5,000 digits "
                                  "(a checkpoint holds none longer than 4,300)")


# ---------------------------------------------------------------------------------- flood


def test_messages_quote_a_bounded_part_of_what_the_file_holds(tmp_path):
    name = "n" * 1_000_000
    cases = [
        {name: {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}},          # wrong size
        {"w": {"dtype": "x" * 1_000_000, "shape": [1], "data_offsets": [0, 4]}},   # dtype
        {"w": {"dtype": "F32", "shape": list(range(1, 100_000)), "data_offsets": [0, 4]}},  # shape
        {"w": {"dtype": "F32", "shape": [1], "data_offsets": list(range(100_000))}},
    ]
    for header in cases:
        path = write_raw(tmp_path / "f.safetensors", header, b"\0" * 4)
        with pytest.raises(CheckpointError) as err:
            io.inspect(path)
        assert len(str(err.value)) < 600, str(err.value)[:300]
    path = write_raw(tmp_path / "g.safetensors", {name: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                     b"\0" * 4)
    with pytest.raises(CheckpointError) as err:
        io.load(path, keys=["other"])
    assert len(str(err.value)) < 600 and "'nnnn" in str(err.value)


def test_nesting_is_counted_through_every_container_kind(tmp_path):
    """Dicts, lists, tuples and other mappings each add a level, an array its dimensions; leaves
    (the bulk of a tokenizer's vocabulary) add none."""
    from collections import OrderedDict

    from tinytorch.core.io.safetensors import _nesting_exceeds

    def nest(make, depth):
        value = "leaf"
        for _ in range(depth):
            value = make(value)
        return value

    for make in (lambda v: {"k": v}, lambda v: [v, 1.5, None], lambda v: (v,), lambda v: OrderedDict(k=v)):
        assert not _nesting_exceeds(nest(make, 64)) and _nesting_exceeds(nest(make, 65))
    assert not _nesting_exceeds([np.zeros((1,) * 63)]) and _nesting_exceeds([np.zeros((1,) * 64)])
    with pytest.raises(ValueError, match=r"metadata\['config'\] is nested more than 64 levels"):
        io.save({"w": np.zeros(1)}, tmp_path / "m.safetensors", metadata={"config": nest(lambda v: {"k": v}, 65)})
