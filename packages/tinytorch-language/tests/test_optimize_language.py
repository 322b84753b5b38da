"""`tito performance optimize` on a tiny TinyGPT checkpoint: weight-only int8/int4, pruning with
fine-tuning, W8A8, all saved as checkpoints the language loader reads again; and on a tiny GPT-2
directory (Hugging Face's layout), whose optimized file is evaluated as the directory is."""

import json
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from tinytorch.core import manual_seed
from tinytorch.language import CharTokenizer, TinyGPT
from tinytorch.language.data import load_shakespeare
from tinytorch.language.training import benchmark_target, load_checkpoint, save_model
from tito.main import cli


@pytest.fixture(scope="module")
def _saved(tmp_path_factory):
    # an untrained model saved with training settings: what the loader reads (training it would
    # only cost time; the figures compared are the reports' own)
    text = load_shakespeare()
    manual_seed(0)
    tok = CharTokenizer().fit(text)
    model = TinyGPT(tok.vocab_size, d_model=32, num_heads=2, num_layers=1, max_seq_len=32)
    path = tmp_path_factory.mktemp("lm") / "lm.safetensors"
    save_model(path, model, tok, {"seq_len": 32, "val_fraction": 0.1, "batch_size": 8, "seed": 0})
    return path


@pytest.fixture
def checkpoint(_saved, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "250")
    return _saved


FAST = ["--min-queries", "4", "--min-duration", "0", "--batch-size", "4", "--layer-repeats", "1",
        "--limit", "8"]


def _ratio(output: str, metric: str) -> float:
    line = next(line for line in output.splitlines() if line.lstrip("│┃ ").startswith(metric))
    return float(re.findall(r"([0-9.]+)x", line)[-1])


@pytest.mark.parametrize("extra, head_type", [
    (["--quantize", "int8"], "Int8WeightOnlyLinear"),
    (["--quantize", "int4", "--prune", "0.3", "--finetune-steps", "1"], "Int4WeightOnlyLinear"),
    (["--quantize", "w8a8"], "QuantizedLinear"),
])
def test_optimize_a_tinygpt_checkpoint(checkpoint, tmp_path, extra, head_type):
    out, report = tmp_path / "opt.safetensors", tmp_path / "opt.json"
    result = CliRunner().invoke(cli, ["performance", "optimize", str(checkpoint), *extra, *FAST,
                                      "--out", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    model, _, _ = load_checkpoint(out)
    assert type(model.blocks[0].mlp.fc).__name__ == head_type
    assert out.stat().st_size < checkpoint.stat().st_size
    data = json.loads(report.read_text())
    before, after = data["before"], data["after"]
    assert _ratio(result.output, "val_loss") == pytest.approx(
        after["accuracy"]["value"] / before["accuracy"]["value"], abs=6e-4)
    assert _ratio(result.output, "model tensors on disk") == pytest.approx(
        after["model"]["disk_model_bytes"] / before["model"]["disk_model_bytes"], abs=6e-4)
    target = benchmark_target(str(out), 8)
    assert target["evaluate"](target["model"], 8)["value"] == pytest.approx(after["accuracy"]["value"], rel=1e-9)
    windows = target["inputs"](np.arange(2))
    assert windows.shape == (2, 32)


def test_calibration_reads_training_windows_not_validation(checkpoint):
    target = benchmark_target(str(checkpoint))
    batches = target["calibration"](20)
    assert sum(len(b) for b in batches) == 20 and batches[0].shape[1] == 32
    val = target["inputs"](np.arange(target["num_samples"]))  # every validation window
    val_rows = {row.tobytes() for row in val}
    assert not any(row.tobytes() in val_rows for b in batches for row in b)


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_structured_pruning_of_heads_and_neurons_round_trips(checkpoint, tmp_path, quantize):
    out, report = tmp_path / "small.safetensors", tmp_path / "small.json"
    result = CliRunner().invoke(cli, ["performance", "optimize", str(checkpoint), "--quantize", quantize, "--prune",
                                      "0.5", "--structured", "--finetune-steps", "1", *FAST, "--out", str(out),
                                      "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "blocks.0.attn 2->1, blocks.0.mlp.fc 128->64" in result.output
    model, _, meta = load_checkpoint(out)
    assert (model.config.layer_heads, model.config.layer_d_ff) == ([1], [64])
    assert meta["tinytorch.language"]["format_version"] == 2
    assert model.blocks[0].attn.qkv.out_features == 3 * 16 and model.blocks[0].mlp.proj.in_features == 64
    data = json.loads(report.read_text())
    assert data["flops"][1] < data["flops"][0]
    fc = next(c for c in data["layers"] if c["name"] == "blocks.0.mlp.fc")
    assert fc["flops"][0] == 2 * fc["flops"][1]  # half the neurons: half the multiply-adds
    target = benchmark_target(str(out), 8)  # the file benchmarks on its own
    assert target["evaluate"](target["model"], 8)["value"] == pytest.approx(data["after"]["accuracy"]["value"], rel=1e-9)


@pytest.fixture(scope="module")
def _gpt2_directory(tmp_path_factory):
    from tinytorch.core.datafiles import dataset_folder

    try:
        files = dataset_folder("gpt2-tokenizer")
    except (FileNotFoundError, ValueError):
        pytest.skip("GPT-2's tokenizer files are not in $TINYTORCH_DATA")
    if not (files / "encoder.json").exists():
        pytest.skip("GPT-2's tokenizer files are not in $TINYTORCH_DATA")
    manual_seed(0)
    directory = tmp_path_factory.mktemp("gpt2") / "tiny-gpt2"
    TinyGPT(50257, d_model=32, num_heads=2, num_layers=1, max_seq_len=32).save_pretrained(directory)
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(files / name, directory / name)
    return directory


def test_optimize_a_gpt2_directory(_gpt2_directory, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "250")
    out, report = tmp_path / "gpt2_int8.safetensors", tmp_path / "opt.json"
    result = CliRunner().invoke(cli, ["performance", "optimize", str(_gpt2_directory), "--quantize", "int8",
                                      *FAST, "--out", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    model, _, meta = load_checkpoint(out)
    assert type(model.lm_head).__name__ == "Int8WeightOnlyLinear"
    assert meta["tinytorch.language"]["pretrained"] == str(_gpt2_directory)
    before, after = (json.loads(report.read_text())[k]["accuracy"] for k in ("before", "after"))
    # the optimized file is evaluated as the directory was: same text, split and windows
    assert after["dataset"] == before["dataset"] == "Tiny Shakespeare validation split (last 10% of the characters)"
    assert (after["seq_len"], after["tokens"]) == (before["seq_len"], before["tokens"]) == (32, 8 * 32)
    # int8 weights move a random model's loss (about ln 50257) by little
    assert after["value"] == pytest.approx(before["value"], abs=0.01) and before["value"] == pytest.approx(
        np.log(50257), rel=0.05)
    target = benchmark_target(str(out), 8)
    assert target["finetune"] is None and target["inputs"](np.arange(2)).shape == (2, 32)


def test_the_layer_table_of_a_large_model_times_fewer_samples(_gpt2_directory, tmp_path, monkeypatch):
    """Every layer's input is held at once for the layer table: over the budget (GPT-2 124M at the
    Offline batch would hold 6.8 GB), the layers are timed on fewer samples, and the report says so."""
    import tinytorch.perf.optimize as optimize_module

    monkeypatch.setenv("TINYTORCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(optimize_module, "LAYER_INPUTS_BUDGET", 3 * 150_000)  # about 3 samples of both models
    out, report = tmp_path / "gpt2_int8.safetensors", tmp_path / "opt.json"
    result = CliRunner().invoke(cli, ["performance", "optimize", str(_gpt2_directory), "--quantize", "int8",
                                      *FAST, "--out", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    batch, samples = data["before"]["settings"]["batch_size"], data["layer_batch"]
    assert 1 <= samples < batch and data["layer_inputs_bytes"] > optimize_module.LAYER_INPUTS_BUDGET
    assert f"{samples} samples of the Offline batch of {batch}" in " ".join(result.output.split())
    # the layers were traced and timed on those samples: lm_head's (B·T, 32) @ (32, 50257)
    lm_head = next(c for c in data["layers"] if c["name"] == "lm_head")
    assert lm_head["flops"][0] == 2 * samples * 32 * 32 * 50257
    # the whole model's count is the batch's: int8 weights do the same multiply-adds
    assert data["flops"][0] == data["flops"][1] > 2 * batch * 32 * 32 * 50257


def test_optimize_a_gpt2_directory_refuses_fine_tuning_at_once(_gpt2_directory, tmp_path):
    out = tmp_path / "never.safetensors"
    result = CliRunner().invoke(cli, ["performance", "optimize", str(_gpt2_directory), "--quantize", "int8",
                                      "--prune", "0.5", "--finetune-steps", "3", *FAST, "--out", str(out)])
    assert result.exit_code != 0 and not out.exists()
    assert result.output.count("\n") == 1 and "--finetune-steps" in result.output
    assert "GPT-2 directory" in result.output and "benchmarking" not in result.output
