"""The workspace installs on Linux, macOS and Windows (issue 22 §1): the lockfile matches the
pyprojects, and `uv sync` of every package finds wheels (or sdists) for each platform. MPI comes
from the mpich wheel on Linux and macOS and from Intel MPI's impi-rt wheel on Windows.

Only the lockfile is read (`--locked --dry-run`), so no index is contacted; the test skips with a
reason when uv is not available or cannot work offline.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from uv_command import uv

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu", "x86_64-apple-darwin",
             "aarch64-apple-darwin", "x86_64-pc-windows-msvc"]
OFFLINE_SIGNS = ("offline", "network", "connect", "dns", "failed to fetch")


def run_uv(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([*uv(), *args], cwd=ROOT, capture_output=True, text=True, timeout=180)
    if proc.returncode and any(sign in proc.stderr.lower() for sign in OFFLINE_SIGNS):
        pytest.skip(f"uv could not work offline here: {proc.stderr.strip().splitlines()[-1]}")
    return proc


def test_lockfile_matches_the_pyprojects():
    proc = run_uv("lock", "--check", "--offline")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_package_installs_on(platform):
    proc = run_uv("sync", "--locked", "--all-packages", "--offline", "--dry-run", "--python-platform", platform)
    assert proc.returncode == 0, f"uv sync for {platform}:\n{proc.stderr[-3000:]}"


def test_mpi_comes_from_a_wheel_on_every_platform():
    lock = (ROOT / "uv.lock").read_text(encoding="utf-8")
    assert '{ name = "mpich", marker = "sys_platform != \'win32\'" }' in lock
    assert '{ name = "impi-rt", marker = "sys_platform == \'win32\'" }' in lock
    impi = lock.split('name = "impi-rt"', 1)[1].split("[[package]]", 1)[0]
    assert "win_amd64.whl" in impi
    mpi4py = lock.split('name = "mpi4py"\n', 1)[1].split("[[package]]", 1)[0]
    assert "win_amd64.whl" in mpi4py and "macosx" in mpi4py and "manylinux" in mpi4py
