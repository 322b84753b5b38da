"""tinytorch.vision: convolutional networks and image data sets, built on tinytorch.core.

>>> import numpy as np
>>> from tinytorch.core import Tensor
>>> from tinytorch.vision import SmallCNN
>>> SmallCNN((1, 28, 28), num_classes=10)(Tensor(np.zeros((4, 1, 28, 28), dtype=np.float32))).shape
(4, 10)
"""

from importlib import metadata as _metadata

from . import functional, transforms
from .datasets import CIFAR10, MNIST, FashionMNIST, data_root, dataset_status, read_idx, write_idx
from .layers import (
    AdaptiveAvgPool2d,
    AvgPool2D,
    AvgPool2d,
    BatchNorm2D,
    BatchNorm2d,
    Conv1D,
    Conv1d,
    Conv2D,
    Conv2d,
    GlobalAvgPool2d,
    MaxPool2D,
    MaxPool2d,
)
from .models import MLP, DeepCNN, SmallCNN, WideCNN, build_model
from .quantized import QuantizedConv2d  # registers Conv2d with core's quantization registry
from .transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip

__version__ = _metadata.version("tinytorch-vision")  # the one source: pyproject.toml

__all__ = [
    "Conv1d", "Conv1D", "Conv2d", "Conv2D", "MaxPool2d", "MaxPool2D", "AvgPool2d", "AvgPool2D", "AdaptiveAvgPool2d",
    "GlobalAvgPool2d", "BatchNorm2d", "BatchNorm2D", "functional", "transforms", "MNIST",
    "FashionMNIST", "CIFAR10", "data_root", "dataset_status", "read_idx", "write_idx", "SmallCNN",
    "DeepCNN", "WideCNN", "MLP", "build_model", "Compose", "Normalize", "RandomCrop",
    "RandomHorizontalFlip", "QuantizedConv2d",
]
