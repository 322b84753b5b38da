"""ModelProfiler: per-layer rows, exports (JSON, CSV, Chrome trace) and compare()."""

from __future__ import annotations

import csv
import json

import pytest
from perf_standins import gpt_factory, small_cnn_factory

from tinytorch.perf import ModelProfiler, RooflineModel, compare
from tinytorch.perf.profiler import comparison_table


def test_profile_small_cnn(tmp_path):
    model, x = small_cnn_factory()
    roof = RooflineModel(peak_gflops=100.0, bandwidth_gbs=10.0)
    r = ModelProfiler(model, x, name="cnn").profile(repeats=2, warmup=1, roofline=roof)
    names = [l.name for l in r.layers if l.name not in ("(model)", "(unattributed)")]
    assert names == ["features.0", "features.1", "features.2", "features.3", "features.4",
                     "features.5", "flatten", "fc"]
    assert r.layers[0].name == "(model)"  # SmallCNN.forward and the Sequential's own time
    conv = r.layers[1]
    assert conv.type == "Conv2d" and conv.params == 8 * 3 * 9 + 8
    assert conv.output_shape == (2, 8, 16, 16) and conv.activation_bytes == 2 * 8 * 256 * 4
    assert conv.flops > 0 and conv.forward_s > 0 and conv.backward_s > 0 and conv.bound
    assert conv.advice and conv.gflops_per_s > 0
    assert abs(sum(l.percent for l in r.layers) - 100) < 1e-6
    assert r.params == sum(l.params for l in r.layers)
    assert r.flops == sum(l.flops for l in r.layers)
    assert r.total_s > 0 and r.profiled_s > 0 and r.coverage > 0

    d = json.loads(r.to_json(tmp_path / "p.json"))
    assert d["layers"][1]["name"] == "features.0" and "convention" in d
    r.to_csv(tmp_path / "p.csv")
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == len(r.layers) and rows[1]["output_shape"] == "2x8x16x16"
    trace = r.to_chrome_trace(tmp_path / "t.json")
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    assert events == trace["traceEvents"]
    spans = [e for e in events if e["ph"] == "X"]
    assert {e["tid"] for e in spans} == {1, 2}
    assert all(e["dur"] >= 0 and "ts" in e and e["pid"] == 1 for e in spans)
    assert any(e["name"] == "features.0" for e in spans)


def test_profile_gpt_like_forward_only():
    model, ids = gpt_factory()
    r = ModelProfiler(model, ids).profile(repeats=1, warmup=0, backward=False)
    assert all(l.backward_s == 0 for l in r.layers)
    assert "blocks.0.attn" in [l.name for l in r.layers]  # its own matmuls/softmax
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(r.table())
    assert "blocks.0.attn.q_proj" in console.export_text()


def test_compare():
    rows = compare({"cnn": small_cnn_factory(), "gpt": gpt_factory()}, repeats=1, warmup=0)
    assert [r.name for r in rows] == ["cnn", "gpt"]
    assert all(r.params > 0 and r.forward_flops > 0 and r.forward_s > 0 for r in rows)
    assert comparison_table(rows).row_count == 2
    assert ModelProfiler.compare is compare


class _FakeClock:
    """A clock that only moves when a module says it worked (so times are closed-form)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _ticking_model(clock):
    from tinytorch.core import nn

    class Tick(nn.Module):
        def __init__(self, seconds, child=None):
            super().__init__()
            self.seconds, self.child = seconds, child

        def forward(self, x):
            clock.now += self.seconds  # this module's own work
            y = x * 2.0
            return self.child(y) if self.child is not None else y

    return nn.Sequential(Tick(1.0, child=Tick(10.0)))


def test_forward_time_is_self_time_and_inclusive_time_is_reported_apart():
    from tinytorch.core import randn

    clock = _FakeClock()
    model = _ticking_model(clock)
    r = ModelProfiler(model, randn(2, 3, requires_grad=True), clock=clock).profile(
        repeats=3, warmup=1)
    rows = {l.name: l for l in r.layers}
    assert set(rows) == {"0", "0.child"}
    assert rows["0"].forward_s == 1.0 and rows["0"].forward_inclusive_s == 11.0
    assert rows["0.child"].forward_s == 10.0 and rows["0.child"].forward_inclusive_s == 10.0
    assert r.forward_s == 11.0 and r.backward_s == 0.0
    assert r.coverage == 1.0  # self times add up to the step
    assert [l.percent for l in r.layers] == [100 / 11, 1000 / 11]


def test_time_in_the_model_and_in_op_free_modules_is_a_row_so_rows_cover_the_step():
    from tinytorch.core import nn, randn

    clock = _FakeClock()

    class Glue(nn.Module):  # runs no op: its time folds into the nearest row, here the model's
        def forward(self, x):
            clock.now += 2.0
            return x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.glue, self.fc = Glue(), nn.Linear(3, 3)

        def forward(self, x):
            clock.now += 5.0  # the model's own code (input checks, embeddings glue, ...)
            return self.fc(self.glue(x))

    r = ModelProfiler(Net(), randn(2, 3), clock=clock).profile(repeats=3, warmup=0)
    rows = {l.name: l for l in r.layers}
    assert set(rows) == {"(model)", "fc"}
    assert rows["(model)"].forward_s == 7.0 and rows["(model)"].type == "Net"
    assert rows["fc"].forward_s == 0.0
    assert r.coverage == 1.0 and r.profiled_forward_s == 7.0 == r.forward_s
    assert [l.percent for l in r.layers] == [100.0, 0.0]


def test_blocks_show_the_parameters_they_hold():
    model, ids = gpt_factory()
    r = ModelProfiler(model, ids).profile(repeats=1, warmup=0)
    block = next(l for l in r.layers if l.name == "blocks.0")
    held = sum(p.size for p in model.blocks[0].parameters())
    assert block.params == 0 and block.total_params == held > 0
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(r.table())
    line = next(t for t in console.export_text().splitlines() if "│ blocks.0 " in t)
    assert f"{held:,}" in line


def test_rows_come_from_the_median_instrumented_step_and_add_up_to_it():
    from tinytorch.core import nn, randn

    clock = _FakeClock()

    class Tick(nn.Module):
        """Works for the given seconds on its calls: trace, then plain/instrumented pairs."""

        def __init__(self, schedule, child=None):
            super().__init__()
            self.schedule, self.calls, self.child = schedule, 0, child

        def forward(self, x):
            clock.now += self.schedule[self.calls]
            self.calls += 1
            y = x * 2.0
            return self.child(y) if self.child is not None else y

    # instrumented calls are 2, 4, 6: totals 10, 6, 11 -> the median step is the first one
    child = Tick([0, 0, 1, 0, 5, 0, 9])
    model = nn.Sequential(Tick([0, 0, 9, 0, 1, 0, 2], child=child))
    r = ModelProfiler(model, randn(2, 3), clock=clock).profile(repeats=3, warmup=0,
                                                               backward=False)
    rows = {l.name: l.forward_s for l in r.layers}
    assert rows == {"0": 9.0, "0.child": 1.0}  # per-layer medians would say 2 and 5
    assert r.profiled_s == 10.0 == sum(rows.values())


def test_profile_times_on_the_threads_asked_for():
    from tinytorch.core import nn, randn
    from tinytorch.core.threads import get_num_threads

    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(get_num_threads())
            return x * 2.0

    before = get_num_threads()
    ModelProfiler(nn.Sequential(Probe()), randn(2, 3)).profile(repeats=2, warmup=0, threads=1)
    assert seen[1:] == [1, 1, 1, 1]  # plain and instrumented steps; seen[0] is the FLOP trace
    assert get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        ModelProfiler(nn.Sequential(Probe()), randn(2, 3)).profile(threads=0)


@pytest.mark.parametrize("setting", [dict(repeats=True), dict(repeats=1.5), dict(warmup=-1),
                                     dict(threads=True)])
def test_profile_refuses_counts_that_are_not_integers(setting):
    name = next(iter(setting))
    with pytest.raises(ValueError, match=f"profile: {name} must be an integer"):
        ModelProfiler(*small_cnn_factory()).profile(**setting)
