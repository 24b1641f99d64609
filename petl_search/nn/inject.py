"""Put a PETLConfig on a Hugging Face model: freeze the backbone, add Δh modules, wire them with hooks.

No modeling code is copied. All Δh parameters live under one submodule, `model.petl`, so one
predicate (`is_petl_parameter`) decides what is trained and what is exported, and the backbone's own
state-dict keys are unchanged. Sublayer sites are wired with forward hooks on the frozen modules that
begin and end the sublayer (see architectures.py); head-attention sites go through attention.py, or,
for families whose attention does not call transformers' AttentionInterface (the family table's
`head_route`), through attention_hooks.py.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from . import attention
from .attention_hooks import HookedHeads
from ..core.architectures import Family, Projection, StackLayout, family_of, geometry, head_route_problem
from ..core.config import PETLConfig
from ..core.errors import PETLError, rule
from ..core.placement import Placement, plan
from .modules import PrefixBank, SiteDelta
from .transformers_compat import attn_implementation

PETL_PREFIX = "petl"


def is_petl_parameter(name: str) -> bool:
    """True for parameters petl-search added (and so trains and exports)."""
    return name.split(".", 1)[0] == PETL_PREFIX


class Wiring:
    """Connects one SiteDelta to the frozen modules around it (a plain holder of hook callbacks).

    exit: the module whose output h receives the increment, whole or in the slice [start, stop) of a fused
    projection; for a sublayer site that is the module after its dropout, so Δh is added after the dropout
    as the references add it. dense: the linear module whose weights a merge folds Δh into (the exit
    itself on a projection). The captured input (parallel): the sublayer's input x; (after_norm): the
    residual stream r that h is added to, and then Δh reads r + h, through `norm` (the frozen Add&Norm's
    LayerNorm) where one follows the add.
    """

    def __init__(self, key: str, delta: SiteDelta, exit_module: nn.Module, start: int | None, stop: int | None,
                 same_module: bool, *, dense: nn.Module | None = None, reads_sum: bool = False,
                 norm: nn.Module | None = None) -> None:
        self.key, self.delta, self.exit = key, delta, exit_module
        self.dense = dense if dense is not None else exit_module
        self.reads_sum, self.norm = reads_sum, norm
        self.handles: list[Any] = []
        self.start, self.stop = start, stop
        self.same_module = same_module  # the exit module's own input is x (projections)
        self._x: torch.Tensor | None = None

    def capture(self, module: nn.Module, args: tuple) -> None:
        self._x = args[0]

    def add_increment(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0] if self.same_module else self._x
        self._x = None  # do not keep the activation alive past this call
        if self.reads_sum:  # after_norm: what the frozen Add(&Norm) would give without Δh
            x = x + output if self.norm is None else self.norm(x + output)
        if self.start is None:
            return output + self.delta.increment(x, output)
        h = output[..., self.start:self.stop]
        inc = self.delta.increment(x, h)
        return output + F.pad(inc, (self.start, output.shape[-1] - self.stop))


class DropoutTakeover:
    """Applies a block's functional residual dropout at its sublayers' exits, so Δh can follow it.

    BART drops each sublayer's output with `F.dropout(h, p=self.dropout)` inside the block's forward, where
    no hook reaches. While Δh is on the block, its rate is set to 0 and this applies the same dropout, in
    the same order, as a forward hook on each exit registered before any Δh hook: dense → dropout → Δh.
    """

    def __init__(self, block: nn.Module, attribute: str, exits: Iterable[nn.Module]) -> None:
        self.block, self.attribute = block, attribute
        self.rate = getattr(block, attribute)
        self.handles = [module.register_forward_hook(self.drop) for module in exits]
        setattr(block, attribute, 0.0)

    def drop(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return F.dropout(output, p=self.rate, training=self.block.training)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        setattr(self.block, self.attribute, self.rate)


def _under(name: str, module: str) -> bool:
    """Whether parameter `name` belongs to submodule `module` (or is it)."""
    return name == module or name.startswith(module + ".")


def _find_blocks(model: nn.Module, suffix: str) -> nn.ModuleList:
    found = [m for n, m in model.named_modules()
             if isinstance(m, nn.ModuleList) and (n == suffix or n.endswith("." + suffix))]
    if len(found) != 1:
        raise PETLError(f"expected one block list named '*{suffix}' in {type(model).__name__}, found {len(found)}")
    return found[0]


def _blocks(model: nn.Module, family: Family) -> list[tuple[nn.Module, StackLayout]]:
    """Every block of the model with its stack's layout, numbered as architectures.geometry numbers them."""
    blocks = [(block, layout) for layout in family.stacks for block in _find_blocks(model, layout.blocks)]
    expected = len(geometry(model.config))
    if len(blocks) != expected:
        raise PETLError(f"{type(model).__name__} has {len(blocks)} blocks but its config describes {expected}")
    return blocks


def _first_float(model: nn.Module) -> torch.Tensor:
    return next(p for p in model.parameters() if p.is_floating_point())


def apply_petl(model: nn.Module, config: PETLConfig | Mapping[str, Any], *,
               train_modules: Iterable[str] = ()) -> nn.Module:
    """Freeze `model` and add the Δh of `config` to it, in place; returns the model.

    train_modules: names of submodules that stay trainable besides Δh (e.g. a task head "classifier").
    Everything is checked before the model is touched: a refused config leaves it as it was.
    """
    if isinstance(config, Mapping):
        config = PETLConfig.from_dict(config)
    if not isinstance(config, PETLConfig):
        raise rule("config", "a PETLConfig or a mapping of its fields", type(config).__name__)
    if hasattr(model, PETL_PREFIX):
        raise PETLError("this model already carries a PETL config; call remove_petl(model) first")
    placements = plan(config, model.config)
    family = family_of(model.config)
    blocks = _blocks(model, family)
    uses_heads = any(p.site == "attn_heads" for p in placements)
    _check_head_route(family, model.config, placements)
    inner = _inner_attention(model) if uses_heads and family.head_route == "interface" else None
    keep = _checked_train_modules(model, train_modules)

    for name, param in model.named_parameters():
        param.requires_grad_(any(_under(name, k) for k in keep))
    anchor = _first_float(model)
    kw = {"dtype": anchor.dtype, "device": anchor.device}
    container = nn.Module()
    container.config = config
    container.deltas = nn.ModuleDict()
    container.prefixes = _prefix_banks(placements, kw)
    takeovers = _take_over_dropouts(placements, blocks)  # before any Δh hook on the same exits
    wirings: list[Wiring] = []
    head_sites: list[nn.Module] = []
    hooked: list[tuple[Placement, nn.Module, StackLayout]] = []
    for p in placements:
        block, layout = blocks[p.block.index]
        if p.site != "attn_heads":
            wirings.append(_wire_sublayer(p, block, layout, container, kw))
        elif family.head_route == "hooks":
            if p.spec.form != "prefix":  # created in placement order, as for the interface route
                container.deltas[p.key] = SiteDelta(p.spec, p.size, p.in_width, p.out_width, **kw)
            hooked.append((p, block, layout))
        else:
            head_sites.append(_attach_to_heads(p, block, layout, container, kw))
    # Hooked heads last: their hooks on q/k/v then run after a sublayer site's (they read q with LoRA's
    # Δh added, and a prefix overwrites rows of k and v that a Δh on k or v would otherwise add to).
    head_hooks = [_hook_heads(p, block, layout, family, container) for p, block, layout in hooked]

    object.__setattr__(container, "_wirings", wirings)
    object.__setattr__(container, "_takeovers", takeovers)
    object.__setattr__(container, "_head_modules", head_sites)
    object.__setattr__(container, "_head_hooks", head_hooks)
    object.__setattr__(container, "_attn_restore", None)
    setattr(model, PETL_PREFIX, container)
    if inner is not None:
        object.__setattr__(container, "_attn_restore", attn_implementation(model))
        model.set_attn_implementation(attention.implementation_name(inner))
    return model


def _checked_train_modules(model: nn.Module, train_modules: Iterable[str]) -> tuple[str, ...]:
    """The submodules that stay trainable, each of which must hold parameters."""
    keep = tuple(train_modules)
    names = [name for name, _ in model.named_parameters()]
    unmatched = [k for k in keep if not any(_under(n, k) for n in names)]
    if unmatched:
        tops = sorted({n.split(".")[0] for n in names})
        raise rule("train_modules", f"names of submodules with parameters (top level: {tops})", unmatched)
    return keep


def _prefix_banks(placements: Iterable[Placement], kw: dict) -> nn.ModuleDict:
    """One bank of prefix keys/values per site, holding every attention of that site."""
    groups: dict[str, list[Placement]] = {}
    for p in placements:
        if p.spec.form == "prefix":
            groups.setdefault(p.site, []).append(p)
    banks = nn.ModuleDict()
    for site, group in groups.items():
        entries = {p.key: (p.attention_geometry.kv_heads, p.attention_geometry.head_dim, p.size) for p in group}
        banks[site] = PrefixBank(entries, group[0].block.hidden, group[0].spec.reparam, **kw)
    return banks


def _check_head_route(family: Family, model_config: Any, placements: Iterable[Placement]) -> None:
    """Refuse, before the model is touched, head-attention Δh that the family's route cannot reach."""
    for p in placements:
        if p.site != "attn_heads":
            continue
        paths = family.stacks[[s.name for s in family.stacks].index(p.block.stack)].attentions[p.attention]
        problem = head_route_problem(family, paths)
        if problem:
            raise PETLError(f"model_type {model_config.model_type!r} cannot take Δh on site attn_heads "
                            f"({p.spec.form}, {paths.kind}-attention of block {p.block.index}): its attention "
                            f"does not call transformers' AttentionInterface, and {problem}")


def _hook_heads(p: Placement, block: nn.Module, layout: StackLayout, family: Family,
                container: nn.Module) -> HookedHeads:
    """Δh on the head attention of a family whose attention is inline: hooks (attention_hooks.py)."""
    paths = layout.attentions[p.attention]
    modules = [block.get_submodule(path) for path in (paths.module, paths.q.path, paths.k.path, paths.v.path,
                                                      paths.out)]
    if p.spec.form == "prefix":
        return HookedHeads(*modules, family.key_arguments, prefix=container.prefixes[p.site], prefix_key=p.key)
    return HookedHeads(*modules, family.key_arguments, delta=container.deltas[p.key])


def _attach_to_heads(p: Placement, block: nn.Module, layout: StackLayout, container: nn.Module,
                     kw: dict) -> nn.Module:
    """Δh on the head attention: attached to the attention module, applied by attention.py's function."""
    module = block.get_submodule(layout.attentions[p.attention].module)
    site = module.__dict__.setdefault(attention.HEAD_SITE_ATTR, attention.HeadSite())
    if p.spec.form == "prefix":
        site.prefix, site.prefix_key = container.prefixes[p.site], p.key
    else:
        site.delta = container.deltas[p.key] = SiteDelta(p.spec, p.size, p.in_width, p.out_width, **kw)
    return module


def _take_over_dropouts(placements: Iterable[Placement],
                        blocks: list[tuple[nn.Module, StackLayout]]) -> list[DropoutTakeover]:
    """A DropoutTakeover for each block of a functional-dropout family that gets Δh at a sublayer's exit."""
    indices = sorted({p.block.index for p in placements if p.site in ("attn_out", "ffn")})
    takeovers = []
    for index in indices:
        block, layout = blocks[index]
        if layout.functional_dropout is not None:
            exits = [a.exit_path for a in layout.attentions] + [layout.ffn_exit_path]
            takeovers.append(DropoutTakeover(block, layout.functional_dropout,
                                             [block.get_submodule(path) for path in exits]))
    return takeovers


def _wire_sublayer(p: Placement, block: nn.Module, layout: StackLayout, container: nn.Module,
                   kw: dict) -> Wiring:
    """Δh on a projection, the attention output or the FFN: hooks on the frozen modules around it."""
    delta = SiteDelta(p.spec, p.size, p.in_width, p.out_width, **kw)
    if p.site == "attn_qkv":
        proj: Projection = getattr(layout.attentions[p.attention], p.projection)
        start = stop = None
        if proj.part is not None:  # a slice of a fused q/k/v projection (GPT-2's c_attn)
            start, stop = p.out_width * proj.part, p.out_width * (proj.part + 1)
        wiring = Wiring(p.key, delta, block.get_submodule(proj.path), start, stop, True)
    else:
        if p.site == "attn_out":
            paths = layout.attentions[p.attention]
            exit_path, dense, norm = paths.exit_path, paths.out, paths.norm
            source = {"parallel": paths.input_path, "after_norm": paths.residual_path}.get(p.spec.insertion)
        else:
            exit_path, dense, norm = layout.ffn_exit_path, layout.ffn_out, layout.ffn_norm
            source = {"parallel": layout.ffn_in[0], "after_norm": layout.ffn_residual_path}.get(p.spec.insertion)
        reads_sum = p.spec.insertion == "after_norm"
        wiring = Wiring(p.key, delta, block.get_submodule(exit_path), None, None, False,
                        dense=block.get_submodule(dense), reads_sum=reads_sum,
                        norm=block.get_submodule(norm) if reads_sum and norm else None)
        if source is not None:  # Δh reads x (parallel) or the residual stream (after_norm), not h alone
            wiring.handles.append(block.get_submodule(source).register_forward_pre_hook(wiring.capture))
    container.deltas[p.key] = delta
    wiring.handles.append(wiring.exit.register_forward_hook(wiring.add_increment))
    return wiring


def _inner_attention(model: nn.Module) -> str:
    """The attention implementation our head-attention function wraps (sdpa or eager)."""
    current = attn_implementation(model)
    inner = current.removeprefix("petl_")
    if inner not in attention.SUPPORTED_INNER:
        raise rule("attn_implementation", f"one of {list(attention.SUPPORTED_INNER)} for Δh on head attention "
                   "(prefixes, multi-head adapters)", current)
    return inner


def petl_config(model: nn.Module) -> PETLConfig:
    """The PETLConfig applied to `model` (error if none is)."""
    container = getattr(model, PETL_PREFIX, None)
    if container is None:
        raise PETLError("this model carries no PETL config; call apply_petl(model, config) first")
    return container.config


def remove_petl(model: nn.Module) -> nn.Module:
    """Take every Δh off `model` (hooks, attention routing, parameters). The backbone stays frozen."""
    petl_config(model)
    container = getattr(model, PETL_PREFIX)
    for wiring in container._wirings:
        for handle in wiring.handles:
            handle.remove()
    for hooks in container._head_hooks:
        hooks.remove()
    for takeover in container._takeovers:
        takeover.remove()
    for module in container._head_modules:
        module.__dict__.pop(attention.HEAD_SITE_ATTR, None)
    if container._attn_restore is not None:
        model.set_attn_implementation(container._attn_restore)
    delattr(model, PETL_PREFIX)
    return model
