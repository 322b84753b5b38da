"""Word-level tokenizer: words, whitespace runs and punctuation marks are the tokens."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from .base import Tokenizer, check_fit_text, check_ids, check_text, field

WORD_PATTERN = r"\w+|\s+|[^\w\s]"
"""Runs of word characters, runs of whitespace, single other characters: the pieces join back
into the original text exactly, so ``decode(encode(t)) == t`` whenever every piece is known."""


class WordTokenizer(Tokenizer):
    """Split text into words, whitespace and punctuation; one id per distinct piece.

    Args:
        max_vocab_size: keep only the most frequent pieces (ties broken alphabetically);
            None keeps all.
        min_freq: drop pieces seen fewer times.
        unk_token: what unknown pieces map to (id 0) and decode to.

    >>> tok = WordTokenizer().fit("to be, or not to be")
    >>> tok.decode(tok.encode("not to be"))
    'not to be'
    >>> tok.decode(tok.encode("to sleep"))
    'to <unk>'
    """

    type_name = "word"

    def __init__(self, max_vocab_size: int | None = None, min_freq: int = 1, unk_token: str = "<unk>"):
        if max_vocab_size is not None and (not isinstance(max_vocab_size, int) or max_vocab_size < 2):
            raise ValueError(f"WordTokenizer: max_vocab_size must be an int >= 2 or None, got {max_vocab_size!r}")
        if not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"WordTokenizer: min_freq must be a positive int, got {min_freq!r}")
        if not isinstance(unk_token, str) or not unk_token:
            raise ValueError(f"WordTokenizer: unk_token must be a non-empty str, got {unk_token!r}")
        self.max_vocab_size, self.min_freq, self.unk_token = max_vocab_size, min_freq, unk_token
        self.itos: list[str] = []
        self.stoi: dict[str, int] = {}
        self._re = re.compile(WORD_PATTERN)

    def split(self, text: str) -> list[str]:
        """The pieces of ``text`` (``WORD_PATTERN``): they join back into ``text`` exactly.

        Args:
            text: the text to split.

        Returns:
            Words, whitespace runs and single punctuation marks, in order.

        >>> WordTokenizer().split("to be, or")
        ['to', ' ', 'be', ',', ' ', 'or']
        """
        return self._re.findall(text)

    def fit(self, text: str) -> WordTokenizer:
        """Build the vocabulary from the pieces of ``text``, most frequent first (id 0 is unk).

        Args:
            text: the training text.

        Returns:
            The tokenizer itself.

        >>> WordTokenizer().fit("a b a").itos
        ['<unk>', ' ', 'a', 'b']
        """
        text = check_fit_text("WordTokenizer.fit", text)
        counts = Counter(self.split(text))
        counts.pop(self.unk_token, None)
        pieces = sorted((p for p, n in counts.items() if n >= self.min_freq), key=lambda p: (-counts[p], p))
        if self.max_vocab_size is not None:
            pieces = pieces[: self.max_vocab_size - 1]
        self._set_vocab([self.unk_token] + pieces)
        return self

    def _set_vocab(self, itos: list[str]) -> None:
        if len(set(itos)) != len(itos):
            raise ValueError("vocabulary entries must be distinct")
        self.itos = list(itos)
        self.stoi = {p: i for i, p in enumerate(self.itos)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """One id per piece of ``text``; unknown pieces map to 0 (``unk_token``).

        Args:
            text: the text to encode.

        Returns:
            The ids.

        >>> WordTokenizer().fit("a b a").encode("a c")
        [2, 1, 0]
        """
        text = check_text("WordTokenizer.encode", text)
        self._require_fitted()
        get = self.stoi.get
        return [get(p, 0) for p in self.split(text)]

    def decode(self, ids: Any) -> str:
        """The pieces of ``ids`` joined into a string.

        Args:
            ids: a list, 1-D array or Tensor of ids in ``[0, vocab_size)``.

        Returns:
            The text.

        >>> WordTokenizer().fit("a b a").decode([3, 1, 2])
        'b a'
        """
        self._require_fitted()
        return "".join(self.itos[i] for i in check_ids("WordTokenizer", ids, self.vocab_size))

    def _state(self) -> dict[str, Any]:
        return {"unk_token": self.unk_token, "max_vocab_size": self.max_vocab_size,
                "min_freq": self.min_freq, "vocab": self.itos}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> WordTokenizer:
        max_vocab_size = field(state, "max_vocab_size", "int?", None)
        min_freq = field(state, "min_freq", "int", 1)
        unk_token = field(state, "unk_token", "str")
        vocab = field(state, "vocab", "strs")
        try:
            tok = cls(max_vocab_size, min_freq, unk_token)
        except ValueError as e:
            raise ValueError(f"field 'max_vocab_size' or 'min_freq' is out of range: {e}") from None
        if len(set(vocab)) != len(vocab):
            raise ValueError("field 'vocab' repeats an entry")
        if not vocab or vocab[0] != unk_token:
            raise ValueError(f"field 'vocab' must start with unk_token {unk_token!r}")
        tok._set_vocab(vocab)
        return tok
