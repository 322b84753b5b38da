"""TinyGPT: shapes, input validation, cached vs uncached decoding, sampling, the entry point."""

from __future__ import annotations

from importlib.metadata import entry_points

import numpy as np
import pytest

from tinytorch.core import Tensor, manual_seed, no_grad
from tinytorch.language import GPTConfig, TinyGPT, sample_next


@pytest.fixture(scope="module")
def model():
    manual_seed(0)
    m = TinyGPT(vocab_size=11, d_model=16, num_heads=2, num_layers=2, max_seq_len=12)
    m.eval()
    return m


def test_forward_shapes_and_tensor_input(model):
    ids = np.random.default_rng(0).integers(0, 11, (3, 7))
    assert model(ids).shape == (3, 7, 11)
    assert model(Tensor(ids)).shape == (3, 7, 11)


@pytest.mark.parametrize("ids, err, match", [
    (np.zeros(5, dtype=np.int64), ValueError, r"shape \(B, T\)"),
    (np.zeros((1, 5), dtype=np.float32), TypeError, "integer token ids"),
    (np.zeros((1, 13), dtype=np.int64), ValueError, "exceeds max_seq_len=12"),
    (np.full((1, 3), 11), ValueError, "token id 11 is out of range"),
])
def test_forward_rejects_bad_ids(model, ids, err, match):
    with pytest.raises(err, match=match):
        model(ids)


@pytest.mark.parametrize("kwargs, match", [
    (dict(d_model=10, num_heads=3), "divisible"),
    (dict(num_layers=0), "num_layers must be an integer >= 1, got 0"),
    (dict(dropout=1.0), "dropout"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TinyGPT(vocab_size=5, **kwargs)


def test_weight_tying_and_param_count(model):
    assert model.lm_head.weight is model.wte.weight
    names = [n for n, _ in model.named_parameters()]
    assert "lm_head.weight" not in names  # shared parameter listed once


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
@pytest.mark.parametrize("chunks", [[5] + [1] * 11, [1, 4, 3, 8], [16]])
def test_cached_logits_equal_uncached(positional, chunks):
    """Chunks of any size after cached tokens give the full forward's logits."""
    manual_seed(1)
    m = TinyGPT(vocab_size=13, d_model=32, num_heads=4, num_layers=2, max_seq_len=16, positional=positional)
    m.eval()
    ids = np.random.default_rng(1).integers(0, 13, (2, 16))
    caches = m.new_cache(2)
    parts, t = [], 0
    with no_grad():
        full = m(ids).data
        for n in chunks:
            parts.append(m(ids[:, t:t + n], caches).data)
            t += n
        np.testing.assert_allclose(np.concatenate(parts, axis=1), full, atol=1e-5)
        last = m(ids[:, :7], m.new_cache(2), last_only=True).data
        np.testing.assert_allclose(last, full[:, 6:7], atol=1e-5)
        with pytest.raises(ValueError, match="exceeds max_seq_len"):
            m(ids[:, :1], caches)
        with pytest.raises(ValueError, match="expected 2 caches"):
            m(ids[:, :1], caches[:1])


def test_generation_cached_equals_uncached_and_slides_window(model):
    prompt = np.array([[1, 2, 3]])
    a = model.generate(prompt, 30, seed=5)  # 33 tokens > context 12: the window slides
    b = model.generate(prompt, 30, seed=5, use_cache=False)
    assert a.shape == (1, 33)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, :3], prompt)


def test_generation_crops_long_prompt(model):
    long = np.random.default_rng(2).integers(0, 11, (1, 40))
    out = model.generate(long, 4, temperature=0)
    np.testing.assert_array_equal(out[:, :40], long)
    cropped = model.generate(long[:, -12:], 4, temperature=0)  # only the last max_seq_len count
    np.testing.assert_array_equal(out[:, 40:], cropped[:, 12:])


def test_generation_is_seeded(model):
    p = np.array([[0]])
    np.testing.assert_array_equal(model.generate(p, 10, seed=3), model.generate(p, 10, seed=3))


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=-1), "temperature"), (dict(top_k=0), "top_k"), (dict(top_p=1.5), "top_p"),
])
def test_generation_argument_errors(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.generate(np.array([[0]]), 2, **kwargs)


def test_sampling_top_k_top_p_and_greedy():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    rng = np.random.default_rng(0)
    assert sample_next(logits, temperature=0)[0] == 0
    draws = {int(sample_next(logits, top_k=2, rng=rng)[0]) for _ in range(200)}
    assert draws == {0, 1}
    draws = {int(sample_next(logits, top_p=0.7, rng=rng)[0]) for _ in range(200)}
    assert draws == {0, 1}  # 0.5 < 0.7, 0.5 + 0.3 >= 0.7
    draws = {int(sample_next(logits, top_p=0.4, rng=rng)[0]) for _ in range(50)}
    assert draws == {0}


def test_config_round_trip():
    cfg = GPTConfig(vocab_size=7, d_model=8, num_heads=2)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown keys"):
        GPTConfig.from_dict({**cfg.to_dict(), "n_embd": 3})


def test_models_entry_point_factory():
    eps = [ep for ep in entry_points(group="tinytorch.models") if ep.name == "tinygpt"]
    assert eps, "tinygpt is not registered in tinytorch.models"
    model, example = eps[0].load()()
    assert isinstance(model, TinyGPT) and example.shape == (1, 128)
    assert model.num_parameters() == 3_208_960


def test_eval_lays_linear_weights_out_for_decoding_and_train_restores_c_order():
    manual_seed(3)
    m = TinyGPT(vocab_size=11, d_model=16, num_heads=2, num_layers=1, max_seq_len=8)
    linears = [m.lm_head, m.blocks[0].attn.qkv, m.blocks[0].attn.proj, m.blocks[0].mlp.fc, m.blocks[0].mlp.proj]
    values = [lin.weight.data.copy() for lin in linears]
    ids = np.random.default_rng(3).integers(0, 11, (2, 8))
    with no_grad():
        before = m.train()(ids).data
        m.eval()
        assert all(lin.weight.data.flags.f_contiguous and not lin.weight.data.flags.c_contiguous for lin in linears)
        assert m.lm_head.weight is m.wte.weight  # still tied
        np.testing.assert_allclose(m(ids).data, before, atol=1e-6)
    m.train()
    assert all(lin.weight.data.flags.c_contiguous for lin in linears)
    for lin, v in zip(linears, values):
        np.testing.assert_array_equal(lin.weight.data, v)  # the values never change
