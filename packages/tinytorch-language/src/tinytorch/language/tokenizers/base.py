"""The interface every tokenizer shares, and its versioned JSON file format.

A tokenizer maps text to a list of integer ids and back::

    tok.fit(text)            # learn the vocabulary (returns the tokenizer)
    ids = tok.encode(text)   # str -> list[int]
    tok.decode(ids)          # list[int] -> str
    tok.vocab_size           # number of ids (also tok.get_vocab_size(), the design summary's name)
    tok.save(path); Tokenizer.load(path)

The file is JSON: ``{"format": "tinytorch.tokenizer", "version": 2, "type": "char"|"word"|"bpe",
...}``. A file of another format, type or version is refused with a message that says which.
Version 2 added the BPE field ``byte_order`` (GPT-2 numbers the bytes in its own order);
version-1 files still load (their byte ids are the bytes themselves).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar

from tinytorch.core.checks import is_int

from .._jsonfile import read_json

FORMAT = "tinytorch.tokenizer"
VERSION = 2
READS_VERSIONS = (1, 2)


class TokenizerError(ValueError):
    """A tokenizer file that is not ours, of another version, or corrupt; or an unfit tokenizer.

    A ``ValueError``, so callers that catch ``ValueError`` also catch it.

    >>> from tinytorch.language import CharTokenizer
    >>> CharTokenizer().encode("hi")
    Traceback (most recent call last):
    ...
    tinytorch.language.tokenizers.base.TokenizerError: CharTokenizer is not fitted: call fit(text) or load(path) first
    """


class Tokenizer:
    """Base class: subclasses implement ``fit``, ``encode``, ``decode``, ``vocab_size`` and the
    ``_state``/``_from_state`` pair used by ``save``/``load`` and checkpoints.

    Subclasses with a ``type_name`` register themselves, so `Tokenizer.load` and
    `Tokenizer.from_dict` rebuild any of them from a file.

    >>> from tinytorch.language import CharTokenizer
    >>> tok = CharTokenizer().fit("abc")
    >>> Tokenizer.from_dict(tok.to_dict()).encode("cab")
    [2, 0, 1]
    """

    type_name: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[Tokenizer]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.type_name:
            Tokenizer._registry[cls.type_name] = cls

    # ---------------------------------------------------------------- interface
    def fit(self, text: str) -> Tokenizer:
        """Learn the vocabulary from ``text``.

        Args:
            text: the training text.

        Returns:
            The tokenizer itself, so ``tok = CharTokenizer().fit(text)`` works.
        """
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        """Text to token ids.

        Args:
            text: the text to encode.

        Returns:
            The ids, each in ``[0, vocab_size)``.
        """
        raise NotImplementedError

    def decode(self, ids: Any) -> str:
        """Token ids back to text.

        Args:
            ids: a list, 1-D array or Tensor of ids in ``[0, vocab_size)``.

        Returns:
            The text.
        """
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def get_vocab_size(self) -> int:
        """The design summary's name for :attr:`vocab_size`.

        >>> from tinytorch.language import CharTokenizer
        >>> CharTokenizer().fit("hello").get_vocab_size()
        4
        """
        return self.vocab_size

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def is_fitted(self) -> bool:
        return self.vocab_size > 0

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise TokenizerError(f"{type(self).__name__} is not fitted: call fit(text) or load(path) first")

    # ---------------------------------------------------------------- serialisation
    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> Tokenizer:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The JSON-serialisable form written by ``save`` (and stored in checkpoints)."""
        return {"format": FORMAT, "version": VERSION, "type": self.type_name, **self._state()}

    @staticmethod
    def from_dict(d: Any, source: str = "tokenizer data") -> Tokenizer:
        """Rebuild any tokenizer from ``to_dict()`` output, checking format, version and type.

        Args:
            d: the dict (e.g. parsed from a tokenizer file or a checkpoint's metadata).
            source: what ``d`` came from, quoted in error messages.

        Returns:
            A tokenizer of the class named by ``d["type"]``.

        Raises:
            TokenizerError: not a TinyTorch tokenizer, another version, an unknown type, or
                corrupt state.

        >>> Tokenizer.from_dict({"format": "tinytorch.tokenizer", "version": 1, "type": "char",
        ...                      "chars": "ab", "unk_token": None}).vocab_size
        2
        """
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise TokenizerError(f"{source} is not a TinyTorch tokenizer (expected format {FORMAT!r})")
        version = d.get("version")
        if version not in READS_VERSIONS:
            raise TokenizerError(
                f"{source} is a tokenizer file of version {version!r}, but this tinytorch-language "
                f"reads versions {', '.join(map(str, READS_VERSIONS))}; re-create it with the installed version"
            )
        cls = Tokenizer._registry.get(d.get("type"))
        if cls is None:
            raise TokenizerError(
                f"{source} has unknown tokenizer type {d.get('type')!r} "
                f"(expected one of {sorted(Tokenizer._registry)})"
            )
        try:
            return cls._from_state(d)
        except KeyError as e:
            raise TokenizerError(f"{source} is a corrupt {d['type']} tokenizer: field {e} is missing") from e
        except (TypeError, ValueError) as e:
            raise TokenizerError(f"{source} is a corrupt {d['type']} tokenizer: {e}") from e

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as versioned JSON (atomically: temp file, then rename).

        Args:
            path: the file to write; its folder is created if needed.

        Raises:
            TokenizerError: the tokenizer is not fitted.
            ValueError: ``path`` is a directory, device or FIFO, or its folder cannot hold a
                file (``tinytorch.core.io.DestinationError``).
            OSError: writing failed (disk full, ...); the message names ``path``, a previous
                file there is unchanged and no temp file is left.

        >>> import tempfile
        >>> from tinytorch.language import CharTokenizer
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     CharTokenizer().fit("hello").save(Path(tmp) / "tok.json")
        ...     Tokenizer.load(Path(tmp) / "tok.json").decode([1, 0])
        'he'
        """
        from tinytorch.core import io

        self._require_fitted()
        try:
            payload = json.dumps(self.to_dict(), ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as e:
            raise TokenizerError(
                f"{type(self).__name__}.save: its vocabulary holds a lone surrogate, which UTF-8 "
                f"cannot store ({e.reason}); nothing was written to {path}"
            ) from None
        io.write_atomic(path, payload, what="tokenizer")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Load any tokenizer saved by ``save``; ``CharTokenizer.load`` also checks the type.

        Args:
            path: a file written by `save`.

        Returns:
            The tokenizer, of the class stored in the file.

        Raises:
            TokenizerError: not a tokenizer file, another version or type, or corrupt.
            FileNotFoundError: ``path`` does not exist.

        >>> import tempfile
        >>> from tinytorch.language import CharTokenizer, WordTokenizer
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = Path(tmp.name) / "tok.json"
        >>> WordTokenizer().fit("to be").save(path)
        >>> type(Tokenizer.load(path)).__name__
        'WordTokenizer'
        >>> CharTokenizer.load(path)
        Traceback (most recent call last):
        ...
        tinytorch.language.tokenizers.base.TokenizerError: ... holds a WordTokenizer, not a CharTokenizer
        >>> tmp.cleanup()
        """
        path = Path(path)
        d = read_json(path, TokenizerError)
        tok = Tokenizer.from_dict(d, source=str(path))
        if cls is not Tokenizer and not isinstance(tok, cls):
            raise TokenizerError(f"{path} holds a {type(tok).__name__}, not a {cls.__name__}")
        return tok

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


def check_text(owner: str, text: Any, name: str = "text") -> str:
    """Return ``text`` if it is a str, else raise a ``TypeError`` naming ``owner`` and ``name``.

    Args:
        owner: the caller, quoted in the error (e.g. ``"CharTokenizer.fit"``).
        text: the value to check.
        name: the argument's name, quoted in the error.

    Returns:
        ``text`` unchanged.

    >>> check_text("CharTokenizer.fit", b"bytes")
    Traceback (most recent call last):
    ...
    TypeError: CharTokenizer.fit: text must be a str, got bytes
    """
    if not isinstance(text, str):
        raise TypeError(f"{owner}: {name} must be a str, got {type(text).__name__}")
    return text


def check_ids(owner: str, ids: Any, vocab_size: int) -> list[int]:
    """ids (list, 1-D array or Tensor) as a list of Python ints, each in [0, vocab_size).

    Args:
        owner: the tokenizer class name, quoted in errors.
        ids: a list, 1-D integer array or Tensor of ids.
        vocab_size: ids must be below it.

    Returns:
        The ids as a list of ints.

    Raises:
        TypeError: not a 1-D sequence of integers.
        ValueError: an id is out of range.

    >>> import numpy as np
    >>> check_ids("CharTokenizer", np.array([3, 1]), vocab_size=4)
    [3, 1]
    """
    import numpy as np

    from tinytorch.core import Tensor

    arr = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    if arr.size == 0:
        return []
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"{owner}.decode: ids must be a 1-D sequence of ints, got shape {arr.shape} dtype {arr.dtype}"
        )
    bad = arr[(arr < 0) | (arr >= vocab_size)]
    if bad.size:
        raise ValueError(f"{owner}.decode: id {int(bad[0])} is out of range for vocab_size={vocab_size}")
    return arr.tolist()


def check_fit_text(owner: str, text: Any) -> str:
    """`check_text`, and refuse lone surrogates (``"\\ud800"``): UTF-8 cannot encode them, so
    a vocabulary learned from them could not be saved, and BPE could not split them into bytes.

    Args:
        owner: the caller, quoted in the error (e.g. ``"CharTokenizer.fit"``).
        text: the training text.

    Returns:
        ``text`` unchanged.

    Raises:
        TypeError: ``text`` is not a str.
        TokenizerError: ``text`` holds a lone surrogate; the message gives its position.

    >>> try:
    ...     check_fit_text("CharTokenizer.fit", "ab" + chr(0xD800))
    ... except ValueError as err:
    ...     print(err)
    CharTokenizer.fit: text contains the lone surrogate U+D800 at position 2, which UTF-8 cannot encode; remove it or replace it, e.g. text.encode("utf-8", "replace").decode()
    """
    text = check_text(owner, text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise TokenizerError(
            f"{owner}: text contains the lone surrogate U+{ord(text[e.start]):04X} at position "
            f"{e.start}, which UTF-8 cannot encode; remove it or replace it, e.g. "
            'text.encode("utf-8", "replace").decode()'
        ) from None
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")


def field(state: dict[str, Any], name: str, kind: str, default: Any = ...) -> Any:
    """``state[name]`` from a tokenizer file, checked to be exactly of ``kind``; else ValueError
    naming the field (`Tokenizer.from_dict` adds the file).

    Kinds: ``"int"`` (not bool, not float), ``"str"`` (non-empty, no lone surrogates),
    ``"str?"`` (that or None), ``"int?"``, ``"strs"`` (a list of such strings), ``"ints"`` (a
    list of ints), ``"pairs"`` (a list of two-int lists).

    Args:
        state: the parsed file.
        name: the field.
        kind: what it must be (see above).
        default: the value when the field is absent; without it, absence is an error.

    Returns:
        The value, unchanged.

    >>> field({"vocab_size": 300.5}, "vocab_size", "int")
    Traceback (most recent call last):
    ...
    ValueError: field 'vocab_size' must be an int, got float 300.5
    """
    if name not in state:
        if default is ...:
            raise ValueError(f"field {name!r} is missing")
        return default
    value = state[name]
    if kind.endswith("?") and value is None:
        return value
    base = kind.rstrip("?")
    problem = _field_problem(value, base)
    if problem:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise ValueError(f"field {name!r} must be {problem}, got {type(value).__name__} {shown}")
    return value


def _is_int(value: Any) -> bool:
    return is_int(value)


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and value != "" and not _SURROGATE.search(value)


def _field_problem(value: Any, kind: str) -> str:
    """What ``value`` should have been ("" if it is of ``kind``)."""
    if kind == "int":
        return "" if _is_int(value) else "an int"
    if kind == "str":
        return "" if _is_str(value) else "a non-empty string without lone surrogates"
    if kind == "strs":
        ok = isinstance(value, list) and all(_is_str(v) for v in value)
        return "" if ok else "a list of non-empty strings"
    if kind == "ints":
        return "" if isinstance(value, list) and all(_is_int(v) for v in value) else "a list of ints"
    if kind == "pairs":
        ok = isinstance(value, list) and all(
            isinstance(p, list) and len(p) == 2 and all(_is_int(x) for x in p) for p in value)
        return "" if ok else "a list of [int, int] pairs"
    raise AssertionError(f"unknown field kind {kind!r}")
