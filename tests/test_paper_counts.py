"""Parameter counts against the paper's formulas, on full-size configurations built without weights."""
from __future__ import annotations

from transformers import BartConfig, MPNetConfig, RobertaConfig

import petl_search as ps


def test_mam_on_roberta_base_counts_what_the_paper_formula_gives(capsys) -> None:
    """He et al. count 2·l·d per layer for a prefix and 2·r·d per layer for an adapter (weights only);
    our adapter also has its two bias vectors (r + d per layer), which the formula leaves out."""
    # RobertaConfig() has roberta-base's geometry (12 layers, d = 768) but BERT's vocabulary defaults;
    # these three fields make it exactly roberta-base's config.json.
    config = RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1)
    layers, d, l, r = config.num_hidden_layers, config.hidden_size, 30, 512
    counted = ps.count_params(ps.presets.mam(prefix_len=l, ffn_r=r, s=4), config)
    paper = layers * (2 * l * d + 2 * r * d)
    assert counted.stored == paper + layers * (r + d)
    assert counted.backbone == 124_645_632  # roberta-base with its pooler
    with capsys.disabled():
        print(f"\nMAM (l={l}, r={r}) on roberta-base: stored {counted.stored:,} params = "
              f"{100 * counted.stored_fraction:.3f}% of {counted.backbone:,}; paper formula "
              f"{paper:,} = {100 * paper / counted.backbone:.3f}%; trained (with the prefix MLP) "
              f"{counted.trained:,}")
    assert abs(counted.stored_fraction - paper / counted.backbone) < 2e-4


def test_lora_and_prefix_on_bart_large_follow_table_1() -> None:
    """Table 1 of the paper: LoRA on W_q, W_v stores 4·r·d per attention; a prefix 2·l·d per attention.
    BART-large has 12 + 12 self-attentions and 12 cross-attentions."""
    config = BartConfig(d_model=1024, encoder_layers=12, decoder_layers=12, encoder_attention_heads=16,
                        decoder_attention_heads=16)
    attentions, d = 36, 1024
    assert ps.count_params(ps.presets.lora(r=8), config).stored == attentions * 4 * 8 * d
    prefix = ps.count_params(ps.presets.prefix_tuning(l=200), config)
    assert prefix.stored == attentions * 2 * 200 * d
    m = 512
    assert prefix.trained == 200 * d + (d * m + m) + (m * attentions * 2 * d + attentions * 2 * d)


def test_mam_and_lora_on_mpnet_base_follow_the_paper_formulas() -> None:
    """MPNet-base (all-mpnet-base-v2's config.json: MPNetConfig's defaults but 514 positions): 12 layers, d = 768. The paper's
    2·l·d per layer for a prefix (no position-bias parameters: a prefix has no position) plus 2·r·d per
    layer and the adapter's biases for MAM; 4·r·d per layer for LoRA on W_q, W_v (Table 1)."""
    config = MPNetConfig(max_position_embeddings=514)
    layers, d, l, r = 12, 768, 30, 512
    assert ps.count_params(ps.presets.mam(prefix_len=l, ffn_r=r, s=4), config).stored == \
        layers * (2 * l * d + 2 * r * d) + layers * (r + d)
    lora = ps.count_params(ps.presets.lora(r=8), config)
    assert lora.stored == layers * 4 * 8 * d
    assert lora.backbone == 109_486_464  # all-mpnet-base-v2 with its pooler, as loaded by AutoModel
