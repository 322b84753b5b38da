"""The docs' tutorials ship as Jupyter notebooks generated from the same markdown (the docs hook's
``tutorial_notebook``) and run top to bottom in a real kernel (nbclient), with the quick settings
the docs build uses. Figures show inline; tables show as HTML."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.md"))

# test_docs.py loads the docs hook and knows why a page cannot run here (its data missing)
_spec = importlib.util.spec_from_file_location("tinytorch_docs_tests", ROOT / "tests" / "test_docs.py")
docs_tests = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = docs_tests
_spec.loader.exec_module(docs_tests)
hooks = docs_tests.hooks

nbformat = pytest.importorskip("nbformat")


@pytest.mark.parametrize("page", TUTORIALS, ids=lambda p: p.stem)
def test_notebook_is_the_page_one_cell_per_code_block(page):
    markdown = page.read_text(encoding="utf-8")
    notebook = hooks.tutorial_notebook(markdown)
    nbformat.validate(nbformat.from_dict(notebook))
    code = [c["source"] for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code == [block for _, block in hooks.python_blocks(markdown)]
    text = "\n".join(c["source"] for c in notebook["cells"] if c["cell_type"] == "markdown")
    for _, block in hooks.python_blocks(markdown):
        assert block not in text  # each block once, as code
    assert text.startswith("# ") and "<!--" not in text


def execute(notebook: dict, workdir: Path) -> dict:
    from nbclient import NotebookClient

    nb = nbformat.from_dict(notebook)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    client.execute(env=hooks.tutorial_env(quick=True))
    return nb


def outputs(nb, mime: str) -> list:
    return [o["data"][mime] for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.get("output_type") in ("display_data", "execute_result") and mime in o.get("data", {})]


# Run in every test run (about 6 s on 2 quiet cores): the roofline notebook, whose figure shows
# inline. The others take 10-60 s each with the quick settings; their code already runs as a
# script in the docs build (.ci/run's, or test_docs.py's `site` fixture), and
# test_notebook_is_the_page checks their cells: TINYTORCH_NOTEBOOKS=all runs them as notebooks too.
ALWAYS = {"roofline"}


@pytest.mark.parametrize("page", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_notebook_runs_top_to_bottom(page, tmp_path):
    pytest.importorskip("nbclient")
    if page.stem not in ALWAYS and os.environ.get("TINYTORCH_NOTEBOOKS") != "all":
        pytest.skip(f"{page.name} runs as a script in the docs build; TINYTORCH_NOTEBOOKS=all runs it as a notebook")
    reason = docs_tests.skip_reason(page)
    if reason:
        pytest.skip(reason)
    nb = execute(hooks.tutorial_notebook(page.read_text(encoding="utf-8")), tmp_path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o["output_type"] == "error"]
    assert not errors
    for name in hooks.figure_names(page.read_text(encoding="utf-8")):
        assert (tmp_path / name).exists(), f"{page.name}: the notebook did not write {name}"
    if page.stem == "roofline":  # its last cell's value is the roofline Figure: shown inline
        assert outputs(nb, "image/png")


def test_figures_and_tables_show_inline_in_a_kernel(tmp_path):
    """A cell whose value is a Figure shows a PNG; a History or a profile shows an HTML table."""
    pytest.importorskip("nbclient")
    cells = [
        "from tinytorch.core.training import History\n"
        "h = History(steps=[{'step': s, 'loss': 1 / s, 'lr': 0.1} for s in range(1, 9)],\n"
        "            evals=[{'step': 8, 'loss': 0.2, 'val_loss': 0.3, 'val_accuracy': 0.9}])\n"
        "h.plot()",
        "h",
        "from tinytorch.core import nn, randn\nfrom tinytorch.perf import ModelProfiler\n"
        "ModelProfiler(nn.Linear(8, 4), randn(2, 8), name='fc').profile(repeats=1, warmup=0)",
    ]
    notebook = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                           "source": src, "id": f"c{i}"} for i, src in enumerate(cells)],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    nb = execute(notebook, tmp_path)
    png = outputs(nb, "image/png")
    assert len(png) == 1 and png[0].startswith("iVBORw0KGgo")  # base64 of the PNG signature
    html = outputs(nb, "text/html")
    assert len(html) == 2 and html[0].startswith("<table><caption>8 steps, 1 evaluations")
    assert "<caption>fc: input (2, 8)" in html[1]


def test_site_ships_each_tutorial_notebook(tmp_path):
    """The docs hook adds <page>.ipynb beside each tutorial and links it under the title."""
    for page in TUTORIALS:
        linked = hooks.notebook_link(page.read_text(encoding="utf-8"), f"tutorials/{page.name}")
        assert f"]({page.stem}.ipynb)" in linked.splitlines()[2]
    assert json.loads(json.dumps(hooks.tutorial_notebook(TUTORIALS[0].read_text())))["nbformat"] == 4
