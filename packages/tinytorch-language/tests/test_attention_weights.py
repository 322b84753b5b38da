"""Seeing inside: attention weights from MultiHeadAttention and TinyGPT (``need_weights``, as
PyTorch's MultiheadAttention), checked against a NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import Tensor, manual_seed, no_grad
from tinytorch.language import TinyGPT
from tinytorch.language.model import MultiHeadAttention


def reference_weights(mha: MultiHeadAttention, x: np.ndarray, pad: np.ndarray | None = None) -> np.ndarray:
    """softmax(q kᵀ / √hs + causal mask) per head, (B, nh, T, T), in float64 NumPy."""
    B, T, C = x.shape
    nh, hs = mha.num_heads, mha.head_size
    qkv = x.astype(np.float64) @ mha.qkv.weight.data.T.astype(np.float64) + mha.qkv.bias.data
    q, k, _ = (qkv[..., i * C:(i + 1) * C].reshape(B, T, nh, hs).transpose(0, 2, 1, 3) for i in range(3))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hs)
    hidden = np.triu(np.ones((T, T), dtype=bool), k=1)[None, None]
    if pad is not None:
        hidden = hidden | (pad[:, None, None, :] == 0)
    scores = np.where(hidden, -np.inf, scores)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture
def mha():
    manual_seed(0)
    return MultiHeadAttention(d_model=16, num_heads=4).eval()


def test_weights_are_causal_rows_of_a_softmax_equal_to_numpy(mha):
    x = np.random.default_rng(0).standard_normal((2, 6, 16)).astype(np.float32)
    out, heads = mha(Tensor(x), need_weights=True, average_attn_weights=False)
    w = heads.data
    assert w.shape == (2, 4, 6, 6) and not heads.requires_grad
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    assert np.all(w[..., np.triu_indices(6, k=1)[0], np.triu_indices(6, k=1)[1]] == 0)  # no look ahead
    ref = reference_weights(mha, x)
    np.testing.assert_allclose(w, ref, rtol=1e-4, atol=1e-6)
    _, mean = mha(Tensor(x), need_weights=True)  # PyTorch's default: averaged over the heads
    assert mean.shape == (2, 6, 6)
    np.testing.assert_allclose(mean.data, ref.mean(axis=1), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(out.data, mha(Tensor(x)).data)  # the output does not change


def test_padding_keys_get_no_weight(mha):
    x = np.random.default_rng(1).standard_normal((2, 5, 16)).astype(np.float32)
    pad = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    _, w = mha(Tensor(x), attention_mask=pad, need_weights=True, average_attn_weights=False)
    np.testing.assert_allclose(w.data[:, :, :3], reference_weights(mha, x, pad)[:, :, :3], rtol=1e-4, atol=1e-6)
    assert np.all(w.data[1, :, :, 3:] == 0)


def test_tinygpt_returns_every_blocks_weights_and_the_same_logits():
    manual_seed(0)
    model = TinyGPT(vocab_size=11, d_model=16, num_heads=2, num_layers=3, max_seq_len=8).eval()
    ids = np.array([[1, 5, 2, 7, 3]])
    with no_grad():
        plain = model(ids)
        logits, weights = model(ids, need_weights=True)
        _, heads = model(ids, need_weights=True, average_attn_weights=False)
    np.testing.assert_array_equal(logits.data, plain.data)
    assert len(weights) == 3 and all(w.shape == (1, 5, 5) for w in weights)
    assert all(h.shape == (1, 2, 5, 5) for h in heads)
    # block 0 sees the embeddings: its weights are the reference on ln1(embeddings)
    x = model.blocks[0].ln1(model.wte(Tensor(ids)) + model.wpe(np.arange(5))).data
    np.testing.assert_allclose(heads[0].data, reference_weights(model.blocks[0].attn, x), rtol=1e-4, atol=1e-6)
    for w in weights:
        np.testing.assert_allclose(w.data.sum(-1), 1.0, rtol=1e-5)
