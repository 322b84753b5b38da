"""TinyGPT and GPT-2 (from_pretrained) decoding with weight-only quantized Linear layers."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import io, manual_seed, nn, no_grad
from tinytorch.core.quantization import (
    Int4WeightOnlyConfig,
    Int8WeightOnlyConfig,
    Int8WeightOnlyLinear,
    load_quantized,
    quantize_,
    save_quantized,
)
from tinytorch.language import TinyGPT

SMALL = {"vocab_size": 50, "d_model": 64, "num_heads": 4, "num_layers": 2, "max_seq_len": 24}


def _model():
    manual_seed(0)
    return TinyGPT(**SMALL).eval()


@pytest.mark.parametrize("config", [Int8WeightOnlyConfig(), Int4WeightOnlyConfig(group_size=32)])
def test_kv_cache_decoding_equals_recomputing(config):
    model = _model()
    quantize_(model, config)
    ids = np.array([[3, 1, 4, 1, 5]])
    # 30 new tokens overflow the context of 24: the window slides and the cache is rebuilt
    cached = model.generate(ids, 30, temperature=0)
    recomputed = model.generate(ids, 30, temperature=0, use_cache=False)
    np.testing.assert_array_equal(cached, recomputed)
    caches = model.new_cache()
    with no_grad():
        step_by_step = [model(ids[:, :3], caches).data[0, -1]]
        step_by_step += [model(ids[:, t:t + 1], caches).data[0, -1] for t in range(3, 5)]
        whole = model(ids).data[0, 2:]
    np.testing.assert_allclose(np.stack(step_by_step), whole, rtol=1e-4, atol=1e-5)
    assert caches[0].k.dtype == np.float32


def test_train_and_eval_leave_quantized_modules_working():
    model = _model()
    quantize_(model, Int8WeightOnlyConfig(), filter_fn=lambda m, name: "mlp" in name)
    ids = np.array([[1, 2, 3]])
    with no_grad():
        before = model(ids).data
    model.train()
    model.eval()  # decode_layout reaches the float Linears only
    assert model.blocks[0].attn.qkv.weight.data.flags.f_contiguous
    assert type(model.blocks[0].mlp.fc) is Int8WeightOnlyLinear
    with no_grad():
        np.testing.assert_array_equal(model(ids).data, before)


def test_int8_logits_close_to_float32():
    model = _model()
    ids = np.random.default_rng(0).integers(0, SMALL["vocab_size"], (2, 16))
    with no_grad():
        reference = model(ids).data
        quantize_(model, Int8WeightOnlyConfig())
        quantized = model(ids).data
    # per-row int8 of N(0, 0.02) weights: a relative error of about 1/254 per weight
    assert np.abs(quantized - reference).max() < 0.02 * np.abs(reference).max()


def test_gpt2_from_pretrained_quantized_checkpoint_round_trip(tmp_path):
    manual_seed(1)
    TinyGPT(**SMALL).save_pretrained(tmp_path / "gpt2")
    model = TinyGPT.from_pretrained(tmp_path / "gpt2")
    quantize_(model, Int8WeightOnlyConfig())
    assert model.wte.qweight is model.lm_head.qweight  # GPT-2's tied head: one int8 table
    path = tmp_path / "int8.safetensors"
    save_quantized(path, model, metadata={"config": model.config.to_dict()})
    skeleton = TinyGPT(**io.load_metadata(path)["config"], init_weights=False)
    loaded = load_quantized(skeleton, path)
    prompt = np.array([[7, 8, 9]])
    np.testing.assert_array_equal(loaded.generate(prompt, 12, temperature=0), model.generate(prompt, 12, temperature=0))
    assert not [n for n, m in loaded.named_modules() if isinstance(m, (nn.Linear, nn.Embedding)) and n != "wpe"]


@pytest.mark.parametrize("config", [Int8WeightOnlyConfig(), Int4WeightOnlyConfig()])
def test_language_checkpoint_of_a_quantized_model(tmp_path, config):
    from tinytorch.language import CharTokenizer, load_checkpoint, save_model

    tokenizer = CharTokenizer().fit("to be or not to be, that is the question")
    manual_seed(2)
    model = TinyGPT(tokenizer.vocab_size, d_model=64, num_heads=4, num_layers=1, max_seq_len=16).eval()
    quantize_(model, config)
    path = tmp_path / "lm-quantized.safetensors"
    save_model(path, model, tokenizer)
    loaded, loaded_tokenizer, _ = load_checkpoint(path)
    ids = np.array([tokenizer.encode("to be")])
    with no_grad():
        np.testing.assert_array_equal(loaded(ids).data, model(ids).data)
    assert loaded_tokenizer.vocab_size == tokenizer.vocab_size
    # an edited config is refused from the header, before a model is built
    tensors, metadata = io.load(path)
    metadata["tinytorch.language"]["config"]["d_model"] = 128
    edited = tmp_path / "edited.safetensors"
    io.save(tensors, edited, metadata={k: v for k, v in metadata.items() if not k.startswith("tinytorch.")
                                       or k in ("tinytorch.language", "tinytorch.quantization")})
    with pytest.raises(ValueError, match="does not match its weights"):
        load_checkpoint(edited)


@pytest.mark.parametrize("config", [Int8WeightOnlyConfig(), Int4WeightOnlyConfig(group_size=32)])
def test_decoding_threads_count_the_float_weights_blas_streams(config):
    # the thread policy sizes by the bytes BLAS reads from memory: a weight-only layer's narrow
    # storage is widened block by block into the cache, so it does not count (nor the tied wte)
    model = _model()
    before = model._weight_bytes()
    assert before == sum(p.data.nbytes for p in model.parameters())     # the float model: all of it
    quantize_(model, config)
    floats = sum(p.data.nbytes for p in model.parameters())              # LayerNorms, biases, wpe
    assert model._weight_bytes() == floats < before / 4
