"""A TinyGPT with pruned heads and MLP neurons round-trips through a checkpoint: its config lists
each block's sizes (format 2), the loader rebuilds them, and inconsistent files are refused."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import io, manual_seed, no_grad
from tinytorch.core.nn.utils import prune
from tinytorch.core.quantization import Int8WeightOnlyConfig, quantize_
from tinytorch.language import CharTokenizer, TinyGPT
from tinytorch.language.model import GPTConfig
from tinytorch.language.training import CHECKPOINT_KEY, load_checkpoint, save_model

IDS = np.array([[1, 2, 3, 4, 5, 0]])


def _shrunk() -> tuple[TinyGPT, CharTokenizer]:
    manual_seed(0)
    tok = CharTokenizer().fit("abcdefgh")
    model = TinyGPT(tok.vocab_size, d_model=16, num_heads=4, num_layers=2, max_seq_len=8)
    rng = np.random.default_rng(0)
    for p in model.parameters():  # GPT-2's init leaves biases at zero: make every term count
        p.data[...] = rng.normal(scale=0.3, size=p.shape)
    group = next(g for g in prune.structured_groups(model, IDS) if g.name == "blocks.1.attn")
    group.shrink([0, 2, 3])  # block 1 keeps 3 heads, block 0 all 4
    next(g for g in prune.structured_groups(model, IDS) if g.name == "blocks.0.mlp.fc").shrink(np.arange(40))
    return model.eval(), tok


def test_the_config_follows_the_blocks_and_the_file_rebuilds_them(tmp_path):
    model, tok = _shrunk()
    assert (model.config.layer_heads, model.config.layer_d_ff) == ([4, 3], [40, 64])
    save_model(tmp_path / "lm.safetensors", model, tok)
    loaded, _, meta = load_checkpoint(tmp_path / "lm.safetensors")
    assert meta[CHECKPOINT_KEY]["format_version"] == 2
    assert loaded.config == model.config
    assert loaded.blocks[1].attn.qkv.weight.shape == (36, 16) and loaded.blocks[0].mlp.proj.weight.shape == (16, 40)
    with no_grad():
        np.testing.assert_array_equal(loaded(IDS).numpy(), model(IDS).numpy())
    cached = loaded.generate(IDS[:, :3], max_new_tokens=4, top_k=1)
    np.testing.assert_array_equal(cached, loaded.generate(IDS[:, :3], max_new_tokens=4, top_k=1, use_cache=False))


def test_an_unpruned_model_is_still_written_in_format_1(tmp_path):
    tok = CharTokenizer().fit("ab")
    model = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=1, max_seq_len=4)
    save_model(tmp_path / "lm.safetensors", model, tok)
    meta = io.load_metadata(tmp_path / "lm.safetensors")[CHECKPOINT_KEY]
    assert meta["format_version"] == 1 and meta["config"]["layer_heads"] is None


def test_a_shrunk_int8_model_round_trips(tmp_path):
    model, tok = _shrunk()
    quantize_(model, Int8WeightOnlyConfig())
    assert model.config.layer_heads == [4, 3]  # quantized layers keep their sizes
    save_model(tmp_path / "q.safetensors", model, tok)
    loaded, _, _ = load_checkpoint(tmp_path / "q.safetensors")
    assert type(loaded.blocks[1].attn.qkv).__name__ == "Int8WeightOnlyLinear"
    with no_grad():
        np.testing.assert_array_equal(loaded(IDS).numpy(), model(IDS).numpy())


def _rewrite(path, out, **changes):
    """``path``'s tensors under edited language metadata."""
    tensors, meta = io.load(path)
    lang = meta[CHECKPOINT_KEY]
    lang.update({k: v for k, v in changes.items() if k != "config"})
    lang["config"].update(changes.get("config", {}))
    io.save(tensors, out, metadata=meta)
    return out


def test_inconsistent_files_are_refused_naming_the_tensor(tmp_path):
    model, tok = _shrunk()
    good = tmp_path / "lm.safetensors"
    save_model(good, model, tok)
    wrong = _rewrite(good, tmp_path / "wrong.safetensors", config={"layer_heads": [4, 2]})
    with pytest.raises(ValueError, match=r"'blocks.1.attn.qkv.weight': the config needs shape \(24, 16\), "
                                         r"the file stores \(36, 16\)"):
        load_checkpoint(wrong)
    uniform = _rewrite(good, tmp_path / "uniform.safetensors", config={"layer_heads": None, "layer_d_ff": None})
    with pytest.raises(ValueError, match=r"'blocks.0.mlp.fc.weight': the config needs shape \(64, 16\), "
                                         r"the file stores \(40, 16\)"):
        load_checkpoint(uniform)
    old = _rewrite(good, tmp_path / "v1.safetensors", format_version=1)
    with pytest.raises(ValueError, match="a format-1 checkpoint cannot hold per-block sizes"):
        load_checkpoint(old)
    future = _rewrite(good, tmp_path / "v3.safetensors", format_version=3)
    with pytest.raises(ValueError, match="format version 3; this version reads formats 1, 2"):
        load_checkpoint(future)
    more = _rewrite(good, tmp_path / "more.safetensors", config={"layer_heads": [4, 5]})
    with pytest.raises(ValueError, match=r"layer_heads must be None or 2 integers .* in \[1, num_heads=4\]"):
        load_checkpoint(more)


def test_per_block_sizes_are_checked_and_gpt2_layout_refuses_them(tmp_path):
    with pytest.raises(ValueError, match="layer_d_ff must be None or 2 integers"):
        GPTConfig(d_model=16, num_heads=4, num_layers=2, layer_d_ff=[8])
    model, _ = _shrunk()
    with pytest.raises(ValueError, match="structurally pruned"):
        model.save_pretrained(tmp_path / "hf")
    assert not (tmp_path / "hf" / "model.safetensors").exists()
