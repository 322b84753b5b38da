"""How language's layers take part in structured shrinking (core's ``prune.shrink``).

An attention head is the group of its q, k and v rows in the packed ``qkv`` projection and its
columns of the output projection ``proj``: removing a head removes all four, and the block
still maps (B, T, C) to (B, T, C) with ``num_heads`` one smaller (each head keeps its size hs,
so the 1/√hs scale is unchanged). The MLP's hidden neurons are the rows of ``fc`` and the
columns of ``proj`` (GELU and ReLU map 0 to 0, so a masked neuron contributes nothing).

>>> import numpy as np
>>> from tinytorch.core import Tensor
>>> from tinytorch.core.nn.utils import prune
>>> attn = MultiHeadAttention(d_model=16, num_heads=4)
>>> prune.shrink(attn, Tensor(np.zeros((1, 3, 16), dtype=np.float32)), amount=0.5)
[{'group': '', 'before': 4, 'after': 2}]
>>> attn.num_heads, attn.qkv.weight.shape, attn.proj.weight.shape
(2, (24, 16), (16, 8))
"""

from __future__ import annotations

import numpy as np

from tinytorch.core.nn.utils import prune

from .model import MLP, MultiHeadAttention

__all__: list[str] = []


def _head_groups(name: str, attn: MultiHeadAttention) -> list[prune.StructuredGroup]:
    hs = attn.head_size

    def qkv_rows(heads: np.ndarray) -> np.ndarray:
        # packed layout: q of every head, then k, then v; head h owns rows h·hs ... h·hs + hs - 1
        width = attn.num_heads * hs
        cols = (heads[:, None] * hs + np.arange(hs)).reshape(-1)
        return np.concatenate([part * width + cols for part in range(3)])

    def proj_cols(heads: np.ndarray) -> np.ndarray:
        return (heads[:, None] * hs + np.arange(hs)).reshape(-1)

    slices = [prune.ChannelSlice(attn.qkv, "weight", 0, qkv_rows),
              prune.ChannelSlice(attn.proj, "weight", 1, proj_cols)]
    if attn.qkv.bias is not None or "bias_orig" in attn.qkv._parameters:
        slices.append(prune.ChannelSlice(attn.qkv, "bias", 0, qkv_rows))
    return [prune.StructuredGroup(name, attn.num_heads, slices, scored=slices[:2],
                                  sizes=[(attn, "num_heads", 1), (attn.qkv, "out_features", 3 * hs),
                                         (attn.proj, "in_features", hs)])]


def _neuron_groups(name: str, mlp: MLP) -> list[prune.StructuredGroup]:
    return [prune.channel_group(f"{name}.fc" if name else "fc", mlp.fc, mlp.proj)]


prune.register_structure(MultiHeadAttention, _head_groups)
prune.register_structure(MLP, _neuron_groups)
