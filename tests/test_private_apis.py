"""What petl-search uses of Optuna and transformers past their public API stays in one version-checked place
each: the storage calls in search/optuna_bridge/storage.py (test_storage_store.py), the reach into modeling files in
nn/transformers_compat.py (test_transformers_compat.py). Everywhere else: no private module or name of
either library is imported, no storage method is called, no module is looked up in `sys.modules`."""
from __future__ import annotations

import ast
from pathlib import Path

import optuna
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "petl_search"
STORAGE_PLACE = "search/optuna_bridge/storage.py"
MODELING_PLACE = "nn/transformers_compat.py"
LIBRARIES = ("optuna", "transformers")
STORAGE_CALLS = {n for n in dir(optuna.storages.BaseStorage) if not n.startswith("_")} | {"get_storage"}
STUDY_INTERNALS = {"_storage", "_study_id", "_trial_id", "_backend"}
MODELING_INTERNALS = {"_attn_implementation"}  # a transformers config's private property


def private_uses(source: str, place: str) -> list[str]:
    """Each use, in `source` (the file `place` under petl_search/), of what only the two places may use."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            names = [] if isinstance(node, ast.Import) else [a.name for a in node.names]
            for module in modules:
                if module.split(".")[0] in LIBRARIES and (
                        any(part.startswith("_") for part in module.split(".")) or
                        any(name.startswith("_") for name in names)):
                    found.append(f"line {node.lineno}: imports {module} {names}")
        elif isinstance(node, ast.Attribute):
            if node.attr in STUDY_INTERNALS or (node.attr in STORAGE_CALLS and place != STORAGE_PLACE):
                found.append(f"line {node.lineno}: .{node.attr}")
            elif (node.attr == "modules" and isinstance(node.value, ast.Name) and node.value.id == "sys"
                  and place != MODELING_PLACE):
                found.append(f"line {node.lineno}: sys.modules")
            elif node.attr in MODELING_INTERNALS and place != MODELING_PLACE:
                found.append(f"line {node.lineno}: .{node.attr}")
    return sorted(found, key=lambda use: int(use.split()[1].rstrip(":")))


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_private_apis_stay_in_their_one_place(path: Path) -> None:
    place = path.relative_to(PACKAGE).as_posix()
    uses = private_uses(path.read_text(), place)
    assert not uses, (f"petl_search/{place} uses what only {STORAGE_PLACE} (Optuna storage calls) or "
                      f"{MODELING_PLACE} (transformers' modeling modules) may: {uses}")


def test_the_two_places_exist_and_the_checker_sees_each_kind_of_use() -> None:
    assert (PACKAGE / STORAGE_PLACE).is_file() and (PACKAGE / MODELING_PLACE).is_file()
    probe = ("import sys\n"
             "from optuna._hypervolume import compute_hypervolume\n"
             "from transformers.modeling_utils import _init_weights\n"
             "import optuna.storages._cached_storage\n"
             "def f(study, module):\n"
             "    study._storage.set_trial_user_attr(0, 'k', 1)\n"
             "    optuna.storages.get_storage(None)\n"
             "    module.config._attn_implementation\n"
             "    return sys.modules[type(module).__module__]\n")
    assert len(private_uses(probe, "search/probe.py")) == 8
    assert [u.split(": ")[1] for u in private_uses(probe, STORAGE_PLACE)] == [
        "imports optuna._hypervolume ['compute_hypervolume']", "imports transformers.modeling_utils ['_init_weights']",
        "imports optuna.storages._cached_storage []", "._storage", "._attn_implementation", "sys.modules"]
    assert private_uses("import sys\nx = sys.modules['torch']\n", MODELING_PLACE) == []
