"""The `tito` command: a click group assembled from the `tito.commands` entry points."""

from importlib import metadata as _metadata

__version__ = _metadata.version("tito-cli")  # the one source: pyproject.toml
