"""Roofline classification, advice from the point's position, and the plot (Agg, PNG/SVG)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tinytorch.perf import RooflineModel


@pytest.fixture
def roof():
    return RooflineModel(peak_gflops=100.0, bandwidth_gbs=10.0)


def test_ridge_attainable_classify(roof):
    assert roof.ridge_point == 10.0
    assert roof.attainable(1.0) == 10.0 and roof.attainable(50.0) == 100.0
    assert roof.classify(2.0) == "memory-bound" and roof.classify(20.0) == "compute-bound"


def test_advice_depends_on_position(roof):
    # memory-bound near the roof: raise intensity; the factor is computed
    p = roof.point("a", flops=2_000_000_000, bytes_moved=1_000_000_000, seconds=0.25)
    assert p.bound == "memory-bound" and p.efficiency == pytest.approx(0.4)
    assert "raise intensity 5.0x" in p.advice
    # memory-bound far below the roof: overhead
    p = roof.point("b", flops=2_000_000, bytes_moved=1_000_000, seconds=0.01)
    assert "overhead" in p.advice and "1%" in p.advice
    # compute-bound far below the ceiling: overhead, with the recoverable factor
    p = roof.point("c", flops=50_000_000_000, bytes_moved=1_000_000_000, seconds=2.5)
    assert p.bound == "compute-bound" and "20%" in p.advice and "5.0x" in p.advice
    # near the ceiling: cut FLOPs
    p = roof.point("d", flops=90_000_000_000, bytes_moved=1_000_000_000, seconds=1.0)
    assert "fewer FLOPs" in p.advice and "90%" in p.advice
    with pytest.raises(ValueError, match="positive"):
        roof.point("e", 0, 1, 1)


def test_plot_png_and_svg(roof, tmp_path):
    points = [roof.point("conv1", 2_000_000, 1_000_000, 0.001),
              roof.point("fc", 50_000_000, 1_000_000, 0.001)]
    png, svg = tmp_path / "r.png", tmp_path / "r.svg"
    fig = roof.plot(points, [png, svg], title="test")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    memory, compute = ax.lines[0], ax.lines[1]
    lo = memory.get_xdata()[0]
    assert list(memory.get_xdata()) == [lo, 10.0]
    assert list(memory.get_ydata()) == [10.0 * lo, 100.0]
    assert list(compute.get_ydata()) == [100.0, 100.0] and compute.get_xdata()[0] == 10.0
    ridge = [l for l in ax.lines if "ridge" in l.get_label()]
    assert ridge and list(ridge[0].get_xdata()) == [10.0, 10.0]
    offsets = [tuple(c.get_offsets()[0]) for c in ax.collections]
    assert offsets == [(2.0, 2.0), (50.0, 50.0)]
    assert [t.get_text() for t in ax.texts] == ["conv1", "fc"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ET.parse(svg).getroot().tag.endswith("svg")
    with pytest.raises(ValueError, match=".png or .svg"):
        roof.plot(points, tmp_path / "r.jpg")


def test_roofline_from_hardware_spec():
    from tinytorch.perf import get_hardware_spec

    spec = get_hardware_spec(quick=True)
    roof = RooflineModel(spec)
    assert roof.ridge_point == pytest.approx(spec.ridge_point)


def test_point_above_the_compute_ceiling_is_flagged_and_kept_on_the_plot(roof, tmp_path):
    # 381 % of the ceiling, as the published tutorial showed: impossible, so a measurement problem
    p = roof.point("fc", flops=381_000_000_000, bytes_moved=1_000_000_000, seconds=1.0)
    assert p.above_ceiling and p.advice.startswith("measurement problem")
    assert "381%" in p.advice and "--refresh" in p.advice
    ok = roof.point("fc2", flops=100_000_000_000, bytes_moved=1_000_000_000, seconds=1.0)
    assert not ok.above_ceiling  # at the ceiling is fine
    ax = roof.plot([p, ok], tmp_path / "r.png").axes[0]
    low, high = ax.get_ylim()
    assert low < 381.0 < high  # not clipped off the top
    assert "measurement problem" in " ".join(t.get_text() for t in ax.get_legend().get_texts())


def test_advice_near_the_ceiling_fits_the_layer(roof):
    fc = roof.point("fc", 90_000_000_000, 1_000_000_000, 1.0, ops=["linear"])
    conv = roof.point("conv", 90_000_000_000, 1_000_000_000, 1.0, ops=["conv2d", "add"])
    assert "depthwise" not in fc.advice and "low-rank" in fc.advice
    assert "depthwise" in conv.advice
    slow_fc = roof.point("fc", 30_000_000_000, 1_000_000_000, 1.0, ops=["linear"])
    slow_conv = roof.point("conv", 30_000_000_000, 1_000_000_000, 1.0, ops=["conv2d"])
    assert "im2col" not in slow_fc.advice and "im2col" in slow_conv.advice


def test_crowded_roofline_labels_never_overlap(roof, tmp_path):
    """30 layers in two tight clusters (as tinygpt's blocks): every label drawn once, none
    overlapping another text, a point's marker or the legend (matplotlib's own extents)."""
    from tinytorch.core.viz import overlapping_texts, text_extent

    rng = np.random.default_rng(0)
    points = []
    for i in range(30):
        intensity = (0.9 if i % 2 else 40.0) * (1 + 0.05 * rng.random())
        seconds = 0.001 * (1 + 0.3 * rng.random())
        points.append(roof.point(f"blocks.{i // 2}.{'ln1' if i % 2 else 'attn.qkv'}",
                                 int(intensity * 1e6), 1_000_000, seconds))
    fig = roof.plot(points, tmp_path / "r.png")
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == sorted(p.name for p in points)
    assert overlapping_texts(fig) == []
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    markers = ax.transData.transform([(p.intensity, p.achieved_gflops) for p in points])
    for text in ax.texts:
        box = text_extent(text, renderer)
        assert not box.overlaps(legend), text.get_text()
        inside = [(x, y) for x, y in markers if box.x0 < x < box.x1 and box.y0 < y < box.y1]
        assert not inside, f"{text.get_text()} covers a point"


def test_points_of_several_models_are_named_by_model(roof):
    from types import SimpleNamespace

    layer = SimpleNamespace(name="features.0", flops=2_000_000, bytes=1_000_000, forward_s=0.001)
    result = SimpleNamespace(model="small_cnn", layers=[layer], trace=None)
    assert [p.name for p in roof.points_from_profile(result)] == ["features.0"]
    assert [p.name for p in roof.points_from_profile(result, prefix=True)] == ["small_cnn/features.0"]
