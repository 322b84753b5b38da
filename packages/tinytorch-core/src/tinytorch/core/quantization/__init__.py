"""Quantization: smaller weights, and the products that read them (``torch.ao`` / torchao names).

>>> from tinytorch.core.quantization import quantize_, Int8WeightOnlyConfig
"""

# ---- weight-only quantization for decoding, and quantized checkpoints (branch h/wonly) ----
from .serialization import (
    QUANTIZATION_KEY,
    SCHEME_VERSION,
    load_quantized,
    quantization_summary,
    register_scheme,
    registered_schemes,
    save_quantized,
)
from .weight_only import (
    BLOCK_BYTES,
    Int4WeightOnlyConfig,
    Int4WeightOnlyEmbedding,
    Int4WeightOnlyLinear,
    Int8WeightOnlyConfig,
    Int8WeightOnlyEmbedding,
    Int8WeightOnlyLinear,
    dequantize_int8_rows,
    dequantize_q4_0,
    quantize_,
    quantize_int8_rows,
    quantize_q4_0,
    weight_only_layers,
)

__all__ = [  # the weight-only names; the lead merges the other half's list here
    "BLOCK_BYTES", "Int8WeightOnlyLinear", "Int4WeightOnlyLinear", "Int8WeightOnlyEmbedding",
    "Int4WeightOnlyEmbedding", "Int8WeightOnlyConfig", "Int4WeightOnlyConfig", "quantize_",
    "quantize_int8_rows", "dequantize_int8_rows", "quantize_q4_0", "dequantize_q4_0",
    "weight_only_layers", "QUANTIZATION_KEY", "SCHEME_VERSION", "save_quantized", "load_quantized",
    "quantization_summary", "register_scheme", "registered_schemes",
]
# ---- end of the weight-only block ----
