"""Byte-level byte-pair encoding (Sennrich et al., 2016; GPT-2, Radford et al., 2019).

Two small classes, as in Karpathy's minbpe:

- :class:`BasicBPETokenizer`: BPE on the raw UTF-8 bytes of the whole text. Ids 0..255 are the
  bytes; each merge ``(a, b) -> 256 + i`` adds one id.
- :class:`BPETokenizer`: first splits the text with GPT-2's regex (so merges never cross a
  word/number/punctuation boundary), then BPE inside each piece; plus special tokens such as
  ``<|endoftext|>``, which ``encode`` refuses unless they are explicitly allowed.

Training counts pairs once, then updates the counts incrementally: a merge only touches the
distinct pieces that contain the pair, and a heap yields the most frequent pair (ties: the
smallest pair), instead of recounting the whole corpus for every merge.

GPT-2's pattern uses ``\\p{L}`` (letters) and ``\\p{N}`` (numbers), which the standard ``re``
module lacks; they are emulated without the third-party ``regex`` package: letters are
``[^\\W\\d_]`` (word characters that are neither digits nor ``_``) and numbers are ``\\d``
(Unicode decimal digits). Other numeric characters (``²``, ``½``) therefore count as letters;
nothing else changes, and every string still round-trips exactly.

>>> tok = BasicBPETokenizer(vocab_size=256 + 3).fit("aaabdaaabac")
>>> tok.encode("aaabdaaabac")
[258, 100, 258, 97, 99]
>>> tok.decode([258, 100, 258, 97, 99])
'aaabdaaabac'
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from .base import Tokenizer, TokenizerError, check_fit_text, check_ids, check_text, field

GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""
"""GPT-2's ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``
for the standard ``re`` module (see the module docstring)."""


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of ``pair`` in ``ids``, left to right."""
    out, i, n = [], 0, len(ids)
    a, b = pair
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_merges(pieces: dict[bytes, int], num_merges: int) -> list[tuple[int, int]]:
    """Learn up to ``num_merges`` merges from distinct byte strings and their counts.

    Args:
        pieces: each distinct piece of the text (as UTF-8 bytes) and how often it occurs.
        num_merges: the most merges to learn (fewer if the pieces run out of pairs).

    Returns:
        The merged pairs in order; pair i becomes id ``256 + i``. Ties in frequency go to the
        smallest pair.

    >>> train_merges({b"aaab": 1}, 2)
    [(97, 97), (97, 98)]
    """
    words = [list(p) for p in pieces]
    freqs = list(pieces.values())
    counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for wi, w in enumerate(words):
        f = freqs[wi]
        for pair in zip(w, w[1:]):
            counts[pair] += f
            where[pair].add(wi)
    heap = [(-c, pair) for pair, c in counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[int, int]] = []
    while len(merges) < num_merges and heap:
        negc, pair = heapq.heappop(heap)
        if counts.get(pair, 0) != -negc or negc == 0:
            continue  # a stale entry: the pair's count changed after it was pushed
        new_id = 256 + len(merges)
        merges.append(pair)
        changed: set[tuple[int, int]] = set()
        for wi in where.pop(pair, ()):
            w, f = words[wi], freqs[wi]
            if len(w) < 2:
                continue
            new_w = _merge(w, pair, new_id)
            if len(new_w) == len(w):
                continue
            for p in zip(w, w[1:]):
                counts[p] -= f
                changed.add(p)
            for p in zip(new_w, new_w[1:]):
                counts[p] += f
                where[p].add(wi)
                changed.add(p)
            words[wi] = new_w
        counts.pop(pair, None)
        for p in changed:
            c = counts.get(p, 0)
            if c > 0 and p != pair:
                heapq.heappush(heap, (-c, p))
            elif c <= 0:
                counts.pop(p, None)
    return merges


class BasicBPETokenizer(Tokenizer):
    """Byte-level BPE on the whole text (no pre-split, no special tokens).

    Args:
        vocab_size: 256 byte ids plus ``vocab_size - 256`` merges learned by ``fit``.

    >>> tok = BasicBPETokenizer(vocab_size=258).fit("abababab")
    >>> tok.merges, tok.encode("ababx")
    ([(97, 98), (256, 256)], [257, 120])
    """

    type_name = "bpe_basic"

    def __init__(self, vocab_size: int = 512):
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 256:
            raise ValueError(f"{type(self).__name__}: vocab_size must be an int >= 256, got {vocab_size!r}")
        self.target_vocab_size = vocab_size
        self.merges: list[tuple[int, int]] = []
        self._fitted = False  # unfitted, it still encodes: as raw bytes
        self._rebuild()

    @property
    def is_fitted(self) -> bool:
        return self._fitted

    # ---------------------------------------------------------------- vocabulary
    def _rebuild(self) -> None:
        self.ranks = {pair: 256 + i for i, pair in enumerate(self.merges)}
        vocab = [bytes([i]) for i in range(256)]
        for a, b in self.merges:
            vocab.append(vocab[a] + vocab[b])
        self.vocab = vocab
        self._cache: dict[bytes, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    # ---------------------------------------------------------------- training
    def _pieces(self, text: str) -> dict[bytes, int]:
        return {_utf8(text): 1} if text else {}

    def fit(self, text: str, vocab_size: int | None = None) -> BasicBPETokenizer:
        """Learn ``vocab_size - 256`` merges from ``text`` (fewer if the text runs out of pairs).

        Args:
            text: the training text.
            vocab_size: a new target vocabulary size (>= 256), or None to keep the current one.

        Returns:
            The tokenizer itself.

        >>> BasicBPETokenizer().fit("aaaa", vocab_size=257).vocab_size
        257
        """
        text = check_fit_text(f"{type(self).__name__}.fit", text)
        if vocab_size is not None:
            if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 256:
                raise ValueError(f"{type(self).__name__}.fit: vocab_size must be an int >= 256, got {vocab_size!r}")
            self.target_vocab_size = vocab_size
        self.merges = train_merges(self._pieces(text), self.target_vocab_size - 256)
        self._fitted = True
        self._rebuild()
        return self

    # ---------------------------------------------------------------- encoding
    def _encode_piece(self, piece: bytes) -> list[int]:
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        ids = list(piece)
        ranks = self.ranks
        while len(ids) >= 2:
            best = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, 1 << 62))
            if best not in ranks:
                break
            ids = _merge(ids, best, ranks[best])
        if len(self._cache) < 200_000:
            self._cache[piece] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ignoring special tokens.

        Args:
            text: the text to encode.

        Returns:
            The ids: bytes (0..255) merged as ``fit`` learned.

        >>> BasicBPETokenizer().encode_ordinary("hi")  # unfitted: raw UTF-8 bytes
        [104, 105]
        """
        text = check_text(f"{type(self).__name__}.encode", text)
        return list(self._encode_piece(_utf8(text))) if text else []

    def encode(self, text: str) -> list[int]:
        """The same as `encode_ordinary` (this tokenizer has no special tokens).

        Args:
            text: the text to encode.

        Returns:
            The ids.

        >>> BasicBPETokenizer(vocab_size=257).fit("aaaa").encode("aaa")
        [256, 97]
        """
        return self.encode_ordinary(text)

    def decode(self, ids: Any) -> str:
        """Ids back to text; byte sequences that are not valid UTF-8 decode to U+FFFD.

        Args:
            ids: a list, 1-D array or Tensor of ids in ``[0, vocab_size)``.

        Returns:
            The text.

        >>> BasicBPETokenizer().decode([104, 105, 255])
        'hi\ufffd'
        """
        ids = check_ids(type(self).__name__, ids, self.vocab_size)
        vocab = self.vocab
        return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")

    # ---------------------------------------------------------------- files
    def _state(self) -> dict[str, Any]:
        return {"vocab_size": self.target_vocab_size, "merges": [list(p) for p in self.merges]}

    def _load_merges(self, merges: Iterable[Any]) -> None:
        checked: list[tuple[int, int]] = []
        for i, m in enumerate(merges):
            a, b = m
            if not (0 <= a < 256 + i and 0 <= b < 256 + i):
                raise ValueError(f"field 'merges': merge {i} = {m} refers to an id that does not exist yet")
            checked.append((a, b))
        if len(set(checked)) != len(checked):
            seen: set[tuple[int, int]] = set()
            twice = next(p for p in checked if p in seen or seen.add(p))
            raise ValueError(f"field 'merges' lists the pair {list(twice)} twice")
        if self.target_vocab_size < 256 + len(checked):
            raise ValueError(
                f"field 'vocab_size' is {self.target_vocab_size}, smaller than the 256 bytes + "
                f"{len(checked)} merges the file holds"
            )
        self.merges = checked
        self._fitted = True
        self._rebuild()

    @classmethod
    def _vocab_size_field(cls, state: dict[str, Any]) -> int:
        vocab_size = field(state, "vocab_size", "int")
        if vocab_size < 256:
            raise ValueError(f"field 'vocab_size' must be >= 256, got {vocab_size}")
        return vocab_size

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> BasicBPETokenizer:
        tok = cls(cls._vocab_size_field(state))
        tok._load_merges(field(state, "merges", "pairs"))
        return tok


class BPETokenizer(BasicBPETokenizer):
    """Byte-level BPE with GPT-2's regex pre-split and special tokens.

    Args:
        vocab_size: byte ids + merges (special tokens come on top, after the merges).
        pattern: the pre-split regex (default: GPT-2's, see ``GPT2_SPLIT_PATTERN``).
        special_tokens: strings such as ``"<|endoftext|>"`` that get their own ids.

    ``encode(text)`` raises a ``ValueError`` if ``text`` contains a special token, unless it is
    in ``allowed_special`` (a set of strings, or ``"all"``), as tiktoken does: text from users
    can then never inject control tokens by accident.

    >>> tok = BPETokenizer(vocab_size=260, special_tokens=["<|endoftext|>"]).fit("hello hello hello")
    >>> ids = tok.encode("hello<|endoftext|>", allowed_special="all")
    >>> ids[-1] == tok.special_tokens["<|endoftext|>"], tok.decode(ids)
    (True, 'hello<|endoftext|>')
    """

    type_name = "bpe"

    def __init__(self, vocab_size: int = 512, pattern: str = GPT2_SPLIT_PATTERN,
                 special_tokens: Iterable[str] = ()):
        super().__init__(vocab_size)
        try:
            self.compiled = re.compile(pattern)
        except (re.error, TypeError) as e:
            raise ValueError(f"BPETokenizer: pattern is not a valid regular expression: {e}") from None
        gap = _first_gap(self.compiled, _COVERAGE_PROBE)
        if gap is not None:
            raise ValueError(
                f"BPETokenizer: pattern {pattern!r} does not match {_COVERAGE_PROBE[gap]!r} in "
                "ordinary text, so encode would drop it; a pre-split pattern must match every "
                "character (end it with an alternative such as |\\s+|\\S)"
            )
        self.pattern = pattern
        if isinstance(special_tokens, str):
            raise TypeError("BPETokenizer: special_tokens must be a list of strings, got a single str")
        specials = list(special_tokens)
        if any(not isinstance(s, str) or not s for s in specials) or len(set(specials)) != len(specials):
            raise ValueError(f"BPETokenizer: special_tokens must be distinct non-empty strings, got {specials!r}")
        self._special_list = specials
        self._index_specials()

    def _index_specials(self) -> None:
        base = 256 + len(self.merges)
        self.special_tokens = {s: base + i for i, s in enumerate(self._special_list)}
        self.inverse_special = {i: s for s, i in self.special_tokens.items()}

    def _rebuild(self) -> None:
        super()._rebuild()
        if hasattr(self, "_special_list"):
            self._index_specials()

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges) + len(self._special_list)

    def _split(self, text: str, owner: str) -> list[str]:
        """The pattern's pieces of ``text``, which must cover all of it: a character the pattern
        skips would be lost from the encoding (and from training) without a trace."""
        pieces, pos = [], 0
        for m in self.compiled.finditer(text):
            if m.start() != pos:
                break
            pos = m.end()
            pieces.append(m.group())
        if pos != len(text):
            raise TokenizerError(
                f"{owner}: the pre-split pattern does not match {text[pos]!r} at position {pos}, "
                f"so it would be dropped; this tokenizer's pattern is {self.pattern!r}"
            )
        return pieces

    def _pieces(self, text: str) -> dict[bytes, int]:
        return {_utf8(p): n for p, n in Counter(self._split(text, "BPETokenizer.fit")).items()}

    def fit(self, text: str, vocab_size: int | None = None) -> BPETokenizer:
        """Learn merges inside the regex pieces of ``text``; special tokens get the last ids.

        Args:
            text: the training text.
            vocab_size: a new target number of byte ids + merges (>= 256), or None.

        Returns:
            The tokenizer itself.

        >>> tok = BPETokenizer(vocab_size=258, special_tokens=["<|endoftext|>"]).fit("hi hi hi")
        >>> tok.vocab_size, tok.special_tokens
        (259, {'<|endoftext|>': 258})
        """
        if vocab_size is not None:
            if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 256:
                raise ValueError(f"BPETokenizer.fit: vocab_size must be an int >= 256, got {vocab_size!r}")
            self.target_vocab_size = vocab_size
        text = check_fit_text("BPETokenizer.fit", text)
        self.merges = train_merges(self._pieces(text), self.target_vocab_size - 256)
        self._fitted = True
        self._rebuild()
        return self

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` piece by piece, treating special tokens as ordinary text.

        Args:
            text: the text to encode.

        Returns:
            The ids.

        >>> BPETokenizer(special_tokens=["<s>"]).encode_ordinary("<s>") == list(b"<s>")
        True
        """
        text = check_text("BPETokenizer.encode", text)
        out: list[int] = []
        for piece in self._split(text, "BPETokenizer.encode"):
            out.extend(self._encode_piece(_utf8(piece)))
        return out

    def encode(self, text: str, allowed_special: str | Iterable[str] = ()) -> list[int]:
        """Encode ``text``; special tokens in it must be listed in ``allowed_special`` (or "all").

        Args:
            text: the text to encode.
            allowed_special: the special tokens that may appear in ``text`` (a set of strings),
                or ``"all"``.

        Returns:
            The ids; each allowed special token is one id.

        Raises:
            ValueError: ``text`` contains a special token that is not allowed.

        >>> tok = BPETokenizer(special_tokens=["<s>"])
        >>> tok.encode("<s>hi", allowed_special={"<s>"})
        [256, 104, 105]
        """
        text = check_text("BPETokenizer.encode", text)
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        elif isinstance(allowed_special, str):
            raise ValueError(
                f"BPETokenizer.encode: allowed_special must be 'all' or a set of strings, got {allowed_special!r}"
            )
        else:
            allowed = set(allowed_special)
            unknown = allowed - set(self.special_tokens)
            if unknown:
                raise ValueError(
                    f"BPETokenizer.encode: allowed_special {sorted(unknown)} are not special tokens "
                    f"of this tokenizer (it has {sorted(self.special_tokens)})"
                )
        for s in self.special_tokens:
            if s not in allowed and s in text:
                raise ValueError(
                    f"BPETokenizer.encode: text contains the special token {s!r} at position "
                    f"{text.index(s)}; pass allowed_special={{{s!r}}} (or 'all') to encode it as "
                    f"id {self.special_tokens[s]}, or remove it from the text"
                )
        if not allowed:
            return self.encode_ordinary(text)
        splitter = "(" + "|".join(re.escape(s) for s in sorted(allowed, key=len, reverse=True)) + ")"
        out: list[int] = []
        for part in re.split(splitter, text):
            if part in allowed:
                out.append(self.special_tokens[part])
            elif part:
                out.extend(self.encode_ordinary(part))
        return out

    def decode(self, ids: Any) -> str:
        """Ids back to text, special tokens included; invalid UTF-8 decodes to U+FFFD.

        Args:
            ids: a list, 1-D array or Tensor of ids in ``[0, vocab_size)``.

        Returns:
            The text.

        >>> BPETokenizer(special_tokens=["<s>"]).decode([256, 104, 105])
        '<s>hi'
        """
        ids = check_ids("BPETokenizer", ids, self.vocab_size)
        parts: list[bytes] = []
        vocab, inverse = self.vocab, self.inverse_special
        for i in ids:
            parts.append(vocab[i] if i < len(vocab) else inverse[i].encode("utf-8"))
        return b"".join(parts).decode("utf-8", errors="replace")

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "pattern": self.pattern, "special_tokens": list(self._special_list)}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> BPETokenizer:
        vocab_size = cls._vocab_size_field(state)
        pattern = field(state, "pattern", "str")
        specials = field(state, "special_tokens", "strs", [])
        try:
            tok = cls(vocab_size, pattern, specials)
        except ValueError as e:
            which = "pattern" if "pattern" in str(e) else "special_tokens"
            raise ValueError(f"field {which!r}: {e}") from None
        tok._load_merges(field(state, "merges", "pairs"))
        return tok


# Ordinary text of every character class a pattern must split: letters (several scripts),
# digits, other numerics, punctuation, symbols, emoji, every kind of whitespace.
_COVERAGE_PROBE = ("Hello, World! It's 3.14 — naïve café; x_y=1+2*3 (ok?) [a] {b} #$%&@^`~|\\/<>\"\n"
                   "\t\r  日本語 Ωμέγα Привет ½² ١٢٣ 🙂👩‍👩‍👧 \u00a0\u2028\u0301\x0b\x0c\x1f\x7f\ufeff")


def _first_gap(compiled: re.Pattern, text: str) -> int | None:
    pos = 0
    for m in compiled.finditer(text):
        if m.start() != pos:
            return pos
        pos = m.end()
    return None if pos == len(text) else pos


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise TokenizerError(
            f"text contains {text[e.start]!r} at position {e.start}, a lone surrogate that UTF-8 "
            "cannot encode"
        ) from None


__all__ = ["BasicBPETokenizer", "BPETokenizer", "GPT2_SPLIT_PATTERN", "train_merges"]
