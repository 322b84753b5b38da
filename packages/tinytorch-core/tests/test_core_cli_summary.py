"""`tito core summary` on a Trainer checkpoint: model parameters apart from optimizer state."""

from __future__ import annotations

import json
import re

import numpy as np
from click.testing import CliRunner

from tinytorch.core import Tensor, io, nn, optim
from tinytorch.core import functional as F
from tinytorch.core.data import DataLoader, TensorDataset
from tinytorch.core.training import Trainer
from tito.main import cli


def _trained_checkpoint(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    rng = np.random.default_rng(0)
    data = TensorDataset(Tensor(rng.standard_normal((16, 4)).astype(np.float32)),
                         Tensor(rng.integers(0, 3, 16)))
    trainer = Trainer(model, optim.Adam(model.parameters(), lr=1e-3), F.cross_entropy,
                      progress=False)
    trainer.fit(DataLoader(data, batch_size=8), epochs=1)
    path = tmp_path / "ckpt.safetensors"
    trainer.save_checkpoint(path)
    return path


def test_trainer_checkpoint_counts_model_apart_from_adam_state(tmp_path):
    path = _trained_checkpoint(tmp_path)
    params = 4 * 8 + 8 + 8 * 3 + 3  # 67
    result = CliRunner().invoke(cli, ["core", "summary", str(path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["parameters"] == params
    assert info["optimizer_state_elements"] == 2 * params  # Adam: exp_avg and exp_avg_sq
    assert info["elements"] == sum(int(np.prod(t["shape"])) for t in info["tensors"])
    text = CliRunner().invoke(cli, ["core", "summary", str(path)], env={"COLUMNS": "80"}).output
    assert "model parameters: 67 " in text and max(map(len, text.splitlines())) <= 80
    assert f"optimizer state: {2 * params} elements (2.00 x the model)" in text


def test_summary_table_fits_80_columns_with_every_name_and_number_intact(tmp_path):
    long = "model.blocks.11.attention.query_key_value_projection.weight"
    tensors = {long: np.zeros((1536, 512), np.float32), "model.bias": np.zeros(7, np.float16),
               "optimizer.state.0.exp_avg": np.zeros((1536, 512), np.float32)}
    path = tmp_path / "wide.safetensors"
    io.save(tensors, path, metadata={"history": {"loss": [float(i) for i in range(100)]}})
    result = CliRunner().invoke(cli, ["core", "summary", "--all", str(path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    for name, array in tensors.items():
        assert name in result.output
        assert f"{array.size:,}" in result.output
        assert str(array.shape) in result.output
    assert "float16" in result.output  # dtypes differ, so the column stays
    assert re.search(r"history: dict with 1 key \(\d[\d,]* characters; see --json\)", result.output)


def test_default_summary_is_layers_training_state_and_last_evaluation(tmp_path):
    path = _trained_checkpoint(tmp_path)
    history = io.inspect(path).metadata["history"]
    out = CliRunner().invoke(cli, ["core", "summary", str(path)], env={"COLUMNS": "100"}).output
    assert "optimizer.state" not in out and "model.0.weight" not in out  # no per-tensor rows
    rows = {line.split()[0]: line.split()[1:4] for line in out.splitlines() if line.startswith("  ")}
    assert rows["0"] == ["2", "40", "59.7%"] and rows["2"] == ["2", "27", "40.3%"]  # 4*8+8, 8*3+3
    state = next(line for line in out.splitlines() if line.startswith("training state: "))
    assert "step 2, epoch 1" in state and "Adam (lr 0.001)" in state and "stopped: epochs" in state
    assert "optimizer state: 134 elements (2.00 x the model)" in out
    assert "rng_state" not in out and "param_groups" not in out
    last = history["evals"][-1] if history["evals"] else None
    if last:
        assert f"loss {last['loss']:.4g}" in out
    every = CliRunner().invoke(cli, ["core", "summary", "--all", str(path)]).output
    assert every.count("optimizer.state.") == 8 and "rng_state: " in every


def test_last_evaluation_line_has_the_metrics_of_the_last_row():
    from tinytorch.core.cli import evaluation_line

    history = {"evals": [{"step": 10, "epoch": 1.0, "val_loss": 2.5, "time": 3.0},
                         {"step": 20, "epoch": 2.0, "val_loss": 1.25, "val_accuracy": 0.875, "time": 6.0,
                          "samples_per_sec": 900.0, "lr": 0.1}]}
    assert evaluation_line({"history": history}) == (
        "last evaluation (step 20, epoch 2): val_loss 1.25, val_accuracy 0.875")
    assert evaluation_line({"history": {"evals": []}}) is None and evaluation_line({}) is None


def _zero_size_file(path, n):
    io.save({f"t{i}": np.zeros((0,), np.float32) for i in range(n)}, path)
    return path


def test_summary_cost_is_linear_in_tensors_and_never_a_renderer_per_row(tmp_path, monkeypatch):
    """Issue 21 §4: 100k zero-size tensors took > 25 s in rich's Table. Complexity, not time:
    the output is one write, no rich rendering happens, each tensor is grouped once, and the
    default summary has a bounded number of lines whatever the number of tensors."""
    import click
    import rich.console

    from tinytorch.core import cli as core_cli

    renders, echoes, grouped = [], [], []
    real_render, real_echo, real_layer_of = rich.console.Console.render, click.echo, core_cli.layer_of
    monkeypatch.setattr(rich.console.Console, "render",
                        lambda self, *a, **k: renders.append(1) or real_render(self, *a, **k))
    monkeypatch.setattr(click, "echo", lambda *a, **k: echoes.append(1) or real_echo(*a, **k))
    monkeypatch.setattr(core_cli, "layer_of", lambda name: grouped.append(name) or real_layer_of(name))
    lengths = {}
    for n in (40, 4000):
        path = _zero_size_file(tmp_path / f"z{n}.safetensors", n)
        for flag in ([], ["--all"]):
            renders.clear(), echoes.clear(), grouped.clear()
            result = CliRunner().invoke(cli, ["core", "summary", *flag, str(path)])
            assert result.exit_code == 0, result.output
            assert renders == [] and len(echoes) == 1 and len(grouped) == n
            lengths[n, bool(flag)] = len(result.output.splitlines())
            if n == 4000 and not flag:
                assert "... and 3,970 more (0 parameters); --all lists every tensor" in result.output
    assert lengths[40, False] == lengths[4000, False] <= core_cli.MAX_GROUPS + 8
    assert lengths[4000, True] - lengths[40, True] == 4000 - 40  # --all: one line per tensor


def test_inspect_and_summary_help_say_what_each_is_for():
    """Issue 22 §4: the two commands had the same help text."""
    def description(command: str) -> str:
        result = CliRunner().invoke(cli, ["core", command, "--help"])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split("\n\n")[1].split())  # the paragraph under Usage

    inspect, summary = description("inspect"), description("summary")
    assert inspect != summary
    assert inspect.startswith("List every tensor") and summary.startswith("Summarize a checkpoint")
    assert "--all" in summary
