"""The training allocator policy (core/memory.py): freed step memory stays mapped for the next step."""

import platform
import subprocess
import sys

import pytest

# A "step" allocates and touches 40 MB, then frees it. Without the policy glibc maps it fresh every
# time and the kernel faults it in again (5,680 minor faults over 10 steps on the 2-core VM, the
# kernel faulting pages in batches); with it, the freed block is reused (0 faults).
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
    assert _faults("inference") > 1_000  # the default policy: every step faults its memory back in
    assert _faults("train") < 100


def test_importing_tinytorch_leaves_the_allocator_alone():
    code = "import tinytorch.core, tinytorch.core.memory as m; print(m._applied)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
