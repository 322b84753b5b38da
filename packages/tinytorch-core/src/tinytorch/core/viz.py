"""Pictures of training and of the autograd graph: curves, labelled scatter plots, graphs, tables.

- :func:`plot_history` (``History.plot()``, ``tito plot CHECKPOINT``) draws loss, validation
  loss, accuracy or perplexity and the learning rate against steps.
- :func:`label_points` labels the points of a scatter plot without two labels (or a label and a
  point, or the legend) overlapping: beside its point when there is room, else in a column
  beside the axes with a leader line. The roofline plots use it; :func:`overlapping_texts`
  checks a drawn figure from matplotlib's own text extents.
- :func:`draw_dot` draws the graph behind a tensor (as micrograd's ``draw_dot``): through
  ``graphviz`` when it is installed, else as indented text (:func:`graph_text`).
- :func:`html_table` is the one HTML table of every ``_repr_html_`` (Jupyter shows it).

matplotlib is optional for tinytorch-core (``pip install "tinytorch-core[plot]"``); the
figures are bare ``matplotlib.figure.Figure`` objects (no pyplot, no display needed), which
Jupyter shows inline.
"""

from __future__ import annotations

import html
import io as _io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

FIGURE_SUFFIXES = (".png", ".svg")


def require_matplotlib() -> None:
    """Raise ModuleNotFoundError saying how to install matplotlib when it is missing (call it
    before a long run that ends in a figure)."""
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        raise ModuleNotFoundError('plotting needs matplotlib: pip install "tinytorch-core[plot]" '
                                  "(or pip install matplotlib)") from None


def new_figure(width: float, height: float) -> Any:
    """A bare matplotlib Figure with an Agg canvas (so text extents can be measured); in Jupyter
    it shows inline as a PNG when it is a cell's value."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    _show_figures_inline()
    return fig


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (cropped to what is drawn)."""
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _show_figures_inline() -> None:
    """In Jupyter, display bare Figures as PNG, as ``%matplotlib inline`` does for pyplot's (which
    registers the same formatter only once pyplot is imported)."""
    from .callbacks import in_notebook

    if not in_notebook():
        return
    from IPython import get_ipython
    from matplotlib.figure import Figure

    get_ipython().display_formatter.formatters["image/png"].for_type(Figure, figure_png)


def check_figure_path(path: str | Path, what: str = "plot path") -> Path:
    """``path`` as a Path if it ends in .png or .svg, else ValueError naming ``what``.

    >>> check_figure_path("curves.png").name
    'curves.png'
    """
    path = Path(path)
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"{what} must end in .png or .svg, got {str(path)!r}")
    return path


def save_figure(fig: Any, path: str | Path, what: str = "plot path", dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (PNG or SVG by its suffix) atomically: the file is either the old
    one or the whole new figure."""
    from .io import write_atomic

    path = check_figure_path(path, what)
    buffer = _io.BytesIO()
    fig.savefig(buffer, format=path.suffix[1:].lower(), dpi=dpi, bbox_inches="tight")
    return write_atomic(path, buffer.getvalue(), what=what)


# ------------------------------------------------------------------------------- text layout


def drawn_texts(fig: Any) -> list[Any]:
    """Every non-empty text the figure draws: titles, axis and tick labels inside the view,
    annotations, legend entries, figure texts."""
    fig.canvas.draw()
    texts = list(fig.texts)
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            span = (hi - lo) * 1e-9
            texts += [axis.label, axis.get_offset_text()]
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if lo - span <= tick.get_loc() <= hi + span:
                    texts += [tick.label1, tick.label2]
        legend = ax.get_legend()
        if legend is not None:
            texts += [*legend.get_texts(), legend.get_title()]
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def text_extent(text: Any, renderer: Any) -> Any:
    """The display-space box of a text's glyphs alone (an annotation's leader line left out)."""
    from matplotlib.text import Text

    return Text.get_window_extent(text, renderer)


def overlapping_texts(fig: Any) -> list[tuple[str, str]]:
    """Pairs of drawn texts whose rendered extents intersect (empty for a readable figure).

    The extents are matplotlib's own (``Text.get_window_extent`` with the figure's renderer), so
    this is the check a reader's eye makes, without a screenshot.

    >>> fig = new_figure(3, 2)
    >>> ax = fig.add_subplot(1, 1, 1)
    >>> _ = ax.text(0.5, 0.5, "first"), ax.text(0.5, 0.5, "second"), ax.text(0.1, 0.9, "apart")
    >>> overlapping_texts(fig)
    [('first', 'second')]
    """
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), text_extent(t, renderer)) for t in drawn_texts(fig)]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:]
            if _intersect(box_a, box_b)]


def _intersect(a: Any, b: Any, pad: float = 0.0) -> bool:
    a = (a.x0, a.y0, a.x1, a.y1) if hasattr(a, "x0") else a
    b = (b.x0, b.y0, b.x1, b.y1) if hasattr(b, "x0") else b
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


# Where a label may sit around its point: offsets in points and the text alignment for each.
_AROUND = [(dx, dy, ha, va) for dx, dy, ha, va in (
    (1, 1, "left", "bottom"), (1, -1, "left", "top"), (-1, 1, "right", "bottom"), (-1, -1, "right", "top"),
    (1, 0, "left", "center"), (-1, 0, "right", "center"), (0, 1, "center", "bottom"), (0, -1, "center", "top"))]


def label_points(ax: Any, xs: Sequence[float], ys: Sequence[float], names: Sequence[str],
                 fontsize: float = 7, marker_pt: float = 4.0) -> list[Any]:
    """Label each point (x, y) of ``ax`` with its name so that no two labels, no label and point,
    and no label and the legend overlap.

    Each label goes beside its point where there is room (eight directions, two distances);
    the labels that find none are stacked in a column right of the axes, in the order of their
    points' heights, each joined to its point by a thin leader line. Call it after the axes'
    limits, scales and legend are final. Returns the text artists.

    >>> fig = new_figure(3, 2)
    >>> ax = fig.add_subplot(1, 1, 1)
    >>> _ = ax.scatter([1.0, 1.01, 1.02], [1.0, 1.0, 1.01])
    >>> len(label_points(ax, [1.0, 1.01, 1.02], [1.0, 1.0, 1.01], ["conv1", "conv2", "fc"])), overlapping_texts(fig)
    (3, [])
    """
    if not names:
        return []
    fig = ax.figure
    fig.canvas.draw()  # the legend's and the axes' extents
    renderer = fig.canvas.get_renderer()
    to_px = fig.dpi / 72.0
    frame = ax.get_window_extent(renderer)
    centers = ax.transData.transform(list(zip(xs, ys)))
    half = marker_pt * to_px
    taken = [(x - half, y - half, x + half, y + half) for x, y in centers]
    legend = ax.get_legend()
    if legend is not None:
        box = legend.get_window_extent(renderer)
        taken.append((box.x0, box.y0, box.x1, box.y1))
    sizes = []
    for name in names:
        probe = ax.text(0, 0, name, fontsize=fontsize)
        box = probe.get_window_extent(renderer)
        sizes.append((box.width, box.height))
        probe.remove()

    artists, leftover = [], []
    for i, (name, (px, py), (w, h)) in enumerate(zip(names, centers, sizes)):
        spot = None
        for gap in (3.0, 9.0):
            for dx, dy, ha, va in _AROUND:
                x0 = px + dx * (gap * to_px + half) - {"left": 0, "right": w, "center": w / 2}[ha]
                y0 = py + dy * (gap * to_px + half) - {"bottom": 0, "top": h, "center": h / 2}[va]
                box = (x0, y0, x0 + w, y0 + h)
                inside = frame.x0 <= x0 and x0 + w <= frame.x1 and frame.y0 <= y0 and y0 + h <= frame.y1
                if inside and not any(_intersect(box, other, pad=1.0) for other in taken):
                    spot = (dx * (gap + marker_pt), dy * (gap + marker_pt), ha, va, box, gap)
                    break
            if spot:
                break
        if spot is None:
            leftover.append(i)
            continue
        dx, dy, ha, va, box, gap = spot
        taken.append(box)
        # set off from its point: a short leader line says whose label it is
        leader = ({"arrowstyle": "-", "lw": 0.5, "color": "0.5", "shrinkA": 0, "shrinkB": 2}
                  if gap > 3.0 else None)
        artists.append(ax.annotate(name, (xs[i], ys[i]), textcoords="offset points", xytext=(dx, dy),
                                   ha=ha, va=va, fontsize=fontsize, arrowprops=leader))
    if leftover:
        artists += _label_column(ax, xs, ys, names, centers, sizes, leftover, frame, fontsize)
    return artists


def _label_column(ax, xs, ys, names, centers, sizes, leftover, frame, fontsize) -> list[Any]:
    """The labels with no room beside their points: a column right of the axes, top to bottom in
    the order of the points' heights, spaced by the text height, with leader lines."""
    order = sorted(leftover, key=lambda i: -centers[i][1])
    step = max(sizes[i][1] for i in order) * 1.15
    wanted = [centers[i][1] for i in order]
    placed: list[float] = []
    for y in wanted:  # as near its point's height as the labels above allow
        placed.append(min(y, placed[-1] - step) if placed else min(y, frame.y1))
    shift = frame.y0 - placed[-1] if placed[-1] < frame.y0 else 0.0
    if shift:  # the column ran below the axes: move it up, as far as the top allows
        placed = [y + shift for y in placed]
    x_col = frame.x1 + 12 * ax.figure.dpi / 72.0
    to_axes = ax.transAxes.inverted()
    artists = []
    for i, y in zip(order, placed):
        ax_x, ax_y = to_axes.transform((x_col, y))
        artists.append(ax.annotate(names[i], (xs[i], ys[i]), xytext=(ax_x, ax_y), textcoords="axes fraction",
                                   ha="left", va="center", fontsize=fontsize, annotation_clip=False,
                                   arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5",
                                               "shrinkA": 0, "shrinkB": 3}))
    return artists


# ------------------------------------------------------------------------------- history


def _series(rows: Iterable[dict], key: str) -> tuple[list[float], list[float]]:
    pairs = [(row["step"], row[key]) for row in rows
             if "step" in row and isinstance(row.get(key), (int, float)) and math.isfinite(row[key])]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def history_panels(history: Any) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Which panels ``plot_history`` draws: (y label, [(rows, key, legend label), ...]) for the loss,
    then accuracy or perplexity when recorded, then the learning rate.

    >>> from tinytorch.core.training import History
    >>> h = History(steps=[{"step": 1, "loss": 2.0, "lr": 0.1}],
    ...             evals=[{"step": 1, "loss": 2.0, "val_loss": 2.1, "val_perplexity": 8.2, "lr": 0.1}])
    >>> [title for title, _ in history_panels(h)]
    ['loss', 'perplexity', 'learning rate']
    """
    keys = set().union(*(row.keys() for row in history.evals)) if history.evals else set()
    step_keys = set().union(*(row.keys() for row in history.steps)) if history.steps else set()
    loss = [("steps", "loss", "train loss (each step)")] if "loss" in step_keys else []
    loss += [("evals", k, label) for k, label in (("loss", "train loss (mean between evaluations)"),
                                                   ("val_loss", "validation loss"), ("test_loss", "test loss"))
             if k in keys]
    panels = [("loss", loss)] if loss else []
    for metric in ("accuracy", "perplexity"):
        curves = [("evals", k, label) for k, label in ((metric, f"train {metric}"), (f"val_{metric}", f"validation {metric}"),
                                                       (f"test_{metric}", f"test {metric}")) if k in keys]
        if curves:
            panels.append((metric, curves))
    if "lr" in step_keys or "lr" in keys:
        panels.append(("learning rate", [("steps" if "lr" in step_keys else "evals", "lr", "learning rate")]))
    return panels


def plot_history(history: Any, path: str | Path | None = None, title: str | None = None) -> Any:
    """Training curves of a ``History`` against steps: loss (every step, and the evaluations'
    train and validation loss), accuracy or perplexity, and the learning rate, one panel each.

    Args:
        history: a ``History`` (``trainer.fit(...)``, or ``History.from_dict`` of a checkpoint's
            ``history`` metadata).
        path: also write the figure there (``.png`` or ``.svg``), atomically.
        title: the figure's title.

    Returns:
        The matplotlib Figure (Jupyter shows it inline).

    >>> from tinytorch.core.training import History
    >>> h = History(steps=[{"step": 1, "loss": 1.0, "lr": 0.1}, {"step": 2, "loss": 0.5, "lr": 0.05}])
    >>> [ax.get_ylabel() for ax in plot_history(h).axes]
    ['loss', 'learning rate']
    """
    panels = history_panels(history)
    if not panels:
        raise ValueError("plot_history: the history has no step or evaluation rows to plot")
    if path is not None:
        check_figure_path(path)
    fig = new_figure(8, 1.2 + 2.3 * len(panels))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    rows = {"steps": history.steps, "evals": history.evals}
    for ax, (ylabel, curves) in zip(axes, panels):
        for source, key, label in curves:
            x, y = _series(rows[source], key)
            if source == "steps":
                ax.plot(x, y, lw=1, alpha=0.45 if key == "loss" else 1.0, label=label)
            else:
                ax.plot(x, y, marker="o", ms=3, lw=1.5, label=label)
        if ylabel == "accuracy":
            ax.yaxis.set_major_formatter(_percent())
        if ylabel == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    axes[-1].set_xlabel("step (optimizer updates)")
    stop = f" (stopped: {history.stop_reason})" if getattr(history, "stop_reason", None) else ""
    fig.suptitle((title or "training history") + stop)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def _percent() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0)


# ------------------------------------------------------------------------------- autograd graph


def _graph(root: Any, names: dict[str, Any] | None) -> tuple[list[Any], dict[int, str]]:
    """The tensors behind ``root`` in depth-first order from it (iterative: any depth), and a
    name for each: the caller's (``names``), else t0, t1, ... in that order."""
    given = {id(t): name for name, t in (names or {}).items()}
    order, seen, stack = [], set(), [root]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        order.append(t)
        ctx = t.grad_fn
        stack.extend(reversed(getattr(ctx, "parents", ()) if ctx is not None else ()))
    labels, count = {}, 0
    for t in order:
        if id(t) in given:
            labels[id(t)] = given[id(t)]
        else:
            labels[id(t)], count = f"t{count}", count + 1
    return order, labels


def _describe(t: Any) -> str:
    """Shape and dtype, the value of a tensor of at most 4 elements, and its gradient if any."""
    text = f"{tuple(t.shape)} {t.data.dtype}"
    if t.data.size <= 4:
        text += f" = {np.array2string(np.asarray(t.data), precision=4, separator=', ')}"
    if t.grad is not None:
        grad = np.asarray(t.grad)
        text += f", grad {np.array2string(grad, precision=4, separator=', ')}" if grad.size <= 4 else ", grad set"
    if t.grad_fn is None:
        text += ", leaf" + (" (requires grad)" if t.requires_grad else "")
    return text


def graph_text(tensor: Any, names: dict[str, Any] | None = None) -> str:
    """The autograd graph behind ``tensor`` as an indented tree (the text form of `draw_dot`):
    each tensor with its shape, dtype, small values and gradient, under it the op that made it
    and that op's inputs. A tensor reached twice is written once; later "(above)". ``backward()``
    frees the graph as it goes (as PyTorch's): to see the gradients on it, call
    ``backward(retain_graph=True)`` first.

    >>> from tinytorch.core import Tensor
    >>> x = Tensor([2.0], requires_grad=True)
    >>> y = (x * x + 1.0).sum()
    >>> print(graph_text(y, {"x": x, "y": y}))
    y () float32 = 5.
    └─ sum
       └─ t0 (1,) float32 = [5.]
          └─ add
             ├─ t1 (1,) float32 = [4.]
             │  └─ mul
             │     ├─ x (1,) float32 = [2.], leaf (requires grad)
             │     └─ x (above)
             └─ t2 () float32 = 1., leaf
    """
    _, labels = _graph(tensor, names)
    lines, shown = [], set()
    stack = [(tensor, "", "", "")]  # (tensor, prefix of its line, prefix of its children, branch)
    while stack:
        t, head, body, branch = stack.pop()
        name = labels[id(t)]
        if id(t) in shown:
            lines.append(f"{head}{branch}{name} (above)")
            continue
        shown.add(id(t))
        lines.append(f"{head}{branch}{name} {_describe(t)}")
        ctx = t.grad_fn
        if ctx is None:
            continue
        inner = body + ("   " if branch else "")  # under the name; _fix_rails draws the │ rails
        if not hasattr(ctx, "parents"):
            lines.append(f"{inner}└─ {ctx.op} (inputs freed by backward(); draw before it, or after "
                         "backward(retain_graph=True))")
            continue
        lines.append(f"{inner}└─ {ctx.op}")
        parents = list(ctx.parents)
        child = inner + "   "
        for i in reversed(range(len(parents))):
            last = i == len(parents) - 1
            stack.append((parents[i], child, child, "└─ " if last else "├─ "))
    return "\n".join(_fix_rails(lines))


def _fix_rails(lines: list[str]) -> list[str]:
    """Draw the │ rails of ├─ branches down to their next sibling (a stack walk cannot know them
    when it writes the children's lines)."""
    out = [list(line) for line in lines]
    for row, line in enumerate(out):
        for col, ch in enumerate(line):
            if ch != "├":
                continue
            below = row + 1
            while below < len(out) and col < len(out[below]) and out[below][col] == " ":
                out[below][col] = "│"
                below += 1
    return ["".join(line) for line in out]


def dot_source(tensor: Any, names: dict[str, Any] | None = None, rankdir: str = "LR") -> str:
    """The autograd graph behind ``tensor`` in Graphviz's DOT language: a box per tensor (name,
    shape, dtype, small values and gradient), an ellipse per op, edges in the forward direction.

    >>> from tinytorch.core import Tensor
    >>> x = Tensor([1.0], requires_grad=True)
    >>> dot_source(x * 2.0).count("->")  # x and the constant into mul, mul into its output
    3
    """
    order, labels = _graph(tensor, names)

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"digraph autograd {{\n  rankdir={rankdir};\n  node [fontname=Helvetica, fontsize=10];"]
    for t in order:
        lines.append(f"  t{id(t)} [shape=box, label={quoted(labels[id(t)] + ' ' + _describe(t))}];")
        ctx = t.grad_fn
        if ctx is not None:
            lines.append(f"  op{id(t)} [shape=ellipse, label={quoted(ctx.op)}];")
            lines.append(f"  op{id(t)} -> t{id(t)};")
            lines += [f"  t{id(p)} -> op{id(t)};" for p in getattr(ctx, "parents", ())]
    return "\n".join(lines) + "\n}\n"


class GraphDrawing:
    """What `draw_dot` returns: ``.text`` (always), ``.svg`` (when Graphviz's ``dot`` ran), shown in
    Jupyter as the SVG or the text; ``str()`` is the text.

    >>> GraphDrawing("t0 () float32 = 1.", "digraph {}", svg=None)._repr_html_()
    '<pre>t0 () float32 = 1.</pre>'
    """

    def __init__(self, text: str, dot: str, svg: str | None):
        self.text, self.dot, self.svg = text, dot, svg

    def __str__(self) -> str:
        return self.text

    def _repr_svg_(self) -> str | None:
        return self.svg

    def _repr_html_(self) -> str | None:
        return None if self.svg else f"<pre>{html.escape(self.text)}</pre>"


def _run_dot(source: str, fmt: str) -> bytes | None:
    import shutil
    import subprocess

    dot = shutil.which("dot")
    if dot is None:
        return None
    done = subprocess.run([dot, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"Graphviz dot failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def draw_dot(tensor: Any, path: str | Path | None = None, names: dict[str, Any] | None = None,
             rankdir: str = "LR") -> GraphDrawing:
    """Draw the autograd graph behind ``tensor``, as micrograd's ``draw_dot``.

    With Graphviz installed (its ``dot`` program on PATH) the graph is drawn as SVG (shown in
    Jupyter) and ``path`` may end in ``.svg``, ``.png`` or ``.dot``; without it, the drawing is
    the indented text of `graph_text` and ``path`` may end in ``.txt`` or ``.dot`` (the DOT source
    needs no Graphviz to be written).

    Args:
        tensor: the output whose graph to draw (e.g. a loss).
        path: also write the drawing there (the suffix picks the form).
        names: name -> tensor, to label inputs and parameters (``dict(model.named_parameters())``).
        rankdir: Graphviz's direction, ``"LR"`` (left to right) or ``"TB"``.

    >>> from tinytorch.core import Tensor
    >>> x = Tensor([1.0, 2.0], requires_grad=True)
    >>> print(draw_dot((x * 3.0).sum(), names={"x": x}).text.splitlines()[0])
    t0 () float32 = 9.
    """
    dot = dot_source(tensor, names, rankdir)
    svg = _run_dot(dot, "svg")
    drawing = GraphDrawing(graph_text(tensor, names), dot, svg.decode() if svg is not None else None)
    if path is not None:
        from .io import write_atomic

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".txt":
            write_atomic(path, drawing.text.encode() + b"\n", what="draw_dot path")
        elif suffix == ".dot":
            write_atomic(path, dot.encode(), what="draw_dot path")
        elif suffix in (".svg", ".png"):
            if svg is None:
                raise ModuleNotFoundError(f"draw_dot: {suffix} needs Graphviz's dot program (apt install graphviz, "
                                          f"brew install graphviz, or graphviz.org); write .txt or .dot instead")
            write_atomic(path, svg if suffix == ".svg" else _run_dot(dot, "png"), what="draw_dot path")
        else:
            raise ValueError(f"draw_dot: path must end in .svg, .png, .dot or .txt, got {str(path)!r}")
    return drawing


# ------------------------------------------------------------------------------- tables


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]], caption: str | None = None,
               right: Iterable[int] = ()) -> str:
    """An HTML table (escaped cells; columns in ``right`` right-aligned), for ``_repr_html_``.

    >>> html_table(("layer", "ms"), [("fc<1>", "2.0")], right=[1])[:40]
    '<table><thead><tr><th style="text-align:'
    """
    right = set(right)

    def cell(tag: str, i: int, value: Any) -> str:
        align = "right" if i in right else "left"
        return f'<{tag} style="text-align:{align}">{html.escape(str(value))}</{tag}>'

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# The helpers new_figure, save_figure, figure_png, require_matplotlib, drawn_texts and
# text_extent are importable for the packages' plots and tests, but not the public surface.
__all__ = ["draw_dot", "graph_text", "dot_source", "GraphDrawing", "plot_history", "history_panels",
           "label_points", "overlapping_texts", "check_figure_path", "html_table"]
