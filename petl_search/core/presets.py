"""The classical PETL methods, each one point of the unified design space (one place for all of them).

    houlsby                  sequential bottleneck after attention and after the FFN (Houlsby et al. 2019)
    houlsby_ffn              Houlsby's sequential bottleneck after the FFN only: LN(x + h + Δ(h))
    pfeiffer                 one bottleneck after the FFN that reads the frozen Add&Norm's output and is
                             added before that norm, LN(x + h + Δ(LN(x + h))) (Pfeiffer et al. 2021,
                             AdapterHub's SeqBnConfig, He et al.'s `--ffn_option pfeiffer`)
    prefix_tuning            prefix attention on every head (Li & Liang 2021)
    lora                     linear low-rank Δ on the q and v projections, scaled by s (Hu et al. 2021: s = alpha/r)
    parallel_adapter         parallel bottleneck on the FFN (He et al. 2022, "PA")
    scaled_parallel_adapter  the same, composed as h + s·Δh
    mh_parallel_adapter      multi-head parallel bottleneck on the head attention ("MH PA")
    mam                      prefix (l=30) on attention + scaled PA (r=512, s=4) on the FFN

Sizes are arguments; defaults are the papers' (MAM's are He et al.'s own run scripts: a prefix MLP of
width 800 and the adapter's W_down initialised as LoRA's A). When a study fits a preset to its budget,
only the size changes (`SIZE_ARGUMENT`): LoRA's scale s stays what it is at r=8 (alpha=16: s=2) instead
of falling as 16/r, so a LoRA fitted to 5% of MiniLM (r≈123) is not scaled down 15×.

Arguments are checked under the preset's own names before a point is built (`ARGUMENTS`: one rule per
argument name, shared by every preset that takes it), so `lora(r=-3)` says "lora: r must be a positive
integer, but got -3", not which DeltaSpec field r became. This module must not import torch.
"""
from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable

from .architectures import geometry
from .config import ACTIVATION_ALIASES, ACTIVATIONS, INITS, PROJECTIONS, PETLConfig, SITES
from .errors import PETLConfigError, rule


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _projections(value: Any) -> bool:
    values = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    return bool(values) and all(v in PROJECTIONS for v in values) and len(set(values)) == len(values)


# Every preset argument by name: the rule in words, and its check (None also passes where it is the default).
ARGUMENTS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    **{name: ("a positive integer", _positive_int) for name in ("r", "l", "r_per_head", "heads", "prefix_len", "ffn_r")},
    "s": ("a positive finite number", _positive_number),
    "alpha": ("a positive finite number (s = alpha / r)", _positive_number),
    "reparam": ("a positive integer (the prefix MLP's width) or null (no MLP)", lambda v: v is None or _positive_int(v)),
    "activation": (f"one of {list(ACTIVATIONS)}", lambda v: v in ACTIVATIONS or v in ACTIVATION_ALIASES),
    "init": (f"one of {list(INITS)}", lambda v: v in INITS),
    "site": (f"one of {list(SITES)}", lambda v: v in SITES),
    "projections": (f"a non-empty list of distinct values from {list(PROJECTIONS)}", _projections),
}


def _checked(build: Callable[..., PETLConfig]) -> Callable[..., PETLConfig]:
    """Check a preset's arguments by their own names (ARGUMENTS) before it builds its point."""
    signature = inspect.signature(build)

    @functools.wraps(build)
    def checked(*args: Any, **kwargs: Any) -> PETLConfig:
        bound = signature.bind(*args, **kwargs)  # a wrong keyword: TypeError, which preset() words
        for name, value in bound.arguments.items():
            requirement, ok = ARGUMENTS[name]
            if not (value is None and signature.parameters[name].default is None) and not ok(value):
                raise rule(f"{build.__name__}: {name}", requirement, value)
        return build(*args, **kwargs)

    return checked


@_checked
def houlsby(r: int = 64, *, activation: str = "relu") -> PETLConfig:
    adapter = dict(form="bottleneck", size=r, insertion="sequential", activation=activation)
    return PETLConfig(attn_out=dict(**adapter), ffn=dict(**adapter))


@_checked
def houlsby_ffn(r: int = 64, *, activation: str = "relu") -> PETLConfig:
    """Houlsby's adapter on the FFN only: Δh reads the FFN's output h (this was `pfeiffer` before 0.2)."""
    return PETLConfig(ffn=dict(form="bottleneck", size=r, insertion="sequential", activation=activation))


@_checked
def pfeiffer(r: int = 64, *, activation: str = "relu") -> PETLConfig:
    """Pfeiffer et al. 2021: Δh reads LN(x + h), the output of the FFN's frozen Add&Norm, and the same
    frozen norm is applied again to x + h + Δh (in a pre-norm model, where no norm follows the add, Δh
    reads x + h, as AdapterHub's SeqBnConfig does there)."""
    return PETLConfig(ffn=dict(form="bottleneck", size=r, insertion="after_norm", activation=activation))


@_checked
def prefix_tuning(l: int = 30, *, reparam: int | None = 512) -> PETLConfig:  # noqa: E741 (the paper's name)
    return PETLConfig(attn_heads=dict(form="prefix", size=l, reparam=reparam))


@_checked
def lora(r: int = 8, *, s: float | None = None, alpha: float | None = None,
         projections: tuple[str, ...] = ("q", "v")) -> PETLConfig:
    """LoRA: Δ = s · x W_down W_up on the projections. Give the scale `s` (default 2.0, Hu et al.'s
    alpha=16 at r=8) or, as PEFT does, `alpha` (then s = alpha / r, which shrinks as r grows)."""
    if s is not None and alpha is not None:
        raise PETLConfigError(f"lora takes s or alpha (s = alpha / r), not both, but got s={s!r}, alpha={alpha!r}")
    scale = alpha / r if alpha is not None else (2.0 if s is None else s)
    return PETLConfig(attn_qkv=dict(form="lora", size=r, insertion="parallel", composition="scale",
                                    scale=scale, projections=projections))


@_checked
def parallel_adapter(r: int = 64, *, site: str = "ffn", init: str = "bert") -> PETLConfig:
    return PETLConfig(**{site: dict(form="bottleneck", size=r, insertion="parallel", init=init)})


@_checked
def scaled_parallel_adapter(r: int = 64, *, s: float = 4.0, site: str = "ffn", init: str = "bert") -> PETLConfig:
    return PETLConfig(**{site: dict(form="bottleneck", size=r, insertion="parallel",
                                    composition="scale", scale=s, init=init)})


@_checked
def mh_parallel_adapter(heads: int, r_per_head: int = 30) -> PETLConfig:
    """One bottleneck of width r_per_head per attention head, on the head attention, from the input.

    Like prefix tuning's Eq. 10 (W_down = W_q P_kᵀ), each head's Δh reads that head's query x W_q^(i),
    so MH PA with r_per_head = l stores as many parameters as a prefix of length l (plus biases).
    """
    return PETLConfig(attn_heads=dict(form="bottleneck", size=heads * r_per_head, heads=heads,
                                           insertion="parallel"))


@_checked
def mam(prefix_len: int = 30, ffn_r: int = 512, s: float = 4.0, *, reparam: int | None = 800,
        init: str = "lora") -> PETLConfig:
    """Mix-and-Match adapter: prefix tuning on the heads + scaled parallel adapter on the FFN, with the
    options of He et al.'s run scripts (`--mid_dim 800`, `--ffn_adapter_init_option lora`)."""
    return PETLConfig(
        attn_heads=dict(form="prefix", size=prefix_len, reparam=reparam),
        ffn=dict(form="bottleneck", size=ffn_r, insertion="parallel", composition="scale", scale=s, init=init),
    )


PRESETS: dict[str, Callable[..., PETLConfig]] = {
    "houlsby": houlsby,
    "houlsby_ffn": houlsby_ffn,
    "pfeiffer": pfeiffer,
    "prefix_tuning": prefix_tuning,
    "lora": lora,
    "parallel_adapter": parallel_adapter,
    "scaled_parallel_adapter": scaled_parallel_adapter,
    "mh_parallel_adapter": mh_parallel_adapter,
    "mam": mam,
}

# The argument that sets each preset's size (what a budget scales); MAM keeps its prefix length.
SIZE_ARGUMENT: dict[str, str] = {
    "houlsby": "r", "houlsby_ffn": "r", "pfeiffer": "r", "prefix_tuning": "l", "lora": "r", "parallel_adapter": "r",
    "scaled_parallel_adapter": "r", "mh_parallel_adapter": "r_per_head", "mam": "ffn_r",
}


def preset(name: str, *, model_config: Any = None, **kwargs: Any) -> PETLConfig:
    """Build a named preset; unknown names and arguments get an error that lists the valid ones.

    With `model_config`, arguments that depend on the model (mh_parallel_adapter's `heads`: one Δh per
    attention head) are read off it when not given.
    """
    if name not in PRESETS:
        raise PETLConfigError(f"preset must be one of {sorted(PRESETS)}, but got {name!r}")
    if name == "mh_parallel_adapter" and "heads" not in kwargs and model_config is not None:
        kwargs["heads"] = geometry(model_config)[0].attentions[0].heads
    try:
        return PRESETS[name](**kwargs)
    except TypeError as exc:  # a wrong keyword: say which ones the preset takes
        params = list(inspect.signature(PRESETS[name]).parameters)
        raise PETLConfigError(f"preset {name!r} takes arguments {params}, but got {sorted(kwargs)}") from exc
