"""TinyGPT: a GPT-2 decoder-only Transformer, the whole model in one file, read top to bottom.

References:
1) Radford et al., 2019, "Language Models are Unsupervised Multitask Learners" (GPT-2):
   pre-LayerNorm blocks, learned positions, a final LayerNorm, the token embedding tied to the
   output head.
2) Karpathy's nanoGPT ``model.py``, whose order, names and initialisation this file follows.
3) Vaswani et al., 2017, "Attention Is All You Need": scaled dot-product attention, §3.2.

Every layer has ONE forward. Training calls it on Tensors and autograd records the graph; decoding
calls the same forward under ``no_grad()`` with a :class:`KVCache` per block, so no graph is
built and each new token attends to the cached keys and values instead of re-running the prefix.

Shapes: B batch, T new tokens, S keys (cached + new), C ``d_model``, nh heads, hs = C / nh the
head size, V the vocabulary.

Loading and saving Hugging Face's GPT-2 files is :mod:`tinytorch.language.pretrained`; turning
logits into tokens is :mod:`tinytorch.language.sampling`; the attention arithmetic (one fused
Function with an analytic backward) is :mod:`tinytorch.language.functional`.

>>> model = TinyGPT(vocab_size=65, d_model=32, num_heads=4, num_layers=2, max_seq_len=16)
>>> model(np.zeros((2, 8), dtype=np.int64)).shape  # (B, T) ids -> (B, T, V) logits
(2, 8, 65)
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from tinytorch.core import Tensor, nn, no_grad
from tinytorch.core import functional as F
from tinytorch.core.checks import check_int, is_int, is_real, out_of_range
from tinytorch.core.nn import init
from tinytorch.core.quantization import weight_only_layers
from tinytorch.core.threads import decoding_threads

from . import functional as LF
from .positional import SinusoidalEmbedding
from .sampling import check_sampling_args, sample_next

ACTIVATIONS = ("gelu_new", "gelu", "relu")  # Hugging Face's activation_function names


@dataclass
class GPTConfig:
    """Hyper-parameters of a :class:`TinyGPT`; stored in checkpoints as a dict.

    Defaults are the TinyGPT of the design summary: d_model 256, 8 heads, 4 layers (about 3.2M
    parameters for a 65-character vocabulary), context 128.

    Args:
        vocab_size: number of token ids V.
        d_model: embedding size C.
        num_heads: attention heads per block nh (C must be divisible by it).
        num_layers: Transformer blocks.
        max_seq_len: the context length (positions available).
        dropout: dropout on embeddings, attention and residual branches, in [0, 1).
        bias: biases in the Linear and LayerNorm layers.
        positional: ``"learned"`` (GPT-2) or ``"sinusoidal"`` (Vaswani et al.).
        tie_weights: share the token embedding with the output head.
        d_ff: MLP hidden size; None for 4·d_model.
        activation: the MLP's activation, by Hugging Face's name: ``"gelu_new"`` (GPT-2's tanh
            GELU, the default), ``"gelu"`` (exact, erf) or ``"relu"``.
        layer_norm_eps: epsilon of every LayerNorm (GPT-2's ``layer_norm_epsilon``).
        embd_pdrop: dropout after the embeddings; None for ``dropout``.
        attn_pdrop: dropout on the attention weights; None for ``dropout``.
        resid_pdrop: dropout on the residual branches; None for ``dropout``.
        layer_heads: the heads each block has, when structured pruning (``prune.shrink``) left
            blocks with fewer than ``num_heads``; None for ``num_heads`` in every block. A head
            keeps its size hs = d_model / num_heads.
        layer_d_ff: the MLP hidden size of each block, when pruning shrank them; None for
            ``d_ff`` (4·d_model) in every block.

    A dict stored by an older TinyTorch (without the last seven keys) gives the model it described.

    >>> cfg = GPTConfig(d_model=64, num_heads=4)
    >>> GPTConfig.from_dict(cfg.to_dict()) == cfg, cfg.max_seq_len
    (True, 128)
    """

    vocab_size: int = 65
    d_model: int = 256
    num_heads: int = 8
    num_layers: int = 4
    max_seq_len: int = 128
    dropout: float = 0.0
    bias: bool = True
    positional: str = "learned"
    tie_weights: bool = True
    d_ff: int | None = None  # None: 4 * d_model
    activation: str = "gelu_new"
    layer_norm_eps: float = 1e-5
    embd_pdrop: float | None = None  # None: dropout
    attn_pdrop: float | None = None
    resid_pdrop: float | None = None
    layer_heads: list[int] | None = None  # None: num_heads in every block
    layer_d_ff: list[int] | None = None  # None: d_ff in every block

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "num_heads", "num_layers", "max_seq_len"):
            check_int("TinyGPT", name, getattr(self, name), minimum=1)
        if self.d_model % self.num_heads:
            raise ValueError(f"TinyGPT: d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        for name in ("dropout", "embd_pdrop", "attn_pdrop", "resid_pdrop"):
            value = getattr(self, name)
            if (value is not None or name == "dropout") and not (is_real(value) and 0 <= value < 1):
                raise ValueError(f"TinyGPT: {name} must be in [0, 1), got {value!r}")
        if self.d_ff is not None and not (is_int(self.d_ff) and self.d_ff > 0):
            raise ValueError(f"TinyGPT: d_ff must be a positive integer or None, got {self.d_ff!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"TinyGPT: activation must be one of {list(ACTIVATIONS)}, got {self.activation!r}")
        if not (is_real(self.layer_norm_eps) and 0 < self.layer_norm_eps < 1):
            raise ValueError(f"TinyGPT: layer_norm_eps must be a number in (0, 1), got {self.layer_norm_eps!r}")
        if self.positional not in ("learned", "sinusoidal"):
            raise ValueError(f"TinyGPT: positional must be 'learned' or 'sinusoidal', got {self.positional!r}")
        for name in ("bias", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"TinyGPT: {name} must be True or False, got {getattr(self, name)!r}")
        for name, most in (("layer_heads", self.num_heads), ("layer_d_ff", None)):
            value = getattr(self, name)
            if value is None:
                continue
            if (not isinstance(value, (list, tuple)) or len(value) != self.num_layers
                    or not all(is_int(n) and 1 <= n <= (most or n) for n in value)):
                limit = f"in [1, num_heads={most}]" if most else ">= 1"
                raise ValueError(f"TinyGPT: {name} must be None or {self.num_layers} integers (one per block) "
                                 f"{limit}, got {value!r}")
            setattr(self, name, [int(n) for n in value])

    @property
    def head_size(self) -> int:
        """hs = d_model / num_heads, the size of every head (pruned blocks keep it)."""
        return self.d_model // self.num_heads

    @property
    def full_d_ff(self) -> int:
        """The MLP hidden size of an unpruned block: ``d_ff``, or 4·d_model when it is None."""
        return self.d_ff if self.d_ff is not None else 4 * self.d_model

    def block_sizes(self, i: int) -> tuple[int, int]:
        """(heads, MLP hidden size) of block ``i``.

        >>> GPTConfig(d_model=16, num_heads=4, num_layers=2, layer_heads=[4, 2]).block_sizes(1)
        (2, 64)
        """
        heads = self.num_heads if self.layer_heads is None else self.layer_heads[i]
        return heads, self.full_d_ff if self.layer_d_ff is None else self.layer_d_ff[i]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def site_dropout(self, site: str) -> float:
        """The dropout probability at ``site`` (``"embd"``, ``"attn"`` or ``"resid"``).

        Args:
            site: where the dropout is applied.

        Returns:
            ``<site>_pdrop`` if set, else ``dropout``.

        >>> GPTConfig(dropout=0.1, attn_pdrop=0.0).site_dropout("attn")
        0.0
        """
        value = getattr(self, f"{site}_pdrop")
        return self.dropout if value is None else value

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTConfig:
        """The config stored as ``to_dict()`` output; unknown keys are an error.

        Args:
            d: field names and values (missing fields take their defaults).

        Returns:
            A validated ``GPTConfig``.

        Raises:
            ValueError: a key is not a field, or a value is out of range.

        >>> GPTConfig.from_dict({"d_model": 32, "num_heads": 2}).d_model
        32
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"GPTConfig: unknown keys {unknown} (expected a subset of {sorted(known)})")
        return cls(**d)


class KVCache:
    """Keys and values of one attention layer for the tokens decoded so far.

    Preallocated as (B, nh, max_len, hs) arrays; the first ``length`` positions are filled.

    Args:
        batch_size: B, the number of sequences decoded together.
        num_heads: nh.
        max_len: the most tokens the cache holds (the model's context length).
        head_size: hs = C / nh.
        dtype: dtype of the keys and values.

    >>> cache = KVCache(batch_size=1, num_heads=2, max_len=8, head_size=4)
    >>> cache.length, cache.k.shape
    (0, (1, 2, 8, 4))
    """

    def __init__(self, batch_size: int, num_heads: int, max_len: int, head_size: int, dtype=np.float32):
        # np.zeros, not zeros_like: fresh zero pages cost no memory until a token is written
        self.k = np.zeros((batch_size, num_heads, max_len, head_size), dtype=dtype)  # (B, nh, max_len, hs)
        self.v = np.zeros((batch_size, num_heads, max_len, head_size), dtype=dtype)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    def append(self, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Store (B, nh, T, hs) keys and values after the cached ones; return all of them.

        Args:
            k: the new tokens' keys, (B, nh, T, hs).
            v: their values, (B, nh, T, hs).

        Returns:
            Views of every cached key and value, each (B, nh, S, hs) with S = length + T.

        Raises:
            ValueError: the cache would overflow ``max_len``, or the batch size differs.

        >>> cache = KVCache(batch_size=1, num_heads=2, max_len=8, head_size=4)
        >>> keys, values = cache.append(np.ones((1, 2, 3, 4)), np.ones((1, 2, 3, 4)))
        >>> keys.shape, cache.length
        ((1, 2, 3, 4), 3)
        """
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KVCache: {self.length} cached + {k.shape[2]} new tokens exceed "
                             f"max_len={self.max_len}; crop the context or reset the cache")
        if k.shape[0] != self.k.shape[0]:
            raise ValueError(f"KVCache: built for batch {self.k.shape[0]}, got keys {k.shape}")
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]  # (B, nh, S, hs)

    def reset(self) -> None:
        """Forget the cached tokens (``length = 0``); the arrays are reused."""
        self.length = 0


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention (Vaswani et al., 2017, §3.2.2), causal by default.

    Args:
        d_model: embedding size C.
        num_heads: nh; C must be divisible by it (hs = C / nh).
        dropout: dropout on the attention weights (GPT-2's ``attn_pdrop``), and on the output
            unless ``resid_dropout`` is given.
        causal: each position attends only to itself and earlier positions.
        bias: biases in the QKV and output projections.
        resid_dropout: dropout on the output (GPT-2's ``resid_pdrop``); None for ``dropout``.
        head_size: hs; None for C / nh. A block that structured pruning left with fewer heads
            keeps its heads' size: its qkv is (3·nh·hs, C) and its proj (C, nh·hs).

    Shape: (B, T, C) -> (B, T, C). ``forward(x, kv_cache, attention_mask)``: with a
    :class:`KVCache` (under ``no_grad()``) the T tokens of ``x`` follow the cached ones and see
    them; ``attention_mask`` is a (B, S) padding mask over the cached and new tokens (1 token,
    0 padding), see :func:`~tinytorch.language.functional.packed_self_attention`.
    ``need_weights=True`` returns ``(output, weights)`` as PyTorch's ``MultiheadAttention``:
    the weights averaged over the heads, (B, T, S), or per head, (B, nh, T, S), with
    ``average_attn_weights=False``; unlike PyTorch the default is False (training never pays
    for them) and the weights carry no gradient.

    >>> mha = MultiHeadAttention(d_model=16, num_heads=4)
    >>> mha(Tensor(np.zeros((2, 5, 16), dtype=np.float32))).shape
    (2, 5, 16)
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, causal: bool = True,
                 bias: bool = True, resid_dropout: float | None = None, head_size: int | None = None):
        super().__init__()
        check_int("MultiHeadAttention", "num_heads", num_heads, minimum=1)
        check_int("MultiHeadAttention", "d_model", d_model, minimum=1)
        if head_size is None:
            if d_model % num_heads:
                raise ValueError(f"MultiHeadAttention: d_model ({d_model}) must be divisible by num_heads ({num_heads})")
            head_size = d_model // num_heads
        check_int("MultiHeadAttention", "head_size", head_size, minimum=1)
        if not (is_real(dropout) and 0 <= dropout < 1):
            raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout!r}")
        self.d_model, self.num_heads, self.head_size = d_model, num_heads, head_size
        self.causal, self.dropout_p = causal, dropout
        width = num_heads * head_size  # C, unless pruning removed heads
        self.qkv = nn.Linear(d_model, 3 * width, bias=bias)  # q|k|v of every head in one matmul
        self.proj = nn.Linear(width, d_model, bias=bias)
        self.resid_dropout = nn.Dropout(dropout if resid_dropout is None else resid_dropout)

    def forward(self, x: Tensor, kv_cache: KVCache | None = None, attention_mask: Any = None,
                need_weights: bool = False, average_attn_weights: bool = True) -> Tensor | tuple[Tensor, Tensor]:
        shape = x.data.shape
        if len(shape) != 3 or shape[-1] != self.d_model:
            raise ValueError(f"MultiHeadAttention expected input (B, T, {self.d_model}), got {shape}")
        qkv = self.qkv(x)  # (B, T, 3C)
        y = LF.packed_self_attention(qkv, self.num_heads, is_causal=self.causal,
                                     dropout_p=self.dropout_p if self.training else 0.0,
                                     attention_mask=attention_mask, kv_cache=kv_cache,
                                     need_weights=need_weights)  # (B, T, C), or it and (B, nh, T, S)
        if not need_weights:
            return self.resid_dropout(self.proj(y))  # (B, T, C)
        y, w = y
        return self.resid_dropout(self.proj(y)), (w.mean(axis=1) if average_attn_weights else w)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_heads={self.num_heads}, causal={self.causal}, dropout={self.dropout_p}"


class MLP(nn.Module):
    """Position-wise feed-forward: Linear(C, d_ff) → activation → Linear(d_ff, C) → Dropout.

    Args:
        d_model: C, the input and output size.
        d_ff: the hidden size (GPT-2 uses 4·C).
        dropout: dropout probability on the output (the residual branch).
        bias: biases in both Linear layers.
        activation: ``"gelu_new"`` (GPT-2's tanh GELU, the default), ``"gelu"`` (exact) or
            ``"relu"``.

    Shape: (B, T, C) -> (B, T, C).

    >>> mlp = MLP(d_model=16, d_ff=64)
    >>> mlp(Tensor(np.zeros((2, 5, 16), dtype=np.float32))).shape
    (2, 5, 16)
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, bias: bool = True,
                 activation: str = "gelu_new"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"MLP: activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        self.fc = nn.Linear(d_model, d_ff, bias=bias)
        self.proj = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)  # (B, T, d_ff)
        if self.activation == "relu":
            h = F.relu(h)
        else:
            h = F.gelu(h, approximate="tanh" if self.activation == "gelu_new" else "none")
        return self.dropout(self.proj(h))  # (B, T, C)


class TransformerBlock(nn.Module):
    """One pre-LayerNorm decoder block (GPT-2; Xiong et al., 2020): (B, T, C) -> (B, T, C).

        x = x + Attention(LN₁(x))
        x = x + MLP(LN₂(x))

    Normalising *before* each sub-layer keeps the residual stream an identity path, which is what
    lets GPTs train without the warmup tricks the post-LN original needed.

    Args:
        d_model: embedding size C.
        num_heads: attention heads.
        d_ff: hidden size of the MLP (default 4·C).
        dropout: dropout on both residual branches (and on the attention weights unless
            ``attn_dropout`` is given).
        causal: causal self-attention (a decoder block).
        bias: biases in Linear and LayerNorm layers.
        attn_dropout: dropout on the attention weights; None for ``dropout``.
        activation: the MLP's activation (see `MLP`).
        eps: the LayerNorms' epsilon.
        head_size: each head's size; None for C / num_heads (see `MultiHeadAttention`).

    >>> block = TransformerBlock(d_model=16, num_heads=4)
    >>> block(Tensor(np.zeros((2, 5, 16), dtype=np.float32))).shape
    (2, 5, 16)
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int | None = None, dropout: float = 0.0,
                 causal: bool = True, bias: bool = True, *, attn_dropout: float | None = None,
                 activation: str = "gelu_new", eps: float = 1e-5, head_size: int | None = None):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model, eps=eps, bias=bias)
        self.attn = MultiHeadAttention(d_model, num_heads, dropout=dropout if attn_dropout is None else attn_dropout,
                                       causal=causal, bias=bias, resid_dropout=dropout, head_size=head_size)
        self.ln2 = nn.LayerNorm(d_model, eps=eps, bias=bias)
        self.mlp = MLP(d_model, 4 * d_model if d_ff is None else d_ff, dropout=dropout, bias=bias,
                       activation=activation)

    def forward(self, x: Tensor, kv_cache: KVCache | None = None, attention_mask: Any = None,
                **weights: bool) -> Tensor | tuple[Tensor, Tensor]:
        # weights: need_weights, average_attn_weights of MultiHeadAttention -> (x, attention weights)
        a = self.attn(self.ln1(x), kv_cache, attention_mask, **weights)
        a, w = a if weights.get("need_weights") else (a, None)
        x = x + a  # (B, T, C)
        x = x + self.mlp(self.ln2(x))  # (B, T, C)
        return (x, w) if w is not None else x


class TinyGPT(nn.Module):
    """A character- (or token-) level GPT: GPT-2's architecture at any size.

    Args:
        vocab_size: number of token ids.
        d_model: embedding size.
        num_heads: attention heads per block.
        num_layers: Transformer blocks.
        max_seq_len: the context length (positions available).
        dropout: dropout on embeddings, attention and residual branches (0 for small data).
        bias: biases in the Linear and LayerNorm layers (see `GPTConfig`).
        positional: ``"learned"`` (GPT-2) or ``"sinusoidal"`` position information.
        tie_weights: share the token embedding with the output head.
        d_ff: MLP hidden size; None for 4·d_model.
        activation: the MLP's activation: ``"gelu_new"`` (tanh), ``"gelu"`` (erf) or ``"relu"``.
        layer_norm_eps: epsilon of every LayerNorm.
        embd_pdrop: dropout after the embeddings (None: ``dropout``).
        attn_pdrop: dropout on the attention weights (None: ``dropout``).
        resid_pdrop: dropout on the residual branches (None: ``dropout``).
        layer_heads: heads of each block after structured pruning (None: ``num_heads`` each).
        layer_d_ff: MLP hidden size of each block after structured pruning (None: ``d_ff`` each).
        init_weights: draw GPT-2's initial weights; False leaves them uninitialised
            (``np.empty``, never touched), for a loader that replaces every array (as
            `from_pretrained`).

    ``forward(ids)`` takes (B, T) integer token ids (NumPy array or Tensor, T <= max_seq_len) and
    returns (B, T, V) logits. Under ``no_grad()`` with ``kv_caches`` (from :meth:`new_cache`) the
    ids follow the cached tokens: their keys and values are appended to the caches, which is how
    :meth:`generate` decodes one token at a time.

    ``forward(ids, attention_mask=m)`` takes a (B, T) padding mask as Hugging Face does (1 for
    a token, 0 for padding): padding keys are hidden from every query, and each token's
    position is the number of real tokens before it (``cumsum(m) - 1``, as transformers'
    ``generate``), so a left-padded row gives the logits its prompt gives alone. Padding
    positions themselves attend to nothing; their logits are meaningless (finite).

    ``TinyGPT.from_pretrained(dir_or_name)`` / ``save_pretrained(dir)`` read and write Hugging
    Face's GPT-2 layout (see :mod:`tinytorch.language.pretrained`).

    Shape: (B, T) int ids -> (B, T, V) logits.

    >>> model = TinyGPT(vocab_size=65, d_model=32, num_heads=4, num_layers=2, max_seq_len=16)
    >>> model(np.zeros((2, 8), dtype=np.int64)).shape
    (2, 8, 65)
    >>> model.generate(np.zeros((1, 3), dtype=np.int64), max_new_tokens=5, seed=0).shape
    (1, 8)
    """

    def __init__(self, vocab_size: int = 65, d_model: int = 256, num_heads: int = 8,
                 num_layers: int = 4, max_seq_len: int = 128, dropout: float = 0.0, *,
                 bias: bool = True, positional: str = "learned", tie_weights: bool = True,
                 d_ff: int | None = None, activation: str = "gelu_new", layer_norm_eps: float = 1e-5,
                 embd_pdrop: float | None = None, attn_pdrop: float | None = None,
                 resid_pdrop: float | None = None, layer_heads: list[int] | None = None,
                 layer_d_ff: list[int] | None = None, init_weights: bool = True):
        super().__init__()
        cfg = self._config = GPTConfig(vocab_size, d_model, num_heads, num_layers, max_seq_len, dropout, bias,
                                       positional, tie_weights, d_ff, activation, layer_norm_eps, embd_pdrop,
                                       attn_pdrop, resid_pdrop, layer_heads, layer_d_ff)
        with contextlib.nullcontext() if init_weights else init.no_init():
            self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)  # token embedding
            if cfg.positional == "learned":
                self.wpe = nn.Embedding(cfg.max_seq_len, cfg.d_model)  # position embedding
            else:
                self.wpe = SinusoidalEmbedding(cfg.max_seq_len, cfg.d_model)
            self.drop = nn.Dropout(cfg.site_dropout("embd"))
            self.blocks = nn.ModuleList([
                TransformerBlock(cfg.d_model, heads, d_ff, cfg.site_dropout("resid"), bias=cfg.bias,
                                 attn_dropout=cfg.site_dropout("attn"), activation=cfg.activation,
                                 eps=cfg.layer_norm_eps, head_size=cfg.head_size)
                for heads, d_ff in map(cfg.block_sizes, range(cfg.num_layers))])
            self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, bias=cfg.bias)
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.wte.weight  # https://paperswithcode.com/method/weight-tying
        if init_weights:
            self._init_weights()

    @property
    def config(self) -> GPTConfig:
        """The hyper-parameters, with each block's heads and MLP size as the layers have them now:
        after structured pruning (``prune.shrink``) ``layer_heads`` / ``layer_d_ff`` list them,
        so a saved checkpoint rebuilds the pruned model (`from_config`).

        >>> from tinytorch.core.nn.utils import prune
        >>> model = TinyGPT(vocab_size=10, d_model=16, num_heads=4, num_layers=2, max_seq_len=8)
        >>> _ = prune.shrink(model, np.zeros((1, 4), dtype=np.int64), amount=0.5)
        >>> model.config.layer_heads, model.config.layer_d_ff
        ([2, 2], [32, 32])
        """
        cfg = self._config
        sizes = [(block.attn.num_heads, getattr(block.mlp.fc, "out_features", None)) for block in self.blocks]
        if any(d_ff is None for _, d_ff in sizes):
            return cfg  # a layer wrapped for calibration (static quantization): its size is unchanged
        if sizes != [cfg.block_sizes(i) for i in range(cfg.num_layers)]:
            heads, d_ff = ([size[k] for size in sizes] for k in (0, 1))
            cfg = self._config = replace(cfg, layer_heads=None if set(heads) == {cfg.num_heads} else heads,
                                         layer_d_ff=None if set(d_ff) == {cfg.full_d_ff} else d_ff)
        return cfg

    def _init_weights(self) -> None:
        """GPT-2's init: N(0, 0.02) weights, zero biases, residual projections scaled by 1/√(2L)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                init.zeros_(module.bias)
        for block in self.blocks:  # each block adds two branches to the residual stream
            init.normal_(block.attn.proj.weight, std=0.02 / math.sqrt(2 * self.config.num_layers))
            init.normal_(block.mlp.proj.weight, std=0.02 / math.sqrt(2 * self.config.num_layers))

    @classmethod
    def from_config(cls, config: GPTConfig | dict[str, Any], init_weights: bool = True) -> TinyGPT:
        """A new model with the hyper-parameters of ``config``.

        Args:
            config: a `GPTConfig` or its ``to_dict()`` form (as stored in checkpoints).
            init_weights: draw the initial weights (False: uninitialised, to be overwritten).

        Returns:
            The new ``TinyGPT``.

        >>> TinyGPT.from_config({"vocab_size": 10, "d_model": 16, "num_heads": 2, "num_layers": 1}).config.d_model
        16
        """
        d = (GPTConfig.from_dict(config) if isinstance(config, dict) else config).to_dict()
        pos = [d.pop(k) for k in ("vocab_size", "d_model", "num_heads", "num_layers", "max_seq_len", "dropout")]
        return cls(*pos, **d, init_weights=init_weights)

    # ------------------------------------------------------------------ forward
    def forward(self, ids: Any, kv_caches: list[KVCache] | None = None, attention_mask: Any = None,
                last_only: bool = False, need_weights: bool = False,
                average_attn_weights: bool = True) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Logits of the next token at every position of ``ids``.

        Args:
            ids: (B, T) integer token ids (that follow the ``kv_caches``' tokens, if given).
            kv_caches: one :class:`KVCache` per block (from `new_cache`), under ``no_grad()``;
                the new keys and values are appended to them.
            attention_mask: (B, S) padding mask over the cached and the new tokens (1 token,
                0 padding), or None.
            last_only: the logits of the last position only, (B, 1, V): the output head is
                the largest matrix, and generation needs no more.
            need_weights: also return every block's attention weights (see `MultiHeadAttention`).
            average_attn_weights: with ``need_weights``, (B, T, S) per block averaged over the
                heads (True), or (B, nh, T, S) per head.

        Returns:
            (B, T, V) logits ((B, 1, V) with ``last_only``); with ``need_weights``, (logits,
            [weights of block 0, block 1, ...]).

        >>> model = TinyGPT(vocab_size=5, d_model=8, num_heads=2, num_layers=2, max_seq_len=4)
        >>> logits, weights = model(np.array([[1, 2, 3]]), need_weights=True, average_attn_weights=False)
        >>> len(weights), weights[0].shape  # a block each: (B, nh, T, S)
        (2, (1, 2, 3, 3))
        """
        start = 0 if kv_caches is None else self._check_caches(kv_caches)
        ids = self._check_ids(ids, start)  # (B, T)
        B, T = ids.shape
        mask = self._check_mask(attention_mask, (B, start + T))  # (B, S) bool, or None: no padding
        # positions (1, T) shared by the batch; with padding (B, T), each row counting its own tokens
        pos = np.arange(start, start + T)[None] if mask is None else position_ids(mask)[:, start:]
        x = self.drop(self.wte(ids) + self.wpe(pos))  # (B, T, C)
        weights = {"need_weights": True, "average_attn_weights": average_attn_weights} if need_weights else {}
        seen = []  # each block's attention weights, when asked for
        for i, block in enumerate(self.blocks):
            x = block(x, None if kv_caches is None else kv_caches[i], mask, **weights)  # (B, T, C)
            if need_weights:
                x, w = x
                seen.append(w)
        x = self.ln_f(x)
        if last_only:
            x = x[:, -1:]  # (B, 1, C)
        return (self.lm_head(x), seen) if need_weights else self.lm_head(x)  # (B, T, V)

    def _check_caches(self, kv_caches: list[KVCache]) -> int:
        if len(kv_caches) != len(self.blocks):
            raise ValueError(f"TinyGPT: expected {len(self.blocks)} caches (one per block), got {len(kv_caches)}")
        return kv_caches[0].length

    def _check_ids(self, ids: Any, start: int = 0) -> np.ndarray:
        cfg = self._config  # context and vocabulary never change with pruning: not the `config` walk
        arr = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        if arr.ndim != 2:
            raise ValueError(f"TinyGPT expected token ids of shape (B, T), got shape {arr.shape}")
        if arr.dtype.kind not in "iu":
            raise TypeError(f"TinyGPT expected integer token ids, got dtype {arr.dtype}")
        if start + arr.shape[1] > cfg.max_seq_len:
            raise ValueError(f"TinyGPT: sequence length {start + arr.shape[1]} exceeds max_seq_len="
                             f"{cfg.max_seq_len}; crop the input to the last {cfg.max_seq_len} tokens")
        bad = out_of_range(arr, cfg.vocab_size)
        if bad is not None:
            raise ValueError(f"TinyGPT: token id {bad} is out of range for vocab_size={cfg.vocab_size}")
        return arr

    @staticmethod
    def _check_mask(attention_mask: Any, shape: tuple[int, int]) -> np.ndarray | None:
        """The (B, S) padding mask as bools, or None when it hides nothing (the fast path)."""
        if attention_mask is None:
            return None
        mask = attention_mask.data if isinstance(attention_mask, Tensor) else np.asarray(attention_mask)
        if mask.shape != shape:
            raise ValueError(f"TinyGPT: attention_mask must have shape (B, cached + new tokens) = {shape}, "
                             f"got {mask.shape}")
        if mask.dtype != np.bool_ and not np.isin(mask, (0, 1)).all():
            raise ValueError("TinyGPT: attention_mask must hold 1 (token) and 0 (padding) only")
        mask = mask.astype(bool, copy=False)
        return None if mask.all() else mask

    # ------------------------------------------------------------------ generation
    def new_cache(self, batch_size: int = 1) -> list[KVCache]:
        """One empty :class:`KVCache` per block, for ``forward(ids, kv_caches)``.

        Args:
            batch_size: B, the number of sequences decoded together.

        Returns:
            ``num_layers`` caches of (B, nh, max_seq_len, hs).

        >>> model = TinyGPT(vocab_size=10, d_model=16, num_heads=2, num_layers=3, max_seq_len=8)
        >>> caches = model.new_cache(batch_size=2)
        >>> len(caches), caches[0].k.shape
        (3, (2, 2, 8, 8))
        """
        # per block: structured shrinking (prune.shrink) may leave blocks with fewer heads
        return [KVCache(batch_size, block.attn.num_heads, self.config.max_seq_len, block.attn.head_size,
                        self._float_dtype()) for block in self.blocks]

    def _float_dtype(self) -> np.dtype:
        """The activations' dtype: the final LayerNorm's (a quantized model's embedding holds integers)."""
        return self.ln_f.weight.dtype

    def _weight_bytes(self) -> int:
        """Bytes of weights BLAS reads from memory per decoded token (what `decoding_threads`
        sizes its thread count by): every float array once. A weight-only quantized layer's
        storage is not among them: it is widened a cache-sized block at a time and BLAS
        multiplies the block in the cache, work too small to share (GPT-2 124M in int8 decoded
        2.2x slower on two threads than on one)."""
        narrow = {id(b.data) for m in weight_only_layers(self).values() for b in m.buffers()}
        arrays = {id(a): a for a in self.state_dict().values() if id(a) not in narrow}
        return sum(a.nbytes for a in arrays.values())

    def generate(self, ids: Any, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 use_cache: bool = True, attention_mask: Any = None) -> np.ndarray:
        """Append ``max_new_tokens`` sampled tokens to (B, T) ``ids``; returns (B, T + new).

        Context policy: a prompt longer than ``max_seq_len`` is cropped to its last
        ``max_seq_len`` tokens (as nanoGPT). When the window fills up, it slides: the cache is
        rebuilt from the last ``max_seq_len // 2`` tokens, so every token is predicted from
        between half and all of the context length. ``use_cache=False`` recomputes each step on
        exactly the same windows, so both modes give the same logits (to float32 rounding).

        Prompts of different lengths go in one batch left-padded, with ``attention_mask``
        marking the padding (0) as Hugging Face's ``generate`` does: each row then continues
        as its prompt alone would (padding tokens count towards the context window).

        Args:
            ids: (B, T) integer token ids, T >= 1 (NumPy array or Tensor).
            max_new_tokens: how many tokens to sample.
            temperature: divides the logits; 0 is greedy (arg-max).
            top_k: sample from the k most likely tokens only (None: all).
            top_p: sample from the smallest set of tokens whose probability reaches p (None: all).
            seed: seed of the sampling generator (None: unpredictable).
            use_cache: decode with KV caches (fast) instead of recomputing every window.
            attention_mask: (B, T) padding mask of ``ids`` (1 token, 0 padding), or None.
                Every row needs at least one token.

        Returns:
            (B, T + max_new_tokens) int64 array: ``ids`` followed by the sampled tokens. The
            model's train/eval mode is restored afterwards.

        >>> model = TinyGPT(vocab_size=10, d_model=16, num_heads=2, num_layers=1, max_seq_len=8)
        >>> out = model.generate(np.array([[1, 2]]), max_new_tokens=10, temperature=0)
        >>> out.shape, out[0, :2].tolist()
        ((1, 12), [1, 2])
        >>> batch = model.generate(np.array([[0, 1, 2], [3, 1, 2]]), max_new_tokens=4, temperature=0,
        ...                        attention_mask=np.array([[0, 1, 1], [1, 1, 1]]))
        >>> batch[0, 3:].tolist() == out[0, 2:6].tolist()  # the padded row continues [1, 2] alone
        True
        """
        check_sampling_args(temperature, top_k, top_p)
        check_int("generate", "max_new_tokens", max_new_tokens, minimum=0)
        prompt = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        if prompt.ndim != 2 or prompt.shape[1] == 0:
            raise ValueError(f"generate: ids must have shape (B, T) with T >= 1, got {prompt.shape}")
        ctx = self._config.max_seq_len
        self._check_ids(prompt[:, -ctx:])
        B, n = prompt.shape
        out = np.empty((B, n + max_new_tokens), dtype=np.int64)  # (B, T + new)
        out[:, :n] = prompt
        mask = self._check_mask(attention_mask, prompt.shape)
        if mask is not None:  # the new tokens are real tokens
            mask = np.concatenate([mask, np.ones((B, max_new_tokens), dtype=bool)], axis=1)
        start = max(0, n - ctx)  # the window is out[:, start:n]
        rng = np.random.default_rng(seed)

        def window_mask(end: int) -> np.ndarray | None:
            if mask is None:
                return None
            if not mask[:, start:end].any(axis=1).all():
                raise ValueError("generate: a row of attention_mask has no token in the context window")
            return mask[:, start:end]

        def logits_of_window() -> np.ndarray:  # (B, V): the next token's, from the whole window
            if use_cache:
                for cache in caches:
                    cache.reset()
            return self(out[:, start:n], caches, window_mask(n), last_only=True).data[:, -1]

        window_mask(n)
        was_training = self.training
        self.eval()
        threads = decoding_threads(self._weight_bytes(), B) if use_cache else contextlib.nullcontext()
        try:
            with no_grad(), threads:
                caches = self.new_cache(B) if use_cache else None
                logits = logits_of_window()
                for step in range(max_new_tokens):
                    out[:, n] = sample_next(logits, temperature, top_k, top_p, rng)
                    n += 1
                    if step == max_new_tokens - 1:
                        break
                    if n - start > ctx:  # the window is full: slide it
                        start = n - max(1, ctx // 2)
                        logits = logits_of_window()
                    elif use_cache:  # the new token alone, after the cached ones
                        logits = self(out[:, n - 1:n], caches, window_mask(n)).data[:, -1]
                    else:
                        logits = logits_of_window()
        finally:
            self.train(was_training)
        return out

    def train(self, mode: bool = True) -> TinyGPT:
        """Training mode (``mode=True``) or eval mode; returns self. Also lays the weights out.

        Decoding a token multiplies a row by every weight matrix, and OpenBLAS's GEMV reads a
        row-major (in, out) matrix (``x @ W``) faster than a row-major (out, in) one
        (``x @ W.T``): measured for GPT-2 124M's blocks 16.5 against 21 ms per token on one
        thread. So eval mode keeps each Linear weight (out, in) as the transposed view of an
        (in, out) array, copied once (a no-op when it already is, as `from_pretrained` loads
        Hugging Face's Conv1D weights). Training needs C order (the gradients and the
        optimizer's moments are C-ordered; the other layout doubled GPT-2's step time), so
        training mode copies them back. The values never change, only their order in memory.

        Args:
            mode: True for training, False for eval.

        Returns:
            ``self``.

        >>> model = TinyGPT(vocab_size=10, d_model=16, num_heads=2, num_layers=1)
        >>> model.eval().lm_head.weight.data.flags.f_contiguous, model.train().lm_head.weight.data.flags.c_contiguous
        (True, True)
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                w = module.weight
                w.data = np.ascontiguousarray(w.data) if mode else decode_layout(w.data)
        return super().train(mode)

    @classmethod
    def from_pretrained(cls, path_or_name: str | Any, **overrides: float) -> TinyGPT:
        """A GPT-2 checkpoint in Hugging Face's layout: a directory, or a Hub name such as ``"gpt2"``.

        See :func:`tinytorch.language.pretrained.from_pretrained`.

        Args:
            path_or_name: a directory holding ``config.json`` and ``model.safetensors`` (or an
                index and its shards), or a Hugging Face Hub name.
            **overrides: dropouts to fine-tune with (``dropout=0.0``), as nanoGPT's
                ``override_args``; nothing else of the checkpoint's config can change.

        Returns:
            The model, in eval mode, float32.

        >>> import tempfile
        >>> directory = tempfile.mkdtemp()
        >>> TinyGPT(vocab_size=10, d_model=16, num_heads=2, num_layers=1, max_seq_len=8).save_pretrained(directory)
        >>> TinyGPT.from_pretrained(directory).config.d_model
        16
        """
        from .pretrained import from_pretrained

        return from_pretrained(path_or_name, **overrides)

    def save_pretrained(self, directory: str | Any) -> None:
        """Write ``config.json`` and ``model.safetensors`` in Hugging Face's GPT-2 layout.

        See :func:`tinytorch.language.pretrained.save_pretrained`.

        Args:
            directory: created if missing; the two files are replaced atomically.

        >>> import tempfile, os
        >>> directory = tempfile.mkdtemp()
        >>> TinyGPT(vocab_size=10, d_model=16, num_heads=2, num_layers=1).save_pretrained(directory)
        >>> sorted(os.listdir(directory))
        ['config.json', 'model.safetensors']
        """
        from .pretrained import save_pretrained

        save_pretrained(self, directory)

    def extra_repr(self) -> str:
        return f"params={self.num_parameters():,}"


def decode_layout(weight: np.ndarray) -> np.ndarray:
    """A Linear's (out, in) weight as the transposed view of an (in, out) array, the layout
    batch-1 decoding reads fastest (see `TinyGPT.train`); no copy when it already is.

    Args:
        weight: an (out, in) array.

    Returns:
        The same values, F-ordered.

    >>> decode_layout(np.zeros((3, 2), dtype=np.float32)).flags.f_contiguous
    True
    """
    return weight if weight.flags.f_contiguous else np.ascontiguousarray(weight.T).T


def position_ids(attention_mask: np.ndarray) -> np.ndarray:
    """Positions of a padded batch, as transformers' ``generate``: ``cumsum(mask) - 1``, 0 on padding.

    Each token's position is the number of real tokens before it in its row, so a left-padded
    prompt gets the positions it has alone.

    Args:
        attention_mask: (B, T) 1/True for tokens, 0/False for padding.

    Returns:
        (B, T) int64 positions.

    >>> position_ids(np.array([[0, 0, 1, 1], [1, 1, 1, 1]])).tolist()
    [[0, 0, 0, 1], [0, 1, 2, 3]]
    """
    mask = np.asarray(attention_mask) != 0
    return np.where(mask, np.cumsum(mask, axis=1, dtype=np.int64) - 1, 0)


def tinygpt_factory() -> tuple[TinyGPT, np.ndarray]:
    """The ``tinytorch.models`` entry point: TinyGPT of the design summary (vocab 65, d_model 256,
    8 heads, 4 layers, context 128) and an example (1, 128) batch of token ids.

    Takes no arguments; ``tito performance`` profiles and compares what it returns.

    Returns:
        The model and a (1, 128) int64 array of token ids.

    >>> model, example = tinygpt_factory()
    >>> model.num_parameters(), example.shape
    (3208960, (1, 128))
    """
    model = TinyGPT(vocab_size=65, d_model=256, num_heads=8, num_layers=4, max_seq_len=128)
    example = np.random.default_rng(0).integers(0, 65, size=(1, 128), dtype=np.int64)
    return model, example


__all__ = ["TinyGPT", "GPTConfig", "TransformerBlock", "MLP", "MultiHeadAttention", "KVCache",
           "ACTIVATIONS", "decode_layout", "position_ids", "tinygpt_factory"]
