"""Result files: what a benchmark measured, as one small JSON file under bench/results/ that is committed,
so that every number a doc quotes has a file beside it (docs/performance.md, docs/results.md).

    from result_file import write_result          # a bench script: bench/ is on sys.path when it runs
    write_result("step_overhead", {"ratio": 0.97, "variants": [{"name": "LoRA", "ms": 81.0}]})
    read_result("step_overhead")["figures"]["ratio"]

A file holds: the command line, the git commit (with "+dirty" when tracked files had uncommitted changes,
and which), the date (UTC), the machine (platform, CPUs, torch and its device, the GPU's name on CUDA),
the package version, and the figures: a JSON-able dict of ratios, counts and small tables (lists of
dicts). Non-finite floats are written as null (JSON has no NaN or Infinity): a script that means
"never" writes None itself.

It must not hold checkpoints, per-step dumps or anything large: a file over MAX_BYTES is refused.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
MAX_BYTES = 256 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def write_result(name: str, figures: dict[str, Any], *, command: str | None = None) -> Path:
    """Write bench/results/<name>.json (replacing it) and return its path. `command` defaults to this
    process's command line."""
    if not _NAME.match(name) or name.endswith(".json"):
        raise ValueError(f"a result's name must be letters, digits, '.', '_' or '-', without '.json' (it "
                         f"becomes bench/results/<name>.json), but got {name!r}")
    if not isinstance(figures, dict):
        raise TypeError(f"figures must be a dict, but got {type(figures).__name__}")
    result = {
        "name": name,
        "command": command if command is not None else shlex.join(["python", *sys.argv]),
        **git_state(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "package_version": package_version(),
        "figures": _finite(figures),
    }
    text = json.dumps(result, indent=1, allow_nan=False, default=_plain) + "\n"
    if len(text.encode()) > MAX_BYTES:
        raise ValueError(f"result {name!r} would be {len(text.encode()):,} bytes, over the {MAX_BYTES:,} a "
                         f"result file may hold: keep figures to ratios, counts and small tables")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)
    return path


def read_result(name: str) -> dict[str, Any]:
    """The result file bench/results/<name>.json, as written by write_result."""
    return json.loads((RESULTS_DIR / f"{name}.json").read_text())


def git_state() -> dict[str, Any]:
    """{"commit": HEAD, with "+dirty" when tracked files differ from it, "changed_files": those files}; the
    commit is None (and "git_error" says why) outside a git checkout."""
    try:
        head = _git("rev-parse", "HEAD")
        changed = _git("diff", "HEAD", "--name-only").splitlines()  # staged or not, tracked files only
    except (OSError, subprocess.CalledProcessError) as exc:
        return {"commit": None, "git_error": str(exc)}
    return {"commit": head + ("+dirty" if changed else ""), "changed_files": changed[:50]}


def machine() -> dict[str, Any]:
    """Where it ran: platform, CPUs, Python, and torch's version and device (the GPU's name on CUDA)."""
    out: dict[str, Any] = {"platform": platform.platform(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
                           "python": platform.python_version()}
    try:
        import torch
    except ImportError:
        return out
    out["torch"] = torch.__version__
    out["torch_threads"] = torch.get_num_threads()
    out["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def package_version() -> str:
    import petl_search

    return petl_search.__version__


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by None, tuples as lists, numpy scalars as Python's."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict, str)) and getattr(value, "ndim", 0) == 0:
        value = value.item()  # numpy scalar
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """json's fallback: paths as text; anything else is refused with its type."""
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"a result's figures must be JSON data (dicts, lists, numbers, text), but got "
                    f"{type(value).__name__}: {value!r}"[:300])
