"""No `tito language` command writes over a file it reads, by any of its names (issue 21 §1)."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from tito.main import cli

TEXT = "To be, or not to be, that is the question.\n" * 40
TRAIN = ["language", "train", "--max-steps", "2", "--eval-every", "1", "--d-model", "32", "--heads", "2",
         "--layers", "1", "--context", "16", "--batch-size", "4", "--sample", "0"]


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text(TEXT, encoding="utf-8")
    (tmp_path / "link.txt").symlink_to(path)
    os.link(path, tmp_path / "hard.txt")
    return path


@pytest.mark.parametrize("name", ["victim.txt", "link.txt", "hard.txt"])
def test_train_refuses_an_out_that_is_its_text(victim, name):
    out = victim.parent / name
    result = CliRunner().invoke(cli, [*TRAIN, "--text", str(victim), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: --out {out}: it is an input of this command (--text")
    assert victim.read_text(encoding="utf-8") == TEXT


def test_train_refuses_an_out_inside_the_init_from_directory(tmp_path, victim):
    folder = tmp_path / "gpt2"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    result = CliRunner().invoke(cli, ["language", "train", "--init-from", str(folder),
                                      "--out", str(folder / "model.safetensors")])
    assert result.exit_code == 1 and "it is an input of this command (--init-from)" in result.output, result.output
    assert (folder / "model.safetensors").read_bytes() == b"weights"


def test_tokenize_refuses_to_save_over_its_text_or_its_tokenizer(tmp_path, victim):
    result = CliRunner().invoke(cli, ["language", "tokenize", "--tokenizer", "char", "--text", str(victim),
                                      "--save", str(victim.parent / "link.txt")])
    assert result.exit_code == 1 and "(--text: " in result.output and "through a symlink" in result.output
    assert victim.read_text(encoding="utf-8") == TEXT
    saved = tmp_path / "char.json"
    assert CliRunner().invoke(cli, ["language", "tokenize", "--tokenizer", "char", "--text", str(victim),
                                    "--save", str(saved)]).exit_code == 0
    before = saved.read_bytes()
    result = CliRunner().invoke(cli, ["language", "tokenize", "--text", str(victim), "--load", str(saved),
                                      "--save", str(saved)])
    assert result.exit_code == 1 and "it is an input of this command (--load)" in result.output
    assert saved.read_bytes() == before
