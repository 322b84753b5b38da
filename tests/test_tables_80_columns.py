"""Tables that tito prints fit an 80-column terminal without cutting a name or a number."""

import re

import pytest
from click.testing import CliRunner

from tito.main import cli


def run80(args):
    result = CliRunner(env={"COLUMNS": "80"}).invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80, result.output
    assert "…" not in result.output  # rich's ellipsis: something was cut
    return result.output


def test_plugins_table_keeps_every_name():
    out = run80(["plugins"])
    for name in ("core", "language", "performance", "vision", "tinytorch-language", "tinytorch-vision"):
        assert re.search(rf"\b{re.escape(name)}\b", out), name


def test_vision_datasets_table_keeps_file_names(tmp_path):
    out = run80(["vision", "datasets", "--root", str(tmp_path)])
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "data_batch_5", "test_batch"):
        assert name in out, name
    assert "9,912,422" in out  # a number is wrapped whole, never cut


@pytest.mark.parametrize("args", [["doctor"], ["language", "tokenize", "--tokenizer", "char"]])
def test_other_reports_fit(args):
    run80(args)


def test_compare_runs_table_fits_and_keeps_the_baseline_ratio(tmp_path):
    from tinytorch.perf.benchmark import BenchmarkReport

    for name, p90, rate in (("float32_baseline", 0.0123, 812.5), ("int8_weights", 0.0081, 1402.25)):
        BenchmarkReport(name, {"batch_size": 64}, {"parameters": 421_738, "memory_bytes": 1_686_952},
                        single_stream={"latency_s": {"p50": p90 / 2, "p90": p90, "p99": p90 * 3}},
                        offline={"samples_per_s": rate}).to_json(tmp_path / f"{name}.json")
    out = run80(["performance", "compare-runs", str(tmp_path / "float32_baseline.json"),
                 str(tmp_path / "int8_weights.json")])
    assert "1,402" in out and "421,738" in out and "baseline" in out
