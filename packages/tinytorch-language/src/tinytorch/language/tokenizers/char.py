"""Character-level tokenizer: one id per distinct character (char-rnn, nanoGPT shakespeare_char)."""

from __future__ import annotations

from typing import Any

from .base import Tokenizer, TokenizerError, check_fit_text, check_ids, check_text, field


class CharTokenizer(Tokenizer):
    """One id per character, sorted by code point (so Tiny Shakespeare gives nanoGPT's 65 ids).

    Unknown characters: by default ``encode`` raises a ``ValueError`` naming the character and
    its position. With ``unk_token`` (e.g. ``"�"``), unknown characters map to an extra id
    (the last one), which decodes to ``unk_token``.

    Args:
        unk_token: what unknown characters decode to (they get the last id), or None to make
            them an error.

    >>> tok = CharTokenizer().fit("hello")
    >>> tok.vocab_size, tok.encode("hole")
    (4, [1, 3, 2, 0])
    >>> tok.decode([1, 0, 2, 2, 3])
    'hello'
    """

    type_name = "char"

    def __init__(self, unk_token: str | None = None):
        if unk_token is not None and (not isinstance(unk_token, str) or not unk_token):
            raise ValueError(f"CharTokenizer: unk_token must be a non-empty str or None, got {unk_token!r}")
        self.unk_token = unk_token
        self.chars: list[str] = []
        self.stoi: dict[str, int] = {}

    def fit(self, text: str) -> CharTokenizer:
        """One id per distinct character of ``text``, in code-point order.

        Args:
            text: the training text (not empty).

        Returns:
            The tokenizer itself.

        >>> CharTokenizer().fit("banana").chars
        ['a', 'b', 'n']
        """
        text = check_fit_text("CharTokenizer.fit", text)
        if not text:
            raise ValueError("CharTokenizer.fit: text is empty; need at least one character")
        self._set_chars(sorted(set(text)))
        return self

    def _set_chars(self, chars: list[str]) -> None:
        if len(set(chars)) != len(chars) or any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("chars must be distinct single characters")
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + (1 if self.unk_token is not None and self.chars else 0)

    @property
    def unk_id(self) -> int | None:
        return len(self.chars) if self.unk_token is not None else None

    def encode(self, text: str) -> list[int]:
        """One id per character of ``text``.

        Args:
            text: the text to encode.

        Returns:
            The ids; unknown characters map to ``unk_id`` (with ``unk_token``).

        Raises:
            TokenizerError: a character is not in the vocabulary (and there is no
                ``unk_token``), or the tokenizer is not fitted.

        >>> CharTokenizer(unk_token="?").fit("ab").encode("abc")
        [0, 1, 2]
        """
        text = check_text("CharTokenizer.encode", text)
        self._require_fitted()
        stoi = self.stoi
        try:
            return [stoi[c] for c in text]
        except KeyError:
            pass
        if self.unk_token is not None:
            unk = self.unk_id
            return [stoi.get(c, unk) for c in text]
        for i, c in enumerate(text):
            if c not in stoi:
                raise TokenizerError(
                    f"CharTokenizer.encode: character {c!r} (U+{ord(c):04X}) at position {i} is not in "
                    f"the vocabulary of {len(self.chars)} characters; fit on text that contains it or "
                    "create the tokenizer with unk_token=..."
                )
        raise AssertionError("unreachable")

    def decode(self, ids: Any) -> str:
        """The characters of ``ids`` joined into a string.

        Args:
            ids: a list, 1-D array or Tensor of ids in ``[0, vocab_size)``.

        Returns:
            The text (``unk_id`` decodes to ``unk_token``).

        >>> CharTokenizer(unk_token="?").fit("ab").decode([1, 2, 0])
        'b?a'
        """
        self._require_fitted()
        ids = check_ids("CharTokenizer", ids, self.vocab_size)
        chars = self.chars + ([self.unk_token] if self.unk_token is not None else [])
        return "".join(chars[i] for i in ids)

    def _state(self) -> dict[str, Any]:
        return {"chars": "".join(self.chars), "unk_token": self.unk_token}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> CharTokenizer:
        tok = cls(unk_token=field(state, "unk_token", "str?", None))
        chars = field(state, "chars", "str")
        if len(set(chars)) != len(chars):
            raise ValueError("field 'chars' repeats a character")
        if tok.unk_token is not None and tok.unk_token in chars:
            # Unknown text would decode as this real character, indistinguishable from it.
            raise ValueError(f"field 'unk_token' {tok.unk_token!r} is also a character of the vocabulary")
        tok._set_chars(list(chars))
        return tok
