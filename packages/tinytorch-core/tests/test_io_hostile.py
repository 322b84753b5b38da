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

import pytest

from tinytorch.core import io

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
