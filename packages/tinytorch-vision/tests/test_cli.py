"""`tito vision` through click's CliRunner on the real tito group, and once as a subprocess."""

import json
import subprocess
import sys

from click.testing import CliRunner

from tito.main import cli


def test_datasets_json_and_table(fashion_root):
    result = CliRunner().invoke(cli, ["vision", "datasets", "--root", str(fashion_root), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    by_name = {d["name"]: d for d in info["datasets"]}
    assert by_name["fashion-mnist"]["present"] and not by_name["mnist"]["present"]
    assert by_name["fashion-mnist"]["folder"] == str(fashion_root / "fashion-mnist")
    table = CliRunner().invoke(cli, ["vision", "datasets", "--root", str(fashion_root)])
    assert table.exit_code == 0 and "fashion-mnist" in table.output and "missing" in table.output


def test_train_then_evaluate(fashion_root, tmp_path):
    ckpt = tmp_path / "run.safetensors"
    args = ["vision", "train", "fashion-mnist", "--root", str(fashion_root), "--epochs", "2",
            "--batch-size", "50", "--limit", "100", "--out", str(ckpt), "--threads", "1", "--val-fraction", "0"]
    result = CliRunner().invoke(cli, args + ["--json"])  # --val-fraction 0: the test set every epoch
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    evals = info["history"]["evals"]
    assert info["epochs"] == 2 and info["stop_reason"] == "epochs" and ckpt.exists()
    assert [row["epoch"] for row in evals] == [1, 2] and "test_accuracy" in evals[-1]
    assert "val_accuracy" not in evals[-1]  # the test set is never called validation
    assert info["test_accuracy"] == evals[-1]["test_accuracy"] and info["val_accuracy"] is None
    result = CliRunner().invoke(cli, ["vision", "evaluate", "--checkpoint", str(ckpt), "--root", str(fashion_root)])
    assert result.exit_code == 0, result.output
    assert "Ankle boot" in result.output and "accuracy" in result.output
    # Resuming a finished run trains nothing more; contradicting settings are refused.
    result = CliRunner().invoke(cli, ["vision", "train", "fashion-mnist", "--root", str(fashion_root),
                                      "--resume", str(ckpt), "--out", str(tmp_path / "again.safetensors"), "--json",
                                      "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["epochs"] == 2
    # An output never replaces the checkpoint a run continues from.
    before = ckpt.read_bytes()
    result = CliRunner().invoke(cli, ["vision", "train", "fashion-mnist", "--root", str(fashion_root),
                                      "--resume", str(ckpt), "--out", str(ckpt), "--epochs", "3"])
    assert result.exit_code != 0 and "--resume" in result.output and ckpt.read_bytes() == before, result.output
    result = CliRunner().invoke(cli, ["vision", "train", "mnist", "--resume", str(ckpt)])
    assert result.exit_code == 2 and "contradicts the checkpoint" in result.output
    # Train it longer: --epochs may grow on --resume (and never shrink).
    result = CliRunner().invoke(cli, ["vision", "train", "fashion-mnist", "--root", str(fashion_root),
                                      "--resume", str(ckpt), "--epochs", "3", "--json", "--threads", "1"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    continued = ckpt.with_name(f"{ckpt.stem}-2{ckpt.suffix}")  # the next free numbered name
    assert info["epochs"] == 3 and info["checkpoint"] == str(continued) and len(info["history"]["evals"]) == 3
    result = CliRunner().invoke(cli, ["vision", "train", "fashion-mnist", "--resume", str(ckpt), "--epochs", "1"])
    assert result.exit_code == 2 and "only train longer" in result.output


def test_divergence_exits_1_and_writes_no_diverged_checkpoint(fashion_root, tmp_path):
    ckpt = tmp_path / "run.safetensors"
    result = CliRunner().invoke(cli, ["vision", "train", "fashion-mnist", "--root", str(fashion_root), "--limit", "128",
                                      "--epochs", "1", "--lr", "1e30", "--model", "mlp", "--out", str(ckpt),
                                      "--threads", "1"])
    assert result.exit_code == 1, result.output
    assert "became" in result.output and f"no checkpoint was written to {ckpt}" in result.output
    assert not ckpt.exists()


def test_val_split_is_reported_apart_from_the_test_set(fashion_root, tmp_path):
    result = CliRunner().invoke(cli, ["vision", "train", "fashion-mnist", "--root", str(fashion_root), "--epochs", "1",
                                      "--batch-size", "50", "--val-fraction", "0.25", "--out",
                                      str(tmp_path / "m.safetensors"), "--json", "--threads", "1"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert "val_accuracy" in info["history"]["evals"][-1] and "test_accuracy" not in info["history"]["evals"][-1]
    assert info["val_accuracy"] == info["history"]["evals"][-1]["val_accuracy"]
    assert 0 <= info["test_accuracy"] <= 1


def test_by_default_validation_every_epoch_and_the_test_set_once(fashion_root, tmp_path):
    """Issue 22 §4: a held-out 10% of the training images is evaluated every epoch; the test
    accuracy is reported once, at the end, and is the checkpoint's accuracy on the test set."""
    ckpt = tmp_path / "m.safetensors"
    result = CliRunner().invoke(cli, ["vision", "train", "fashion-mnist", "--root", str(fashion_root), "--epochs", "2",
                                      "--batch-size", "50", "--limit", "200", "--out", str(ckpt), "--json",
                                      "--threads", "1"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    evals = info["history"]["evals"]
    assert info["config"]["val_fraction"] == 0.1 and [row["epoch"] for row in evals] == [1, 2]
    assert all("val_accuracy" in row and "test_accuracy" not in row for row in evals)
    tested = CliRunner().invoke(cli, ["vision", "evaluate", "--checkpoint", str(ckpt), "--root", str(fashion_root),
                                      "--json"])
    assert info["test_accuracy"] == json.loads(tested.output)["accuracy"]
    text = CliRunner().invoke(cli, ["vision", "train", "fashion-mnist", "--root", str(fashion_root), "--epochs", "1",
                                    "--batch-size", "50", "--limit", "200", "--out", str(tmp_path / "t.safetensors"),
                                    "--threads", "1"]).output
    assert "test accuracy" in text.splitlines()[-1] and "validation" in text.splitlines()[-1]
    assert sum("test" in line for line in text.splitlines()) == 1  # said once, at the end


def test_bad_out_and_nan_options_fail_before_training(fashion_root, tmp_path):
    for extra in (["--out", "/dev/null"], ["--out", str(tmp_path)], ["--lr", "nan"], ["--lr", "inf"]):
        result = CliRunner().invoke(cli, ["vision", "train", "fashion-mnist", "--root", str(fashion_root), *extra])
        assert result.exit_code in (1, 2), result.output
        assert "Traceback" not in result.output and "epoch" not in result.output


def test_bad_input_is_one_line_and_exit_1(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"definitely not a checkpoint")
    for args in (["vision", "evaluate", "--checkpoint", str(junk)],
                 ["vision", "train", "fashion-mnist", "--root", str(tmp_path / "empty")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert "train-images-idx3-ubyte.gz" in result.output and str(tmp_path / "empty") in result.output


def test_bad_option_is_a_usage_error():
    result = CliRunner().invoke(cli, ["vision", "train", "imagenet"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["vision", "train", "fashion-mnist", "--threads", "many"])
    assert result.exit_code == 2


def test_vision_as_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tito", "vision", "train", "cifar10", "--root", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "cifar-10-batches-py" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "tito", "vision", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "datasets" in proc.stdout


def test_ctrl_c_says_where_the_checkpoint_is_and_how_to_resume(fashion_root, tmp_path, monkeypatch):
    from tinytorch.core.training import accuracy
    from tinytorch.vision import train as train_module

    calls = []

    def interrupting_accuracy(out, y):  # Ctrl-C in epoch 2 (2 steps per epoch)
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return accuracy(out, y)

    monkeypatch.setattr(train_module, "accuracy", interrupting_accuracy)
    ckpt = tmp_path / "run.safetensors"
    result = CliRunner().invoke(cli, ["vision", "train", "fashion-mnist", "--root", str(fashion_root), "--epochs", "3",
                                      "--batch-size", "50", "--limit", "100", "--out", str(ckpt), "--threads", "1"])
    assert result.exit_code == 130, result.output
    assert f"the last checkpoint (epoch 1) is {ckpt}" in result.output
    assert f"continue with: tito vision train fashion-mnist --resume {ckpt}" in result.output


def test_nproc_2_trains_and_refuses_an_uneven_split(fashion_root, tmp_path):
    # The MLP has dropout, drawn per rank, so the figures differ from one process's; the exact
    # equivalence without dropout is tested in core (tests/test_distributed.py).
    args = ["vision", "train", "fashion-mnist", "--root", str(fashion_root), "--model", "mlp", "--no-augment",
            "--epochs", "2", "--batch-size", "50", "--limit", "100", "--json"]
    out = tmp_path / "two.safetensors"
    proc = subprocess.run([sys.executable, "-m", "tito", *args, "--out", str(out), "--nproc", "2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ranks = json.loads(proc.stdout)  # rank 0's report only: one JSON document
    assert [row["step"] for row in ranks["history"]["steps"]] == [1, 2, 3, 4]  # 100 images / 50 per step
    assert 0 <= ranks["test_accuracy"] <= 1 and ranks["epochs"] == 2
    from tinytorch.core import io

    assert io.load_metadata(out)["global_step"] == 4
    uneven = CliRunner().invoke(cli, args + ["--nproc", "3"])
    assert uneven.exit_code == 2 and "3 ranks cannot split a batch of 50 images evenly" in uneven.output


def test_plot_draws_the_runs_curves_and_no_progress_prints_none(fashion_root, tmp_path):
    """Issue 22 §3: `--plot FILE` draws the history; `--no-progress` means no progress lines
    (CliRunner's output is not a terminal, so "auto" would print plain lines)."""
    ckpt, png = tmp_path / "m.safetensors", tmp_path / "curves.png"
    args = ["vision", "train", "fashion-mnist", "--root", str(fashion_root), "--epochs", "2", "--batch-size", "50",
            "--limit", "200", "--out", str(ckpt), "--threads", "1", "--plot", str(png)]
    result = CliRunner().invoke(cli, args + ["--no-progress"])
    assert result.exit_code == 0, result.output
    assert not [line for line in result.output.splitlines() if line.startswith("step ")], result.output
    assert result.output.splitlines()[-1] == f"training curves: {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png.unlink()
    as_json = CliRunner().invoke(cli, args + ["--no-progress", "--json"])  # the JSON names the figure it drew
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["plot"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for bad, message in (("curves.jpg", "--plot must end in .png or .svg"), (str(ckpt), "--plot")):
        refused = CliRunner().invoke(cli, args[:-1] + [bad])
        assert refused.exit_code != 0 and message in refused.output and "epoch" not in refused.output
