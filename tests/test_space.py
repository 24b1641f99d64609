"""Search spaces as data: YAML -> Optuna distributions, sampled points, presets as points, bad files."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
import transformers
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from transformers import BertConfig, LlamaConfig

import petl_search as ps
from petl_search.search.language.space import SpaceError, load_space, parse_space

SPACES = sorted(Path(__file__).resolve().parents[1].joinpath("search_spaces").glob("*.yaml"))
MINILM = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12)
optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_the_shipped_spaces_exist() -> None:
    assert {p.stem for p in SPACES} >= {"unified", "paper_ablations", "mam_neighborhood"}


def created_params(model: torch.nn.Module) -> int:
    """Parameters apply_petl added (numel works on 'meta' tensors: nothing is allocated)."""
    return sum(p.numel() for n, p in model.named_parameters() if ps.is_petl_parameter(n))


def created_by(model: torch.nn.Module, config: ps.PETLConfig) -> int:
    """Put `config` on `model` (on 'meta'), count what it created, and take it off again: one meta model
    serves every point (a fresh one per point takes about twice as long: 10 ms against 5)."""
    with torch.device("meta"):
        ps.apply_petl(model, config)
    try:
        return created_params(model)
    finally:
        ps.remove_petl(model)


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_every_sampled_point_is_a_valid_config_that_fits_the_model(path: Path) -> None:
    """Every sampled point goes onto MiniLM's geometry (built on 'meta'), and count_params says exactly
    how many parameters that created, and how many stay once the prefix MLP is dropped for storage."""
    space = load_space(path)
    with torch.device("meta"):
        model = transformers.AutoModel.from_config(MINILM)
    backbone = sum(p.numel() for p in model.parameters())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(150):
        trial = study.ask()
        config = space.sample(trial, MINILM)
        counted = ps.count_params(config, MINILM, backbone=backbone)
        where = config.describe()
        assert counted.trained == created_by(model, config), where
        assert counted.stored == created_by(model, config.for_storage()), where  # the raw prefix, no MLP
        assert counted.stored <= counted.trained, where
        assert (counted.stored > 0) is not config.is_empty, where  # only an all-off point stores nothing
        seen.add(config.fingerprint())
        study.tell(trial, 0.0)
    assert len(seen) > 20  # the space is explored, not one point


def test_yaml_ranges_become_the_optuna_distributions_they_say() -> None:
    space = parse_space({"sites": {"ffn": {
        "optional": False, "form": ["bottleneck"], "size": {"low": 8, "high": 512, "log": True},
        "insertion": ["parallel", "sequential"], "composition": ["scale"], "scale": {"low": 0.5, "high": 8.0},
        "activation": "gelu"}}})
    study = optuna.create_study()
    trial = study.ask()
    config = space.sample(trial, MINILM)
    assert trial.distributions == {  # single values (form, composition, activation) are fixed, not searched
        "ffn.bottleneck.size": IntDistribution(8, 512, log=True),
        "ffn.bottleneck.insertion": CategoricalDistribution(["parallel", "sequential"]),
        "ffn.bottleneck.scale": FloatDistribution(0.5, 8.0),
    }
    assert config.ffn.activation == "gelu" and config.ffn.composition == "scale"
    assert 8 <= config.ffn.size <= 512  # inclusive bounds, as Optuna's


def test_presets_are_points_of_the_shipped_spaces() -> None:
    """MAM is a point of mam_neighborhood, LoRA and MH PA of paper_ablations: the search can find them."""
    mam = load_space("search_spaces/mam_neighborhood.yaml").sample(optuna.trial.FixedTrial({
        "attn_heads.use": True, "attn_heads.form": "prefix", "attn_heads.prefix.size": 30,
        "attn_heads.prefix.reparam": 800, "ffn.form": "bottleneck", "ffn.bottleneck.size": 512,
        "ffn.bottleneck.insertion": "parallel", "ffn.bottleneck.composition": "scale", "ffn.bottleneck.scale": 4.0,
        "ffn.bottleneck.activation": "relu", "ffn.bottleneck.init": "lora", "ffn.bottleneck.input_norm": False}), MINILM)
    assert mam == ps.presets.mam()
    ablations = load_space("search_spaces/paper_ablations.yaml")
    off = {f"{s}.use": False for s in ("attn_heads", "attn_out", "attn_qkv", "ffn")}
    mh_pa = ablations.sample(optuna.trial.FixedTrial({
        **off, "attn_heads.use": True, "attn_heads.form": "bottleneck", "attn_heads.bottleneck.size": 30,
        "attn_heads.bottleneck.insertion": "parallel", "attn_heads.bottleneck.composition": "add",
        "attn_heads.bottleneck.heads": "model", "attn_heads.bottleneck.activation": "relu",
        "attn_heads.bottleneck.init": "bert"}), MINILM)
    assert mh_pa == ps.presets.mh_parallel_adapter(heads=12, r_per_head=30)
    lora = ablations.sample(optuna.trial.FixedTrial({
        **off, "attn_qkv.use": True, "attn_qkv.form": "lora", "attn_qkv.lora.size": 8,
        "attn_qkv.lora.insertion": "parallel", "attn_qkv.lora.composition": "scale", "attn_qkv.lora.scale": 2.0,
        "attn_qkv.lora.init": "lora", "attn_qkv.lora.projections": "q,v"}), MINILM)
    assert lora == ps.presets.lora(r=8, alpha=16)


def test_heads_model_follows_the_model() -> None:
    space = parse_space({"sites": {"attn_heads": {"optional": False, "form": ["bottleneck"], "size": [2],
                                                  "heads": ["model"]}}})
    llama = LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2)
    config = space.sample(optuna.create_study().ask(), llama)
    assert config.attn_heads.heads == 8 and config.attn_heads.size == 16  # 2 per head


@pytest.mark.parametrize("data,message", [
    ({"sites": {"mlp": {}}}, r"sites has unknown site 'mlp'; sites are \['attn_heads', 'attn_out', 'attn_qkv', 'ffn'\]"),
    ({"sites": {"ffn": {"form": ["prefix"], "size": [8]}}}, r"sites.ffn.form: 'prefix' is not allowed here"),
    ({"sites": {"ffn": {"size": {"low": 9, "high": 3}}}}, r"sites.ffn.size: `low <= high` must hold, but got \(low=9, high=3\)"),
    ({"sites": {"ffn": {"size": {"low": 0, "high": 3, "log": True}}}}, r"a log range needs low > 0"),
    ({"sites": {"ffn": {"rank": [8]}}}, r"sites.ffn: unknown dimension 'rank'"),
    ({"sites": {"ffn": {"form": ["lora"]}}}, r"form 'lora' needs a size"),
    ({"sites": {"ffn": {"size": [8], "activation": ["sigmoid"]}}}, r"sites.ffn.bottleneck.activation: .*but got 'sigmoid'"),
    ({"sites": {"attn_qkv": {"size": [8], "insertion": ["parallel", "after_norm"]}}},
     r"sites.attn_qkv.bottleneck.insertion: attn_qkv.insertion must be 'sequential' or 'parallel' at site 'attn_qkv'"),
    ({"sites": {}}, r"'sites' must map at least one of"),
    ({"site": {}}, r"unknown key 'site'"),
    ({"sites": {"ffn": {"size": []}}}, r"sites.ffn.size must list at least one value"),
])
def test_bad_space_files_say_the_file_the_key_and_the_problem(data, message) -> None:
    with pytest.raises(SpaceError, match=message):
        parse_space(data, source="bad.yaml")


def test_unreadable_and_missing_files(tmp_path) -> None:
    with pytest.raises(SpaceError, match="search space .*nope.yaml not found"):
        load_space(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("sites: [unclosed")
    with pytest.raises(SpaceError, match="broken.yaml: not valid YAML"):
        load_space(broken)


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_replay_finds_the_parameters_of_every_point_of_the_space(path: Path) -> None:
    """replay inverts sample: the parameters it gives re-sample to the same point, with the distributions
    the sampler itself used."""
    space = load_space(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(60):
        trial = study.ask()
        config = space.sample(trial, MINILM)
        replayed = space.replay(config, MINILM)
        assert replayed is not None
        assert {n: v for n, (_, v) in replayed.items()} == trial.params
        assert {n: d for n, (d, _) in replayed.items()} == trial.distributions
        assert space.sample(optuna.trial.FixedTrial({n: v for n, (_, v) in replayed.items()}), MINILM) == config
        study.tell(trial, 0.0)


def test_replay_tells_which_presets_the_space_holds() -> None:
    neighborhood = load_space("search_spaces/mam_neighborhood.yaml")
    ablations = load_space("search_spaces/paper_ablations.yaml")
    mam = neighborhood.replay(ps.presets.mam(), MINILM)
    assert mam is not None and mam["attn_heads.prefix.size"][1] == 30 and mam["ffn.bottleneck.scale"][1] == 4.0
    assert neighborhood.replay(ps.presets.lora(r=8, alpha=16), MINILM) is None  # no attn_qkv site there
    assert neighborhood.replay(ps.presets.mam(prefix_len=200), MINILM) is None  # outside l 8-120
    mh = ablations.replay(ps.presets.mh_parallel_adapter(heads=12, r_per_head=30), MINILM)
    assert mh["attn_heads.bottleneck.heads"][1] == "model" and mh["attn_heads.bottleneck.size"][1] == 30


@pytest.mark.parametrize("name, budget", [("unified", 0.01), ("unified", 0.05), ("paper_ablations", 0.01),
                                          ("paper_ablations", 0.05), ("mam_neighborhood", 0.05)])
def test_budget_aware_sampling_proposes_points_that_fit(name: str, budget: float) -> None:
    """Sizes drawn within what the budget leaves: a point is over budget only when its smallest sizes are,
    against many over-budget proposals without it. (The MAM neighbourhood's smallest FFN adapter, r=64,
    stores 1.3% of MiniLM: at 1% no point of it fits.)"""
    path = next(p for p in SPACES if p.stem == name)
    space = load_space(path)
    fitting = {}
    for aware in (True, False):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        fits = []
        for _ in range(120):
            trial = study.ask()
            config = space.sample(trial, MINILM, budget=budget if aware else None)
            fits.append(ps.count_params(config, MINILM).stored_fraction <= budget)
            study.tell(trial, 0.0)
        fitting[aware] = sum(fits) / len(fits)
    assert fitting[True] >= 0.9, fitting
    assert fitting[True] > fitting[False] or fitting[False] == 1.0


def test_every_size_that_fits_stays_reachable() -> None:
    from petl_search.search.language.space import share_to_size, size_to_share

    for allowed, log in ((range(1, 65), True), (range(4, 513), True), (range(8, 9), False), (range(3, 41), False),
                         ([2, 8, 32], False)):
        sizes = [share_to_size(k / 20000, allowed, log) for k in range(20001)]
        assert sorted(set(sizes)) == list(allowed)  # each size has a slice of [0, 1]
        assert sizes == sorted(sizes)
        assert all(share_to_size(size_to_share(n, allowed, log), allowed, log) == n for n in allowed)
    # on the model: a lone FFN adapter under 1% of MiniLM reaches the largest r that fits, and no more
    space = parse_space({"sites": {"ffn": {"optional": False, "form": ["bottleneck"], "size": {"low": 1, "high": 4096},
                                           "insertion": ["parallel"], "composition": ["add"]}}})
    largest = max(space.sample(optuna.trial.FixedTrial({"ffn.bottleneck.size_share": 1.0}), MINILM,
                               budget=0.01).ffn.size for _ in range(1))
    counted = ps.count_params(ps.PETLConfig(ffn=dict(form="bottleneck", size=largest, insertion="parallel")), MINILM)
    bigger = ps.count_params(ps.PETLConfig(ffn=dict(form="bottleneck", size=largest + 1, insertion="parallel")), MINILM)
    assert counted.stored_fraction <= 0.01 < bigger.stored_fraction


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_replay_inverts_budget_aware_sampling(path: Path) -> None:
    space = load_space(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    for _ in range(40):
        trial = study.ask()
        config = space.sample(trial, MINILM, budget=0.05)
        replayed = space.replay(config, MINILM, budget=0.05)
        assert replayed is not None and {n: d for n, (d, _) in replayed.items()} == trial.distributions
        params = {n: v for n, (_, v) in replayed.items()}
        assert space.sample(optuna.trial.FixedTrial(params), MINILM, budget=0.05) == config
        study.tell(trial, 0.0)


STEPPED = {"optional": False, "form": ["bottleneck"], "size": {"low": 8, "high": 512, "step": 8},
           "insertion": ["parallel"], "composition": ["add"]}


def test_a_size_range_with_a_step_is_sampled_on_its_steps_within_the_budget() -> None:
    """A stepped size range was once sampled as if there were no budget (alone: over it) or crashed
    budget-aware sampling (`min(())`, beside another site): it was not taken for a list of sizes to fit."""
    from petl_search.search.language.space import share_to_size, size_to_share

    space = parse_space({"sites": {"ffn": STEPPED}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        config = space.sample(trial, MINILM, budget=0.01)
        assert config.ffn.size % 8 == 0 and ps.count_params(config, MINILM).stored_fraction <= 0.01
        replayed = space.replay(config, MINILM, budget=0.01)
        assert {n: d for n, (d, _) in replayed.items()} == trial.distributions
        study.tell(trial, 0.0)
    largest = space.sample(optuna.trial.FixedTrial({"ffn.bottleneck.size_share": 1.0}), MINILM, budget=0.01).ffn.size
    at = {size: ps.count_params(ps.PETLConfig(ffn=dict(form="bottleneck", size=size, insertion="parallel")), MINILM)
          for size in (largest, largest + 8)}
    assert at[largest].stored_fraction <= 0.01 < at[largest + 8].stored_fraction  # the largest step that fits
    # each step owns an equal slice of [0, 1], the last one too (a log range takes no step)
    steps = range(8, 65, 8)
    sizes = [share_to_size(k / 20000, steps, False) for k in range(20001)]
    assert [sizes.count(n) / len(sizes) for n in steps] == pytest.approx([1 / 8] * 8, abs=1e-3)
    assert all(share_to_size(size_to_share(n, steps, False), steps, False) == n for n in steps)


def test_each_site_is_fitted_against_the_sizes_the_sites_before_it_took() -> None:
    """Sizes are sampled in site order, each the share of what the budget leaves; a size not recorded (as a
    stepped one was not) left the next site fitted against the earlier site's smallest size, over budget."""
    space = parse_space({"sites": {"attn_out": STEPPED, "ffn": {**STEPPED, "size": {"low": 1, "high": 512}}}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        config = space.sample(trial, MINILM, budget=0.01)
        assert ps.count_params(config, MINILM).stored_fraction <= 0.01, config.describe()
        study.tell(trial, 0.0)
    # with its whole share, the last site takes the largest size that fits beside the first one's real size
    shares = {"attn_out.bottleneck.size_share": 0.6, "ffn.bottleneck.size_share": 1.0}
    config = space.sample(optuna.trial.FixedTrial(shares), MINILM, budget=0.01)
    assert config.attn_out.size > 8  # not its smallest
    bigger = ps.PETLConfig(attn_out=config.attn_out, ffn=dict(form="bottleneck", size=config.ffn.size + 1,
                                                             insertion="parallel"))
    assert ps.count_params(config, MINILM).stored_fraction <= 0.01 < ps.count_params(bigger, MINILM).stored_fraction


@pytest.mark.parametrize("size, message", [
    ({"low": 8, "high": 64, "step": 0}, r"sites.ffn.size: step must be a positive number, but got 0"),
    ({"low": 8, "high": 64, "step": 2.5}, r"sites.ffn.size: an integer range needs an integer step, but got 2.5"),
    ({"low": 8, "high": 64, "step": 8, "log": True},
     r"sites.ffn.size: a log range takes no step \(Optuna samples it in log-space\), but got step=8"),
    ({"low": 8.0, "high": 64.0}, r"sites.ffn.bottleneck.size: sizes are integers, so a range of them needs integer "
                                 r"low and high, but got low=8.0, high=64.0"),
])
def test_a_bad_step_is_refused_at_load(size, message) -> None:
    with pytest.raises(SpaceError, match=message):
        parse_space({"sites": {"ffn": {"size": size}}}, source="bad.yaml")
