"""Where each Δh of a config goes in a model, computed from the model *config* alone.

`plan(config, model_config)` is the single place that expands a PETLConfig into placements (one per
block × attention × projection, as the site requires) with their widths. `count_params` and
`apply_petl` both read it, so the count and the model cannot disagree about *what* is placed, while
the count itself is an independent formula (tests compare it with the parameters actually created).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .architectures import AttentionGeometry, BlockGeometry, geometry
from .config import DeltaSpec, PETLConfig
from .errors import rule


@dataclass(frozen=True)
class Placement:
    key: str  # unique, used as the module name under `petl.`
    site: str
    spec: DeltaSpec
    size: int
    block: BlockGeometry
    attention: int | None  # index into block.attentions for attention sites
    projection: str | None  # q/k/v for attn_qkv
    in_width: int  # width Δh reads
    out_width: int  # width Δh writes

    @property
    def attention_geometry(self) -> AttentionGeometry | None:
        return None if self.attention is None else self.block.attentions[self.attention]


def _widths(site: str, spec: DeltaSpec, block: BlockGeometry, attn: AttentionGeometry | None,
            projection: str | None) -> tuple[int, int]:
    if site in ("ffn", "attn_out"):
        return block.hidden, block.hidden
    if site == "attn_heads":  # the concatenated heads: queries in, head outputs out
        return attn.q_width, attn.q_width
    out = attn.q_width if projection == "q" else attn.kv_width  # attn_qkv
    return (block.hidden if spec.insertion == "parallel" else out), out


def plan(config: PETLConfig, model_config: Any) -> tuple[Placement, ...]:
    """Every placement of `config` in a model with `model_config`, validated against its geometry."""
    blocks = geometry(model_config)
    placements: list[Placement] = []
    for site, spec in config.sites():
        if spec.layers is not None and spec.layers[-1] >= len(blocks):
            raise rule(f"{site}.layers", f"block indices in [0, {len(blocks)}) for this model", list(spec.layers))
        for block in blocks:
            if not spec.applies_to(block.index):
                continue
            targets: list[tuple[int | None, str | None]]
            if site == "ffn":
                targets = [(None, None)]
            elif site == "attn_qkv":
                targets = [(i, p) for i in range(len(block.attentions)) for p in spec.projections]
            else:
                targets = [(i, None) for i in range(len(block.attentions))]
            for attn_index, projection in targets:
                attn = None if attn_index is None else block.attentions[attn_index]
                in_w, out_w = _widths(site, spec, block, attn, projection)
                if spec.form != "prefix" and (in_w % spec.heads or out_w % spec.heads):
                    raise rule(f"{site}.heads", f"a divisor of the widths Δh maps here (in={in_w}, out={out_w})",
                               spec.heads)
                key = "_".join(str(p) for p in (site, f"b{block.index}", attn and attn.kind, projection) if p)
                placements.append(Placement(key, site, spec, spec.size_at(block.index), block, attn_index,
                                            projection, in_w, out_w))
    return tuple(placements)
