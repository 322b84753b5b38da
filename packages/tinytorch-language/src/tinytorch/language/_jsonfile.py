"""Reading the JSON files a user hands over (tokenizer files, GPT-2's ``vocab.json``,
``config.json``, ``model.safetensors.index.json``): every way the text can fail names the file.

Python's ``json`` fails on hostile text with errors that name nothing: deep nesting raises
``RecursionError``, and an integer of more than 4,300 digits Python's int-conversion limit
error. Here nesting is an error naming the file, and an integer of more than
``MAX_INT_DIGITS`` digits becomes a `LongNumber`, which no type check accepts as an int, so the
caller's own check names the key it sits under.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinytorch.core import io

MAX_INT_DIGITS = 30  # far above any id, size or count a real file holds (2**64 has 20 digits)


class LongNumber:
    """An integer literal too long to be a real value; stands in for it so that the caller's
    type check (``isinstance(value, int)``) fails and names the key.

    >>> LongNumber("9" * 5000)
    a 5000-digit number
    """

    def __init__(self, digits: str):
        self.digits = len(digits.lstrip("-"))

    def __repr__(self) -> str:
        return f"a {self.digits}-digit number"


def _parse_int(text: str) -> int | LongNumber:
    return int(text) if len(text) <= MAX_INT_DIGITS else LongNumber(text)


def read_json(path: str | Path, error: type[Exception] = ValueError) -> Any:
    """The parsed JSON of ``path``; ``error`` naming the file for text that is not UTF-8, not
    JSON (with line and column) or nested too deeply to read.

    Args:
        path: the file.
        error: the exception class to raise (e.g. ``TokenizerError``).

    Returns:
        The parsed value; integers longer than ``MAX_INT_DIGITS`` digits are `LongNumber`.

    Raises:
        FileNotFoundError, OSError: the file cannot be read.
        tinytorch.core.io.NotRegularFileError: ``path`` is a FIFO, directory or device.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "x.json")
    ...     _ = open(path, "w").write("[" * 100_000)
    ...     read_json(path)
    Traceback (most recent call last):
    ...
    ValueError: .../x.json: its JSON is nested too deeply to read
    """
    path = io.check_regular_file(path)  # a FIFO would block the read forever
    raw = path.read_bytes()
    try:
        return json.loads(raw.decode("utf-8"), parse_int=_parse_int)
    except UnicodeDecodeError as e:
        raise error(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise error(f"{path} line {e.lineno} column {e.colno}: not valid JSON ({e.msg})") from None
    except RecursionError:
        raise error(f"{path}: its JSON is nested too deeply to read") from None
