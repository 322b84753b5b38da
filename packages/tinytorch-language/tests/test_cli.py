"""`tito language` through click's CliRunner on tito's real group, and once as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from tito.main import cli

SMALL = ["--d-model", "16", "--heads", "2", "--layers", "1", "--context", "16", "--batch-size", "4",
         "--max-steps", "6", "--eval-every", "3", "--eval-batches", "2", "--warmup", "1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text("To be, or not to be, that is the question.\n" * 40, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("ckpt") / "m.safetensors"
    result = CliRunner().invoke(cli, ["language", "train", "--text", str(corpus), *SMALL,
                                      "--out", str(out), "--json", "--sample", "20"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["steps"] == 6 and report["val_loss"] > 0 and len(report["sample"]) > 0
    assert report["stop_reason"] == "steps" and report["checkpoint_step"] == 6
    return out


def test_generate_from_checkpoint(checkpoint):
    result = CliRunner().invoke(cli, ["language", "generate", "--checkpoint", str(checkpoint),
                                      "--prompt", "To be", "--max-length", "30", "--seed", "0"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("To be")


def test_generate_json_reports_speed(checkpoint):
    result = CliRunner().invoke(cli, ["language", "generate", "--checkpoint", str(checkpoint),
                                      "--max-length", "10", "--json"])
    data = json.loads(result.output)
    assert data["new_tokens"] == 10 and data["tokens_per_sec"] > 0


def test_tokenize_reports_compression(corpus, tmp_path):
    saved = tmp_path / "bpe.json"
    result = CliRunner().invoke(cli, ["language", "tokenize", "--text", str(corpus), "--vocab-size", "280",
                                      "--save", str(saved), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["vocab_size"] == 280 and report["roundtrip"] and report["chars_per_token"] > 1
    again = CliRunner().invoke(cli, ["language", "tokenize", "--text", str(corpus), "--load", str(saved), "--json"])
    assert json.loads(again.output)["tokens"] == report["tokens"]


def test_tokenize_table_output(corpus):
    result = CliRunner().invoke(cli, ["language", "tokenize", "--text", str(corpus), "--tokenizer", "char",
                                      "--show", "3"])
    assert result.exit_code == 0 and "chars per token" in result.output


def test_bad_prompt_is_one_line_exit_1(checkpoint):
    result = CliRunner().invoke(cli, ["language", "generate", "--checkpoint", str(checkpoint),
                                      "--prompt", "Zebra 🙂"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "not in the vocabulary" in lines[0]


def test_foreign_checkpoint_is_one_line_exit_1(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    result = CliRunner().invoke(cli, ["language", "generate", "--checkpoint", str(bad)])
    assert result.exit_code == 1
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def test_bad_option_is_usage_error():
    result = CliRunner().invoke(cli, ["language", "train", "--heads", "0"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_incompatible_model_shape_is_one_line(corpus, tmp_path):
    result = CliRunner().invoke(cli, ["language", "train", "--text", str(corpus), "--d-model", "10",
                                      "--heads", "3", "--out", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 1 and "divisible" in result.output


def test_subprocess_tito_language(checkpoint):
    proc = subprocess.run(
        [sys.executable, "-m", "tito", "language", "generate", "--checkpoint", str(checkpoint),
         "--prompt", "To", "--max-length", "5", "--seed", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("To")
    bad = subprocess.run([sys.executable, "-m", "tito", "language", "generate", "--checkpoint",
                          str(checkpoint), "--top-p", "0.5", "--prompt", "\u00df"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_time_budget_must_be_finite_and_positive(value):
    result = CliRunner().invoke(cli, ["language", "train", "--time-budget", value])
    assert result.exit_code == 2 and "--time-budget" in result.output and "Traceback" not in result.output


def test_bad_out_fails_before_training(corpus, tmp_path):
    for out in (str(tmp_path), "/dev/null"):
        result = CliRunner().invoke(cli, ["language", "train", "--text", str(corpus), *SMALL, "--out", out])
        assert result.exit_code in (1, 2) and "--out" in result.output, result.output
        assert "steps in" not in result.output and "Traceback" not in result.output  # nothing trained


def test_resume_continues_the_checkpoint_and_refuses_contradictions(checkpoint, corpus, tmp_path):
    copy = tmp_path / "run.safetensors"
    copy.write_bytes(checkpoint.read_bytes())
    result = CliRunner().invoke(cli, ["language", "train", "--text", str(corpus), "--resume", str(copy),
                                      "--max-steps", "9", "--json", "--sample", "0"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    # No --out: the resumed run writes the next numbered file beside it, and the input is kept.
    assert report["checkpoint"] == str(tmp_path / "run-2.safetensors") and report["checkpoint_step"] == 9
    assert copy.read_bytes() == checkpoint.read_bytes()
    same = CliRunner().invoke(cli, ["language", "train", "--text", str(corpus), "--resume", str(copy),
                                    "--out", str(copy), "--max-steps", "12", "--sample", "0"])
    assert same.exit_code != 0 and "--resume" in same.output and "--out" in same.output, same.output
    assert copy.read_bytes() == checkpoint.read_bytes()
    assert report["settings"]["batch_size"] == 4 and report["settings"]["warmup"] == 1
    for extra, named in ((["--lr", "0.5"], "lr=0.5"), (["--d-model", "32"], "--d-model"),
                         (["--batch-size", "8"], "batch_size=8")):
        bad = CliRunner().invoke(cli, ["language", "train", "--text", str(corpus), "--resume", str(copy),
                                       "--max-steps", "12", *extra])
        assert bad.exit_code in (1, 2) and named in bad.output, bad.output
    other = tmp_path / "other.txt"
    other.write_text("Something else entirely. " * 80, encoding="utf-8")
    bad = CliRunner().invoke(cli, ["language", "train", "--text", str(other), "--resume", str(copy),
                                   "--max-steps", "12"])
    assert bad.exit_code == 1 and "different text" in bad.output


def test_divergence_exits_nonzero_and_keeps_the_checkpoint(checkpoint, corpus, tmp_path):
    copy = tmp_path / "run.safetensors"
    copy.write_bytes(checkpoint.read_bytes())
    before = copy.read_bytes()
    # lr 1e30: step 1 is taken (finite), step 2's loss is inf, before the first evaluation at 3.
    result = CliRunner().invoke(cli, ["language", "train", "--text", str(corpus), *SMALL, "--lr", "1e30",
                                      "--out", str(copy), "--sample", "0"])
    assert result.exit_code == 1, result.output
    assert "became" in result.output and "Traceback" not in result.output
    assert "checkpoint (step 6)" in result.output and "is unchanged" in result.output
    assert copy.read_bytes() == before


def test_ctrl_c_says_where_the_checkpoint_is_and_how_to_resume(corpus, tmp_path, monkeypatch):
    from tinytorch.core import functional as F
    from tinytorch.language import training

    calls = []

    def interrupted_loss(logits, targets):  # Ctrl-C during step 5: the checkpoint is step 3's
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return F.cross_entropy(logits, targets)

    monkeypatch.setattr(training, "lm_loss", interrupted_loss)
    out = tmp_path / "run.safetensors"
    result = CliRunner().invoke(cli, ["language", "train", "--text", str(corpus), *SMALL, "--out", str(out),
                                      "--eval-batches", "1"])
    assert result.exit_code == 130, result.output
    assert f"the last checkpoint (step 3) is {out}" in result.output
    assert f"continue with: tito language train --resume {out}" in result.output
    from tinytorch.core import io

    assert io.load_metadata(out)["global_step"] == 3


def test_nproc_2_trains_as_one_process_with_the_whole_batch(corpus, tmp_path):
    args = ["language", "train", "--text", str(corpus), *SMALL, "--json", "--sample", "0"]
    one = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "one.safetensors")])
    assert one.exit_code == 0, one.output
    proc = subprocess.run([sys.executable, "-m", "tito", *args, "--out", str(tmp_path / "two.safetensors"),
                           "--nproc", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    single, ranks = json.loads(one.output.strip().splitlines()[-1]), json.loads(proc.stdout.strip().splitlines()[-1])
    assert ranks["steps"] == single["steps"] == 6 and ranks["checkpoint_step"] == 6
    assert ranks["threads"] == 1  # a rank of the launcher: one BLAS thread
    assert ranks["train_loss"] == pytest.approx(single["train_loss"], rel=1e-5)
    assert ranks["val_loss"] == pytest.approx(single["val_loss"], rel=1e-5)  # the final, full evaluation


def test_nproc_that_cannot_split_the_batch_is_refused(corpus):
    result = CliRunner().invoke(cli, ["language", "train", "--text", str(corpus), *SMALL, "--nproc", "3"])
    assert result.exit_code == 2 and "3 ranks cannot split a batch of 4 sequences evenly" in result.output
    result = CliRunner().invoke(cli, ["language", "train", "--nproc", "zero"])
    assert result.exit_code == 2 and "nproc must be a positive integer or 'auto'" in result.output


def test_train_on_a_machine_that_becomes_busy_ends_within_the_budget_and_says_so(corpus, tmp_path, monkeypatch):
    # A fake clock: every TinyGPT forward (training or evaluation) costs 0.1 s, 0.5 s from 10 s
    # of the 20 s budget on, so the final evaluation no longer fits whole and is shortened.
    from tinytorch.language.model import TinyGPT

    clock = {"now": 1000.0}
    forward = TinyGPT.forward

    def slow_forward(self, *args, **kwargs):
        clock["now"] += 0.5 if clock["now"] >= 1010.05 else 0.1
        return forward(self, *args, **kwargs)

    monkeypatch.setattr("time.perf_counter", lambda: clock["now"])
    monkeypatch.setattr(TinyGPT, "forward", slow_forward)
    options = [o for o in SMALL if o not in ("--max-steps", "6")]
    out = tmp_path / "m.safetensors"
    result = CliRunner().invoke(cli, ["language", "train", "--text", str(corpus), *options, "--val-fraction", "0.5",
                                      "--time-budget", "20", "--sample", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = result.output.strip().splitlines()[-1]
    assert "time budget reached; the machine became busy (steps 5.0x slower)" in summary
    assert clock["now"] - 1000.0 <= 20.0 * 1.05


def test_plot_and_no_progress(corpus, tmp_path):
    """`--plot FILE` draws loss, perplexity and the LR schedule; `--no-progress`: no step lines,
    while without it a log (CliRunner's output is not a terminal) gets them."""
    out, png = tmp_path / "m.safetensors", tmp_path / "curves.svg"
    quiet = CliRunner().invoke(cli, ["language", "train", "--text", str(corpus), *SMALL, "--out", str(out),
                                     "--sample", "0", "--plot", str(png), "--no-progress"])
    assert quiet.exit_code == 0, quiet.output
    assert not [line for line in quiet.output.splitlines() if line.startswith("step ")], quiet.output
    assert f"training curves: {png}" in quiet.output and png.read_text().lstrip().startswith("<?xml")
    assert "perplexity" in png.read_text()
    loud = CliRunner().invoke(cli, ["language", "train", "--text", str(corpus), *SMALL, "--out", str(out),
                                    "--sample", "0"])
    assert [line.split()[1] for line in loud.output.splitlines() if line.startswith("step ")] == ["3/6", "6/6"]
    drawn = CliRunner().invoke(cli, ["plot", str(out), "--out", str(tmp_path / "again.png")])
    assert drawn.exit_code == 0 and "6 steps, 2 evaluations" in drawn.output, drawn.output


def test_the_readme_main_job_needs_only_the_packaged_text(tmp_path, monkeypatch):
    """Issue 22 §1: the README's two commands (train, then generate from the checkpoint) need
    nothing from a data folder: with $TINYTORCH_DATA an empty folder they train on the packaged
    Tiny Shakespeare and generate from the checkpoint alone."""
    monkeypatch.setenv("TINYTORCH_DATA", str(tmp_path / "empty"))
    out = tmp_path / "checkpoints" / "tinygpt.safetensors"
    result = CliRunner().invoke(cli, ["language", "train", *SMALL, "--max-steps", "2", "--eval-every", "2",
                                      "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["steps"] == 2 and out.is_file(), report
    generated = CliRunner().invoke(cli, ["language", "generate", "--checkpoint", str(out), "--prompt", "ROMEO:",
                                         "--max-length", "20", "--seed", "0"])
    assert generated.exit_code == 0 and generated.output.startswith("ROMEO:"), generated.output
    assert not (tmp_path / "empty").exists()
