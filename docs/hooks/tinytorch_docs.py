"""mkdocs hooks for the TinyTorch site: everything on it that could drift is generated at build time.

- ``<!-- readme: SECTION -->`` in a page is replaced by that ``## SECTION`` of the repository's
  README.md (up to the next ``##`` heading), so "Getting started" quotes the README's commands
  verbatim instead of copying them.
- ``<!-- tito-cli-reference -->`` is replaced by the reference of the ``tito`` command: the
  ``--help`` of ``tito.main.cli`` and of every command of every installed plugin group, walked
  recursively through click (plugins are loaded through their ``tito.commands`` entry points).
  A plugin that fails to load fails the build.
- Every page under ``tutorials/`` is *run*: its ```` ```python ```` blocks are concatenated into
  one script and executed in a temporary directory with ``TINYTORCH_DOCS_QUICK=1`` (each
  tutorial shows that switch in its first block and picks tiny settings from it). The images
  the run writes (``*.png``, ``*.svg``) become files of the site next to the page, which is how
  its figures get there: none is committed. A failing tutorial fails the build.

``tests/test_docs.py`` imports this file for ``python_blocks`` and ``run_tutorial``, so the test
suite runs the tutorials exactly as the build does.
"""

from __future__ import annotations

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

log = logging.getLogger("mkdocs.plugins.tinytorch")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")


# ------------------------------------------------------------------------------ tutorials


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """The ```` ```python ```` blocks of a markdown text, as (first line number, code).

    Blocks whose info string is not ``python``/``py`` (``bash``, ``text``, ...) are skipped, as
    are python blocks marked ``norun`` (```` ```python norun ````).
    """
    blocks: list[tuple[int, str]] = []
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
            blocks.append((start + 1, "\n".join(body)))
        i = j + 1
    return blocks


def tutorial_script(markdown: str, name: str = "tutorial") -> str:
    """One script of all the page's python blocks, each headed by where it comes from."""
    parts = [f"# ---- {name}, line {line}\n{code}\n" for line, code in python_blocks(markdown)]
    return "\n".join(parts)


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

    @property
    def ok(self) -> bool:
        return self.returncode == 0


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
    env.setdefault("PYTHONHASHSEED", "0")
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


def include_readme(markdown: str) -> str:
    """Replace every ``<!-- readme: SECTION -->`` with that README section."""
    return re.sub(r"<!--\s*readme:\s*(.+?)\s*-->", lambda m: readme_section(m.group(1)), markdown)


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


def on_files(files, config):
    """Run every tutorial (in parallel) and add the figures they write to the site."""
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    pages = [f for f in files.documentation_pages() if f.src_uri.startswith(TUTORIALS)]
    if os.environ.get("TINYTORCH_DOCS_SKIP_TUTORIALS") == "1":
        log.info("TINYTORCH_DOCS_SKIP_TUTORIALS=1: tutorials not run, figures missing")
        return files

    def run(f) -> TutorialRun:
        with tempfile.TemporaryDirectory(prefix="tinytorch-docs-") as tmp:
            return run_tutorial(f.abs_src_path, tmp)

    with ThreadPoolExecutor(max_workers=max(1, min(len(pages), 3))) as pool:
        results = list(pool.map(run, pages))
    for f, result in zip(pages, results):
        if not result.ok:
            raise PluginError(
                f"tutorial {f.src_uri} failed (exit {result.returncode}) when run with "
                f"{QUICK_ENV}=1:\n{result.stderr[-4000:]}"
            )
        log.info("ran %s in %.1f s: %s", f.src_uri, result.seconds, ", ".join(result.figures) or
                 "no figures")
        _runs[f.src_uri] = result
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
    """Insert README sections and the generated CLI reference."""
    markdown = include_readme(markdown)
    if "<!-- tito-cli-reference -->" in markdown:
        markdown = markdown.replace("<!-- tito-cli-reference -->", cli_reference())
    run = _runs.get(page.file.src_uri)
    if run is not None and "<!-- tutorial-output -->" in markdown:
        text = run.stdout.rstrip() or "(no output)"
        block = (f'??? example "Output of the build-time run ({QUICK_ENV}=1, '
                 f'{run.seconds:.0f} s)"\n\n    ```text\n'
                 + "\n".join("    " + line for line in text.splitlines()) + "\n    ```\n")
        markdown = markdown.replace("<!-- tutorial-output -->", block)
    return markdown
