"""What the documentation tests share (test_docs.py, test_notebooks.py, test_site_browser.py): the
docs hook (docs/hooks/tinytorch_docs.py, loaded as a module), why a page's code cannot run here,
and the one `mkdocs build --strict` they all check (the ``site`` fixture of conftest.py).

One build serves every site test: the one `.ci/run` has just made (it names its folder in
``TINYTORCH_DOCS_BUILD``), or else one made once per test session. Either way the tutorials run
once per CI run (the build runs each as its notebook), not once per build plus once per test.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def load_hooks():
    spec = importlib.util.spec_from_file_location("tinytorch_docs_hooks", DOCS / "hooks" / "tinytorch_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


hooks = sys.modules.get("tinytorch_docs_hooks") or load_hooks()


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _needs(code: str) -> list[str]:
    """Which optional TinyTorch packages a page's code imports."""
    return sorted(set(re.findall(r"\btinytorch\.(vision|language)\b", code)))


def data_root() -> Path:
    from tinytorch.core.datafiles import data_root as resolve

    return resolve(hooks.tutorial_env().get("TINYTORCH_DATA") or None)


# Code that needs a downloadable data set names it: `dataset_folder("gpt2-tokenizer")`.
DATA_CALL = re.compile(r"dataset_folder\(\s*[\"']([\w-]+)[\"']")


def missing_data(code: str) -> list[str]:
    """The data sets ``code`` asks for by name that are not in the data root."""
    from tinytorch.core.datafiles import registered_datasets

    known = registered_datasets()
    return sorted(name for name in set(DATA_CALL.findall(code))
                  if name not in known or not known[name].is_present(data_root()))


def _trained_data_sets(code: str) -> set[str]:
    """The data sets a page trains vision's recipe on: ``TrainConfig(dataset=...)``, or its
    default data set when the page leaves it out."""
    if "TrainConfig(" not in code:
        return set()
    from dataclasses import fields

    from tinytorch.vision.train import TrainConfig

    named = set(re.findall(r"dataset=[\"']([\w-]+)[\"']", code))
    return named or {next(f.default for f in fields(TrainConfig) if f.name == "dataset")}


def pages_with_code() -> list[Path]:
    pages = sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)
    return [p for p in pages if hooks.python_blocks(p.read_text(encoding="utf-8"))]


def tutorial_pages() -> list[Path]:
    return sorted((DOCS / hooks.TUTORIALS).glob("*.md"))


def skip_reason(page: Path) -> str | None:
    """Why a page's code cannot run here (a package still being written, data not present)."""
    code = hooks.tutorial_script(page.read_text(encoding="utf-8"))
    for name in _needs(code):
        if not importable(f"tinytorch.{name}"):
            return (f"tinytorch-{name} is not importable yet; this page runs once the package "
                    f"lands (uv sync --all-packages)")
    if "FashionMNIST(" in code and not (data_root() / "fashion-mnist").is_dir():
        return f"Fashion-MNIST is not in {data_root()} (tito data download fashion-mnist)"
    from tinytorch.core.datafiles import registered_datasets

    known = registered_datasets()
    missing = sorted(set(missing_data(code)) | {name for name in _trained_data_sets(code)
                                                if name not in known or not known[name].is_present(data_root())})
    if missing:
        return f"{', '.join(missing)} not in {data_root()} (tito data download {' '.join(missing)})"
    return None


# ------------------------------------------------------------------------------ the built site

#: .ci/run builds the site (strictly, as `build_site` does) into $TINYTORCH_DOCS_BUILD/site with
#: its log in $TINYTORCH_DOCS_BUILD/build.log, and hands the folder to pytest: one build per CI run.
BUILT_ENV = "TINYTORCH_DOCS_BUILD"


def check_build_log(log: str) -> None:
    # --strict fails on mkdocs' own warnings; this also catches a plugin's (griffe's) WARNING lines
    assert "WARNING" not in log, log
    for page in tutorial_pages():  # the build ran every tutorial (and failed on any failure)
        assert f"ran tutorials/{page.name} in " in log, f"the build did not run {page.name}:\n{log[-3000:]}"


def handed_build() -> Path | None:
    """The site folder of the build .ci/run handed over (``$TINYTORCH_DOCS_BUILD``), checked."""
    built = os.environ.get(BUILT_ENV)
    if not built:
        return None
    folder = Path(built)
    assert (folder / "site" / "index.html").is_file() and (folder / "build.log").is_file(), (
        f"{BUILT_ENV}={built} has no site/index.html and build.log of a mkdocs build")
    check_build_log((folder / "build.log").read_text(encoding="utf-8"))
    return folder / "site"


def build_site(out: Path) -> Path:
    """`mkdocs build --strict` into ``out`` (skipping when a tutorial cannot run here)."""
    # The build runs every tutorial; one whose data set is not downloaded cannot run.
    for page in tutorial_pages():
        reason = skip_reason(page)
        if reason:
            pytest.skip(f"the site build runs {page.relative_to(DOCS)}, which cannot run here: {reason}")
    # as .ci/run: a busy test machine marks the timed figures instead of failing the build
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", TINYTORCH_DOCS_CONTENDED="mark")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        missing = [n for n in ("vision", "language") if not importable(f"tinytorch.{n}")]
        if missing:
            pytest.skip(f"tinytorch-{'/'.join(missing)} not importable yet, so the tutorials "
                        f"that use them cannot run in the build:\n{log[-3000:]}")
        pytest.fail(f"mkdocs build --strict failed:\n{log[-8000:]}")
    check_build_log(log)
    return out
