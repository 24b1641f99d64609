"""One point of the unified PETL design space (He et al., ICLR 2022), as plain, validated data.

A `PETLConfig` holds at most one `DeltaSpec` per *site* (the representation that Δh modifies):

    attn_heads  the per-head attention outputs (before the output projection); prefix tuning lives here
    attn_out    the attention sublayer's output (after its output projection, before the residual)
    attn_qkv    the attention projections q / k / v (LoRA lives here)
    ffn         the feed-forward sublayer's output (before the residual)

A `DeltaSpec` says how Δh is computed (form, size, activation, heads), from what (insertion: the
sublayer's output = sequential, its input = parallel, or the output of the frozen Add&Norm that follows
the sublayer = after_norm, Pfeiffer et al. 2021's placement) and how it is put back (composition:
h + Δh, h + s·Δh, h + s·Δh with s learned, or (1-λ)h + λΔh with λ learned).

Both classes are frozen, normalise their input (defaults that depend on the form are resolved, lists
become tuples) and so have one canonical form: `to_json()` (sorted keys) and `fingerprint()`.
This module must not import torch: the search space and the CLI use it without a model.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from .errors import PETLConfigError, one_of, rule

SITES = ("attn_heads", "attn_out", "attn_qkv", "ffn")
FORMS = ("bottleneck", "lora", "prefix")
INSERTIONS = ("sequential", "parallel", "after_norm")
COMPOSITIONS = ("add", "scale", "learned_scale", "gate")
ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "identity")
ACTIVATION_ALIASES = {"swish": "silu"}  # AdapterHub's name (its default) for x·sigmoid(x): one canonical form
INITS = ("bert", "lora")
PROJECTIONS = ("q", "k", "v")

# Defaults that depend on the form: the classical method of each form (Houlsby adapter, LoRA, prefix).
_FORM_DEFAULTS = {
    "bottleneck": {"insertion": "sequential", "activation": "relu", "init": "bert"},
    "lora": {"insertion": "parallel", "activation": None, "init": "lora"},
    "prefix": {"insertion": "parallel", "activation": None, "init": None},
}
# The sites followed by a residual Add&Norm, the only ones where Δh can read that norm's output.
_AFTER_NORM_SITES = ("attn_out", "ffn")
# Which forms each site accepts. Prefix attention only makes sense inside attention heads.
_SITE_FORMS = {
    "attn_heads": FORMS,
    "attn_out": ("bottleneck", "lora"),
    "attn_qkv": ("bottleneck", "lora"),
    "ffn": ("bottleneck", "lora"),
}


def _positive_int(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise rule(where, "a positive integer", value)
    return value


@dataclass(frozen=True)
class DeltaSpec:
    """How Δh is computed and composed at one site. See the module docstring for the vocabulary.

    form        'bottleneck' f(x W_down + b) W_up + b (with `activation` f), 'lora' x W_down W_up (no
                biases), or 'prefix' softmax(x W_q P_kᵀ) P_v over `size` learned prefix positions.
    size        bottleneck width r, or prefix length l. With heads > 1 it is the total over heads.
    insertion   'sequential' (Δh from the sublayer's output h), 'parallel' (from its input x), or
                'after_norm' (from LN(x + h), the output of the frozen Add&Norm after the sublayer; Δh is
                added to h before that norm, so the block computes LN(x + h + Δ(LN(x + h))): Pfeiffer et
                al. 2021, AdapterHub's SeqBnConfig; sites attn_out and ffn. In a pre-norm model (GPT-2,
                Llama) no norm follows the add, and Δh reads r + h, r the residual stream, as AdapterHub).
    composition 'add', 'scale' (fixed s), 'learned_scale' (s learned, starts at `scale`), 'gate'.
    scale       s of the 'scale' / 'learned_scale' compositions (1.0 otherwise).
    heads       1, or split the representation into `heads` blocks with one Δh each (block-diagonal).
    activation  f of the bottleneck form: relu, gelu, silu (swish), tanh or identity (None for other forms).
    init        'bert' (W_down ~ N(0, 0.02)) or 'lora' (W_down Kaiming-uniform); W_up is always zero,
                so every non-prefix candidate starts exactly at the frozen model.
    input_norm  a learned LayerNorm on Δh's input.
    layers      None for every block, else the block indices it applies to (counted across stacks:
                an encoder-decoder's encoder blocks come first).
    layer_sizes per-block overrides of `size`, as {block: size}.
    reparam     prefix only: width of the MLP that reparameterises the prefix while training
                (Li & Liang 2021); None trains the prefix directly. The MLP is dropped after training.
    projections attn_qkv only: which of q, k, v get a Δh each (default q and v, as LoRA).
    """

    form: str
    size: int
    insertion: str | None = None
    composition: str | None = None
    scale: float = 1.0
    heads: int = 1
    activation: str | None = None
    init: str | None = None
    input_norm: bool = False
    layers: tuple[int, ...] | None = None
    layer_sizes: tuple[tuple[int, int], ...] = ()
    reparam: int | None = None
    projections: tuple[str, ...] | None = None
    where: str = field(default="DeltaSpec", compare=False, repr=False)

    def __post_init__(self) -> None:
        w = self.where
        if self.form not in FORMS:
            raise one_of(f"{w}.form", FORMS, self.form)
        _positive_int(f"{w}.size", self.size)
        defaults = _FORM_DEFAULTS[self.form]
        self._set("insertion", self.insertion or defaults["insertion"])
        if self.insertion not in INSERTIONS:
            raise one_of(f"{w}.insertion", INSERTIONS, self.insertion)
        self._normalise_composition()
        _positive_int(f"{w}.heads", self.heads)
        self._normalise_layers()
        self._normalise_form_specifics(defaults)
        if self.heads > 1:
            for layer, size in ((None, self.size), *self.layer_sizes):
                if size % self.heads:
                    at = f"{w}.size" if layer is None else f"{w}.layer_sizes[{layer}]"
                    raise rule(at, f"divisible by heads={self.heads} (each head gets size/heads)", size)

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _normalise_composition(self) -> None:
        w = self.where
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)):
            raise rule(f"{w}.scale", "a positive finite number", self.scale)
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise rule(f"{w}.scale", "a positive finite number", self.scale)
        self._set("scale", float(self.scale))
        comp = self.composition
        if comp is None:
            comp = "scale" if self.scale != 1.0 else ("gate" if self.form == "prefix" else "add")
        if comp not in COMPOSITIONS:
            raise one_of(f"{w}.composition", COMPOSITIONS, comp)
        if comp in ("add", "gate") and self.scale != 1.0:
            raise rule(f"{w}.scale", f"1.0 with composition {comp!r} (use 'scale' or 'learned_scale')",
                       self.scale)
        if comp == "scale" and self.scale == 1.0:
            comp = "add"  # h + 1·Δh is h + Δh: one canonical name for one point
        if self.form == "prefix" and comp != "gate":
            raise rule(f"{w}.composition", "'gate' for form 'prefix' (Eq. 8: prefix attention is a gated "
                       "composition with λ(x))", comp)
        self._set("composition", comp)

    def _normalise_form_specifics(self, defaults: Mapping[str, Any]) -> None:
        w = self.where
        if self.form == "bottleneck":
            activation = self.activation or defaults["activation"]
            self._set("activation", ACTIVATION_ALIASES.get(activation, activation))
            if self.activation not in ACTIVATIONS:
                raise one_of(f"{w}.activation", ACTIVATIONS, self.activation)
        elif self.activation not in (None, "identity"):
            raise rule(f"{w}.activation", f"unset for form {self.form!r} (it has no activation)",
                       self.activation)
        else:
            self._set("activation", None)
        if self.form == "prefix":
            for name, neutral in (("init", None), ("heads", 1), ("input_norm", False)):
                if getattr(self, name) != neutral:
                    raise rule(f"{w}.{name}", f"{neutral!r} for form 'prefix' (a prefix already acts per "
                               "attention head and starts from its own init)", getattr(self, name))
            if self.insertion != "parallel":
                raise rule(f"{w}.insertion", "'parallel' for form 'prefix' (Δh is computed from the "
                           "attention input x)", self.insertion)
            if self.reparam is not None:
                _positive_int(f"{w}.reparam", self.reparam)
                if self.layer_sizes:
                    raise rule(f"{w}.reparam", "None when layer_sizes vary the prefix length (one MLP "
                               "reparameterises one length)", self.reparam)
        else:
            self._set("init", self.init or defaults["init"])
            if self.init not in INITS:
                raise one_of(f"{w}.init", INITS, self.init)
            if self.reparam is not None:
                raise rule(f"{w}.reparam", "None unless form is 'prefix'", self.reparam)
        if not isinstance(self.input_norm, bool):
            raise rule(f"{w}.input_norm", "true or false", self.input_norm)
        if self.projections is not None:
            projections = tuple(self.projections) if not isinstance(self.projections, str) else (self.projections,)
            bad = [p for p in projections if p not in PROJECTIONS]
            if bad or not projections or len(set(projections)) != len(projections):
                raise rule(f"{w}.projections", f"a non-empty list of distinct values from {list(PROJECTIONS)}",
                           self.projections)
            self._set("projections", tuple(p for p in PROJECTIONS if p in projections))

    def _normalise_layers(self) -> None:
        w = self.where
        layers = self.layers
        if layers is not None:
            if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
                raise rule(f"{w}.layers", "null (all blocks) or a non-empty list of block indices", layers)
            layers = tuple(layers)
            if not layers or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in layers):
                raise rule(f"{w}.layers", "null (all blocks) or a non-empty list of block indices >= 0",
                           self.layers)
            layers = tuple(sorted(set(layers)))
        self._set("layers", layers)
        raw = self.layer_sizes
        pairs = raw.items() if isinstance(raw, Mapping) else raw
        sizes: dict[int, int] = {}
        for pair in pairs:
            layer, size = pair
            layer = int(layer) if isinstance(layer, str) and layer.isdigit() else layer
            if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
                raise rule(f"{w}.layer_sizes", "a mapping {block index >= 0: size}", raw)
            if layers is not None and layer not in layers:
                raise rule(f"{w}.layer_sizes[{layer}]", f"for a block listed in layers={list(layers)}", size)
            sizes[layer] = _positive_int(f"{w}.layer_sizes[{layer}]", size)
        # An override equal to the default size is no override: drop it so the canonical form is unique.
        self._set("layer_sizes", tuple(sorted((k, v) for k, v in sizes.items() if v != self.size)))

    # --- queries -------------------------------------------------------------------------------
    def applies_to(self, block: int) -> bool:
        return self.layers is None or block in self.layers

    def size_at(self, block: int) -> int:
        return dict(self.layer_sizes).get(block, self.size)

    @property
    def is_zero_init(self) -> bool:
        """Whether Δh contributes nothing at initialisation (all forms but prefix)."""
        return self.form != "prefix"

    # --- plain data ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "where"}
        out["layers"] = list(self.layers) if self.layers is not None else None
        out["layer_sizes"] = {str(k): v for k, v in self.layer_sizes}
        out["projections"] = list(self.projections) if self.projections is not None else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "DeltaSpec") -> "DeltaSpec":
        if not isinstance(data, Mapping):
            raise rule(where, "a mapping of DeltaSpec fields", data)
        names = [f.name for f in dataclasses.fields(cls) if f.name != "where"]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise PETLConfigError(f"{where} has no field {unknown[0]!r}; its fields are {names}")
        missing = [n for n in ("form", "size") if n not in data]
        if missing:
            raise PETLConfigError(f"{where}.{missing[0]} is required (fields: {names})")
        return cls(**dict(data), where=where)

    def describe(self) -> str:
        bits = [self.form, self.insertion if self.form != "prefix" else "", f"{'l' if self.form == 'prefix' else 'r'}={self.size}"]
        if self.composition != "add" and self.form != "prefix":
            bits.append(self.composition if self.composition == "gate" else f"{self.composition} s={self.scale:g}")
        if self.heads > 1:
            bits.append(f"heads={self.heads}")
        if self.activation not in (None, "relu"):
            bits.append(self.activation)
        if self.projections:
            bits.append("".join(self.projections))
        if self.layers is not None:
            bits.append(f"layers={list(self.layers)}")
        return "(" + ", ".join(b for b in bits if b) + ")"


@dataclass(frozen=True)
class PETLConfig:
    """A point of the unified design space: at most one DeltaSpec per site. All None = frozen backbone."""

    attn_heads: DeltaSpec | None = None
    attn_out: DeltaSpec | None = None
    attn_qkv: DeltaSpec | None = None
    ffn: DeltaSpec | None = None

    def __post_init__(self) -> None:
        for site in SITES:
            spec = getattr(self, site)
            if spec is None:
                continue
            if isinstance(spec, Mapping):
                spec = DeltaSpec.from_dict(spec, where=site)
            if not isinstance(spec, DeltaSpec):
                raise rule(site, "a DeltaSpec, a mapping of its fields, or None", spec)
            if spec.form not in _SITE_FORMS[site]:
                raise one_of(f"{site}.form", _SITE_FORMS[site], spec.form)
            if spec.insertion == "after_norm" and site not in _AFTER_NORM_SITES:
                raise rule(f"{site}.insertion", f"'sequential' or 'parallel' at site {site!r} ('after_norm' reads "
                           f"the Add&Norm that follows a sublayer: sites {list(_AFTER_NORM_SITES)})", spec.insertion)
            if site == "attn_qkv":
                if spec.projections is None:
                    spec = dataclasses.replace(spec, projections=("q", "v"))
            elif spec.projections is not None:
                raise rule(f"{site}.projections", "unset except at site 'attn_qkv'", list(spec.projections))
            object.__setattr__(self, site, dataclasses.replace(spec, where=site))

    def sites(self) -> Iterator[tuple[str, DeltaSpec]]:
        """The (site, spec) pairs that are set, in the canonical site order."""
        for site in SITES:
            spec = getattr(self, site)
            if spec is not None:
                yield site, spec

    @property
    def is_empty(self) -> bool:
        return next(self.sites(), None) is None

    def for_storage(self) -> "PETLConfig":
        """The config of the trained, stored Δh: a prefix's reparameterisation MLP is dropped."""
        changes = {s: dataclasses.replace(spec, reparam=None) for s, spec in self.sites() if spec.reparam}
        return dataclasses.replace(self, **changes) if changes else self

    # --- plain data ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {site: (spec.to_dict() if spec is not None else None)
                for site, spec in ((s, getattr(self, s)) for s in SITES)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PETLConfig":
        if not isinstance(data, Mapping):
            raise rule("PETLConfig", f"a mapping with keys among {list(SITES)}", data)
        unknown = sorted(set(data) - set(SITES))
        if unknown:
            raise one_of("site", SITES, unknown[0])
        return cls(**{site: data[site] for site in SITES if data.get(site) is not None})

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no whitespace. Equal points give equal strings."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "PETLConfig":
        return cls.from_dict(json.loads(text))

    def fingerprint(self) -> str:
        """A short stable id of the point (sha256 of the canonical JSON), for de-duplication and export."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def describe(self) -> str:
        if self.is_empty:
            return "frozen backbone (no Δh)"
        return " + ".join(f"{site}:{spec.describe()}" for site, spec in self.sites())
