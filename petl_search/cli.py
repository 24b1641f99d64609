"""The `petl-search` command line. User errors print as one line on stderr and exit with status 2.

    petl-search presets [--model NAME]              every preset, its design point and its parameter count
    petl-search count (--preset NAME [--arg K=V]... | --config FILE.json) [--model NAME]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from .config import PETLConfig
from .errors import PETLError
from .models import DEFAULT_ENCODER, resolve_model
from .params import count_params
from .presets import PRESETS, preset


def _model_config(name: str) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolve_model(name))
    except OSError as exc:
        raise PETLError(f"model {name!r} could not be loaded: {str(exc).splitlines()[0]}") from None


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _preset_kwargs(pairs: Sequence[str]) -> dict[str, Any]:
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise PETLError(f"--arg must look like KEY=VALUE, but got {pair!r}")
        kwargs[key] = _value(value)
    return kwargs


def _row(name: str, config: PETLConfig, model_config: Any) -> str:
    c = count_params(config, model_config)
    return f"{name:<24} {c.trained:>12,} {c.stored:>12,} {100 * c.stored_fraction:>9.3f}%  {config.describe()}"


def cmd_presets(args: argparse.Namespace) -> None:
    model_config = _model_config(args.model)
    print(f"model {args.model} ({model_config.model_type}); stored % is of the backbone")
    print(f"{'preset':<24} {'trained':>12} {'stored':>12} {'stored %':>10}  design point")
    for name in PRESETS:
        print(_row(name, preset(name, model_config=model_config), model_config))


def cmd_count(args: argparse.Namespace) -> None:
    if (args.preset is None) == (args.config is None):
        raise PETLError("count needs exactly one of --preset NAME or --config FILE.json")
    model_config = _model_config(args.model)
    if args.config is not None:
        path = Path(args.config)
        if not path.is_file():
            raise PETLError(f"--config file {path} not found")
        try:
            config = PETLConfig.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise PETLError(f"--config file {path} is not valid JSON: {exc}") from None
        name = path.stem
    else:
        config, name = preset(args.preset, model_config=model_config, **_preset_kwargs(args.arg)), args.preset
    counted = count_params(config, model_config)
    print(json.dumps({"name": name, "config": config.to_dict(), "fingerprint": config.fingerprint(),
                      "model": args.model, "params": counted.to_dict()}, indent=2, sort_keys=True))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="petl-search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("presets", help="list the presets with their parameter counts on a model")
    p.add_argument("--model", default=DEFAULT_ENCODER, help=f"model name, path or Hub id (default {DEFAULT_ENCODER})")
    p.set_defaults(func=cmd_presets)
    c = sub.add_parser("count", help="count the Δh parameters of one design point on a model")
    c.add_argument("--preset", choices=sorted(PRESETS))
    c.add_argument("--arg", action="append", default=[], metavar="K=V", help="preset argument (JSON value)")
    c.add_argument("--config", help="a PETLConfig as a JSON file")
    c.add_argument("--model", default=DEFAULT_ENCODER)
    c.set_defaults(func=cmd_count)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except PETLError as exc:
        print(f"petl-search: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
