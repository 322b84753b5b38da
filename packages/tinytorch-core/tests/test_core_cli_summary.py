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
    result = CliRunner().invoke(cli, ["core", "summary", str(path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    for name, array in tensors.items():
        assert name in result.output
        assert f"{array.size:,}" in result.output
        assert str(array.shape) in result.output
    assert "float16" in result.output  # dtypes differ, so the column stays
    assert re.search(r"history: dict with 1 key \(\d[\d,]* characters; see --json\)", result.output)
