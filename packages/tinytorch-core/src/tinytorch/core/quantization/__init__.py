"""Quantization in the ``torch.ao.quantization`` style: quantized tensors, observers, fake
quantization for QAT, quantized layers with exact integer GEMMs, and the model workflows; and,
after torchao, weight-only int8/int4 layers for decoding (``quantize_``) and quantized checkpoints.

>>> import numpy as np
>>> from tinytorch.core import nn
>>> from tinytorch.core.quantization import quantize_dynamic
>>> model = quantize_dynamic(nn.Sequential(nn.Linear(8, 8), nn.ReLU()), {nn.Linear})
>>> model[0]
QuantizedLinear(in_features=8, out_features=8, int8 weights, dynamic)
"""

from .api import (
    Int8DynamicActivationInt8WeightConfig,
    Int8StaticActivationInt8WeightConfig,
    ObservedModule,
    QConfig,
    convert,
    default_qat_qconfig,
    default_qconfig,
    prepare,
    prepare_qat,
    quantize_dynamic,
)
from .fake_quantize import (
    FakeQuantize,
    FakeQuantizeFunction,
    disable_fake_quant,
    disable_observer,
    enable_fake_quant,
    enable_observer,
    fake_quantize_per_channel_affine,
    fake_quantize_per_tensor_affine,
)
from .functional import (
    QDTYPES,
    QTensor,
    choose_qparams,
    chunked_mm,
    dequantize,
    int_mm,
    int_mm_exact,
    one_gemm_is_exact,
    pack_int4,
    quantize_per_channel,
    quantize_per_tensor,
    rows_fit_one_gemm,
    unpack_int4,
)
from .modules import QuantizedGEMM, QuantizedLinear
from .observers import (
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    ObserverBase,
    PerChannelMinMaxObserver,
)
from .registry import (
    get_quantized_module_class,
    quantized_module_mappings,
    register_quantized_module,
)
from .serialization import (
    QUANTIZATION_KEY,
    SCHEME_VERSION,
    load_quantized,
    quantization_summary,
    quantized_weight_count,
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

__all__ = [
    # quantized tensors (functional.py)
    "QDTYPES", "QTensor", "quantize_per_tensor", "quantize_per_channel", "dequantize", "choose_qparams",
    "pack_int4", "unpack_int4", "int_mm", "int_mm_exact", "one_gemm_is_exact", "rows_fit_one_gemm", "chunked_mm",
    # observers (observers.py)
    "ObserverBase", "MinMaxObserver", "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver",
    "HistogramObserver",
    # fake quantization (fake_quantize.py)
    "FakeQuantize", "FakeQuantizeFunction", "fake_quantize_per_tensor_affine",
    "fake_quantize_per_channel_affine", "enable_observer", "disable_observer", "enable_fake_quant",
    "disable_fake_quant",
    # quantized layers and their registry (modules.py, registry.py)
    "QuantizedGEMM", "QuantizedLinear", "register_quantized_module", "get_quantized_module_class",
    "quantized_module_mappings",
    # workflows (api.py)
    "QConfig", "default_qconfig", "default_qat_qconfig", "ObservedModule", "prepare", "prepare_qat",
    "convert", "quantize_dynamic", "Int8DynamicActivationInt8WeightConfig", "Int8StaticActivationInt8WeightConfig",
    # weight-only quantization for decoding, torchao's quantize_ (weight_only.py)
    "BLOCK_BYTES", "Int8WeightOnlyLinear", "Int4WeightOnlyLinear", "Int8WeightOnlyEmbedding",
    "Int4WeightOnlyEmbedding", "Int8WeightOnlyConfig", "Int4WeightOnlyConfig", "quantize_",
    "quantize_int8_rows", "dequantize_int8_rows", "quantize_q4_0", "dequantize_q4_0", "weight_only_layers",
    # quantized checkpoints and their scheme registry (serialization.py)
    "QUANTIZATION_KEY", "SCHEME_VERSION", "save_quantized", "load_quantized", "quantization_summary",
    "quantized_weight_count", "register_scheme", "registered_schemes",
]
