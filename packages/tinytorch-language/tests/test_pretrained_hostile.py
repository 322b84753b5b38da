"""Hostile GPT-2 directories (issue 21 §3): a config, index or weight file edited to hang, flood,
exhaust memory or escape the directory fails fast, in a few lines, naming the file and key."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from tinytorch.core import io
from tinytorch.language import TinyGPT
from tinytorch.language.pretrained import from_pretrained, save_pretrained


@pytest.fixture
def gpt2_dir(tmp_path):
    """A tiny GPT-2 in Hugging Face's layout (2 layers, untied head)."""
    model = TinyGPT(vocab_size=11, d_model=8, num_heads=2, num_layers=2, max_seq_len=6, tie_weights=False)
    directory = tmp_path / "model"
    save_pretrained(model, directory)
    return directory


def _edit_config(directory, **changes):
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize("key, value", [("n_layer", 20_000), ("n_positions", 10**12), ("n_embd", 2**40),
                                        ("n_inner", 2**40), ("vocab_size", 10**15)])
def test_a_config_larger_than_its_weights_fails_before_building_anything(gpt2_dir, key, value):
    # n_layer 20000 took 17-21 s and 713 MB, then printed 8,985,920 characters; n_positions 1e12
    # and n_embd 2**40 raised MemoryError (58.2 TiB).
    _edit_config(gpt2_dir, **{key: value, **({"n_head": 1} if key == "n_embd" else {})})
    with pytest.raises(io.CheckpointError) as err:
        from_pretrained(gpt2_dir)
    message = str(err.value)
    assert len(message) < 600 and str(value) in message, message
    if key == "n_layer":
        assert message.startswith(str(gpt2_dir / "config.json")) and "the weights hold 2 layers" in message


def test_a_long_list_of_missing_tensors_names_the_first_few_and_the_count(gpt2_dir):
    tensors, _ = io.load(gpt2_dir / "model.safetensors")
    kept = {k: v for k, v in tensors.items() if not k.startswith("transformer.h.1.")}
    kept.update({k: v for k, v in tensors.items() if k.startswith("transformer.h.1.ln_1")})  # layer 1 exists
    io.write_safetensors(gpt2_dir / "model.safetensors", kept, {"format": "pt"})
    with pytest.raises(io.CheckpointError, match=r"missing tensors \['transformer.h.1.attn.c_proj.bias', .* and 5 "
                                                  r"more \(10 in all\)\]$"):
        from_pretrained(gpt2_dir)


@pytest.mark.parametrize("key, value, expected", [
    ("tie_word_embeddings", "false", "tie_word_embeddings must be true or false, got 'false'"),
    ("n_layer", 2.0, "n_layer must be an integer, got 2.0"),
    ("n_head", True, "n_head must be an integer, got True"),
    ("n_inner", "32", "n_inner must be an integer or null, got '32'"),
    ("layer_norm_epsilon", "1e-5", "layer_norm_epsilon must be a number, got '1e-5'"),
    ("activation_function", ["gelu"], "activation_function must be a string, got ['gelu']"),
])
def test_config_values_of_the_wrong_type_are_errors_naming_the_key(gpt2_dir, key, value, expected):
    # "tie_word_embeddings": "false" silently tied an untied model
    path = _edit_config(gpt2_dir, **{key: value})
    with pytest.raises(ValueError, match=f"^{path}: " + expected.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        from_pretrained(gpt2_dir)


@pytest.mark.parametrize("name", ["config.json", "index"])
@pytest.mark.parametrize("hostile", ["nested", "long_number"])
def test_hostile_json_names_the_file(gpt2_dir, name, hostile):
    if name == "index":
        (gpt2_dir / "model.safetensors").rename(gpt2_dir / "model-00001-of-00001.safetensors")
        path = gpt2_dir / "model.safetensors.index.json"
    else:
        path = gpt2_dir / "config.json"
    if hostile == "nested":
        path.write_text('{"weight_map": ' + "[" * 200_000)
        match = f"{path}: its JSON is nested too deeply to read"
    elif name == "index":
        path.write_text('{"weight_map": {"wte.weight": ' + "1" * 5000 + "}}")
        match = f"{path}: not a safetensors index"
    else:
        path.write_text('{"n_layer": ' + "1" * 5000 + "}")
        match = f"{path}: n_layer must be an integer, got a 5000-digit number"
    with pytest.raises(ValueError, match=match.replace(".", r"\.")):
        from_pretrained(gpt2_dir)


@pytest.mark.parametrize("shard", ["../outside/x.safetensors", "/abs/x.safetensors", "sub/../../x.safetensors",
                                   "..\\x.safetensors"])
def test_an_index_cannot_name_weights_outside_the_model_directory(tmp_path, gpt2_dir, shard):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(gpt2_dir / "model.safetensors", outside / "x.safetensors")
    if shard.startswith("/"):
        shard = str(outside / "x.safetensors")
    names = list(io.tensor_shapes(gpt2_dir / "model.safetensors"))
    (gpt2_dir / "model.safetensors").unlink()
    (gpt2_dir / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {n: shard for n in names}}))
    with pytest.raises(io.CheckpointError, match="outside the model directory"):
        from_pretrained(gpt2_dir)


def test_symlinked_shards_inside_the_directory_still_load(tmp_path, gpt2_dir):
    # the Hugging Face cache: snapshots/<rev>/model.safetensors -> ../../blobs/<hash>
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (gpt2_dir / "model.safetensors").rename(blobs / "abc123")
    os.symlink(blobs / "abc123", gpt2_dir / "model-00001-of-00001.safetensors")
    names = list(io.tensor_shapes(blobs / "abc123"))
    (gpt2_dir / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {n: "model-00001-of-00001.safetensors" for n in names}}))
    assert from_pretrained(gpt2_dir).config.num_layers == 2


def test_a_non_finite_weight_is_an_error_naming_the_tensor(gpt2_dir):
    # one NaN tensor made `generate --pretrained` print "!!!!!!!!" and exit 0
    tensors, _ = io.load(gpt2_dir / "model.safetensors")
    tensors["transformer.h.1.mlp.c_proj.weight"][3, 2] = np.nan
    io.write_safetensors(gpt2_dir / "model.safetensors", tensors, {"format": "pt"})
    with pytest.raises(io.CheckpointError, match=r"model.safetensors: tensor 'transformer.h.1.mlp.c_proj.weight' "
                                                 r"holds 1 non-finite values"):
        from_pretrained(gpt2_dir)


def test_save_pretrained_refuses_non_finite_weights_and_keeps_the_good_file(tmp_path):

    model = TinyGPT(vocab_size=11, d_model=8, num_heads=2, num_layers=1, max_seq_len=6)
    model.save_pretrained(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in ("model.safetensors", "config.json")}
    model.blocks[0].mlp.fc.weight.data[1, 2] = np.nan
    with pytest.raises(FloatingPointError, match="blocks.0.mlp.fc.weight"):
        model.save_pretrained(tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
