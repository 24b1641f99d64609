"""The one place petl-search reaches into transformers past its public API, with the versions it was
checked against. It must not grow into a copy of modeling code: it only finds things.

Eager attention. Transformers 5 routes attention through `AttentionInterface` (`ALL_ATTENTION_FUNCTIONS`),
which holds sdpa, flash and flex attention but not eager, by design: each modeling file defines its own
`eager_attention_forward` (Llama's repeats its key/value heads for grouped queries, ...) and passes it
as the default of `ALL_ATTENTION_FUNCTIONS.get_interface(config._attn_implementation, eager_attention_forward)`.
Our registered `petl_eager` must call that same function, and no public route reaches it, so it is read
off the module that defines the attention module's class. Checked in the source of transformers 5.25.0
(BERT, RoBERTa, BART, GPT-2, Llama); `check_transformers_version` warns outside 5.x.

The attention implementation in use. Transformers 5 sets it with the public `set_attn_implementation` but
reads it only through the config's private property `_attn_implementation`: `attn_implementation(model)`.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

import torch
import transformers

from ..core.errors import PETLError
from ..core.version import checked_major, major

CHECKED_TRANSFORMERS = "5.25.0"  # the transformers whose modeling files were read for what this module finds
CHECKED_TRANSFORMERS_MAJOR = major(CHECKED_TRANSFORMERS)
EAGER_NAME = "eager_attention_forward"  # the name each modeling file gives its eager attention


def check_transformers_version(version: str = transformers.__version__) -> bool:
    """Whether `version` is a transformers major release this module knows; warns if not."""
    return checked_major("transformers", version, CHECKED_TRANSFORMERS,
                         relies="petl-search's look-ups of each model's eager attention (nn/transformers_compat.py)",
                         risk="attn_implementation='eager' may fail or differ from the model's own")


check_transformers_version()


def eager_attention_of(module: torch.nn.Module) -> Callable[..., Any]:
    """The eager attention function of `module`'s own modeling file: the one its forward calls when the
    model's attention implementation is 'eager'."""
    cls = type(module)
    eager = getattr(sys.modules.get(cls.__module__), EAGER_NAME, None)
    if not callable(eager):
        raise PETLError(f"{cls.__name__} (in {cls.__module__}) has no module-level `{EAGER_NAME}`, which petl's "
                        f"eager attention calls (a layout of transformers {CHECKED_TRANSFORMERS_MAJOR}.x, checked "
                        f"with {CHECKED_TRANSFORMERS}; installed: {transformers.__version__}); use "
                        f"attn_implementation='sdpa' for this model")
    return eager


def attn_implementation(model: torch.nn.Module) -> str:
    """The name of the attention implementation `model` runs ('sdpa', 'eager', or one we registered)."""
    return model.config._attn_implementation
