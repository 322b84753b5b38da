"""`tito performance` commands refuse two outputs that are one file (issue 21 §1)."""

from __future__ import annotations

from click.testing import CliRunner

from tito.main import cli


def test_profile_and_roofline_refuse_one_file_for_two_outputs(tmp_path):
    same = tmp_path / "out.json"
    result = CliRunner().invoke(cli, ["performance", "profile", "mlp", "--csv", str(same), "--trace", str(same)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: --trace {same}: it is the same file as --csv {same}")
    assert not same.exists()  # refused before any work
    svg = tmp_path / "r.svg"
    result = CliRunner().invoke(cli, ["performance", "roofline", "mlp", "--out", str(svg), "--svg", str(svg)])
    assert result.exit_code == 1 and f"--svg {svg}: it is the same file as --out {svg}" in result.output
