"""Smoke test on the real packaged MiniLM (offline) with real SST-2 sentences: LoRA and MAM apply,
start where they should, learn in one step, and round-trip through save/load onto a fresh copy."""
from __future__ import annotations

import csv

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import petl_search as ps
from petl_search.training.models import DEFAULT_ENCODER, resolve_model
from petl_search.training.tasks import default_glue_dir
from petl_search.training.config import TrainConfig
from petl_search.training.trainer import train

GLUE = default_glue_dir("sst2")  # where train() reads it too: set up, else beside the checkout, else packaged


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    path = GLUE / "SST-2" / "dev.tsv"
    assert path.is_file(), f"SST-2's dev file is expected at {path}"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[:8]
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(DEFAULT_ENCODER))
    encoded = tokenizer([r["sentence"] for r in rows], padding=True, return_tensors="pt")
    encoded["labels"] = torch.tensor([int(r["label"]) for r in rows])
    return dict(encoded)


def load_minilm() -> torch.nn.Module:
    return AutoModel.from_pretrained(resolve_model(DEFAULT_ENCODER)).eval()


# One AdamW step's learning rate per preset. Adam's first step moves every trained coordinate by about lr,
# and MAM's defaults train 67x more coordinates than LoRA's (4.9M: a 512-wide prefix MLP, r=512 adapters): at
# 1e-2 its step overshoots (batch loss 0.67 -> 3.8), at 1e-4 it lowers the loss (0.67 -> 0.59); LoRA at 1e-2
# goes 0.68 -> 0.42. (A finite-difference check agrees with MAM's gradient; the trainer warms up from ~6e-5.)
STEP_LR = {"lora": 1e-2, "mam": 1e-4}


@pytest.mark.parametrize("name", ["lora", "mam"])
def test_real_minilm_learns_and_round_trips(name: str, batch: dict, tmp_path) -> None:
    """The preset applies with exact parameter counts, starts at the frozen model (LoRA) or not (MAM's
    prefix changes attention from the start), one optimizer step lowers the batch loss, and save/load
    reproduces the trained model on a fresh copy."""
    torch.manual_seed(0)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    model = load_minilm()
    assert model.config.model_type == "bert" and model.config.hidden_size == 384
    with torch.no_grad():
        frozen = model(**inputs).last_hidden_state
    config = ps.preset(name)
    ps.apply_petl(model, config)
    counted = ps.count_params(config, model.config)
    assert counted.trained == sum(p.numel() for n, p in model.named_parameters() if ps.is_petl_parameter(n))
    assert counted.backbone == 22_713_216  # all-MiniLM-L6-v2
    with torch.no_grad():
        start = model(**inputs).last_hidden_state
    assert torch.equal(start, frozen) == (name == "lora")

    # One AdamW step on the batch's loss, in eval mode (no dropout), so the step follows the gradient of the
    # very loss compared afterwards: learning means that loss goes down, not merely that outputs moved.
    head = torch.nn.Linear(384, 2)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=STEP_LR[name])

    def batch_loss() -> torch.Tensor:
        return torch.nn.functional.cross_entropy(head(model(**inputs).last_hidden_state[:, 0]), batch["labels"])

    assert not model.training
    before = batch_loss()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = batch_loss()
        trained = model(**inputs).last_hidden_state
    assert after.item() < before.item(), f"one step did not lower the batch loss: {before.item()} -> {after.item()}"

    ps.save_petl(model, tmp_path / name)
    fresh = ps.load_petl(load_minilm(), tmp_path / name)
    with torch.no_grad():
        assert torch.equal(fresh(**inputs).last_hidden_state, trained)


def test_real_minilm_trains_on_real_sst2_through_the_trainer() -> None:
    """The full path a search takes (real tokenizer, real files, real model), kept short."""
    cfg = TrainConfig(max_steps=100, eval_every=50, eval_examples=64, max_train_examples=3200, threads=2)
    result = train(ps.presets.lora(r=8), "sst2", train_config=cfg)
    assert result.status == "completed" and result.steps == 100
    assert result.params["backbone"] == 22_713_216
    assert result.params["head"] == (384 * 384 + 384) + (384 * 2 + 2)  # BERT's pooler + the classifier
    assert result.metrics["accuracy"] > 0.7  # 100 steps of LoRA on a sentence encoder: well above chance
    assert [h["on"] for h in result.history] == ["dev subset", "dev"]
