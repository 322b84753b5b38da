"""The documentation site (mkdocs.yml, docs/): it builds strictly, its code runs, its API pages
render the main classes with their signatures, and its quotes and generated pages match the
code they come from.

- Every page's ```python blocks run, with TINYTORCH_DOCS_QUICK=1 (the tutorials' small
  settings), exactly as the docs build runs them through docs/hooks/tinytorch_docs.py: the
  tutorials are run by the site build itself, each as its Jupyter notebook (a failing cell, or a
  notebook that does not write the figures its page shows, fails the build), so
  `test_page_code_runs` runs the other pages' code (as one script each) and the site tests check
  the tutorials' figures and outputs (test_notebooks.py checks the executed notebooks).
- One `mkdocs build --strict` serves all the site tests: the one `.ci/run` has just made (it
  names its folder in TINYTORCH_DOCS_BUILD), or else a session-scoped build into a temporary
  folder (the ``site`` fixture of conftest.py, tests/docs_site.py). Either way the tutorials run
  once per CI run, not once per build plus once per test.
- The docstrings of every package (core, vision, language, perf, tito) are parsed with griffe's
  warnings on; the site's config turns off only the missing-type warning (much code is untyped).
"""

from __future__ import annotations

import functools
import html
import importlib
import logging
import re
import tempfile
from pathlib import Path

import pytest
from docs_site import (
    DATA_CALL,
    DOCS,
    ROOT,
    hooks,
    missing_data,
    pages_with_code,
    skip_reason,
    tutorial_pages,
)
from docs_site import data_root as _data_root
from docs_site import importable as _importable

# ------------------------------------------------------------------------------ unit tests


def test_python_blocks_are_extracted_in_order():
    text = """# Page

```python
a = 1
```

```bash
not python
```

  ```python
  b = a + 1
  ```

```python norun
raise SystemExit("never run")
```

````python
c = '''
```
'''
````
"""
    blocks = hooks.python_blocks(text)
    assert [code for _, code in blocks] == ["a = 1", "b = a + 1", "c = '''\n```\n'''"]
    assert blocks[0][0] == 4  # line numbers point into the markdown file
    namespace: dict = {}
    exec(hooks.tutorial_script(text), namespace)
    assert namespace["b"] == 2


def test_a_relative_data_folder_is_found_from_the_tutorials_temporary_folder(tmp_path, monkeypatch):
    # TINYTORCH_DATA=../shared/data means the folder relative to where the build started, not
    # to the temporary folder each tutorial runs in.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "marker.txt").write_text("here")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINYTORCH_DATA", "data")
    page = tmp_path / "page.md"
    page.write_text("```python\nimport os\n"
                    "print(open(os.path.join(os.environ['TINYTORCH_DATA'], 'marker.txt')).read())\n```\n")
    run = hooks.run_tutorial(page, tmp_path / "work")
    assert run.ok and list(hooks.cell_outputs(run.stdout).values()) == ["here"], run.stderr
    assert _data_root() == tmp_path / "data"


def test_doctests_in_docstrings_become_code_blocks():
    lines = ["Text.", "", ">>> x = [1, 2]", ">>> x[0]", "1", "", "```python", ">>> kept", "```"]
    assert hooks.fence_doctests(lines) == [
        "Text.", "", "```pycon", ">>> x = [1, 2]", ">>> x[0]", "1", "```", "",
        "```python", ">>> kept", "```",
    ]


def test_getting_started_quotes_the_readme():
    section = hooks.readme_section("Two commands")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert section.strip() in readme
    assert "uv run tito language train" in section  # the main job
    assert "uv run pytest -q" in section  # the test command
    page = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    assert "<!-- readme: Two commands -->" in page
    # the README's links into docs/ still lead there from the page that includes it
    assert "[Learn by building](docs/learn/index.md)" in section
    assert "[Learn by building](learn/index.md)" in hooks.include_readme(page, "getting-started.md")
    assert "[Learn by building](../learn/index.md)" in hooks.include_readme(page, "tutorials/page.md")
    with pytest.raises(ValueError, match="no '## Nope' section"):
        hooks.readme_section("Nope")


def test_the_course_pages_list_the_curriculum_generated_from_its_data():
    from tinytorch.learn import load_curriculum

    course = load_curriculum()
    listing = hooks.learn_curriculum()
    exercises = [e for m in course.modules for e in m.exercises]
    assert listing.startswith(f"{len(course.modules)} modules, {len(exercises)} exercises")
    for m in course.modules:
        assert f"| `{m.name}` | {m.title} |" in listing
    for e in exercises:
        assert f"`{e.name}`{' ⏱' if e.kernel else ''} (`{e.target}`)" in listing
    for page in ("learn/index.md", "learn/teach.md"):
        text = (DOCS / page).read_text(encoding="utf-8")
        assert hooks.LEARN_CURRICULUM in text, page
        # a count typed into the page would drift from the data
        assert not re.search(r"\d+ modules, \d+ exercises", text), page
    assert "roofline" in (DOCS / "learn/index.md").read_text(encoding="utf-8")


def test_the_learn_page_shows_the_stub_tito_learn_start_writes_and_runs_tito_as_the_readme_does():
    from tinytorch.learn import load_curriculum
    from tinytorch.learn.stubs import module_source

    page = (DOCS / "learn/index.md").read_text(encoding="utf-8")
    shown = re.search(r"```python norun\n(.*?)\n```", page, re.S).group(1)
    assert shown in module_source(load_curriculum().module("autograd"))  # never drifts from the generator
    assert shown.startswith("# The forward pass of MatMulFunction") and shown.rstrip().endswith(
        "raise NotImplementedError('exercise autograd/matmul_backward is not implemented yet')")
    commands = [line for block in re.findall(r"```bash\n(.*?)```", page, re.S) for line in block.splitlines()
                if "tito " in line]
    assert commands and all(line.startswith("python3 -m uv run tito ") for line in commands), commands
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    assert "[Learn by building](docs/learn/index.md)" in readme
    assert "python3 -m uv run tito learn start autograd" in readme


def test_cli_reference_walks_every_plugin_command():
    from click.testing import CliRunner

    from tito.main import cli

    reference = hooks.cli_reference()
    commands = hooks.cli_commands(reference)
    assert commands[0] == "tito"
    top = CliRunner().invoke(cli, ["plugins", "--json"])
    assert top.exit_code == 0, top.output
    for name in ("core", "performance", "plugins", "doctor", "reuse"):
        assert f"tito {name}" in commands
    for sub in ("hardware", "flops", "roofline", "profile", "compare", "cifar10", "benchmark",
                "compare-runs"):
        assert f"tito performance {sub}" in commands
    assert "tito core summary" in commands
    # the help text is click's own, options included
    flops = reference.split("`tito performance flops`", 1)[1].split("\n#", 1)[0]
    assert "Usage: tito performance flops" in flops
    assert "--json" in flops


# ------------------------------------------------------------------------------ pages run


@pytest.mark.parametrize(
    "page", [p for p in pages_with_code() if p not in tutorial_pages()],
    ids=lambda p: str(p.relative_to(DOCS))
)
def test_page_code_runs(page: Path, tmp_path: Path):
    """The code of every page that is not a tutorial (the site build runs those: see `site`)."""
    reason = skip_reason(page)
    if reason:
        pytest.skip(reason)
    run = hooks.run_tutorial(page, tmp_path, quick=True)
    assert run.ok, f"{page.relative_to(ROOT)} failed (exit {run.returncode}):\n{run.stderr[-6000:]}"
    wanted = hooks.figure_names(page.read_text(encoding="utf-8"))
    assert sorted(wanted) == sorted(n for n in run.figures if n in wanted), (
        f"{page.name} shows {wanted} but its code wrote {sorted(run.figures)}"
    )
    for name in wanted:
        assert run.figures[name][:8] == b"\x89PNG\r\n\x1a\n" or name.endswith(".svg")


def test_every_tutorial_has_code_figures_and_the_quick_switch():
    tutorials = sorted((DOCS / "tutorials").glob("*.md"))
    assert {p.stem for p in tutorials} == {"fashion-mnist-cnn", "shakespeare-gpt", "roofline", "distributed", "optimize"}
    for page in tutorials:
        text = page.read_text(encoding="utf-8")
        first = hooks.python_blocks(text)[0][1]
        assert "TINYTORCH_DOCS_QUICK" in first, f"{page.name}: the first block must set QUICK"
        assert hooks.figure_names(text), f"{page.name} shows no figure produced by its code"
        assert not list(page.parent.glob("*.png")), "tutorial figures are generated, not committed"


# ------------------------------------------------------------------------------ the built site


def _signature(page: Path, object_path: str) -> str:
    """The rendered signature under the heading of ``object_path`` on an API page."""
    text = page.read_text(encoding="utf-8")
    start = text.find(f'id="{object_path}"')
    assert start >= 0, f"{object_path} is not rendered on {page}"
    end = text.find("</h", start)
    nxt = re.compile(r"<h[1-6][ >]").search(text, end)
    sig = text.find('class="doc-signature', end)
    assert sig >= 0 and (nxt is None or sig < nxt.start()), (
        f"{object_path} on {page} has no signature"
    )
    code = text[sig: text.find("</pre>", sig)]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", code)).split())


API = [
    # (page, object, what its signature must show)
    ("core/api/tensor", "tinytorch.core.tensor.Tensor", ["Tensor(", "data", "requires_grad"]),
    ("core/api/tensor", "tinytorch.core.tensor.Tensor.backward", ["backward(", "grad"]),
    ("core/api/nn", "tinytorch.core.nn.module.Module", ["Module("]),
    ("core/api/nn", "tinytorch.core.nn.module.Module.state_dict", ["state_dict("]),
    ("core/api/nn", "tinytorch.core.nn.layers.Linear",
     ["Linear(", "in_features: int", "out_features: int", "bias: bool = True"]),
    ("core/api/optim", "tinytorch.core.optim.adam.AdamW", ["AdamW(", "params", "lr"]),
    ("core/api/training", "tinytorch.core.training.Trainer",
     ["Trainer(", "model: Module", "optimizer", "loss_fn"]),
    ("core/api/training", "tinytorch.core.data.DataLoader", ["DataLoader(", "batch_size"]),
    ("core/api/quantization", "tinytorch.core.quantization.functional.quantize_per_tensor",
     ["quantize_per_tensor(", "scale: float", "zero_point: int", "dtype"]),
    ("core/api/quantization", "tinytorch.core.quantization.api.prepare", ["prepare(", "model: Module", "qconfig"]),
    ("vision/api/layers", "tinytorch.vision.quantized.QuantizedConv2d.from_float",
     ["from_float(", "layer: Conv2d", "input_observer"]),
    ("vision/api/layers", "tinytorch.vision.layers.Conv2d",
     ["Conv2d(", "in_channels: int", "out_channels: int", "kernel_size"]),
    ("language/api/models", "tinytorch.language.model.TinyGPT",
     ["TinyGPT(", "vocab_size: int", "d_model: int", "num_heads: int", "num_layers: int"]),
    ("perf/api/roofline", "tinytorch.perf.roofline.RooflineModel",
     ["RooflineModel(", "hardware", "peak_gflops"]),
    ("perf/api/roofline", "tinytorch.perf.hardware.get_hardware_spec",
     ["get_hardware_spec(", "quick: bool = False"]),
    ("perf/api/flops", "tinytorch.perf.flops.FLOPsCounter.trace",
     ["trace(", "model", "example_input", "backward: bool = False"]),
    ("perf/api/profiler", "tinytorch.perf.profiler.ModelProfiler",
     ["ModelProfiler(", "model", "example_input"]),
    ("perf/api/profiler", "tinytorch.perf.profiler.ModelProfiler.profile",
     ["profile(", "repeats: int = 5"]),
    ("tito/api", "tito.main.main", ["main(", "argv"]),
]


@pytest.mark.parametrize("page, obj, parts", API, ids=[a[1] for a in API])
def test_api_pages_render_main_classes_with_signatures(site: Path, page, obj, parts):
    signature = _signature(site / page / "index.html", obj)
    for part in parts:
        assert part in signature, f"{obj}: {part!r} not in rendered signature {signature!r}"


def test_perf_api_page_renders_flops_counter(site: Path):
    text = (site / "perf/api/flops/index.html").read_text(encoding="utf-8")
    assert 'id="tinytorch.perf.flops.FLOPsCounter"' in text
    assert "1 multiply-add = 2 FLOPs" in text


def test_cli_page_lists_every_command_with_its_help(site: Path):
    text = html.unescape((site / "tito/cli/index.html").read_text(encoding="utf-8"))
    for command in ("tito performance flops", "tito performance roofline", "tito performance "
                    "hardware", "tito core summary", "tito plugins", "tito reuse", "tito doctor"):
        slug = command.replace(" ", "-")
        assert f'id="{slug}"' in text, f"{command} has no section on the CLI page"
    assert "Usage: tito performance flops" in re.sub(r"<[^>]+>", "", text)
    if _importable("tinytorch.language"):
        assert 'id="tito-language-train"' in text
    if _importable("tinytorch.vision"):
        assert 'id="tito-vision-train"' in text


def test_site_has_the_tutorial_figures_and_quotes(site: Path):
    for page in sorted((DOCS / "tutorials").glob("*.md")):
        for name in hooks.figure_names(page.read_text(encoding="utf-8")):
            figure = site / "tutorials" / name
            assert figure.is_file(), f"{name} (shown by {page.name}) is not in the site"
            assert figure.read_bytes()[:4] == b"\x89PNG"
        rendered = (site / "tutorials" / page.stem / "index.html").read_text(encoding="utf-8")
        assert "outputs on this page come from the documentation build" in rendered
        assert "<details" not in rendered  # no collapsed box of all the output at the end
    raw = (site / "getting-started/index.html").read_text(encoding="utf-8")
    assert "<!-- readme" not in raw
    started = html.unescape(re.sub(r"<[^>]+>", "", raw))
    assert "tito language generate --checkpoint checkpoints/tinygpt.safetensors" in started
    arch = (site / "architecture/index.html").read_text(encoding="utf-8")
    assert "Code share" in arch


def test_output_shows_beneath_the_block_that_printed_it(site: Path):
    """Issue 22 §5: each block's output right after the block, in page order."""
    rendered = html.unescape(re.sub(r"<[^>]+>", "", (site / "tutorials/roofline/index.html").read_text(encoding="utf-8")))
    ridge = re.search(r"ridge point +\d+\.\d\d FLOP/byte", rendered).start()  # section 1's output
    assert rendered.index("spec = get_hardware_spec()") < ridge < rendered.index("from tinytorch.perf import CONVENTION")
    flops = rendered.index("3,538,944 FLOPs + ")  # printed by section 2's first block
    assert rendered.index("from tinytorch.perf import CONVENTION") < flops < rendered.index("mlp = nn.Sequential")


def test_package_graph_is_drawn_at_build_time_without_a_cdn(site: Path):
    """Issue 22 §5: the mermaid graph showed as raw text offline (mermaid.js came from a CDN)."""
    arch = (site / "architecture/index.html").read_text(encoding="utf-8")
    assert 'class="mermaid"' not in arch and "graph TD" not in arch
    graph = arch[arch.index('class="tt-graph"'):]
    graph = graph[:graph.index("</svg>")]
    for label in ("tinytorch-core 0.1.0", "tito-cli 0.1.0", "tito.commands", "tinytorch.models"):
        assert label in graph
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "mermaid" not in text.lower().replace("mermaid_svg", ""), page
    assert not [p for p in site.rglob("*.js") if "mermaid" in p.read_text(encoding="utf-8", errors="ignore").lower()[:2000]]


def test_no_page_loads_anything_from_outside_the_site(site: Path):
    """Issue 22 §5: offline, the site shows as it does online (no CDN: no fonts from Google, no
    mermaid.js). Links a reader may follow are fine; what a page loads is not. The browser test
    (test_site_browser.py) also watches what the pages' scripts request."""
    loads = re.compile(r"<(?:script|link|img|iframe|source|embed|object)\b[^>]*?\b(?:src|href|srcset|data)=[\"']?(https?:)?//", re.I)
    outside = {str(page.relative_to(site)): m.group(0) for page in site.rglob("*.html")
               for m in [loads.search(page.read_text(encoding="utf-8"))] if m}
    assert not outside, outside
    assert len(list(site.rglob("*.html"))) > 20


def test_init_py_renders_as_code_and_long_lines_wrap(site: Path):
    arch = (site / "architecture/index.html").read_text(encoding="utf-8")
    assert "<code>__init__.py</code> included" in arch and "<strong>init</strong>" not in arch
    css = (site / "stylesheets/tinytorch.css").read_text(encoding="utf-8")
    assert re.search(r"pre > code\s*{[^}]*white-space:\s*pre-wrap", css)
    assert 'href="../../stylesheets/tinytorch.css"' in (site / "tutorials/roofline/index.html").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------ hook units


def test_tutorial_count_in_words_is_the_real_count():
    """Issue 22 §5: "the three tutorials" when there were four."""
    count = len(list((DOCS / "tutorials").glob("*.md")))
    words = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}
    for path in [ROOT / ".ci/run", ROOT / "README.md", *DOCS.rglob("*.md")]:
        for m in re.finditer(r"\b(two|three|four|five|six|seven|\d+) tutorials\b", path.read_text(encoding="utf-8")):
            assert m.group(1) in (words.get(count), str(count)), f"{path.name}: {m.group(0)!r}, there are {count}"


_PAGE = ("# T\n\n```python\nprint('first')\n```\n\ntext\n\n```python norun\nprint('never')\n```\n\n"
         "```python\nx = 1\n```\n\n```python\nimport subprocess, sys\n"
         "subprocess.run([sys.executable, '-c', 'print(\"from a child\")'])\nprint('third')\n```\n")


def _shown_beneath(page: Path, outputs: dict[int, str], count: int = 2) -> None:
    shown = hooks.insert_outputs(page.read_text(), outputs)
    assert ("```python\nprint('first')\n```\n\n```text title=\"Output\"\nfirst\n```\n\ntext" in shown)
    assert "print('third')\n```\n\n```text title=\"Output\"\nfrom a child\nthird\n```" in shown
    assert shown.count("title=\"Output\"") == count  # nothing beneath a silent block or a norun one


def test_cell_outputs_land_beneath_their_blocks(tmp_path: Path):
    """A page's blocks run as one script (the pages that are not tutorials)."""
    page = tmp_path / "page.md"
    page.write_text(_PAGE)
    run = hooks.run_tutorial(page, tmp_path / "work")
    assert run.ok, run.stderr
    assert run.outputs == hooks.cell_outputs(run.stdout) == {4: "first", 14: "", 18: "from a child\nthird"}
    _shown_beneath(page, run.outputs)


def test_notebook_cell_outputs_land_beneath_their_blocks(tmp_path: Path):
    """A tutorial runs as its notebook: each cell's output (a child process's included, which
    ipykernel forwards only when it is not told it runs under pytest) goes beneath its block; a
    cell's last value shows as its text, a figure as nothing (the page shows the saved file)."""
    pytest.importorskip("nbclient")
    page = tmp_path / "page.md"
    # ipykernel forwards a child's output from a thread that reads the pipe: the child lingers
    # after printing so that the thread has read it before the parent prints again.
    child = 'print("from a child", flush=True); import time; time.sleep(0.5)'
    page.write_text(_PAGE.replace("print(\"from a child\")", child)
                    + "\n```python\nx + 41\n```\n\n```python\nfrom tinytorch.core.training import History\n"
                    "History(steps=[{'step': 1, 'loss': 1.0}, {'step': 2, 'loss': 0.5}]).plot()\n```\n")
    run = hooks.run_notebook(page, tmp_path / "work")
    assert run.ok, run.stderr
    assert run.outputs == {4: "first", 14: "", 18: "from a child\nthird", 24: "42", 28: ""}
    assert run.stdout == "first\nfrom a child\nthird\n"
    assert [c["execution_count"] for c in run.notebook["cells"] if c["cell_type"] == "code"] == [1, 2, 3, 4, 5]
    assert "image/png" in run.notebook["cells"][-1]["outputs"][0]["data"]  # shipped inline
    _shown_beneath(page, run.outputs, count=3)
    page.write_text("```python\nprint('before')\n```\n\n```python\n1 / 0\n```\n\n```python\nprint('never')\n```\n")
    run = hooks.run_notebook(page, tmp_path / "failing")
    assert run.returncode == 1 and run.outputs == {2: "before", 6: "", 10: ""}
    assert "ZeroDivisionError" in run.stderr and "1 / 0" in run.stderr and "\x1b[" not in run.stderr


class _Probe:
    loads: list = []

    def __init__(self, threshold_cores=0.25, children=False):
        assert children  # the tutorial runs in a child process: its CPU is ours
        self.threshold = threshold_cores

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        others = _Probe.loads.pop(0)
        self.result = {"others_cores": others, "load_1min": 6.5, "contended": others > self.threshold}
        return False


def _timed(monkeypatch, loads, mode, returncode=0, attempts_env=None):
    from tinytorch.core import contention

    monkeypatch.setattr(_Probe, "loads", list(loads))
    monkeypatch.setattr(contention, "ContentionProbe", _Probe)
    if attempts_env is None:
        monkeypatch.delenv(hooks.TIMED_ATTEMPTS_ENV, raising=False)
    else:
        monkeypatch.setenv(hooks.TIMED_ATTEMPTS_ENV, attempts_env)
    calls, sleeps = [], []

    def fake_run(page, workdir):
        calls.append(page)
        return hooks.TutorialRun("roofline.md", returncode, 1.0, f"run {len(calls)}", "")

    result = hooks.run_timed_tutorial("roofline.md", "w", mode=mode, run=fake_run, sleep=sleeps.append)
    return result, calls, sleeps


def test_timed_tutorial_is_run_again_until_a_quiet_run(monkeypatch):
    result, calls, sleeps = _timed(monkeypatch, [1.2, 0.9, 0.1], "fail")
    assert result.stdout == "run 3" and result.attempts == 3 and not result.contended
    assert len(calls) == 3 and sleeps == [hooks.TIMED_RETRY_WAIT_S] * 2
    result, calls, _ = _timed(monkeypatch, [0.05], "fail")
    assert len(calls) == 1 and result.contention["others_cores"] == 0.05
    result, calls, _ = _timed(monkeypatch, [1.5], "fail", returncode=1)  # a failure is reported as it is
    assert len(calls) == 1 and not result.ok


def test_timed_tutorial_contended_every_time_fails_or_is_marked(monkeypatch):
    with pytest.raises(hooks.ContendedFigures, match=r"all 3 runs \(they used 1.20, 0.90, 1.50 cores; load average 6.5\)"):
        _timed(monkeypatch, [1.2, 0.9, 1.5], "fail")
    result, calls, _ = _timed(monkeypatch, [1.2, 0.9, 1.5], "mark")
    assert result.stdout == "run 2" and result.contended and len(calls) == 3  # the least contended
    note = hooks.contended_note(result)
    assert note.startswith('!!! warning "Figures measured under load"') and "0.90 cores" in note
    with pytest.raises(ValueError, match="TINYTORCH_DOCS_CONTENDED must be 'fail' or 'mark'"):
        hooks.run_timed_tutorial("roofline.md", "w", mode="ignore")


def test_a_check_build_can_take_the_first_timed_run(monkeypatch):
    """.ci/run's build sets TINYTORCH_DOCS_TIMED_ATTEMPTS=1: one run, marked if contended."""
    result, calls, sleeps = _timed(monkeypatch, [1.2, 0.1], "mark", attempts_env="1")
    assert len(calls) == 1 and sleeps == [] and result.contended and result.attempts == 1
    assert hooks.contended_note(result).startswith('!!! warning "Figures measured under load"')
    result, calls, _ = _timed(monkeypatch, [1.2, 0.1], "mark", attempts_env="2")
    assert len(calls) == 2 and not result.contended
    for bad in ("0", "three", "-1"):
        with pytest.raises(ValueError, match=f"TINYTORCH_DOCS_TIMED_ATTEMPTS must be a whole number of runs, "
                                             f"at least 1, got '{bad}'"):
            _timed(monkeypatch, [1.2], "mark", attempts_env=bad)


@pytest.mark.parametrize("page", ["roofline", "optimize"])
def test_pages_whose_figures_are_timings_are_marked_as_timed(page):
    """Both draw figures from clocks (the roofline's layer times; optimize's latency and
    throughput ratios): they run alone, inside the contention probe."""
    assert hooks.TIMED_MARKER in (DOCS / f"tutorials/{page}.md").read_text(encoding="utf-8")


def test_mermaid_subset_is_parsed_and_other_lines_refused():
    nodes, edges = hooks.parse_mermaid('graph TD\n    a["A 1"]\n    b["B"]\n    a -->|2 imports| b\n    a -.->|ep| b\n')
    assert nodes == {"a": "A 1", "b": "B"}
    assert edges == [("a", "b", "2 imports", False), ("a", "b", "ep", True)]
    with pytest.raises(ValueError, match="cannot draw the line 'a --- b'"):
        hooks.parse_mermaid("graph TD\n a --- b\n")
    svg = hooks.mermaid_svg('graph TD\n    a["top node"]\n    b["bottom node"]\n    a -->|uses| b\n')
    assert svg.startswith("<svg") and "top node" in svg and "uses" in svg


def test_every_package_has_a_section(site: Path):
    for section in ("core", "vision", "language", "perf", "learn", "tito"):
        assert (site / section / "index.html").is_file()
        assert list((site / section).glob("api*/**/index.html")) or (site / section / "api").is_dir()


# ------------------------------------------------------------------------------ docstrings

DOCUMENTED = ("tinytorch.core", "tinytorch.vision", "tinytorch.language", "tinytorch.perf",
              "tinytorch.learn", "tito")
SRC = [str(ROOT / "packages" / p / "src") for p in
       ("tinytorch-core", "tinytorch-vision", "tinytorch-language", "tinytorch-perf", "tinytorch-learn",
        "tito-cli")]
# Methods that implement an interface documented once on the base class.
INHERITED_DOCS = {"forward", "backward", "extra_repr", "get_lr", "on_train_begin",
                  "on_epoch_begin", "on_step_end", "on_eval_begin", "on_eval_end", "on_epoch_end",
                  "on_train_end", "convert",
                  "to_dict", "state_dict", "load_state_dict", "__init__", "__call__"}


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@functools.cache
def _griffe_tree(package: str):
    """griffe's static tree of ``package`` and the warnings logged while loading it: loaded once
    for the three docstring tests of each package (a load takes seconds)."""
    import griffe

    handler, root_logger = _Records(), logging.getLogger()
    root_logger.addHandler(handler)
    try:
        root = griffe.load(package, search_paths=SRC, allow_inspection=False)
    finally:
        root_logger.removeHandler(handler)
    return root, tuple(r.getMessage() for r in handler.records)


def _public_objects(package: str):
    root, _ = _griffe_tree(package)

    def walk(obj):
        for name, member in obj.members.items():
            if member.is_alias or (name.startswith("_") and name != "__init__"):
                continue
            if member.is_module:
                yield from walk(member)
            elif member.is_class or member.is_function:
                yield member
                if member.is_class:
                    yield from walk(member)

    yield from walk(root)


@pytest.mark.parametrize("package", DOCUMENTED)
def test_public_api_has_docstrings(package):
    missing = []
    for obj in _public_objects(package):
        parent_is_class = obj.parent is not None and obj.parent.is_class
        if parent_is_class and obj.name in INHERITED_DOCS:
            continue
        if not obj.docstring or not obj.docstring.value.strip():
            missing.append(f"{obj.path} ({obj.relative_filepath}:{obj.lineno})")
    assert not missing, f"{len(missing)} public objects without a docstring:\n" + "\n".join(missing)


@pytest.mark.parametrize("package", DOCUMENTED)
def test_exported_api_has_examples(package):
    """Every class and function a package exports (its ``__all__``) shows an example."""
    root, _ = _griffe_tree(package)
    modules = [root] + [m for m in root.modules.values() if not m.name.startswith("_")]
    missing = []
    for module in modules:
        for name in module.exports or ():
            member = module.members.get(name)
            if member is None:
                continue
            target = member.final_target if member.is_alias else member
            if not (target.is_class or target.is_function):
                continue
            doc = target.docstring.value if target.docstring else ""
            if ">>>" not in doc:
                missing.append(f"{target.path} ({target.relative_filepath}:{target.lineno})")
    missing = sorted(set(missing))
    assert not missing, f"{len(missing)} exported objects without an example:\n" + "\n".join(missing)


@pytest.mark.parametrize("package", DOCUMENTED)
def test_docstrings_parse_without_warnings(package, caplog):
    """Google-style sections parse cleanly: documented parameters exist, and so on."""
    from griffe import Parser

    with caplog.at_level(logging.WARNING):
        for obj in _public_objects(package):
            if obj.docstring:
                obj.docstring.parse(Parser.google, warn_missing_types=False)
    warnings = [*_griffe_tree(package)[1],  # loading's own, whichever test loaded it first
                *(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)]
    assert not warnings, "\n".join(warnings)


def _modules(package: str) -> list[str]:
    import pkgutil

    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def _docstring_examples(package: str, needing_data: bool):
    """(name, DocTest) of every example in ``package``: those that read a downloadable data set
    (`dataset_folder("...")`) or the others."""
    import doctest

    finder = doctest.DocTestFinder(exclude_empty=True)
    for name in _modules(package):
        module = importlib.import_module(name)
        for test in finder.find(module, name, globs=dict(vars(module))):
            code = "".join(example.source for example in test.examples)
            if test.examples and bool(DATA_CALL.search(code)) == needing_data:
                yield test


def _run_doctests(tests) -> list[str]:
    import doctest

    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    failures = []
    for test in tests:
        runner = doctest.DocTestRunner(optionflags=flags)
        out: list[str] = []
        result = runner.run(test, out=out.append, clear_globs=True)
        if result.failed:
            failures.append("".join(out))
    return failures


@pytest.mark.parametrize("package", DOCUMENTED)
def test_docstring_examples_run(package, tmp_path, monkeypatch):
    """Every ``>>>`` example in every package is a passing doctest (those that need a data set
    to be downloaded run in the next test). They run as on a machine without any data set
    (issue 22 §1: the README's test command failed with ``KeyError: 'TINYTORCH_DATA'``)."""
    monkeypatch.setenv("TINYTORCH_DATA", str(tmp_path / "no-data"))
    tests = list(_docstring_examples(package, needing_data=False))
    scratch = _examples_scratch(tmp_path, monkeypatch)
    failures = _run_doctests(tests)
    assert not failures, f"{len(failures)} failing docstring examples:\n" + "\n".join(failures)
    if any("mkdtemp(" in e.source for test in tests for e in test.examples):  # left for the reader
        assert any(scratch.iterdir()), "the examples' temporary folders were not made in the test's folder"


def _examples_scratch(tmp_path: Path, monkeypatch) -> Path:
    """Examples write through ``tempfile.mkdtemp()`` as a reader would; under test those folders
    go to this test's temporary folder, which pytest removes, not to the machine's /tmp, where
    every run of the suite used to leave a few (GPT-2-shaped checkpoints among them)."""
    scratch = tmp_path / "tempfile"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


@pytest.mark.parametrize("package", DOCUMENTED)
def test_docstring_examples_with_data_run(package, tmp_path, monkeypatch):
    """The examples that read a downloadable data set pass when it is there (skipped, with the
    download command, when it is not)."""
    _examples_scratch(tmp_path, monkeypatch)
    tests = list(_docstring_examples(package, needing_data=True))
    if not tests:
        pytest.skip(f"no example in {package} needs a data set")
    missing = sorted({name for test in tests for name in
                      missing_data("".join(e.source for e in test.examples))})
    if missing:
        pytest.skip(f"{', '.join(missing)} not in {_data_root()}: tito data download {' '.join(missing)}")
    # the folder just checked, also when it is the default beside the clone rather than $TINYTORCH_DATA
    monkeypatch.setenv("TINYTORCH_DATA", str(_data_root()))
    failures = _run_doctests(tests)
    assert not failures, f"{len(failures)} failing docstring examples:\n" + "\n".join(failures)
