"""`tito language distill` and `LanguageModelTrainer(teacher=...)`: a smaller TinyGPT taught by a larger one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinytorch.core import manual_seed
from tinytorch.language import CharTokenizer, LanguageModelTrainer, TinyGPT
from tinytorch.language.training import load_checkpoint
from tito.main import cli

TEXT = "To be, or not to be, that is the question.\n" * 40
RUN = ["--batch-size", "4", "--max-steps", "6", "--eval-every", "3", "--eval-batches", "2", "--warmup", "1",
       "--threads", "1", "--sample", "0", "--json"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("teacher") / "teacher.safetensors"
    result = CliRunner().invoke(cli, ["language", "train", "--text", str(corpus), "--d-model", "16", "--heads", "2",
                                      "--layers", "2", "--context", "16", *RUN, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _invoke(*args):
    result = CliRunner().invoke(cli, ["language", *map(str, args)])
    return result, (json.loads(result.output.strip().splitlines()[-1]) if result.exit_code == 0 else None)


def _one_error_line(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def test_distill_writes_a_half_width_student_that_generates(teacher, corpus, tmp_path):
    out = tmp_path / "student.safetensors"
    result, report = _invoke("distill", "--teacher", teacher, "--text", corpus, "--out", out,
                             "--temperature", "3", "--alpha", "0.7", *RUN)
    assert result.exit_code == 0, result.output
    assert report["steps"] == 6 and report["temperature"] == 3.0 and report["alpha"] == 0.7
    student, tokenizer, meta = load_checkpoint(out)
    assert student.config.d_model == 8 and student.config.num_layers == 2  # half the width by default
    assert meta["tinytorch.language"]["train"]["distillation"]["temperature"] == 3.0
    assert report["student_parameters"] == student.num_parameters() < report["teacher_parameters"]
    generated = CliRunner().invoke(cli, ["language", "generate", "--checkpoint", str(out), "--prompt", "To",
                                         "--max-length", "5", "--seed", "0"])
    assert generated.exit_code == 0 and generated.output.startswith("To")


def test_alpha_zero_is_exactly_training_alone(teacher, corpus, tmp_path):
    """With alpha 0 the loss is the cross-entropy alone: the same seed must then give the very same
    run as `train` (same initial weights, same batches), so the benchmark's comparison is fair."""
    size = ["--d-model", "8", "--heads", "2", "--layers", "1", "--context", "16", "--lr", "0.003",
            "--val-fraction", "0.1", "--seed", "3"]
    _, distilled = _invoke("distill", "--teacher", teacher, "--text", corpus, "--out", tmp_path / "d.safetensors",
                           "--alpha", "0", *size, *RUN)
    _, alone = _invoke("train", "--text", corpus, "--out", tmp_path / "a.safetensors", *size, *RUN)
    assert distilled["val_loss"] == alone["val_loss"] and distilled["train_loss"] == alone["train_loss"]
    _, taught = _invoke("distill", "--teacher", teacher, "--text", corpus, "--out", tmp_path / "t.safetensors",
                        "--alpha", "0.9", *size, *RUN)
    assert taught["val_loss"] != alone["val_loss"]  # the teacher's term changes the run


def test_student_with_another_vocabulary_is_refused(teacher, tmp_path):
    other_text = tmp_path / "other.txt"
    other_text.write_text("xyz qrs, uvw!\n" * 60, encoding="utf-8")
    other = tmp_path / "other.safetensors"
    result, _ = _invoke("train", "--text", other_text, "--d-model", "8", "--heads", "2", "--layers", "1",
                        "--context", "16", *RUN, "--out", other)
    assert result.exit_code == 0, result.output
    result, _ = _invoke("distill", "--teacher", teacher, "--student", other, "--out", tmp_path / "s.safetensors", *RUN)
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "has another vocabulary than --teacher" in line and "CharTokenizer with" in line
    result, _ = _invoke("distill", "--teacher", teacher, "--student", other, "--d-model", "8",
                        "--out", tmp_path / "s.safetensors", *RUN)
    assert result.exit_code == 2 and "--d-model cannot be combined with --student" in _one_error_line(result)


@pytest.mark.parametrize("option,value,message", [
    ("--temperature", "0", "--temperature"), ("--temperature", "nan", "--temperature"),
    ("--temperature", "-2", "--temperature"), ("--alpha", "1.5", "--alpha"), ("--alpha", "-0.1", "--alpha"),
    ("--context", "17", "the student's context 17 is longer than the teacher's (16 positions)"),
    ("--heads", "3", "d_model 8 is not divisible by its 3 heads"),
])
def test_bad_options_are_one_line_and_non_zero(teacher, tmp_path, option, value, message):
    result, _ = _invoke("distill", "--teacher", teacher, "--out", tmp_path / "s.safetensors", option, value)
    assert result.exit_code == 2
    assert message in _one_error_line(result)
    assert not (tmp_path / "s.safetensors").exists()


def test_out_may_not_be_an_input(teacher, corpus):
    result, _ = _invoke("distill", "--teacher", teacher, "--text", corpus, "--out", teacher)
    assert result.exit_code == 1
    assert "it is an input of this command (--teacher)" in _one_error_line(result)
    result, _ = _invoke("distill", "--teacher", teacher, "--out", corpus)
    assert result.exit_code == 1


def test_trainer_refuses_a_teacher_with_another_vocabulary():
    tok = CharTokenizer().fit("abc ")
    manual_seed(0)
    student = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=1, max_seq_len=8)
    with pytest.raises(ValueError, match="the teacher's vocab_size is 5 but the student's is 4"):
        LanguageModelTrainer(student, tok, teacher=TinyGPT(5, d_model=8, num_heads=2, num_layers=1, max_seq_len=8))
    short = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=1, max_seq_len=4)
    with pytest.raises(ValueError, match="seq_len 8 exceeds the teacher's max_seq_len=4"):
        LanguageModelTrainer(student, tok, teacher=short).fit("abc " * 40, max_steps=1, batch_size=2)


def test_trainer_distillation_leaves_the_teacher_untouched():
    tok = CharTokenizer().fit("abc d")
    manual_seed(0)
    teacher = TinyGPT(tok.vocab_size, d_model=16, num_heads=2, num_layers=1, max_seq_len=8, dropout=0.5)
    before = {k: v.copy() for k, v in teacher.state_dict().items()}
    student = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=1, max_seq_len=8)
    lm = LanguageModelTrainer(student, tok, teacher=teacher, temperature=2.0, alpha=0.5)
    lm.fit("abc d " * 50, max_steps=3, batch_size=2, warmup=0, seed=0)
    assert all(p.grad is None for p in teacher.parameters()) and not teacher.training
    assert all(np.array_equal(v, before[k]) for k, v in teacher.state_dict().items())
    assert any(p.grad is not None for p in student.parameters())
