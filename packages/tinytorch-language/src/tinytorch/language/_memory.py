"""Whether a model size asked for on the command line can fit in this machine's memory, checked
before any work (``--layers 1000000`` used to fail after minutes, or as a 58 TiB MemoryError;
``--sample 10**12`` only after training).

The estimates are lower bounds, so a refusal is certain and anything that might fit is let
through: training holds, in float32, the weights, their gradients and AdamW's two moments (16
bytes per parameter) plus the activations one step saves for backward (per layer and token
at least the LayerNorm outputs, q/k/v, the attention output and the MLP's hidden layer before
and after its activation: 6·d_model + 2·d_ff floats, plus the heads·T attention weights; then
the logits). Generating N tokens holds at least the (1, T + N) int64 array of ids. They are
compared with the physical memory (``os.sysconf``; where that is unknown nothing is refused).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

from .checkpoint_checks import expected_state_shapes

GENERATED_TOKEN_BYTES = 8  # one int64 id in the output array


def physical_memory_bytes() -> int | None:
    """This machine's physical memory, or None where ``os.sysconf`` cannot tell.

    >>> physical_memory_bytes() is None or physical_memory_bytes() > 2**20
    True
    """
    try:
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * page if pages > 0 and page > 0 else None


def parameter_count(vocab_size: int, d_model: int, num_layers: int, max_seq_len: int) -> int:
    """TinyGPT's parameters (tied head, learned positions, biases), from
    `expected_state_shapes` of one and two layers, without listing every layer.

    >>> from tinytorch.language import TinyGPT
    >>> parameter_count(65, 32, 3, 16) == TinyGPT(65, 32, 2, 3, 16).num_parameters()
    True
    """
    def total(layers: int) -> int:
        shapes = expected_state_shapes({"vocab_size": vocab_size, "d_model": d_model, "num_heads": 1,
                                        "num_layers": layers, "max_seq_len": max_seq_len})
        shapes.pop("lm_head.weight")  # tied: the embedding itself
        return sum(math.prod(s) for s in shapes.values())

    one = total(1)
    return one + (num_layers - 1) * (total(2) - one)


def training_bytes(vocab_size: int, d_model: int, heads: int, num_layers: int, context: int,
                   batch_size: int) -> int:
    """A lower bound of the memory one training step of TinyGPT needs (see the module text).

    >>> training_bytes(65, 128, 4, 4, 64, 12) > 16 * parameter_count(65, 128, 4, 64)
    True
    """
    tokens = batch_size * context
    activations = num_layers * tokens * (6 * d_model + 2 * 4 * d_model + heads * context) + tokens * vocab_size
    return 16 * parameter_count(vocab_size, d_model, num_layers, context) + 4 * activations


def largest_fitting(needs: Callable[[int], int], given: int, memory: int) -> int:
    """The largest value v <= ``given`` with ``needs(v) <= memory`` (0 if not even 1 fits), for a
    ``needs`` that grows with v.

    >>> largest_fitting(lambda n: 8 * n, 10**20, 800)
    100
    """
    low, high = 0, given
    while low < high:
        mid = (low + high + 1) // 2
        if needs(mid) <= memory:
            low = mid
        else:
            high = mid - 1
    return low


def format_bytes(n: float) -> str:
    """``n`` bytes in the largest binary unit that keeps it >= 1.

    >>> format_bytes(3 * 2**40)
    '3.0 TiB'
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")
