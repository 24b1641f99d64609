"""Search spaces as data: a YAML file says, per site, which values each design dimension may take.

    name: unified
    defaults:                      # applied to every site unless the site says otherwise
      size: {low: 8, high: 512, log: true}     # a range (bounds inclusive; ints stay ints)
      insertion: [parallel, sequential]        # a list: a categorical choice
      scale: 4.0                               # a scalar: fixed
    sites:
      attn_heads: {optional: true, form: [prefix, bottleneck], prefix: {size: {low: 4, high: 200}}}
      ffn:        {optional: false, form: [bottleneck]}

Every dimension of DeltaSpec may appear (form, size, insertion, composition, scale, heads, activation,
init, input_norm, layers, reparam, projections). `heads` may list `model`, the model's head count.
A form's own block (`prefix:`, `bottleneck:`, `lora:`) overrides the site's values for that form.
Conditionals follow the DeltaSpec rules: a dimension is only sampled where it applies (no `scale`
unless the composition scales, no activation for LoRA, only length and reparam for a prefix), and
each form's dimensions have their own Optuna names (`ffn.lora.size`), so distributions never clash.

This module must not import torch: it turns a trial into a PETLConfig, nothing more.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from ...core.architectures import geometry
from ...core.config import FORMS, SITES, DeltaSpec, PETLConfig, _SITE_FORMS
from ...core.errors import PETLConfigError, PETLError
from ...core.params import count_params

# Which dimensions each form samples (beyond form itself); the order is the sampling order.
FORM_DIMENSIONS = {
    "prefix": ("size", "reparam", "layers"),
    "bottleneck": ("size", "insertion", "composition", "scale", "heads", "activation", "init", "input_norm",
                   "layers"),
    "lora": ("size", "insertion", "composition", "scale", "heads", "init", "input_norm", "layers"),
}
SITE_KEYS = ("optional", "form", *FORMS)
DIMENSIONS = tuple(dict.fromkeys(d for dims in FORM_DIMENSIONS.values() for d in dims)) + ("projections",)


class SpaceError(PETLError):
    """A search-space file is invalid; the message names the file, the key and the problem."""


@dataclass(frozen=True)
class Choice:
    """One dimension's allowed values: fixed, categorical, or an inclusive int/float range."""

    kind: str  # "fixed", "categorical", "int", "float"
    values: tuple = ()
    low: float = 0
    high: float = 0
    log: bool = False
    step: float | None = None

    def suggest(self, trial: Any, name: str) -> Any:
        if self.kind == "fixed":
            return self.values[0]
        if self.kind == "categorical":
            # Optuna stores categorical values as plain scalars: lists (layers, projections) go as text.
            raw = [_encode(v) for v in self.values]
            return _decode(trial.suggest_categorical(name, raw))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)


def _encode(value: Any) -> Any:
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value


def _decode(value: Any) -> Any:
    if isinstance(value, str) and ("," in value or value.isdigit()):
        parts = value.split(",")
        return [int(p) if p.isdigit() else p for p in parts]
    return value


def _choice(where: str, spec: Any) -> Choice:
    if isinstance(spec, list):
        if not spec:
            raise SpaceError(f"{where} must list at least one value, but got []")
        return Choice("categorical", tuple(spec)) if len(spec) > 1 else Choice("fixed", tuple(spec))
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"low", "high", "log", "step"})
        if unknown or "low" not in spec or "high" not in spec:
            raise SpaceError(f"{where} must be a list, a scalar or {{low, high[, log, step]}}, but got {dict(spec)}")
        low, high = spec["low"], spec["high"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise SpaceError(f"{where}: low and high must be numbers, but got low={low!r}, high={high!r}")
        if low > high:
            raise SpaceError(f"{where}: `low <= high` must hold, but got (low={low}, high={high})")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise SpaceError(f"{where}: a log range needs low > 0, but got low={low}")
        kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
        return Choice(kind, (), low, high, log, _step(where, spec.get("step"), kind, log))
    return Choice("fixed", (spec,))


def _step(where: str, step: Any, kind: str, log: bool) -> float | None:
    """A range's step, checked here rather than by Optuna in the middle of a study."""
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0:
        raise SpaceError(f"{where}: step must be a positive number, but got {step!r}")
    if kind == "int" and not isinstance(step, int):
        raise SpaceError(f"{where}: an integer range needs an integer step, but got {step!r}")
    if log and not (kind == "int" and step == 1):  # Optuna's distributions refuse both
        raise SpaceError(f"{where}: a log range takes no step (Optuna samples it in log-space), but got step={step}")
    return step


@dataclass(frozen=True)
class SiteSpace:
    site: str
    optional: bool
    forms: Choice
    dims: Mapping[str, Mapping[str, Choice]]  # form -> dimension -> choice


@dataclass(frozen=True)
class SearchSpace:
    name: str
    source: str
    sites: tuple[SiteSpace, ...]

    def sample(self, trial: Any, model_config: Any, *, budget: float | None = None) -> PETLConfig:
        """Ask `trial` (an Optuna trial, or anything with its suggest_* methods) for one point.

        Every dimension but the sizes first, then the sizes. With a `budget` (stored parameters as a
        fraction of the backbone), a size given as an integer range is sampled within what the budget
        leaves: the trial draws the site's *share* in [0, 1] of the sizes that still fit, from the
        range's low end up to the largest size that keeps the point within budget with the other sites
        at their chosen sizes (the sites after it at their smallest), log-spaced if the range is. Every
        size that fits remains reachable, and a point is over budget only when its smallest sizes are.
        """
        heads = geometry(model_config)[0].attentions[0].heads
        drafts: dict[str, dict[str, Any]] = {}  # site -> its values, sizes still per head
        for site in self.sites:
            if site.optional and not trial.suggest_categorical(f"{site.site}.use", [True, False]):
                continue
            form = site.forms.suggest(trial, f"{site.site}.form")
            values: dict[str, Any] = {"form": form}
            for dim in FORM_DIMENSIONS[form] + (("projections",) if site.site == "attn_qkv" else ()):
                choice = site.dims[form].get(dim)
                if dim == "size" or choice is None or \
                        (dim == "scale" and values.get("composition") not in ("scale", "learned_scale")):
                    continue
                value = choice.suggest(trial, f"{site.site}.{form}.{dim}")
                values[dim] = heads if (dim == "heads" and value == "model") else value
            drafts[site.site] = values
        sizes = _Sizes(self, drafts, model_config, budget)
        for site, values in drafts.items():
            values["size"] = sizes.suggest(trial, site)
        return _config(drafts)

    def replay(self, config: PETLConfig, model_config: Any, *, budget: float | None = None
               ) -> dict[str, tuple[Any, Any]] | None:
        """The Optuna parameters under which `sample` (with the same `budget`) gives `config`, as
        {name: (distribution, value)}; None when the space cannot give it (a site, form or value it does
        not hold, or a size over what the budget leaves).

        This lets a baseline that lies inside the space be told to the sampler as the point it is, so
        the sampler learns from the baselines as from its own trials.
        """
        replaying = _Replay(config, geometry(model_config)[0].attentions[0].heads)
        try:
            again = self.sample(replaying, model_config, budget=budget)
        except (_Outside, PETLConfigError):
            return None
        return replaying.params if again == config else None


def _config(drafts: dict[str, dict[str, Any]]) -> PETLConfig:
    """The point the drafts describe (a multi-head size is per head in the space, total in the spec)."""
    specs = {site: DeltaSpec.from_dict({**values, "size": values["size"] * values.get("heads", 1)}, where=site)
             for site, values in drafts.items()}
    return PETLConfig(**specs)


class _Sizes:
    """The size of each site of one point, sampled in site order; within budget where it can be."""

    def __init__(self, space: "SearchSpace", drafts: dict[str, dict[str, Any]], model_config: Any,
                 budget: float | None) -> None:
        self.choices = {site.site: site.dims[drafts[site.site]["form"]]["size"] for site in space.sites
                        if site.site in drafts}
        self.drafts, self.model_config, self.budget = drafts, model_config, budget
        self.chosen: dict[str, int] = {}

    def suggest(self, trial: Any, site: str) -> int:
        # Recorded whichever way it was taken: the sites after this one are fitted against it.
        self.chosen[site] = self._sample(trial, site)
        return self.chosen[site]

    def _sample(self, trial: Any, site: str) -> int:
        choice, form = self.choices[site], self.drafts[site]["form"]
        allowed = self._allowed(choice)
        if self.budget is None or allowed is None:  # no budget, or a fixed size: nothing to fit
            return choice.suggest(trial, f"{site}.{form}.size")
        fitting = self._fitting(site, allowed)
        name = f"{site}.{form}.size_share"
        share = trial.replay_share(name, fitting, choice.log) if isinstance(trial, _Replay) \
            else trial.suggest_float(name, 0.0, 1.0)
        return share_to_size(share, fitting, choice.log)

    @staticmethod
    def _allowed(choice: Choice) -> list[int] | range | None:
        """The sizes a choice allows, ascending; None when it is not sizes to choose among."""
        if choice.kind == "int":  # a stepped range's sizes are its steps, as Optuna's suggest_int gives them
            return range(int(choice.low), int(choice.high) + 1, int(choice.step or 1))
        if choice.kind == "categorical" and all(isinstance(v, int) and not isinstance(v, bool) for v in choice.values):
            return sorted(choice.values)
        return None

    def _fitting(self, site: str, allowed: list[int] | range) -> list[int] | range:
        """The allowed sizes that keep the point within budget (the smallest alone if none does)."""
        def fits(size: int) -> bool:
            drafts = {s: {**v, "size": size if s == site else self.chosen[s] if s in self.chosen
                          else self._smallest(s)} for s, v in self.drafts.items()}
            return count_params(_config(drafts), self.model_config).stored_fraction <= self.budget

        low, high = 0, len(allowed) - 1  # invariant once the smallest fits: fits(allowed[low])
        if not fits(allowed[0]):
            return allowed[:1]
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if fits(allowed[mid]) else (low, mid - 1)
        return allowed[:low + 1]

    def _smallest(self, site: str) -> int:
        """The smallest size a site not sampled yet can take (a fixed size is its one value)."""
        allowed = self._allowed(self.choices[site])
        return allowed[0] if allowed is not None else self.choices[site].values[0]


def share_to_size(share: float, sizes: Sequence[int], log: bool) -> int:
    """The size a share in [0, 1] stands for: each of `sizes` (ascending) gets an equal slice of [0, 1],
    of log-space with `log` (so a log range keeps its prior over the sizes that fit)."""
    if len(sizes) == 1:
        return sizes[0]
    edges = _edges(sizes, log)
    point = edges[0] + min(max(share, 0.0), 1.0) * (edges[-1] - edges[0])
    return sizes[min(bisect.bisect_right(edges, point) - 1, len(sizes) - 1)]


def size_to_share(size: int, sizes: Sequence[int], log: bool) -> float:
    """The middle of the slice of [0, 1] that `share_to_size` maps to `size`."""
    if len(sizes) == 1:
        return 0.5
    edges = _edges(sizes, log)
    i = list(sizes).index(size)
    return ((edges[i] + edges[i + 1]) / 2 - edges[0]) / (edges[-1] - edges[0])


def _edges(sizes: Sequence[int], log: bool) -> list[float]:
    """Slice boundaries: size i owns [edges[i], edges[i+1]). A range's integers own their width (in
    log-space with `log`, as a log-uniform draw of the integers would); a list's choices are equally
    likely, as a categorical draw."""
    if not isinstance(sizes, range):
        return [float(i) for i in range(len(sizes) + 1)]
    bounds = [*sizes, sizes[-1] + sizes.step]  # a stepped range's last size owns a whole step too
    return [math.log(b) for b in bounds] if log else [float(b) for b in bounds]


class _Outside(Exception):
    """The configuration being replayed has no value in the space for this parameter."""


class _Replay:
    """Stands in for an Optuna trial in `SearchSpace.sample`: answers each suggest_* with the value a
    given configuration has, if the distribution allows it, and records (distribution, value)."""

    def __init__(self, config: PETLConfig, model_heads: int) -> None:
        self.config, self.model_heads = config, model_heads
        self.params: dict[str, tuple[Any, Any]] = {}

    def _wanted(self, name: str) -> Any:
        site, *rest = name.split(".")
        spec = getattr(self.config, site)
        if rest == ["use"]:
            return spec is not None
        if spec is None:
            raise _Outside(name)
        if rest == ["form"]:
            return spec.form
        dim = rest[1]
        if dim == "size" and spec.heads > 1:
            return spec.size // spec.heads  # per head in the space, total in the spec
        return getattr(spec, dim)

    def _record(self, name: str, distribution: Any, value: Any) -> Any:
        self.params[name] = (distribution, value)
        return value

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        value = _encode(self._wanted(name))
        if value == self.model_heads and value not in choices and "model" in choices:
            value = "model"
        if value not in choices:
            raise _Outside(name)
        return self._record(name, CategoricalDistribution(list(choices)), value)

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False, step: int = 1) -> int:
        value = self._wanted(name)
        if not isinstance(value, int) or not low <= value <= high or (value - low) % step:
            raise _Outside(name)
        return self._record(name, IntDistribution(low, high, log=log, step=step), value)

    def replay_share(self, name: str, sizes: Sequence[int], log: bool) -> float:
        """The share under which `share_to_size` gives the configuration's size at this site."""
        site, form, _ = name.split(".")
        size = self._wanted(f"{site}.{form}.size")
        if size not in sizes:
            raise _Outside(name)
        return self._record(name, FloatDistribution(0.0, 1.0), size_to_share(size, sizes, log))

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False,
                      step: float | None = None) -> float:
        value = self._wanted(name)
        if not isinstance(value, (int, float)) or not low <= value <= high:
            raise _Outside(name)
        return self._record(name, FloatDistribution(low, high, log=log, step=step), float(value))


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file; errors name the file, the key and the problem."""
    path = Path(path)
    return parse_space(read_yaml(path, SpaceError, "search space"), source=str(path))


def read_yaml(path: Path, error: type[PETLError], what: str) -> Any:
    """A YAML file's content; a missing or malformed file is one `error` naming the file."""
    if not path.is_file():
        raise error(f"{what} {path} not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({exc})") from None


def parse_space(data: Any, *, source: str = "<space>") -> SearchSpace:
    if not isinstance(data, Mapping):
        raise SpaceError(f"{source}: a search space is a mapping with keys name, defaults, sites")
    unknown = sorted(set(data) - {"name", "description", "defaults", "sites"})
    if unknown:
        raise SpaceError(f"{source}: unknown key {unknown[0]!r}; allowed: ['defaults', 'description', 'name', 'sites']")
    sites = data.get("sites")
    if not isinstance(sites, Mapping) or not sites:
        raise SpaceError(f"{source}: 'sites' must map at least one of {list(SITES)} to its choices")
    defaults = _dimension_block(f"{source}: defaults", data.get("defaults") or {})
    parsed = []
    for site, block in sites.items():
        where = f"{source}: sites.{site}"
        if site not in SITES:
            raise SpaceError(f"{source}: sites has unknown site {site!r}; sites are {list(SITES)}")
        block = block or {}
        if not isinstance(block, Mapping):
            raise SpaceError(f"{where} must be a mapping of dimensions, but got {block!r}")
        forms = _choice(f"{where}.form", block.get("form", list(_SITE_FORMS[site])))
        for form in forms.values:
            if form not in _SITE_FORMS[site]:
                raise SpaceError(f"{where}.form: {form!r} is not allowed here; allowed: {list(_SITE_FORMS[site])}")
        shared = {**defaults, **_dimension_block(where, {k: v for k, v in block.items() if k not in SITE_KEYS})}
        dims = {}
        for form in forms.values:
            own = _dimension_block(f"{where}.{form}", block.get(form) or {})
            dims[form] = {d: c for d, c in {**shared, **own}.items()
                          if d in FORM_DIMENSIONS[form] or (d == "projections" and site == "attn_qkv")}
            if "size" not in dims[form]:
                raise SpaceError(f"{where}: form {form!r} needs a size (in defaults, the site or {form}:)")
        parsed.append(SiteSpace(site, bool(block.get("optional", True)), forms, dims))
    space = SearchSpace(str(data.get("name", Path(source).stem)), source, tuple(parsed))
    _check_values(space)
    return space


def _dimension_block(where: str, block: Any) -> dict[str, Choice]:
    if not isinstance(block, Mapping):
        raise SpaceError(f"{where} must be a mapping of dimensions, but got {block!r}")
    unknown = sorted(set(block) - set(DIMENSIONS))
    if unknown:
        raise SpaceError(f"{where}: unknown dimension {unknown[0]!r}; dimensions are {sorted(DIMENSIONS)}")
    return {dim: _choice(f"{where}.{dim}", spec) for dim, spec in block.items()}


def _check_values(space: SearchSpace) -> None:
    """Every listed categorical value, and every size, must be valid for DeltaSpec (caught at load, not
    mid-study)."""
    for site in space.sites:
        for form, dims in site.dims.items():
            size = dims["size"]
            if size.kind == "float":  # else every point fails mid-study, and budget-aware sizes cannot be listed
                raise SpaceError(f"{space.source}: sites.{site.site}.{form}.size: sizes are integers, so a range of "
                                 f"them needs integer low and high, but got low={size.low}, high={size.high}")
            for dim, choice in dims.items():
                for value in choice.values:
                    probe = {"form": form, "size": 8}
                    if dim == "heads":
                        if value == "model" or (isinstance(value, int) and value > 0):
                            continue
                    elif dim == "scale":
                        probe.update(composition="scale", scale=value)
                    elif dim == "composition" and form == "prefix":
                        continue
                    else:
                        probe[dim] = value
                    if dim == "layers":
                        continue  # checked against the model when sampled
                    try:  # through PETLConfig, which knows what each site allows (after_norm: attn_out, ffn)
                        PETLConfig(**{site.site: DeltaSpec.from_dict(probe, where=f"{site.site}")})
                    except PETLConfigError as exc:
                        raise SpaceError(f"{space.source}: sites.{site.site}.{form}.{dim}: {exc}") from None
