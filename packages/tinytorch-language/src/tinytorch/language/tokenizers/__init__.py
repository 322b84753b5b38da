"""Tokenizers with one interface: ``fit``, ``encode``, ``decode``, ``vocab_size``, ``save``, ``load``.

>>> tok = CharTokenizer().fit("to be or not to be")
>>> tok.get_vocab_size(), tok.decode(tok.encode("be"))
(7, 'be')
"""

from .base import Tokenizer, TokenizerError
from .bpe import GPT2_SPLIT_PATTERN, SPLIT_PATTERNS, BasicBPETokenizer, BPETokenizer
from .char import CharTokenizer
from .gpt2 import bytes_to_unicode
from .word import WordTokenizer


def load_tokenizer(path):
    """Load any tokenizer file written by ``Tokenizer.save``.

    Args:
        path: the tokenizer file (versioned JSON).

    Returns:
        The tokenizer, of the class stored in the file.

    Raises:
        TokenizerError: not a tokenizer file, another version, or corrupt.

    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     CharTokenizer().fit("hello").save(Path(tmp) / "tok.json")
    ...     load_tokenizer(Path(tmp) / "tok.json").vocab_size
    4
    """
    return Tokenizer.load(path)


__all__ = ["Tokenizer", "TokenizerError", "CharTokenizer", "WordTokenizer", "BasicBPETokenizer",
           "BPETokenizer", "GPT2_SPLIT_PATTERN", "SPLIT_PATTERNS", "bytes_to_unicode", "load_tokenizer"]
