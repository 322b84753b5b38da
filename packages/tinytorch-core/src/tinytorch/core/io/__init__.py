"""Checkpoints in the safetensors format: arrays plus JSON metadata, and no pickle anywhere.

A checkpoint is one ``.safetensors`` file: an 8-byte little-endian header length, a JSON header
naming each tensor's dtype, shape and byte range, then the raw little-endian bytes. Loading one
never executes code, unlike ``torch.load`` on a pickle. This module reads and writes the format
itself (the header is validated before any data is read), so it also reads what other writers
(PyTorch through ``safetensors``, ``transformers``) produce:

- **Every dtype of the format** (:data:`SAFETENSORS_DTYPES`) is understood from the header alone
  by :func:`inspect` and :func:`tensor_shapes`: shape, dtype, bytes, parameter count.
- :func:`load` returns NumPy's own dtypes as they are (``F16`` as float16), widens ``BF16`` and
  the 8-bit floats (``F8_E4M3``, ``F8_E5M2``, their ``FNUZ`` variants, ``F8_E8M0``) to float32
  exactly, or hands their raw bits over (``bf16="raw"``, ``f8="raw"``). Each tensor is read
  straight into its own array, so loading needs the memory of the arrays, not of the file too;
  ``keys=`` reads only some tensors. The 4- and 6-bit floats are refused by name.
- :func:`save` writes atomically (temp file in the same directory, fsync, ``os.replace``, fsync
  of the directory), so a crash or an exception mid-save leaves the previous checkpoint intact.
  ``float_dtype="bfloat16"`` (or ``"float16"``) stores floating arrays narrowed, rounded to
  nearest even.
- **Tied weights** (two names holding the same array, as ``TinyGPT``'s ``wte.weight`` and
  ``lm_head.weight``) are stored once; the other name is recorded in the metadata key
  ``tinytorch.aliases``, and :func:`load` gives both names the same array. The format forbids
  two tensors sharing bytes, so other writers drop the second name (``transformers``) or record
  it as a metadata entry ``{dropped name: kept name}`` (``safetensors.torch.save_model``), which
  :func:`load` resolves too.
- **Hostile files** end in one error naming the file, never a hang or a flood: every reader
  refuses what is not a regular file before opening it (:func:`check_regular_file`: a FIFO
  would block forever), the header may not declare shapes NumPy cannot allocate, numbers over
  4,300 digits or JSON nested over 64 levels, :func:`load` refuses tensors larger than the
  machine's RAM and swap before allocating, and messages quote the file's values shortened.
- Metadata values are any JSON-serialisable objects. safetensors only stores ``dict[str, str]``,
  so each value is stored JSON-encoded under its key, next to two automatic keys:
  ``tinytorch.format_version`` and ``tinytorch.versions`` (the installed TinyTorch distributions).
  A file without ``tinytorch.format_version`` comes from another writer: its metadata values are
  returned as the strings they are (``{"format": "pt"}``), never JSON-decoded.

>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
>>> save({"w": np.eye(2, dtype=np.float32)}, path, metadata={"epoch": 3, "config": {"d": 2}})
>>> state, meta = load(path)
>>> state["w"].dtype, meta["epoch"], meta["config"]
(dtype('float32'), 3, {'d': 2})
"""

import os  # noqa: F401 - callers' tests patch io.os.replace / io.os.fsync (the one os module)
import tempfile  # noqa: F401 - and io.tempfile.NamedTemporaryFile

from .atomic import (
    DestinationError,
    NotRegularFileError,
    check_destination,
    check_regular_file,
    write_atomic,
)
from .dtypes import SAFETENSORS_DTYPES, bfloat16_to_float32, float8_to_float32, float32_to_bfloat16
from .safetensors import (
    ALIASES_KEY,
    FORMAT_VERSION,
    CheckpointInfo,
    TensorInfo,
    _natural_key,  # noqa: F401 - the natural sort order, used by tests
    inspect,
    load,
    load_metadata,
    save,
    tensor_shapes,
    write_safetensors,
)
from .state import CheckpointError, StateCheck, check_state, flatten_state, require, unflatten_state

__all__ = [
    "CheckpointError", "CheckpointInfo", "TensorInfo", "StateCheck", "save", "load",
    "load_metadata", "inspect", "check_state", "flatten_state", "unflatten_state",
    "FORMAT_VERSION", "DestinationError", "check_destination", "write_atomic", "require",
    "tensor_shapes", "SAFETENSORS_DTYPES", "ALIASES_KEY", "bfloat16_to_float32",
    "float32_to_bfloat16", "float8_to_float32", "write_safetensors", "check_regular_file",
    "NotRegularFileError",
]
