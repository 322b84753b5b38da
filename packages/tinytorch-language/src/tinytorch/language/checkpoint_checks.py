"""Checks a language checkpoint must pass before a model is built from it.

A checkpoint stores a config and the weights. The model is built from the config, so a config
edited by hand (``max_seq_len: 100000000``) would allocate gigabytes before the weights are
found not to fit. These checks compare the config with the stored tensor shapes, which the
header gives without reading any data (`tinytorch.core.io.tensor_shapes`), and the tokenizer's
vocabulary with the model's, so that every failure is one clear error at load time that names
the file, not a memory error or a decoding error halfway through generation.

>>> cfg = {"vocab_size": 5, "d_model": 4, "num_heads": 2, "num_layers": 1, "max_seq_len": 8}
>>> shapes = {"model." + k: v for k, v in expected_state_shapes(cfg).items()}
>>> check_config_against_shapes("lm.safetensors", cfg, shapes).max_seq_len
8
>>> shapes["model.wpe.weight"] = (16, 4)
>>> try:
...     check_config_against_shapes("lm.safetensors", cfg, shapes)
... except ValueError as err:
...     print(str(err).splitlines()[1])
  'wpe.weight': the config needs shape (8, 4), the file stores (16, 4)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .model import GPTConfig

MAX_SINUSOIDAL_TABLE_BYTES = 1 << 30
"""Largest sinusoidal position table (float64, max_seq_len x d_model) a loaded config may ask
for: that table is computed from the config, not stored, so no stored shape bounds it."""


def _config(config: GPTConfig | Mapping[str, Any]) -> GPTConfig:
    return config if isinstance(config, GPTConfig) else GPTConfig.from_dict(dict(config))


def expected_state_shapes(config: GPTConfig | Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every entry of ``TinyGPT(config).state_dict()``, without building it.

    Args:
        config: a `GPTConfig` or its dict form (as stored in checkpoints).

    Returns:
        The names (without the checkpoint's ``model.`` prefix) and shapes.

    >>> expected_state_shapes({"vocab_size": 7, "d_model": 4, "num_heads": 2, "num_layers": 1,
    ...                        "max_seq_len": 3})["wpe.weight"]
    (3, 4)
    """
    cfg = _config(config)
    d = cfg.d_model
    shapes: dict[str, tuple[int, ...]] = {"wte.weight": (cfg.vocab_size, d)}
    if cfg.positional == "learned":
        shapes["wpe.weight"] = (cfg.max_seq_len, d)

    def add(name: str, out_features: int, in_features: int | None) -> None:
        shapes[f"{name}.weight"] = (out_features, in_features) if in_features else (out_features,)
        if cfg.bias:
            shapes[f"{name}.bias"] = (out_features,)

    for i in range(cfg.num_layers):
        block = f"blocks.{i}"
        heads, ff = cfg.block_sizes(i)  # fewer than num_heads and 4·d after structured pruning
        width = heads * cfg.head_size
        add(f"{block}.ln1", d, None)
        add(f"{block}.attn.qkv", 3 * width, d)
        add(f"{block}.attn.proj", d, width)
        add(f"{block}.ln2", d, None)
        add(f"{block}.mlp.fc", ff, d)
        add(f"{block}.mlp.proj", d, ff)
    add("ln_f", d, None)
    shapes["lm_head.weight"] = (cfg.vocab_size, d)
    return shapes


def check_config_against_shapes(
    path: str | os.PathLike,
    config: GPTConfig | Mapping[str, Any],
    shapes: Mapping[str, Any],
    prefix: str = "model.",
) -> GPTConfig:
    """Check a checkpoint's config against its stored tensor shapes, before building the model.

    Args:
        path: the checkpoint, named in the error.
        config: its stored config (dict form or `GPTConfig`).
        shapes: name -> shape of the stored tensors, e.g. ``tinytorch.core.io.tensor_shapes(path)``
            or ``{k: v.shape for k, v in state.items()}``.
        prefix: the prefix of the model's tensors in the file.

    Returns:
        The validated `GPTConfig`.

    Raises:
        ValueError: the config is invalid, a tensor the config needs is missing or has another
            shape, the file holds model tensors the config does not explain, or a sinusoidal
            config asks for a position table larger than ``MAX_SINUSOIDAL_TABLE_BYTES``; the
            message names the file, the config values and the tensors.

    >>> cfg = {"vocab_size": 5, "d_model": 4, "num_heads": 2, "num_layers": 1, "max_seq_len": 8}
    >>> shapes = {"model." + k: v for k, v in expected_state_shapes(cfg).items()}
    >>> check_config_against_shapes("lm.safetensors", cfg, shapes).max_seq_len
    8
    """
    try:
        cfg = _config(config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: invalid model config in the checkpoint: {e}") from None
    stored = {k[len(prefix):]: tuple(int(n) for n in v) for k, v in shapes.items() if k.startswith(prefix)}
    expected = expected_state_shapes(cfg)
    problems = []
    for name, shape in expected.items():
        if name not in stored:
            problems.append(f"  {name!r}: the config needs shape {shape}, the file has no such tensor")
        elif stored[name] != shape:
            problems.append(f"  {name!r}: the config needs shape {shape}, the file stores {stored[name]}")
    for name in stored:
        if name not in expected:
            problems.append(f"  {name!r} (shape {stored[name]}): stored, but the config has no such tensor")
    if problems:
        summary = ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items() if k != "dropout")
        raise ValueError(
            f"{path}: its config ({summary}) does not match its weights; was the config edited?\n"
            + "\n".join(problems)
        )
    table = cfg.max_seq_len * cfg.d_model * 8
    if cfg.positional == "sinusoidal" and table > MAX_SINUSOIDAL_TABLE_BYTES:
        raise ValueError(
            f"{path}: its config asks for max_seq_len={cfg.max_seq_len} sinusoidal positions, a "
            f"{table / 2**30:.1f} GiB table (the limit is {MAX_SINUSOIDAL_TABLE_BYTES / 2**30:.0f} GiB); "
            "was the config edited?"
        )
    return cfg


def check_vocab_sizes(path: str | os.PathLike, tokenizer_vocab_size: int, model_vocab_size: int) -> None:
    """The tokenizer and the model must have the same number of ids.

    A tokenizer with more ids than the model feeds it ids it has no embedding for; a model with
    more ids than the tokenizer samples ids the tokenizer cannot decode, which today fails only
    in the middle of generation.

    Args:
        path: the checkpoint, named in the error.
        tokenizer_vocab_size: ``tokenizer.vocab_size``.
        model_vocab_size: ``config.vocab_size``.

    Raises:
        ValueError: the sizes differ; the message names the file and both sizes.

    >>> check_vocab_sizes("lm.safetensors", 65, 65)
    >>> try:
    ...     check_vocab_sizes("lm.safetensors", 65, 70)
    ... except ValueError as err:
    ...     print(str(err).split(";")[0])
    lm.safetensors: its tokenizer has 65 ids but the model 70
    """
    if tokenizer_vocab_size == model_vocab_size:
        return
    if tokenizer_vocab_size > model_vocab_size:
        why = "the tokenizer produces ids the model has no embedding for"
    else:
        why = (f"generation would sample ids {tokenizer_vocab_size}..{model_vocab_size - 1}, which "
               "the tokenizer cannot decode")
    raise ValueError(
        f"{path}: its tokenizer has {tokenizer_vocab_size} ids but the model {model_vocab_size}; {why}"
    )


__all__ = ["expected_state_shapes", "check_config_against_shapes", "check_vocab_sizes",
           "MAX_SINUSOIDAL_TABLE_BYTES"]
