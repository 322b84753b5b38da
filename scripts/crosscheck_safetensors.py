"""Cross-check tinytorch.core.io with PyTorch + safetensors, live, in both directions.

1. The reference interpreter (``$TINYTORCH_REFERENCE_PYTHON``, which has torch and safetensors)
   writes random tensors in BF16, F16 and every 8-bit float torch has with
   ``safetensors.torch.save_file``, a tied-embedding model with ``safetensors.torch.save_model``,
   and, as ``.npy`` files, the float32 values torch widens them to.
2. This script loads those files with ``tinytorch.core.io.load`` and reports the largest
   difference from torch's values (and whether NaN/inf land on the same elements), then rounds
   the same float32 values to bfloat16 with ``float32_to_bfloat16`` and counts the bit patterns
   that differ from torch's ``.bfloat16()``.
3. It writes BF16 (``float_dtype="bfloat16"``), F16 and tied weights with ``io.save``; the
   reference interpreter reads them with ``safetensors.torch.load_file`` and reports the same.

Without ``$TINYTORCH_REFERENCE_PYTHON`` it prints ``{"skipped": ...}`` and exits 0.

    TINYTORCH_REFERENCE_PYTHON=/root/.venvs/ref/bin/python \\
        python3 -m uv run python scripts/crosscheck_safetensors.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tinytorch.core import io

F8_TORCH = {"e4m3": ("float8_e4m3fn", "F8_E4M3"), "e5m2": ("float8_e5m2", "F8_E5M2"),
            "e4m3fnuz": ("float8_e4m3fnuz", "F8_E4M3FNUZ"), "e5m2fnuz": ("float8_e5m2fnuz", "F8_E5M2FNUZ"),
            "e8m0": ("float8_e8m0fnu", "F8_E8M0")}

WRITE = r"""
import json, sys, numpy as np, torch
from safetensors.torch import save_file, save_model
out = sys.argv[1]
torch.manual_seed(0)
x = torch.randn(512, 64) * torch.logspace(-6, 6, 64)  # columns from 1e-6 to 1e6
x[0, :6] = torch.tensor([float("inf"), float("-inf"), float("nan"), 0.0, -0.0, 3.4e38])
tensors = {"bf16": x.bfloat16(), "f16": x.half()}
names = {}
for key, (torch_name, tag) in F8.items():
    dtype = getattr(torch, torch_name, None)
    if dtype is None:
        continue
    source = x.abs() if key == "e8m0" else x
    try:
        tensors[key] = source.to(dtype)
    except Exception as e:  # a conversion this torch lacks
        print(f"skip {key}: {e}", file=sys.stderr)
        continue
    names[key] = tag
save_file(tensors, f"{out}/torch.safetensors", metadata={"format": "pt"})
for key, t in tensors.items():
    np.save(f"{out}/ref_{key}.npy", t.float().numpy())
np.save(f"{out}/x.npy", x.numpy())
np.save(f"{out}/x_bf16_bits.npy", x.bfloat16().view(torch.int16).numpy().view(np.uint16))

class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(50, 8)
        self.lm_head = torch.nn.Linear(8, 50, bias=False)
        self.lm_head.weight = self.wte.weight
tied = Tied()
save_model(tied, f"{out}/tied.safetensors")
np.save(f"{out}/ref_tied.npy", tied.wte.weight.detach().numpy())
print(json.dumps({"torch": torch.__version__, "safetensors": __import__("safetensors").__version__,
                  "written": sorted(tensors), "f8_tags": names}))
"""

READ = r"""
import json, sys, numpy as np, torch
from safetensors.torch import load_file
from safetensors import safe_open
out = sys.argv[1]
x = torch.from_numpy(np.load(f"{out}/x.npy"))
result = {}
for name, want in [("ours_bf16", x.bfloat16()), ("ours_f16", x.half())]:
    got = load_file(f"{out}/{name}.safetensors")["x"]
    nan = torch.isnan(x)
    result[name] = {"dtype": str(got.dtype), "bit_mismatches_non_nan": int(
        (got.view(torch.int16) != want.view(torch.int16))[~nan].sum()),
        "nan_stays_nan": bool(torch.isnan(got.float())[nan].all())}
tied = load_file(f"{out}/ours_tied.safetensors")
with safe_open(f"{out}/ours_tied.safetensors", "pt") as f:
    meta = f.metadata()
result["ours_tied"] = {"tensors": sorted(tied), "aliases": json.loads(meta["tinytorch.aliases"]),
                       "max_abs_diff": float((tied["wte.weight"] - torch.from_numpy(
                           np.load(f"{out}/ref_tied.npy"))).abs().max())}
print(json.dumps(result))
"""


def _reference(python: str, code: str, out: Path) -> dict:
    proc = subprocess.run([python, "-c", f"F8 = {F8_TORCH!r}\n" + code, str(out)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"reference interpreter failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _compare(got: np.ndarray, want: np.ndarray) -> dict:
    with np.errstate(invalid="ignore"):  # NumPy warns when it casts a float16 NaN
        got64, want64 = got.astype(np.float64), want.astype(np.float64)
    finite = np.isfinite(want64)
    return {
        "dtype_loaded": str(got.dtype),
        "elements": int(want.size),
        "max_abs_diff_finite": float(np.max(np.abs(got64[finite] - want64[finite]), initial=0.0)),
        "same_nan": bool(np.array_equal(np.isnan(got64), np.isnan(want64))),
        "same_inf": bool(np.array_equal(np.where(np.isinf(got64), np.sign(got64), 0),
                                        np.where(np.isinf(want64), np.sign(want64), 0))),
        "infinities": int(np.isinf(want64).sum()), "nans": int(np.isnan(want64).sum()),
        "bit_identical_float32": bool(np.array_equal(
            np.where(np.isnan(got64), 0, got.astype(np.float32)).view(np.uint32),
            np.where(np.isnan(want64), 0, want.astype(np.float32)).view(np.uint32))),
    }


def main() -> None:
    python = os.environ.get("TINYTORCH_REFERENCE_PYTHON")
    if not python:
        print(json.dumps({"skipped": "TINYTORCH_REFERENCE_PYTHON is not set (point it at a "
                                     "Python with torch and safetensors)"}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        written = _reference(python, WRITE, out)
        report: dict = {"reference": {k: written[k] for k in ("torch", "safetensors")},
                        "torch_to_tinytorch": {}}
        state, meta = io.load(out / "torch.safetensors")
        info = {t.name: t.dtype for t in io.inspect(out / "torch.safetensors").tensors}
        report["torch_to_tinytorch"]["metadata"] = meta
        for key in written["written"]:
            entry = {"stored_as": info[key], **_compare(state[key], np.load(out / f"ref_{key}.npy"))}
            report["torch_to_tinytorch"][key] = entry
        raw = io.load(out / "torch.safetensors", bf16="raw", f8="raw")[0]
        report["torch_to_tinytorch"]["raw_dtypes"] = {k: str(v.dtype) for k, v in raw.items()}

        tied, tied_meta = io.load(out / "tied.safetensors")
        aliases = io.inspect(out / "tied.safetensors").aliases
        (alias, stored), = aliases.items()
        report["torch_to_tinytorch"]["tied_save_model"] = {
            "stored": sorted(set(tied) - set(aliases)), "aliases": aliases,
            "one_array": tied[alias] is tied[stored],
            "max_abs_diff": float(np.max(np.abs(tied[stored] - np.load(out / "ref_tied.npy")))),
        }

        x = np.load(out / "x.npy")
        ours_bits, torch_bits = io.float32_to_bfloat16(x), np.load(out / "x_bf16_bits.npy")
        nan = np.isnan(x)
        report["float32_to_bfloat16_vs_torch"] = {
            "elements": int(x.size),
            "bit_mismatches_non_nan": int(np.sum(ours_bits[~nan] != torch_bits[~nan])),
            # NaN payloads differ: torch's vectorised CPU cast writes 0xFFFF, ours the quiet 0x7FC0
            "nan_patterns": {"ours": sorted({hex(b) for b in ours_bits[nan]}),
                             "torch": sorted({hex(b) for b in torch_bits[nan]})}}

        io.save({"x": x}, out / "ours_bf16.safetensors", float_dtype="bfloat16")
        io.save({"x": x}, out / "ours_f16.safetensors", float_dtype="float16")
        wte = np.load(out / "ref_tied.npy")
        io.save({"wte.weight": wte, "lm_head.weight": wte}, out / "ours_tied.safetensors")
        report["tinytorch_to_torch"] = _reference(python, READ, out)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
