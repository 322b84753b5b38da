"""`tito vision train` never writes its checkpoint over a file of its data set (issue 21 §1)."""

from __future__ import annotations

from click.testing import CliRunner

from tito.main import cli


def test_train_refuses_an_out_that_is_a_data_file(tmp_path):
    data = tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    data.parent.mkdir()
    data.write_bytes(b"images")
    (tmp_path / "images.gz").symlink_to(data)
    for out in (data, tmp_path / "images.gz"):
        result = CliRunner().invoke(cli, ["vision", "train", "fashion-mnist", "--root", str(tmp_path),
                                          "--out", str(out)])
        assert result.exit_code == 1, result.output
        assert result.output.startswith(f"Error: --out {out}: it is an input of this command (the fashion-mnist data")
    assert data.read_bytes() == b"images"
