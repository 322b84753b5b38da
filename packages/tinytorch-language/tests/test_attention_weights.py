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


def test_heat_map_draws_the_weights_over_the_prompts_tokens(tmp_path):
    pytest.importorskip("matplotlib")
    from tinytorch.core.viz import overlapping_texts
    from tinytorch.language import CharTokenizer
    from tinytorch.language.attention_map import attention_maps, plot_attention

    text = "ROMEO: But soft, what light\nthrough yonder window breaks?"
    tok = CharTokenizer().fit(text)
    manual_seed(0)
    model = TinyGPT(tok.vocab_size, d_model=16, num_heads=2, num_layers=3, max_seq_len=64)
    labels, maps = attention_maps(model, tok, text)
    assert labels[:7] == list("ROMEO:") + ["␣"] and "↵" in labels and maps.shape == (3, len(text), len(text))
    with no_grad():
        _, weights = model.eval()(np.asarray([tok.encode(text)]), need_weights=True)
    for block, w in enumerate(weights):
        np.testing.assert_array_equal(maps[block], w.data[0])
    fig = plot_attention(model, tok, text, tmp_path / "a.png")
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(images) == 3 and all(np.array_equal(img, maps[i]) for i, img in enumerate(images))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == labels
    assert overlapping_texts(fig) == []
    heads = plot_attention(model, tok, "ROMEO", layer=1, per_head=True)
    assert [ax.get_title() for ax in heads.axes if ax.images] == ["block 1, head 0", "block 1, head 1"]
    assert overlapping_texts(heads) == []
    with pytest.raises(ValueError, match="the prompt is 65 tokens long; the model's context is 64"):
        attention_maps(model, tok, text + text[:65 - len(text)])


def test_tito_language_attention(tmp_path):
    pytest.importorskip("matplotlib")
    from click.testing import CliRunner

    from tinytorch.language import CharTokenizer, LanguageModelTrainer
    from tito.main import cli

    tok = CharTokenizer().fit("to be or not to be")
    manual_seed(0)
    trainer = LanguageModelTrainer(TinyGPT(tok.vocab_size, 16, 2, 2, 16), tok)
    trainer.fit("to be or not to be " * 20, max_steps=2, batch_size=2, seq_len=16, warmup=0)
    ckpt = tmp_path / "m.safetensors"
    trainer.save_checkpoint(ckpt)
    out = tmp_path / "attn.png"
    result = CliRunner().invoke(cli, ["language", "attention", "--checkpoint", str(ckpt), "--prompt", "to be",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{out}: 2 block(s), 2 heads (mean), 5 tokens"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for args, message in ((["--layer", "2"], "the model has 2 blocks (0 to 1), got 2"),
                          (["--prompt", "to be " * 3], "the prompt is 18 tokens long"),
                          (["--out", str(ckpt)], "--out")):
        base = {"--prompt": "to be", "--out": str(tmp_path / "b.png")}
        base.update(dict(zip(args[::2], args[1::2])))
        bad = CliRunner().invoke(cli, ["language", "attention", "--checkpoint", str(ckpt),
                                       *[x for kv in base.items() for x in kv]])
        assert bad.exit_code != 0 and message in bad.output and "Traceback" not in bad.output, bad.output
