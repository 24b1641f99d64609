"""What the search benchmarks run on: a real model and GLUE folder, or by default the toy setting."""
from __future__ import annotations

import argparse
from pathlib import Path

from petl_search.toy import write_tiny_model, write_toy_glue


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="default: a tiny random BERT written to a temporary folder")
    parser.add_argument("--data-dir", help="GLUE folder; default: the toy task")


def resolve(args: argparse.Namespace, workdir: Path, *, train_examples: int = 512) -> None:
    """Fill args.model and args.data_dir with the toy setting (written under workdir) where not given."""
    args.model = args.model or str(write_tiny_model(workdir / "model"))
    args.data_dir = args.data_dir or str(write_toy_glue(workdir / "glue", train=train_examples))
