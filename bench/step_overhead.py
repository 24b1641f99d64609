"""Training-step cost of Δh on the packaged MiniLM (CPU), measured side by side in one run.

Variants: the frozen backbone with no Δh (backward through the backbone, which every Δh needs, and
head-only), our LoRA, PEFT's LoRA with the same rank/targets, and our MAM preset. Steps alternate
between variants (round robin) so machine noise hits all of them alike; ratios are taken within each
round and their median is reported. Ratios are what to quote.

    python bench/step_overhead.py [--batch 16] [--length 64] [--rounds 15] [--threads 2]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from transformers import AutoModel
from transformers.utils import logging as hf_logging

import petl_search as ps
from petl_search.training.models import DEFAULT_ENCODER, resolve_model

from result_file import write_result  # bench/result_file.py


def build_variants(base: torch.nn.Module) -> dict[str, tuple[torch.nn.Module, bool]]:
    """name -> (model, whether the input embeddings need a gradient to make backward reach the backbone)."""
    import peft

    lora_r, lora_alpha = 8, 16
    ours_lora = ps.apply_petl(copy.deepcopy(base), ps.presets.lora(r=lora_r, alpha=lora_alpha))
    peft_lora = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(
        r=lora_r, lora_alpha=lora_alpha, target_modules=["query", "value"], lora_dropout=0.0))
    frozen = copy.deepcopy(base).requires_grad_(False)
    return {
        "frozen, head only": (frozen, False),
        "frozen, backward through backbone": (frozen, True),
        "petl-search LoRA r=8 (q,v)": (ours_lora, False),
        "PEFT LoRA r=8 (q,v)": (peft_lora, False),
        "petl-search MAM (l=30, r=512, s=4)": (ps.apply_petl(copy.deepcopy(base), ps.presets.mam()), False),
        # Where MAM's time goes, and MAM with r scaled to this model's width (the paper's r=512 is for d=1024).
        "  of which: prefix l=30 alone": (ps.apply_petl(copy.deepcopy(base), ps.presets.prefix_tuning(l=30)), False),
        "  of which: scaled PA r=512 alone": (
            ps.apply_petl(copy.deepcopy(base), ps.presets.scaled_parallel_adapter(r=512, s=4)), False),
        "petl-search MAM (l=30, r=192 = d/2, s=4)": (
            ps.apply_petl(copy.deepcopy(base), ps.presets.mam(ffn_r=base.config.hidden_size // 2)), False),
    }


def make_step(model: torch.nn.Module, grad_input: bool, batch: dict, hidden: int):
    head = torch.nn.Linear(hidden, 2)  # a trainable task head, as in a real candidate
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    embeddings = model.get_input_embeddings()
    labels = torch.randint(0, 2, (batch["input_ids"].shape[0],), generator=torch.Generator().manual_seed(0))

    def step() -> None:
        inputs = dict(batch)
        if grad_input:
            inputs["inputs_embeds"] = embeddings(inputs.pop("input_ids")).detach().requires_grad_(True)
        out = model(**inputs).last_hidden_state[:, 0]
        loss = torch.nn.functional.cross_entropy(head(out), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    settings = dict(vars(args))
    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = AutoModel.from_pretrained(resolve_model(DEFAULT_ENCODER)).train()
    ids = torch.randint(1000, 30000, (args.batch, args.length), generator=torch.Generator().manual_seed(1))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    steps = {name: make_step(model, grad, batch, base.config.hidden_size)
             for name, (model, grad) in build_variants(base).items()}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(args.warmup + args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if round_ >= args.warmup:
                times[name].append(time.perf_counter() - start)
    def ratio(a: str, b: str) -> float:
        """Median over rounds of a/b measured in the same round: paired, so drifts in load cancel."""
        return statistics.median(x / y for x, y in zip(times[a], times[b]))

    baseline = "frozen, backward through backbone"
    print(f"MiniLM-L6 (384d), batch {args.batch} x {args.length} tokens, {args.threads} threads, "
          f"{args.rounds} rounds; median step, and median per-round ratio to the frozen backbone with "
          f"backward through it")
    for name, t in times.items():
        print(f"  {name:<42} {1000 * statistics.median(t):8.1f} ms   {ratio(name, baseline):5.2f}x")
    mam = "petl-search MAM (l=30, r=512, s=4)"
    print(f"ours LoRA / PEFT LoRA = {ratio('petl-search LoRA r=8 (q,v)', 'PEFT LoRA r=8 (q,v)'):.3f} (target <= 1.0)")
    print(f"MAM / frozen backbone (backward through it) = {ratio(mam, baseline):.3f} (target <= 1.15)")
    print(f"MAM / frozen backbone (head only) = {ratio(mam, 'frozen, head only'):.3f}")
    # The adapter's FLOPs alone: 2·r·d per token against the FFN's 2·d·d_ff, i.e. r/d_ff of the FFN.
    d, d_ff = base.config.hidden_size, base.config.intermediate_size
    print(f"FLOP floor of the r=512 FFN adapter: +{512 / d_ff:.0%} of every FFN matmul (d={d}, d_ff={d_ff})")
    path = write_result("step_overhead", {
        "settings": settings,
        "variants": [{"variant": name.strip(), "median_step_ms": 1000 * statistics.median(t),
                      "ratio_to_frozen_backward": ratio(name, baseline)} for name, t in times.items()],
        "ours_lora_over_peft_lora": ratio("petl-search LoRA r=8 (q,v)", "PEFT LoRA r=8 (q,v)"),
        "target_ours_lora_over_peft_lora": 1.0,
        "mam_over_frozen_backward": ratio(mam, baseline), "target_mam_over_frozen_backward": 1.15,
        "mam_over_frozen_head_only": ratio(mam, "frozen, head only"),
        "flop_floor_r512_ffn_adapter": 512 / d_ff})
    print(f"result: {path}")


if __name__ == "__main__":
    main()
