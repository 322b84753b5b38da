"""The progress display wherever the learner is: a log file (plain lines), Jupyter (an HTML
display without widgets), a terminal (the bar), and none at all with ``progress=False``."""

import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from tinytorch.core import manual_seed, nn, optim
from tinytorch.core.callbacks import ProgressBar
from tinytorch.core.data import DataLoader, TensorDataset
from tinytorch.core.training import Trainer, accuracy


def make_trainer(**kwargs):
    manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    return Trainer(model, optim.Adam(model.parameters(), lr=0.05), nn.CrossEntropyLoss(),
                   metrics={"accuracy": accuracy}, **kwargs)


def loader():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype(np.float32)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).astype(np.int64)), batch_size=8)


def test_lines_every_n_steps_carry_the_mean_loss_since_the_previous_line(capsys):
    trainer = make_trainer(progress=ProgressBar("lines", every_steps=3))
    history = trainer.fit(loader(), max_steps=9)
    lines = capsys.readouterr().out.strip().splitlines()
    step_lines = [line for line in lines if "epoch" not in line]
    assert [line.split()[1] for line in step_lines] == ["3/9", "6/9", "9/9"]
    losses = [row["loss"] for row in history.steps]
    for i, line in enumerate(step_lines):
        printed = float(line.split("loss ")[1].split()[0])
        assert printed == pytest.approx(np.mean(losses[3 * i:3 * i + 3]), abs=1e-4)
        assert "samples/s" in line
    assert len(lines) == len(step_lines) + 2  # an evaluation line at the epoch's end and at the end


def test_auto_in_a_log_file_prints_lines_and_false_prints_nothing(tmp_path):
    """stdout redirected to a file, as `python train.py > log` or nohup: before, "auto" printed nothing."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
        from test_progress import loader, make_trainer
        from tinytorch.core.callbacks import ProgressBar
        ProgressBar.LINE_SECONDS = 0.0  # a line after every step, instead of every 10 s
        make_trainer(progress=sys.argv[1] == "auto" and "auto").fit(loader(), max_steps=5)
    """))
    for arg, expected in (("auto", 5 + 1), ("off", 0)):
        log = tmp_path / f"{arg}.log"
        with open(log, "w") as out:
            proc = subprocess.run([sys.executable, str(script), arg], stdout=out, stderr=subprocess.PIPE,
                                  text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        lines = log.read_text().splitlines()
        assert len(lines) == expected, lines
        if expected:
            assert lines[0].startswith("step 1/5  loss ") and lines[-1].startswith("step 5/5  epoch ")


def test_cli_no_progress_means_no_progress(tmp_path):
    for flags, progress_lines in ((["--no-progress"], 0), ([], 10)):
        log = tmp_path / "demo.log"
        with open(log, "w") as out:
            proc = subprocess.run([sys.executable, "-m", "tito", "core", "demo", "--epochs", "20", *flags],
                                  stdout=out, stderr=subprocess.PIPE, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        lines = log.read_text().splitlines()
        assert sum(line.startswith("step ") for line in lines) >= progress_lines
        if not progress_lines:
            assert len(lines) == 1 and lines[0].startswith("spiral MLP: train accuracy"), lines


@pytest.fixture
def fake_notebook(monkeypatch):
    """IPython as a Jupyter kernel has it: get_ipython() with an IPKernelApp config, and display()."""
    shown = []

    class Handle:
        def update(self, obj):
            shown.append(obj.data)

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: types.SimpleNamespace(config={"IPKernelApp": {}})
    display = types.ModuleType("IPython.display")
    display.HTML = lambda html: types.SimpleNamespace(data=html)

    def show(obj, display_id=False):
        shown.append(obj.data)
        return Handle() if display_id else None

    display.display = show
    ipython.display = display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    return shown


def test_jupyter_gets_an_html_display_without_widgets(fake_notebook, capsys):
    assert ProgressBar.wanted("auto") == ProgressBar.wanted(True) == "notebook"
    assert ProgressBar.wanted("lines") == "lines" and ProgressBar.wanted(False) is False
    make_trainer(progress="auto").fit(loader(), max_steps=8, val_data=loader())
    assert fake_notebook[0].startswith("<div") and '<progress value="0" max="8"' in fake_notebook[0]
    assert '<progress value="8" max="8"' in fake_notebook[-1] and "done (steps)" in fake_notebook[-1]
    assert any("evaluating" in html for html in fake_notebook)
    assert capsys.readouterr().out.startswith("step 8/8  epoch 1.00  loss ")  # the evaluation line


def test_progress_arguments_are_checked():
    with pytest.raises(ValueError, match="mode must be one of"):
        ProgressBar("ipywidgets")
    with pytest.raises(ValueError, match="every_steps"):
        ProgressBar("lines", every_steps=0)
    with pytest.raises(ValueError, match="every_seconds must be a finite number >= 0, got -1"):
        ProgressBar("lines", every_seconds=-1)
