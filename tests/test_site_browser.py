"""The built site as a learner sees it in a browser, offline (issue 22 §5): headless Chromium loads
the pages with every host name unresolvable, lets their scripts run, and reports what failed to
load, what was requested from outside the site, and the rendered page: whether a code block's
text is wider than its box (cut off or behind a scroll bar), whether the package graph is a
drawing or raw mermaid text, which block follows which (each cell's output beneath its cell, not
collapsed at the end), and how ``__init__.py`` renders.

One Chromium run checks every page: a harness page loads copies of the built pages in iframes,
each with tests/site_check.js injected as its first script, which posts its findings back. The
same run loads two copies with the faults the issue found put back (raw mermaid text, a CDN font,
``__init__.py`` as bold "init", code clipped, outputs collapsed at the end of the page) and the
checks must report each of them: they can fail. Skipped, saying so, without a Chromium binary.
The site is the build the other site tests check (``site`` fixture: .ci/run's, or this session's).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from docs_site import hooks, tutorial_pages

HERE = Path(__file__).parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: a laptop's window: the theme shows both side bars, so the text column is narrow
WINDOW = (1280, 800)
#: loaded besides the tutorials: the graph, the README quote, an API page, the CLI reference
PAGES = ["index.html", "getting-started/index.html", "architecture/index.html",
         "core/api/tensor/index.html", "tito/cli/index.html"]
GRAPH_LABELS = {"tinytorch-core 0.1.0", "tito-cli 0.1.0"}
LOCAL = ("file:", "data:", "blob:", "about:")


def chromium() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    pytest.skip(f"no Chromium binary ({', '.join(BROWSERS)}) on PATH: the browser checks of the site "
                f"need one (Debian: apt-get install chromium)")


def _inject(page_html: str, depth: int) -> str:
    tag = f'<script src="{"../" * depth}tt-site-check.js"></script>'
    head = re.search(r"<head[^>]*>", page_html)
    assert head, "a built page without <head>"
    return page_html[:head.end()] + tag + page_html[head.end():]


def browse(site: Path, pages: dict[str, str], workdir: Path, replaced: dict[str, str] | None = None) -> dict[str, dict]:
    """Load ``pages`` (name -> page path in the site) in one headless, offline Chromium run;
    each page's report from tests/site_check.js, by name. The pages load from a copy of the site
    (with ``replaced``'s pages, path -> HTML, written into it): the build is never written to."""
    copy = workdir / "site"
    shutil.copytree(site, copy)
    for path, text in (replaced or {}).items():
        (copy / path).write_text(text, encoding="utf-8")
    (copy / "tt-site-check.js").write_text((HERE / "site_check.js").read_text(encoding="utf-8"), encoding="utf-8")
    for path in set(pages.values()):
        target = copy / path
        target.write_text(_inject(target.read_text(encoding="utf-8"), path.count("/")), encoding="utf-8")
    frames = "".join(f'<iframe width="{WINDOW[0]}" height="{WINDOW[1]}" src="{path}"></iframe>'
                     for path in pages.values())
    (copy / "tt-harness.html").write_text(
        '<html><body><pre id="reports"></pre><script>addEventListener("message", (e) => {'
        ' document.getElementById("reports").textContent += e.data + "\\n"; });</script>'
        f"{frames}</body></html>", encoding="utf-8")
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-extensions", f"--user-data-dir={workdir / 'profile'}",
               # offline: no host name resolves, so a page that needs the network shows it
               "--host-resolver-rules=MAP * ~NOTFOUND",
               "--virtual-time-budget=30000", "--dump-dom", (copy / "tt-harness.html").as_uri()]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=180)
    dom = re.search(r'<pre id="reports">(.*?)</pre>', proc.stdout, re.S)
    assert proc.returncode == 0 and dom, f"chromium failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    reports = {}
    for line in html.unescape(dom.group(1)).splitlines():
        report = json.loads(line)
        reports[report["page"].split("/site/", 1)[1]] = report
    by_name = {name: reports.get(path) for name, path in pages.items()}
    silent = [name for name, r in by_name.items() if r is None]
    assert not silent, f"these pages never reported (their scripts did not run to the end): {silent}"
    return by_name


# ------------------------------------------------------------------------------ the checks


def load_problems(report: dict) -> list[str]:
    """What failed to load, and what was requested from outside the site (a CDN)."""
    problems = [f"failed to load {url}" for url in report["failed"]]
    problems += [f"requested from outside the site: {url}" for url in report["requested"]
                 if not url.startswith(LOCAL)]
    return problems


def clipping_problems(report: dict) -> list[str]:
    return [f"code block cut off or scrolled: {b['text'][:70]!r}" for b in report["blocks"]
            if b["clipped"] and b["visible"]]


def graph_problems(report: dict) -> list[str]:
    """The package graph shows as a drawing with its labels, never as mermaid source text."""
    problems = []
    if "graph TD" in report["text"]:
        problems.append("the package graph shows as raw mermaid text")
    drawn = [g for g in report["graphs"] if g["width"] > 300 and g["height"] > 150
             and GRAPH_LABELS <= set(g["labels"])]
    if not drawn:
        problems.append(f"no drawing of the package graph with the labels {sorted(GRAPH_LABELS)}")
    return problems


def init_problems(report: dict) -> list[str]:
    problems = []
    if not any("__init__.py" in code for code in report["inline_code"]):
        problems.append("__init__.py is not rendered as code")
    if "init" in report["strong"]:
        problems.append('__init__.py rendered as bold "init"')
    return problems


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def output_problems(report: dict, notebook: dict) -> list[str]:
    """Each code cell of the executed notebook is a block on the page, and the block right after it
    is its output (visible, not in a collapsed box) when it printed something."""
    problems = []
    blocks = report["blocks"]
    for cell in (c for c in notebook["cells"] if c["cell_type"] == "code"):
        source = _lines("".join(cell["source"]))
        at = [i for i, b in enumerate(blocks) if b["title"] != "Output" and _lines(b["text"]) == source]
        if not at:
            problems.append(f"the cell {source[0]!r}... is not a code block of the page")
            continue
        expected = hooks.notebook_cell_text(cell)
        after = blocks[at[0] + 1] if at[0] + 1 < len(blocks) else None
        is_output = after is not None and after["title"] == "Output"
        if not expected:
            if is_output:
                problems.append(f"an output beneath the silent cell {source[0]!r}...")
            continue
        if not is_output:
            problems.append(f"the output of the cell {source[0]!r}... is not beneath it")
        elif _lines(after["text"]) != _lines(expected):
            problems.append(f"beneath the cell {source[0]!r}... is not its output: {after['text'][:80]!r}")
        elif not after["visible"] or after["in_details"]:
            problems.append(f"the output of the cell {source[0]!r}... is hidden in a collapsed box")
    return problems


# ------------------------------------------------------------------------------ the faults put back


def _break_architecture(page: str) -> str:
    """The architecture page as the issue found it: the graph as a mermaid block (the theme then
    loads mermaid.js from a CDN), fonts from Google, and ``__init__.py`` written unquoted."""
    broken, n = re.subn(r'<div class="tt-graph".*?</svg>\s*</div>',
                        '<pre class="mermaid"><code>graph TD\n  core["tinytorch-core 0.1.0"] --&gt; '
                        'cli["tito-cli 0.1.0"]</code></pre>', page, count=1, flags=re.S)
    broken, m = re.subn(r"<code>__init__\.py</code>", "<strong>init</strong>.py", broken)
    if not (n == 1 and m >= 1):  # reported after the real pages' problems
        return ""
    fonts = '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto:300,400">'
    return broken.replace("</head>", fonts + "</head>", 1)


def _break_tutorial(page: str) -> str:
    """A tutorial as the issue found it: every output in one collapsed box at the end of the page,
    and long code lines behind a scroll bar (the site's style sheet not loaded)."""
    outputs = re.compile(r'<div class="highlight"><span class="filename">Output</span>.*?</pre></div>', re.S)
    found = outputs.findall(page)
    broken, n = re.subn(r'<link rel="stylesheet" href="[./]*stylesheets/tinytorch\.css">', "", outputs.sub("", page))
    if not (found and n == 1):  # reported after the real pages' problems
        return ""
    box = f'<details><summary>Output</summary>{"".join(found)}</details>'
    return broken.replace("</article>", box + "</article>", 1)


# ------------------------------------------------------------------------------ the test


def test_site_in_an_offline_browser(site: Path, tmp_path: Path):
    tutorials = {f"tutorials/{p.stem}": f"tutorials/{p.stem}/index.html" for p in tutorial_pages()}
    pages = {p.removesuffix("/index.html").removesuffix(".html"): p for p in PAGES} | tutorials
    # the faults put back, in copies next to the real pages (so their relative links still work)
    arch = (site / "architecture/index.html").read_text(encoding="utf-8")
    roofline = (site / "tutorials/roofline/index.html").read_text(encoding="utf-8")
    broken = {"broken architecture": "architecture/broken.html", "broken tutorial": "tutorials/roofline/broken.html"}
    faults = {path: html for path, html in (("architecture/broken.html", _break_architecture(arch)),
                                            ("tutorials/roofline/broken.html", _break_tutorial(roofline))) if html}
    broken = {name: path for name, path in broken.items() if path in faults}
    reports = browse(site, pages | broken, tmp_path, faults)

    problems = {name: load_problems(r) + clipping_problems(r) for name, r in reports.items() if name not in broken}
    problems["architecture"] += graph_problems(reports["architecture"]) + init_problems(reports["architecture"])
    notebooks = {name: json.loads((site / f"{name}.ipynb").read_text(encoding="utf-8")) for name in tutorials}
    for name, notebook in notebooks.items():
        problems[name] += output_problems(reports[name], notebook)
    problems = {name: p for name, p in problems.items() if p}
    assert not problems, json.dumps(problems, indent=1)
    assert len(faults) == 2, "the architecture page no longer has the graph or __init__.py to " \
        "break, or the roofline page its outputs or the site's style sheet"

    # every check reports the faults it is there for
    arch = reports["broken architecture"]
    assert [p for p in graph_problems(arch) if "raw mermaid text" in p]
    assert [p for p in graph_problems(arch) if "no drawing of the package graph" in p]
    assert [p for p in load_problems(arch) if "fonts.googleapis.com" in p]
    assert [p for p in load_problems(arch) if "mermaid" in p], load_problems(arch)  # the theme's CDN fetch
    assert init_problems(arch) == ["__init__.py is not rendered as code", '__init__.py rendered as bold "init"']
    tutorial = reports["broken tutorial"]
    assert clipping_problems(tutorial), "no code block clipped without the site's style sheet"
    cells = [c for c in notebooks["tutorials/roofline"]["cells"] if c["cell_type"] == "code"]
    printing = [c for c in cells if hooks.notebook_cell_text(c)]
    assert len(output_problems(tutorial, notebooks["tutorials/roofline"])) == len(printing) > 3
