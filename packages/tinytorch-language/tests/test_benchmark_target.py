"""The language loader of `tito performance benchmark` (the tinytorch.benchmarks entry point)."""

import shutil

import numpy as np
import pytest

from tinytorch.core import manual_seed
from tinytorch.language import CharTokenizer, TinyGPT
from tinytorch.language.data import load_shakespeare, split_tokens
from tinytorch.language.training import LanguageModelTrainer, benchmark_target


def test_validation_loss_is_the_one_training_reported(tmp_path):
    text = load_shakespeare()
    manual_seed(0)
    tok = CharTokenizer().fit(text)
    model = TinyGPT(tok.vocab_size, d_model=16, num_heads=2, num_layers=1, max_seq_len=64)
    lm = LanguageModelTrainer(model, tok)
    # val_fraction 0.02 (not the default 0.1): the loader must use the checkpoint's split. A small
    # split keeps the two full evaluations (training's last one, the benchmark's) at ~350 windows.
    history = lm.fit(text, max_steps=2, batch_size=8, seq_len=64, val_fraction=0.02, warmup=0, seed=0)
    lm.save_checkpoint(tmp_path / "lm.safetensors")
    target = benchmark_target(str(tmp_path / "lm.safetensors"))
    result = target["evaluate"](target["model"], None)
    assert result["metric"] == "val_loss" and not result["higher_is_better"]
    assert result["value"] == pytest.approx(history.evals[-1]["val_loss"], rel=1e-6)
    assert "last 2%" in result["dataset"] and result["seq_len"] == 64
    _, val = split_tokens(np.asarray(tok.encode(text)), 0.02)
    assert target["num_samples"] == (len(val) - 1) // 64 == result["samples"]
    np.testing.assert_array_equal(target["inputs"](np.array([0, 2])), np.stack([val[:64], val[128:192]]))
    assert target["evaluate"](target["model"], 5)["tokens"] == 5 * 64


def test_gpt2_directory_needs_its_tokenizer(tmp_path):
    from tinytorch.core.datafiles import dataset_folder

    try:
        gpt2 = dataset_folder("gpt2-tokenizer")
    except (FileNotFoundError, ValueError):
        pytest.skip("GPT-2's tokenizer files are not in $TINYTORCH_DATA")
    if not (gpt2 / "encoder.json").exists():
        pytest.skip("GPT-2's tokenizer files are not in $TINYTORCH_DATA")
    manual_seed(0)
    model = TinyGPT(50257, d_model=8, num_heads=2, num_layers=1, max_seq_len=32)
    directory = tmp_path / "gpt2"
    model.save_pretrained(directory)
    with pytest.raises(FileNotFoundError, match="needs GPT-2's tokenizer files"):
        benchmark_target(str(directory))
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(gpt2 / name, directory / name)
    target = benchmark_target(str(directory))
    assert target["inputs"](np.arange(3)).shape == (3, 32)  # the model's context is below 128
    result = target["evaluate"](target["model"], 4)
    assert result["samples"] == 4 and result["value"] == pytest.approx(np.log(50257), rel=0.05)


def test_other_paths_are_not_claimed(tmp_path):
    from tinytorch.core import nn
    from tinytorch.core.checkpoint import save_model_state

    save_model_state(tmp_path / "w.safetensors", nn.Linear(2, 2), {"vision": {"kind": "x"}})
    assert benchmark_target(str(tmp_path / "w.safetensors")) is None
    assert benchmark_target(str(tmp_path)) is None  # a directory without config.json


def test_a_bad_pretrained_record_is_named(tmp_path):
    from tinytorch.core.checkpoint import save_model_state
    from tinytorch.language.training import _language_metadata, load_checkpoint

    tok = CharTokenizer().fit("ab")
    model = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=1, max_seq_len=4)
    metadata = {"kind": "tinytorch.language.model", **_language_metadata(model, tok)}
    metadata["tinytorch.language"]["pretrained"] = ["gpt2"]
    save_model_state(tmp_path / "lm.safetensors", model, metadata)
    with pytest.raises(ValueError, match=r"lm.safetensors: its 'pretrained' metadata .* got \['gpt2'\]"):
        load_checkpoint(tmp_path / "lm.safetensors")
