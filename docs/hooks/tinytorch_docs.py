"""mkdocs hooks for the TinyTorch site: everything on it that could drift is generated at build time.

- ``<!-- readme: SECTION -->`` in a page is replaced by that ``## SECTION`` of the repository's
  README.md (up to the next ``##`` heading), so "Getting started" quotes the README's commands
  verbatim instead of copying them.
- ``<!-- tito-cli-reference -->`` is replaced by the reference of the ``tito`` command: the
  ``--help`` of ``tito.main.cli`` and of every command of every installed plugin group, walked
  recursively through click (plugins are loaded through their ``tito.commands`` entry points).
  A plugin that fails to load fails the build.
- Every page under ``tutorials/`` is *run as its notebook*: `tutorial_notebook` turns its
  ```` ```python ```` blocks into the code cells of a Jupyter notebook (the prose into markdown
  cells), which `run_notebook` executes top to bottom in a fresh IPython kernel (nbclient) in a
  temporary directory with ``TINYTORCH_DOCS_QUICK=1`` (each tutorial shows that switch in its
  first block and picks tiny settings from it). One execution serves the page, the notebook and
  the tests: each cell's output is shown beneath its block on the page, the executed notebook
  (outputs included) is shipped as ``<page>.ipynb`` next to the page, and the images the run
  writes (``*.png``, ``*.svg``) become files of the site next to the page, which is how its
  figures get there: none is committed. A failing cell fails the build with its traceback.
  (`run_tutorial` runs a page's blocks as one plain script instead: the test suite does that
  for the pages that are not tutorials.)
- A tutorial marked ``<!-- figures-are-timings -->`` (the roofline) draws its figures from time
  measurements: it runs alone, after the others, inside core's `ContentionProbe` (counting the
  tutorial's kernel process as ours). If other processes were busy it is run again, up to
  ``TIMED_ATTEMPTS`` times; if every run was contended the build fails, naming the load. A
  build on a machine that is always busy (CI on a shared runner) sets
  ``TINYTORCH_DOCS_CONTENDED=mark``: the least contended run is kept and the page says above its
  figures that they were measured under load, so that build checks everything but the load and
  never fails because of it; the site that is published is built without it. A check build
  that will not wait for a quiet run also sets ``TINYTORCH_DOCS_TIMED_ATTEMPTS=1``.
- ``` ```mermaid ``` blocks (the package graph of docs/architecture.md) are drawn at build time
  into an inline SVG with matplotlib: the site needs no JavaScript from a CDN and shows the graph
  offline.

The tests (tests/docs_site.py) import this file for ``python_blocks``, ``run_tutorial`` and
``run_notebook``, so the test suite runs pages exactly as the build does.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TUTORIALS = "tutorials/"
QUICK_ENV = "TINYTORCH_DOCS_QUICK"
FIGURE_SUFFIXES = (".png", ".svg")
TUTORIAL_TIMEOUT = 600.0
#: a page whose figures are time measurements carries this marker
TIMED_MARKER = "<!-- figures-are-timings -->"
#: runs of a timed tutorial before the build gives up on a quiet measurement
TIMED_ATTEMPTS = 3
#: sets that number for one build (CI's check build: 1, no waiting for a quiet machine)
TIMED_ATTEMPTS_ENV = "TINYTORCH_DOCS_TIMED_ATTEMPTS"
#: seconds between two runs of a timed tutorial (a short burst of load may pass)
TIMED_RETRY_WAIT_S = 10.0
CONTENDED_ENV = "TINYTORCH_DOCS_CONTENDED"
#: printed before every block of a tutorial script, so its output splits back into the blocks
CELL_MARKER = "@@tinytorch-docs-cell {line}@@"
_CELL_LINE = re.compile(r"^@@tinytorch-docs-cell (\d+)@@$", re.M)

log = logging.getLogger("mkdocs.plugins.tinytorch")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")


# ------------------------------------------------------------------------------ tutorials


def _python_block_spans(markdown: str) -> list[tuple[int, int, str]]:
    """(first code line number, index of the closing fence line, code) of the runnable blocks."""
    spans: list[tuple[int, int, str]] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent = m["fence"], m["indent"]
        words = m["info"].replace("{", " ").replace("}", " ").replace(".", " ").split()
        start = i + 1
        j = start
        while j < len(lines):
            closing = lines[j].strip()
            if len(closing) >= len(fence) and set(closing) == {fence[0]}:
                break
            j += 1
        if words and words[0] in ("python", "py") and "norun" not in words:
            body = [line[len(indent):] if line.startswith(indent) else line.lstrip()
                    for line in lines[start:j]]
            spans.append((start + 1, j, "\n".join(body)))
        i = j + 1
    return spans


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """The ```` ```python ```` blocks of a markdown text, as (first line number, code).

    Blocks whose info string is not ``python``/``py`` (``bash``, ``text``, ...) are skipped, as
    are python blocks marked ``norun`` (```` ```python norun ````).
    """
    return [(line, code) for line, _, code in _python_block_spans(markdown)]


def tutorial_script(markdown: str, name: str = "tutorial") -> str:
    """One script of all the page's python blocks, each headed by where it comes from and by a
    print of `CELL_MARKER`, so the output splits back into the blocks (`cell_outputs`)."""
    parts = [f"# ---- {name}, line {line}\nprint({CELL_MARKER.format(line=line)!r}, flush=True)\n{code}\n"
             for line, code in python_blocks(markdown)]
    return "\n".join(parts)


def cell_outputs(stdout: str) -> dict[int, str]:
    """A tutorial run's standard output split by block: first code line number -> its output."""
    marks = list(_CELL_LINE.finditer(stdout))
    outputs = {}
    for k, m in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(stdout)
        outputs[int(m.group(1))] = stdout[m.end():end].strip("\n")
    return outputs


def insert_outputs(markdown: str, outputs: dict[int, str]) -> str:
    """Each block's output (`cell_outputs`) as a ```` ```text ```` block right beneath it."""
    lines = markdown.splitlines()
    after: dict[int, str] = {}
    for line, closing, _ in _python_block_spans(markdown):
        text = outputs.get(line, "").rstrip()
        if text:
            indent = re.match(r"[ \t]*", lines[closing]).group(0)
            fence = "`" * max(3, max((len(r) for r in re.findall(r"`{3,}", text)), default=0) + 1)
            body = "\n".join(indent + row for row in text.splitlines())
            after[closing] = f"\n\n{indent}{fence}text title=\"Output\"\n{body}\n{indent}{fence}"
    return "\n".join(row + after.get(i, "") for i, row in enumerate(lines)) + "\n"


def tutorial_notebook(markdown: str) -> dict:
    """The page as a Jupyter notebook (nbformat 4 JSON): each python block that runs becomes a
    code cell, the text between them (other code blocks included) markdown cells, so the notebook
    and the page are one source. HTML comments are dropped.
    """
    lines = markdown.splitlines()
    cells: list[dict] = []

    def add_text(chunk: list[str]) -> None:
        text = re.sub(r"<!--.*?-->", "", "\n".join(chunk), flags=re.S).strip("\n")
        if text.strip():
            cells.append({"cell_type": "markdown", "metadata": {}, "source": text})

    done = 0
    for line, closing, code in _python_block_spans(markdown):
        add_text(lines[done:line - 2])  # up to the opening fence
        cells.append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                      "source": code})
        done = closing + 1
    add_text(lines[done:])
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}}


def notebook_name(page: str | Path) -> str:
    """``tutorials/roofline.md`` -> ``roofline.ipynb`` (shipped next to the page)."""
    return Path(page).with_suffix(".ipynb").name


def notebook_link(markdown: str, page: str) -> str:
    """The page with a line under its title offering the page as a notebook.

    >>> notebook_link("# Roofline", "tutorials/roofline.md").splitlines()[2][:46]
    '[Run this page as a Jupyter notebook](roofline'
    """
    link = (f"[Run this page as a Jupyter notebook]({notebook_name(page)}) (the same code, with the "
            f"outputs shown here; it runs top to bottom, with the quick settings when `{QUICK_ENV}=1` "
            f"is set).")
    title, _, rest = markdown.partition("\n")
    return f"{title}\n\n{link}\n{rest}" if title.startswith("# ") else f"{link}\n\n{markdown}"


def figure_names(markdown: str) -> list[str]:
    """Relative image files a page shows (``![alt](name.png)``): the figures its code writes."""
    names = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", markdown)
    return [n for n in names if "/" not in n and n.endswith(FIGURE_SUFFIXES)]


@dataclass
class TutorialRun:
    """What running one tutorial produced."""

    page: str
    returncode: int
    seconds: float
    stdout: str
    stderr: str
    figures: dict[str, bytes] = field(default_factory=dict)
    contention: dict | None = None  # a ContentionProbe result, for a timed tutorial
    attempts: int = 1
    #: the executed notebook (nbformat 4 JSON) of a run through `run_notebook`
    notebook: dict | None = None
    #: each block's output (first code line number -> text); a script run's come from its stdout
    outputs: dict[int, str] | None = None

    def __post_init__(self):
        if self.outputs is None:
            self.outputs = cell_outputs(self.stdout)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def contended(self) -> bool:
        return bool(self.contention and self.contention.get("contended"))


def tutorial_env(quick: bool = True) -> dict[str, str]:
    """The environment a tutorial runs in: quick settings, a non-interactive matplotlib, and
    ``$TINYTORCH_DATA`` defaulting to the data folder beside the clone (as in ``.ci/run``)."""
    env = dict(os.environ)
    env[QUICK_ENV] = "1" if quick else "0"
    env["MPLBACKEND"] = "Agg"
    if quick:
        # Tiny models gain nothing from BLAS threads, and the build runs the tutorials side by
        # side: threads spinning against each other (or another job) made them 5x slower.
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")
    # ipykernel does not forward what subprocesses print to the notebook under pytest
    env.pop("PYTEST_CURRENT_TEST", None)
    env.setdefault("PYTHONHASHSEED", "0")
    env["PYTHONUNBUFFERED"] = "1"  # a subprocess's output stays beneath the block that ran it
    shared = ROOT.parent / "shared" / "data"
    if "TINYTORCH_DATA" not in env and shared.is_dir():
        env["TINYTORCH_DATA"] = str(shared)
    if env.get("TINYTORCH_DATA"):  # a tutorial runs in a temporary folder: a relative path would miss
        from tinytorch.core.datafiles import data_root  # the one resolver of the data folder

        env["TINYTORCH_DATA"] = str(data_root(env["TINYTORCH_DATA"]))
    return env


def run_tutorial(page: str | Path, workdir: str | Path, quick: bool = True,
                 timeout: float = TUTORIAL_TIMEOUT) -> TutorialRun:
    """Execute the python blocks of ``page`` (a markdown file) as one script in ``workdir``.

    Returns the exit code, output and the figures (``*.png``/``*.svg``) left in ``workdir``.
    """
    page, workdir = Path(page), Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "tutorial.py"
    script.write_text(tutorial_script(page.read_text(encoding="utf-8"), page.name), encoding="utf-8")
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(script)], cwd=workdir, env=tutorial_env(quick),
                              capture_output=True, text=True, timeout=timeout)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = -1, str(exc.stdout or ""), f"timed out after {timeout:.0f} s"
    figures = {p.name: p.read_bytes() for p in sorted(workdir.iterdir())
               if p.suffix in FIGURE_SUFFIXES}
    return TutorialRun(page.name, code, time.perf_counter() - start, out, err, figures)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def notebook_cell_text(cell: dict) -> str:
    """What the page shows beneath a code cell of an executed notebook: its standard output and
    the text of the values it displayed, in order. Figures are left out (the page shows the files
    the code saved), as is standard error (warnings), as a script run's page leaves it out."""
    def text(value: str | list[str]) -> str:  # a saved notebook splits texts into lines
        return value if isinstance(value, str) else "".join(value)

    parts = []
    for out in cell.get("outputs", []):
        kind, data = out.get("output_type"), out.get("data", {})
        if kind == "stream" and out.get("name") == "stdout":
            parts.append(text(out["text"]))
        elif kind in ("execute_result", "display_data") and "text/plain" in data \
                and not any(mime.startswith("image/") for mime in data):
            parts.append(text(data["text/plain"]).rstrip("\n") + "\n")
    return _ANSI.sub("", "".join(parts)).strip("\n")  # rich's text in a kernel carries its styles


def notebook_outputs(markdown: str, notebook: dict) -> dict[int, str]:
    """An executed `tutorial_notebook` of ``markdown`` as `cell_outputs` has it: first code line
    number of each block -> the text beneath it (`notebook_cell_text`)."""
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    lines = [line for line, _ in python_blocks(markdown)]
    if len(cells) != len(lines):
        raise ValueError(f"the notebook has {len(cells)} code cells, the page {len(lines)} python blocks")
    return {line: notebook_cell_text(cell) for line, cell in zip(lines, cells)}


def python_kernel_manager():
    """The kernel manager class nbclient starts the kernel with: this interpreter's IPython
    kernel, not whatever kernel named ``python3`` a Jupyter install elsewhere on the machine
    registered (its Python may lack TinyTorch)."""
    from ipykernel.kernelspec import get_kernel_dict
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class ThisPython(AsyncKernelManager):
        @property
        def kernel_spec(self) -> KernelSpec:
            return KernelSpec(name="python3", resource_dir="", **get_kernel_dict())

    return ThisPython


def run_notebook(page: str | Path, workdir: str | Path, quick: bool = True,
                 timeout: float = TUTORIAL_TIMEOUT) -> TutorialRun:
    """Execute ``page`` as its notebook (`tutorial_notebook`) in a fresh IPython kernel
    (nbclient), in ``workdir`` with `tutorial_env`: what a learner running the shipped notebook
    does. ``timeout`` limits each cell.

    Returns the executed notebook (outputs included, to ship), each block's output for the page
    (`notebook_outputs`), and the figures (``*.png``/``*.svg``) the cells left in ``workdir``. A
    failing cell ends the run: exit code 1 and its traceback as ``stderr``; ``stdout`` is the
    standard output of all cells.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    page, workdir = Path(page), Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    markdown = page.read_text(encoding="utf-8")
    nb = nbformat.from_dict(tutorial_notebook(markdown))
    client = NotebookClient(nb, timeout=timeout, kernel_manager_class=python_kernel_manager(),
                            kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(workdir)}})
    start = time.perf_counter()
    # The kernel's own output (its start-up warnings; what it echoes) goes to a file, not into
    # the build's log; what the cells print reaches the notebook through the kernel.
    with open(workdir / "kernel.log", "w", encoding="utf-8") as kernel_log:
        try:
            client.execute(env=tutorial_env(quick), stdout=kernel_log, stderr=kernel_log)
            code, err = 0, ""
        except CellExecutionError as exc:  # the failing cell's source and traceback, uncoloured
            code, err = 1, _ANSI.sub("", str(exc))
        except (CellTimeoutError, DeadKernelError, TimeoutError, RuntimeError) as exc:
            code, err = -1, f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    notebook = json.loads(json.dumps(nb))  # plain dicts, each text one string
    stdout = "".join(o["text"] for c in notebook["cells"] if c["cell_type"] == "code"
                     for o in c["outputs"] if o["output_type"] == "stream" and o["name"] == "stdout")
    figures = {p.name: p.read_bytes() for p in sorted(workdir.iterdir())
               if p.suffix in FIGURE_SUFFIXES}
    return TutorialRun(page.name, code, seconds, stdout, err, figures, notebook=notebook,
                       outputs=notebook_outputs(markdown, notebook))


def run_timed_tutorial(page: str | Path, workdir: str | Path, attempts: int | None = None,
                       wait_s: float = TIMED_RETRY_WAIT_S, mode: str | None = None,
                       run=None, sleep=time.sleep) -> TutorialRun:
    """Run a tutorial whose figures are timings until one run was not contended.

    Each run (``run``, default `run_notebook`) is watched by core's `ContentionProbe` (the
    tutorial's kernel, a child process, counted as ours).
    Up to ``attempts`` runs (default ``$TINYTORCH_DOCS_TIMED_ATTEMPTS``, else
    ``TIMED_ATTEMPTS``), ``wait_s`` apart. If all were contended: with ``mode`` (default
    ``$TINYTORCH_DOCS_CONTENDED``) ``"mark"`` the least contended run is returned (the page then
    says its figures were measured under load), otherwise ``ContendedFigures`` is raised.
    """
    from tinytorch.core.contention import ContentionProbe

    run = run_notebook if run is None else run
    mode = os.environ.get(CONTENDED_ENV, "fail") if mode is None else mode
    if mode not in ("fail", "mark"):
        raise ValueError(f"{CONTENDED_ENV} must be 'fail' or 'mark', got {mode!r}")
    if attempts is None:
        text = os.environ.get(TIMED_ATTEMPTS_ENV, str(TIMED_ATTEMPTS))
        if not (text.isascii() and text.isdigit() and int(text) >= 1):
            raise ValueError(f"{TIMED_ATTEMPTS_ENV} must be a whole number of runs, at least 1, got {text!r}")
        attempts = int(text)
    runs: list[TutorialRun] = []
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            sleep(wait_s)
        with ContentionProbe(children=True) as probe:
            result = run(page, workdir)
        result.contention, result.attempts = probe.result, attempt
        if not result.ok or not result.contended:
            return result
        runs.append(result)
        log.info("%s: other processes used %.2f cores during run %d; running it again",
                 Path(page).name, probe.result["others_cores"], attempt)
    best = min(runs, key=lambda r: r.contention["others_cores"])
    if mode == "mark":
        return best
    loads = ", ".join(f"{r.contention['others_cores']:.2f}" for r in runs)
    raise ContendedFigures(
        f"{Path(page).name} draws its figures from time measurements, and other processes were "
        f"busy during all {attempts} runs (they used {loads} cores; load average "
        f"{best.contention.get('load_1min')}): its figures would show this machine's load, not "
        f"its speed. Build on a quieter machine, or set {CONTENDED_ENV}=mark for a check build "
        f"whose pages say their figures were measured under load.")


class ContendedFigures(RuntimeError):
    """Every run of a timed tutorial was contended (see `run_timed_tutorial`)."""


def contended_note(run: TutorialRun) -> str:
    """The admonition a page gets when its timed figures come from a contended run."""
    c = run.contention or {}
    load = c.get("load_1min")
    return (f'!!! warning "Figures measured under load"\n    This build ran the page {run.attempts} '
            f"times and other programs were busy every time (in the run shown they used "
            f"{c.get('others_cores', 0):.2f} cores"
            + (f", load average {load:.2f}" if load is not None else "") + "), so the times and "
            f"ceilings below are lower than this machine can do. It was built with {CONTENDED_ENV}="
            "mark; a build without it refuses such figures.\n")


# ------------------------------------------------------------------------------ mermaid


_NODE = re.compile(r'^\s*(\w+)\["([^"]*)"\]\s*$')
_EDGE = re.compile(r"^\s*(\w+)\s*(-->|-\.->)\s*(?:\|([^|]*)\|)?\s*(\w+)\s*$")


def parse_mermaid(source: str) -> tuple[dict[str, str], list[tuple[str, str, str, bool]]]:
    """The nodes (id -> label) and edges (from, to, label, dotted) of a ``graph TD`` block.

    Only the subset scripts/architecture_page.py writes: ``id["label"]``, ``a -->|label| b``
    and ``a -.->|label| b``. Anything else is an error naming the line.
    """
    lines = [line for line in source.strip().splitlines() if line.strip()]
    if not lines or lines[0].strip() not in ("graph TD", "flowchart TD"):
        raise ValueError(f"mermaid: only 'graph TD' is drawn at build time, got {lines[:1]}")
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str, bool]] = []
    for line in lines[1:]:
        if m := _NODE.match(line):
            nodes[m[1]] = m[2]
        elif m := _EDGE.match(line):
            edges.append((m[1], m[4], (m[3] or "").strip(), m[2] == "-.->"))
        else:
            raise ValueError(f"mermaid: cannot draw the line {line.strip()!r}")
    for a, b, _, _ in edges:
        for n in (a, b):
            nodes.setdefault(n, n)
    return nodes, edges


def mermaid_svg(source: str) -> str:
    """A top-down layered drawing of a ``graph TD`` block as an SVG string (matplotlib).

    A node's layer is the longest chain of edges leading to it, so every arrow points down.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes, edges = parse_mermaid(source)
    with plt.rc_context({"svg.fonttype": "none"}):  # labels stay text: searchable, selectable
        return _draw_layers(plt, nodes, edges)


def _draw_layers(plt, nodes: dict[str, str], edges: list[tuple[str, str, str, bool]]) -> str:
    import io

    layer = dict.fromkeys(nodes, 0)
    for _ in nodes:  # longest path, relaxed |nodes| times (the graph is a DAG)
        for a, b, _, _ in edges:
            layer[b] = max(layer[b], layer[a] + 1)
    rows: dict[int, list[str]] = {}
    for n in nodes:
        rows.setdefault(layer[n], []).append(n)
    step = 3.4  # x distance between two nodes of a row: room for a label
    pos = {n: ((k - (len(row) - 1) / 2) * step, -2.0 * depth) for depth, row in rows.items()
           for k, n in enumerate(sorted(row))}
    width = max(len(r) for r in rows.values()) * step
    fig, ax = plt.subplots(figsize=(0.9 * width + 1, 1.5 * len(rows)))
    box = {"boxstyle": "round,pad=0.4", "fc": "#fff3e0", "ec": "#e65100"}
    for n, (x, y) in pos.items():
        ax.text(x, y, nodes[n], ha="center", va="center", fontsize=10, bbox=box, zorder=3)
    fanned = {}  # one label for the edges that leave a node with the same label (entry points)
    for a, _, label, dotted in edges:
        fanned[(a, label, dotted)] = fanned.get((a, label, dotted), 0) + 1
    white = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"}
    for a, b, label, dotted in edges:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        skips = layer[b] - layer[a] > 1  # bend around the rows in between
        ax.annotate("", xy=(x1, y1 + 0.3), xytext=(x0, y0 - 0.3), zorder=2, arrowprops={
            "arrowstyle": "-|>", "color": "#888" if dotted else "#333",
            "linestyle": (0, (3, 3)) if dotted else "-", "shrinkA": 0, "shrinkB": 0,
            "connectionstyle": f"arc3,rad={(0.35 if x1 <= x0 else -0.35) if skips else 0}"})
        if label and fanned[(a, label, dotted)] == 1:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, label, ha="center", va="center", fontsize=8,
                    zorder=4, bbox=white)
    for (a, label, _), count in fanned.items():
        if label and count > 1:
            x0, y0 = pos[a]
            ax.text(x0 + 0.15 * step, y0 - 0.75, label, ha="left", va="center", fontsize=8,
                    style="italic", zorder=4, bbox=white)
    ax.set_xlim(-width / 2 - 0.3, width / 2 + 0.3)
    ax.set_ylim(-2.0 * (len(rows) - 1) - 0.8, 0.8)
    ax.axis("off")
    out = io.StringIO()
    fig.savefig(out, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = out.getvalue()
    return svg[svg.index("<svg"):]  # inline: no XML prolog or doctype


_MERMAID_BLOCK = re.compile(r"^```mermaid[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def draw_mermaid(markdown: str) -> str:
    """Replace every ```` ```mermaid ```` block with its `mermaid_svg` drawing."""
    return _MERMAID_BLOCK.sub(
        lambda m: f'<div class="tt-graph" markdown="0">\n{mermaid_svg(m.group(1))}\n</div>', markdown)


# ------------------------------------------------------------------------------ README


def readme_section(title: str, readme: Path = README) -> str:
    """The body of ``## title`` in README.md, up to the next level-2 (or level-1) heading."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    in_fence = False
    start = None
    body: list[str] = []
    for line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        heading = not in_fence and re.match(r"^(#{1,2}) (.*)$", line)
        if start is None:
            if heading and heading.group(2).strip() == title:
                start = True
            continue
        if heading:
            break
        body.append(line)
    if start is None:
        raise ValueError(f"README.md has no '## {title}' section")
    return "\n".join(body).strip() + "\n"


def include_readme(markdown: str, page_uri: str = "index.md") -> str:
    """Replace every ``<!-- readme: SECTION -->`` with that README section. Its links into
    ``docs/`` (right on GitHub, from the repository's root) are made relative to the page
    ``page_uri`` (its path under docs/) that includes it.

    >>> include_readme("<!-- readme: Two commands -->", "getting-started.md").count("](learn/index.md)")
    1
    """
    up = "../" * page_uri.count("/")

    def section(m: re.Match) -> str:
        return re.sub(r"\]\(docs/", f"]({up}", readme_section(m.group(1)))
    return re.sub(r"<!--\s*readme:\s*(.+?)\s*-->", section, markdown)


# ------------------------------------------------------------------------------ tito CLI


def cli_reference(width: int = 100) -> str:
    """Markdown reference of ``tito``: one heading and the ``--help`` text per command."""
    import click

    from tito.main import cli

    out: list[str] = []
    broken: list[str] = []

    def walk(command: click.Command, path: list[str], parent: click.Context | None) -> None:
        ctx = click.Context(command, info_name=path[-1], parent=parent, terminal_width=width,
                            max_content_width=width)
        name = " ".join(path)
        level = min(len(path) + 1, 6) if len(path) > 1 else 2
        help_text = command.get_help(ctx)
        if (command.help or "").startswith("[broken]"):
            broken.append(f"{name}: {command.help}")
        out.append(f"{'#' * level} `{name}`\n")
        short = command.get_short_help_str(limit=200)
        if short:
            out.append(f"{short}\n")
        out.append(f"```text\n{help_text}\n```\n")
        if isinstance(command, click.Group):
            for sub in command.list_commands(ctx):
                cmd = command.get_command(ctx, sub)
                if cmd is not None and not cmd.hidden:
                    walk(cmd, path + [sub], ctx)

    walk(cli, ["tito"], None)
    if broken:
        raise RuntimeError("tito plugins failed to load: " + "; ".join(broken))
    return "\n".join(out)


def cli_commands(markdown: str) -> list[str]:
    """The command paths (``tito performance flops``) a generated CLI reference documents."""
    return re.findall(r"^#{2,6} `(tito[^`]*)`$", markdown, flags=re.M)


# ------------------------------------------------------------------------------ the course

LEARN_CURRICULUM = "<!-- learn-curriculum -->"


def learn_curriculum() -> str:
    """The course's modules and exercises as Markdown, from the installed tinytorch-learn."""
    from tinytorch.learn.curriculum import curriculum_markdown

    return curriculum_markdown()


# ------------------------------------------------------------------------------ doctests


def fence_doctests(lines: list[str]) -> list[str]:
    """Wrap bare interactive examples (``>>>`` lines, their ``...`` continuations and output,
    up to a blank line) in ```` ```pycon ```` fences, leaving fenced code alone.

    Docstrings written for doctest show examples as bare ``>>>`` blocks; plain markdown would
    turn them into block quotes and read ``x[0]`` as a link reference.
    """
    out: list[str] = []
    fence: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m["fence"]
        elif fence is not None and stripped and set(stripped) == {fence[0]} \
                and len(stripped) >= len(fence):
            fence = None
        elif fence is None and stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            out.append(f"{indent}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(f"{indent}```")
            continue
        out.append(line)
        i += 1
    return out


def doctest_extension():
    """A Python-Markdown extension applying `fence_doctests` (pages and docstrings)."""
    from markdown.extensions import Extension
    from markdown.preprocessors import Preprocessor

    class _Doctests(Preprocessor):
        def run(self, lines: list[str]) -> list[str]:
            return fence_doctests(lines)

    class DoctestExtension(Extension):
        def extendMarkdown(self, md):  # noqa: N802 - Python-Markdown's API
            # Before pymdownx.superfences' preprocessor (priority 32) stashes fenced blocks.
            md.preprocessors.register(_Doctests(md), "tinytorch_doctests", 40)

    return DoctestExtension()


# ------------------------------------------------------------------------------ mkdocs events


def _on_config(config):
    """Add the doctest extension before mkdocstrings copies the markdown extensions."""
    config.markdown_extensions.append(doctest_extension())
    return config


try:
    from mkdocs.plugins import event_priority

    on_config = event_priority(100)(_on_config)
except ImportError:  # imported by the tests without mkdocs
    on_config = _on_config


_runs: dict[str, TutorialRun] = {}


def _add_notebook(files, config, page_file, notebook: dict) -> None:
    """Ship ``notebook`` as <page>.ipynb next to the tutorial page ``page_file``."""
    import nbformat
    from mkdocs.structure.files import File

    uri = f"{page_file.src_uri.rsplit('/', 1)[0]}/{notebook_name(page_file.src_uri)}"
    files.append(File.generated(config, uri, content=nbformat.writes(nbformat.from_dict(notebook))))


def on_files(files, config):
    """Run every tutorial as its notebook (in parallel) and add the executed notebooks and the
    figures they write to the site."""
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    pages = [f for f in files.documentation_pages() if f.src_uri.startswith(TUTORIALS)]
    if os.environ.get("TINYTORCH_DOCS_SKIP_TUTORIALS") == "1":
        log.info("TINYTORCH_DOCS_SKIP_TUTORIALS=1: tutorials not run, figures missing, notebooks "
                 "without outputs")
        for f in pages:
            _add_notebook(files, config, f, tutorial_notebook(Path(f.abs_src_path).read_text(encoding="utf-8")))
        return files

    def run(f) -> TutorialRun:
        with tempfile.TemporaryDirectory(prefix="tinytorch-docs-") as tmp:
            return run_notebook(f.abs_src_path, tmp)

    def run_timed(f) -> TutorialRun:
        with tempfile.TemporaryDirectory(prefix="tinytorch-docs-") as tmp:
            try:
                return run_timed_tutorial(f.abs_src_path, tmp)
            except ContendedFigures as e:
                raise PluginError(str(e)) from None

    timed = [f for f in pages if TIMED_MARKER in Path(f.abs_src_path).read_text(encoding="utf-8")]
    untimed = [f for f in pages if f not in timed]
    with ThreadPoolExecutor(max_workers=max(1, min(len(untimed), 3))) as pool:
        results = list(pool.map(run, untimed))
    # Timed pages alone, after the others: the build's own tutorials must not be their load.
    results += [run_timed(f) for f in timed]
    for f, result in zip(untimed + timed, results):
        if not result.ok:
            raise PluginError(
                f"tutorial {f.src_uri} failed (exit {result.returncode}) when run as a notebook "
                f"with {QUICK_ENV}=1:\n{result.stderr[-4000:]}"
            )
        log.info("ran %s in %.1f s: %s", f.src_uri, result.seconds, ", ".join(result.figures) or
                 "no figures")
        _runs[f.src_uri] = result
        _add_notebook(files, config, f, result.notebook)  # with the outputs of this run
        folder = f.src_uri.rsplit("/", 1)[0]
        wanted = figure_names(Path(f.abs_src_path).read_text(encoding="utf-8"))
        missing = [n for n in wanted if n not in result.figures]
        if missing:
            raise PluginError(f"tutorial {f.src_uri} shows {missing} but its code did not write them")
        for name, content in result.figures.items():
            uri = f"{folder}/{name}"
            if files.get_file_from_path(uri) is not None:
                raise PluginError(f"{uri} is both a committed file and a tutorial output")
            files.append(File.generated(config, uri, content=content))
    return files


def on_page_markdown(markdown, page, config, files):
    """Insert README sections, the generated CLI reference, each tutorial block's output beneath
    it, a tutorial's notebook link, and draw the mermaid graphs."""
    markdown = include_readme(markdown, page.file.src_uri)
    if LEARN_CURRICULUM in markdown:
        markdown = markdown.replace(LEARN_CURRICULUM, learn_curriculum())
    if "<!-- tito-cli-reference -->" in markdown:
        markdown = markdown.replace("<!-- tito-cli-reference -->", cli_reference())
    run = _runs.get(page.file.src_uri)
    if run is not None:
        markdown = insert_outputs(markdown, run.outputs)
        if run.contended:
            markdown = markdown.replace(TIMED_MARKER, contended_note(run))
        if "<!-- tutorial-output -->" in markdown:
            markdown = markdown.replace("<!-- tutorial-output -->", (
                f"*The outputs on this page come from the documentation build's run of its "
                f"notebook ({QUICK_ENV}=1, {run.seconds:.0f} s).*"))
    if "```mermaid" in markdown:
        markdown = draw_mermaid(markdown)
    if page.file.src_uri.startswith(TUTORIALS):  # last: the outputs above are placed by line number
        markdown = notebook_link(markdown, page.file.src_uri)
    return markdown
