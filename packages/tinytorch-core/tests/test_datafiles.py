"""`tinytorch.core.datafiles` and `tito data`: the data root, resumable checksummed downloads
(against a local HTTP server the test runs), the data-set registry and the download command."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinytorch.core import datafiles
from tinytorch.core.datafiles import (
    DatasetFiles,
    MissingDataError,
    RemoteFile,
    data_root,
    dataset_folder,
    download,
    fetch_dataset,
    user_cache_dir,
)

PAYLOAD = bytes(range(256)) * 4000  # 1,024,000 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves ``files`` over HTTP on 127.0.0.1 with Range support; ``cut_after`` sends only that
    many body bytes and closes (an interrupted download); ``ignore_range`` answers 200 always."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut_after: int | None = None
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.sent = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                wanted = self.headers.get("Range")
                if wanted and not server.ignore_range:
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                part = body[start:]
                self.send_header("Content-Length", str(len(part)))
                if server.cut_after is not None:
                    self.send_header("Connection", "close")
                    part = part[: server.cut_after]
                self.end_headers()
                self.wfile.write(part)
                server.sent += len(part)
                self.wfile.flush()
                if server.cut_after is not None:
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    s.files["data.bin"] = PAYLOAD
    yield s
    s.close()


def spec_for(server: Server, name: str = "data.bin", sha: str = SHA, size: int | None = len(PAYLOAD)):
    return RemoteFile(name, (server.url + name,), (sha,), size)


def test_download_verifies_and_renames_into_place(server, tmp_path):
    path = download(spec_for(server), tmp_path / "set", timeout=10)
    assert path == tmp_path / "set" / "data.bin" and path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.bin"]  # no .part left
    assert server.requests == [("/data.bin", None)]


@pytest.mark.parametrize("size_known", [True, False])
def test_an_interrupted_download_resumes_with_a_range_request(server, tmp_path, size_known):
    spec = spec_for(server, size=len(PAYLOAD) if size_known else None)
    folder = tmp_path / "set"
    server.cut_after = 300_000
    with pytest.raises(OSError, match="could not download data.bin"):
        download(spec, folder, timeout=10)
    part = folder / "data.bin.part"
    assert not (folder / "data.bin").exists()  # never under its real name before it verifies
    kept = part.stat().st_size
    assert 0 < kept <= 300_000 and PAYLOAD.startswith(part.read_bytes())
    server.cut_after, server.sent = None, 0
    assert download(spec, folder, timeout=10).read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/data.bin", f"bytes={kept}-")
    assert server.sent == len(PAYLOAD) - kept  # only the rest was sent again
    assert not part.exists()


def test_a_server_that_ignores_range_sends_the_whole_file_again(server, tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "data.bin.part").write_bytes(PAYLOAD[:1000])
    server.ignore_range = True
    assert download(spec_for(server), folder, timeout=10).read_bytes() == PAYLOAD


def test_a_complete_part_file_is_only_verified(server, tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "data.bin.part").write_bytes(PAYLOAD)
    assert download(spec_for(server, size=None), folder, timeout=10).read_bytes() == PAYLOAD
    assert server.requests == [("/data.bin", f"bytes={len(PAYLOAD)}-")]  # answered 416: complete


def test_a_corrupted_download_is_refused_and_deleted(server, tmp_path):
    server.files["data.bin"] = PAYLOAD[:-1] + b"\x00"
    folder = tmp_path / "set"
    with pytest.raises(OSError, match=r"data.bin: ValueError: downloaded .* but checksum mismatch "
                                      r"\(got 1,024,000 bytes; expected 1,024,000 bytes, sha256 " + SHA):
        download(spec_for(server), folder, timeout=10)
    assert list(folder.iterdir()) == []  # neither the file nor a .part to resume from


def test_data_root_env_and_platform_default(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINYTORCH_DATA", "rel/data")
    assert data_root() == tmp_path / "rel" / "data"  # a relative setting is made absolute
    assert data_root("~/x") == Path.home() / "x"
    monkeypatch.delenv("TINYTORCH_DATA")
    assert data_root() == user_cache_dir()
    monkeypatch.setattr(datafiles.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "tinytorch"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_root() == Path.home() / ".cache" / "tinytorch"
    monkeypatch.setattr(datafiles.sys, "platform", "darwin")
    assert data_root() == Path.home() / "Library" / "Caches" / "tinytorch"
    monkeypatch.setattr(datafiles.sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert data_root() == tmp_path / "local" / "tinytorch"


def _fake_registry(monkeypatch, server):
    spec = DatasetFiles("tiny", "tiny-folder", (spec_for(server),), "a test data set")
    monkeypatch.setattr(datafiles, "registered_datasets", lambda: {"tiny": spec})
    return spec


def test_missing_data_names_the_files_and_the_download_command(server, tmp_path, monkeypatch):
    _fake_registry(monkeypatch, server)
    with pytest.raises(MissingDataError, match=r"tiny: expected data.bin in .*tiny-folder; download "
                                               r"them with `tito data download tiny`"):
        dataset_folder("tiny", tmp_path)
    assert fetch_dataset("tiny", tmp_path, timeout=10) == tmp_path / "tiny-folder"
    assert dataset_folder("tiny", tmp_path) == tmp_path / "tiny-folder"


def test_tito_data_download_and_list(server, tmp_path, monkeypatch):
    from tito.main import cli

    _fake_registry(monkeypatch, server)
    runner = CliRunner()
    listed = runner.invoke(cli, ["data", "list", "--root", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert "tiny      missing" in listed.output
    assert "download with: tito data download tiny" in listed.output
    got = runner.invoke(cli, ["data", "download", "tiny", "--root", str(tmp_path), "--timeout", "10"])
    assert got.exit_code == 0, got.output
    assert "data.bin: downloaded, sha256 matches" in got.output
    assert (tmp_path / "tiny-folder" / "data.bin").read_bytes() == PAYLOAD
    again = runner.invoke(cli, ["data", "download", "tiny", "--root", str(tmp_path)])
    assert "already there (sha256 matches)" in again.output and len(server.requests) == 1
    listed = runner.invoke(cli, ["data", "list", "--root", str(tmp_path), "--verify"])
    assert "tiny      verified" in listed.output and "download with" not in listed.output
    (tmp_path / "tiny-folder" / "data.bin").write_bytes(b"junk")
    listed = runner.invoke(cli, ["data", "list", "--root", str(tmp_path), "--verify"])
    assert "tiny      corrupt: data.bin" in listed.output
    bad = runner.invoke(cli, ["data", "download", "nope"])
    assert bad.exit_code == 2 and "unknown data set 'nope'" in bad.output and "Traceback" not in bad.output


def test_installed_packages_register_their_data_sets():
    import importlib.util

    names = set(datafiles.registered_datasets())
    if importlib.util.find_spec("tinytorch.vision"):
        assert {"fashion-mnist", "mnist", "cifar10"} <= names
    if importlib.util.find_spec("tinytorch.language"):
        assert "gpt2-tokenizer" in names
