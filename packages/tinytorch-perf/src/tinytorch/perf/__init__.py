"""tinytorch.perf: why is my model slow? Hardware ceilings, exact FLOPs, rooflines, profiles.

>>> from tinytorch.perf import get_hardware_spec, FLOPsCounter, RooflineModel, ModelProfiler
>>> FLOPsCounter().linear(1, 784, 128).matmul_flops   # 1 multiply-add = 2 FLOPs
200704
"""

from importlib import metadata as _metadata

from .benchmark import (
    BenchmarkReport,
    BenchmarkSettings,
    BenchmarkTarget,
    compare_reports,
    load_target,
    read_report,
    run_benchmark,
)
from .flop_formulas import CONVENTION, OpCount
from .flops import FLOPsCounter, TraceResult
from .hardware import HardwareSpec, get_hardware_spec
from .models import available_models, load_model, register_model
from .profiler import LayerProfile, ModelProfiler, ProfileResult, compare
from .roofline import RooflineModel, RooflinePoint

__version__ = _metadata.version("tinytorch-perf")  # the one source: pyproject.toml

__all__ = [
    "get_hardware_spec", "HardwareSpec", "FLOPsCounter", "OpCount", "TraceResult", "CONVENTION",
    "RooflineModel", "RooflinePoint", "ModelProfiler", "ProfileResult", "LayerProfile",
    "compare", "available_models", "load_model", "register_model",
    "run_benchmark", "BenchmarkSettings", "BenchmarkTarget", "BenchmarkReport", "compare_reports",
    "read_report", "load_target",
]
