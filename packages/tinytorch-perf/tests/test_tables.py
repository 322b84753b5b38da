"""Perf tables at 80 columns: nothing wrapped or cut; `compare` with no argument; --help lists models."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from perf_standins import gpt_factory, small_cnn_factory
from rich.console import Console

from tinytorch.perf import ModelProfiler, compare, models
from tinytorch.perf.profiler import comparison_table
from tinytorch.perf.tables import Column, fitted_table
from tito.main import cli


def _render(table, width=80) -> str:
    console = Console(width=width, record=True)
    console.print(table)
    return console.export_text()


def _cells(table) -> list[list[str]]:
    """The cells of the columns the table shows, row by row."""
    columns = [list(map(str, c._cells)) for c in table.columns]
    return [list(r) for r in zip(*columns)]


def _assert_fits_and_intact(table, width=80):
    text = _render(table, width)
    assert max(len(line) for line in text.splitlines()) <= width
    for row in _cells(table):
        for cell in row:
            assert cell in text, f"cell {cell!r} was cut"
    return text


def test_fitted_table_drops_lowest_priority_columns_first():
    cols = [Column("name", "left", 9), Column("a", priority=1), Column("b", priority=5),
            Column("c", priority=3)]
    rows = [["x" * 40, "1" * 15, "2" * 15, "3" * 15]]
    table = fitted_table(None, cols, rows, width=80)
    assert [c.header for c in table.columns] == ["name", "b", "c"]  # a (priority 1) went
    assert "a" in table.caption
    _assert_fits_and_intact(table)
    assert [c.header for c in fitted_table(None, cols, rows, width=200).columns] == ["name", "a", "b", "c"]


def test_profile_table_fits_80_columns_with_layer_names_and_times_intact():
    model, ids = gpt_factory()
    r = ModelProfiler(model, ids).profile(repeats=1, warmup=0)
    table = r.table(width=80)
    text = _assert_fits_and_intact(table)
    headers = [c.header for c in table.columns]
    assert {"layer", "self fwd ms", "bwd ms", "%"} <= set(headers)
    for layer in r.layers:
        assert layer.name in text and f"{layer.forward_s * 1e3:.3f}" in text
    assert "left out at this width" in text  # and says what it left out
    assert set(c.header for c in r.table().columns) >= {"incl. fwd ms", "act. MB", "FLOP/B"}


def test_comparison_table_fits_80_columns():
    rows = compare({"cnn": small_cnn_factory(), "gpt": gpt_factory()}, repeats=1, warmup=0)
    text = _assert_fits_and_intact(comparison_table(rows, width=80))
    for r in rows:
        assert f"{r.params:,}" in text and f"{r.forward_s * 1e3:.2f}" in text


@pytest.fixture
def only_test_models(registered_models, monkeypatch):
    monkeypatch.setattr(models, "_entry_points", lambda: {})  # just the stand-ins
    return registered_models


def test_compare_without_arguments_compares_every_registered_model(only_test_models):
    r = CliRunner().invoke(cli, ["performance", "compare", "--repeats", "1", "--json"])
    assert r.exit_code == 0, r.output
    assert [m["name"] for m in json.loads(r.output)["models"]] == ["test_cnn", "test_gpt"]
    r = CliRunner().invoke(cli, ["performance", "compare", "--repeats", "1"], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    assert max(len(line) for line in r.output.splitlines()) <= 80
    assert "test_cnn" in r.output and "test_gpt" in r.output


def test_help_lists_the_registered_model_names(registered_models):
    models.register_model("probe_model_for_help", small_cnn_factory)
    try:
        for command in ("compare", "profile", "roofline", "flops"):
            r = CliRunner().invoke(cli, ["performance", command, "--help"])
            assert r.exit_code == 0, r.output
            listed = r.output.split("Registered models")[1]
            for name in [*registered_models, "probe_model_for_help", *models.available_models()]:
                assert re.search(rf"\b{name}\b", listed), (command, name)
    finally:
        models.unregister_model("probe_model_for_help")


def test_model_flops_table_fits_80_columns(registered_models):
    r = CliRunner().invoke(cli, ["performance", "flops", "test_gpt"], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    assert max(len(line) for line in r.output.splitlines()) <= 80
    from tinytorch.perf import FLOPsCounter

    trace = FLOPsCounter().trace(*gpt_factory())
    for lc in trace.layers.values():
        assert lc.name in r.output and f"{lc.forward.matmul_flops:,}" in r.output
