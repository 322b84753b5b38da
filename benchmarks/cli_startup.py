"""Wall time of `tito --help` (lazy plugin loading): median of repeated fresh processes.

Target (issue: foundation): <= 0.3 s with all five packages installed.
Usage: uv run python benchmarks/cli_startup.py [--repeats N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

from _common import emit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    tito = shutil.which("tito") or str(Path(sys.executable).parent / "tito")
    samples = []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        subprocess.run([tito, "--help"], check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    emit("cli_startup", {
        "command": f"{tito} --help",
        "plugins": sorted(ep.name for ep in entry_points(group="tito.commands")),
        "seconds_median": statistics.median(samples[1:]),  # the first run warms the file cache
        "seconds_all": samples,
        "target_seconds": 0.3,
    })


if __name__ == "__main__":
    main()
