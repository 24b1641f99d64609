"""The lowest layer: the unified design space as plain data, and what can be said about a point of it
without building a model (validation, presets, where each Δh goes, exact parameter counts).

Nothing here imports torch at import time (counting the backbone builds it on the meta device, on
first use), so the search space, study files and the CLI read configurations without loading torch.
Layers above: nn (Δh modules) → training → search → analysis → cli / export.
"""
