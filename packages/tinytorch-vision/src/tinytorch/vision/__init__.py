"""tinytorch.vision — filled in by its own issue."""
