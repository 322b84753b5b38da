"""Neural-network building blocks, named as in ``torch.nn``."""

from . import init
from .activation import GELU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .batchnorm import BatchNorm1d
from .containers import ModuleDict, ModuleList, Sequential
from .layers import (
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GroupNorm,
    Identity,
    LayerNorm,
    Linear,
    RMSNorm,
)
from .loss import CrossEntropyLoss, DistillationLoss, KLDivLoss, MSELoss
from .module import Module, Parameter
from .summary import ModelSummary, summary

__all__ = [
    "Module", "Parameter", "Sequential", "ModuleList", "ModuleDict", "Linear", "Dense",
    "Embedding", "LayerNorm", "GroupNorm", "RMSNorm", "BatchNorm1d", "Dropout", "Flatten",
    "Identity", "ReLU", "GELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "CrossEntropyLoss", "MSELoss", "KLDivLoss", "DistillationLoss", "init", "summary",
    "ModelSummary",
]
