"""Tiny random models of every supported architecture family, built in memory (hidden 32, 2 blocks)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModel, BartConfig, BertConfig, GPT2Config, LlamaConfig, MPNetConfig, RobertaConfig
from transformers.utils import logging as hf_logging

import petl_search as ps
from petl_search.core.architectures import family_of
from petl_search.toy import write_tiny_model, write_toy_glue

hf_logging.set_verbosity_error()

# The first 200 rows of each split of GLUE's files (tests/fixtures/glue/README.md): what the loader tests read,
# so that the suite needs no GLUE folder beside the checkout (SST-2 in full ships with the package)
GLUE_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "glue"

TINY_CONFIGS = {
    "bert": lambda: BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                               vocab_size=100, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
    "roberta": lambda: RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, vocab_size=100, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0),
    "bart": lambda: BartConfig(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                               decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=100,
                               max_position_embeddings=64, dropout=0.0),
    "gpt2": lambda: GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=100, bos_token_id=0, eos_token_id=0,
                               resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
    "llama": lambda: LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 intermediate_size=64, vocab_size=100),
    "mpnet": lambda: MPNetConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                 vocab_size=100, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
}
ARCHS = tuple(TINY_CONFIGS)


def preset_for(name: str, **kwargs) -> ps.PETLConfig:
    """A preset with its model-dependent arguments read off the tiny configs (all have the same heads)."""
    return ps.preset(name, model_config=TINY_CONFIGS["bert"](), **kwargs)


def uses_attention_interface(arch: str) -> bool:
    """Whether the family's attention calls transformers' AttentionInterface (so sdpa/eager can be chosen);
    MPNet's is inline (eager only), and head-attention Δh reaches it through hooks."""
    return family_of(TINY_CONFIGS[arch]()).head_route == "interface"


def make_model(arch: str, seed: int = 0, attn: str = "sdpa") -> torch.nn.Module:
    """The tiny model with attention implementation `attn` (for families with an inline attention: its own)."""
    torch.manual_seed(seed)
    config = TINY_CONFIGS[arch]()
    if uses_attention_interface(arch):
        config._attn_implementation = attn
    return AutoModel.from_config(config).eval()


def make_inputs(arch: str, seed: int = 1, batch: int = 2, length: int = 7) -> dict[str, torch.Tensor]:
    """Token ids with a right-padded second row, so masks are exercised."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 100, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[-1, length - 2:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if arch == "bart":
        inputs["decoder_input_ids"] = torch.randint(3, 100, (batch, 5), generator=g)
    return inputs


def hidden(model: torch.nn.Module, inputs: dict) -> torch.Tensor:
    out = model(**inputs)
    return out.last_hidden_state


def randomise_deltas(model: torch.nn.Module, seed: int = 3) -> None:
    """Give every Δh parameter (zero-initialised or not) random values, so comparisons are not trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ps.is_petl_parameter(name):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


@pytest.fixture(params=ARCHS)
def arch(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """A tiny BERT and the toy task written to a folder, once per test module (studies load them by path)."""
    folder = tmp_path_factory.mktemp("toy")
    write_tiny_model(folder / "model")
    write_toy_glue(folder / "glue")
    return folder
