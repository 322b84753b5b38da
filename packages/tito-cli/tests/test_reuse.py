"""`tito reuse`: every figure checked against a hand count on the fixture packages.

Fixtures (tests/fixtures/reuse, parsed only, never imported). Logical lines per symbol, counted
by hand (one per simple statement or compound-statement header; docstrings, comments and
blank lines excluded):

    core/tinytorch/core/__init__.py   3   (two imports, __all__)
    core/tinytorch/core/funcs.py     10   SCALE 1, f 3 (def, y =, return), g 2 (def, and a
                                          return wrapped over 4 physical lines), h 4
    core/tinytorch/core/layers.py     9   import 1, Base 3, Layer 3, Unused 2
    core total                       22
    domain/__init__.py                1   (one import)
    domain/model.py                   5   (two imports, class, def, return)
    domain own                        6

The domain refers to f (through the core package's re-export) and Layer (through
`layers.Layer`); Unused appears only in an annotation. Closure: f -> g, SCALE; Layer -> Base
(base class), h (through layers' `from .funcs import h`). core_lines_used = 3+2+1+3+3+4 = 16,
so the code share is 16 / (16 + 6) = 8/11.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from tito import components, distfiles
from tito.codeindex import CodeIndex, Symbol, count_logical_lines, scan_tree
from tito.components import ComponentShare, RegisteredModel, component_share, measure_model
from tito.distfiles import DistSource, Requirement, dist_source, source_from_dir
from tito.main import cli
from tito.reuse_analysis import (
    ALLOWED_GRAPH,
    analyze,
    check_failures,
    code_share,
    edge_problems,
    import_edges,
    parse_floor,
    providers,
    role_of,
)

FIXTURES = Path(__file__).parent / "fixtures" / "reuse"
CORE_SRC = FIXTURES / "core" / "src"
DOMAIN_SRC = FIXTURES / "domain" / "src"
ROGUE_SRC = FIXTURES / "rogue_vision" / "src"
CORE_REQ = "tinytorch-core>=0.1,<0.2"
CLI_EXTRA = 'tito-cli>=0.1,<0.2; extra == "cli"'


def core_source() -> DistSource:
    return source_from_dir("tinytorch-core", CORE_SRC)


def domain_source(requires=(CORE_REQ,)) -> DistSource:
    return source_from_dir("tinytorch-domain", DOMAIN_SRC, requires)


def rogue_source() -> DistSource:
    return source_from_dir("tinytorch-vision", ROGUE_SRC, [CORE_REQ, CLI_EXTRA])


def fixture_sources(*extra: DistSource) -> dict[str, DistSource]:
    found = {s.name: s for s in (core_source(), domain_source(), *extra)}
    return dict(sorted(found.items()))


def index(source: DistSource) -> CodeIndex:
    return CodeIndex.from_files(source.files)


# --- logical lines -------------------------------------------------------------------------


def test_logical_lines_skip_blanks_comments_and_docstrings():
    source = textwrap.dedent(
        '''
        """Module docstring,
        over two lines."""
        # comment

        import os  # trailing comment: still one line


        class A:
            """Class docstring."""

            def f(self):
                """Method docstring."""
                return os.path.join(
                    "a",
                    "b",
                )

            def g(self): "one-line def with a docstring"

        x = 1; y = 2
        TEXT = """a string that is not a docstring
        spans lines"""
        '''
    )
    # import, class, def f, return (1 though 4 physical), def g (its line holds code),
    # `x = 1; y = 2` (one logical line), TEXT.
    assert count_logical_lines(source) == 7


def test_logical_lines_ignore_formatting():
    wrapped = "result = compute(\n    first,\n    second,\n)\n"
    assert count_logical_lines(wrapped) == count_logical_lines("result = compute(first, second)\n")


def test_fixture_line_counts_by_symbol():
    core = index(core_source())
    lines = {str(s): core.symbol_lines(s) for s in core.all_symbols()}
    assert lines == {
        "tinytorch.core:__all__": 1,
        "tinytorch.core.funcs:SCALE": 1,
        "tinytorch.core.funcs:f": 3,
        "tinytorch.core.funcs:g": 2,
        "tinytorch.core.funcs:h": 4,
        "tinytorch.core.layers:Base": 3,
        "tinytorch.core.layers:Layer": 3,
        "tinytorch.core.layers:Unused": 2,
    }
    assert core.logical_lines == 22
    assert {m: p.logical_lines for m, p in core.modules.items()} == {
        "tinytorch.core": 3,
        "tinytorch.core.funcs": 10,
        "tinytorch.core.layers": 9,
    }
    assert index(domain_source()).logical_lines == 6


# --- the symbol graph and the code share ---------------------------------------------------


def test_core_dependencies_follow_imports_and_base_classes():
    core = index(core_source())
    funcs, layers = "tinytorch.core.funcs", "tinytorch.core.layers"
    assert core.dependencies(Symbol(funcs, "f")) == {Symbol(funcs, "g"), Symbol(funcs, "SCALE")}
    assert core.dependencies(Symbol(funcs, "g")) == set()
    assert core.dependencies(Symbol(layers, "Layer")) == {Symbol(layers, "Base"), Symbol(funcs, "h")}
    assert core.closure([Symbol(funcs, "f")]) == {
        Symbol(funcs, "f"), Symbol(funcs, "g"), Symbol(funcs, "SCALE"),
    }


def test_code_share_on_fixtures():
    share = code_share(index(core_source()), index(domain_source()))
    assert [str(s) for s in share.direct] == ["tinytorch.core.funcs:f", "tinytorch.core.layers:Layer"]
    assert share.used == {
        "tinytorch.core.funcs:SCALE": 1,
        "tinytorch.core.funcs:f": 3,
        "tinytorch.core.funcs:g": 2,
        "tinytorch.core.funcs:h": 4,
        "tinytorch.core.layers:Base": 3,
        "tinytorch.core.layers:Layer": 3,
    }
    assert "tinytorch.core.layers:Unused" not in share.used  # annotations do not run
    assert (share.core_lines_used, share.own_lines, share.core_lines_total) == (16, 6, 22)
    assert share.share == pytest.approx(16 / 22)


def test_code_share_counts_what_the_package_uses(tmp_path):
    """A package that uses only g gets g's 2 lines; one that uses nothing of core gets 0."""
    pkg = tmp_path / "tinytorch" / "small"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "from tinytorch.core.funcs import g\n\n\ndef twice(x):\n    return g(g(x))\n"
    )
    small = source_from_dir("tinytorch-small", tmp_path, [CORE_REQ])
    share = code_share(index(core_source()), index(small))
    assert (share.core_lines_used, share.own_lines) == (2, 3)
    assert share.share == pytest.approx(2 / 5)

    (pkg / "__init__.py").write_text("import numpy as np\n\nZERO = np.zeros(3)\n")
    share = code_share(index(core_source()), index(source_from_dir("tinytorch-small", tmp_path)))
    assert (share.core_lines_used, share.own_lines, share.share) == (0, 2, 0.0)


# --- edges ---------------------------------------------------------------------------------


def edges_and_problems(source: DistSource, sources: dict[str, DistSource]):
    edges = import_edges(source, index(source), providers(sources))
    return edges, edge_problems(source, edges, ALLOWED_GRAPH)


def test_declared_edge_is_fine():
    edges, problems = edges_and_problems(domain_source(), fixture_sources())
    assert [(Path(e.file).name, e.line, e.module, e.target) for e in edges] == [
        ("model.py", 6, "tinytorch.core", "tinytorch-core")
    ]
    assert problems == []


def test_undeclared_core_import_is_an_error_with_file_and_line():
    undeclared = domain_source(requires=())
    _, problems = edges_and_problems(undeclared, fixture_sources(undeclared))
    (problem,) = problems
    assert problem.kind == "undeclared"
    assert str(problem).endswith(
        "model.py:6: imports tinytorch.core from tinytorch-core, but tinytorch-domain does not "
        "declare it in Requires-Dist"
    )
    assert problem.file == str(DOMAIN_SRC / "tinytorch" / "domain" / "model.py")


def test_planted_sibling_import_is_caught():
    """The rogue vision package imports tinytorch.language (lazily, and relatively) and tito."""
    rogue = rogue_source()
    _, problems = edges_and_problems(rogue, fixture_sources(rogue))
    found = sorted((p.kind, Path(p.file).name, p.line) for p in problems)
    assert found == [
        ("forbidden", "__init__.py", 7),
        ("forbidden", "__init__.py", 13),
        ("forbidden", "cli.py", 5),
        ("undeclared", "__init__.py", 7),
        ("undeclared", "__init__.py", 13),
        ("undeclared", "cli.py", 5),
    ]
    by_place = {(p.kind, Path(p.file).name, p.line): p.message for p in problems}
    assert "imports tinytorch.language from tinytorch-language" in by_place["undeclared", "__init__.py", 7]
    assert "forbids tinytorch-vision -> tinytorch-language" in by_place["forbidden", "__init__.py", 13]
    assert "only in the [cli] extra" in by_place["undeclared", "cli.py", 5]
    assert "may import tinytorch-core" in by_place["forbidden", "cli.py", 5]


def test_import_of_a_package_nobody_provides(tmp_path):
    pkg = tmp_path / "tinytorch" / "odd"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from tinytorch import nowhere\n")
    odd = source_from_dir("tinytorch-odd", tmp_path)
    _, problems = edges_and_problems(odd, fixture_sources(odd))
    assert [(p.kind, p.line, p.message) for p in problems] == [
        ("unknown", 1, "imports tinytorch.nowhere, which no TinyTorch distribution provides")
    ]


def test_requirement_parsing():
    assert Requirement.parse("tinytorch_core<0.2,>=0.1") == Requirement(
        "tinytorch-core", None, "tinytorch_core<0.2,>=0.1"
    )
    assert Requirement.parse(CLI_EXTRA).extra == "cli"
    assert Requirement.parse('numpy>=1.26; python_version >= "3.10"').extra is None


# --- analyze and the check -----------------------------------------------------------------


def test_analyze_fixture_workspace():
    reports = {r.name: r for r in analyze(fixture_sources(rogue_source()))}
    assert set(reports) == {"tinytorch-core", "tinytorch-domain", "tinytorch-vision"}
    core, domain, rogue = (reports[n] for n in ("tinytorch-core", "tinytorch-domain", "tinytorch-vision"))
    assert core.role == "core" and core.code is None and core.problems == []
    assert domain.code.share == pytest.approx(8 / 11) and domain.problems == []
    assert domain.imports == {"tinytorch-core": 1}
    assert len(rogue.problems) == 6
    # The rogue package's own code: __init__ 7 (import, def, import, return, def, import,
    # return), cli 3 (two imports, __all__); it uses f (3) and what f uses (g 2, SCALE 1).
    assert (rogue.code.core_lines_used, rogue.code.own_lines) == (6, 10)


def test_check_failures_name_the_package():
    reports = analyze(fixture_sources())
    assert check_failures(reports, 0.70, {}) == []
    assert check_failures(reports, 0.75, {}) == [
        "tinytorch-domain code share 0.727 is below the floor 0.75"
    ]
    assert check_failures(reports, 0.0, {"tinytorch-domain": 0.8}) == [
        "tinytorch-domain code share 0.727 is below the floor 0.80"
    ]
    rogue = analyze(fixture_sources(rogue_source()), only=["tinytorch-vision"])
    assert check_failures(rogue, 0.0, {}) == [
        "tinytorch-vision has 6 problems (listed in the report)"
    ]


def test_domain_without_core_cannot_pass_a_positive_floor():
    (report,) = analyze({"tinytorch-domain": domain_source()})
    assert report.code is None and "tinytorch-core is not installed" in report.code_note
    assert check_failures([report], 0.0, {}) == []
    (failure,) = check_failures([report], 0.5, {})
    assert failure.startswith("tinytorch-domain has no code share to check")


def test_parse_floor():
    known = ["tinytorch-perf", "tinytorch-core"]
    assert parse_floor("0.7", known) == (None, 0.7)
    assert parse_floor("perf=0.25", known) == ("tinytorch-perf", 0.25)
    assert parse_floor("tinytorch_perf=0", known) == ("tinytorch-perf", 0.0)
    for bad, words in [("1.5", "between 0 and 1"), ("x", "expected a number"),
                       ("vision=0.5", "unknown package 'vision'")]:
        with pytest.raises(ValueError, match=words):
            parse_floor(bad, known)


# --- component share -----------------------------------------------------------------------


class Param:
    """A parameter with only `.size` (no numel), as a NumPy-backed one might have."""

    def __init__(self, size: int) -> None:
        self.size = size


class FakeModule:
    """Duck-typed like tinytorch.core.nn.Module: named_modules and named_parameters."""

    def __init__(self, params=(), children=()):
        self.params = list(params)
        self.children = list(children)

    def named_modules(self, prefix="", memo=None):
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for i, child in enumerate(self.children):
            yield from child.named_modules(f"{prefix}.{i}", memo)

    def named_parameters(self, recurse=True):
        assert recurse is False, "component share needs the directly registered parameters"
        return [(str(i), p) for i, p in enumerate(self.params)]


class CoreLinear(FakeModule):
    __module__ = "tinytorch.core.nn.layers"


class CoreRoot(FakeModule):
    __module__ = "tinytorch.core"


class DomainConv(FakeModule):
    __module__ = "tinytorch.vision.layers"


class DomainNet(FakeModule):
    __module__ = "tinytorch.vision.models"


class NotCore(FakeModule):
    __module__ = "tinytorch.core_extras"  # a prefix of the name is not the package


def fake_model():
    """DomainNet(params 10) -> [CoreLinear(6, 2), DomainConv(4, shared), the same CoreLinear
    again, CoreRoot(shared, 1), NotCore(5)].

    Instances: DomainNet, CoreLinear, DomainConv, CoreRoot, NotCore = 5 (the repeated
    CoreLinear once); core: CoreLinear, CoreRoot = 2. Parameters: DomainNet 10, CoreLinear 8,
    DomainConv 4 + 3 (shared; DomainConv registers it first), CoreRoot 1 (the shared one is
    not counted again), NotCore 5 = 31 elements; core: 8 + 1 = 9."""
    shared = Param(3)
    linear = CoreLinear([Param(6), Param(2)])
    children = [linear, DomainConv([Param(4), shared]), linear, CoreRoot([shared, Param(1)]),
                NotCore([Param(5)])]
    return DomainNet([Param(10)], children)


def test_component_share_by_hand():
    share = component_share("net", fake_model())
    assert share == ComponentShare("net", modules_core=2, modules_total=5, params_core=9, params_total=31)
    assert share.module_share == pytest.approx(0.4)
    assert share.param_share == pytest.approx(9 / 31)


def test_component_share_refuses_a_non_module():
    with pytest.raises(TypeError, match="model 'x' is a list, which has no named_modules"):
        component_share("x", [1, 2])


MODEL_MODULE = "tito_reuse_fake_models"


@pytest.fixture
def fake_models(tmp_path, monkeypatch):
    """Two `tinytorch.models` entry points: one that builds, one whose factory raises."""
    source = textwrap.dedent(
        """
        from tito_reuse_test_support import fake_model

        def good():
            return fake_model(), None

        def bad():
            raise ValueError("no data for this model")
        """
    )
    (tmp_path / f"{MODEL_MODULE}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    # The factories build this file's fake model; they find it under a fixed module name.
    monkeypatch.setitem(sys.modules, "tito_reuse_test_support", sys.modules[__name__])
    group = components.MODELS_GROUP
    make = lambda name: RegisteredModel(  # noqa: E731
        name, "tinytorch-domain", f"{MODEL_MODULE}:{name}",
        md.EntryPoint(name, f"{MODEL_MODULE}:{name}", group),
    )
    yield [make("good"), make("bad")]
    sys.modules.pop(MODEL_MODULE, None)


def test_models_are_measured_through_entry_points(fake_models):
    good, bad = fake_models
    share, error = measure_model(good)
    assert error is None and (share.modules_core, share.params_total) == (2, 31)
    share, error = measure_model(bad)
    assert share is None
    assert error == (
        f"model 'bad' ({MODEL_MODULE}:bad) could not be built: ValueError: no data for this model"
    )
    (report,) = analyze(fixture_sources(), only=["tinytorch-domain"], models=fake_models)
    assert [m.model for m in report.models] == ["good"]
    assert [(p.kind, p.message) for p in report.problems] == [("model", error)]


# --- importlib.metadata: wheel and editable layouts ----------------------------------------


def write_dist_info(site: Path, name: str, files: list[str], requires=(), direct_url=None) -> None:
    info = site / f"{name.replace('-', '_')}-0.3.0.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 0.3.0"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    record = files + [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(f if "," in f else f"{f},," for f in record) + "\n")
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))


def only_dist(site: Path) -> md.Distribution:
    (dist,) = md.distributions(path=[str(site)])
    return dist


def test_wheel_layout_reads_files_from_record(tmp_path):
    """A wheel install: RECORD lists the .py files, which sit in site-packages."""
    site = tmp_path / "site"
    for f in ("__init__.py", "model.py"):
        target = site / "tinytorch" / "domain" / f
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((DOMAIN_SRC / "tinytorch" / "domain" / f).read_text())
    write_dist_info(site, "tinytorch-domain",
                    ["tinytorch/domain/__init__.py", "tinytorch/domain/model.py"], [CORE_REQ])
    source = dist_source(only_dist(site))
    assert (source.name, source.version, source.location) == ("tinytorch-domain", "0.3.0", "wheel")
    assert sorted(f.module for f in source.files) == ["tinytorch.domain", "tinytorch.domain.model"]
    assert source.runtime_requires == {"tinytorch-core"}
    share = code_share(index(core_source()), index(source))
    assert share.share == pytest.approx(8 / 11)


def test_editable_layout_follows_the_pth(tmp_path):
    """An editable install lists only a .pth; its path line is the source directory."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "_editable_impl_tinytorch_domain.pth").write_text(f"{DOMAIN_SRC}\n")
    write_dist_info(site, "tinytorch-domain", ["_editable_impl_tinytorch_domain.pth"], [CORE_REQ])
    source = dist_source(only_dist(site))
    assert source.location == f"editable {DOMAIN_SRC}"
    assert sorted(f.path for f in source.files) == sorted(f.path for f in scan_tree(DOMAIN_SRC))


def test_editable_layout_falls_back_to_direct_url(tmp_path):
    site = tmp_path / "site"
    url = {"url": (FIXTURES / "domain").as_uri(), "dir_info": {"editable": True}}
    write_dist_info(site, "tinytorch-domain", [], [CORE_REQ], direct_url=url)
    assert dist_source(only_dist(site)).location == f"editable {DOMAIN_SRC}"


def test_unreadable_distribution_is_a_clear_error(tmp_path):
    site = tmp_path / "site"
    write_dist_info(site, "tinytorch-domain", [])
    with pytest.raises(ValueError, match="tinytorch-domain 0.3.0: its RECORD lists no Python files"):
        dist_source(only_dist(site))


# --- the installed workspace ---------------------------------------------------------------


@pytest.fixture(scope="module")
def installed():
    """The installed TinyTorch distributions, each analysed once (indexing core's source is the
    slow part) for the three tests below."""
    sources, unreadable = distfiles.installed_sources()
    return sources, unreadable, {report.name: report for report in analyze(sources)}


def test_installed_core_and_cli_have_no_edge_errors(installed):
    sources, unreadable, reports = installed
    assert unreadable == {}
    assert {"tinytorch-core", "tito-cli"} <= set(sources)
    assert sources["tito-cli"].roots == {"tito"}
    assert sources["tinytorch-core"].roots == {"tinytorch.core"}
    for report in (reports["tinytorch-core"], reports["tito-cli"]):
        assert report.problems == [], [str(p) for p in report.problems]
        assert report.edges == [], report.name  # neither imports another TinyTorch package
        assert report.files > 0 and report.own_lines > 0


def test_installed_domain_packages_measure_against_installed_core(installed):
    sources, _, reports = installed
    domains = [n for n in sources if role_of(n) == "domain"]
    if not domains:
        pytest.skip("no domain package installed")
    for report in (reports[name] for name in domains):
        if report.own_lines == 0:
            continue  # a package still being written has nothing to measure
        assert report.code is not None and 0.0 <= report.code.share <= 1.0
        assert report.code.core_lines_used <= report.code.core_lines_total


# --- the command ---------------------------------------------------------------------------


def run(*args: str):
    return CliRunner().invoke(cli, ["reuse", *args])


@pytest.fixture
def fixture_install(monkeypatch):
    """Make `tito reuse` see the fixture packages as the installed ones, with no models."""
    state = {"sources": fixture_sources()}
    monkeypatch.setattr(distfiles, "installed_sources", lambda: (state["sources"], {}))
    monkeypatch.setattr(components, "registered_models", lambda: [])
    return state


def test_check_passes_at_the_true_floor(fixture_install):
    result = run("--check", "--min", "0.72")
    assert result.exit_code == 0, result.output
    assert "72.7%" in result.stdout and "core 16 / (core 16 + own 6)" in result.stdout
    assert "reuse check passed: tinytorch-core, tinytorch-domain" in result.stdout


def test_check_fails_below_the_floor_with_one_line(fixture_install):
    result = run("--check", "--min", "0.73")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "Error: reuse check failed: tinytorch-domain code share 0.727 is below the floor 0.73"
    ]
    result = run("--check", "--min", "0.5", "--min", "domain=0.9")
    assert result.exit_code == 1 and "below the floor 0.90" in result.stderr


def test_without_check_a_low_share_only_reports(fixture_install):
    assert run("--min", "0.99").exit_code == 0


def test_check_fails_on_a_planted_import(fixture_install):
    fixture_install["sources"] = fixture_sources(rogue_source())
    result = run("--check", "--min", "0", "--package", "vision")
    assert result.exit_code == 1
    assert "tinytorch/vision/__init__.py:7: imports tinytorch.language" in result.stdout.replace("\n", "")
    assert "tinytorch-vision has 6 problems" in result.stderr


def test_json_report(fixture_install):
    result = run("--json", "--min", "domain=0.5")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"definitions", "graph", "packages", "check"}
    packages = {p["name"]: p for p in doc["packages"]}
    domain = packages["tinytorch-domain"]
    assert domain["code_share"]["share"] == pytest.approx(8 / 11)
    assert (domain["code_share"]["core_lines_used"], domain["own_lines"]) == (16, 6)
    assert domain["floor"] == 0.5 and packages["tinytorch-core"]["floor"] is None
    assert domain["edges"] == [{
        "target": "tinytorch-core", "module": "tinytorch.core", "line": 6,
        "file": str(DOMAIN_SRC / "tinytorch" / "domain" / "model.py"),
    }]
    assert doc["check"] == {"default_floor": 0.7, "floors": {"tinytorch-domain": 0.5},
                            "failures": [], "ok": True}
    assert doc["graph"]["tinytorch-language"] == ["tinytorch-core"]


@pytest.mark.parametrize("args, words", [
    (["--min", "seventy"], "expected a number"),
    (["--min", "2"], "between 0 and 1"),
    (["--package", "nosuch"], "unknown package 'nosuch'"),
    (["--package", "perf"], "tinytorch-perf is not installed (installed: tinytorch-core, "
                            "tinytorch-domain)"),
])
def test_bad_arguments_are_usage_errors(fixture_install, args, words):
    result = run(*args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert words in result.stderr


def test_reuse_is_a_builtin():
    result = CliRunner().invoke(cli, ["--help"])
    assert "  reuse " in result.output


def test_reuse_on_the_installed_workspace_as_a_subprocess():
    """The real command, through importlib.metadata, in a fresh interpreter: core and
    tito-cli import nothing they should not."""
    env = {**os.environ, "NO_COLOR": "1"}
    command = [sys.executable, "-m", "tito", "reuse", "--json", "--check", "--min", "0",
               "--no-models", "--package", "core", "--package", "tito-cli"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [p["name"] for p in doc["packages"]] == ["tinytorch-core", "tito-cli"]
    assert all(p["problems"] == [] and p["edges"] == [] for p in doc["packages"])


def test_the_course_is_held_to_the_graph_without_a_code_share(installed):
    sources, _, reports = installed
    if "tinytorch-learn" not in sources:
        pytest.skip("tinytorch-learn is not installed")
    report = reports["tinytorch-learn"]
    assert report.role == "course" and report.code is None and report.problems == []
    assert {e.target for e in report.edges} <= {"tinytorch-core", "tinytorch-vision", "tinytorch-language",
                                                "tinytorch-perf"}
    assert "tinytorch-core" in {e.target for e in report.edges}
