"""tinytorch.language: tokenizers, attention, TinyGPT, language-model training and generation.

Built on ``tinytorch.core``: the model is core's Embedding, Linear, LayerNorm, Dropout and GELU
plus one fused attention Function; training is core's Trainer, DataLoader, AdamW and
cross-entropy.

>>> from tinytorch.language import CharTokenizer, TinyGPT, load_shakespeare
>>> text = load_shakespeare()
>>> tokenizer = CharTokenizer().fit(text)
>>> model = TinyGPT(vocab_size=tokenizer.get_vocab_size(), d_model=256, num_heads=8, num_layers=4)
>>> tokenizer.get_vocab_size(), model.num_parameters()
(65, 3208960)
"""

from importlib import metadata as _metadata

from . import functional, pretrained
from . import pruning as _pruning  # noqa: F401 - registers heads and MLP neurons with core's prune
from .data import TokenWindows, load_shakespeare, split_tokens
from .functional import scaled_dot_product_attention
from .model import (
    MLP,
    GPTConfig,
    KVCache,
    MultiHeadAttention,
    TinyGPT,
    TransformerBlock,
    tinygpt_factory,
)
from .positional import PositionalEncoding, SinusoidalEmbedding
from .sampling import sample_next
from .tokenizers import (
    BasicBPETokenizer,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    TokenizerError,
    WordTokenizer,
    load_tokenizer,
)
from .training import LanguageModelTrainer, generate_text, load_checkpoint, save_model

__version__ = _metadata.version("tinytorch-language")  # the one source: pyproject.toml

__all__ = [
    "functional", "pretrained", "scaled_dot_product_attention", "MultiHeadAttention", "KVCache",
    "PositionalEncoding", "SinusoidalEmbedding", "TransformerBlock", "MLP", "TinyGPT",
    "GPTConfig", "tinygpt_factory", "Tokenizer", "TokenizerError", "CharTokenizer",
    "WordTokenizer", "BasicBPETokenizer", "BPETokenizer", "load_tokenizer", "TokenWindows",
    "load_shakespeare", "split_tokens", "LanguageModelTrainer", "generate_text",
    "load_checkpoint", "save_model", "sample_next",
]
