"""GPT-2 checkpoints in Hugging Face's layout: ``TinyGPT.from_pretrained`` and ``save_pretrained``.

A Hugging Face GPT-2 directory holds ``config.json`` (``GPT2Config``) and ``model.safetensors``
(or ``model.safetensors.index.json`` naming its shards). The names map one to one onto TinyGPT's::

    transformer.wte / wpe                 -> wte / wpe
    transformer.h.N.ln_1 / ln_2           -> blocks.N.ln1 / ln2
    transformer.h.N.attn.c_attn / c_proj  -> blocks.N.attn.qkv / proj     (Conv1D: transposed)
    transformer.h.N.mlp.c_fc / c_proj     -> blocks.N.mlp.fc / proj       (Conv1D: transposed)
    transformer.ln_f                      -> ln_f
    lm_head                               -> lm_head (absent when tied to wte, as transformers saves)

HF's ``Conv1D`` stores its weight as (in, out), a Linear's transpose. The old causal-mask buffers
(``attn.bias``, ``attn.masked_bias``) are not weights and are skipped; files saved from
``GPT2Model`` have no ``transformer.`` prefix, which is accepted too. A tied output head is the
embedding array itself, never a second copy.

Every ``config.json`` setting that changes the computation and that TinyGPT does not implement
is refused by name (`UNSUPPORTED`); settings that change nothing here (``task_specific_params``,
``summary_*``, ``use_cache``, ...) are ignored.

>>> import tempfile
>>> from tinytorch.language import TinyGPT
>>> model = TinyGPT(vocab_size=10, d_model=16, num_heads=2, num_layers=1, max_seq_len=8)
>>> directory = tempfile.mkdtemp()
>>> save_pretrained(model, directory)
>>> from_pretrained(directory).config.max_seq_len
8
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from tinytorch.core import io
from tinytorch.core.checkpoint import check_finite_weights

from ._jsonfile import read_json
from .checkpoint_checks import expected_state_shapes
from .model import ACTIVATIONS, GPTConfig, TinyGPT, decode_layout

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"

# config.json key -> (the value TinyGPT computes, its default in transformers' GPT2Config).
# Any other value changes the arithmetic in a way TinyGPT does not implement.
UNSUPPORTED: dict[str, tuple[Any, Any]] = {
    "scale_attn_weights": (True, True),
    "scale_attn_by_inverse_layer_idx": (False, False),
    "reorder_and_upcast_attn": (False, False),
    "add_cross_attention": (False, False),
    "is_encoder_decoder": (False, False),
    "pruned_heads": ({}, {}),
}

# transformers' GPT2Config defaults, for keys a config.json may leave out.
_HF_DEFAULTS = {"vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12,
                "n_inner": None, "activation_function": "gelu_new", "resid_pdrop": 0.1,
                "embd_pdrop": 0.1, "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-5,
                "tie_word_embeddings": True}
# The JSON type each of those keys must have: a string "false" must not tie an untied model.
_HF_TYPES = {"vocab_size": "int", "n_positions": "int", "n_embd": "int", "n_layer": "int", "n_head": "int",
             "n_inner": "int?", "activation_function": "str", "resid_pdrop": "number", "embd_pdrop": "number",
             "attn_pdrop": "number", "layer_norm_epsilon": "number", "tie_word_embeddings": "bool",
             "model_type": "str"}
_TYPE_NAMES = {"int": "an integer", "int?": "an integer or null", "str": "a string", "number": "a number",
               "bool": "true or false"}

# TinyGPT's name for each tensor of a GPT-2 block: transformer.h.N.<key> -> blocks.N.<value>.
BLOCK_NAMES = {"ln_1": "ln1", "ln_2": "ln2", "attn.c_attn": "attn.qkv", "attn.c_proj": "attn.proj",
               "mlp.c_fc": "mlp.fc", "mlp.c_proj": "mlp.proj"}
# Hugging Face's Conv1D stores a Linear's weight transposed, as (in, out) (nanoGPT's `transposed`).
TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
_MASK_BUFFER = re.compile(r"(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)")  # old causal masks, not weights


# ---------------------------------------------------------------------------------- config


def config_from_hf(hf: dict[str, Any], source: str = "config.json") -> GPTConfig:
    """The `GPTConfig` of a Hugging Face GPT-2 ``config.json`` (as a dict).

    Args:
        hf: the parsed ``config.json``; missing keys take transformers' ``GPT2Config`` defaults.
        source: named in error messages (usually the file's path).

    Returns:
        A validated ``GPTConfig`` (learned positions, biases, HF's dropout per site).

    Raises:
        ValueError: the model type is not ``gpt2``, or settings TinyGPT does not implement
            are set (every one is named with its value).

    >>> config_from_hf({"n_embd": 64, "n_head": 4, "n_layer": 2, "activation_function": "gelu"}).activation
    'gelu'
    >>> config_from_hf({"scale_attn_by_inverse_layer_idx": True})
    Traceback (most recent call last):
    ...
    ValueError: config.json: TinyGPT does not implement scale_attn_by_inverse_layer_idx=true (supported: false)
    """
    if not isinstance(hf, dict):
        raise TypeError(f"{source}: expected a JSON object, got {type(hf).__name__}")
    _check_config_types(hf, source)
    model_type = hf.get("model_type", "gpt2")
    if model_type != "gpt2":
        raise ValueError(f"{source}: model_type must be 'gpt2', got {model_type!r}")
    refused = [f"{key}={json.dumps(hf[key])} (supported: {json.dumps(ok)})"
               for key, (ok, _) in UNSUPPORTED.items() if key in hf and hf[key] != ok]
    activation = hf.get("activation_function", "gelu_new")
    if activation not in ACTIVATIONS:
        refused.append(f"activation_function={json.dumps(activation)} (supported: {', '.join(ACTIVATIONS)})")
    if refused:
        raise ValueError(f"{source}: TinyGPT does not implement " + ", ".join(refused))
    c = {**_HF_DEFAULTS, **{k: v for k, v in hf.items() if k in _HF_DEFAULTS}}
    try:
        return GPTConfig(vocab_size=c["vocab_size"], d_model=c["n_embd"], num_heads=c["n_head"],
                         num_layers=c["n_layer"], max_seq_len=c["n_positions"], dropout=c["resid_pdrop"],
                         bias=True, positional="learned", tie_weights=c["tie_word_embeddings"],
                         d_ff=c["n_inner"], activation=c["activation_function"],
                         layer_norm_eps=c["layer_norm_epsilon"], embd_pdrop=c["embd_pdrop"],
                         attn_pdrop=c["attn_pdrop"], resid_pdrop=c["resid_pdrop"])
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None


def _check_config_types(hf: dict[str, Any], source: str) -> None:
    """Every key TinyGPT reads must have its JSON type (booleans are not integers or numbers)."""
    wrong = []
    for key, kind in _HF_TYPES.items():
        if key not in hf:
            continue
        value = hf[key]
        if kind == "int?" and value is None:
            continue
        ok = {"int": isinstance(value, int), "int?": isinstance(value, int), "str": isinstance(value, str),
              "number": isinstance(value, (int, float)), "bool": isinstance(value, bool)}[kind]
        if not ok or (kind != "bool" and isinstance(value, bool)):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            wrong.append(f"{key} must be {_TYPE_NAMES[kind]}, got {shown}")
    if wrong:
        raise ValueError(f"{source}: " + "; ".join(wrong))


def read_config(directory: Path) -> GPTConfig:
    """The `GPTConfig` of ``directory/config.json``; every error names the file.

    Args:
        directory: a Hugging Face GPT-2 directory.

    Returns:
        The validated config.

    Raises:
        FileNotFoundError: there is no ``config.json``.
        ValueError: not JSON (or nested too deeply), a key of the wrong type, or a setting
            TinyGPT does not implement.

    >>> import tempfile, json
    >>> directory = Path(tempfile.mkdtemp())
    >>> _ = (directory / "config.json").write_text(json.dumps({"n_layer": 2, "tie_word_embeddings": "false"}))
    >>> read_config(directory)
    Traceback (most recent call last):
    ...
    ValueError: .../config.json: tie_word_embeddings must be true or false, got 'false'
    """
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"from_pretrained: {directory} has no {CONFIG_NAME}")
    return config_from_hf(read_json(config_path), str(config_path))


def config_to_hf(config: GPTConfig) -> dict[str, Any]:
    """The Hugging Face ``config.json`` (a dict) of a `GPTConfig`.

    Args:
        config: learned positions and biases (what GPT-2 has).

    Returns:
        A ``GPT2Config`` dict for ``GPT2LMHeadModel``.

    Raises:
        ValueError: the config has sinusoidal positions, no biases or per-block sizes (a
            structurally pruned model): GPT-2's config cannot express them.

    >>> config_to_hf(GPTConfig(d_model=64, num_heads=4))["n_embd"]
    64
    """
    if config.positional != "learned" or not config.bias:
        raise ValueError(
            "save_pretrained: GPT-2's layout needs positional='learned' and bias=True, got "
            f"positional={config.positional!r}, bias={config.bias}"
        )
    if config.layer_heads is not None or config.layer_d_ff is not None:
        raise ValueError(
            "save_pretrained: GPT-2's layout has the same heads and MLP size in every block; this model "
            f"was structurally pruned (heads per block {config.layer_heads}, MLP sizes {config.layer_d_ff}): "
            "save it with tinytorch.language.training.save_model instead"
        )
    hf = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
          "vocab_size": config.vocab_size, "n_positions": config.max_seq_len, "n_embd": config.d_model,
          "n_layer": config.num_layers, "n_head": config.num_heads, "n_inner": config.d_ff,
          "activation_function": config.activation, "layer_norm_epsilon": config.layer_norm_eps,
          "embd_pdrop": config.site_dropout("embd"), "attn_pdrop": config.site_dropout("attn"),
          "resid_pdrop": config.site_dropout("resid"), "initializer_range": 0.02,
          "scale_attn_weights": True, "use_cache": True, "tie_word_embeddings": config.tie_weights}
    if config.vocab_size == 50257:  # GPT-2's <|endoftext|>
        hf["bos_token_id"] = hf["eos_token_id"] = 50256
    return hf


# ---------------------------------------------------------------------------------- names


def hf_names(config: GPTConfig) -> dict[str, str]:
    """Every TinyGPT parameter name of ``config`` and its Hugging Face GPT-2 name.

    Args:
        config: the model's config (its ``num_layers``).

    Returns:
        ``{tinygpt_name: hf_name}`` in TinyGPT's order, ``lm_head.weight`` included.

    >>> names = hf_names(GPTConfig(num_layers=1))
    >>> names["blocks.0.attn.qkv.weight"], len(names)
    ('transformer.h.0.attn.c_attn.weight', 17)
    """
    names = {"wte.weight": "transformer.wte.weight", "wpe.weight": "transformer.wpe.weight"}
    for i in range(config.num_layers):
        for theirs, ours in BLOCK_NAMES.items():
            for kind in ("weight", "bias"):
                names[f"blocks.{i}.{ours}.{kind}"] = f"transformer.h.{i}.{theirs}.{kind}"
    names.update({"ln_f.weight": "transformer.ln_f.weight", "ln_f.bias": "transformer.ln_f.bias",
                  "lm_head.weight": "lm_head.weight"})
    return names


def _full_hf_name(name: str) -> str:
    """Files saved from ``GPT2Model`` (no head) leave out the ``transformer.`` prefix."""
    return name if name.startswith(("transformer.", "lm_head.")) else f"transformer.{name}"


def _tinygpt_to_hf(model: TinyGPT) -> dict[str, np.ndarray]:
    """The HF tensors of ``model``: Conv1D weights as (in, out), lm_head dropped when tied."""
    tensors: dict[str, np.ndarray] = {}
    params = dict(model.named_parameters())
    for name, hf_name in hf_names(model.config).items():
        if name == "lm_head.weight" and model.config.tie_weights:
            continue
        tensors[hf_name] = params[name].data.T if hf_name.endswith(TRANSPOSED) else params[name].data
    return tensors


# ---------------------------------------------------------------------------------- files


def _hub_download(name: str) -> Path:
    where = (f"put {CONFIG_NAME} and {WEIGHTS_NAME} (or {INDEX_NAME} and its shards) from "
             f"https://huggingface.co/{name}/tree/main into one directory and pass its path")
    try:
        import huggingface_hub
    except ImportError:
        raise FileNotFoundError(
            f"from_pretrained: {name!r} is not a directory, and downloading it needs huggingface_hub "
            f"(pip install 'tinytorch-language[hub]'); or {where}"
        ) from None
    try:
        return Path(huggingface_hub.snapshot_download(
            name, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, INDEX_NAME, "model-*.safetensors",
                                  "vocab.json", "merges.txt"]))  # the tokenizer, for `tito language`
    except Exception as e:  # offline, unknown repository, gated model: one line either way
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FileNotFoundError(
            f"from_pretrained: could not download {name!r} from the Hugging Face Hub ({reason}); {where}"
        ) from None


def resolve(path_or_name: str | os.PathLike) -> Path:
    """The local directory of ``path_or_name``: itself if it is a directory, else a Hub download.

    A string that looks like a path (``./x``, ``/x``, ``~/x``, or that exists as a file) is never
    sent to the Hub.

    Args:
        path_or_name: a directory, or a Hugging Face Hub repository name (``"gpt2"``,
            ``"openai-community/gpt2"``).

    Returns:
        The directory holding the checkpoint (for a name, inside huggingface_hub's cache).

    Raises:
        FileNotFoundError: not a directory, and the download failed (one line saying which
            files to put where).

    >>> import tempfile
    >>> resolve(tempfile.gettempdir()).is_dir()
    True
    """
    path = Path(path_or_name).expanduser()
    if path.is_dir():
        return path
    text = os.fspath(path_or_name)
    if path.exists() or not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", text):  # not "org/name"
        raise FileNotFoundError(
            f"from_pretrained: {text!r} is not a directory (expected one holding {CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    return _hub_download(text)


def _weight_files(directory: Path) -> list[Path]:
    single, index = directory / WEIGHTS_NAME, directory / INDEX_NAME
    if single.is_file():
        return [single]
    if index.is_file():
        weight_map = read_json(index, io.CheckpointError)
        weight_map = weight_map.get("weight_map") if isinstance(weight_map, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(s, str) for s in weight_map.values()):
            raise io.CheckpointError(f"{index}: not a safetensors index (expected a 'weight_map' object "
                                     "of tensor name -> file name)")
        shards = sorted(set(weight_map.values()))
        for shard in shards:
            _check_shard_name(index, shard)
        missing = [s for s in shards if not (directory / s).is_file()]
        if missing:
            raise FileNotFoundError(f"{index}: names shards that are not in {directory}: {missing}")
        return [directory / s for s in shards]
    others = sorted(p.name for p in directory.glob("*.bin")) + sorted(p.name for p in directory.glob("*.h5"))
    hint = f" (found {others}: TinyTorch reads safetensors only, never pickles)" if others else ""
    raise FileNotFoundError(f"from_pretrained: {directory} has neither {WEIGHTS_NAME} nor {INDEX_NAME}{hint}")


def _check_shard_name(index: Path, shard: str) -> None:
    """A shard must be a file of the model directory (or below it): a name that leaves it
    (``../x``, an absolute path) would read weights from anywhere. Symbolic links inside the
    directory stay allowed, since the Hugging Face cache is made of them."""
    parts = re.split(r"[/\\]", shard)
    if not shard or os.path.isabs(shard) or re.match(r"[A-Za-z]:", shard) or ".." in parts:
        raise io.CheckpointError(
            f"{index}: its weight_map names the file {shard!r}, which is outside the model directory; "
            "shards must be named relative to it"
        )


def _listing(names: list[str], first: int = 5) -> str:
    """The first few of ``names`` and how many there are: an error stays a line long."""
    shown = ", ".join(repr(n) for n in names[:first])
    return f"{shown} and {len(names) - first} more ({len(names)} in all)" if len(names) > first else shown


def _check_layer_count(config: GPTConfig, stored_names: list[str], config_path: Path) -> None:
    """The config must not ask for more layers than the weights hold: checked from the names
    alone, before the expected shapes of every layer are listed (n_layer 20,000 took 17 s and
    713 MB before failing)."""
    layers = {int(m[1]) for name in stored_names if (m := re.match(r"transformer\.h\.(\d+)\.", name))}
    stored = max(layers) + 1 if layers else 0
    if config.num_layers > stored:
        raise io.CheckpointError(
            f"{config_path}: n_layer is {config.num_layers}, but the weights hold {stored} layers; was "
            "the config edited?"
        )


def _check_finite(array: np.ndarray, hf_name: str, file: Path) -> None:
    """A NaN or infinity in a weight turns every output into NaN (GPT-2 then prints '!!!!')."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise io.CheckpointError(f"{file}: tensor {hf_name!r} holds {bad} non-finite values (NaN or infinity)")


#: What a caller may change of a pretrained config (nanoGPT's ``override_args``): the dropouts,
#: which only matter in training; everything else is the checkpoint's.
OVERRIDABLE = ("dropout", "embd_pdrop", "attn_pdrop", "resid_pdrop")


def from_pretrained(path_or_name: str | os.PathLike, **overrides: float) -> TinyGPT:
    """Load a Hugging Face GPT-2 checkpoint as a :class:`TinyGPT` (float32, eval mode).

    Args:
        path_or_name: a directory with ``config.json`` and ``model.safetensors`` (or a sharded
            ``model.safetensors.index.json``), or a Hub name (needs ``huggingface_hub``).
        **overrides: dropout settings to fine-tune with instead of the checkpoint's
            (``OVERRIDABLE``); ``dropout=p`` sets every site to p, as nanoGPT's ``override_args``.

    Returns:
        The model. With tied embeddings ``lm_head.weight`` is ``wte.weight`` (one array).

    Raises:
        FileNotFoundError: no such directory or files (a Hub name offline: one line saying
            which files to put where).
        ValueError: ``config.json`` asks for something TinyGPT does not implement (named).
        tinytorch.core.io.CheckpointError: a tensor is missing, unknown or of the wrong shape
            (named, with the file).

    >>> import tempfile
    >>> model = TinyGPT(vocab_size=10, d_model=16, num_heads=2, num_layers=1, max_seq_len=8)
    >>> directory = tempfile.mkdtemp()
    >>> save_pretrained(model, directory)
    >>> loaded = from_pretrained(directory)
    >>> loaded.lm_head.weight is loaded.wte.weight
    True
    """
    directory = resolve(path_or_name)
    config = read_config(directory)
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(f"from_pretrained: cannot override {unknown}; only {list(OVERRIDABLE)} (the rest is "
                         f"the checkpoint's {CONFIG_NAME})")
    if "dropout" in overrides:  # one probability for every site, unless a site is also given
        overrides = {"embd_pdrop": None, "attn_pdrop": None, "resid_pdrop": None, **overrides}
    config = GPTConfig.from_dict({**config.to_dict(), **overrides})
    # Check every name and shape from the headers alone, before building the model, then read
    # one tensor at a time: the memory needed is the model's, plus the tensor being placed.
    headers = {file: io.tensor_shapes(file) for file in _weight_files(directory)}
    _check_layer_count(config, [_full_hf_name(n) for shapes in headers.values() for n in shapes],
                       directory / CONFIG_NAME)
    expected = expected_state_shapes(config)
    tinygpt_name = {hf: ours for ours, hf in hf_names(config).items()}
    if config.tie_weights:  # the head is the embedding: a stored copy is not read
        del tinygpt_name["lm_head.weight"]
    plan: list[tuple[Path, str, str, bool]] = []  # (file, stored name, TinyGPT name, Conv1D-transposed)
    for file, shapes in headers.items():
        problems = []
        for stored, shape in shapes.items():
            hf_name = _full_hf_name(stored)
            name = tinygpt_name.get(hf_name)
            if _MASK_BUFFER.fullmatch(stored) or (name is None and hf_name == "lm_head.weight"):
                continue  # mask buffers; a tied head stored anyway is the embedding
            if name is None:
                problems.append(f"unexpected tensor {stored!r} (a GPT-2 of {config.num_layers} layers has no such name)")
                continue
            transposed = hf_name.endswith(TRANSPOSED)
            needed = expected[name][::-1] if transposed else expected[name]
            if tuple(shape) != needed:
                problems.append(f"{stored!r} has shape {tuple(shape)}, the config needs {needed}")
                continue
            plan.append((file, stored, name, transposed))
        if problems:
            more = f"; and {len(problems) - 5} more problems" if len(problems) > 5 else ""
            raise io.CheckpointError(f"{file}: " + "; ".join(problems[:5]) + more)
    missing = sorted(set(tinygpt_name.values()) - {name for _, _, name, _ in plan})
    if missing:
        hf_of = hf_names(config)
        raise io.CheckpointError(f"{directory}: missing tensors [{_listing([hf_of[n] for n in missing])}]")
    model = TinyGPT.from_config(config, init_weights=False)  # np.empty, never touched: no memory
    params = dict(model.named_parameters())
    for file, stored, name, transposed in plan:
        array = io.load(file, keys=[stored])[0][stored]
        _check_finite(array, stored, file)
        array = np.ascontiguousarray(array, dtype=np.float32)
        if transposed:
            array = array.T  # a Conv1D (in, out) weight's view is already the decode layout
        elif name == "wte.weight" and config.tie_weights:
            array = decode_layout(array)  # the head's weight: laid out now, while little is resident
        params[name].data = array
    return model.eval()


def save_pretrained(model: TinyGPT, directory: str | os.PathLike) -> None:
    """Write ``model`` as ``config.json`` + ``model.safetensors`` in Hugging Face's GPT-2 layout.

    The Conv1D weights are written (in, out), a tied ``lm_head.weight`` is left out (as
    transformers does) and the file's metadata is ``{"format": "pt"}``, so
    ``transformers.GPT2LMHeadModel.from_pretrained(directory)`` loads it. Each file is
    replaced atomically (temp file, fsync, rename); the weights are written first, so a crash
    never leaves a new config next to old weights.

    Args:
        model: a TinyGPT with learned positions and biases.
        directory: created if missing.

    Raises:
        ValueError: the model cannot be expressed as GPT-2 (see `config_to_hf`).
        FloatingPointError: a weight is NaN or infinite (named); nothing is written.

    >>> import tempfile, json, os
    >>> directory = tempfile.mkdtemp()
    >>> save_pretrained(TinyGPT(vocab_size=10, d_model=16, num_heads=2, num_layers=1), directory)
    >>> json.load(open(os.path.join(directory, "config.json")))["n_layer"]
    1
    """
    if not isinstance(model, TinyGPT):
        raise TypeError(f"save_pretrained: model must be a TinyGPT, got {type(model).__name__}")
    hf_config = config_to_hf(model.config)
    check_finite_weights(model, "save_pretrained: the model's")  # never replace good weights with NaN
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    # Streamed tensor by tensor (never the whole 498 MB file in memory), float32 as transformers reads it.
    io.write_safetensors(directory / WEIGHTS_NAME, _tinygpt_to_hf(model), {"format": "pt"}, float_dtype="float32")
    io.write_atomic(directory / CONFIG_NAME, (json.dumps(hf_config, indent=2) + "\n").encode(), "config")


__all__ = ["from_pretrained", "save_pretrained", "config_from_hf", "config_to_hf", "hf_names", "read_config",
           "resolve", "UNSUPPORTED", "BLOCK_NAMES", "TRANSPOSED"]
