"""LanguageModelTrainer: a tiny run whose loss falls, history, checkpoints, resume, errors."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from tinytorch.core import functional as F
from tinytorch.core import io, manual_seed
from tinytorch.language import (
    BPETokenizer,
    CharTokenizer,
    LanguageModelTrainer,
    TinyGPT,
    TokenWindows,
    generate_text,
    load_checkpoint,
    load_shakespeare,
    training,
)

TEXT = load_shakespeare()[:20_000]


def _small(vocab):
    return TinyGPT(vocab, d_model=32, num_heads=2, num_layers=1, max_seq_len=32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    manual_seed(0)
    tok = CharTokenizer().fit(TEXT)
    lm = LanguageModelTrainer(_small(tok.vocab_size), tok)
    path = tmp_path_factory.mktemp("ckpt") / "lm.safetensors"
    history = lm.fit(TEXT, max_steps=60, batch_size=16, lr=3e-3, warmup=5, eval_every=20,
                     checkpoint=path, seed=0)
    return lm, history, path


def test_tiny_training_loss_decreases(trained):
    _, h, _ = trained
    assert h["step"] == [20, 40, 60]
    assert h["val_loss"][-1] < h["val_loss"][0] < np.log(65) + 0.5
    assert h["loss"][-1] < 3.3
    np.testing.assert_allclose(h["val_perplexity"], np.exp(h["val_loss"]))
    assert all(t > 0 for t in h["tokens_per_sec"])
    assert h.stop_reason == "steps"


def test_generation_from_checkpoint_file_alone(trained):
    lm, _, path = trained
    model, tok, meta = load_checkpoint(path)
    assert meta["tinytorch.language"]["config"]["d_model"] == 32
    text = generate_text(model, tok, "ROMEO:", max_length=40, seed=1)
    assert text.startswith("ROMEO:") and len(text) == 46
    assert text == lm.generate_text("ROMEO:", max_length=40, seed=1)


def test_prompt_longer_than_context_is_cropped(trained):
    lm, _, _ = trained
    long_prompt = TEXT[:200]
    out = lm.generate_text(long_prompt, max_length=10, temperature=0)
    assert out.startswith(long_prompt)
    assert out[200:] == lm.generate_text(TEXT[168:200], max_length=10, temperature=0)[32:]


def test_resume_continues_with_the_checkpoints_settings(trained):
    _, _, path = trained
    model, tok, _ = load_checkpoint(path)
    lm = LanguageModelTrainer(model, tok)
    h = lm.fit(TEXT, max_steps=70, eval_every=10, resume=path)  # batch 16, lr 3e-3... from the file
    assert h["step"][-1] == 70 and h["step"][:3] == [20, 40, 60]
    assert lm.train_config["lr"] == 3e-3 and lm.train_config["batch_size"] == 16


@pytest.mark.parametrize("kwargs, named", [
    (dict(lr=1e-3), "lr=0.001 (the checkpoint has 0.003)"),
    (dict(batch_size=8), "batch_size=8 (the checkpoint has 16)"),
    (dict(seed=5), "seed=5 (the checkpoint has 0)"),
])
def test_resume_refuses_contradicting_settings(trained, kwargs, named):
    _, _, path = trained
    model, tok, _ = load_checkpoint(path)
    with pytest.raises(ValueError, match=re.escape(named)):
        LanguageModelTrainer(model, tok).fit(TEXT, max_steps=70, resume=path, **kwargs)


def test_resume_refuses_another_text(trained):
    _, _, path = trained
    model, tok, _ = load_checkpoint(path)
    with pytest.raises(ValueError, match="a different text"):
        LanguageModelTrainer(model, tok).fit(TEXT[:-1] + "?", max_steps=70, resume=path)


def test_resume_after_ctrl_c_mid_epoch_is_bit_exact(tmp_path, monkeypatch):
    tok = CharTokenizer().fit(TEXT)

    def run(resume=None, checkpoint=None):
        manual_seed(0)
        lm = LanguageModelTrainer(_small(tok.vocab_size), tok)
        if resume:
            lm.model, _, _ = load_checkpoint(resume)
        history = lm.fit(TEXT, max_steps=20, batch_size=4, seq_len=16, lr=3e-3, warmup=3, eval_every=7,
                         eval_batches=2, checkpoint=checkpoint, resume=resume, seed=3)
        return lm, history

    full, _ = run()
    calls = []

    def interrupted_loss(logits, targets):  # Ctrl-C during step 10: the checkpoint is step 7's
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return F.cross_entropy(logits, targets)

    monkeypatch.setattr(training, "lm_loss", interrupted_loss)
    _, history = run(checkpoint=tmp_path / "c.safetensors")
    assert history.stop_reason == "interrupted"
    monkeypatch.undo()
    resumed, _ = run(resume=tmp_path / "c.safetensors")
    assert resumed.trainer.history.steps[6]["step"] == 7
    for k, v in full.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[k], v)


def test_seed_sets_the_data_order():
    tok = CharTokenizer().fit(TEXT)

    def loss(seed):
        manual_seed(0)  # the same initial weights: only the data order may differ
        lm = LanguageModelTrainer(_small(tok.vocab_size), tok)
        return lm.fit(TEXT, max_steps=3, batch_size=4, seq_len=16, warmup=0, val_fraction=0.1,
                      eval_batches=1, seed=seed).steps[0]["loss"]

    assert loss(1) != loss(2) and loss(1) == loss(1)


def test_learning_rate_follows_warmup_then_cosine():
    # nanoGPT's schedule in closed form: (t + 1) / (w + 1) warmup, cosine to a tenth at the end.
    tok = CharTokenizer().fit(TEXT)
    manual_seed(0)
    lm = LanguageModelTrainer(_small(tok.vocab_size), tok, min_lr_ratio=0.1)
    h = lm.fit(TEXT, max_steps=30, batch_size=4, seq_len=16, lr=1e-2, warmup=5, eval_batches=1, seed=0)
    lrs = [row["lr"] for row in h.steps]

    def expected(t, w=5, total=30, base=1e-2, floor=0.1):
        if t < w:
            return base * (t + 1) / (w + 1)
        return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (t - w) / (total - w))))

    np.testing.assert_allclose(lrs, [expected(t) for t in range(30)], rtol=1e-12)


def test_checkpoint_of_another_model_is_refused(tmp_path):
    path = tmp_path / "vision.safetensors"
    io.save({"model.conv.weight": np.zeros((2, 2), np.float32)}, path,
            metadata={"kind": "tinytorch.training_checkpoint"})
    with pytest.raises(ValueError, match="not a tinytorch-language checkpoint"):
        load_checkpoint(path)


def test_checkpoint_with_mismatched_weights_is_refused(trained, tmp_path):
    _, _, path = trained
    state, meta = io.load(path)
    meta["tinytorch.language"]["config"]["d_model"] = 64
    bad = tmp_path / "bad.safetensors"
    io.save(state, bad, metadata={k: v for k, v in meta.items() if not k.startswith("tinytorch.") or k == "tinytorch.language"})
    with pytest.raises(ValueError, match="does not match its weights"):
        load_checkpoint(bad)


def test_edited_context_length_fails_before_allocating(trained, tmp_path):
    import tracemalloc

    _, _, path = trained
    state, meta = io.load(path)
    meta["tinytorch.language"]["config"]["max_seq_len"] = 10**8  # a 10 GB position table
    bad = tmp_path / "edited.safetensors"
    io.save(state, bad, metadata=meta)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"edited.safetensors: its config .* does not match its weights"):
            load_checkpoint(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20  # the header was enough: no model, not even the weights, was built


def test_model_vocabulary_must_match_the_tokenizer(trained, tmp_path):
    _, _, path = trained
    model, tok, _ = load_checkpoint(path)
    with pytest.raises(ValueError, match="must be equal"):
        LanguageModelTrainer(_small(tok.vocab_size + 5), tok).fit(TEXT, max_steps=1)


def test_truncated_checkpoint_is_refused(trained, tmp_path):
    _, _, path = trained
    bad = tmp_path / "trunc.safetensors"
    bad.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError):
        load_checkpoint(bad)


def test_bpe_training_run_and_tokenizer_fitted_on_the_fly():
    manual_seed(0)
    tok = BPETokenizer(vocab_size=300)
    lm = LanguageModelTrainer(_small(300), tok)
    h = lm.fit(TEXT, max_steps=4, batch_size=4, seq_len=16, warmup=1)
    assert tok.vocab_size == 300 and len(h["loss"]) == 1 and len(h.steps) == 4


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), "batch_size"), (dict(seq_len=64), "exceeds the model's max_seq_len"),
    (dict(lr=-1), "lr"), (dict(val_fraction=1.0), "val_fraction"), (dict(time_budget=0), "time_budget"),
])
def test_fit_argument_errors(kwargs, match):
    tok = CharTokenizer().fit(TEXT)
    with pytest.raises(ValueError, match=match):
        LanguageModelTrainer(_small(tok.vocab_size), tok).fit(TEXT, max_steps=1, **kwargs)


def test_tokenizer_larger_than_model_vocab():
    tok = CharTokenizer().fit(TEXT)
    with pytest.raises(ValueError, match="model's vocab_size is 10"):
        LanguageModelTrainer(_small(10), tok).fit(TEXT, max_steps=1)


def test_time_budget_stops_training():
    tok = CharTokenizer().fit(TEXT)
    lm = LanguageModelTrainer(_small(tok.vocab_size), tok)
    h = lm.fit(TEXT, time_budget=2.0, batch_size=4, eval_every=5, eval_batches=1)
    assert 0 < lm.trainer.global_step < 10_000 and h.stop_reason == "budget"
    assert h.evals[-1]["step"] == lm.trainer.global_step  # the final evaluation ran, on everything


def test_token_windows():
    ds = TokenWindows(np.arange(20), seq_len=4)
    assert len(ds) == 4
    x, y = ds.__getitems__(np.array([0, 2]))
    np.testing.assert_array_equal(x[1], [8, 9, 10, 11])
    np.testing.assert_array_equal(y[1], [9, 10, 11, 12])
    ds.set_offset(2)
    assert ds[0][0].tolist() == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="at least seq_len"):
        TokenWindows(np.arange(3), seq_len=4)


def test_token_windows_random_starts_stay_in_range_and_cover_every_start():
    tokens = np.arange(50)
    ds = TokenWindows(tokens, seq_len=8, random_starts=True, seed=0)
    assert len(ds) == 6  # an epoch is still the non-overlapping windows' worth of targets
    starts = set()
    for epoch in range(200):
        ds.set_epoch(epoch)
        x, y = ds.__getitems__(np.arange(len(ds)))
        assert x.shape == (6, 8) and y.max() <= 49
        np.testing.assert_array_equal(y, x + 1)
        starts.update(int(r[0]) for r in x)
    assert starts == set(range(50 - 8))  # every start 0..41 whose 9-token window fits


@pytest.mark.parametrize("sample, share", [("", None), ("to be", 1.0), ("to zzyzx", 0.5), ("TO Be, or'", 1.0)])
def test_known_word_share(sample, share):
    from tinytorch.language.data import known_word_share

    assert known_word_share(sample, "To be, or not to be: or'") == share
