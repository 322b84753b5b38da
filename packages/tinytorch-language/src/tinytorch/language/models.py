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
from .transformer import ACTIVATIONS, TransformerBlock


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
        activation: the MLP's activation, by Hugging Face's name: ``"gelu_new"`` (GPT-2's tanh
            GELU, the default), ``"gelu"`` (exact, erf) or ``"relu"``.
        layer_norm_eps: epsilon of every LayerNorm (GPT-2's ``layer_norm_epsilon``).
        embd_pdrop: dropout after the embeddings; None for ``dropout``.
        attn_pdrop: dropout on the attention weights; None for ``dropout``.
        resid_pdrop: dropout on the residual branches; None for ``dropout``.

    A dict stored by an older TinyTorch (without the last five keys) gives the model it described.

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
    activation: str = "gelu_new"
    layer_norm_eps: float = 1e-5
    embd_pdrop: float | None = None  # None: dropout
    attn_pdrop: float | None = None
    resid_pdrop: float | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "num_heads", "num_layers", "max_seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                raise ValueError(f"TinyGPT: {name} must be a positive integer, got {value!r}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"TinyGPT: d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )
        for name in ("dropout", "embd_pdrop", "attn_pdrop", "resid_pdrop"):
            value = getattr(self, name)
            if value is None and name != "dropout":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
                raise ValueError(f"TinyGPT: {name} must be in [0, 1), got {value!r}")
        if self.d_ff is not None and (isinstance(self.d_ff, bool) or not isinstance(self.d_ff, numbers.Integral)
                                      or self.d_ff <= 0):
            raise ValueError(f"TinyGPT: d_ff must be a positive integer or None, got {self.d_ff!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"TinyGPT: activation must be one of {list(ACTIVATIONS)}, got {self.activation!r}")
        eps = self.layer_norm_eps
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps < 1:
            raise ValueError(f"TinyGPT: layer_norm_eps must be a number in (0, 1), got {eps!r}")
        if self.positional not in ("learned", "sinusoidal"):
            raise ValueError(f"TinyGPT: positional must be 'learned' or 'sinusoidal', got {self.positional!r}")

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
        activation: the MLP's activation: ``"gelu_new"`` (tanh), ``"gelu"`` (erf) or ``"relu"``.
        layer_norm_eps: epsilon of every LayerNorm.
        embd_pdrop: dropout after the embeddings (None: ``dropout``).
        attn_pdrop: dropout on the attention weights (None: ``dropout``).
        resid_pdrop: dropout on the residual branches (None: ``dropout``).
        init_weights: draw GPT-2's initial weights; False leaves them uninitialised
            (``np.empty``, never touched), for a loader that replaces every array (as
            `from_pretrained`).

    ``forward(ids)`` takes (B, T) integer token ids (NumPy array or Tensor, T <= max_seq_len) and
    returns (B, T, vocab_size) logits. With ``kv_caches`` (from :meth:`new_cache`) it runs the
    graph-free NumPy decoding path and appends the new tokens' keys and values to the caches.

    ``forward(ids, attention_mask=m)`` takes a (B, T) padding mask as Hugging Face does (1 for
    a token, 0 for padding): padding keys are hidden from every query, and each token's
    position is the number of real tokens before it (``cumsum(m) - 1``, as transformers'
    ``generate``), so a left-padded row gives the logits its prompt gives alone. Padding
    positions themselves attend to nothing; their logits are meaningless (finite).

    ``TinyGPT.from_pretrained(dir_or_name)`` / ``save_pretrained(dir)`` read and write Hugging
    Face's GPT-2 layout (see :mod:`tinytorch.language.pretrained`).

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
                 d_ff: int | None = None, activation: str = "gelu_new", layer_norm_eps: float = 1e-5,
                 embd_pdrop: float | None = None, attn_pdrop: float | None = None,
                 resid_pdrop: float | None = None, init_weights: bool = True):
        super().__init__()
        self.config = GPTConfig(vocab_size, d_model, num_heads, num_layers, max_seq_len, dropout, bias,
                                positional, tie_weights, d_ff, activation, layer_norm_eps, embd_pdrop,
                                attn_pdrop, resid_pdrop)
        with contextlib.nullcontext() if init_weights else _skip_core_init():
            self._build()
        if init_weights:
            self._init_weights()

    def _build(self) -> None:
        cfg = self.config
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.positional == "learned":
            self.wpe = LearnedPositionalEmbedding(cfg.max_seq_len, cfg.d_model)
        else:
            self.wpe = PositionalEncoding(cfg.d_model, cfg.max_seq_len)
        self.drop = nn.Dropout(cfg.site_dropout("embd"))
        self.blocks = nn.ModuleList(
            [TransformerBlock(cfg.d_model, cfg.num_heads, cfg.d_ff, cfg.site_dropout("resid"), bias=cfg.bias,
                              attn_dropout=cfg.site_dropout("attn"), activation=cfg.activation,
                              eps=cfg.layer_norm_eps)
             for _ in range(cfg.num_layers)]
        )
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.wte.weight  # https://paperswithcode.com/method/weight-tying

    @classmethod
    def from_config(cls, config: GPTConfig | dict[str, Any], init_weights: bool = True) -> TinyGPT:
        """A freshly initialised model with the hyper-parameters of ``config``.

        Args:
            config: a `GPTConfig` or its ``to_dict()`` form (as stored in checkpoints).
            init_weights: draw the initial weights (False: uninitialised, to be overwritten).

        Returns:
            The new ``TinyGPT``.

        >>> TinyGPT.from_config({"vocab_size": 10, "d_model": 16, "num_heads": 2, "num_layers": 1}).config.d_model
        16
        """
        cfg = GPTConfig.from_dict(config) if isinstance(config, dict) else config
        d = cfg.to_dict()
        pos = [d.pop(k) for k in ("vocab_size", "d_model", "num_heads", "num_layers", "max_seq_len", "dropout")]
        return cls(*pos, **d, init_weights=init_weights)

    @classmethod
    def from_pretrained(cls, path_or_name: str | Any, **overrides: float) -> TinyGPT:
        """A GPT-2 checkpoint in Hugging Face's layout: a directory, or a Hub name such as ``"gpt2"``.

        See :func:`tinytorch.language.pretrained.from_pretrained` for the layout, the mapping
        and the errors.

        Args:
            path_or_name: a directory holding ``config.json`` and ``model.safetensors`` (or
                ``model.safetensors.index.json`` and its shards), or a Hugging Face Hub name,
                downloaded through ``huggingface_hub`` into its cache.
            **overrides: dropouts to fine-tune with (``dropout=0.0``), as nanoGPT's
                ``override_args``; nothing else of the checkpoint's config can change.

        Returns:
            The model, in eval mode, float32.

        >>> import tempfile
        >>> model = TinyGPT(vocab_size=10, d_model=16, num_heads=2, num_layers=1, max_seq_len=8)
        >>> directory = tempfile.mkdtemp()
        >>> model.save_pretrained(directory)
        >>> TinyGPT.from_pretrained(directory).config.d_model
        16
        """
        from .pretrained import from_pretrained

        return from_pretrained(path_or_name, **overrides)

    def save_pretrained(self, directory: str | Any) -> None:
        """Write ``config.json`` and ``model.safetensors`` in Hugging Face's GPT-2 layout.

        ``transformers.GPT2LMHeadModel.from_pretrained(directory)`` loads the result; see
        :func:`tinytorch.language.pretrained.save_pretrained`.

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

    def _check_mask(self, attention_mask: Any, shape: tuple[int, ...], what: str = "ids") -> np.ndarray | None:
        """The (B, S) padding mask as a bool array, or None when it masks nothing (the fast path)."""
        if attention_mask is None:
            return None
        mask = attention_mask.data if isinstance(attention_mask, Tensor) else np.asarray(attention_mask)
        if mask.shape != tuple(shape):
            raise ValueError(f"TinyGPT: attention_mask must have the shape of {what} {tuple(shape)}, got {mask.shape}")
        if mask.dtype != np.bool_ and not np.isin(mask, (0, 1)).all():
            raise ValueError("TinyGPT: attention_mask must hold 1 (token) and 0 (padding) only")
        mask = mask.astype(bool, copy=False)
        return None if mask.all() else mask

    def forward(self, ids: Any, kv_caches: list[KVCache] | None = None, attention_mask: Any = None) -> Tensor:
        if kv_caches is not None:
            return Tensor(self.infer(ids, kv_caches, attention_mask))
        ids = self._check_ids(ids)
        mask = self._check_mask(attention_mask, ids.shape)
        positions = None if mask is None else position_ids(mask)
        x = self.drop(self.wpe(self.wte(ids), positions=positions))  # (B, T, C): token + position
        for block in self.blocks:
            x = block(x, attention_mask=mask)
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

    def infer(self, ids: Any, kv_caches: list[KVCache], attention_mask: Any = None, *,
              last_only: bool = False) -> np.ndarray:
        """Logits (B, T, V) for ``ids`` that follow the cached tokens, as a NumPy array.

        The graph-free path generation uses: plain NumPy on the same weights (no Function
        dispatch, no graph), equal to ``forward`` on the whole sequence to float32 rounding.

        Args:
            ids: (B, T) integer token ids that follow the ``kv_caches[0].length`` cached ones.
            kv_caches: one cache per block (from `new_cache`); the new keys and values are
                appended to them.
            attention_mask: (B, length + T) padding mask over the cached and the new tokens
                (1 token, 0 padding), or None.
            last_only: compute the logits of the last token only (B, 1, V): the output head
                is the largest matrix, and generation needs no more.

        Returns:
            (B, T, vocab_size) logits array ((B, 1, vocab_size) with ``last_only``).

        >>> model = TinyGPT(vocab_size=10, d_model=16, num_heads=2, num_layers=1, max_seq_len=8)
        >>> caches = model.new_cache()
        >>> model.infer(np.array([[1, 2, 3]]), caches).shape, caches[0].length
        ((1, 3, 10), 3)
        """
        if len(kv_caches) != len(self.blocks):
            raise ValueError(f"TinyGPT.infer: expected {len(self.blocks)} caches, got {len(kv_caches)}")
        start = kv_caches[0].length
        ids = self._check_ids(ids, start)
        mask = self._check_mask(attention_mask, (ids.shape[0], start + ids.shape[1]), "cached + new ids")
        positions = None if mask is None else position_ids(mask)[:, start:]
        x = self.wpe.infer(self.wte.weight.data[ids], start, positions)  # (B, T, C)
        for block, cache in zip(self.blocks, kv_caches):
            x = block.infer(x, cache, mask)
        if last_only:
            x = x[:, -1:]
        return linear_infer(layer_norm_infer(x, self.ln_f), self.lm_head)  # (B, T, vocab_size)

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
        mask = self._check_mask(attention_mask, arr.shape)
        if mask is not None:
            full = np.ones(out.shape, dtype=bool)
            full[:, :n] = mask
            mask = full
        start = max(0, n - ctx)

        def window_mask(end: int) -> np.ndarray | None:
            if mask is None:
                return None
            if not mask[:, start:end].any(axis=1).all():
                raise ValueError("generate: a row of attention_mask has no token in the context window")
            return mask[:, start:end]

        window_mask(n)
        was_training = self.training
        self.eval()
        limit = thread_limit(1) if use_cache and B <= 4 and self._decodes_faster_on_one_thread() else contextlib.nullcontext()
        try:
            with limit:
                caches = self.new_cache(B) if use_cache else None
                if use_cache:
                    logits = self.infer(out[:, start:n], caches, window_mask(n), last_only=True)[:, -1]
                for step in range(max_new_tokens):
                    if not use_cache:
                        logits = self._logits_no_cache(out[:, start:n], window_mask(n))
                    out[:, n] = sample_next(logits, temperature, top_k, top_p, rng)
                    n += 1
                    if n - start > ctx:  # window full: slide it
                        start = n - keep
                        if use_cache:
                            for c in caches:
                                c.reset()
                            logits = self.infer(out[:, start:n], caches, window_mask(n), last_only=True)[:, -1]
                    elif use_cache and step < max_new_tokens - 1:
                        logits = self.infer(out[:, n - 1 : n], caches, window_mask(n))[:, -1]
        finally:
            self.train(was_training)
        return out

    def _decodes_faster_on_one_thread(self) -> bool:
        # Batch-1 decoding multiplies one row by each weight matrix. With weights that fit in
        # the caches one BLAS thread is faster than two (measured 333 -> 700+ tokens/s for the
        # 3.2M-parameter model on 2 cores); a model whose weights stream from memory every token
        # (GPT-2 124M: 498 MB) is bandwidth-bound, and two threads read faster than one.
        return self.num_parameters() * self.wte.weight.dtype.itemsize < _ONE_THREAD_DECODE_BYTES

    def train(self, mode: bool = True) -> TinyGPT:
        """Training mode (``mode=True``) or eval mode; returns self.

        Training puts every weight back in C order first (once: a no-op afterwards).
        `from_pretrained` lays a Linear's weights out as (in, out) arrays, which batch-1 decoding
        reads fastest; in training that layout doubled the step time (GPT-2 124M at batch 4 x 128:
        5.9 s against 2.8 s), since the gradients and the optimizer's moments are C-ordered.

        Args:
            mode: True for training, False for eval.

        Returns:
            ``self``.

        >>> model = TinyGPT(vocab_size=10, d_model=16, num_heads=2, num_layers=1)
        >>> model.eval().training, model.train().training
        (False, True)
        """
        if mode:
            for param in self.parameters():
                if not param.data.flags.c_contiguous:
                    param.data = np.ascontiguousarray(param.data)
        return super().train(mode)

    def _logits_no_cache(self, ids: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        with no_grad():
            return self.forward(ids, attention_mask=mask).data[:, -1]

    def extra_repr(self) -> str:
        return f"params={self.num_parameters():,}"


@contextlib.contextmanager
def _skip_core_init():
    """Core layers draw their default init in ``__init__``; a loader overwrites every array anyway.

    As transformers' ``no_init_weights``: the ``tinytorch.core.nn.init`` fill functions are
    no-ops while the model is built, so its ``np.empty`` parameters are never touched (no
    memory, no float64 samples: building GPT-2 124M this way takes no time and no RSS, against
    1.2 GB peak and 3 s with the init). Not thread-safe, like its model.
    """
    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(init, n) for n in names}
    try:
        for n in names:
            setattr(init, n, lambda t, *args, **kwargs: t)
        yield
    finally:
        for n, fn in saved.items():
            setattr(init, n, fn)


_ONE_THREAD_DECODE_BYTES = 64 * 2**20  # measured on this 2-core machine, see _decodes_faster_on_one_thread


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


__all__ = ["TinyGPT", "GPTConfig", "tinygpt_factory", "position_ids"]
