"""The docs' tutorials ship as Jupyter notebooks generated from the same markdown (the docs hook's
``tutorial_notebook``) and run top to bottom in a real kernel (nbclient), with the quick settings.
The docs build runs each tutorial *as its notebook* (one execution serves the page's outputs, the
shipped notebook and these tests), so the tests here check the build's executed notebooks: the
one .ci/run hands over (TINYTORCH_DOCS_BUILD), or the session's own build (the ``site`` fixture).
When that build cannot be made here (a data set missing), each notebook that can run is run by its
test, and the others are skipped saying why. Figures show inline; tables show as HTML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from docs_site import handed_build, hooks, skip_reason, tutorial_pages

TUTORIALS = tutorial_pages()

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
    client = NotebookClient(nb, timeout=600, kernel_manager_class=hooks.python_kernel_manager(),
                            kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    client.execute(env=hooks.tutorial_env(quick=True))
    return nb


def outputs(nb, mime: str) -> list:
    return [o["data"][mime] for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.get("output_type") in ("display_data", "execute_result") and mime in o.get("data", {})]


def _executed(page: Path, request, tmp_path: Path) -> tuple[dict, Path]:
    """The executed notebook of ``page`` and the folder its figures were written to: the build's
    (handed over, or this session's when every tutorial can run here), or else run here."""
    site = handed_build()
    if site is None and all(skip_reason(p) is None for p in TUTORIALS):
        site = request.getfixturevalue("site")  # this session's build, shared with the site tests
    if site is not None:
        shipped = site / "tutorials" / hooks.notebook_name(page)
        return json.loads(shipped.read_text(encoding="utf-8")), site / "tutorials"
    reason = skip_reason(page)
    if reason:
        pytest.skip(reason)
    run = hooks.run_notebook(page, tmp_path)
    assert run.ok, f"{page.name} failed as a notebook:\n{run.stderr[-4000:]}"
    return run.notebook, tmp_path


@pytest.mark.parametrize("page", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_notebook_runs_top_to_bottom(page, request, tmp_path):
    """Every code cell of the page's notebook ran, in order, without an error, and wrote the
    figures the page shows; the shipped notebook carries the outputs (the roofline inline)."""
    pytest.importorskip("nbclient")
    notebook, folder = _executed(page, request, tmp_path)
    markdown = page.read_text(encoding="utf-8")
    nbformat.validate(nbformat.from_dict(notebook))
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert ["".join(c["source"]) for c in code] == [block for _, block in hooks.python_blocks(markdown)], (
        f"the notebook of {page.name} is not the page's current code")
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors
    assert any(c["outputs"] for c in code)
    for name in hooks.figure_names(markdown):
        figure = folder / name
        assert figure.is_file(), f"{page.name}: the notebook did not write {name}"
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if page.stem == "roofline":  # the cell drawing the roofline returns the Figure: shown inline
        assert outputs(nbformat.from_dict(notebook), "image/png")


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
