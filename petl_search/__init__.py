"""petl-search: neural architecture search over the unified design space of parameter-efficient
transfer learning (He et al., ICLR 2022).

The core API:
    PETLConfig, DeltaSpec       one point of the design space (plain data, canonical JSON)
    presets                     the classical methods as points (houlsby, lora, prefix_tuning, mam, ...)
    apply_petl(model, config)   freeze a transformers model and add Δh
    count_params(config, cfg)   trained / stored Δh parameters, analytically
    save_petl / load_petl       config.json + weights.safetensors, onto a fresh base model
    merge_petl(model)           fold linear Δh (LoRA) into the base weights
    load(model, folder)         put an exported study result (Δh + task head) on a base model
"""
__version__ = "0.1.0"

from .config import DeltaSpec, PETLConfig, SITES
from .errors import PETLConfigError, PETLError, UnsupportedModelError
from .presets import PRESETS, preset
from . import presets
from .params import ParamCount, count_params
from .inject import apply_petl, is_petl_parameter, petl_config, remove_petl
from .merge import merge_petl, mergeable
from .serialization import load_petl, save_petl
from .export import load

__all__ = [
    "DeltaSpec", "PETLConfig", "SITES", "PETLConfigError", "PETLError", "UnsupportedModelError", "PRESETS",
    "preset", "presets", "ParamCount", "count_params", "apply_petl", "is_petl_parameter", "petl_config",
    "remove_petl", "merge_petl", "mergeable", "save_petl", "load_petl", "load", "__version__",
]
