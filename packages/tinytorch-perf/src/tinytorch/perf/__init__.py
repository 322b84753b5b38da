"""tinytorch.perf — filled in by its own issue."""
