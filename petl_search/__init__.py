"""petl-search: neural architecture search over the unified design space of parameter-efficient
transfer learning (He et al., ICLR 2022).

The public API (each name is imported on first use, so `import petl_search` stays light and the
layers below it can be imported without torch):
    PETLConfig, DeltaSpec       one point of the design space (plain data, canonical JSON)
    presets, preset(name)       the classical methods as points (houlsby, lora, prefix_tuning, mam, ...)
    count_params(config, cfg)   trained / stored Δh parameters, analytically
    apply_petl(model, config)   freeze a transformers model and add Δh
    save_petl / load_petl       petl_config.json + weights.safetensors, onto a fresh base model
    merge_petl(model)           fold linear Δh (LoRA) into the base weights
    train(config, task)         train one point on a task (TrainConfig says how)
    load_space / load_study     search spaces and study files (YAML)
    load(model, folder)         put an exported study result (Δh + task head) on a base model
    resolve_model(name)         a packaged model's folder (offline), else the name
    quiet_loading()             no weight-loading report while building a model whose head is loaded next

The package is layered; each layer imports only the ones before it (a test checks):
    core → nn → training → search → analysis → cli, export
"""
from __future__ import annotations

import importlib
from typing import Any

from .core.version import __version__

_EXPORTS = {
    "DeltaSpec": "core.config", "PETLConfig": "core.config", "SITES": "core.config",
    "PETLError": "core.errors", "PETLConfigError": "core.errors", "UnsupportedModelError": "core.errors",
    "PRESETS": "core.presets", "preset": "core.presets",
    "ParamCount": "core.params", "count_params": "core.params",
    "apply_petl": "nn.inject", "is_petl_parameter": "nn.inject", "petl_config": "nn.inject",
    "remove_petl": "nn.inject", "merge_petl": "nn.merge", "mergeable": "nn.merge",
    "save_petl": "nn.serialization", "load_petl": "nn.serialization",
    "TrainConfig": "training.config", "train": "training.trainer", "resolve_model": "training.models",
    "quiet_loading": "training.models",
    "load_space": "search.language.space", "load_study": "search.language.study",
    "load": "export",
}
_MODULES = {"presets": "core.presets"}

__all__ = sorted([*_EXPORTS, *_MODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _MODULES:
        value = importlib.import_module(f".{_MODULES[name]}", __name__)
    else:
        raise AttributeError(f"module 'petl_search' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
