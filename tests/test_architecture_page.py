"""scripts/architecture_page.py renders `tito reuse --json` into docs/architecture.md.

The report here is the real `tito reuse` analysis of the tito-cli fixture packages, so the
figures the page must show are the hand-counted ones of packages/tito-cli/tests/test_reuse.py
(code share 16 / (16 + 6) = 72.7%).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tito.components import ComponentShare
from tito.distfiles import source_from_dir
from tito.reuse_analysis import analyze, check_failures, report_json

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "packages" / "tito-cli" / "tests" / "fixtures" / "reuse"


def load_script():
    spec = importlib.util.spec_from_file_location(
        "architecture_page", ROOT / "scripts" / "architecture_page.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def report() -> dict:
    sources = {
        "tinytorch-core": source_from_dir("tinytorch-core", FIXTURES / "core" / "src"),
        "tinytorch-domain": source_from_dir(
            "tinytorch-domain", FIXTURES / "domain" / "src", ["tinytorch-core>=0.1,<0.2"]
        ),
    }
    reports = analyze(sources)
    reports[1].models.append(ComponentShare("net", 2, 5, 9, 31))
    return report_json(reports, 0.7, {}, check_failures(reports, 0.7, {}))


def test_page_shows_the_measured_figures(report):
    page = load_script().render(report)
    assert "| tinytorch-domain | 6 | 16 | 22 | **72.7%** |" in page
    assert "| tinytorch-domain | net | 2/5 | 40.0% | 9/31 | 29.0% |" in page
    assert "tinytorch_domain -->|1 import| tinytorch_core" in page
    assert "| tinytorch-domain | n/a | tinytorch-core (1) | 0 |" in page  # not in the graph
    assert "below 70%" not in page  # 72.7% meets the seed's claim


def test_page_says_when_a_package_is_below_the_claim(report):
    report["packages"][1]["code_share"]["share"] = 0.5
    page = load_script().render(report)
    assert "below 70% are: tinytorch-domain 50.0%." in page


def test_check_detects_a_stale_page(report, tmp_path):
    script = load_script()
    saved = tmp_path / "report.json"
    saved.write_text(json.dumps(report))
    page = tmp_path / "architecture.md"
    assert script.main(["--json", str(saved), "--output", str(page)]) == 0
    assert script.main(["--json", str(saved), "--output", str(page), "--check"]) == 0
    page.write_text(page.read_text().replace("72.7%", "75.0%"))
    assert script.main(["--json", str(saved), "--output", str(page), "--check"]) == 1
