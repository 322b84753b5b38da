"""Utilities on modules, named as in ``torch.nn.utils``: `prune`."""

from . import prune

__all__ = ["prune"]
