"""Pruning, as ``torch.nn.utils.prune``, plus structured shrinking that makes a model smaller.

`masks` holds PyTorch's mask-based API (``l1_unstructured``, ``global_unstructured``,
``ln_structured``, ``remove``, ...); `structured` finds channel groups and physically removes
channels, neurons and attention heads (``shrink``).
"""

from .masks import (
    BasePruningMethod,
    CustomFromMask,
    Identity,
    L1Unstructured,
    LnStructured,
    RandomStructured,
    RandomUnstructured,
    custom_from_mask,
    global_unstructured,
    identity,
    is_pruned,
    l1_unstructured,
    ln_structured,
    random_structured,
    random_unstructured,
    remove,
)
from .structured import (
    NORM_TENSORS,
    ChannelSlice,
    LayerRule,
    StructuredGroup,
    channel_group,
    mask_groups,
    register_layer,
    register_structure,
    shrink,
    structured_groups,
)

__all__ = [
    "BasePruningMethod", "Identity", "RandomUnstructured", "L1Unstructured", "LnStructured",
    "RandomStructured", "CustomFromMask", "identity", "random_unstructured", "l1_unstructured",
    "ln_structured", "random_structured", "global_unstructured", "custom_from_mask", "remove",
    "is_pruned", "NORM_TENSORS", "ChannelSlice", "LayerRule", "StructuredGroup", "channel_group", "register_layer",
    "register_structure", "structured_groups", "mask_groups", "shrink",
]
