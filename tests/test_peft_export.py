"""The PEFT folder an export writes holds LoRA on exactly the modules our model carries it on, with the
same weights: loaded with `PeftModel.from_pretrained` onto a fresh base it gives our logits. On an
encoder-decoder model `DeltaSpec.layers` counts encoder blocks first, then decoder blocks, where PEFT's
`layers_to_transform` counts within each stack: a decoder-only or a two-stack layer set must still land
on the right blocks."""
from __future__ import annotations

import copy
import dataclasses

import peft
import pytest
import torch
from transformers import AutoModelForSeq2SeqLM

import petl_search as ps
from petl_search.core.config import PETLConfig
from petl_search.export import write_peft
from conftest import TINY_CONFIGS, make_inputs, randomise_deltas

LAYER_SETS = {  # the tiny BART has encoder blocks 0, 1 and decoder blocks 2, 3 (ours: counted across stacks)
    "decoder only": (2, 3),
    "one decoder block": (3,),
    "both stacks, crossed": (0, 3),
    "both stacks": (1, 2),
    "encoder only": (0, 1),
    "every block": None,
}


def lora_on(layers: tuple[int, ...] | None) -> PETLConfig:
    return PETLConfig(attn_qkv=dataclasses.replace(ps.presets.lora(r=2, alpha=4.0).attn_qkv, layers=layers))


def block_of(name: str) -> int:
    """Our block index of a module of the tiny BART (2 encoder blocks, then the decoder's)."""
    stack, _, index = name.split(".")[1:4]
    return int(index) + (2 if stack == "decoder" else 0)


def lora_modules(model: torch.nn.Module, prefix: str = "") -> set[str]:
    return {name.removeprefix(prefix) for name, module in model.named_modules() if hasattr(module, "lora_A")}


@pytest.mark.parametrize("case", sorted(LAYER_SETS))
def test_peft_folder_of_bart_lora_with_layers_loads_and_gives_our_logits(case: str, tmp_path) -> None:
    torch.manual_seed(0)
    base = AutoModelForSeq2SeqLM.from_config(TINY_CONFIGS["bart"]()).eval()
    config = lora_on(LAYER_SETS[case])
    ours = ps.apply_petl(copy.deepcopy(base), config).eval()
    randomise_deltas(ours)
    names = {id(m): n for n, m in ours.named_modules()}
    wired = {names[id(w.exit)] for w in ours.petl._wirings}
    assert {block_of(n) for n in wired} == set(LAYER_SETS[case] or range(4))

    assert write_peft(tmp_path / "peft", ours, config, []) == "written"
    theirs = peft.PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / "peft")).eval()
    assert lora_modules(theirs, "base_model.model.") == wired  # no LoRA elsewhere, none missing
    inputs = make_inputs("bart")
    with torch.no_grad():
        expected, got = ours(**inputs).logits, theirs(**inputs).logits
    assert not torch.allclose(expected, base(**inputs).logits, atol=1e-4)  # the Δh do something
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_peft_targets_are_short_names_when_they_pick_exactly_our_modules_else_full_names(tmp_path) -> None:
    """Every block of a BERT: PEFT's usual short names. One block, with a trained head: the full names, and
    the folder (head as modules_to_save) still gives our logits."""
    from transformers import AutoModelForSequenceClassification

    from petl_search.export import peft_lora_config
    from petl_search.training.models import head_modules

    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_config(TINY_CONFIGS["bert"]()).eval()
    every = ps.apply_petl(copy.deepcopy(base), lora_on(None))
    assert peft_lora_config(lora_on(None), every)[0]["target_modules"] == ["query", "value"]
    config = lora_on((1,))
    ours = ps.apply_petl(copy.deepcopy(base), config, train_modules=head_modules(base)).eval()
    randomise_deltas(ours)
    with torch.no_grad():
        ours.classifier.weight.add_(1.0)  # a trained head, which the folder must carry
    assert peft_lora_config(config, ours)[0]["target_modules"] == [
        "bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.value"]
    assert write_peft(tmp_path / "peft", ours, config, head_modules(ours)) == "written"
    theirs = peft.PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / "peft")).eval()
    inputs = make_inputs("bert")
    with torch.no_grad():
        torch.testing.assert_close(theirs(**inputs).logits, ours(**inputs).logits, atol=1e-5, rtol=1e-5)


def test_peft_folder_of_a_causal_llama_lora_on_some_blocks_gives_our_logits(tmp_path) -> None:
    """A causal LM (its LM head frozen, no task head to save): LoRA on one block of two, so PEFT's targets are
    the full module names; the folder loads onto AutoModelForCausalLM with our logits."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(TINY_CONFIGS["llama"]()).eval()
    config = lora_on((1,))
    ours = ps.apply_petl(copy.deepcopy(base), config).eval()
    randomise_deltas(ours)
    assert write_peft(tmp_path / "peft", ours, config, []) == "written"
    theirs = peft.PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / "peft")).eval()
    assert lora_modules(theirs, "base_model.model.") == {"model.layers.1.self_attn.q_proj",
                                                         "model.layers.1.self_attn.v_proj"}
    inputs = make_inputs("llama")
    with torch.no_grad():
        expected = ours(**inputs).logits
        assert not torch.allclose(expected, base(**inputs).logits, atol=1e-4)
        torch.testing.assert_close(theirs(**inputs).logits, expected, atol=1e-5, rtol=1e-5)
