"""Save and load trained Δh: `petl_config.json` (the stored PETLConfig, counts, base model) +
`weights.safetensors`.

The config file is not called `config.json`, which is the name of a model's own config in the same kind
of folder (an export holds both); folders written before 0.2 used that name and still load.

Only Δh is written (never pickle, never the backbone). A prefix's reparameterisation MLP is resolved
into the raw prefixes before saving, so the folder holds exactly the parameters `count_params` calls
stored, and it loads onto a fresh base model with `load_petl(model, folder)`.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..core.config import PETLConfig
from ..core.errors import PETLError
from ..core.params import count_params
from ..core.version import __version__
from .inject import PETL_PREFIX, apply_petl, petl_config, remove_petl

FORMAT = "petl-search-delta"
FORMAT_VERSION = 1
CONFIG_FILE = "petl_config.json"
LEGACY_CONFIG_FILE = "config.json"  # what petl-search 0.1 wrote; read, never written
WEIGHTS_FILE = "weights.safetensors"


def stored_state_dict(model: nn.Module) -> dict[str, Any]:
    """Δh tensors in stored form, keyed as a fresh container built from `config.for_storage()` keys them."""
    petl_config(model)  # a clear error if the model carries no Δh
    container = getattr(model, PETL_PREFIX)
    state = {f"deltas.{k}": v.detach() for k, v in container.deltas.state_dict().items()}
    for site, bank in container.prefixes.items():
        state.update({f"prefixes.{site}.raw.{key}": value for key, value in bank.materialize().items()})
    return {k: v.contiguous().cpu() for k, v in state.items()}


def copy_checked(own: dict[str, Any], state: dict[str, Any]) -> str | None:
    """Copy `state`'s tensors into `own`'s (same names and shapes) and return None; or, when a name is
    missing from `own` or a shape differs, copy nothing and return the first such name (the caller's
    error says what it means there)."""
    wrong = sorted(k for k in state if k not in own or own[k].shape != state[k].shape)
    if wrong:
        return wrong[0]
    with torch.no_grad():
        for name, value in state.items():
            own[name].copy_(value)
    return None


def umask_permissions(mode: int) -> int:
    """`mode` (0o666 for a file, 0o777 for a folder) under the process's umask: what open() and mkdir() give,
    for what tempfile creates private (0o600 / 0o700) and then moves into place."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def _write_atomically(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, umask_permissions(0o666))  # mkstemp's file is private; the user's umask decides
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_petl(model: nn.Module, directory: str | os.PathLike, *, overwrite: bool = False,
              metadata: dict[str, Any] | None = None) -> Path:
    """Write the model's Δh to `directory` (created). Refuses to overwrite unless `overwrite=True`."""
    config = petl_config(model).for_storage()
    out = Path(directory)
    if not overwrite and ((out / CONFIG_FILE).exists() or (out / WEIGHTS_FILE).exists()
                          or _legacy_config(out) is not None):
        raise PETLError(f"{out} already holds a saved Δh; pass overwrite=True to replace it")
    out.mkdir(parents=True, exist_ok=True)
    counts = count_params(config, model.config)
    document = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "petl_search_version": __version__,
        "petl_config": config.to_dict(), "fingerprint": config.fingerprint(),
        "base_model": {"model_type": model.config.model_type,
                       "name_or_path": getattr(model.config, "_name_or_path", "") or ""},
        "params": counts.to_dict(), "metadata": metadata or {},
    }
    state = stored_state_dict(model)
    _write_atomically(out / WEIGHTS_FILE, lambda p: save_file(state, p, metadata={"format": "pt"}))
    _write_atomically(out / CONFIG_FILE,
                      lambda p: Path(p).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n"))
    legacy = _legacy_config(out)
    if legacy is not None:  # overwriting a 0.1 folder: one config, not two that could disagree
        legacy.unlink()
    return out


def _legacy_config(directory: Path) -> Path | None:
    """A 0.1 folder's `config.json`, if it is ours (a model's own config.json is not)."""
    path = directory / LEGACY_CONFIG_FILE
    try:
        return path if json.loads(path.read_text()).get("format") == FORMAT else None
    except (OSError, ValueError, AttributeError):
        return None


def read_saved_config(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        path = _legacy_config(Path(directory)) or path
    if not path.is_file():
        raise PETLError(f"{path} not found: not a folder written by save_petl")
    document = json.loads(path.read_text())
    if document.get("format") != FORMAT:
        raise PETLError(f"{path}: format must be {FORMAT!r}, but got {document.get('format')!r}")
    if document.get("format_version", 0) > FORMAT_VERSION:
        raise PETLError(f"{path}: format_version {document['format_version']} is newer than this petl-search "
                        f"reads ({FORMAT_VERSION}); upgrade petl-search")
    return document


def load_petl(model: nn.Module, directory: str | os.PathLike, **apply_kwargs: Any) -> nn.Module:
    """Apply a saved Δh to a fresh base model (frozen, like apply_petl) and load its weights."""
    document = read_saved_config(directory)
    expected = document["base_model"]["model_type"]
    if model.config.model_type != expected:
        raise PETLError(f"{directory} was trained on model_type {expected!r}, but got a "
                        f"{model.config.model_type!r} model")
    config = PETLConfig.from_dict(document["petl_config"])
    state = load_file(str(Path(directory) / WEIGHTS_FILE))
    apply_petl(model, config, **apply_kwargs)
    container = getattr(model, PETL_PREFIX)
    try:
        container.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shapes or keys differ: another geometry than the one trained on
        remove_petl(model)
        raise PETLError(f"{directory} does not fit this model ({exc})") from None
    return model
