"""Each distribution's version lives in its pyproject.toml only; ``__version__`` reads it back."""

from __future__ import annotations

import importlib
import re
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {  # distribution -> (package directory, import name)
    "tinytorch-core": ("tinytorch-core", "tinytorch.core"),
    "tinytorch-vision": ("tinytorch-vision", "tinytorch.vision"),
    "tinytorch-language": ("tinytorch-language", "tinytorch.language"),
    "tinytorch-perf": ("tinytorch-perf", "tinytorch.perf"),
    "tinytorch-learn": ("tinytorch-learn", "tinytorch.learn"),
    "tito-cli": ("tito-cli", "tito"),
}
VERSION_LITERAL = re.compile(r"""["']\d+\.\d+\.\d+([.+-]?\w+)*["']""")


@pytest.mark.parametrize("dist", sorted(PACKAGES))
def test_version_is_the_distribution_metadata(dist):
    directory, module = PACKAGES[dist]
    pyproject = (ROOT / "packages" / directory / "pyproject.toml").read_text()
    version = re.search(r'^version\s*=\s*"([^"]+)"', pyproject, re.MULTILINE).group(1)  # [project]
    assert metadata.version(dist) == version
    assert importlib.import_module(module).__version__ == version


def test_version_literal_pattern_finds_versions():
    assert VERSION_LITERAL.search('__version__ = "0.1.0"')
    assert VERSION_LITERAL.search("v = '1.2.3rc1'")
    assert not VERSION_LITERAL.search('"100.0"')


def test_no_version_literal_in_sources():
    found = []
    for directory, _ in PACKAGES.values():
        for path in sorted((ROOT / "packages" / directory / "src").rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if VERSION_LITERAL.search(line) or re.match(r"\s*__version__\s*=\s*['\"]", line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "versions belong in pyproject.toml only:\n" + "\n".join(found)
