"""Writes adapterhub_bert.safetensors: AdapterHub `adapters` 1.3's outputs for its bottleneck adapters on a
tiny random BERT, in training mode under one fixed dropout mask and in eval mode, with every weight
needed to rebuild them. tests/test_adapterhub_reference.py loads the same weights into our model and
compares. `adapters` needs transformers 4.57 (the project runs on 5), so this runs in its own venv:

    python3 -m venv /tmp/ahvenv && . /tmp/ahvenv/bin/activate
    pip install torch==2.13.0 && pip install transformers==4.57.6 adapters==1.3.0 safetensors
    python tests/reference/make_adapterhub_reference.py

The adapter configurations (AdapterHub's names; each adapter of width 8 on hidden 32, relu unless said):
    seq_bn        SeqBnConfig: Pfeiffer et al. 2021, LN(x + h + Δ(LN(x + h))) after the FFN
    double_seq_bn DoubleSeqBnConfig with swish: Houlsby et al. 2019, after attention and after the FFN
    par_bn        ParBnConfig(scaling=1.0): the parallel adapter on the FFN (He et al. 2022)
    par_bn_s4     ParBnConfig (its scaling 4.0): the scaled parallel adapter
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import adapters
import torch
from adapters import DoubleSeqBnConfig, ParBnConfig, SeqBnConfig
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

sys.path.insert(0, str(Path(__file__).parent))
from fixed_dropout import fixed_dropout_mask  # noqa: E402

CONFIG = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=100,
              max_position_embeddings=64, hidden_dropout_prob=0.25, attention_probs_dropout_prob=0.0,
              attn_implementation="eager")
ADAPTERS = {
    "seq_bn": SeqBnConfig(reduction_factor=4),
    "double_seq_bn": DoubleSeqBnConfig(reduction_factor=4, non_linearity="swish"),
    "par_bn": ParBnConfig(reduction_factor=4, scaling=1.0),
    "par_bn_s4": ParBnConfig(reduction_factor=4),
}


def main() -> None:
    torch.manual_seed(0)
    config = BertConfig(**CONFIG)
    base = BertModel(config, add_pooling_layer=False)
    tensors = {f"base.{k}": v.contiguous() for k, v in base.state_dict().items()}
    ids = torch.randint(3, 100, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    tensors.update(input_ids=ids, attention_mask=mask)
    for name, adapter_config in ADAPTERS.items():
        model = BertModel(config, add_pooling_layer=False)
        model.load_state_dict(base.state_dict())
        adapters.init(model)
        model.add_adapter(name, config=adapter_config)
        model.set_active_adapters(name)
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():  # every adapter weight random, so that no part of Δh is zero
            for key, param in model.named_parameters():
                if f"adapters.{name}." in key:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
                    tensors[f"{name}.{key}"] = param.detach().clone().contiguous()
        for mode in ("train", "eval"):
            model.train(mode == "train")
            with torch.no_grad(), fixed_dropout_mask():
                out = model(input_ids=ids, attention_mask=mask).last_hidden_state
            tensors[f"{name}.out_{mode}"] = out.contiguous()
    metadata = {"config": json.dumps(CONFIG), "adapters": json.dumps(sorted(ADAPTERS)),
                "made_with": f"adapters {adapters.__version__}, transformers {__import__('transformers').__version__}, "
                             f"torch {torch.__version__}"}
    save_file(tensors, str(Path(__file__).with_name("adapterhub_bert.safetensors")), metadata=metadata)
    print("wrote", Path(__file__).with_name("adapterhub_bert.safetensors"), "with", sorted(k for k in tensors if "out_" in k))


if __name__ == "__main__":
    main()
