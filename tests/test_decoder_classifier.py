"""A decoder LLM as a classifier (Llama's sequence-classification head, what SmolLM2 is trained as), on tiny
random Llama configs, one with SmolLM2's grouped-query ratio (9 query heads over 3 key/value heads): every
preset applies with exact counts, the head `score` is the task head and trains beside Δh, an export of
every point loads back with `petl_search.load` to the same logits, the PEFT folder of a LoRA point gives
the same logits under `PeftModel.from_pretrained`, and prefix tuning on grouped heads matches PEFT's. The
real SmolLM2 runs the same in test_smollm2_smoke.py."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import peft
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, LlamaConfig

import petl_search as ps
from petl_search.core.architectures import geometry
from petl_search.export import HEAD_FILE, PEFT_DIR, write_folder
from petl_search.nn.serialization import stored_state_dict
from petl_search.training.models import head_modules, prepare_tokenizer
from conftest import randomise_deltas

PAD = 0
# the conftest Llama (4 query heads over 2 key/value heads), and SmolLM2's ratio (9 over 3) at head_dim 4
GQA = {"4q/2kv": dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=2),
       "9q/3kv": dict(hidden_size=36, num_attention_heads=9, num_key_value_heads=3)}
PRESETS = sorted(ps.PRESETS)


def llama_config(shape: str, **extra) -> LlamaConfig:
    return LlamaConfig(**GQA[shape], num_hidden_layers=2, intermediate_size=64, vocab_size=100, pad_token_id=PAD,
                       **extra)


def classifier(shape: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(llama_config(shape, num_labels=2)).eval()


def padded_inputs(batch: int = 3, length: int = 7) -> dict[str, torch.Tensor]:
    """Right-padded token ids (rows 1 and 2 end in padding), none of them the pad id elsewhere."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 100, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, length - 2:] = 0
    mask[2, length - 4:] = 0
    return {"input_ids": ids.masked_fill(mask == 0, PAD), "attention_mask": mask}


def delta_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if ps.is_petl_parameter(n))


@pytest.mark.parametrize("shape", sorted(GQA))
@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_on_a_llama_classifier_counts_exactly_and_trains_only_delta_and_score(shape, name) -> None:
    base = classifier(shape)
    config = ps.preset(name, model_config=base.config, **({"r": 4} if name == "lora" else {}))
    heads = head_modules(base)
    assert heads == ["score"]  # Llama's classifier: hidden × labels, no bias, on the last non-pad token
    model = ps.apply_petl(base, config, train_modules=heads)
    counted = ps.count_params(config, model.config)
    assert counted.trained == delta_params(model)
    assert counted.stored == sum(t.numel() for t in stored_state_dict(model).values())
    assert counted.backbone == sum(p.numel() for n, p in model.named_parameters()
                                   if n.startswith("model."))  # the score head is not in the budget
    assert head_modules(model) == ["score"]  # Δh, once applied, is not taken for a head
    model(**padded_inputs(), labels=torch.tensor([0, 1, 1])).loss.backward()
    for n, p in model.named_parameters():
        trained = ps.is_petl_parameter(n) or n.startswith("score.")
        assert p.requires_grad == trained and (p.grad is not None) == trained, n
    assert model.score.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", PRESETS)
def test_the_classifier_reads_the_last_real_token_with_every_preset(name) -> None:
    """Right padding changes nothing: a padded row's logits are the unpadded row's (the head reads the last
    token that is not `pad_token_id`, and Δh — prefixes included — never lets a real token see padding)."""
    model = ps.apply_petl(classifier("9q/3kv"), ps.preset(name, model_config=llama_config("9q/3kv")))
    randomise_deltas(model)
    inputs = padded_inputs()
    with torch.no_grad():
        batched = model(**inputs).logits
        for row in (1, 2):
            real = int(inputs["attention_mask"][row].sum())
            alone = model(input_ids=inputs["input_ids"][row:row + 1, :real]).logits
            torch.testing.assert_close(batched[row:row + 1], alone, atol=1e-5, rtol=0)


class _Tokenizer:
    """What prepare_tokenizer reads and sets of a tokenizer (pad_token_id follows pad_token): one with no pad."""

    eos_token, pad_token = "</s>", None
    vocab = {"</s>": 7, "<pad>": 9}

    @property
    def pad_token_id(self) -> int | None:
        return self.vocab.get(self.pad_token)


def test_a_tokenizer_without_padding_pads_with_its_end_of_sequence_and_the_config_follows_the_tokenizer() -> None:
    model = classifier("9q/3kv")
    model.config.pad_token_id = None
    tokenizer = _Tokenizer()
    prepare_tokenizer(model, tokenizer)
    assert (tokenizer.pad_token, tokenizer.pad_token_id, model.config.pad_token_id) == ("</s>", 7, 7)
    tokenizer.pad_token = "<pad>"  # batches padded with another token than the config names: it must follow
    prepare_tokenizer(model, tokenizer)
    assert model.config.pad_token_id == 9


def _write_export(folder, model, config: ps.PETLConfig) -> str:
    """The export's writer (export.write_folder) on a model trained elsewhere: what `petl-search export` writes
    after re-training a point (Δh, head.safetensors, the PEFT folder where LoRA-only, the card)."""
    result = SimpleNamespace(trained_model=model, train_config={"learning_rate": 1e-3, "max_steps": 1, "batch_size": 2,
                                                                "seed": 0},
                             metrics={"accuracy": 0.5}, evaluated_on="dev", dev_metrics={}, params={
                                 "delta_stored": 1, "delta_stored_fraction": 0.0, "head": 1, "backbone": 1})
    spec = SimpleNamespace(name="decoder", task="sst2", model="tiny-llama", main_metric="accuracy", data_source=None)
    record = SimpleNamespace(number=0, kind="baseline", label="point", metric=0.5, config=config.to_dict())
    return write_folder(folder, result, spec, record, True)


@pytest.mark.parametrize("name", PRESETS)
def test_every_exported_point_loads_on_a_fresh_decoder_with_the_same_logits(name, tmp_path) -> None:
    config = ps.preset(name, model_config=llama_config("9q/3kv"))
    base = classifier("9q/3kv")
    model = ps.apply_petl(base, config, train_modules=head_modules(base))
    randomise_deltas(model)
    with torch.no_grad():
        model.score.weight.add_(1.0)  # a trained head, which the export must carry
    inputs = padded_inputs()
    with torch.no_grad():
        expected = model(**inputs).logits
    peft_status = _write_export(tmp_path, model, config)
    assert sorted(load_file(str(tmp_path / HEAD_FILE))) == ["score.weight"]  # the head alone, not Δh again
    fresh = classifier("9q/3kv")
    with torch.no_grad():
        fresh.score.weight.normal_()  # another head: the trained one must come from the file
    ps.load(fresh, tmp_path)
    with torch.no_grad():
        assert torch.equal(fresh(**inputs).logits, expected)
    assert (peft_status == "written") == (name == "lora")


@pytest.mark.parametrize("shape", sorted(GQA))
def test_the_peft_folder_of_a_decoder_lora_gives_our_logits(shape, tmp_path) -> None:
    config = ps.presets.lora(r=4)
    base = classifier(shape)
    model = ps.apply_petl(copy.deepcopy(base), config, train_modules=head_modules(base))
    randomise_deltas(model)
    with torch.no_grad():
        model.score.weight.add_(1.0)
    assert _write_export(tmp_path, model, config) == "written"
    theirs = peft.PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / PEFT_DIR)).eval()
    assert sorted(theirs.peft_config["default"].target_modules) == ["q_proj", "v_proj"]
    assert set(theirs.peft_config["default"].modules_to_save) == {"score"}  # the head, not Δh's container
    inputs = padded_inputs()
    with torch.no_grad():
        expected = model(**inputs).logits
        assert not torch.allclose(expected, base(**inputs).logits, atol=1e-3)  # Δh and the head do something
        torch.testing.assert_close(theirs(**inputs).logits, expected, atol=1e-5, rtol=1e-5)


def test_prefix_tuning_on_grouped_heads_matches_peft() -> None:
    """SmolLM2's grouping (9 query heads share 3 key/value heads): a prefix is l keys and values per key/value
    head (2·l·d_kv stored per layer, d_kv = 3·64 on SmolLM2), which every query head of the group attends to,
    as in PEFT's prefix tuning (num_attention_heads = the key/value heads, token_dim = d_kv). PEFT feeds the
    prefix through the cache and shifts positions by l; we keep the paper's positions (Eq. 7): its shift is
    cancelled to compare the rest."""
    length = 5
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_config(llama_config("9q/3kv", num_labels=2)).model.eval()
    ours = ps.apply_petl(copy.deepcopy(base), ps.presets.prefix_tuning(l=length, reparam=None))
    randomise_deltas(ours)
    geo = geometry(base.config)
    attn = geo[0].attentions[0]
    assert (attn.heads, attn.kv_heads) == (9, 3)
    assert ps.count_params(ps.presets.prefix_tuning(l=length, reparam=None), base.config).stored == \
        len(geo) * 2 * length * attn.kv_width
    theirs = peft.get_peft_model(copy.deepcopy(base), peft.PrefixTuningConfig(
        task_type="FEATURE_EXTRACTION", num_virtual_tokens=length, num_layers=len(geo), token_dim=attn.kv_width,
        num_attention_heads=attn.kv_heads))
    bank = ours.petl.prefixes["attn_heads"]
    stacked = torch.stack([bank.kv(f"attn_heads_b{i}_self") for i in range(len(geo))])  # (L, 2, H_kv, l, d_h)
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(stacked.permute(3, 0, 1, 2, 4).reshape(length, -1))
    inputs = padded_inputs()
    positions = torch.arange(inputs["input_ids"].shape[1]).expand_as(inputs["input_ids"])
    with torch.no_grad():
        expected = theirs(**inputs, position_ids=positions - length).last_hidden_state
        got = ours(**inputs, position_ids=positions).last_hidden_state
    real = inputs["attention_mask"].bool()  # padded positions attend to nothing real in either: not compared
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=0)
