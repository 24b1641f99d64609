"""User-facing errors of petl-search.

Every message names the field, the allowed values and the value received, so that a user can fix the
input without reading our code. This module must not import torch or transformers.
"""
from __future__ import annotations

from typing import Any, Iterable


class PETLError(ValueError):
    """Base class of every error petl-search raises for bad user input."""


class Interrupted(PETLError):
    """The user stopped a long run (Ctrl-C) before it finished: what finished is saved. The CLI exits 130,
    as shells expect of a process ended by SIGINT, not 0 (a script must not take it for a finished run)."""


class PETLConfigError(PETLError):
    """A point of the design space (or a preset argument) is invalid."""


class UnsupportedModelError(PETLError):
    """The model's architecture family has no layout table."""


def one_of(field: str, allowed: Iterable[Any], got: Any) -> PETLConfigError:
    """Error for a value outside an enumerated vocabulary."""
    return PETLConfigError(f"{field} must be one of {sorted(allowed)!r}, but got {got!r}")


def rule(field: str, requirement: str, got: Any) -> PETLConfigError:
    """Error for a value that breaks a stated rule, e.g. rule('ffn.size', 'a positive integer', 0)."""
    return PETLConfigError(f"{field} must be {requirement}, but got {got!r}")
