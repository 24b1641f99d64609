"""PETLConfig / DeltaSpec: validation messages, canonical form, and exact counts on random points."""
from __future__ import annotations

import inspect
import random

import pytest
import torch

import petl_search as ps
from petl_search.nn.serialization import stored_state_dict
from petl_search.core.config import ACTIVATIONS, COMPOSITIONS, INSERTIONS, DeltaSpec, PETLConfig
from conftest import ARCHS, make_model, preset_for


@pytest.mark.parametrize("data,message", [
    ({"ffn": {"form": "adapter", "size": 8}}, r"ffn.form must be one of \['bottleneck', 'lora', 'prefix'\], but got 'adapter'"),
    ({"mlp": {"form": "lora", "size": 8}}, r"site must be one of \['attn_heads', 'attn_out', 'attn_qkv', 'ffn'\], but got 'mlp'"),
    ({"ffn": {"form": "lora", "size": 0}}, r"ffn.size must be a positive integer, but got 0"),
    ({"ffn": {"form": "lora", "size": -3}}, r"ffn.size must be a positive integer, but got -3"),
    ({"ffn": {"form": "lora", "size": 2.5}}, r"ffn.size must be a positive integer, but got 2.5"),
    ({"attn_heads": {"form": "bottleneck", "size": 30, "heads": 4}},
     r"attn_heads.size must be divisible by heads=4 \(each head gets size/heads\), but got 30"),
    ({"ffn": {"form": "prefix", "size": 8}}, r"ffn.form must be one of \['bottleneck', 'lora'\], but got 'prefix'"),
    ({"ffn": {"form": "bottleneck", "size": 8, "insertion": "diagonal"}},
     r"ffn.insertion must be one of \['after_norm', 'parallel', 'sequential'\], but got 'diagonal'"),
    ({"attn_qkv": {"form": "lora", "size": 8, "insertion": "after_norm"}},
     r"attn_qkv.insertion must be 'sequential' or 'parallel' at site 'attn_qkv' \('after_norm' reads the "
     r"Add&Norm that follows a sublayer: sites \['attn_out', 'ffn'\]\), but got 'after_norm'"),
    ({"ffn": {"form": "bottleneck", "size": 8, "composition": "add", "scale": 4}},
     r"ffn.scale must be 1.0 with composition 'add'"),
    ({"ffn": {"form": "bottleneck", "size": 8, "activation": "sigmoid"}},
     r"ffn.activation must be one of \['gelu', 'identity', 'relu', 'silu', 'tanh'\], but got 'sigmoid'"),
    ({"ffn": {"form": "lora", "size": 8, "rank": 4}}, r"ffn has no field 'rank'"),
    ({"ffn": {"form": "lora"}}, r"ffn.size is required"),
    ({"attn_qkv": {"form": "lora", "size": 8, "projections": ["q", "o"]}}, r"attn_qkv.projections must be"),
    ({"ffn": {"form": "lora", "size": 8, "projections": ["q"]}}, r"ffn.projections must be unset except at site 'attn_qkv'"),
    ({"attn_heads": {"form": "prefix", "size": 8, "composition": "scale", "scale": 2}},
     r"attn_heads.composition must be 'gate' for form 'prefix'"),
    ({"attn_heads": {"form": "prefix", "size": 8, "heads": 4}}, r"attn_heads.heads must be 1 for form 'prefix'"),
    ({"ffn": {"form": "lora", "size": 8, "layers": [0, 1], "layer_sizes": {"3": 4}}},
     r"ffn.layer_sizes\[3\] must be for a block listed in layers=\[0, 1\]"),
    ({"ffn": {"form": "lora", "size": 8, "reparam": 16}}, r"ffn.reparam must be None unless form is 'prefix'"),
])
def test_bad_points_are_rejected_with_a_clear_message(data, message) -> None:
    with pytest.raises(ps.PETLConfigError, match=message):
        PETLConfig.from_dict(data)


def test_bad_preset_name_and_arguments() -> None:
    with pytest.raises(ps.PETLConfigError, match=r"preset must be one of \[.*'mam'.*\], but got 'mamba'"):
        ps.preset("mamba")
    with pytest.raises(ps.PETLConfigError, match=r"preset 'lora' takes arguments \['r', 's', 'alpha', 'projections'\]"):
        ps.preset("lora", rank=4)
    with pytest.raises(ps.PETLConfigError, match=r"^scaled_parallel_adapter: r must be a positive integer, but got 0$"):
        ps.presets.scaled_parallel_adapter(r=0)
    with pytest.raises(ps.PETLConfigError, match=r"DeltaSpec.size must be divisible by heads=5"):
        DeltaSpec(form="bottleneck", size=12, heads=5)


# A bad value for each argument of each preset, and the requirement its message must state.
BAD_ARGUMENTS = {
    "r": (-3, "a positive integer"), "l": (0, "a positive integer"), "r_per_head": (-3, "a positive integer"),
    "heads": (0, "a positive integer"), "prefix_len": (-1, "a positive integer"), "ffn_r": (2.5, "a positive integer"),
    "s": (-1.0, "a positive finite number"), "alpha": (0, "a positive finite number"),
    "reparam": (0, "a positive integer (the prefix MLP's width) or null"), "activation": ("sigmoid", "one of ['relu'"),
    "init": ("xavier", "one of ['bert', 'lora']"), "site": ("attn", "one of ['attn_heads'"),
    "projections": (["q", "q"], "a non-empty list of distinct values from ['q', 'k', 'v']"),
}


@pytest.mark.parametrize("name, argument", [(name, argument) for name, build in ps.PRESETS.items()
                                            for argument in inspect.signature(build).parameters])
def test_a_bad_preset_argument_is_named_as_the_preset_names_it(name, argument) -> None:
    """`lora: r must be a positive integer, but got -3`, not the DeltaSpec field r sets (attn_qkv.size):
    for every argument of every preset, through preset() as the CLI and studies call it."""
    value, requirement = BAD_ARGUMENTS[argument]
    kwargs = {"heads": 4} if name == "mh_parallel_adapter" and argument != "heads" else {}
    with pytest.raises(ps.PETLConfigError) as info:
        ps.preset(name, **kwargs, **{argument: value})
    assert str(info.value).startswith(f"{name}: {argument} must be {requirement}"), str(info.value)
    assert str(info.value).endswith(f", but got {value!r}")


def test_unsupported_architecture_lists_the_supported_ones() -> None:
    from transformers import T5Config
    with pytest.raises(ps.UnsupportedModelError,
                       match=r"model_type must be one of \['bert', 'roberta', 'bart', 'gpt2', 'llama', 'mpnet'\], but got 't5'"):
        ps.count_params(ps.presets.lora(), T5Config())


def test_geometry_dependent_errors_name_the_model_limits() -> None:
    config = make_model("bert").config
    with pytest.raises(ps.PETLConfigError, match=r"ffn.layers must be block indices in \[0, 2\) for this model, but got \[0, 5\]"):
        ps.count_params(PETLConfig(ffn=DeltaSpec(form="lora", size=2, layers=[0, 5])), config)
    with pytest.raises(ps.PETLConfigError, match=r"ffn.heads must be a divisor of the widths .*in=32, out=32.*but got 3"):
        ps.count_params(PETLConfig(ffn=DeltaSpec(form="lora", size=6, heads=3)), config)


def test_canonical_form_makes_equal_points_equal() -> None:
    a = PETLConfig(ffn=DeltaSpec(form="bottleneck", size=8, composition="scale", scale=1.0))
    b = PETLConfig.from_dict({"ffn": {"form": "bottleneck", "size": 8, "insertion": "sequential",
                                      "activation": "relu", "init": "bert"}})
    assert a == b and a.to_json() == b.to_json() and a.fingerprint() == b.fingerprint() and hash(a) == hash(b)
    c = PETLConfig(ffn=DeltaSpec(form="lora", size=8, layers=[3, 1, 1], layer_sizes={"1": 8, "3": 4}))
    assert c.ffn.layers == (1, 3) and c.ffn.layer_sizes == ((3, 4),)
    assert PETLConfig.from_json(c.to_json()) == c
    assert json_keys_sorted(c.to_json())


def json_keys_sorted(text: str) -> bool:
    import json
    return text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def test_every_preset_round_trips_through_json_and_differs_from_the_others() -> None:
    configs = {name: preset_for(name) for name in ps.PRESETS}
    for config in configs.values():
        assert PETLConfig.from_json(config.to_json()) == config
    assert len({c.fingerprint() for c in configs.values()}) == len(configs)


def test_lora_keeps_its_scale_as_r_grows_unless_alpha_is_given() -> None:
    """s = alpha/r with alpha fixed at 16 would scale a LoRA fitted to a 5% budget (r≈123) down to 0.13:
    the preset keeps LoRA's scale at r=8 (s=2) for every r; alpha, when given, means what it means in PEFT."""
    assert ps.presets.lora(r=8) == ps.presets.lora(r=8, alpha=16)  # the default is Hu et al.'s point
    assert ps.presets.lora(r=123).attn_qkv.scale == 2.0
    assert ps.presets.lora(r=123, alpha=16).attn_qkv.scale == pytest.approx(16 / 123)
    assert ps.presets.lora(r=4, s=0.5).attn_qkv.scale == 0.5
    with pytest.raises(ps.PETLConfigError, match="lora takes s or alpha .*not both"):
        ps.presets.lora(r=4, s=1.0, alpha=8)


def test_mam_uses_the_papers_run_options() -> None:
    """He et al.'s scripts: --mid_dim 800 (the prefix MLP) and --ffn_adapter_init_option lora."""
    mam = ps.presets.mam()
    assert (mam.attn_heads.size, mam.attn_heads.reparam) == (30, 800)
    assert (mam.ffn.size, mam.ffn.scale, mam.ffn.init, mam.ffn.insertion) == (512, 4.0, "lora", "parallel")


def test_mam_is_prefix_plus_scaled_parallel_adapter() -> None:
    mam = ps.presets.mam()
    assert mam.attn_heads == ps.presets.prefix_tuning(l=30, reparam=800).attn_heads
    assert mam.ffn == ps.presets.scaled_parallel_adapter(r=512, s=4, init="lora").ffn
    assert mam.for_storage().attn_heads.reparam is None


def random_layers(rng: random.Random, size_of: callable) -> tuple[list[int] | None, dict[str, int]]:
    """Which blocks (all or some) and, half of the time, a different size on one of them."""
    layers = rng.choice([None, [0], [0, 1], [1]])
    if rng.random() < 0.5:
        return layers, {}
    block = rng.choice(layers if layers is not None else [0, 1])
    return layers, {str(block): size_of()}


def random_point(rng: random.Random) -> PETLConfig:
    """A random valid point of the space, touching every dimension, per-block sizes at every site."""
    sites = {}
    for site in ps.SITES:
        if rng.random() < 0.4:
            continue
        forms = ["bottleneck", "lora"] + (["prefix"] * 2 if site == "attn_heads" else [])
        form = rng.choice(forms)
        if form == "prefix":
            reparam = rng.choice([None, rng.randint(1, 16)])
            layers, layer_sizes = random_layers(rng, lambda: rng.randint(1, 6))
            sites[site] = DeltaSpec(form="prefix", size=rng.randint(1, 6), reparam=reparam, layers=layers,
                                    layer_sizes=layer_sizes if reparam is None else {})
            continue
        heads = rng.choice([1, 2, 4])
        size = heads * rng.randint(1, 6)
        layers, layer_sizes = random_layers(rng, lambda: heads * rng.randint(1, 3))
        composition = rng.choice(COMPOSITIONS)
        sites[site] = DeltaSpec(
            form=form, size=size, heads=heads, insertion=rng.choice(INSERTIONS if site in ("attn_out", "ffn") else ("sequential", "parallel")),
            composition=composition,
            scale=rng.choice([0.5, 4.0]) if composition in ("scale", "learned_scale") else 1.0,
            activation=rng.choice(ACTIVATIONS) if form == "bottleneck" else None,
            init=rng.choice(["bert", "lora"]), input_norm=rng.random() < 0.3, layers=layers,
            layer_sizes=layer_sizes,
            projections=rng.sample(["q", "k", "v"], rng.randint(1, 3)) if site == "attn_qkv" else None)
    return PETLConfig(**sites)


def test_a_prefix_with_per_block_lengths_builds_what_is_counted() -> None:
    """Each block's prefix has its own length: 2·l_b·d per block (the review's case: 960, not 1,536)."""
    from transformers import BertConfig

    config = BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                        vocab_size=100)
    point = PETLConfig(attn_heads=dict(form="prefix", size=8, layer_sizes={0: 2, 2: 5}, reparam=None))
    model = ps.apply_petl(__import__("transformers").AutoModel.from_config(config), point)
    created = {n: p.shape for n, p in model.named_parameters() if ps.is_petl_parameter(n)}
    assert ps.count_params(point, config).stored == 2 * 32 * (2 + 8 + 5) == 960
    assert sum(torch.Size(s).numel() for s in created.values()) == 960
    assert [shape[2] for _, shape in sorted(created.items())] == [2, 8, 5]  # (2, heads, l, d_h) per block


def test_counts_are_exact_on_random_points(arch: str) -> None:
    rng = random.Random(f"points-{arch}")
    for _ in range(25):
        config = random_point(rng)
        model = ps.apply_petl(make_model(arch), config)
        created = sum(p.numel() for n, p in model.named_parameters() if ps.is_petl_parameter(n))
        counted = ps.count_params(config, model.config)
        assert counted.trained == created, config.describe()
        stored = sum(t.numel() for t in stored_state_dict(model).values())
        assert counted.stored == stored, config.describe()
        if all(spec.is_zero_init for _, spec in config.sites()):  # still starts at the frozen model
            ids = torch.randint(3, 100, (1, 5))
            kw = {"decoder_input_ids": ids} if arch == "bart" else {}
            with torch.no_grad():
                out = model(input_ids=ids, **kw).last_hidden_state
                ps.remove_petl(model)
                assert torch.equal(out, model(input_ids=ids, **kw).last_hidden_state)


def test_describe_is_readable() -> None:
    assert ps.presets.mam().describe() == (
        "attn_heads:(prefix, l=30) + ffn:(bottleneck, parallel, r=512, scale s=4)")
    assert PETLConfig().describe() == "frozen backbone (no Δh)"
