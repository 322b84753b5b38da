"""Is another program using the CPU while we time something? One check for every tool.

A figure timed while a browser or a compile holds a core is slower than the machine can do,
and with OpenBLAS's threads spin-waiting for each other it can be many times slower. Every
tool that prints a time (`tito performance hardware/profile/compare/cifar10/roofline`, the
trainers' images/s and tokens/s) wraps the timed work in a `ContentionProbe` and prints
`contention_note` next to the figure.

The probe compares the CPU time the whole system spent busy (``/proc/stat`` on Linux, psutil
elsewhere when it is installed) with this process's own CPU time: the rest is what *other*
processes used, divided by the wall time it is their average number of busy cores. Above
`CONTENDED_CORES` the measurement is **contended**.

>>> note = contention_note({"others_cores": 0.98, "load_1min": 2.5, "contended": True})
>>> note
'contended: other processes used 0.98 cores while timing (load average 2.50)'
>>> contention_note({"others_cores": 0.1, "load_1min": 0.3, "contended": False}) is None
True
"""

from __future__ import annotations

import os
import time
from typing import Any

__all__ = ["ContentionProbe", "CONTENDED_CORES", "contention_note", "counting_as_ours",
           "measure_contention", "system_busy_seconds"]

#: other processes using more cores than this (on average) while timing: contended
CONTENDED_CORES = 0.25


def system_busy_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (every CPU summed), or None.

    Linux reads ``/proc/stat`` (user, nice, system, irq, softirq, steal: everything but idle
    and iowait); other systems ask psutil when it is installed.

    >>> busy = system_busy_seconds()
    >>> busy is None or busy > 0
    True
    """
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        if fields and fields[0] == "cpu":
            ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
            hz = os.sysconf("SC_CLK_TCK")
            return (sum(ticks) - ticks[3] - ticks[4]) / hz
    except (OSError, ValueError, AttributeError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


class ContentionProbe:
    """Context manager: how much CPU other processes used while the block ran.

    ``result`` (after the block): wall seconds, this process's CPU seconds, other processes'
    CPU seconds and average cores, this process's CPU per wall second, the 1-minute load
    average before the block, and ``contended`` (others used more than ``threshold_cores``).
    Where the system's busy time cannot be read, ``others_cores`` is None and ``contended``
    False: unknown is not reported as contended. With ``children=True`` the CPU time of child
    processes that ended during the block counts as this process's own (a timed subprocess,
    as the docs build runs a tutorial).

    >>> with ContentionProbe() as probe:
    ...     _ = sum(range(100000))
    >>> sorted(probe.result)[:3]
    ['contended', 'load_1min', 'others_cores']
    """

    def __init__(self, threshold_cores: float = CONTENDED_CORES, children: bool = False):
        self.threshold_cores, self.children = threshold_cores, children
        self.result: dict[str, Any] = {}

    def _own(self) -> float:
        if not self.children:
            return time.process_time()
        t = os.times()  # children: those waited for (Windows reports 0 for them)
        return time.process_time() + t.children_user + t.children_system

    def __enter__(self) -> ContentionProbe:
        try:
            self.load = os.getloadavg()[0]
        except (AttributeError, OSError):  # Windows has no load average
            self.load = None
        self.wall0, self.busy0, self.own0 = time.perf_counter(), system_busy_seconds(), self._own()
        return self

    def __exit__(self, *exc) -> bool:
        wall = time.perf_counter() - self.wall0
        own = self._own() - self.own0
        busy = system_busy_seconds()
        others = None if busy is None or self.busy0 is None else max(busy - self.busy0 - own, 0.0)
        others_cores = others / wall if others is not None and wall > 0 else None
        self.result = {"wall_s": wall, "own_cpu_s": own, "others_cpu_s": others,
                       "others_cores": others_cores,
                       "own_cpu_per_wall": own / wall if wall > 0 else 0.0,
                       "load_1min": self.load,
                       "contended": others_cores is not None and others_cores > self.threshold_cores}
        return False


def counting_as_ours(result: dict[str, Any], cpu_s: float,
                     threshold_cores: float = CONTENDED_CORES) -> dict[str, Any]:
    """``result`` with ``cpu_s`` more CPU seconds counted as this job's, not as other programs'
    (the other ranks of a data-parallel run on this machine are the same job).

    >>> r = {"wall_s": 2.0, "own_cpu_s": 2.0, "others_cpu_s": 2.5, "others_cores": 1.25,
    ...      "contended": True}
    >>> counting_as_ours(r, 2.0)["others_cores"], counting_as_ours(r, 2.0)["contended"]
    (0.25, False)
    """
    if result.get("others_cpu_s") is None or not result.get("wall_s"):
        return result
    others = max(result["others_cpu_s"] - cpu_s, 0.0)
    cores = others / result["wall_s"]
    return {**result, "others_cpu_s": others, "others_cores": cores, "contended": cores > threshold_cores}


def measure_contention(seconds: float = 0.3) -> dict[str, Any]:
    """What other processes use right now: a `ContentionProbe` around ``seconds`` of sleep.

    This process sleeps, so ``others_cores`` is their demand, not what is left after ours.

    >>> measure_contention(0.05)["wall_s"] >= 0.05
    True
    """
    with ContentionProbe() as probe:
        time.sleep(seconds)
    return probe.result


def contention_note(result: dict[str, Any] | None, what: str = "timing") -> str | None:
    """The words printed next to a figure timed under contention, or None if it was not.

    Args:
        result: a `ContentionProbe` ``result`` (None: nothing was measured).
        what: what was going on (``"timing"``, ``"training"``, ``"measuring"``).

    >>> contention_note({"others_cores": 1.5, "load_1min": None, "contended": True}, "training")
    'contended: other processes used 1.50 cores while training'
    """
    if not result or not result.get("contended"):
        return None
    load = result.get("load_1min")
    return (f"contended: other processes used {result['others_cores']:.2f} cores while {what}"
            + (f" (load average {load:.2f})" if load is not None else ""))
