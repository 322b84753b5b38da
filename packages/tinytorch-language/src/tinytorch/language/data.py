"""Text data: the Tiny Shakespeare corpus shipped in the wheel, and (input, target) windows.

>>> text = load_shakespeare()
>>> len(text), text[:14]
(1115394, 'First Citizen:')
"""

from __future__ import annotations

import hashlib
import numbers
import re
from importlib import resources
from typing import Any

import numpy as np

from tinytorch.core.checks import is_int
from tinytorch.core.data import Dataset
from tinytorch.core.datafiles import DatasetFiles, RemoteFile

SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"

_GPT2_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
# OpenAI's GPT-2 tokenizer files, with the sizes and checksums tiktoken checks when it downloads
# them; `tito data download gpt2-tokenizer` (registered in the `tinytorch.datasets` group).
GPT2_TOKENIZER_DATA = DatasetFiles(
    "gpt2-tokenizer", "gpt2",
    (RemoteFile("encoder.json", (_GPT2_URL + "encoder.json",),
                ("196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",), 1042301),
     RemoteFile("vocab.bpe", (_GPT2_URL + "vocab.bpe",),
                ("1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",), 456318)),
    "GPT-2's byte-level BPE files: encoder.json, vocab.bpe (1.5 MB; BPETokenizer.from_gpt2)")


def load_shakespeare(verify: bool = False) -> str:
    """Tiny Shakespeare (public domain; 1,115,394 characters; see ``data/SOURCE.md``).

    Read from the package data, so it works offline.

    Args:
        verify: check the file's sha256 against ``SHAKESPEARE_SHA256``.

    Returns:
        The whole text.

    Raises:
        ValueError: ``verify`` is set and the checksum does not match.

    >>> text = load_shakespeare(verify=True)
    >>> len(text), len(set(text))
    (1115394, 65)
    """
    raw = resources.files("tinytorch.language").joinpath("data/tinyshakespeare.txt").read_bytes()
    if verify and hashlib.sha256(raw).hexdigest() != SHAKESPEARE_SHA256:
        raise ValueError("the packaged tinyshakespeare.txt does not match its sha256; reinstall tinytorch-language")
    return raw.decode("utf-8")


def split_tokens(tokens: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """First ``1 - val_fraction`` for training, the rest for validation (nanoGPT's 90/10 split).

    Args:
        tokens: the token stream, (N,).
        val_fraction: share held out at the end, in [0, 1).

    Returns:
        The training tokens and the validation tokens (views, not copies).

    >>> train, val = split_tokens(np.arange(10), 0.1)
    >>> train.tolist(), val.tolist()
    ([0, 1, 2, 3, 4, 5, 6, 7, 8], [9])
    """
    if not isinstance(val_fraction, numbers.Real) or not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    n = int(round(len(tokens) * (1 - val_fraction)))
    return tokens[:n], tokens[n:]


_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def known_word_share(sample: str, text: str) -> float | None:
    """The share of the words of ``sample`` that occur in ``text`` (case-folded), or None without words.

    How a person judges a character-level model's sample ("mostly real words?"), computed:
    a word is a run of letters (with inner apostrophes), and it is real if the training text has it.

    Args:
        sample: generated text.
        text: the reference text (the training corpus).

    >>> known_word_share("Thou art a wuz, lord", "thou art my lord and a king")
    0.8
    >>> known_word_share("?!", "anything") is None
    True
    """
    words = [w.casefold() for w in _WORD.findall(sample)]
    if not words:
        return None
    vocabulary = {w.casefold() for w in _WORD.findall(text)}
    return sum(w in vocabulary for w in words) / len(words)


class TokenWindows(Dataset):
    """Windows of a token stream: item i is (x, y) with y = x shifted by one.

    By default window i is the i-th non-overlapping window, starting at ``offset + i * seq_len``
    (evaluation covers the text exactly once). With ``random_starts=True`` (training) window i
    starts at a uniformly random position instead, as nanoGPT's ``get_batch``; ``len`` still
    counts the non-overlapping windows, so an epoch is one text's worth of targets. The random
    starts of epoch k are drawn from a generator seeded with ``(seed, k)`` when the epoch begins
    (``set_epoch``, which core's ``DataLoader`` calls), so a run is fixed by its seed, and a run
    resumed in the middle of an epoch sees the same windows as an uninterrupted one.
    Random starts trained measurably better than shuffled aligned windows: on the nanoGPT CPU
    recipe, validation loss 1.906 against 1.913. ``__getitems__`` gathers a whole batch with one
    fancy-indexing call, which core's ``DataLoader`` uses.

    Args:
        tokens: 1-D integer token stream, at least ``seq_len + 1`` long.
        seq_len: T, the length of each window.
        offset: start of the first aligned window (taken modulo ``seq_len``).
        random_starts: every window starts at a random position (training).
        seed: seed of the random starts (with ``random_starts``).

    Shape: each item is (x, y) with x, y (T,); a batch of B is (B, T) and (B, T).

    >>> ds = TokenWindows(np.arange(10), seq_len=4)
    >>> len(ds), ds[1]
    (2, (array([4, 5, 6, 7]), array([5, 6, 7, 8])))
    """

    def __init__(self, tokens: Any, seq_len: int, offset: int = 0, random_starts: bool = False, seed: int = 0):
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise TypeError(f"TokenWindows: tokens must be a 1-D integer array, got shape {tokens.shape} dtype {tokens.dtype}")
        if not is_int(seq_len) or seq_len < 1:
            raise ValueError(f"TokenWindows: seq_len must be a positive integer, got {seq_len!r}")
        if len(tokens) < seq_len + 1:
            raise ValueError(
                f"TokenWindows: need at least seq_len + 1 = {seq_len + 1} tokens, got {len(tokens)}"
            )
        self.tokens, self.seq_len = tokens.astype(np.int64, copy=False), int(seq_len)
        self.random_starts, self.seed = bool(random_starts), int(seed)
        self._arange = np.arange(self.seq_len + 1)
        self.set_offset(offset)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw the random window starts of ``epoch`` (from ``(seed, epoch)``; no-op without them).

        Args:
            epoch: the epoch about to run (0-based).

        >>> ds = TokenWindows(np.arange(100), seq_len=4, random_starts=True, seed=1)
        >>> ds.set_epoch(3); a = ds[0][0].tolist(); ds.set_epoch(3)
        >>> ds[0][0].tolist() == a
        True
        """
        if self.random_starts:
            rng = np.random.default_rng([self.seed, int(epoch)])
            self._random = rng.integers(len(self.tokens) - self.seq_len, size=len(self))

    def set_offset(self, offset: int) -> None:
        """Shift the aligned windows to start at ``offset % seq_len`` (0 if the text is too short).

        Args:
            offset: the new start of window 0.

        >>> ds = TokenWindows(np.arange(10), seq_len=4)
        >>> ds.set_offset(1)
        >>> len(ds), ds[0][0].tolist()
        (2, [1, 2, 3, 4])
        """
        self.offset = int(offset) % self.seq_len if len(self.tokens) - offset > self.seq_len else 0

    def __len__(self) -> int:
        return (len(self.tokens) - 1 - self.offset) // self.seq_len

    def _starts(self, indices: np.ndarray) -> np.ndarray:
        if self.random_starts:  # any start whose window of seq_len + 1 tokens fits
            return self._random[indices]
        return self.offset + indices * self.seq_len

    def __getitem__(self, i: int):
        if not -len(self) <= i < len(self):
            raise IndexError(f"TokenWindows index {i} out of range for {len(self)} windows")
        s = int(self._starts(np.asarray(i % len(self), dtype=np.int64)))
        w = self.tokens[s : s + self.seq_len + 1]
        return w[:-1], w[1:]

    def __getitems__(self, indices: Any):
        starts = self._starts(np.asarray(indices, dtype=np.int64))
        w = self.tokens[starts[:, None] + self._arange]  # (B, T + 1)
        return w[:, :-1], w[:, 1:]


__all__ = ["load_shakespeare", "split_tokens", "known_word_share", "TokenWindows", "SHAKESPEARE_SHA256"]
