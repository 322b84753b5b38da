"""Figures: History.plot / `tito plot` (curves from the history a checkpoint stores), readable
labels (checked from matplotlib's text extents), HTML tables for notebooks."""

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from tinytorch.core import io, manual_seed, nn, optim
from tinytorch.core.data import DataLoader, TensorDataset
from tinytorch.core.optim.lr_scheduler import WarmupCosineLR
from tinytorch.core.training import History, Trainer, accuracy
from tinytorch.core.viz import label_points, new_figure, overlapping_texts
from tito.main import cli

pytest.importorskip("matplotlib")


def trained(tmp_path=None):
    manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype(np.float32)
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).astype(np.int64)), batch_size=8)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = optim.Adam(model.parameters(), lr=0.05)
    trainer = Trainer(model, opt, nn.CrossEntropyLoss(), metrics={"accuracy": accuracy}, progress=False,
                      scheduler=WarmupCosineLR(opt, total_steps=24, warmup_steps=4))
    history = trainer.fit(data, epochs=3, val_data=data)
    if tmp_path is not None:
        trainer.save_checkpoint(tmp_path / "run.safetensors")
    return history


def curves(ax):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines}


def test_history_plot_draws_the_recorded_values_against_steps(tmp_path):
    history = trained()
    fig = history.plot(tmp_path / "h.png")
    loss, acc, lr = fig.axes
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy", "learning rate"]
    drawn = curves(loss)
    assert drawn["train loss (each step)"] == ([r["step"] for r in history.steps], [r["loss"] for r in history.steps])
    assert drawn["validation loss"] == (history["step"], history["val_loss"])
    assert curves(acc)["validation accuracy"] == (history["step"], history["val_accuracy"])
    assert curves(lr)["learning rate"][1] == [r["lr"] for r in history.steps]  # warmup then cosine
    assert fig.axes[-1].get_xlabel().startswith("step")
    assert overlapping_texts(fig) == []
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_language_histories_get_a_perplexity_panel():
    h = History(steps=[{"step": s, "loss": 3.0 / s, "lr": 1e-3} for s in range(1, 5)],
                evals=[{"step": 4, "loss": 1.0, "val_loss": 1.2, "val_perplexity": float(np.exp(1.2)), "lr": 1e-3}])
    fig = h.plot()
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "perplexity", "learning rate"]
    assert curves(fig.axes[1])["validation perplexity"] == ([4], [pytest.approx(np.exp(1.2))])
    with pytest.raises(ValueError, match="no step or evaluation rows"):
        History().plot()
    with pytest.raises(ValueError, match="must end in .png or .svg, got 'h.jpg'"):
        h.plot("h.jpg")


def test_overlap_check_sees_overlapping_labels_and_label_points_avoids_them():
    fig = new_figure(4, 3)
    ax = fig.add_subplot(1, 1, 1)
    xs, ys = [1.0, 1.01, 1.02, 2.0], [1.0, 1.0, 1.01, 2.0]
    ax.scatter(xs, ys)
    ax.set_xlim(0, 3)
    ax.set_ylim(0, 3)
    for x, y, name in zip(xs, ys, "abcd"):
        ax.annotate(f"layer {name}", (x, y), textcoords="offset points", xytext=(4, 4))
    overlaps = overlapping_texts(fig)
    assert ("layer a", "layer b") in overlaps and ("layer b", "layer c") in overlaps
    assert not any("layer d" in pair for pair in overlaps)
    for text in list(ax.texts):
        text.remove()
    label_points(ax, xs, ys, [f"layer {n}" for n in "abcd"])
    assert sorted(t.get_text() for t in ax.texts) == ["layer a", "layer b", "layer c", "layer d"]
    assert overlapping_texts(fig) == []


def test_tito_plot_draws_a_checkpoints_history(tmp_path):
    history = trained(tmp_path)
    out = tmp_path / "curves.png"
    result = CliRunner().invoke(cli, ["plot", str(tmp_path / "run.safetensors"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{len(history.steps)} steps, {len(history.evals)} evaluations" in result.output
    assert f"val_loss {history['val_loss'][-1]:.4g}" in result.output
    # the default: beside the checkpoint
    assert CliRunner().invoke(cli, ["plot", str(tmp_path / "run.safetensors")]).exit_code == 0
    assert (tmp_path / "run.history.png").exists()


def test_tito_plot_errors_are_one_line(tmp_path):
    io.save({"w": np.zeros(2, np.float32)}, tmp_path / "weights.safetensors")
    weights = str(tmp_path / "weights.safetensors")
    # once in a real process: exit code, one line on stderr, no traceback
    proc = subprocess.run([sys.executable, "-m", "tito", "plot", weights], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "no training history in this file" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    # the other refusals through click's runner: an exception escaping would not be a SystemExit
    for args, message in (([weights, "--out", "x.jpg"], "--out must end in .png"),
                          ([weights, "--out", weights], "--out")):
        result = CliRunner().invoke(cli, ["plot", *args])
        assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_history_shows_as_a_table_in_notebooks():
    history = trained()
    table = history._repr_html_()
    assert table.startswith("<table><caption>24 steps, 3 evaluations; stopped: epochs")
    assert table.count("<tr>") == 1 + len(history.evals)
    assert f"<td style=\"text-align:right\">{history['val_loss'][-1]:.4g}</td>" in table


def test_graph_text_of_a_known_expression():
    """micrograd's example shape: every tensor once, its op under it, shared inputs marked."""
    from tinytorch.core import Tensor
    from tinytorch.core.viz import graph_text

    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    c = a * b
    loss = ((c + a).tanh() * c).sum()
    loss.backward(retain_graph=True)
    lines = graph_text(loss, {"a": a, "b": b, "c": c, "loss": loss}).splitlines()
    assert lines[0] == f"loss () float32 = {np.float32(loss.data):.3f}".rstrip("0")
    assert [line.strip(" │├└─") .split(" ")[0] for line in lines] == [
        "loss", "sum", "t0", "mul", "t1", "tanh", "t2", "add", "c", "mul", "a", "b", "a", "c"]
    assert lines[3] == "      └─ mul" and lines[-1] == "         └─ c (above)"
    grad_a = np.array2string(a.grad, precision=4, separator=", ")
    assert f"a (2,) float32 = [1., 2.], grad {grad_a}, leaf (requires grad)" in lines[10]
    # every ├─ branch has its rail down to its last sibling
    column = lines[4].index("├")
    assert all(line[column] == "│" for line in lines[5:13]) and lines[13][column] == "└"
    loss.backward()  # a plain backward frees the graph: say so instead of drawing a wrong tree
    assert graph_text(loss).splitlines()[1].startswith("└─ sum (inputs freed by backward()")


def test_draw_dot_writes_text_and_dot_without_graphviz(tmp_path, monkeypatch):
    import tinytorch.core.viz as viz
    from tinytorch.core import Tensor, draw_dot

    monkeypatch.setattr(viz, "_run_dot", lambda source, fmt: None)  # no Graphviz on this machine
    x = Tensor([2.0], requires_grad=True)
    y = (x * x).sum()
    drawing = draw_dot(y, tmp_path / "g.txt", names={"x": x})
    assert drawing.svg is None and str(drawing) == (tmp_path / "g.txt").read_text().rstrip("\n")
    assert drawing._repr_html_().startswith("<pre>t0 () float32 = 4.")
    draw_dot(y, tmp_path / "g.dot", names={"x": x})
    dot = (tmp_path / "g.dot").read_text()
    assert dot.count("shape=box") == 3 and dot.count("shape=ellipse") == 2  # x, x*x, sum; mul, sum
    assert dot.count(f"t{id(x)} -> op") == 2  # x feeds the product twice
    with pytest.raises(ModuleNotFoundError, match="needs Graphviz's dot program"):
        draw_dot(y, tmp_path / "g.png")
    with pytest.raises(ValueError, match="must end in .svg, .png, .dot or .txt"):
        draw_dot(y, tmp_path / "g.jpg")


def test_draw_dot_lays_the_graph_out_with_graphviz(tmp_path):
    """The Graphviz path: dot's SVG (and PNG) of the same nodes and edges as the DOT source."""
    import shutil

    from tinytorch.core import Tensor, draw_dot

    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot program is not on PATH (apt install graphviz / brew install graphviz)")
    x = Tensor([2.0], requires_grad=True)
    y = (x * x).sum()
    drawing = draw_dot(y, tmp_path / "g.svg", names={"x": x})
    svg = (tmp_path / "g.svg").read_text()
    assert svg == drawing.svg == drawing._repr_svg_() and drawing._repr_html_() is None
    # 3 tensors (x, x*x, the sum) and 2 ops; x feeds mul twice, each op feeds its output, x*x feeds sum
    assert svg.count('class="node"') == 5 and svg.count('class="edge"') == 5
    assert ">mul</text>" in svg and ">sum</text>" in svg and ">x (1,) float32" in svg
    draw_dot(y, tmp_path / "g.png", names={"x": x})
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_draw_dot_reports_a_failing_graphviz(tmp_path, monkeypatch):
    from tinytorch.core import Tensor, draw_dot

    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'Error: syntax error in line 1' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    x = Tensor([2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="Graphviz dot failed: Error: syntax error in line 1"):
        draw_dot((x * x).sum(), tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()
