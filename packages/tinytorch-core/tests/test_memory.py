"""The training allocator policy (core/memory.py): freed step memory stays mapped for the next step."""

import platform
import subprocess
import sys

import pytest

# A "step" allocates and touches 40 MB, then frees it. Without the policy glibc maps it fresh every
# time and the kernel faults it in again; with it, the freed block is reused (0 faults). How many
# faults "again" is depends on the kernel: 5,680 over 10 steps with 4 KiB pages faulted in batches,
# about 570 where transparent huge pages are always on. So the test compares the two runs.
_STEPS = """
import resource, sys
import numpy as np
from tinytorch.core import Tensor
if sys.argv[1] == "train":
    (Tensor(np.ones(3), requires_grad=True) * 2).sum().backward()  # the first backward applies it
def step():
    a = np.empty(10_000_000, dtype=np.float32)
    a.fill(1.0)
    del a
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _STEPS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_after_a_backward_pass_freed_step_memory_is_reused_not_faulted_back():
    default, trained = _faults("inference"), _faults("train")
    assert default >= 100  # the default policy: every step faults its 40 MB back in
    assert trained * 10 < default, (trained, default)


def test_importing_tinytorch_leaves_the_allocator_alone():
    code = "import tinytorch.core, tinytorch.core.memory as m; print(m._applied)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
