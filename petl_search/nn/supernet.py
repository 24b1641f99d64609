"""A weight-sharing supernet over PETL designs: one shared tensor per Δh parameter variant, and every
design a sub-network made of slices of them (one-shot NAS, as OFA / BigNAS / AutoFormer).

    shared["petl/deltas/ffn_b0/bottleneck/down_weight|lora|h1|nonorm"]   shape (1, R, 32)
        design ffn lora r=4  ─► shared[...][:, :4, :32]    (the first r rows)
        design ffn lora r=8  ─► shared[...][:, :8, :32]    (shares those 4 rows, and 4 more)

Key of a variant: the parameter's name as `apply_petl` names it (site, block, attention, projection and
role are all in it), plus what changes a tensor's shape or meaning: form, heads, input_norm, and for a
composition's own parameter (learned scale, gate) the composition, and on a projection (attn_qkv) the
insertion (a sequential Δh there reads the projection's output, a parallel one the hidden state).
Elsewhere insertion shares weights, as activation, init, scale and size do. The shared shape is the elementwise max over the "largest designs" given at
construction, and each shared tensor starts from a largest design's own initial values, so zero-
initialised up-projections and gates stay zero: every design starts at the frozen model (a prefix,
as ever, does not).

A design runs through the backbone with its own structure (`apply_petl` each time: about 2 ms on a
tiny model and 10 ms at MiniLM's size, a few percent of a training step, so it is not cached) and
`torch.func.functional_call` substituting each Δh parameter by its slice:
gradients reach the shared tensors through the slices, and only the slices the design uses.
What a design inherits does not depend on its `init` (nor on the `scale` a learned scale starts at):
the shared tensors are initialised once. The backbone stays frozen; the task head (`train_modules`) is
shared by every design and trained as it is.
This module must not know about search spaces or training loops; those give it designs.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..core.config import DeltaSpec, PETLConfig
from ..core.errors import PETLError
from ..core.placement import plan
from .inject import apply_petl, is_petl_parameter, remove_petl
from .serialization import copy_checked

FORMAT = "petl-search-supernet"


class Supernet(nn.Module):
    """Shared Δh tensors for `model` (a task model whose head is `train_modules`) and `largest` designs."""

    def __init__(self, model: nn.Module, largest: Iterable[PETLConfig], *, train_modules: Iterable[str] = (),
                 seed: int = 0) -> None:
        super().__init__()
        self.model = model
        self.train_modules = tuple(train_modules)
        self.largest = tuple(largest)
        if not self.largest:
            raise PETLError("a Supernet needs at least one largest design, but got none")
        self.shared = nn.ParameterDict(_initial_store(self, self.largest, seed))
        remove_petl(apply_petl(model, PETLConfig(), train_modules=self.train_modules))  # frozen, head trainable

    # --- one design -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def applied(self, design: PETLConfig) -> Iterator[nn.Module]:
        """The backbone carrying `design`'s structure (with throwaway Δh values) for the context."""
        # Building the structure draws initial values we never use: keep the global RNG out of it, so
        # dropout and sampling do not depend on how designs are built.
        with _rng_kept(self.model):
            apply_petl(self.model, design, train_modules=self.train_modules)
        try:
            yield self.model
        finally:
            remove_petl(self.model)

    def slices(self, design: PETLConfig) -> dict[str, torch.Tensor]:
        """Each Δh parameter of `design`, by its apply_petl name, as a (differentiable) slice of the store."""
        with self.applied(design) as model:
            return self._slices(model, design)

    def _slices(self, model: nn.Module, design: PETLConfig) -> dict[str, torch.Tensor]:
        out = {}
        for name, key, shape, stored in _layout(model, design):
            if key not in self.shared:
                raise PETLError(f"design {design.describe()} has Δh parameter {name} of variant {key!r}, which "
                                "no largest design of this supernet holds")
            tensor = self.shared[key]
            if any(n > m for n, m in zip(stored, tensor.shape)):
                raise PETLError(f"design {design.describe()} needs {name} of shape {tuple(stored)}, larger than "
                                f"the supernet's {tuple(tensor.shape)} (variant {key!r})")
            out[name] = tensor[tuple(slice(0, n) for n in stored)].reshape(shape)
        return out

    def regions(self, design: PETLConfig) -> dict[str, tuple[slice, ...]]:
        """The region of each shared tensor that `design` uses, by variant key."""
        with self.applied(design) as model:
            return {key: tuple(slice(0, n) for n in stored) for _, key, _, stored in _layout(model, design)}

    def forward(self, design: PETLConfig, *args: Any, **kwargs: Any) -> Any:
        """The model's output for `design` with its inherited weights; gradients reach the store."""
        with self.applied(design) as model:
            return torch.func.functional_call(model, self._slices(model, design), args, kwargs)

    def extract(self, design: PETLConfig) -> dict[str, torch.Tensor]:
        """`design`'s inherited Δh as a state dict of the stand-alone model (`apply_petl(backbone, design)`):
        exactly its Δh parameter names and shapes."""
        with torch.no_grad():
            return {name: t.detach().clone() for name, t in self.slices(design).items()}

    @contextlib.contextmanager
    def inherited(self, design: PETLConfig) -> Iterator[nn.Module]:
        """The backbone carrying `design` with its inherited weights loaded (a copy, no gradient to the
        store): for evaluation and generation, which call the model in more ways than forward."""
        with self.applied(design) as model:
            with torch.no_grad():
                for name, value in self._slices(model, design).items():
                    model.get_parameter(name).copy_(value)
            yield model

    # --- save and load ----------------------------------------------------------------------------
    def head_state(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def save(self, path: str | Path) -> None:
        """The store and the trained head as safetensors (the frozen backbone is not written)."""
        tensors = {f"shared:{k}": v for k, v in self.shared.items()}
        tensors.update({f"head:{k}": v for k, v in self.head_state().items()})
        meta = {"format": FORMAT, "largest": json.dumps([d.to_json() for d in self.largest])}
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path), metadata=meta)

    def load(self, path: str | Path) -> None:
        """Load what `save` wrote, into a supernet built on the same backbone and largest designs."""
        loaded = load_file(str(path))
        own = {f"shared:{k}": v for k, v in self.shared.items()}
        own.update({f"head:{k}": v for k, v in self.head_state().items()})
        wrong = next(iter(sorted(set(own) - set(loaded))), None) or copy_checked(own, loaded)
        if wrong:
            raise PETLError(f"{path} does not fit this supernet (built from other largest designs or another "
                            f"model?): first mismatching tensor {wrong!r}")


def _spec_of(name: str, design: PETLConfig, sites: Mapping[str, str]) -> DeltaSpec:
    """The spec that Δh parameter `name` belongs to (`sites`: placement key -> site)."""
    parts = name.split(".")  # petl.deltas.<placement key>... or petl.prefixes.<site>...
    return getattr(design, sites[parts[2]] if parts[1] == "deltas" else parts[2])


def variant_key(name: str, spec: DeltaSpec) -> str:
    """The store's key of Δh parameter `name` of `spec` (names hold site, block, attention, projection)."""
    bits = [name.replace(".", "/"), spec.form, f"h{spec.heads}", "norm" if spec.input_norm else "nonorm"]
    if name.endswith("composition.weight"):
        bits.append(spec.composition)  # a learned scale and a gate are different numbers
    if name.startswith("petl.deltas.attn_qkv_"):
        # on a projection, a sequential Δh reads its output and a parallel one the hidden state: the same
        # column of W_down means a different input feature (and a different width under GQA)
        bits.append(spec.insertion)
    return "|".join(bits)


def _layout(model: nn.Module, design: PETLConfig) -> list[tuple[str, str, torch.Size, tuple[int, ...]]]:
    """(name, variant key, shape, stored shape) of each Δh parameter of the model carrying `design`."""
    sites = {p.key: p.site for p in plan(design, model.config)}
    out = []
    for name, param in model.named_parameters():
        if not is_petl_parameter(name):
            continue
        spec = _spec_of(name, design, sites)
        stored = tuple(param.shape)
        if name.endswith("down_bias") and spec.heads > 1:
            # Biases of a multi-head bottleneck are (heads · r/h): store them per head, so that the first
            # r/h units of each head keep their bias, as they keep their rows of W_down and W_up.
            stored = (spec.heads, stored[0] // spec.heads)
        out.append((name, variant_key(name, spec), param.shape, stored))
    return out


def _initial_store(supernet: Supernet, largest: tuple[PETLConfig, ...], seed: int) -> dict[str, nn.Parameter]:
    """One tensor per variant, of the elementwise max shape, holding a largest design's initial values.

    Where largest designs of one variant differ in shape (a sequential and a parallel LoRA on k read
    different widths), the larger one's values are written last and cover the smaller's; a region no
    largest design covers (shapes that do not nest, not produced by the shipped spaces) starts at zero.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    values: dict[str, dict[tuple[int, ...], torch.Tensor]] = {}  # one value per shape: memory stays bounded
    for design in largest:
        with _rng_kept(supernet.model):
            torch.manual_seed(_seed_of(design, seed))
            apply_petl(supernet.model, design, train_modules=supernet.train_modules)
        try:
            for name, key, _, stored in _layout(supernet.model, design):
                shapes[key] = tuple(max(a, b) for a, b in zip(shapes.get(key, stored), stored))
                value = supernet.model.get_parameter(name).detach().reshape(stored).clone()
                values.setdefault(key, {})[stored] = value
        finally:
            remove_petl(supernet.model)
    store = {}
    for key, shape in shapes.items():
        first = next(iter(values[key].values()))
        tensor = torch.zeros(shape, dtype=first.dtype, device=first.device)
        for value in sorted(values[key].values(), key=lambda v: v.numel()):
            tensor[tuple(slice(0, n) for n in value.shape)] = value
        store[key] = nn.Parameter(tensor)
    return store


def _seed_of(design: PETLConfig, seed: int) -> int:
    """The seed of a largest design's initial values: from `seed` and its fingerprint, so that the store
    does not depend on the order of the largest designs nor on the global RNG state."""
    return (int(design.fingerprint(), 16) + seed) % 2**31


def _rng_kept(model: nn.Module) -> contextlib.AbstractContextManager:
    """The global RNG state (CPU, and the model's GPU) as it was before the context."""
    device = next(model.parameters()).device
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
