"""`tito language generate --pretrained` and `tito language train --init-from` on a small random
GPT-2 written in Hugging Face's layout by the test (vocabulary 50,257 so GPT-2's real tokenizer
files from $TINYTORCH_DATA/gpt2 fit it), never a download."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinytorch.core import manual_seed
from tinytorch.language import TinyGPT
from tinytorch.language.tokenizers import BPETokenizer
from tinytorch.language.training import load_checkpoint
from tito.main import cli

GPT2_FILES = Path(os.environ.get("TINYTORCH_DATA", "")) / "gpt2"
pytestmark = pytest.mark.skipif(not (GPT2_FILES / "encoder.json").is_file(),
                                reason="GPT-2's tokenizer files are in $TINYTORCH_DATA/gpt2 (CI sets it)")


@pytest.fixture(scope="module")
def tokenizer():
    return BPETokenizer.from_gpt2(GPT2_FILES)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    """config.json + model.safetensors + vocab.json + merges.txt, as a Hub snapshot holds them."""
    directory = tmp_path_factory.mktemp("gpt2-tiny")
    manual_seed(3)
    TinyGPT(vocab_size=50257, d_model=16, num_heads=2, num_layers=1, max_seq_len=64).save_pretrained(directory)
    shutil.copy(GPT2_FILES / "encoder.json", directory / "vocab.json")
    shutil.copy(GPT2_FILES / "vocab.bpe", directory / "merges.txt")
    return directory


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text("To be, or not to be, that is the question.\n" * 40, encoding="utf-8")
    return path


def test_generate_pretrained_is_the_models_greedy_continuation(gpt2_dir, tokenizer):
    result = CliRunner().invoke(cli, ["language", "generate", "--pretrained", str(gpt2_dir),
                                      "--prompt", "Hello, world", "--max-length", "6", "--temperature", "0",
                                      "--json"])
    assert result.exit_code == 0, result.output
    text = json.loads(result.output.strip().splitlines()[-1])["text"]
    ids = tokenizer.encode("Hello, world")
    expected = TinyGPT.from_pretrained(gpt2_dir).generate(np.array([ids]), 6, temperature=0.0)
    assert text == tokenizer.decode(expected[0].tolist())
    assert text.startswith("Hello, world") and len(expected[0]) == len(ids) + 6


def test_generate_pretrained_takes_the_tokenizer_from_another_directory(gpt2_dir, tmp_path):
    weights_only = tmp_path / "weights"
    weights_only.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(gpt2_dir / name, weights_only / name)
    missing = CliRunner().invoke(cli, ["language", "generate", "--pretrained", str(weights_only), "--prompt", "Hi"])
    assert missing.exit_code in (1, 2) and "vocab.json" in missing.output and "--tokenizer" in missing.output
    ok = CliRunner().invoke(cli, ["language", "generate", "--pretrained", str(weights_only), "--tokenizer",
                                  str(GPT2_FILES), "--prompt", "Hi", "--max-length", "3", "--temperature", "0"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("Hi")


@pytest.mark.parametrize("args, named", [
    (["--checkpoint", "{ckpt}", "--pretrained", "{dir}"], "exactly one"),
    ([], "exactly one"),
    (["--checkpoint", "{ckpt}", "--tokenizer", "{dir}"], "--tokenizer goes with --pretrained"),
])
def test_generate_refuses_ambiguous_sources(gpt2_dir, tmp_path, args, named):
    ckpt = tmp_path / "c.safetensors"
    ckpt.write_bytes(b"not used")
    args = [a.format(ckpt=ckpt, dir=gpt2_dir) for a in args]
    result = CliRunner().invoke(cli, ["language", "generate", *args])
    assert result.exit_code in (1, 2) and named in result.output and "Traceback" not in result.output


def test_init_from_fine_tunes_the_pretrained_weights_into_a_regular_checkpoint(gpt2_dir, corpus, tmp_path,
                                                                               tokenizer):
    out = tmp_path / "ft.safetensors"
    result = CliRunner().invoke(cli, ["language", "train", "--init-from", str(gpt2_dir), "--text", str(corpus),
                                      "--max-steps", "2", "--batch-size", "2", "--context", "16",
                                      "--eval-every", "1", "--eval-batches", "1", "--out", str(out),
                                      "--json", "--sample", "4"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["steps"] == 2 and report["checkpoint_step"] == 2 and report["val_loss"] > 0
    assert report["settings"]["lr"] == 3e-5 and report["settings"]["seq_len"] == 16  # the recipe's lr
    model, tuned_tokenizer, _ = load_checkpoint(out)
    start = TinyGPT.from_pretrained(gpt2_dir)
    # Two AdamW steps of lr 3e-5 move a weight by at most ~2 * lr: the run started from the
    # pretrained weights (a fresh init would differ by ~0.02) and it did train.
    moved = np.abs(model.wte.weight.numpy() - start.wte.weight.numpy()).max()
    assert 0 < moved < 1e-4
    assert model.config.max_seq_len == 64 and model.config.site_dropout("attn") == 0.0  # nanoGPT: dropout 0
    assert tuned_tokenizer.encode("To be, or not") == tokenizer.encode("To be, or not")
    again = CliRunner().invoke(cli, ["language", "generate", "--checkpoint", str(out), "--prompt", "To be",
                                     "--max-length", "3", "--temperature", "0"])
    assert again.exit_code == 0 and again.output.startswith("To be"), again.output


@pytest.mark.parametrize("extra, named", [
    (["--d-model", "32"], "--d-model"),
    (["--tokenizer", "bpe"], "--tokenizer"),
    (["--resume", "{ckpt}"], "--resume"),
    (["--context", "65"], "longer than the model's context"),
])
def test_init_from_refuses_what_the_checkpoint_fixes(gpt2_dir, corpus, tmp_path, extra, named):
    ckpt = tmp_path / "c.safetensors"
    ckpt.write_bytes(b"x")
    extra = [a.format(ckpt=ckpt) for a in extra]
    result = CliRunner().invoke(cli, ["language", "train", "--init-from", str(gpt2_dir), "--text", str(corpus),
                                      "--max-steps", "1", "--out", str(tmp_path / "o.safetensors"), *extra])
    assert result.exit_code in (1, 2) and named in result.output and "Traceback" not in result.output


def test_tokenizer_from_needs_init_from(corpus, tmp_path):
    result = CliRunner().invoke(cli, ["language", "train", "--text", str(corpus), "--tokenizer-from",
                                      str(GPT2_FILES), "--max-steps", "1"])
    assert result.exit_code in (1, 2) and "--tokenizer-from needs --init-from" in result.output


def test_from_pretrained_overrides_only_the_dropouts(gpt2_dir):
    config_path = gpt2_dir / "config.json"
    saved = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**saved, "attn_pdrop": 0.1, "resid_pdrop": 0.1, "embd_pdrop": 0.1}))
    try:
        assert TinyGPT.from_pretrained(gpt2_dir).config.site_dropout("resid") == 0.1  # the file's
        every = TinyGPT.from_pretrained(gpt2_dir, dropout=0.25).config
        assert [every.site_dropout(s) for s in ("embd", "attn", "resid")] == [0.25, 0.25, 0.25]
        one = TinyGPT.from_pretrained(gpt2_dir, attn_pdrop=0.0).config
        assert [one.site_dropout(s) for s in ("embd", "attn", "resid")] == [0.1, 0.0, 0.1]
        with pytest.raises(ValueError, match=r"cannot override \['d_model'\]"):
            TinyGPT.from_pretrained(gpt2_dir, d_model=8)
    finally:
        config_path.write_text(json.dumps(saved))
