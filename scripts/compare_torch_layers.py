"""Compare TinyTorch's PyTorch-named layers with torch.nn, live: state dicts, outputs, gradients.

For each case the reference interpreter (``$TINYTORCH_REFERENCE_PYTHON``, which has torch) builds
the torch.nn layer, randomizes its parameters, saves ``{k: v.numpy() for k, v in
layer.state_dict().items()}``, runs forward (training mode, twice for BatchNorm, then eval) and
backward with a fixed upstream gradient. This script then builds the TinyTorch layer with the
same arguments, loads that state dict with ``load_state_dict`` (strict: same names, shapes and
dtypes), runs the same inputs and prints the largest absolute differences as JSON.

    TINYTORCH_REFERENCE_PYTHON=/root/.venvs/ref/bin/python \\
        python3 -m uv run python scripts/compare_torch_layers.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tinytorch.core import Tensor, nn
from tinytorch.core.nn.parallel import SyncBatchNorm
from tinytorch.vision import BatchNorm2d, Conv1d, Conv2d

# (torch class, kwargs, input shape, training steps); integer inputs for Embedding
CASES = [
    *[("Conv1d", dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=2, groups=2,
                      padding_mode=mode), (2, 4, 9), 1) for mode in ("zeros", "reflect", "replicate", "circular")],
    ("Conv1d", dict(in_channels=3, out_channels=5, kernel_size=4, padding="same", dilation=1,
                    padding_mode="reflect"), (2, 3, 8), 1),
    ("Conv1d", dict(in_channels=3, out_channels=5, kernel_size=3, dilation=2, bias=False), (2, 3, 10), 1),
    *[("Conv2d", dict(in_channels=4, out_channels=6, kernel_size=3, stride=(1, 2), padding=(2, 1),
                      groups=2, padding_mode=mode), (2, 4, 5, 7), 1)
      for mode in ("zeros", "reflect", "replicate", "circular")],
    ("Conv2d", dict(in_channels=3, out_channels=4, kernel_size=(4, 2), padding="same"), (2, 3, 6, 5), 1),
    ("Conv2d", dict(in_channels=3, out_channels=4, kernel_size=3, padding="same", dilation=2,
                    padding_mode="circular"), (2, 3, 6, 5), 1),
    ("BatchNorm1d", dict(num_features=5), (8, 5), 2),
    ("BatchNorm1d", dict(num_features=5, momentum=None), (4, 5, 6), 3),
    ("BatchNorm1d", dict(num_features=5, affine=False), (4, 5, 6), 2),
    ("BatchNorm1d", dict(num_features=5, bias=False), (4, 5), 2),
    ("BatchNorm2d", dict(num_features=3), (4, 3, 5, 5), 2),
    ("SyncBatchNorm", dict(num_features=3), (4, 3, 5, 5), 2),
    ("GroupNorm", dict(num_groups=3, num_channels=6), (2, 6, 5), 1),
    ("GroupNorm", dict(num_groups=2, num_channels=6), (2, 6, 4, 3), 1),
    ("GroupNorm", dict(num_groups=6, num_channels=6, affine=False), (2, 6, 4), 1),
    ("RMSNorm", dict(normalized_shape=(3, 4)), (2, 5, 3, 4), 1),
    ("RMSNorm", dict(normalized_shape=4, eps=1e-3, elementwise_affine=False), (2, 5, 4), 1),
    ("Embedding", dict(num_embeddings=10, embedding_dim=4, padding_idx=-2), (3, 7), 1),
    ("Embedding", dict(num_embeddings=10, embedding_dim=4, padding_idx=0), (3, 7), 1),
]

OURS = {"Conv1d": Conv1d, "Conv2d": Conv2d, "BatchNorm1d": nn.BatchNorm1d, "BatchNorm2d": BatchNorm2d,
        "SyncBatchNorm": SyncBatchNorm, "GroupNorm": nn.GroupNorm, "RMSNorm": nn.RMSNorm,
        "Embedding": nn.Embedding}

TORCH_SIDE = r'''
import json, sys
import numpy as np
import torch
cases, dtype_name, out_dir = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
dtype = getattr(torch, dtype_name)
for i, (name, kwargs, shape, steps) in enumerate(cases):
    torch.manual_seed(i)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    layer = getattr(torch.nn, name)(**kwargs, dtype=dtype)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn_like(p))
    state = {"state." + k: v.numpy().copy() for k, v in layer.state_dict().items()}
    rng = np.random.default_rng(i)
    saved = dict(state)
    for step in range(steps):
        if name == "Embedding":
            x = torch.from_numpy(rng.integers(0, kwargs["num_embeddings"], size=shape))
        else:
            x = torch.from_numpy(rng.normal(size=shape)).to(dtype).requires_grad_(True)
        layer.zero_grad()
        out = layer(x)
        up = torch.from_numpy(rng.uniform(-1.5, 1.5, size=tuple(out.shape))).to(dtype)
        (out * up).sum().backward()
        saved[f"x{step}"], saved[f"up{step}"], saved[f"out{step}"] = x.detach().numpy(), up.numpy(), out.detach().numpy()
        if x.dtype.is_floating_point:
            saved[f"gx{step}"] = x.grad.numpy()
        for k, p in layer.named_parameters():
            saved[f"g.{k}{step}"] = p.grad.numpy().copy()
    saved.update({"after." + k: v.numpy().copy() for k, v in layer.state_dict().items()})
    if name.startswith(("BatchNorm", "SyncBatchNorm")):
        layer.eval()
        with torch.no_grad():
            saved["eval_out"] = layer(torch.from_numpy(saved["x0"])).numpy()
    np.savez(f"{out_dir}/case{i}.npz", **saved)
'''


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise AssertionError(f"shape {a.shape} vs torch {b.shape}")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def compare(dtype_name: str, reference: str) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([reference, "-c", TORCH_SIDE, json.dumps(CASES), dtype_name, tmp], check=True)
        rows = []
        for i, (name, kwargs, shape, steps) in enumerate(CASES):
            ref = dict(np.load(Path(tmp) / f"case{i}.npz"))
            layer = OURS[name](**kwargs, dtype=np.dtype(dtype_name))
            state = {k[len("state."):]: v for k, v in ref.items() if k.startswith("state.")}
            layer.load_state_dict(state)  # strict: every name, shape and dtype as torch's
            for k, v in layer.state_dict().items():
                if v.dtype != state[k].dtype:
                    raise AssertionError(f"{name}.{k}: dtype {v.dtype} vs torch {state[k].dtype}")
            row = {"layer": name, "kwargs": kwargs, "input": list(shape), "out": 0.0, "grad": 0.0}
            for step in range(steps):
                x_ref = ref[f"x{step}"]
                x = Tensor(x_ref, requires_grad=x_ref.dtype.kind == "f") if x_ref.dtype.kind == "f" else x_ref
                layer.zero_grad()
                out = layer(x)
                (out * Tensor(ref[f"up{step}"])).sum().backward()
                row["out"] = max(row["out"], _max_diff(out.numpy(), ref[f"out{step}"]))
                grads = [(x.grad, ref[f"gx{step}"])] if isinstance(x, Tensor) else []
                grads += [(p.grad, ref[f"g.{k}{step}"]) for k, p in layer.named_parameters()]
                row["grad"] = max([row["grad"]] + [_max_diff(g, r) for g, r in grads])
            after = {k[len("after."):]: v for k, v in ref.items() if k.startswith("after.")}
            mine = layer.state_dict()
            row["state_after"] = max([0.0] + [_max_diff(mine[k], v) for k, v in after.items()])
            if "eval_out" in ref:
                layer.eval()
                row["eval_out"] = _max_diff(layer(Tensor(ref["x0"])).numpy(), ref["eval_out"])
            rows.append(row)
        return rows


def main() -> None:
    reference = os.environ.get("TINYTORCH_REFERENCE_PYTHON")
    if not reference:
        sys.exit("set TINYTORCH_REFERENCE_PYTHON to an interpreter that has torch")
    result = {}
    for dtype_name in ("float64", "float32"):
        rows = compare(dtype_name, reference)
        result[dtype_name] = {"max_abs_diff": {key: max(r.get(key, 0.0) for r in rows)
                                               for key in ("out", "grad", "state_after", "eval_out")},
                              "cases": rows}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
