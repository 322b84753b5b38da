"""TinyGPT.from_pretrained / save_pretrained on small random GPT-2s in Hugging Face's layout.

Every checkpoint here is written by the test itself (never a download): through our io, or byte
by byte as transformers writes it (HF names, Conv1D (in, out) weights, {"format": "pt"}).
"""

from __future__ import annotations

import json
import math
import re
import struct
import sys
import types

import numpy as np
import pytest

from tinytorch.core import io, no_grad
from tinytorch.language import TinyGPT
from tinytorch.language.pretrained import config_from_hf, from_pretrained

HF_CONFIG = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 37, "n_positions": 16,
             "n_embd": 24, "n_layer": 2, "n_head": 3, "n_inner": None, "activation_function": "gelu_new",
             "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1,
             "tie_word_embeddings": True, "task_specific_params": {"text-generation": {"do_sample": True}},
             "summary_type": "cls_index", "use_cache": True, "transformers_version": "4.57.1"}


def hf_tensors(cfg: dict, seed: int = 0, prefix: str = "transformer.", buffers: bool = True) -> dict[str, np.ndarray]:
    """A random GPT-2 state dict with transformers' names and Conv1D (in, out) weights."""
    rng = np.random.default_rng(seed)
    C, V, P = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]
    F = cfg["n_inner"] or 4 * C

    def r(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    t = {f"{prefix}wte.weight": r(V, C), f"{prefix}wpe.weight": r(P, C)}
    for i in range(cfg["n_layer"]):
        h = f"{prefix}h.{i}."
        t.update({h + "ln_1.weight": 1 + r(C, scale=0.1), h + "ln_1.bias": r(C, scale=0.1),
                  h + "attn.c_attn.weight": r(C, 3 * C), h + "attn.c_attn.bias": r(3 * C, scale=0.1),
                  h + "attn.c_proj.weight": r(C, C), h + "attn.c_proj.bias": r(C, scale=0.1),
                  h + "ln_2.weight": 1 + r(C, scale=0.1), h + "ln_2.bias": r(C, scale=0.1),
                  h + "mlp.c_fc.weight": r(C, F), h + "mlp.c_fc.bias": r(F, scale=0.1),
                  h + "mlp.c_proj.weight": r(F, C), h + "mlp.c_proj.bias": r(C, scale=0.1)})
        if buffers:  # what old GPT-2 files carry: the causal mask and its fill value
            t[h + "attn.bias"] = np.tril(np.ones((P, P), np.float32))[None, None]
            t[h + "attn.masked_bias"] = np.array(-1e4, np.float32)
    t[f"{prefix}ln_f.weight"] = 1 + r(C, scale=0.1)
    t[f"{prefix}ln_f.bias"] = r(C, scale=0.1)
    if not cfg.get("tie_word_embeddings", True):
        t["lm_head.weight"] = r(V, C)
    return t


def write_by_hand(path, tensors: dict[str, np.ndarray], metadata=None) -> None:
    """safetensors bytes as the format defines them: u64 LE header size, JSON header, raw LE data."""
    header, chunks, offset = {}, [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(chunks))


def write_hf_dir(directory, cfg=HF_CONFIG, tensors=None, **kwargs):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(cfg))
    write_by_hand(directory / "model.safetensors", tensors if tensors is not None else hf_tensors(cfg, **kwargs),
                  {"format": "pt"})
    return directory


def reference_logits(t: dict[str, np.ndarray], cfg: dict, ids: np.ndarray, prefix="transformer.") -> np.ndarray:
    """GPT-2's forward pass in float64 NumPy, straight from the HF tensors (closed form)."""
    g = {k.removeprefix(prefix): v.astype(np.float64) for k, v in t.items()}
    eps, nh = cfg["layer_norm_epsilon"], cfg["n_head"]
    act = {"gelu_new": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
           "gelu": lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))),
           "relu": lambda x: np.maximum(x, 0)}[cfg["activation_function"]]

    def ln(x, name):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * g[name + ".weight"] + g[name + ".bias"]

    B, T = ids.shape
    C = g["wte.weight"].shape[1]
    hs = C // nh
    x = g["wte.weight"][ids] + g["wpe.weight"][np.arange(T)]
    for i in range(cfg["n_layer"]):
        h = f"h.{i}."
        qkv = ln(x, h + "ln_1") @ g[h + "attn.c_attn.weight"] + g[h + "attn.c_attn.bias"]  # Conv1D: x @ W
        q, k, v = (qkv[..., j * C:(j + 1) * C].reshape(B, T, nh, hs).transpose(0, 2, 1, 3) for j in range(3))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hs)
        s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        y = (p @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        x = x + y @ g[h + "attn.c_proj.weight"] + g[h + "attn.c_proj.bias"]
        m = act(ln(x, h + "ln_2") @ g[h + "mlp.c_fc.weight"] + g[h + "mlp.c_fc.bias"])
        x = x + m @ g[h + "mlp.c_proj.weight"] + g[h + "mlp.c_proj.bias"]
    head = g["lm_head.weight"] if "lm_head.weight" in g else g["wte.weight"]
    return ln(x, "ln_f") @ head.T


def logits(model: TinyGPT, ids: np.ndarray) -> np.ndarray:
    with no_grad():
        return model(ids).data


IDS = np.random.default_rng(5).integers(0, 37, (2, 11))


@pytest.mark.parametrize("changes", [
    {},
    {"activation_function": "gelu", "layer_norm_epsilon": 1e-3},
    {"activation_function": "relu", "n_inner": 30, "tie_word_embeddings": False},
])
@pytest.mark.parametrize("prefix", ["transformer.", ""])  # GPT2LMHeadModel / GPT2Model files
def test_hand_written_file_matches_numpy_reference(tmp_path, changes, prefix):
    cfg = {**HF_CONFIG, **changes}
    tensors = hf_tensors(cfg, prefix=prefix)
    model = TinyGPT.from_pretrained(write_hf_dir(tmp_path / "m", cfg, tensors))
    expected = reference_logits(tensors, cfg, IDS, prefix)
    got = logits(model, IDS)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert model.config.activation == cfg["activation_function"]
    assert model.config.layer_norm_eps == cfg["layer_norm_epsilon"]
    assert model.config.site_dropout("attn") == 0.1 and not model.training


def test_tied_embedding_is_one_array(tmp_path):
    model = TinyGPT.from_pretrained(write_hf_dir(tmp_path / "m"))
    assert model.lm_head.weight is model.wte.weight
    arrays = [p.data for p in model.parameters()]
    total = sum(a.size for a in arrays)
    assert total == model.num_parameters()
    assert not any(np.shares_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1:])


def test_stored_tied_head_is_not_a_second_copy(tmp_path):
    tensors = hf_tensors(HF_CONFIG)
    tensors["lm_head.weight"] = tensors["transformer.wte.weight"].copy()  # some writers keep both
    model = TinyGPT.from_pretrained(write_hf_dir(tmp_path / "m", tensors=tensors))
    assert model.lm_head.weight is model.wte.weight


@pytest.mark.parametrize("tie", [True, False])
def test_round_trip_gives_identical_logits(tmp_path, tie):
    model = TinyGPT(vocab_size=37, d_model=24, num_heads=3, num_layers=2, max_seq_len=16, tie_weights=tie,
                    activation="gelu", layer_norm_eps=1e-6, d_ff=40, attn_pdrop=0.0, resid_pdrop=0.2, embd_pdrop=0.1)
    model.save_pretrained(tmp_path / "m")
    loaded = TinyGPT.from_pretrained(tmp_path / "m")
    ours, theirs = loaded.config.to_dict(), model.config.to_dict()
    assert {k: v for k, v in ours.items() if k != "dropout"} == {k: v for k, v in theirs.items() if k != "dropout"}
    assert [loaded.config.site_dropout(s) for s in ("embd", "attn", "resid")] == [0.1, 0.0, 0.2]
    theirs = dict(model.named_parameters())
    for name, param in loaded.named_parameters():  # every weight back bit for bit
        np.testing.assert_array_equal(param.data, theirs[name].data, err_msg=name)
    # The loaded weights are laid out for decoding (see pretrained._decode_layout), so BLAS
    # sums in another order: equal logits up to float32 rounding, not bit for bit.
    np.testing.assert_allclose(logits(loaded, IDS), logits(model.eval(), IDS), rtol=1e-5, atol=1e-6)
    # and back again: the second save is byte-identical (Conv1D transposed back exactly)
    loaded.save_pretrained(tmp_path / "again")
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == (tmp_path / "again" / "model.safetensors").read_bytes()


def test_save_pretrained_writes_transformers_layout(tmp_path):
    model = TinyGPT(vocab_size=37, d_model=24, num_heads=3, num_layers=2, max_seq_len=16)
    model.save_pretrained(tmp_path)
    info = io.inspect(tmp_path / "model.safetensors")
    shapes = {t.name: t.shape for t in info.tensors}
    assert "lm_head.weight" not in shapes  # tied: omitted, as transformers saves
    assert shapes["transformer.h.1.attn.c_attn.weight"] == (24, 72)  # Conv1D (in, out)
    assert shapes["transformer.h.0.mlp.c_proj.weight"] == (96, 24)
    np.testing.assert_array_equal(io.load(tmp_path / "model.safetensors")[0]["transformer.h.0.mlp.c_fc.weight"],
                                  model.blocks[0].mlp.fc.weight.data.T)
    assert io.load_metadata(tmp_path / "model.safetensors") == {"format": "pt"}
    hf = json.loads((tmp_path / "config.json").read_text())
    assert (hf["model_type"], hf["n_embd"], hf["n_head"], hf["n_layer"], hf["n_positions"], hf["vocab_size"]) == (
        "gpt2", 24, 3, 2, 16, 37)
    assert hf["activation_function"] == "gelu_new" and hf["tie_word_embeddings"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]  # no temp left


def test_save_pretrained_refuses_what_gpt2_cannot_express(tmp_path):
    with pytest.raises(ValueError, match="positional='learned' and bias=True"):
        TinyGPT(vocab_size=10, d_model=8, num_heads=2, num_layers=1, positional="sinusoidal").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="bias=False"):
        TinyGPT(vocab_size=10, d_model=8, num_heads=2, num_layers=1, bias=False).save_pretrained(tmp_path)


def test_sharded_index(tmp_path):
    tensors = hf_tensors(HF_CONFIG)
    names = list(tensors)
    directory = tmp_path / "sharded"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(HF_CONFIG))
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for shard, keys in shards.items():
        write_by_hand(directory / shard, {k: tensors[k] for k in keys}, {"format": "pt"})
    (directory / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 0}, "weight_map": {k: s for s, ks in shards.items() for k in ks}}))
    model = TinyGPT.from_pretrained(directory)
    np.testing.assert_allclose(logits(model, IDS), reference_logits(tensors, HF_CONFIG, IDS), rtol=1e-4, atol=1e-4)
    (directory / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-of-00002.safetensors"):
        TinyGPT.from_pretrained(directory)


def test_missing_unexpected_and_misshapen_tensors_are_named(tmp_path):
    tensors = hf_tensors(HF_CONFIG)
    del tensors["transformer.h.1.mlp.c_fc.bias"]
    with pytest.raises(io.CheckpointError, match=r"missing tensors \['transformer.h.1.mlp.c_fc.bias'\]"):
        TinyGPT.from_pretrained(write_hf_dir(tmp_path / "a", tensors=tensors))
    tensors = hf_tensors(HF_CONFIG)
    tensors["transformer.h.0.attn.c_attn.weight"] = tensors["transformer.h.0.attn.c_attn.weight"].T.copy()
    tensors["transformer.h.2.ln_1.weight"] = np.ones(24, np.float32)
    with pytest.raises(io.CheckpointError) as err:
        TinyGPT.from_pretrained(write_hf_dir(tmp_path / "b", tensors=tensors))
    assert "'transformer.h.0.attn.c_attn.weight' has shape (72, 24), the config needs (24, 72)" in str(err.value)
    assert "unexpected tensor 'transformer.h.2.ln_1.weight'" in str(err.value)
    untied = {**HF_CONFIG, "tie_word_embeddings": False}
    with pytest.raises(io.CheckpointError, match=r"missing tensors \['lm_head.weight'\]"):
        TinyGPT.from_pretrained(write_hf_dir(tmp_path / "c", untied, hf_tensors(HF_CONFIG)))


@pytest.mark.parametrize("key,value", [
    ("scale_attn_by_inverse_layer_idx", True), ("reorder_and_upcast_attn", True), ("add_cross_attention", True),
    ("scale_attn_weights", False), ("is_encoder_decoder", True), ("pruned_heads", {"0": [1]}),
    ("activation_function", "swish"),
])
def test_unsupported_config_settings_are_refused_by_name(key, value):
    with pytest.raises(ValueError, match=re.escape(f"{key}={json.dumps(value)}")):
        config_from_hf({**HF_CONFIG, key: value})


def test_every_refused_setting_is_named_at_once(tmp_path):
    cfg = {**HF_CONFIG, "scale_attn_by_inverse_layer_idx": True, "reorder_and_upcast_attn": True,
           "add_cross_attention": True}
    directory = write_hf_dir(tmp_path / "m", cfg, hf_tensors(HF_CONFIG))
    with pytest.raises(ValueError) as err:
        TinyGPT.from_pretrained(directory)
    message = str(err.value)
    assert str(directory / "config.json") in message
    for key in ("scale_attn_by_inverse_layer_idx=true", "reorder_and_upcast_attn=true", "add_cross_attention=true"):
        assert key in message
    with pytest.raises(ValueError, match="model_type must be 'gpt2', got 'llama'"):
        config_from_hf({**HF_CONFIG, "model_type": "llama"})
    # the supported values of those keys, and harmless keys, are fine
    ok = config_from_hf({**HF_CONFIG, "scale_attn_weights": True, "reorder_and_upcast_attn": False,
                         "pruned_heads": {}, "bos_token_id": 0, "n_ctx": 16, "summary_use_proj": True})
    assert (ok.d_model, ok.num_heads, ok.num_layers, ok.max_seq_len, ok.vocab_size) == (24, 3, 2, 16, 37)


def test_config_defaults_are_transformers_gpt2config():
    cfg = config_from_hf({"model_type": "gpt2"})
    assert (cfg.vocab_size, cfg.d_model, cfg.num_heads, cfg.num_layers, cfg.max_seq_len) == (50257, 768, 12, 12, 1024)
    assert (cfg.activation, cfg.layer_norm_eps, cfg.tie_weights, cfg.d_ff) == ("gelu_new", 1e-5, True, None)
    assert (cfg.site_dropout("embd"), cfg.site_dropout("attn"), cfg.site_dropout("resid")) == (0.1, 0.1, 0.1)


def test_old_tinygpt_config_keeps_its_behaviour(tmp_path):
    old = {"vocab_size": 37, "d_model": 24, "num_heads": 3, "num_layers": 2, "max_seq_len": 16, "dropout": 0.0,
           "bias": True, "positional": "learned", "tie_weights": True, "d_ff": None}  # as saved before issue 14
    model = TinyGPT.from_config(old)
    assert (model.config.activation, model.config.layer_norm_eps) == ("gelu_new", 1e-5)
    assert all(model.config.site_dropout(s) == 0.0 for s in ("embd", "attn", "resid"))
    model.save_pretrained(tmp_path)  # the tanh GELU and eps 1e-5 it always had
    tensors, _ = io.load(tmp_path / "model.safetensors")
    hf = json.loads((tmp_path / "config.json").read_text())
    np.testing.assert_allclose(logits(model.eval(), IDS), reference_logits(tensors, hf, IDS), rtol=1e-4, atol=1e-5)


def test_not_a_directory_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        TinyGPT.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        TinyGPT.from_pretrained(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text(json.dumps(HF_CONFIG))
    (tmp_path / "empty" / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(FileNotFoundError, match=r"neither model.safetensors .*pytorch_model.bin.*never pickles"):
        TinyGPT.from_pretrained(tmp_path / "empty")


def test_hub_name_without_huggingface_hub_says_how_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(FileNotFoundError) as err:
        from_pretrained("gpt2")
    message = str(err.value)
    assert "\n" not in message
    assert "pip install 'tinytorch-language[hub]'" in message
    assert "config.json and model.safetensors" in message and "https://huggingface.co/gpt2/tree/main" in message


def test_hub_name_offline_fails_in_one_line(monkeypatch, tmp_path):
    calls = []

    def snapshot_download(name, allow_patterns):
        calls.append((name, allow_patterns))
        raise OSError("We couldn't connect to 'https://huggingface.co'.\nCheck your connection.")

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=snapshot_download))
    with pytest.raises(FileNotFoundError) as err:
        from_pretrained("openai-community/gpt2")
    message = str(err.value)
    assert "\n" not in message and "couldn't connect" in message
    assert "put config.json and model.safetensors" in message
    assert "https://huggingface.co/openai-community/gpt2/tree/main" in message
    assert calls[0][0] == "openai-community/gpt2" and "model.safetensors" in calls[0][1]

    # online: the snapshot directory it returns is loaded
    write_hf_dir(tmp_path / "snap")
    monkeypatch.setitem(sys.modules, "huggingface_hub",
                        types.SimpleNamespace(snapshot_download=lambda name, allow_patterns: str(tmp_path / "snap")))
    assert from_pretrained("gpt2").config.vocab_size == 37


@pytest.mark.parametrize("float_dtype", ["bfloat16", "float16"])
def test_half_precision_checkpoints_load_as_float32(tmp_path, float_dtype):
    tensors = hf_tensors(HF_CONFIG, buffers=False)
    directory = write_hf_dir(tmp_path / "m", tensors=tensors)
    io.save(tensors, directory / "model.safetensors", float_dtype=float_dtype)  # as current checkpoints ship
    narrowed, _ = io.load(directory / "model.safetensors")
    model = TinyGPT.from_pretrained(directory)
    assert all(p.dtype == np.float32 for p in model.parameters())
    expected = reference_logits({k: v.astype(np.float32) for k, v in narrowed.items()}, HF_CONFIG, IDS)
    np.testing.assert_allclose(logits(model, IDS), expected, rtol=1e-4, atol=1e-4)


def test_loaded_weights_are_laid_out_for_decoding_until_training(tmp_path):
    model = TinyGPT.from_pretrained(write_hf_dir(tmp_path / "m"))
    before = logits(model, IDS)
    qkv = model.blocks[0].attn.qkv.weight
    assert qkv.data.T.flags.c_contiguous and model.wte.weight.data.T.flags.c_contiguous  # (in, out) rows
    model.train()
    assert all(p.data.flags.c_contiguous for p in model.parameters())
    assert model.lm_head.weight is model.wte.weight and model.blocks[0].attn.qkv.weight is qkv
    np.testing.assert_allclose(logits(model.eval(), IDS), before, rtol=1e-5, atol=1e-6)


def test_dropout_overrides_for_fine_tuning_and_nothing_else(tmp_path):
    directory = write_hf_dir(tmp_path / "m")  # the file's dropouts: 0.1 at every site
    model = from_pretrained(directory, dropout=0.0)
    assert [model.config.site_dropout(s) for s in ("embd", "attn", "resid")] == [0.0, 0.0, 0.0]
    assert model.drop.p == 0.0 and model.blocks[0].attn.dropout_p == 0.0
    assert from_pretrained(directory, attn_pdrop=0.2).config.site_dropout("attn") == 0.2
    with pytest.raises(ValueError, match=r"cannot override \['n_layer'\]"):
        from_pretrained(directory, n_layer=3)
