"""Structured shrinking of TinyGPT: attention heads and MLP neurons through core's prune."""

from __future__ import annotations

import copy

import numpy as np

from tinytorch.core import manual_seed, no_grad
from tinytorch.core.nn.utils import prune
from tinytorch.language import TinyGPT


def _model() -> TinyGPT:
    manual_seed(0)
    model = TinyGPT(vocab_size=23, d_model=16, num_heads=4, num_layers=2, max_seq_len=12)
    rng = np.random.default_rng(0)
    for p in model.parameters():  # GPT-2's init leaves biases at zero: make every term count
        p.data[...] = rng.normal(scale=0.3, size=p.shape)
    return model.eval()


def test_shrunk_heads_and_neurons_give_the_masked_models_logits():
    model, ids = _model(), np.random.default_rng(1).integers(0, 23, size=(2, 7))
    masked = copy.deepcopy(model)
    prune.mask_groups(masked, ids, amount=0.5)
    small = copy.deepcopy(masked)
    report = prune.shrink(small, ids)
    assert [(r["group"], r["after"]) for r in report] == [
        ("blocks.0.attn", 2), ("blocks.0.mlp.fc", 32), ("blocks.1.attn", 2), ("blocks.1.mlp.fc", 32)]
    attn = small.blocks[0].attn
    assert (attn.num_heads, attn.head_size, attn.qkv.weight.shape, attn.qkv.bias.shape,
            attn.proj.weight.shape) == (2, 4, (24, 16), (24,), (16, 8))
    with no_grad():
        want, got = masked(ids).numpy(), small(ids).numpy()
        assert np.abs(model(ids).numpy() - want).max() > 1e-2
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_the_heads_with_the_smallest_weights_go_with_all_their_rows():
    model = _model()
    attn = model.blocks[0].attn
    hs, C = attn.head_size, attn.d_model
    def rows(heads, part):  # packed q | k | v, each head's hs rows in head order
        return np.concatenate([np.arange(part * C + h * hs, part * C + (h + 1) * hs) for h in heads])

    attn.qkv.weight.data[np.concatenate([rows([2], part) for part in range(3)])] *= 0.01  # head 2 nearly silent
    attn.proj.weight.data[:, 2 * hs:3 * hs] *= 0.01
    keep = attn.qkv.weight.numpy()[np.concatenate([rows([0, 1, 3], part) for part in range(3)])].copy()
    keep_proj = attn.proj.weight.numpy()[:, np.r_[0:2 * hs, 3 * hs:4 * hs]].copy()
    group = next(g for g in prune.structured_groups(model, np.zeros((1, 3), dtype=np.int64))
                 if g.name == "blocks.0.attn")
    assert int(np.argmin(group.importance())) == 2
    group.shrink([0, 1, 3])
    np.testing.assert_array_equal(attn.qkv.weight.numpy(), keep)
    np.testing.assert_array_equal(attn.proj.weight.numpy(), keep_proj)


def test_a_shrunk_model_decodes_with_its_kv_cache_as_without():
    model = _model()
    prune.shrink(model, np.zeros((1, 4), dtype=np.int64), amount=0.25)
    ids = np.array([[1, 2, 3]])
    cached = model.generate(ids, max_new_tokens=6, top_k=1, use_cache=True)
    plain = model.generate(ids, max_new_tokens=6, top_k=1, use_cache=False)
    assert model.new_cache()[0].k.shape == (1, 3, 12, 4)
    np.testing.assert_array_equal(cached, plain)
