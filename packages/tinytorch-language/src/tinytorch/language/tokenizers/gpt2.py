"""Readers for GPT-2's tokenizer files and tiktoken's ranks files (used by `BPETokenizer.from_gpt2`
and `BPETokenizer.from_tiktoken`).

GPT-2 writes tokens as text in its byte-to-unicode alphabet (`bytes_to_unicode`): each byte is
one printable character (the space is ``Ġ``), so ``encoder.json`` (token -> id) and
``vocab.bpe`` (the merges, one ``left right`` pair per line, in id order) are plain text. Its
ids are TinyTorch's BPE layout with the bytes in another order: ids 0..255 are the single
bytes, merge ``i`` (line ``i + 2`` of ``vocab.bpe``) is id ``256 + i``, and ``<|endoftext|>``
comes last (50256).

tiktoken's ``.tiktoken`` files list ``base64(token bytes) rank`` per line, without the merges:
token ``r``'s merge is recovered as the two parts that BPE with the ranks below ``r`` leaves.

>>> table = bytes_to_unicode()
>>> table[ord("a")], table[ord(" ")], table[ord("\\n")]
('a', 'Ġ', 'Ċ')
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from tinytorch.core import io
from tinytorch.core.checks import is_int

from .._jsonfile import MAX_INT_DIGITS, read_json
from .base import TokenizerError
from .bpe import _bpe


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each of the 256 bytes to a printable character.

    Printable Latin-1 bytes stand for themselves; the other 68 (control characters, space,
    ``\\xad``...) map to ``chr(256)``, ``chr(257)``, ... in byte order.

    Returns:
        ``{byte: character}``, one distinct character per byte.

    >>> bytes_to_unicode()[0], bytes_to_unicode()[ord("!")]
    ('Ā', '!')
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + n) for n, b in enumerate(others)})
    return table


def _path(owner: str, name: str, value: object) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{owner}: {name} must be a path (str or os.PathLike), got {type(value).__name__}")
    return Path(value)


def _gpt2_paths(encoder_json: object, vocab_bpe: object) -> tuple[Path, Path]:
    owner = "BPETokenizer.from_gpt2"
    encoder_path = _path(owner, "encoder_json", encoder_json)
    if vocab_bpe is not None:
        return encoder_path, _path(owner, "vocab_bpe", vocab_bpe)
    if not encoder_path.is_dir():
        raise ValueError(f"{owner}: vocab_bpe is missing; pass it, or pass a directory as "
                         f"encoder_json ({encoder_path} is not a directory)")
    for vocab_name, merges_name in (("encoder.json", "vocab.bpe"), ("vocab.json", "merges.txt")):
        if (encoder_path / vocab_name).is_file() and (encoder_path / merges_name).is_file():
            return encoder_path / vocab_name, encoder_path / merges_name
    raise FileNotFoundError(f"{encoder_path} holds neither encoder.json + vocab.bpe (GPT-2's names) "
                            "nor vocab.json + merges.txt (Hugging Face's); `tito data download "
                            "gpt2-tokenizer` fetches GPT-2's")


def _read_encoder(path: Path) -> dict[str, int]:
    encoder = read_json(path, TokenizerError)
    if not isinstance(encoder, dict):
        raise TokenizerError(f"{path}: expected a JSON object of token -> id, got a {type(encoder).__name__}")
    token_of_id: dict[int, str] = {}
    for token, i in encoder.items():
        if not is_int(i) or i < 0:
            raise TokenizerError(f"{path}: the id of token {token!r} must be a non-negative int, got {i!r}")
        if i in token_of_id:
            raise TokenizerError(f"{path}: tokens {token_of_id[i]!r} and {token!r} have the same id {i}")
        token_of_id[i] = token
    return encoder


def read_gpt2_files(encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike | None = None
                    ) -> tuple[list[int], list[tuple[int, int]], list[str]]:
    """GPT-2's ``encoder.json`` + ``vocab.bpe`` (or a directory of them) as BPE parts.

    Args:
        encoder_json: ``encoder.json``/``vocab.json``, or a directory holding both files.
        vocab_bpe: ``vocab.bpe``/``merges.txt``, or None with a directory.

    Returns:
        ``(byte_order, merges, special_tokens)``: the byte of each id 0..255, the merged id
        pairs (merge ``i`` is id ``256 + i``) and the remaining tokens in id order.

    Raises:
        TokenizerError: a malformed file, naming it (and the line of ``vocab.bpe``).

    >>> from tinytorch.core.datafiles import dataset_folder
    >>> order, merges, specials = read_gpt2_files(dataset_folder("gpt2-tokenizer"))
    >>> bytes(order[:3]), len(merges), specials
    (b'!"#', 50000, ['<|endoftext|>'])
    """
    encoder_path, merges_path = _gpt2_paths(encoder_json, vocab_bpe)
    encoder = _read_encoder(encoder_path)
    byte_order = [0] * 256
    for byte, char in bytes_to_unicode().items():
        i = encoder.get(char)
        if i is None or i >= 256:
            raise TokenizerError(f"{encoder_path}: the token {char!r} of byte {byte} must have an id "
                                 f"in 0..255, got {i}")
        byte_order[i] = byte
    try:
        lines = io.check_regular_file(merges_path).read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise TokenizerError(f"{merges_path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    merges: list[tuple[int, int]] = []
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip("\r")  # no token holds a "\r": GPT-2's alphabet writes it as "č"
        if not line or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise TokenizerError(f"{merges_path} line {lineno}: expected two tokens separated by one "
                                 f"space, got {line!r}")
        new_id = 256 + len(merges)
        left, right = (encoder.get(p) for p in parts)
        merged = encoder.get(parts[0] + parts[1])
        for token, i in ((parts[0], left), (parts[1], right), (parts[0] + parts[1], merged)):
            if i is None:
                raise TokenizerError(f"{merges_path} line {lineno}: {token!r} is not a token of {encoder_path}")
        if merged != new_id or left >= new_id or right >= new_id:
            raise TokenizerError(
                f"{merges_path} line {lineno}: merge {len(merges)} ({parts[0]!r} {left} + {parts[1]!r} "
                f"{right}) must make id {new_id} from lower ids, but {encoder_path} gives it {merged}"
            )
        merges.append((left, right))
    first = 256 + len(merges)
    specials = sorted((i, token) for token, i in encoder.items() if i >= first)
    if [i for i, _ in specials] != list(range(first, first + len(specials))):
        raise TokenizerError(f"{encoder_path}: the ids after the 256 bytes and {len(merges)} merges of "
                             f"{merges_path} must be {first}, {first + 1}, ... (special tokens), got "
                             f"{[i for i, _ in specials][:5]}")
    _refuse_missing_merges(encoder_path, merges_path, encoder, first, specials)
    return byte_order, merges, [token for _, token in specials]


def _refuse_missing_merges(encoder_path: Path, merges_path: Path, encoder: dict[str, int], first: int,
                           specials: list[tuple[int, str]]) -> None:
    """A token after the merges that is two lower tokens joined is a merge the merges file lacks
    (it was cut short): it would become a "special token", which text never encodes to."""
    regular = {token for token, i in encoder.items() if i < first}
    for i, token in specials:
        cut = next((c for c in range(1, len(token)) if token[:c] in regular and token[c:] in regular), None)
        if cut is not None:
            raise TokenizerError(
                f"{merges_path} holds {first - 256} merges, but {encoder_path} has {len(specials)} tokens "
                f"after them, and token {i} {token!r} is {token[:cut]!r} + {token[cut:]!r}, a merge "
                f"{merges_path.name} lacks: is {merges_path.name} cut short?"
            )


def read_tiktoken_file(path: str | os.PathLike) -> tuple[list[int], list[tuple[int, int]]]:
    """A tiktoken ``.tiktoken`` ranks file as BPE parts.

    Args:
        path: the file: one ``base64(token bytes) rank`` per line, ranks 0, 1, 2, ...

    Returns:
        ``(byte_order, merges)`` as `read_gpt2_files` returns them.

    Raises:
        TokenizerError: a malformed line (naming the file and line), ranks with gaps, or
            ranks that are not byte-level BPE (single bytes first, then merges).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "bad.tiktoken"
    ...     _ = path.write_text("QQ== 0\\nnot-base64! 1\\n")
    ...     read_tiktoken_file(path)
    Traceback (most recent call last):
    ...
    tinytorch.language.tokenizers.base.TokenizerError: .../bad.tiktoken line 2: 'not-base64!' is not base64 (...)
    """
    path = _path("BPETokenizer.from_tiktoken", "path", path)
    rank_lines: dict[int, tuple[bytes, int]] = {}
    with open(io.check_regular_file(path), "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            parts = raw.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise TokenizerError(f"{path} line {lineno}: expected 'base64 rank', got {raw[:60]!r}")
            if len(parts[1]) > MAX_INT_DIGITS:
                raise TokenizerError(f"{path} line {lineno}: the rank is a {len(parts[1])}-digit number; "
                                     "ranks count the lines")
            try:
                token = base64.b64decode(parts[0], validate=True)
            except binascii.Error as e:
                raise TokenizerError(f"{path} line {lineno}: {parts[0][:40].decode('ascii', 'replace')!r} "
                                     f"is not base64 ({e})") from None
            rank = int(parts[1])
            if rank in rank_lines:
                raise TokenizerError(f"{path} line {lineno}: rank {rank} is also on line {rank_lines[rank][1]}")
            rank_lines[rank] = (token, lineno)
    missing = next((r for r in range(len(rank_lines)) if r not in rank_lines), None)
    if missing is not None or len(rank_lines) < 256:
        raise TokenizerError(f"{path}: ranks must be 0, 1, 2, ... from 0 to at least 255; rank "
                             f"{missing if missing is not None else len(rank_lines)} is missing")
    byte_order = []
    for rank in range(256):
        token, lineno = rank_lines[rank]
        if len(token) != 1:
            raise TokenizerError(f"{path} line {lineno}: rank {rank} is {token!r}; byte-level BPE has the "
                                 "256 single bytes at ranks 0..255")
        byte_order.append(token[0])
    if len(set(byte_order)) != 256:
        raise TokenizerError(f"{path}: ranks 0..255 must be the 256 different single bytes")
    ids_of_bytes = bytearray(256)
    for i, b in enumerate(byte_order):
        ids_of_bytes[b] = i
    pair_ranks: dict[tuple[int, int], int] = {}
    merges: list[tuple[int, int]] = []
    for rank in range(256, len(rank_lines)):
        token, lineno = rank_lines[rank]
        parts = _bpe(list(token.translate(ids_of_bytes)), pair_ranks)
        if len(parts) != 2:
            raise TokenizerError(f"{path} line {lineno}: token {token!r} (rank {rank}) is not the merge of "
                                 "two tokens of lower rank, so the file is not byte-level BPE")
        pair_ranks[(parts[0], parts[1])] = rank
        merges.append((parts[0], parts[1]))
    return byte_order, merges


__all__ = ["bytes_to_unicode", "read_gpt2_files", "read_tiktoken_file"]
