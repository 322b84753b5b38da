"""Loading a GPT-2-124M-sized safetensors file: time and peak memory, ours against references.

Writes GPT-2 124M's 148 tensors (random values, 497.8 MB in F32, 248.9 MB in BF16) once, then
loads them in fresh subprocesses (so each peak RSS is that load's own: ``VmHWM`` of
/proc/self/status, Linux only) and reports the median of ``--repeats`` load times and the peak
resident memory above the process's size after imports:

- ``tinytorch``: ``tinytorch.core.io.load`` (F32; BF16 widened to float32; BF16 ``raw``);
- ``safetensors_numpy``: ``safetensors.numpy.load_file`` on the F32 file (HF's NumPy loader);
- ``tinytorch_old``: the loader of the worktree in ``$TINYTORCH_OLD_SRC`` (a checkout of a
  commit before this loader, e.g. ae7e536), which read the whole file and handed it to
  safetensors; skipped when unset;
- ``torch``: ``safetensors.torch.load_file`` + ``.float()`` for BF16 (``torch_f32`` is the bare
  ``load_file``, which maps the file: pages are read on first use, so it is no full read), in
  the interpreter of ``$TINYTORCH_REFERENCE_PYTHON`` (skipped when unset).

    TINYTORCH_REFERENCE_PYTHON=/root/.venvs/ref/bin/python \\
        python3 -m uv run python benchmarks/io_safetensors.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402

from tinytorch.core import io  # noqa: E402


def gpt2_shapes() -> dict[str, tuple[int, ...]]:
    d, ff = 768, 3072
    shapes: dict[str, tuple[int, ...]] = {"wte.weight": (50257, d), "wpe.weight": (1024, d)}
    for i in range(12):
        h = f"h.{i}."
        shapes.update({h + "ln_1.weight": (d,), h + "ln_1.bias": (d,),
                       h + "attn.c_attn.weight": (d, 3 * d), h + "attn.c_attn.bias": (3 * d,),
                       h + "attn.c_proj.weight": (d, d), h + "attn.c_proj.bias": (d,),
                       h + "ln_2.weight": (d,), h + "ln_2.bias": (d,),
                       h + "mlp.c_fc.weight": (d, ff), h + "mlp.c_fc.bias": (ff,),
                       h + "mlp.c_proj.weight": (ff, d), h + "mlp.c_proj.bias": (d,)})
    shapes.update({"ln_f.weight": (d,), "ln_f.bias": (d,)})
    return shapes


MEASURE = r"""
import json, sys, time
{setup}
def status_mib(field):  # VmHWM is this process's own peak (ru_maxrss inherits the parent's)
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB -> MiB
baseline = status_mib("VmRSS")
times = []
for _ in range({repeats}):
    start = time.perf_counter()
    state = {load}
    times.append(time.perf_counter() - start)
    elements = sum(int(v.numel() if hasattr(v, "numel") else v.size) for v in state.values())
    del state
print(json.dumps({{"seconds": times, "peak_rss_above_baseline_mib": status_mib("VmHWM") - baseline,
                   "elements": elements,
                   "module": getattr(sys.modules.get("tinytorch.core.io"), "__file__", None)}}))
"""


def measure(python: str, setup: str, load: str, repeats: int, env: dict | None = None) -> dict:
    code = MEASURE.format(setup=setup, load=load, repeats=repeats)
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=1800,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        return {"skipped": proc.stderr.strip().splitlines()[-1:]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["median_seconds"] = float(np.median(result["seconds"]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        f32, bf16 = Path(tmp) / "gpt2_f32.safetensors", Path(tmp) / "gpt2_bf16.safetensors"
        tensors = {k: rng.standard_normal(s, dtype=np.float32) for k, s in gpt2_shapes().items()}
        io.write_safetensors(f32, tensors, {"format": "pt"})
        io.write_safetensors(bf16, tensors, {"format": "pt"}, float_dtype="bfloat16")
        del tensors
        py = sys.executable
        ours = "from tinytorch.core import io"
        results = {
            "file_mb": {"f32": f32.stat().st_size / 1e6, "bf16": bf16.stat().st_size / 1e6},
            "tinytorch_f32": measure(py, ours, f"io.load({str(f32)!r})[0]", args.repeats),
            "tinytorch_bf16_to_float32": measure(py, ours, f"io.load({str(bf16)!r})[0]", args.repeats),
            "tinytorch_bf16_raw": measure(py, ours, f"io.load({str(bf16)!r}, bf16='raw')[0]", args.repeats),
            "safetensors_numpy_f32": measure(py, "import safetensors.numpy as sn",
                                             f"sn.load_file({str(f32)!r})", args.repeats),
        }
        old = Path(os.environ.get("TINYTORCH_OLD_SRC", "/nonexistent"))
        if (old / "packages/tinytorch-core/src").is_dir():
            results["tinytorch_old_f32"] = measure(
                py, ours, f"io.load({str(f32)!r})[0]", args.repeats,
                env={"PYTHONPATH": str(old / "packages/tinytorch-core/src")})
            results["tinytorch_old_f32"]["source"] = str(old)
        reference = os.environ.get("TINYTORCH_REFERENCE_PYTHON")
        if reference:
            results["torch_bf16_to_float32"] = measure(
                reference, "import safetensors.torch as st",
                f"{{k: v.float() for k, v in st.load_file({str(bf16)!r}).items()}}", args.repeats)
            results["torch_f32"] = measure(reference, "import safetensors.torch as st",
                                           f"st.load_file({str(f32)!r})", args.repeats)
        else:
            results["torch"] = {"skipped": "TINYTORCH_REFERENCE_PYTHON is not set"}
    emit("io_safetensors", results)


if __name__ == "__main__":
    main()
