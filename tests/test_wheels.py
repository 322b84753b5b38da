"""Independent releases (DESIGN.md §2): the built wheels install alone and work.

uv ignores version ranges between workspace members, so only installing the *built wheels*
proves the packaging: `uv build --all-packages`, then for each package a fresh venv and
`uv pip install --find-links dist <package>` (third-party dependencies come from the
registry, TinyTorch ones from `dist`). Each install must bring exactly the package and its
declared dependencies, import, train a tiny model, and, with tito-cli added, make `tito`
show exactly the installed packages' commands. A core release outside a sibling's range
must make that sibling uninstallable.

Slow (builds and venvs): marked `wheels`, so `pytest -m "not wheels"` skips it locally.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from uv_command import uv

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
requirements = pytest.importorskip("packaging.requirements")
specifiers = pytest.importorskip("packaging.specifiers")

pytestmark = [pytest.mark.wheels, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ROOT / "packages"
DISTRIBUTIONS = ("tinytorch-core", "tinytorch-vision", "tinytorch-language", "tinytorch-perf",
                 "tinytorch-learn", "tito-cli")
BUILTIN_COMMANDS = {"doctor", "plugins", "reuse"}

#: Packages still being written. While a package is listed here, a missing public API or a
#: plugin that does not load yet skips its test (with the reason) instead of failing it.
#: Empty this set once vision, language and perf have landed.
IN_PROGRESS: frozenset[str] = frozenset()

#: Exit code of a smoke script whose public API import failed.
MISSING_API = 3


# ----------------------------------------------------------------------------- helpers


def clean_env() -> dict[str, str]:
    """The environment for subprocesses, without the dev venv's activation."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["NO_COLOR"] = "1"
    return env


def run(cmd: list, cwd: Path, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          env=clean_env(), timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                    f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def pyproject(name: str) -> dict:
    return tomllib.loads((PACKAGES / name / "pyproject.toml").read_text())["project"]


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def tinytorch_requires(name: str) -> set[str]:
    """TinyTorch distributions `name` declares as plain (non-extra) dependencies."""
    names = {normalize(requirements.Requirement(r).name) for r in pyproject(name)["dependencies"]}
    return names & set(DISTRIBUTIONS)


def declared_closure(name: str) -> set[str]:
    todo, done = [name], set()
    while todo:
        current = todo.pop()
        if current not in done:
            done.add(current)
            todo.extend(tinytorch_requires(current))
    return done


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def make_venv(path: Path) -> Path:
    run([*uv(), "venv", "--quiet", "--python", sys.executable, path], cwd=path.parent)
    return venv_python(path)


def install(python: Path, find_links: Path, *packages: str, check: bool = True):
    cmd = [*uv(), "pip", "install", "--python", python, "--find-links", find_links, *packages]
    return run(cmd, cwd=find_links.parent, check=check)


INSPECT = """
import importlib.metadata as md, json
found = {}
for d in md.distributions():
    found.setdefault(d.metadata["Name"], {"version": d.version, "requires": d.requires or []})
print(json.dumps(found))
"""


def installed(python: Path) -> dict[str, dict]:
    """Every distribution in the venv: normalized name -> version and Requires-Dist."""
    raw = json.loads(run([python, "-c", INSPECT], cwd=python.parent).stdout)
    return {normalize(name): info for name, info in raw.items()}


def requirement_closure(roots: set[str], meta: dict[str, dict]) -> set[str]:
    """`roots` and everything their Requires-Dist pulls in (markers evaluated, extras off)."""
    todo, done = list(roots), set()
    while todo:
        name = todo.pop()
        if name in done or name not in meta:
            continue
        done.add(name)
        for text in meta[name]["requires"]:
            req = requirements.Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(normalize(req.name))
    return done


def smoke_skip_or_fail(name: str, reason: str) -> None:
    if name in IN_PROGRESS:
        pytest.skip(f"{name} is still being written ({reason})")
    pytest.fail(reason)


# ----------------------------------------------------------------------------- smoke scripts

_TRAIN_LOOP = """
losses = []
for _ in range(STEPS):
    loss = loss_fn()
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(float(loss.item()))
result["losses"] = losses
print(json.dumps(result))
"""

_PRELUDE = """
import json, sys
import numpy as np
try:
{imports}
except ImportError as exc:
    print(f"{{type(exc).__name__}}: {{exc}}", file=sys.stderr)
    sys.exit({missing})
from tinytorch.core import Tensor, manual_seed, nn, optim
from tinytorch.core import functional as F
manual_seed(0)
rng = np.random.default_rng(0)
result = {{}}
"""


def smoke_script(imports: str, body: str, steps: int = 15) -> str:
    prelude = _PRELUDE.format(imports=textwrap.indent(imports.strip(), "    "), missing=MISSING_API)
    return prelude + textwrap.dedent(body) + f"STEPS = {steps}\n" + _TRAIN_LOOP


SMOKE = {
    "tinytorch-core": smoke_script("import tinytorch.core", """
        x = rng.normal(size=(64, 4)).astype(np.float32)
        y = x @ rng.normal(size=(4, 1)).astype(np.float32)
        model = nn.Linear(4, 1)
        opt = optim.SGD(model.parameters(), lr=0.1)
        loss_fn = lambda: F.mse_loss(model(Tensor(x)), Tensor(y))
    """),
    "tinytorch-vision": smoke_script("from tinytorch.vision import Conv2d", """
        x = rng.normal(size=(16, 1, 8, 8)).astype(np.float32)
        y = rng.integers(0, 3, size=16)
        model = nn.Sequential(Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                              nn.Linear(4 * 8 * 8, 3))
        opt = optim.AdamW(model.parameters(), lr=1e-2)
        loss_fn = lambda: F.cross_entropy(model(Tensor(x)), y)
    """),
    "tinytorch-language": smoke_script("from tinytorch.language import CharTokenizer, TinyGPT", """
        text = "to be or not to be, that is the question. " * 4
        tok = CharTokenizer().fit(text)
        ids = np.array(tok.encode(text), dtype=np.int64)
        starts = rng.integers(0, len(ids) - 17, size=4)
        x = np.stack([ids[s:s + 16] for s in starts])
        y = np.stack([ids[s + 1:s + 17] for s in starts])
        model = TinyGPT(vocab_size=tok.vocab_size, d_model=32, num_heads=4, num_layers=1,
                        max_seq_len=16, dropout=0.0)
        opt = optim.AdamW(model.parameters(), lr=3e-3)
        loss_fn = lambda: F.cross_entropy(model(x), y)
        result["decoded"] = tok.decode(tok.encode("to be"))
    """),
    "tinytorch-perf": smoke_script("from tinytorch.perf import FLOPsCounter", """
        x = rng.normal(size=(64, 4)).astype(np.float32)
        y = x @ rng.normal(size=(4, 1)).astype(np.float32)
        model = nn.Linear(4, 1)
        trace = FLOPsCounter().trace(model, Tensor(x))
        result["matmul_flops"] = int(trace.forward.matmul_flops)  # 2·N·I·O = 2·64·4·1
        opt = optim.SGD(model.parameters(), lr=0.1)
        loss_fn = lambda: F.mse_loss(model(Tensor(x)), Tensor(y))
    """),
    # The course works from the installed wheels alone: stubs generated from the installed
    # library's source, a student's function checked with it substituted, then trained on.
    "tinytorch-learn": smoke_script("from tinytorch.learn import check_module, start", """
        import tempfile
        from tinytorch.learn.substitute import substituted
        from tinytorch.learn import load_curriculum
        work = tempfile.mkdtemp()
        path, how = start("autograd", work)
        stub = open(path).read()
        result["stub"] = "def add_backward(self, grad):" in stub and how == "written"
        with open(path, "a") as f:
            f.write("\\n\\ndef add_backward(self, grad):\\n    return grad, grad\\n")
        statuses = {r.exercise.name: r.status for r in check_module("autograd", work)}
        result["add_backward"], result["mul_backward"] = statuses["add_backward"], statuses["mul_backward"]
        target = load_curriculum().exercise("autograd", "add_backward").resolve()
        x = rng.normal(size=(64, 4)).astype(np.float32)
        y = x @ rng.normal(size=(4, 1)).astype(np.float32)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        opt = optim.SGD(model.parameters(), lr=0.05)
        def loss_fn():
            with substituted({target: lambda self, grad: (grad, grad)}):
                return F.mse_loss(model(Tensor(x)), Tensor(y))
    """),
}


def plugin_commands(help_text: str) -> set[str]:
    """Command names listed under `Plugin commands:` in `tito --help`."""
    section = help_text.split("Plugin commands:", 1)[1].split("Built-in commands:", 1)[0]
    return set(re.findall(r"^  (\S+)  ", section, flags=re.MULTILINE))


def declared_commands(names: set[str]) -> set[str]:
    return {
        command
        for name in names
        for command in pyproject(name).get("entry-points", {}).get("tito.commands", {})
    }


# ----------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    """`uv build --all-packages` of this tree, once for the module."""
    out = tmp_path_factory.mktemp("build") / "dist"
    run([*uv(), "build", "--all-packages", "--quiet", "-o", out], cwd=ROOT, timeout=600)
    return out


def wheel_path(dist: Path, name: str) -> Path:
    version = pyproject(name)["version"]
    return dist / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"


def test_build_makes_six_wheels_and_sdists(wheelhouse):
    for name in DISTRIBUTIONS:
        wheel = wheel_path(wheelhouse, name)
        sdist = wheelhouse / f"{name.replace('-', '_')}-{pyproject(name)['version']}.tar.gz"
        assert wheel.is_file(), sorted(p.name for p in wheelhouse.iterdir())
        assert sdist.is_file(), sorted(p.name for p in wheelhouse.iterdir())
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
        # PEP 420: no wheel may own the shared `tinytorch` namespace.
        assert "tinytorch/__init__.py" not in names, name


@pytest.mark.parametrize("name", DISTRIBUTIONS[:-1])
def test_package_installs_alone_trains_and_plugs_into_tito(name, wheelhouse, tmp_path):
    python = make_venv(tmp_path / f"venv-{name}")
    install(python, wheelhouse, name)

    # Only the package and what it declares (transitively) came in.
    meta = installed(python)
    assert set(meta) == requirement_closure({name}, meta), sorted(meta)
    ours = {n for n in meta if n in DISTRIBUTIONS}
    assert ours == declared_closure(name)
    for dist in ours:  # and they are this tree's wheels, not something else with that name
        assert meta[dist]["version"] == pyproject(dist)["version"], dist

    # It imports and trains.
    proc = run([python, "-c", SMOKE[name]], cwd=tmp_path, check=False)
    if proc.returncode == MISSING_API:
        smoke_skip_or_fail(name, f"public API import failed: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    losses = result["losses"]
    assert all(map(lambda v: v == v, losses)), losses  # no NaN
    assert losses[-1] < losses[0], losses
    if name == "tinytorch-perf":
        assert result["matmul_flops"] == 2 * 64 * 4 * 1
    if name == "tinytorch-language":
        assert result["decoded"] == "to be"
    if name == "tinytorch-learn":
        assert result["stub"] and result["add_backward"] == "pass", result
        assert result["mul_backward"] == "not implemented", result

    # With tito-cli added, `tito` shows exactly the installed packages' commands.
    install(python, wheelhouse, "tito-cli")
    tito = python.parent / ("tito.exe" if os.name == "nt" else "tito")
    help_text = run([tito, "--help"], cwd=tmp_path).stdout
    assert plugin_commands(help_text) == declared_commands(ours), help_text
    assert BUILTIN_COMMANDS <= set(re.findall(r"^  (\S+)  ", help_text, flags=re.MULTILINE))
    plugins = json.loads(run([tito, "plugins", "--json"], cwd=tmp_path).stdout)
    broken = [f"{p['name']}: {p['error']}" for p in plugins if p["status"] != "ok"]
    if broken:
        smoke_skip_or_fail(name, f"plugins do not load: {broken}")

    # `tito reuse` reads the wheel installs through importlib.metadata.
    proc = run([tito, "reuse", "--json", "--check", "--min", "0"], cwd=tmp_path, check=False)
    report = json.loads(proc.stdout)
    by_name = {p["name"]: p for p in report["packages"]}
    assert set(by_name) == ours | {"tito-cli"}
    assert all(p["location"] == "wheel" for p in by_name.values())
    if proc.returncode != 0:
        smoke_skip_or_fail(name, f"tito reuse --check failed: {report['check']['failures']}")
    if name not in ("tinytorch-core", "tinytorch-learn"):  # learn is the course, not a domain package
        assert by_name[name]["code_share"]["core_lines_used"] > 0


def bump_minor(version: str) -> str:
    major, minor, *_ = (int(p) for p in version.split("."))
    return f"{major}.{minor + 1}.0"


def test_core_release_outside_a_sibling_range_is_rejected(wheelhouse, tmp_path):
    """Build core with the next minor version; a sibling whose range excludes it must not
    install when that is the only core available."""
    sibling = "tinytorch-language"
    (core_req,) = [requirements.Requirement(r) for r in pyproject(sibling)["dependencies"]
                   if normalize(requirements.Requirement(r).name) == "tinytorch-core"]
    bumped_version = bump_minor(pyproject("tinytorch-core")["version"])
    assert bumped_version not in core_req.specifier, "the test needs a version the range excludes"

    copy = tmp_path / "tinytorch-core"
    shutil.copytree(PACKAGES / "tinytorch-core", copy,
                    ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "tests"))
    toml = copy / "pyproject.toml"
    text, count = re.subn(r'(?m)^version = "[^"]+"$', f'version = "{bumped_version}"',
                          toml.read_text())
    assert count == 1
    toml.write_text(text)
    links = tmp_path / "links"
    run([*uv(), "build", "--wheel", "--quiet", "-o", links], cwd=copy)
    shutil.copy(wheel_path(wheelhouse, sibling), links)
    assert sorted(p.name for p in links.glob("*.whl")) == [
        f"tinytorch_core-{bumped_version}-py3-none-any.whl",
        wheel_path(wheelhouse, sibling).name,
    ]

    python = make_venv(tmp_path / "venv-bumped")
    proc = install(python, links, sibling, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "tinytorch-core" in proc.stderr and bumped_version in proc.stderr, proc.stderr
    assert "tinytorch-language" not in {n for n in installed(python)}
