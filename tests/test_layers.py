"""The package's layers: each imports only the layers below it, none of our own imports hides inside a
function (a sign that a piece sits in the wrong layer) except in the CLI, and the lower layers load
without torch.

    core → nn → training → search → analysis → cli, export, toy
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "petl_search"
LAYERS = {"core": 0, "nn": 1, "training": 2, "search": 3, "analysis": 4}
TOP = 5  # cli.py, export.py, toy.py and the package's __init__
# The CLI imports each command's layers inside the command, so `petl-search count` starts without torch.
LOCAL_IMPORTS_ALLOWED = {"petl_search.cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], TOP) if len(parts) > 1 else TOP


def own_imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import of petl_search in the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f) if n is not f}
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                root = ".".join(base + ([node.module] if node.module else []))
            else:
                root = node.module or ""
            # `from . import x` / `from .training import data`: the names may be modules themselves
            targets = [f"{root}.{a.name}" if (PACKAGE.parent / Path(*f"{root}.{a.name}".split("."))).with_suffix(
                ".py").is_file() or (PACKAGE.parent / Path(*f"{root}.{a.name}".split("."))).is_dir() else root
                for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            if target == "petl_search" or target.startswith("petl_search."):
                found.append((target, node.lineno, id(node) in in_function))
    return sorted(set(found), key=lambda f: (f[1], f[0]))


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_layers_are_the_subpackages() -> None:
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(LAYERS)
    assert {p.name for p in PACKAGE.glob("*.py")} == {"__init__.py", "cli.py", "export.py", "toy.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_run_down_the_layers_only(path: Path) -> None:
    source = module_name(path)
    upward = [f"line {line}: {target}" for target, line, _ in own_imports(path) if layer(target) > layer(source)]
    assert not upward, f"{source} (layer {layer(source)}) imports a higher layer: {upward}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_own_import_hides_in_a_function(path: Path) -> None:
    source = module_name(path)
    if source in LOCAL_IMPORTS_ALLOWED:
        return
    hidden = [f"line {line}: {target}" for target, line, local in own_imports(path) if local]
    assert not hidden, f"{source} imports our own modules inside functions: {hidden}"


def probe_imports(path: Path, source: str) -> list[tuple[str, int, bool]]:
    """`own_imports` of a module written with `source` at `path` for the call, and removed after."""
    path.write_text(source)
    try:
        return own_imports(path)
    finally:
        path.unlink()


def test_the_checker_sees_upward_and_hidden_imports() -> None:
    """The two tests above can fail: a core module importing search, inside a function, is caught."""
    imports = probe_imports(PACKAGE / "core" / "_layer_probe.py", "def f():\n    from ..search.language import study\n"
                            "    from petl_search.analysis.front import front_records\n")
    assert imports == [("petl_search.search.language.study", 2, True), ("petl_search.analysis.front", 3, True)]
    assert all(layer(t) > layer("petl_search.core._layer_probe") for t, _, _ in imports)


def test_spaces_studies_and_counts_load_without_torch() -> None:
    code = ("import sys, petl_search, petl_search.core.params, petl_search.core.presets, petl_search.search.language.space, "
            "petl_search.search.language.study, petl_search.training.config\n"
            "print(sorted(m for m in ('torch', 'ray', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# The search layer's own parts, in order: each imports only the parts before it.
SEARCH_PARTS = {"language": 0, "optuna_bridge": 1, "oneshot": 2, "runner": 3}
SEARCH = PACKAGE / "search"


def search_part(module: str) -> int | None:
    parts = module.split(".")
    return SEARCH_PARTS.get(parts[2]) if len(parts) > 2 and parts[1] == "search" else None


def test_the_search_parts_are_its_subpackages() -> None:
    assert {p.name for p in SEARCH.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(SEARCH_PARTS)
    assert {p.name for p in SEARCH.glob("*.py")} == {"__init__.py"}


@pytest.mark.parametrize("path", sorted(SEARCH.rglob("*.py")), ids=lambda p: module_name(p))
def test_search_parts_import_only_the_parts_before_them(path: Path) -> None:
    source = search_part(module_name(path))
    if source is None:
        return
    upward = [f"line {line}: {target}" for target, line, _ in own_imports(path)
              if (search_part(target) or 0) > source]
    assert not upward, f"{module_name(path)} (search part {source}) imports a later part: {upward}"


def test_the_search_part_checker_sees_a_later_part() -> None:
    imports = probe_imports(SEARCH / "language" / "_part_probe.py", "from ..runner import ray_runner\n")
    assert imports == [("petl_search.search.runner.ray_runner", 1, False)]
    assert search_part(imports[0][0]) > search_part("petl_search.search.language._part_probe")
