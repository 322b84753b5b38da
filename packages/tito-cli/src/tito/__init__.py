"""The `tito` command: a click group assembled from the `tito.commands` entry points."""
