"""Padding masks: forward, cached decoding and batch generation of prompts of different lengths."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import Tensor, gradcheck, manual_seed, no_grad
from tinytorch.language import TinyGPT
from tinytorch.language.functional import packed_self_attention
from tinytorch.language.model import position_ids

PAD = 0


def small_model(**kwargs) -> TinyGPT:
    manual_seed(3)
    model = TinyGPT(vocab_size=29, d_model=24, num_heads=3, num_layers=2, max_seq_len=32, **kwargs).eval()
    rng = np.random.default_rng(0)
    for p in model.parameters():  # larger weights than GPT-2's init: the logits spread out, no near-ties
        p.data[...] = rng.standard_normal(p.shape).astype(np.float32) * 0.3
    return model


PROMPTS = [[5, 9, 2], [7, 1, 4, 4, 8, 3], [11], [6, 2, 9, 13]]


def left_pad(prompts):
    T = max(map(len, prompts))
    ids = np.full((len(prompts), T), PAD, dtype=np.int64)
    mask = np.zeros((len(prompts), T), dtype=np.int64)
    for i, p in enumerate(prompts):
        ids[i, T - len(p):] = p
        mask[i, T - len(p):] = 1
    return ids, mask


def test_position_ids_follow_transformers_generate():
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 0, 1, 1]])
    np.testing.assert_array_equal(position_ids(mask), [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4], [0, 0, 0, 1, 2]])


def test_padded_forward_equals_each_prompt_alone():
    model = small_model()
    ids, mask = left_pad(PROMPTS)
    with no_grad():
        batch = model(ids, attention_mask=mask).data
        for i, p in enumerate(PROMPTS):
            alone = model(np.array([p])).data[0]
            np.testing.assert_allclose(batch[i, -len(p):], alone, rtol=1e-5, atol=1e-5)
    assert np.isfinite(batch).all()  # padding positions attend to nothing: finite, not nan


def test_all_ones_mask_is_no_mask():
    model = small_model()
    ids = np.random.default_rng(1).integers(0, 29, (2, 7))
    with no_grad():
        np.testing.assert_array_equal(model(ids, attention_mask=np.ones((2, 7))).data, model(ids).data)


@pytest.mark.parametrize("chunks", [[2] + [1] * 20, [3, 2, 4, 10]])
def test_cached_chunks_with_mask_equal_forward(chunks):
    model = small_model()
    ids, mask = left_pad(PROMPTS)
    T = ids.shape[1]
    caches = model.new_cache(len(PROMPTS))
    parts, t = [], 0
    with no_grad():
        full = model(ids, attention_mask=mask).data
        for n in chunks:
            n = min(n, T - t)
            if n:
                parts.append(model(ids[:, t:t + n], caches, attention_mask=mask[:, :t + n]).data)
            t += n
    got = np.concatenate(parts, axis=1)
    real = mask.astype(bool)
    np.testing.assert_allclose(got[real], full[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_cache", [True, False])
def test_batch_generation_of_left_padded_prompts_equals_each_alone(use_cache):
    model = small_model()
    ids, mask = left_pad(PROMPTS)
    new = 12
    batch = model.generate(ids, new, temperature=0, attention_mask=mask, use_cache=use_cache)
    for i, p in enumerate(PROMPTS):
        alone = model.generate(np.array([p]), new, temperature=0, use_cache=use_cache)
        assert batch[i, -new:].tolist() == alone[0, -new:].tolist(), f"prompt {i}"
    assert (batch[:, :ids.shape[1]] == ids).all()


def test_batch_generation_without_the_mask_differs():
    # guards the test above: padding that is not masked changes what the short prompts continue with
    model = small_model()
    ids, mask = left_pad(PROMPTS)
    unmasked = model.generate(ids, 12, temperature=0)
    alone = [model.generate(np.array([p]), 12, temperature=0)[0, -12:].tolist() for p in PROMPTS]
    assert any(unmasked[i, -12:].tolist() != alone[i] for i in range(len(PROMPTS)))


def test_masked_generation_slides_its_window_like_the_uncached_path():
    model = small_model()
    ids, mask = left_pad(PROMPTS)
    cached = model.generate(ids, 40, temperature=0, attention_mask=mask)  # 6 + 40 > 32: slides
    uncached = model.generate(ids, 40, temperature=0, attention_mask=mask, use_cache=False)
    np.testing.assert_array_equal(cached, uncached)


def test_mask_errors():
    model = small_model()
    ids, mask = left_pad(PROMPTS)
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(B, cached \+ new tokens\) = \(4, 6\), got \(4, 5\)"):
        model(ids, attention_mask=mask[:, 1:])
    with pytest.raises(ValueError, match="1 \\(token\\) and 0 \\(padding\\)"):
        model(ids, attention_mask=mask * 2)
    empty = mask.copy()
    empty[0] = 0
    with pytest.raises(ValueError, match="no token in the context window"):
        model.generate(ids, 2, attention_mask=empty)
    with pytest.raises(ValueError, match=r"packed_self_attention: attention_mask must have shape \(B, S\) = \(2, 3\), got \(2, 4\)"):
        packed_self_attention(Tensor(np.zeros((2, 3, 12))), 2, attention_mask=np.ones((2, 4)))


def test_fully_masked_rows_output_zeros_and_no_nan():
    rng = np.random.default_rng(0)
    qkv = Tensor(rng.standard_normal((2, 5, 3 * 8)), requires_grad=True)
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])
    out = packed_self_attention(qkv, num_heads=2, attention_mask=mask)
    # left padding: queries 0 and 1 of row 0 see only padding keys (causal) -> zeros
    np.testing.assert_array_equal(out.data[0, :2], 0.0)
    assert np.isfinite(out.data).all() and np.abs(out.data[0, 2:]).min() > 0
    (out * Tensor(rng.standard_normal(out.shape))).sum().backward()
    assert np.isfinite(qkv.grad).all()
    np.testing.assert_array_equal(qkv.grad[0, :2, :16], 0.0)  # their queries and keys get no gradient


@pytest.mark.parametrize("causal", [True, False])
def test_packed_attention_gradcheck_with_padding_mask(causal):
    rng = np.random.default_rng(1)
    qkv = Tensor(rng.standard_normal((3, 5, 3 * 6)), requires_grad=True)
    # row 0: left padding, two fully masked query rows under the causal mask; row 1: right
    # padding; row 2: a hole in the middle
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 1, 1, 1]])
    gradcheck(lambda t: packed_self_attention(t, num_heads=2, is_causal=causal, attention_mask=mask), [qkv])


def test_masked_training_forward_backward_on_tinygpt():
    model = small_model()
    model.train()
    ids, mask = left_pad(PROMPTS)
    out = model(ids, attention_mask=mask)
    (out * Tensor(np.random.default_rng(2).standard_normal(out.shape).astype(np.float32))).sum().backward()
    assert all(np.isfinite(p.grad).all() for p in model.parameters())
    # positions follow the real tokens: the longest prompt has 6, so rows 6.. are never used
    assert np.abs(model.wpe.weight.grad[6:]).max() == 0.0 and np.abs(model.wpe.weight.grad[5]).max() > 0
