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

The pre-split uses the third-party ``regex`` package, as GPT-2 and tiktoken do: GPT-2's pattern
needs ``\\p{L}`` (letters) and ``\\p{N}`` (numbers), which the standard ``re`` lacks, and
``regex`` brings its own Unicode tables, so the split does not depend on the interpreter's.

GPT-2's own vocabulary loads with `BPETokenizer.from_gpt2` (``encoder.json`` + ``vocab.bpe``, or
Hugging Face's ``vocab.json`` + ``merges.txt``) or `BPETokenizer.from_tiktoken` (a ``.tiktoken``
ranks file) and encodes to the same ids as tiktoken's ``gpt2`` encoding. Its only difference
from a trained tokenizer is the order of the 256 byte ids (``byte_order``).
The ids can differ from tiktoken's only where the two Unicode tables differ (tiktoken's regex
engine is Rust's): a code point one of them counts as a letter or number and the other as
unassigned (1 of 20,000 random strings in ``benchmarks/tokenizer_gpt2.py``).

>>> tok = BasicBPETokenizer(vocab_size=256 + 3).fit("aaabdaaabac")
>>> tok.encode("aaabdaaabac")
[258, 100, 258, 97, 99]
>>> tok.decode([258, 100, 258, 97, 99])
'aaabdaaabac'
"""

from __future__ import annotations

import heapq
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import regex

from tinytorch.core.checks import is_int

from .base import Tokenizer, TokenizerError, check_fit_text, check_ids, check_text, field

GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""GPT-2's pre-split (its ``encoder.py``), for the ``regex`` package: contractions, letter runs,
number runs and other-symbol runs (each with at most one leading space), then whitespace."""

SPLIT_PATTERNS = {"gpt2": GPT2_SPLIT_PATTERN, "r50k_base": GPT2_SPLIT_PATTERN}
"""Pre-split patterns by tiktoken encoding name (``r50k_base`` holds GPT-2's ranks)."""

_CACHE_LIMIT = 200_000  # distinct pieces whose ids encode remembers (Tiny Shakespeare has 15k)
_CACHED_PIECE_LENGTH = 64  # longer pieces are rare and would make the cache's memory unbounded
_PATTERN_PROBE_SECONDS = 1.0  # GPT-2's pattern splits the probes in about a millisecond


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


def _bpe(ids: list[int], ranks: dict[tuple[int, int], int]) -> list[int]:
    """Repeatedly merge the adjacent pair that was learned first (the lowest rank in ``ranks``),
    the leftmost one among equal ranks, until no adjacent pair has a rank.

    Rescanning the whole piece for its best pair after every merge costs O(n²) on one long piece
    (40,000 letters without a space took 15 s). Instead, as tiktoken and minbpe's faster forks
    do, the parts form a linked list and a heap holds every adjacent pair's ``(rank, position)``;
    a merge pushes only its two new neighbouring pairs, and an entry whose pair has since changed
    is skipped when popped: O(n log n). Positions are each part's first byte, so they keep the
    parts' order, and ranks are distinct per pair, so an entry is current exactly when its
    position's pair still has that rank.
    """
    n = len(ids)
    if n < 2:
        return ids
    get = ranks.get
    heap = [(r, i) for i, r in enumerate(map(get, zip(ids, ids[1:]))) if r is not None]
    if not heap:
        return ids
    heapq.heapify(heap)
    parts = list(ids)
    nxt = list(range(1, n + 1))  # n: no next part
    prv = list(range(-1, n - 1))  # -1: no previous part
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        rank, i = pop(heap)
        j = nxt[i]
        if j >= n or parts[i] < 0 or get((parts[i], parts[j])) != rank:
            continue  # stale: a part of this pair was merged since it was pushed
        parts[i] = rank  # a merge's new id is its rank
        parts[j] = -1
        k = nxt[j]
        nxt[i] = k
        if k < n:
            prv[k] = i
            r = get((rank, parts[k]))
            if r is not None:
                push(heap, (r, i))
        h = prv[i]
        if h >= 0:
            r = get((parts[h], rank))
            if r is not None:
                push(heap, (r, h))
    return [p for p in parts if p >= 0]


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

    Ids 0..255 are the bytes, in the order ``byte_order`` (id ``i`` is the byte
    ``byte_order[i]``; the identity unless loaded from GPT-2's files); merge ``i`` is id ``256 + i``.

    >>> tok = BasicBPETokenizer(vocab_size=258).fit("abababab")
    >>> tok.merges, tok.encode("ababx")
    ([(97, 98), (256, 256)], [257, 120])
    """

    type_name = "bpe_basic"

    def __init__(self, vocab_size: int = 512):
        if not is_int(vocab_size) or vocab_size < 256:
            raise ValueError(f"{type(self).__name__}: vocab_size must be an int >= 256, got {vocab_size!r}")
        self.target_vocab_size = int(vocab_size)
        self.merges: list[tuple[int, int]] = []
        self.byte_order: list[int] = list(range(256))
        self._fitted = False  # unfitted, it still encodes: as raw bytes
        self._rebuild()

    @property
    def is_fitted(self) -> bool:
        return self._fitted

    # ---------------------------------------------------------------- vocabulary
    def _rebuild(self) -> None:
        self.ranks = {pair: 256 + i for i, pair in enumerate(self.merges)}
        vocab = [bytes([b]) for b in self.byte_order]
        for a, b in self.merges:
            vocab.append(vocab[a] + vocab[b])
        self.vocab = vocab
        # bytes.translate turns a piece's bytes into its byte ids in one C call.
        ids_of_bytes = bytearray(256)
        for i, b in enumerate(self.byte_order):
            ids_of_bytes[b] = i
        self._byte_ids = bytes(ids_of_bytes)
        self._cache: dict[str, list[int]] = {}

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
            The tokenizer itself (its byte ids become the identity order).

        >>> BasicBPETokenizer().fit("aaaa", vocab_size=257).vocab_size
        257
        """
        owner = f"{type(self).__name__}.fit"
        if vocab_size is not None:
            if not is_int(vocab_size) or vocab_size < 256:
                raise ValueError(f"{owner}: vocab_size must be an int >= 256, got {vocab_size!r}")
            self.target_vocab_size = int(vocab_size)
        text = check_fit_text(owner, text)
        self.merges = train_merges(self._pieces(text), self.target_vocab_size - 256)
        self.byte_order = list(range(256))  # train_merges counts in raw byte values
        self._fitted = True
        self._rebuild()
        return self

    # ---------------------------------------------------------------- encoding
    def _encode_piece(self, piece: bytes) -> list[int]:
        return _bpe(list(piece.translate(self._byte_ids)), self.ranks)

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ignoring special tokens.

        Args:
            text: the text to encode.

        Returns:
            The ids: bytes merged as ``fit`` learned.

        >>> BasicBPETokenizer().encode_ordinary("hi")  # unfitted: raw UTF-8 bytes
        [104, 105]
        """
        text = check_text(f"{type(self).__name__}.encode", text)
        return self._encode_piece(_utf8(text)) if text else []

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

    def decode_bytes(self, ids: Any) -> bytes:
        """Ids back to the exact bytes they stand for (special tokens as their UTF-8).

        Args:
            ids: a list, 1-D array or Tensor of ids in ``[0, vocab_size)``.

        Returns:
            The bytes; a single id may hold part of a character.

        >>> BasicBPETokenizer().decode_bytes([240, 159])
        b'\\xf0\\x9f'
        """
        ids = check_ids(type(self).__name__, ids, self.vocab_size)
        vocab = self.vocab
        return b"".join(vocab[i] for i in ids)

    def decode(self, ids: Any) -> str:
        """Ids back to text; byte sequences that are not valid UTF-8 decode to U+FFFD.

        Args:
            ids: a list, 1-D array or Tensor of ids in ``[0, vocab_size)``.

        Returns:
            The text.

        >>> BasicBPETokenizer().decode([104, 105, 255])
        'hi\ufffd'
        """
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ---------------------------------------------------------------- files
    def _state(self) -> dict[str, Any]:
        return {"vocab_size": self.target_vocab_size, "merges": [list(p) for p in self.merges],
                "byte_order": list(self.byte_order)}

    def _load_merges(self, merges: Iterable[Any], byte_order: list[int] | None = None) -> None:
        checked: list[tuple[int, int]] = []
        for i, m in enumerate(merges):
            a, b = m
            if not (0 <= a < 256 + i and 0 <= b < 256 + i):
                raise ValueError(f"field 'merges': merge {i} = {list(m)} refers to an id that does not exist yet")
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
        if byte_order is not None:
            if sorted(byte_order) != list(range(256)):
                raise ValueError("field 'byte_order' must be the 256 byte values 0..255, each once")
            self.byte_order = list(byte_order)
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
        # Version-1 files have no byte_order: their byte ids are the bytes themselves.
        tok._load_merges(field(state, "merges", "pairs"), field(state, "byte_order", "ints", None))
        return tok


class BPETokenizer(BasicBPETokenizer):
    """Byte-level BPE with a regex pre-split (GPT-2's by default) and special tokens.

    Args:
        vocab_size: byte ids + merges (special tokens come on top, after the merges).
        pattern: the pre-split regex for the ``regex`` package, or a name from
            ``SPLIT_PATTERNS`` (default: GPT-2's, ``GPT2_SPLIT_PATTERN``).
        special_tokens: strings such as ``"<|endoftext|>"`` that get their own ids.

    ``encode(text)`` raises a ``ValueError`` if ``text`` contains a special token, unless it is
    in ``allowed_special`` (a set of strings, or ``"all"``), as tiktoken does: text from users
    can then never inject control tokens by accident. ``disallowed_special=()`` instead encodes
    them as ordinary text (as `encode_ordinary` does).

    >>> tok = BPETokenizer(vocab_size=260, special_tokens=["<|endoftext|>"]).fit("hello hello hello")
    >>> ids = tok.encode("hello<|endoftext|>", allowed_special="all")
    >>> ids[-1] == tok.special_tokens["<|endoftext|>"], tok.decode(ids)
    (True, 'hello<|endoftext|>')
    """

    type_name = "bpe"

    def __init__(self, vocab_size: int = 512, pattern: str = GPT2_SPLIT_PATTERN,
                 special_tokens: Iterable[str] = ()):
        super().__init__(vocab_size)
        pattern = SPLIT_PATTERNS.get(pattern, pattern) if isinstance(pattern, str) else pattern
        try:
            self.compiled = regex.compile(pattern)
        except (regex.error, TypeError) as e:
            raise ValueError(f"BPETokenizer: pattern is not a valid regular expression: {e}") from None
        gap = _probe(self.compiled, pattern)
        if gap is not None:
            raise ValueError(
                f"BPETokenizer: pattern {pattern!r} does not match {_COVERAGE_PROBE[gap]!r} in "
                "ordinary text, so encode would drop it; a pre-split pattern must match every "
                "character (end it with an alternative such as |\\s+|\\S), or be one of the names "
                f"{sorted(SPLIT_PATTERNS)}"
            )
        self.pattern = pattern
        if isinstance(special_tokens, str):
            raise TypeError("BPETokenizer: special_tokens must be a list of strings, got a single str")
        specials = list(special_tokens)
        if any(not isinstance(s, str) or not s for s in specials) or len(set(specials)) != len(specials):
            raise ValueError(f"BPETokenizer: special_tokens must be distinct non-empty strings, got {specials!r}")
        self._special_list = specials
        self._index_specials()

    # ---------------------------------------------------------------- GPT-2's files
    @classmethod
    def from_gpt2(cls, encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike | None = None) -> BPETokenizer:
        """GPT-2's tokenizer from its two files: the same ids as tiktoken's ``gpt2`` encoding.

        Args:
            encoder_json: GPT-2's ``encoder.json`` (Hugging Face: ``vocab.json``), token string
                -> id in GPT-2's byte-to-unicode alphabet; or a directory holding
                ``encoder.json`` + ``vocab.bpe`` or ``vocab.json`` + ``merges.txt``.
            vocab_bpe: GPT-2's ``vocab.bpe`` (Hugging Face: ``merges.txt``), one merge per line
                after a ``#version`` comment; None when ``encoder_json`` is a directory.

        Returns:
            A tokenizer with 50,257 ids for GPT-2's files: 256 bytes, 50,000 merges and the
            special token ``<|endoftext|>`` = 50256, which `encode` refuses in text unless
            ``allowed_special`` lists it. Entries of ``encoder.json`` beyond the bytes and
            merges become special tokens, in id order.

        Raises:
            TokenizerError: a malformed file; the message names the file and line.
            FileNotFoundError: a file, or both layouts in a directory, missing.

        >>> from tinytorch.core.datafiles import dataset_folder
        >>> gpt2 = dataset_folder("gpt2-tokenizer")  # tito data download gpt2-tokenizer
        >>> tok = BPETokenizer.from_gpt2(gpt2)  # or (gpt2 / "encoder.json", gpt2 / "vocab.bpe")
        >>> tok.vocab_size, tok.encode("Hello world<|endoftext|>", allowed_special="all")
        (50257, [15496, 995, 50256])
        """
        from .gpt2 import read_gpt2_files

        byte_order, merges, specials = read_gpt2_files(encoder_json, vocab_bpe)
        return cls._from_parts(byte_order, merges, specials, GPT2_SPLIT_PATTERN)

    @classmethod
    def from_tiktoken(cls, path: str | os.PathLike, pattern: str = "gpt2",
                      special_tokens: dict[str, int] | None = None) -> BPETokenizer:
        """A tokenizer from a tiktoken ``.tiktoken`` ranks file (``base64-of-token-bytes rank``).

        The file holds neither the pre-split nor the special tokens: give them here. GPT-2's
        ranks are tiktoken's ``r50k_base``; the merges are recovered from the ranks (token
        ``r`` is the merge of the two tokens that BPE with ranks below ``r`` splits it into).

        Args:
            path: the ``.tiktoken`` file.
            pattern: a name from ``SPLIT_PATTERNS`` (``"gpt2"``, ``"r50k_base"``) or a regex.
            special_tokens: ``{token: id}``, with ids right after the ranks (GPT-2:
                ``{"<|endoftext|>": 50256}``).

        Returns:
            The tokenizer.

        Raises:
            TokenizerError: a malformed line (the message names the file and line), or ranks
                that are not byte-level BPE.
            ValueError: special token ids that do not follow the ranks.

        >>> import tempfile, base64, os
        >>> lines = [base64.b64encode(bytes([b])).decode() + f" {b}" for b in range(256)]
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = os.path.join(tmp, "tiny.tiktoken")
        ...     _ = open(path, "w").write("\\n".join(lines + ["aGk= 256"]) + "\\n")  # b"hi"
        ...     tok = BPETokenizer.from_tiktoken(path, special_tokens={"<|endoftext|>": 257})
        >>> tok.merges, tok.encode("hi!<|endoftext|>", allowed_special="all")
        ([(104, 105)], [256, 33, 257])
        """
        from .gpt2 import read_tiktoken_file

        if special_tokens is None:
            special_tokens = {}
        if not isinstance(special_tokens, dict):
            raise TypeError(f"BPETokenizer.from_tiktoken: special_tokens must be a dict {{token: id}}, "
                            f"got {type(special_tokens).__name__}")
        byte_order, merges = read_tiktoken_file(path)
        first = 256 + len(merges)
        ordered = sorted(special_tokens, key=lambda s: special_tokens[s])
        if [special_tokens[s] for s in ordered] != list(range(first, first + len(ordered))):
            raise ValueError(
                f"BPETokenizer.from_tiktoken: special_tokens ids must be {first}, {first + 1}, ... "
                f"(right after the {first} ranks of {path}), got {special_tokens}"
            )
        return cls._from_parts(byte_order, merges, ordered, pattern)

    @classmethod
    def _from_parts(cls, byte_order: list[int], merges: list[tuple[int, int]], specials: list[str],
                    pattern: str) -> BPETokenizer:
        tok = cls(256 + len(merges), pattern, specials)
        tok._load_merges(merges, byte_order)
        return tok

    # ---------------------------------------------------------------- vocabulary
    def _index_specials(self) -> None:
        base = 256 + len(self.merges)
        self.special_tokens = {s: base + i for i, s in enumerate(self._special_list)}
        self.inverse_special = {i: s for s, i in self.special_tokens.items()}
        self._all_specials = frozenset(self._special_list)
        self._all_specials_finder = _SpecialFinder(self._all_specials)

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
        if not self.compiled.groups:
            pieces = self.compiled.findall(text)  # the fast path: one C call
            if sum(map(len, pieces)) == len(text):
                return pieces
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
        cache = self._cache  # as tiktoken does: most pieces of a text repeat
        for piece in self._split(text, "BPETokenizer.encode"):
            ids = cache.get(piece)
            if ids is None:
                ids = self._encode_piece(_utf8(piece))
                if len(cache) < _CACHE_LIMIT and len(piece) <= _CACHED_PIECE_LENGTH:
                    cache[piece] = ids
            out += ids
        return out

    def _special_set(self, value: Any, name: str) -> frozenset[str]:
        if isinstance(value, str) and value == "all":
            return self._all_specials
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise TypeError(f"BPETokenizer.encode: {name} must be 'all' or a set of strings, got {value!r}")
        chosen = frozenset(value)
        unknown = chosen - self._all_specials
        if unknown:
            raise ValueError(
                f"BPETokenizer.encode: {name} {sorted(unknown)} are not special tokens "
                f"of this tokenizer (it has {sorted(self.special_tokens)})"
            )
        return chosen

    def encode(self, text: str, allowed_special: str | Iterable[str] = (),
               disallowed_special: str | Iterable[str] = "all") -> list[int]:
        """Encode ``text``; special tokens in it must be listed in ``allowed_special`` (or "all").

        tiktoken's rule: an allowed special token becomes its one id; a disallowed one (by
        default every special token not allowed) is an error; one in neither set (with
        ``disallowed_special=()``) is encoded as ordinary text.

        Args:
            text: the text to encode.
            allowed_special: the special tokens that may appear in ``text`` (a set of strings),
                or ``"all"``.
            disallowed_special: the special tokens that must not appear in ``text``, or
                ``"all"`` (those not allowed).

        Returns:
            The ids; each allowed special token is one id.

        Raises:
            ValueError: ``text`` contains a disallowed special token.

        >>> tok = BPETokenizer(special_tokens=["<s>"])
        >>> tok.encode("<s>hi", allowed_special={"<s>"})
        [256, 104, 105]
        >>> tok.encode("<s>", disallowed_special=()) == list(b"<s>")
        True
        """
        text = check_text("BPETokenizer.encode", text)
        allowed = self._special_set(allowed_special, "allowed_special")
        if isinstance(disallowed_special, str) and disallowed_special == "all":
            disallowed = self._all_specials - allowed if allowed else self._all_specials
        else:
            disallowed = self._special_set(disallowed_special, "disallowed_special")
        found = next(self._finder(disallowed).finditer(text), None)
        if found is not None:
            position, s = found
            raise ValueError(
                f"BPETokenizer.encode: text contains the special token {s!r} at position "
                f"{position}; pass allowed_special={{{s!r}}} (or 'all') to encode it as "
                f"id {self.special_tokens[s]}, disallowed_special=() to encode it as text, "
                "or remove it from the text"
            )
        if not allowed:
            return self.encode_ordinary(text)
        out: list[int] = []
        done = 0
        for position, s in self._finder(allowed).finditer(text):
            if position > done:
                out.extend(self.encode_ordinary(text[done:position]))
            out.append(self.special_tokens[s])
            done = position + len(s)
        if done < len(text):
            out.extend(self.encode_ordinary(text[done:]))
        return out

    def _finder(self, tokens: frozenset[str]) -> _SpecialFinder:
        return self._all_specials_finder if len(tokens) == len(self._all_specials) else _SpecialFinder(tokens)

    def decode_bytes(self, ids: Any) -> bytes:
        """Ids back to their exact bytes, special tokens as their UTF-8.

        Args:
            ids: a list, 1-D array or Tensor of ids in ``[0, vocab_size)``.

        Returns:
            The bytes.

        >>> BPETokenizer(special_tokens=["<s>"]).decode_bytes([256, 240])
        b'<s>\\xf0'
        """
        ids = check_ids("BPETokenizer", ids, self.vocab_size)
        vocab, inverse = self.vocab, self.inverse_special
        return b"".join(vocab[i] if i < len(vocab) else inverse[i].encode("utf-8") for i in ids)

    def decode(self, ids: Any) -> str:
        """Ids back to text, special tokens included; invalid UTF-8 decodes to U+FFFD.

        Args:
            ids: a list, 1-D array or Tensor of ids in ``[0, vocab_size)``.

        Returns:
            The text.

        >>> BPETokenizer(special_tokens=["<s>"]).decode([256, 104, 105])
        '<s>hi'
        """
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

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
        tok._load_merges(field(state, "merges", "pairs"), field(state, "byte_order", "ints", None))
        return tok


# Ordinary text of every character class a pattern must split: letters (several scripts),
# digits, other numerics, punctuation, symbols, emoji, every kind of whitespace.
_COVERAGE_PROBE = ("Hello, World! It's 3.14 — naïve café; x_y=1+2*3 (ok?) [a] {b} #$%&@^`~|\\/<>\"\n"
                   "\t\r  日本語 Ωμέγα Привет ½² ١٢٣ 🙂👩‍👩‍👧 \u00a0\u2028\u0301\x0b\x0c\x1f\x7f\ufeff")


# Long runs of each character class, on which a pattern that backtracks catastrophically (such
# as "(?:[^\n]|[^\n][^\n])+\x00|\s+|\S") takes exponential time instead of a millisecond.
_BACKTRACKING_PROBE = "".join(run * 400 for run in ("a", "1", " ", "\n", ".", "a ", "\u00e9", "日", "🙂"))


def _probe(compiled: Any, pattern: str) -> int | None:
    """Where ``compiled`` first skips a character of `_COVERAGE_PROBE` (None: it covers it all).

    A pattern comes from a file too, and one that backtracks catastrophically would hang every
    encode (and this probe): splitting the probes must take well under a second.
    """
    try:
        for probe in (_COVERAGE_PROBE, _BACKTRACKING_PROBE):
            for _ in compiled.finditer(probe, timeout=_PATTERN_PROBE_SECONDS):
                pass
    except TimeoutError:
        raise ValueError(
            f"BPETokenizer: pattern {pattern!r} takes more than {_PATTERN_PROBE_SECONDS:g} s to split "
            f"{len(_COVERAGE_PROBE) + len(_BACKTRACKING_PROBE):,} characters of ordinary text (it "
            "backtracks catastrophically), so encode could hang; use one of the names "
            f"{sorted(SPLIT_PATTERNS)} or a pattern without nested repetition"
        ) from None
    return _first_gap(compiled, _COVERAGE_PROBE)


def _first_gap(compiled: Any, text: str) -> int | None:
    pos = 0
    for m in compiled.finditer(text):
        if m.start() != pos:
            return pos
        pos = m.end()
    return None if pos == len(text) else pos


class _SpecialFinder:
    """Finds special tokens in text, leftmost first and the longest at a position, in one pass.

    A regular expression alternation of the tokens is quick for a few of them, but compiling one
    for 500,000 (a hostile ``vocab.json``) takes minutes, and searching for each token in turn
    took 3.3 s per 10 KB. Instead one compiled character class finds the positions where a token
    can start, and a set lookup per distinct token length checks each of them.
    """

    def __init__(self, tokens: frozenset[str]):
        self.tokens = tokens
        self.lengths = sorted({len(t) for t in tokens}, reverse=True)
        firsts = sorted({t[0] for t in tokens})
        self.starts = regex.compile("[" + "".join(regex.escape(c) for c in firsts) + "]") if firsts else None

    def finditer(self, text: str) -> Iterator[tuple[int, str]]:
        """(position, token) of each token in ``text``, left to right, without overlaps."""
        if self.starts is None:
            return
        tokens, lengths, search = self.tokens, self.lengths, self.starts.search
        pos = 0
        while (m := search(text, pos)) is not None:
            start = m.start()
            pos = start + 1
            for n in lengths:
                if text[start:start + n] in tokens:
                    yield start, text[start:start + n]
                    pos = start + n
                    break


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise TokenizerError(
            f"text contains {text[e.start]!r} at position {e.start}, a lone surrogate that UTF-8 "
            "cannot encode"
        ) from None


__all__ = ["BasicBPETokenizer", "BPETokenizer", "GPT2_SPLIT_PATTERN", "SPLIT_PATTERNS", "train_merges"]
