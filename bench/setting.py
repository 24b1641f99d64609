"""What the search benchmarks run on: a real model and GLUE folder, or by default the toy setting."""
from __future__ import annotations

import argparse
from pathlib import Path

from petl_search.toy import write_tiny_model, write_toy_glue


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="default: a tiny random BERT written to a temporary folder")
    parser.add_argument("--data-dir", help="GLUE folder; default: the toy task")


def resolve(args: argparse.Namespace, workdir: Path, *, train_examples: int = 512) -> None:
    """Fill args.model and args.data_dir with the toy setting (written under workdir) where not given; set
    args.toy when either was (see result_name)."""
    args.toy = args.model is None or args.data_dir is None
    args.model = args.model or str(write_tiny_model(workdir / "model"))
    args.data_dir = args.data_dir or str(write_toy_glue(workdir / "glue", train=train_examples))


def result_name(stem: str, args: argparse.Namespace) -> str:
    """The result file's name (bench/result_file.py): `stem`, or `stem_toy` for a run in the toy setting, so
    that a quick check never replaces a committed result on a real model."""
    return f"{stem}_toy" if getattr(args, "toy", False) else stem
