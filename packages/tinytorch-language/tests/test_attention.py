"""Attention, positional encodings and the Transformer block: values and float64 gradient checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinytorch.core import Tensor, gradcheck, manual_seed, no_grad
from tinytorch.language import (
    KVCache,
    MultiHeadAttention,
    PositionalEncoding,
    SinusoidalEmbedding,
    TinyGPT,
    TransformerBlock,
)
from tinytorch.language.functional import packed_self_attention, scaled_dot_product_attention


def _t(rng, *shape, grad=True):
    return Tensor(rng.standard_normal(shape), requires_grad=grad)  # float64


def _reference(q, k, v, bias=None):
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if bias is not None:
        s = s + bias
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    return p @ v


def test_sdpa_matches_reference_causal():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 5, 4)) for _ in range(3))
    out = scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), is_causal=True).data
    bias = np.triu(np.full((5, 5), -np.inf), 1)
    np.testing.assert_allclose(out, _reference(q, k, v, bias), atol=1e-12)
    # position 0 sees only itself
    np.testing.assert_allclose(out[:, :, 0], v[:, :, 0], atol=1e-12)


def test_sdpa_bool_and_float_masks_agree():
    rng = np.random.default_rng(1)
    q, k, v = (Tensor(rng.standard_normal((1, 2, 3, 4))) for _ in range(3))
    mask = rng.random((3, 3)) > 0.3
    mask[:, 0] = True
    a = scaled_dot_product_attention(q, k, v, attn_mask=mask).data
    b = scaled_dot_product_attention(q, k, v, attn_mask=np.where(mask, 0.0, -np.inf)).data
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, _reference(q.data, k.data, v.data, np.where(mask, 0, -np.inf)), atol=1e-12)


def test_sdpa_fully_masked_row_is_zero_not_nan():
    q = k = v = Tensor(np.ones((1, 1, 2, 2)))
    mask = np.array([[False, False], [True, True]])
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask).data
    assert np.isfinite(out).all() and (out[0, 0, 0] == 0).all()


@pytest.mark.parametrize("kind", ["none", "causal", "bool_mask", "float_mask", "cross_length"])
def test_sdpa_gradcheck(kind):
    rng = np.random.default_rng(2)
    L, S = (3, 5) if kind == "cross_length" else (4, 4)
    q, k, v = _t(rng, 2, 2, L, 3), _t(rng, 2, 2, S, 3), _t(rng, 2, 2, S, 2)
    kwargs = {}
    if kind == "causal":
        kwargs["is_causal"] = True
    elif kind == "bool_mask":
        m = rng.random((L, S)) > 0.4
        m[:, 0] = True
        kwargs["attn_mask"] = m
    elif kind == "float_mask":
        kwargs["attn_mask"] = rng.standard_normal((2, 1, L, S))
    gradcheck(lambda a, b, c: scaled_dot_product_attention(a, b, c, **kwargs), [q, k, v])


def test_sdpa_dropout_gradcheck_with_fixed_mask():
    rng = np.random.default_rng(3)
    q, k, v = _t(rng, 1, 2, 4, 3), _t(rng, 1, 2, 4, 3), _t(rng, 1, 2, 4, 3)

    def fn(a, b, c):  # the same dropout mask on every call
        return scaled_dot_product_attention(a, b, c, is_causal=True, dropout_p=0.3,
                                            generator=np.random.default_rng(7))

    gradcheck(fn, [q, k, v])


def test_packed_attention_equals_public_sdpa_and_gradchecks():
    rng = np.random.default_rng(4)
    B, T, H, hs = 2, 5, 2, 3
    qkv = _t(rng, B, T, 3 * H * hs)
    out = packed_self_attention(qkv, H).data
    heads = qkv.data.reshape(B, T, 3, H, hs).transpose(2, 0, 3, 1, 4)
    ref = scaled_dot_product_attention(*(Tensor(h) for h in heads), is_causal=True).data
    np.testing.assert_allclose(out, ref.transpose(0, 2, 1, 3).reshape(B, T, H * hs), atol=1e-12)
    gradcheck(lambda x: packed_self_attention(x, H), [qkv])


@pytest.mark.parametrize("bad", [
    dict(query=(2, 3, 4), key=(2, 3, 5), value=(2, 3, 5)),
    dict(query=(2, 3, 4), key=(2, 3, 4), value=(2, 2, 4)),
])
def test_sdpa_shape_errors_name_the_arguments(bad):
    args = [Tensor(np.zeros(bad[n])) for n in ("query", "key", "value")]
    with pytest.raises(ValueError, match="key"):
        scaled_dot_product_attention(*args)


def test_sdpa_rejects_mask_and_causal_together():
    q = Tensor(np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="is_causal"):
        scaled_dot_product_attention(q, q, q, attn_mask=np.ones((2, 2), bool), is_causal=True)


def test_sinusoidal_table_values_and_gradcheck():
    pe = PositionalEncoding(d_model=6, max_len=10).double()
    table = pe.table.pe.data
    assert table.dtype == np.float64
    assert table[0, 0] == 0 and table[0, 1] == 1
    np.testing.assert_allclose(table[3, 2], math.sin(3 / 10000 ** (2 / 6)))
    np.testing.assert_allclose(table[3, 3], math.cos(3 / 10000 ** (2 / 6)))
    rng = np.random.default_rng(5)
    x = _t(rng, 2, 4, 6)
    np.testing.assert_array_equal(pe(x, start=2).data, x.data + table[2:6])  # positions 2..5
    gradcheck(lambda x: pe(x, start=2), [x])
    assert "pe" not in pe.state_dict()  # a fixed table, not state
    with pytest.raises(ValueError, match="max_len=10"):
        pe(Tensor(np.zeros((1, 4, 6))), start=7)


def test_sinusoidal_embedding_is_the_table_by_position():
    wpe = SinusoidalEmbedding(max_len=8, d_model=4)
    positions = np.array([[0, 0, 1], [5, 6, 7]])  # a padded batch: each row its own positions
    np.testing.assert_array_equal(wpe(positions).data, wpe.pe.data[positions])
    assert not wpe(positions).requires_grad
    with pytest.raises(ValueError, match="max_len=8"):
        wpe(np.array([8]))


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_tinygpt_gradcheck_every_parameter(positional):
    """The whole model, positions included, against finite differences in float64."""
    manual_seed(0)
    model = TinyGPT(vocab_size=7, d_model=8, num_heads=2, num_layers=1, max_seq_len=6,
                    positional=positional, tie_weights=True).double()
    ids = np.random.default_rng(6).integers(0, 7, (2, 5))
    upstream = np.random.default_rng(7).standard_normal((2, 5, 7))
    params = list(model.parameters())
    gradcheck(lambda *ps: (model(ids) * Tensor(upstream)).sum(), params)


def test_transformer_block_gradcheck_all_parameters():
    manual_seed(0)
    block = TransformerBlock(d_model=8, num_heads=2).double()
    rng = np.random.default_rng(7)
    for p in block.parameters():  # non-trivial LayerNorm affine parameters
        p.data += 0.1 * rng.standard_normal(p.shape)
    x = _t(rng, 2, 4, 8)
    params = list(block.parameters())
    gradcheck(lambda x, *ps: block(x), [x, *params])


@pytest.mark.parametrize("chunks", [[3, 1, 1, 1, 1], [2, 3, 2], [1, 4, 2], [7]])
def test_mha_kv_cache_chunks_match_full_forward(chunks):
    """Chunks of any size after cached tokens (the causal mask offset by the cached length)."""
    manual_seed(1)
    mha = MultiHeadAttention(d_model=16, num_heads=4)
    mha.eval()
    x = np.random.default_rng(8).standard_normal((2, 7, 16)).astype(np.float32)
    cache = KVCache(2, 4, 16, 4)
    parts, t = [], 0
    with no_grad():
        full = mha(Tensor(x)).data
        for n in chunks:
            parts.append(mha(Tensor(x[:, t:t + n]), cache).data)
            t += n
    np.testing.assert_allclose(np.concatenate(parts, 1), full, atol=1e-5)
    assert cache.length == 7


def test_kv_cache_refuses_a_graph():
    mha = MultiHeadAttention(d_model=8, num_heads=2)
    with pytest.raises(ValueError, match="no_grad"):
        mha(Tensor(np.zeros((1, 2, 8), dtype=np.float32), requires_grad=True), KVCache(1, 2, 4, 4))


def test_mha_rejects_bad_heads():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(d_model=10, num_heads=3)
