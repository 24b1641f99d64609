"""The package version, in one place (the saved-Δh format and the CLI stamp it), and the one check of a
dependency's major version that the places reaching past a library's public API share."""
from __future__ import annotations

import warnings

__version__ = "0.2.0"


def major(version: str) -> int:
    return int(version.split(".")[0])


def checked_major(library: str, installed: str, checked: str, *, relies: str, risk: str) -> bool:
    """Whether `installed` is of the major release of `checked`, the version whose source `relies` (what
    petl-search does past the library's public API) was read against; warns, naming `risk`, if not."""
    if major(installed) == major(checked):
        return True
    warnings.warn(f"{relies} are made for {library} {major(checked)}.x (checked with {checked}), but {library} "
                  f"{installed} is installed: {risk}; install {library.lower()}>={major(checked)},<{major(checked) + 1}",
                  UserWarning, stacklevel=3)
    return False
