"""Tokenizers with one interface: ``fit``, ``encode``, ``decode``, ``vocab_size``, ``save``, ``load``.

>>> tok = CharTokenizer().fit("to be or not to be")
>>> tok.get_vocab_size(), tok.decode(tok.encode("be"))
(7, 'be')
"""

from .base import Tokenizer, TokenizerError
from .bpe import GPT2_SPLIT_PATTERN, BasicBPETokenizer, BPETokenizer
from .char import CharTokenizer
from .word import WordTokenizer


def load_tokenizer(path):
    """Load any tokenizer file written by ``Tokenizer.save``."""
    return Tokenizer.load(path)


__all__ = ["Tokenizer", "TokenizerError", "CharTokenizer", "WordTokenizer", "BasicBPETokenizer",
           "BPETokenizer", "GPT2_SPLIT_PATTERN", "load_tokenizer"]
