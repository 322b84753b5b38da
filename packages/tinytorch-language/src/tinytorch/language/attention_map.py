"""Where each token looks: a TinyGPT's attention weights over a prompt, as heat maps.

``attention_maps`` runs the model once on the prompt with ``need_weights=True`` and returns the
weights of every block (averaged over the heads, or per head); ``plot_attention`` draws them,
one panel per block (or per block and head), queries down and keys across, each axis labelled
with the prompt's tokens (``tito language attention``). Row t of a panel is a distribution over
tokens 0..t: a causal model never looks ahead, so the upper triangle is empty.

>>> from tinytorch.language import CharTokenizer, TinyGPT
>>> tok = CharTokenizer().fit("to be or not")
>>> model = TinyGPT(tok.vocab_size, d_model=16, num_heads=2, num_layers=2, max_seq_len=16)
>>> labels, maps = attention_maps(model, tok, "to be")
>>> labels, maps.shape  # (blocks, T queries, T keys)
(['t', 'o', '␣', 'b', 'e'], (2, 5, 5))
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tinytorch.core import no_grad
from tinytorch.core.checks import check_int

from .model import TinyGPT
from .tokenizers import Tokenizer

# What whitespace looks like on an axis: visible, one character wide
VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


def token_labels(tokenizer: Tokenizer, ids: list[int]) -> list[str]:
    """One readable label per token id: its text, whitespace made visible.

    >>> from tinytorch.language import CharTokenizer
    >>> token_labels(CharTokenizer().fit("a b\\n"), [0, 2, 1, 3])
    ['↵', 'a', '␣', 'b']
    """
    return ["".join(VISIBLE.get(ch, ch) for ch in tokenizer.decode([i])) or "∅" for i in ids]


def attention_maps(model: TinyGPT, tokenizer: Tokenizer, prompt: str,
                   average_heads: bool = True) -> tuple[list[str], np.ndarray]:
    """The attention weights of every block of ``model`` over ``prompt``.

    Args:
        model: a ``TinyGPT`` (put in eval mode for the call: no dropout on the weights).
        tokenizer: the model's tokenizer.
        prompt: the text; at most ``max_seq_len`` tokens.
        average_heads: the mean over the heads (True), or every head.

    Returns:
        (token labels, weights): (L, T, T) float32, or (L, nh, T, T) per head.

    >>> from tinytorch.language import CharTokenizer
    >>> tok = CharTokenizer().fit("abc")
    >>> model = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=1, max_seq_len=4)
    >>> labels, heads = attention_maps(model, tok, "cab", average_heads=False)
    >>> labels, heads.shape, bool(np.allclose(heads.sum(-1), 1))
    (['c', 'a', 'b'], (1, 2, 3, 3), True)
    """
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("attention_maps: the prompt is empty; give at least one token")
    if len(ids) > model.config.max_seq_len:
        raise ValueError(f"attention_maps: the prompt is {len(ids)} tokens long; the model's context is "
                         f"{model.config.max_seq_len} tokens (shorten the prompt)")
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            _, weights = model(np.asarray([ids]), need_weights=True, average_attn_weights=average_heads)
    finally:
        model.train(was_training)
    return token_labels(tokenizer, ids), np.stack([w.data[0] for w in weights])


def plot_attention(model: TinyGPT, tokenizer: Tokenizer, prompt: str, path: str | Path | None = None,
                   layer: int | None = None, per_head: bool = False, title: str | None = None) -> Any:
    """Heat maps of the attention weights over ``prompt``: queries (rows) against keys (columns).

    Args:
        model: a ``TinyGPT``.
        tokenizer: its tokenizer.
        prompt: the text; at most ``max_seq_len`` tokens.
        path: also write the figure there (``.png`` or ``.svg``).
        layer: only this block (0-based); None: every block.
        per_head: a panel per head (a row of panels per block) instead of the heads' mean.
        title: the figure's title.

    Returns:
        The matplotlib Figure (Jupyter shows it inline).

    >>> from tinytorch.language import CharTokenizer
    >>> tok = CharTokenizer().fit("abc")
    >>> model = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=2, max_seq_len=4)
    >>> [ax.get_title() for ax in plot_attention(model, tok, "cab").axes if ax.images]
    ['block 0', 'block 1']
    """
    from tinytorch.core.viz import check_figure_path, new_figure, save_figure

    if path is not None:
        check_figure_path(path)
    blocks = len(model.blocks)
    if layer is not None:
        check_int("plot_attention", "layer", layer, minimum=0, maximum=blocks - 1)
    labels, maps = attention_maps(model, tokenizer, prompt, average_heads=not per_head)
    chosen = range(blocks) if layer is None else [layer]
    panels = [(f"block {b}" + (f", head {h}" if per_head else ""), maps[b, h] if per_head else maps[b])
              for b in chosen for h in (range(maps.shape[1]) if per_head else [None])]
    T = len(labels)
    cols = maps.shape[1] if per_head else min(len(panels), 2 if T > 24 else 4)
    rows = math.ceil(len(panels) / cols)
    side = max(2.4, 0.2 * T)  # inches per panel: about 0.2 inch (14 points) per token
    widest = max(len(s) for s in labels)
    margin = 0.25 + 0.08 * widest  # room for the token labels
    fig = new_figure(cols * (side + margin) + 1.0, rows * (side + margin) + 0.8)
    axes = fig.subplots(rows, cols, squeeze=False)
    size = min(9.0, max(4.0, side * 72 / T * 0.7))  # a label no taller than its cell
    image = None
    for i, ax in enumerate(axes.flat):
        if i >= len(panels):
            ax.set_visible(False)
            continue
        name, weights = panels[i]
        image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(T))
        ax.set_yticks(range(T))
        # the keys' labels under the bottom panels, the queries' beside the left ones
        ax.set_xticklabels(labels if i + cols >= len(panels) else [], fontsize=size,
                           rotation=90 if widest > 1 else 0)  # words stand up; characters need not
        ax.set_yticklabels(labels if i % cols == 0 else [], fontsize=size)
        ax.tick_params(length=0)
    fig.suptitle(title or f"attention over {T} tokens (rows: queries, columns: keys)", fontsize=10)
    fig.tight_layout()
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="attention weight")
    if path is not None:
        save_figure(fig, path)
    return fig


__all__ = ["attention_maps", "plot_attention", "token_labels", "VISIBLE"]
