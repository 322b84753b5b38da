"""TinyGPT: a GPT-2-style decoder-only Transformer, built from core layers.

References:
1) Radford et al., 2019, "Language Models are Unsupervised Multitask Learners" (GPT-2):
   pre-LayerNorm blocks, learned positions, a final LayerNorm, weights tied between the token
   embedding and the output head.
2) Karpathy's nanoGPT ``model.py``, whose layout, names and initialisation this file follows.

Everything but the attention Function and the positional tables is a core layer: ``nn.Embedding``,
``nn.Linear``, ``nn.LayerNorm``, ``nn.Dropout``, ``functional.gelu``.

>>> import numpy as np
>>> model = TinyGPT(vocab_size=65, d_model=32, num_heads=4, num_layers=2, max_seq_len=16)
>>> model(np.zeros((2, 8), dtype=np.int64)).shape  # (B, T) ids -> (B, T, vocab_size) logits
(2, 8, 65)
"""

from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from tinytorch.core import Tensor, nn, no_grad
from tinytorch.core.nn import init
from tinytorch.core.threads import thread_limit

from .attention import KVCache, layer_norm_infer, linear_infer
from .positional import LearnedPositionalEmbedding, PositionalEncoding
from .sampling import check_sampling_args, sample_next
from .transformer import TransformerBlock


@dataclass
class GPTConfig:
    """Hyper-parameters of a :class:`TinyGPT`; stored in checkpoints as a dict.

    Defaults are the seed's model: d_model 256, 8 heads, 4 layers (about 3.2M parameters for
    a 65-character vocabulary), context 128.

    Args:
        vocab_size: number of token ids.
        d_model: embedding size C.
        num_heads: attention heads per block (C must be divisible by it).
        num_layers: Transformer blocks.
        max_seq_len: the context length (positions available).
        dropout: dropout on embeddings, attention and residual branches, in [0, 1).
        bias: biases in the Linear and LayerNorm layers.
        positional: ``"learned"`` (GPT-2) or ``"sinusoidal"`` (Vaswani et al.).
        tie_weights: share the token embedding with the output head.
        d_ff: MLP hidden size; None for 4·d_model.

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
    positional: str = "learned"  # "learned" (GPT-2) or "sinusoidal" (Vaswani et al.)
    tie_weights: bool = True
    d_ff: int | None = None  # MLP hidden size; None = 4 * d_model

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "num_heads", "num_layers", "max_seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                raise ValueError(f"TinyGPT: {name} must be a positive integer, got {value!r}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"TinyGPT: d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )
        if not isinstance(self.dropout, numbers.Real) or not 0 <= self.dropout < 1:
            raise ValueError(f"TinyGPT: dropout must be in [0, 1), got {self.dropout!r}")
        if self.positional not in ("learned", "sinusoidal"):
            raise ValueError(f"TinyGPT: positional must be 'learned' or 'sinusoidal', got {self.positional!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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


class TinyGPT(nn.Module):
    """A character- (or token-) level GPT.

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

    ``forward(ids)`` takes (B, T) integer token ids (NumPy array or Tensor, T <= max_seq_len) and
    returns (B, T, vocab_size) logits. With ``kv_caches`` (from :meth:`new_cache`) it runs the
    graph-free NumPy decoding path and appends the new tokens' keys and values to the caches.

    Shape: (B, T) int ids -> (B, T, vocab_size) logits.

    >>> model = TinyGPT(vocab_size=65, d_model=32, num_heads=4, num_layers=2, max_seq_len=16)
    >>> model(np.zeros((2, 8), dtype=np.int64)).shape
    (2, 8, 65)
    >>> model.generate(np.zeros((1, 3), dtype=np.int64), max_new_tokens=5, seed=0).shape
    (1, 8)
    """

    def __init__(self, vocab_size: int = 65, d_model: int = 256, num_heads: int = 8,
                 num_layers: int = 4, max_seq_len: int = 128, dropout: float = 0.0, *,
                 bias: bool = True, positional: str = "learned", tie_weights: bool = True,
                 d_ff: int | None = None):
        super().__init__()
        self.config = cfg = GPTConfig(vocab_size, d_model, num_heads, num_layers, max_seq_len,
                                      dropout, bias, positional, tie_weights, d_ff)
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.positional == "learned":
            self.wpe = LearnedPositionalEmbedding(cfg.max_seq_len, cfg.d_model)
        else:
            self.wpe = PositionalEncoding(cfg.d_model, cfg.max_seq_len)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            [TransformerBlock(cfg.d_model, cfg.num_heads, cfg.d_ff, cfg.dropout, bias=cfg.bias)
             for _ in range(cfg.num_layers)]
        )
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.wte.weight  # https://paperswithcode.com/method/weight-tying
        self._init_weights()

    @classmethod
    def from_config(cls, config: GPTConfig | dict[str, Any]) -> TinyGPT:
        """A freshly initialised model with the hyper-parameters of ``config``.

        Args:
            config: a `GPTConfig` or its ``to_dict()`` form (as stored in checkpoints).

        Returns:
            The new ``TinyGPT``.

        >>> TinyGPT.from_config({"vocab_size": 10, "d_model": 16, "num_heads": 2, "num_layers": 1}).config.d_model
        16
        """
        cfg = GPTConfig.from_dict(config) if isinstance(config, dict) else config
        d = cfg.to_dict()
        pos = [d.pop(k) for k in ("vocab_size", "d_model", "num_heads", "num_layers", "max_seq_len", "dropout")]
        return cls(*pos, **d)

    def _init_weights(self) -> None:
        """GPT-2 init: N(0, 0.02) weights, zero biases, residual projections scaled by 1/√(2L)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                init.normal_(module.weight, std=0.02)
        std = 0.02 / math.sqrt(2 * self.config.num_layers)
        for block in self.blocks:
            init.normal_(block.attn.proj.weight, std=std)
            init.normal_(block.mlp.proj.weight, std=std)

    # ------------------------------------------------------------------ forward
    def _check_ids(self, ids: Any, start: int = 0) -> np.ndarray:
        arr = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        if arr.ndim != 2:
            raise ValueError(f"TinyGPT expected token ids of shape (B, T), got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"TinyGPT expected integer token ids, got dtype {arr.dtype}")
        if start + arr.shape[1] > self.config.max_seq_len:
            raise ValueError(
                f"TinyGPT: sequence length {start + arr.shape[1]} exceeds max_seq_len="
                f"{self.config.max_seq_len}; crop the input to the last {self.config.max_seq_len} tokens"
            )
        if arr.size and (arr.min() < 0 or arr.max() >= self.config.vocab_size):
            bad = arr[(arr < 0) | (arr >= self.config.vocab_size)].flat[0]
            raise ValueError(f"TinyGPT: token id {int(bad)} is out of range for vocab_size={self.config.vocab_size}")
        return arr

    def forward(self, ids: Any, kv_caches: list[KVCache] | None = None) -> Tensor:
        if kv_caches is not None:
            return Tensor(self.infer(ids, kv_caches))
        ids = self._check_ids(ids)
        x = self.drop(self.wpe(self.wte(ids)))  # (B, T, C): token + position
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # (B, T, vocab_size)

    # ------------------------------------------------------------------ cached decoding
    def new_cache(self, batch_size: int = 1) -> list[KVCache]:
        """One empty :class:`KVCache` per block, for ``forward(ids, kv_caches=...)``.

        Args:
            batch_size: B, the number of sequences decoded together.

        Returns:
            ``num_layers`` caches of (B, num_heads, max_seq_len, head_dim).

        >>> model = TinyGPT(vocab_size=10, d_model=16, num_heads=2, num_layers=3, max_seq_len=8)
        >>> caches = model.new_cache(batch_size=2)
        >>> len(caches), caches[0].k.shape
        (3, (2, 2, 8, 8))
        """
        cfg = self.config
        dtype = self.wte.weight.dtype
        return [KVCache(batch_size, cfg.num_heads, cfg.max_seq_len, cfg.d_model // cfg.num_heads, dtype)
                for _ in range(cfg.num_layers)]

    def infer(self, ids: Any, kv_caches: list[KVCache]) -> np.ndarray:
        """Logits (B, T, V) for ``ids`` that follow the cached tokens, as a NumPy array.

        The graph-free path generation uses: plain NumPy on the same weights (no Function
        dispatch, no graph), equal to ``forward`` on the whole sequence to float32 rounding.

        Args:
            ids: (B, T) integer token ids that follow the ``kv_caches[0].length`` cached ones.
            kv_caches: one cache per block (from `new_cache`); the new keys and values are
                appended to them.

        Returns:
            (B, T, vocab_size) logits array.

        >>> model = TinyGPT(vocab_size=10, d_model=16, num_heads=2, num_layers=1, max_seq_len=8)
        >>> caches = model.new_cache()
        >>> model.infer(np.array([[1, 2, 3]]), caches).shape, caches[0].length
        ((1, 3, 10), 3)
        """
        if len(kv_caches) != len(self.blocks):
            raise ValueError(f"TinyGPT.infer: expected {len(self.blocks)} caches, got {len(kv_caches)}")
        start = kv_caches[0].length
        ids = self._check_ids(ids, start)
        x = self.wpe.infer(self.wte.weight.data[ids], start)  # (B, T, C)
        for block, cache in zip(self.blocks, kv_caches):
            x = block.infer(x, cache)
        return linear_infer(layer_norm_infer(x, self.ln_f), self.lm_head)  # (B, T, vocab_size)

    def generate(self, ids: Any, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 use_cache: bool = True) -> np.ndarray:
        """Append ``max_new_tokens`` sampled tokens to (B, T) ``ids``; returns (B, T + new).

        Context policy: a prompt longer than ``max_seq_len`` is cropped to its last
        ``max_seq_len`` tokens (as nanoGPT). When the window fills up, it slides: the cache is
        rebuilt from the last ``max_seq_len // 2`` tokens, so every token is predicted from
        between half and all of the context length. ``use_cache=False`` recomputes each step on
        exactly the same windows, so both modes give the same logits (to float32 rounding).

        Args:
            ids: (B, T) integer token ids, T >= 1 (NumPy array or Tensor).
            max_new_tokens: how many tokens to sample.
            temperature: divides the logits; 0 is greedy (arg-max).
            top_k: sample from the k most likely tokens only (None: all).
            top_p: sample from the smallest set of tokens whose probability reaches p (None: all).
            seed: seed of the sampling generator (None: unpredictable).
            use_cache: decode with KV caches (fast) instead of recomputing every window.

        Returns:
            (B, T + max_new_tokens) int64 array: ``ids`` followed by the sampled tokens. The
            model's train/eval mode is restored afterwards.

        >>> model = TinyGPT(vocab_size=10, d_model=16, num_heads=2, num_layers=1, max_seq_len=8)
        >>> out = model.generate(np.array([[1, 2]]), max_new_tokens=10, temperature=0)
        >>> out.shape, out[0, :2].tolist()
        ((1, 12), [1, 2])
        """
        check_sampling_args(temperature, top_k, top_p)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 0:
            raise ValueError(f"generate: max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
        arr = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        if arr.ndim != 2 or arr.shape[1] == 0:
            raise ValueError(f"generate: ids must have shape (B, T) with T >= 1, got {arr.shape}")
        self._check_ids(arr[:, -self.config.max_seq_len :])
        rng = np.random.default_rng(seed)
        ctx = self.config.max_seq_len
        keep = max(1, ctx // 2)
        B = arr.shape[0]
        out = np.empty((B, arr.shape[1] + max_new_tokens), dtype=np.int64)
        out[:, : arr.shape[1]] = arr
        n = arr.shape[1]
        start = max(0, n - ctx)
        was_training = self.training
        self.eval()
        # Cached decoding multiplies B rows by each weight matrix: one BLAS thread is faster
        # than two (measured 333 -> 700+ tokens/s at batch 1 on 2 cores).
        limit = thread_limit(1) if use_cache and B <= 4 else contextlib.nullcontext()
        try:
            with limit:
                caches = self.new_cache(B) if use_cache else None
                if use_cache:
                    logits = self.infer(out[:, start:n], caches)[:, -1]
                for _ in range(max_new_tokens):
                    if not use_cache:
                        logits = self._logits_no_cache(out[:, start:n])
                    out[:, n] = sample_next(logits, temperature, top_k, top_p, rng)
                    n += 1
                    if n - start > ctx:  # window full: slide it
                        start = n - keep
                        if use_cache:
                            for c in caches:
                                c.reset()
                            logits = self.infer(out[:, start:n], caches)[:, -1]
                    elif use_cache and _ < max_new_tokens - 1:
                        logits = self.infer(out[:, n - 1 : n], caches)[:, -1]
        finally:
            self.train(was_training)
        return out

    def _logits_no_cache(self, ids: np.ndarray) -> np.ndarray:
        with no_grad():
            return self.forward(ids).data[:, -1]

    def extra_repr(self) -> str:
        return f"params={self.num_parameters():,}"


def tinygpt_factory() -> tuple[TinyGPT, np.ndarray]:
    """The ``tinytorch.models`` entry point: the seed's TinyGPT (vocab 65, d_model 256, 8 heads,
    4 layers, context 128) and an example (1, 128) batch of token ids.

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


__all__ = ["TinyGPT", "GPTConfig", "tinygpt_factory"]
