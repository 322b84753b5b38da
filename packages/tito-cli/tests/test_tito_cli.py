"""The `tito` command: lazy plugins, broken plugins, built-ins and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tito.main import cli

from .conftest import BROKEN_MODULE, FAKE_DIST, FAKE_VERSION, GOOD_MODULE


def run(*args: str, **kwargs):
    return CliRunner().invoke(cli, list(args), **kwargs)


def assert_one_line_error(result, exit_code: int = 1) -> str:
    """The command failed with exactly one `Error:` line on stderr and no traceback."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ")
    return lines[0]


# --- lazy loading --------------------------------------------------------------------------


def test_help_lists_plugins_without_importing_them(fake_plugins):
    result = run("--help")
    assert result.exit_code == 0, result.output
    for name in ("good", "broken", "notcmd", "missingmod", "plugins", "doctor"):
        assert f"  {name} " in result.output
    assert f"commands from {FAKE_DIST} {FAKE_VERSION}" in result.output
    assert GOOD_MODULE not in sys.modules
    assert BROKEN_MODULE not in sys.modules


def test_good_plugin_is_imported_only_when_invoked(fake_plugins):
    result = run("good", "hello")
    assert result.exit_code == 0, result.output
    assert "hello from the good plugin" in result.output
    assert GOOD_MODULE in sys.modules
    assert BROKEN_MODULE not in sys.modules


# --- broken plugins ------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [[], ["--help"], ["sub", "--flag", "x"]])
def test_broken_plugin_gives_one_line_error(fake_plugins, extra):
    line = assert_one_line_error(run("broken", *extra))
    assert line == (
        f"Error: plugin 'broken' from {FAKE_DIST} failed to load: "
        "RuntimeError: plugin exploded on import"
    )


def test_missing_module_and_non_command_are_broken(fake_plugins):
    line = assert_one_line_error(run("missingmod"))
    assert "ModuleNotFoundError" in line and "tito_fake_not_there" in line
    line = assert_one_line_error(run("notcmd"))
    assert "TypeError" in line and "not a click command" in line


def test_other_commands_keep_working_after_a_broken_one(fake_plugins):
    assert run("broken").exit_code == 1
    assert run("good", "hello").exit_code == 0
    assert run("plugins").exit_code == 0
    assert run("doctor", "--json").exit_code == 0
    assert run("--help").exit_code == 0


# --- built-ins -----------------------------------------------------------------------------


def test_plugins_json_reports_each_status(fake_plugins):
    result = run("plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by_name = {(r["name"], r["status"]): r for r in rows}
    assert all(
        set(r) == {"name", "distribution", "version", "value", "status", "error"} for r in rows
    )
    good = by_name["good", "ok"]
    assert good["error"] is None
    assert (good["distribution"], good["version"]) == (FAKE_DIST, FAKE_VERSION)
    assert good["value"] == f"{GOOD_MODULE}:group"
    assert by_name["broken", "broken"]["error"] == "RuntimeError: plugin exploded on import"
    assert by_name["missingmod", "broken"]["error"].startswith("ModuleNotFoundError")
    assert by_name["notcmd", "broken"]["error"].startswith("TypeError")


def test_plugins_table(fake_plugins):
    result = run("plugins")
    assert result.exit_code == 0, result.output
    for text in ("good", "broken", "ok", FAKE_DIST):
        assert text in result.output


def test_plugin_cannot_override_builtin(fake_plugins):
    rows = json.loads(run("plugins", "--json").stdout)
    (clash,) = [r for r in rows if r["name"] == "doctor"]
    assert clash["status"] == "broken" and "built-in" in clash["error"]
    result = run("doctor", "--json")  # still the built-in
    assert result.exit_code == 0 and "python" in json.loads(result.stdout)


def test_version_lists_installed_distributions():
    result = run("--version")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "tito-cli 0.1.0" in lines
    assert all(line.startswith(("tinytorch-", "tito-cli ")) for line in lines)


def test_doctor_json(fake_plugins, tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "fashion-mnist").mkdir(parents=True)
    (data / "shakespeare").mkdir()
    monkeypatch.setenv("TINYTORCH_DATA", str(data))
    result = run("doctor", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"python", "platform", "numpy", "distributions", "plugins", "data"}
    assert report["python"]["executable"] == sys.executable
    assert {"name": "tito-cli", "version": "0.1.0"} in report["distributions"]
    assert report["data"] == {
        "path": str(data),
        "source": "TINYTORCH_DATA",
        "exists": True,
        "subfolders": ["fashion-mnist", "shakespeare"],
    }
    assert {p["name"] for p in report["plugins"]} >= {"good", "broken"}


def test_doctor_text_without_numpy(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "numpy", None)  # makes `import numpy` raise ImportError
    monkeypatch.setenv("TINYTORCH_DATA", str(tmp_path / "nowhere"))
    result = run("doctor")
    assert result.exit_code == 0, result.output
    assert "not installed" in result.output
    assert "does not exist" in result.output


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected", "exit_code"),
    [
        (["fail", "--size", "4"], "Error: Linear expected last dim 3, got 4", 1),
        (["missing"], "Error: [Errno 2] No such file or directory:", 1),
        (["key"], "Error: no model named 'resnet'", 1),
        (["crash"], "Error: RuntimeError: boom", 1),
        (["interrupt"], "Error: interrupted", 130),
    ],
)
def test_plugin_exceptions_become_one_line(fake_plugins, command, expected, exit_code):
    line = assert_one_line_error(run("good", *command), exit_code)
    assert line.startswith(expected)


def test_tito_debug_reraises(fake_plugins, monkeypatch):
    monkeypatch.setenv("TITO_DEBUG", "1")
    result = run("good", "crash")
    assert isinstance(result.exception, RuntimeError)


@pytest.mark.parametrize(
    "args", [["good", "fail", "--size", "x"], ["good", "hello", "--nope"], ["nope"]]
)
def test_bad_arguments_give_usage_error(fake_plugins, args):
    result = run(*args)
    assert result.exit_code == 2
    assert "Usage:" in result.output and "Traceback" not in result.output


# --- the real command in a subprocess ------------------------------------------------------


def tito(*args: str, pythonpath: Path | None = None, code: str | None = None):
    env = dict(os.environ)
    env.pop("TITO_DEBUG", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "tito", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def test_subprocess_help():
    proc = tito("--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: tito" in proc.stdout and "plugins" in proc.stdout


def test_subprocess_help_imports_neither_rich_nor_numpy():
    code = (
        "import sys\nfrom tito.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print([m for m in ('rich', 'numpy') if m in sys.modules], file=sys.stderr)"
    )
    proc = tito(code=code)
    assert proc.stderr.strip() == "[]"


def test_subprocess_with_installed_fake_plugins(fake_dist_dir):
    """Real discovery: the fake dist-info is found by importlib.metadata on PYTHONPATH."""
    proc = tito("--help", pythonpath=fake_dist_dir)
    assert proc.returncode == 0 and "good" in proc.stdout
    proc = tito("good", "fail", pythonpath=fake_dist_dir)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error: Linear expected last dim 3, got 3"
    proc = tito("broken", pythonpath=fake_dist_dir)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_doctor_without_tinytorch_data_points_to_tito_data_list(monkeypatch):
    monkeypatch.delenv("TINYTORCH_DATA", raising=False)
    report = json.loads(run("doctor", "--json").stdout)
    assert report["data"] == {"path": None, "source": "default", "exists": None, "subfolders": []}
    assert "tito data list" in run("doctor").output
