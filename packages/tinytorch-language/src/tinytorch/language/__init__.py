"""tinytorch.language — filled in by its own issue."""
