"""The weight-sharing supernet on tiny BERT and Llama: a design's output is the stand-alone model's with
the extracted slices, every design starts at the frozen model, gradients reach only the slices used,
designs that share rows share training; the sandwich trainer is deterministic and learns the toy task."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import DatasetDict

import petl_search as ps
from petl_search.core.config import DeltaSpec, PETLConfig
from petl_search.core.errors import PETLError
from petl_search.nn.supernet import Supernet
from petl_search.search.language.space import load_space, parse_space
from petl_search.search.oneshot.supernet_space import SpaceDesigns, largest_designs
from petl_search.training.config import TrainConfig
from petl_search.training.supernet_training import HeadAdaptation, evaluate_design, train_supernet
from petl_search.training.tasks import get_task
from petl_search.training.trainer import prepare_data
from conftest import TINY_CONFIGS, hidden, make_inputs, make_model
from test_trainer import TOKENIZER, separable, tiny_classifier

SPACE = load_space(Path(__file__).resolve().parents[1] / "search_spaces" / "unified.yaml")
TWO_ARCHS = ("bert", "llama")


@pytest.fixture(params=TWO_ARCHS)
def arch(request) -> str:
    return request.param


def supernet_of(arch: str, largest=None) -> Supernet:
    return Supernet(make_model(arch), largest or largest_designs(SPACE, TINY_CONFIGS[arch]()))


def random_designs(arch: str, n: int, seed: int = 0) -> list[PETLConfig]:
    """`n` random points of the unified space with at least one Δh."""
    source, rng, out = SpaceDesigns(SPACE, TINY_CONFIGS[arch]()), np.random.default_rng(seed), []
    while len(out) < n:
        design = source.random(rng)
        if not design.is_empty:
            out.append(design)
    return out


def randomise(supernet: Supernet, seed: int = 3) -> None:
    """Random shared values (zero-initialised up-projections would make comparisons trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in supernet.shared.values():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def standalone(arch: str, design: PETLConfig, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A fresh backbone carrying `design`, its Δh loaded from `state` (which must hold all of it)."""
    model = ps.apply_petl(make_model(arch), design)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(not ps.is_petl_parameter(n) for n in missing)
    return model


def loss_of(out: torch.Tensor) -> torch.Tensor:
    """A loss with real gradients: the mean square of a layer-normed output is about 1 whatever Δh does."""
    return (out * torch.linspace(-1.0, 1.0, out.shape[-1])).sum()


def lora_ffn(r: int, **kw) -> PETLConfig:
    return PETLConfig(ffn=DeltaSpec(form="lora", size=r, **kw))


def test_extract_has_the_stand_alone_names_shapes_and_count(arch: str) -> None:
    supernet = supernet_of(arch)
    for design in random_designs(arch, 12):
        extracted = supernet.extract(design)
        fresh = ps.apply_petl(make_model(arch), design)
        expected = {n: p.shape for n, p in fresh.named_parameters() if ps.is_petl_parameter(n)}
        assert {n: t.shape for n, t in extracted.items()} == expected, design.describe()
        assert sum(t.numel() for t in extracted.values()) == ps.count_params(design, fresh.config).trained


def test_a_design_in_the_supernet_equals_the_stand_alone_model(arch: str) -> None:
    supernet = supernet_of(arch)
    randomise(supernet)
    inputs = make_inputs(arch)
    for design in random_designs(arch, 8, seed=1):
        with torch.no_grad():
            got = supernet(design, **inputs).last_hidden_state
            want = hidden(standalone(arch, design, supernet.extract(design)), inputs)
            with supernet.inherited(design) as model:  # the copy evaluation uses gives the same
                inherited = hidden(model, inputs)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0, msg=design.describe)
        torch.testing.assert_close(inherited, want, atol=1e-6, rtol=0, msg=design.describe)
        assert not torch.allclose(got, hidden(make_model(arch), inputs), atol=1e-4)  # Δh does something


def test_at_init_every_design_is_the_frozen_model(arch: str) -> None:
    supernet = supernet_of(arch)
    inputs = make_inputs(arch)
    with torch.no_grad():
        frozen = hidden(make_model(arch), inputs)
        for design in random_designs(arch, 12, seed=2):
            out = supernet(design, **inputs).last_hidden_state
            if all(spec.is_zero_init for _, spec in design.sites()):
                assert torch.equal(out, frozen), design.describe()
            else:  # a prefix changes attention from the start
                assert not torch.allclose(out, frozen), design.describe()


def test_gradients_reach_only_the_slices_a_design_uses(arch: str) -> None:
    supernet = supernet_of(arch)
    randomise(supernet)
    inputs = make_inputs(arch)
    for design in random_designs(arch, 6, seed=4):
        supernet.zero_grad(set_to_none=True)
        loss_of(supernet(design, **inputs).last_hidden_state).backward()
        used = supernet.regions(design)
        for key, p in supernet.shared.items():
            if key not in used:
                assert p.grad is None, key
                continue
            outside = p.grad.clone()
            outside[used[key]] = 0
            assert torch.count_nonzero(outside) == 0, f"{design.describe()}: {key} has gradients past its slice"
        assert any(torch.count_nonzero(supernet.shared[k].grad) for k in used), design.describe()
        assert all(p.grad is None for p in supernet.model.parameters())  # the backbone stays frozen


def test_designs_that_share_rows_share_their_training() -> None:
    """A step on ffn LoRA r=4 moves r=8 (its first 4 rows are the same numbers), not a bottleneck."""
    small, large, other = lora_ffn(4), lora_ffn(8, insertion="sequential"), \
        PETLConfig(ffn=DeltaSpec(form="bottleneck", size=8))
    supernet = supernet_of("bert", [lora_ffn(16), other])
    randomise(supernet)
    extracted = {n: t for n, t in supernet.extract(large).items() if n.endswith("down_weight")}
    for name, t in supernet.extract(small).items():
        if name.endswith("down_weight"):
            assert torch.equal(t, extracted[name][:, :4])
    inputs = make_inputs("bert")
    with torch.no_grad():
        before = {d: supernet(d, **inputs).last_hidden_state for d in (large, other)}
    optimizer = torch.optim.SGD(supernet.shared.parameters(), lr=0.1)
    loss_of(supernet(small, **inputs).last_hidden_state).backward()
    optimizer.step()
    with torch.no_grad():
        assert not torch.allclose(supernet(large, **inputs).last_hidden_state, before[large])
        assert torch.equal(supernet(other, **inputs).last_hidden_state, before[other])


def test_a_multi_head_bottleneck_keeps_each_heads_first_units() -> None:
    """heads=4: r=8 takes the first 2 units of each head, biases included (not the first 8 of 16)."""
    def heads_design(r: int) -> PETLConfig:
        return PETLConfig(attn_heads=DeltaSpec(form="bottleneck", size=r, heads=4))

    supernet = supernet_of("bert", [heads_design(16)])
    randomise(supernet)
    small, large = supernet.extract(heads_design(8)), supernet.extract(heads_design(16))
    for name, t in small.items():
        if name.endswith("down_bias"):
            assert torch.equal(t.view(4, 2), large[name].view(4, 4)[:, :2])
        if name.endswith("down_weight"):
            assert torch.equal(t, large[name][:, :2])


def test_a_design_the_supernet_does_not_hold_is_refused() -> None:
    supernet = supernet_of("bert", [lora_ffn(8)])
    with pytest.raises(PETLError, match="larger than the supernet"):
        supernet(lora_ffn(16), **make_inputs("bert"))
    with pytest.raises(PETLError, match="no largest design"):
        supernet.extract(PETLConfig(ffn=DeltaSpec(form="bottleneck", size=4)))


def test_largest_designs_and_the_sandwich_draws() -> None:
    config = TINY_CONFIGS["bert"]()
    largest = largest_designs(SPACE, config)
    assert all(len(list(d.sites())) == 4 for d in largest)
    assert {d.ffn.input_norm for d in largest} == {False, True}
    assert {d.attn_qkv.projections for d in largest} >= {("q", "k", "v")}
    source, rng = SpaceDesigns(SPACE, config), np.random.default_rng(0)
    big, tiny = source.largest(rng), source.smallest(rng)
    assert big.ffn.size == 512 and big.attn_qkv.size == 64 and tiny.ffn.size == 4 and tiny.attn_qkv.size == 1
    sizes = [d.ffn.size for d in (source.random(rng) for _ in range(200)) if d.ffn is not None]
    assert min(sizes) < 16 and max(sizes) > 128  # log-uniform over [4, 512]


def test_save_then_load_restores_the_store_and_the_head(tmp_path) -> None:
    model, _ = tiny_classifier(get_task("sst2"))
    supernet = Supernet(model, [lora_ffn(8)], train_modules=["classifier", "bert.pooler"])
    randomise(supernet)
    supernet.save(tmp_path / "s.safetensors")
    saved = {k: v.clone() for k, v in supernet.state_dict().items()}
    with torch.no_grad():
        for p in supernet.parameters():
            if p.requires_grad:
                p.add_(1.0)
    supernet.load(tmp_path / "s.safetensors")
    assert all(torch.equal(v, saved[k]) for k, v in supernet.state_dict().items())
    other = Supernet(tiny_classifier(get_task("sst2"))[0], [lora_ffn(16)], train_modules=["classifier"])
    with pytest.raises(PETLError, match="does not fit"):
        other.load(tmp_path / "s.safetensors")


DATA = DatasetDict({"train": separable(512, 0), "validation": separable(128, 1)})
FAST = TrainConfig(max_steps=150, batch_size=16, learning_rate=1e-2, seed=0, threads=1, search_split=64)
SMALL_SPACE = parse_space({"sites": {  # small sizes: the toy task is learnt in 150 steps, in seconds
    "attn_qkv": {"optional": True, "form": ["lora"], "size": {"low": 1, "high": 8, "log": True}},
    "ffn": {"optional": True, "form": ["bottleneck", "lora"], "size": {"low": 2, "high": 16, "log": True},
            "insertion": ["parallel", "sequential"], "composition": ["add", "scale"],
            "scale": {"low": 1.0, "high": 4.0}}}})


def trained(cfg: TrainConfig, dropout: float = 0.0, **kw):
    task = get_task("sst2")
    torch.manual_seed(cfg.seed)  # the backbone and head, as load_model seeds them
    model, _ = tiny_classifier(task)
    for module in model.modules():  # dropout draws from torch's generator, which a resume must restore
        if isinstance(module, torch.nn.Dropout):
            module.p = dropout
    designs = SpaceDesigns(SMALL_SPACE, model.config)
    supernet = Supernet(model, designs.all_largest(), train_modules=["classifier", "bert.pooler"])
    data = prepare_data(DATA, TOKENIZER, task, cfg, ("toy supernet",))
    return supernet, designs, train_supernet(supernet, designs, data, TOKENIZER, task, cfg, random_designs=1,
                                             **kw), data


def test_sandwich_training_learns_the_toy_task_and_designs_inherit_it() -> None:
    supernet, designs, result, data = trained(FAST)
    assert result.steps == 150 and len(result.losses) == 150
    assert np.mean(result.losses[-10:]) < 0.6 * np.mean(result.losses[:10])  # at first 3 designs · ln 2
    largest = designs.largest(np.random.default_rng(0))
    scores = evaluate_design(supernet, largest, data.select, TOKENIZER, get_task("sst2"), FAST)
    assert scores["accuracy"] > 0.8, largest.describe()  # chance is 0.5; no training of its own


def test_head_adaptation_fits_a_head_of_its_own_then_puts_the_shared_one_back() -> None:
    supernet, designs, _, data = trained(FAST)
    task, design = get_task("sst2"), designs.largest(np.random.default_rng(0))
    torch.manual_seed(5)
    with torch.no_grad():  # a shared head that reads this design's features badly
        supernet.model.classifier.weight.normal_(0, 1)
    shared = {k: v.clone() for k, v in supernet.state_dict().items()}
    adapt = HeadAdaptation.of(data, FAST, steps=30)
    plain = evaluate_design(supernet, design, data.select, TOKENIZER, task, FAST)["accuracy"]
    fitted = evaluate_design(supernet, design, data.select, TOKENIZER, task, FAST, adapt=adapt)["accuracy"]
    assert fitted > plain + 0.1 and fitted > 0.8, (plain, fitted)
    assert all(torch.equal(v, shared[k]) for k, v in supernet.state_dict().items())  # head and store as they were
    again = evaluate_design(supernet, design, data.select, TOKENIZER, task, FAST, adapt=adapt)["accuracy"]
    assert again == fitted  # the same batches from the same head: a score does not depend on what came before
    assert HeadAdaptation.of(data, FAST, steps=0) is None
    with pytest.raises(PETLError, match="adaptation steps"):
        HeadAdaptation.of(data, FAST, steps=-1)


def test_sandwich_training_is_deterministic_and_resumable(tmp_path) -> None:
    short = TrainConfig(**{**FAST.__dict__, "max_steps": 15})
    supernet, _, result, _ = trained(short)
    again, _, result_again, _ = trained(short)
    assert result_again.losses == result.losses
    assert all(torch.equal(a, b) for a, b in zip(supernet.state_dict().values(), again.state_dict().values()))
    other = trained(TrainConfig(**{**short.__dict__, "seed": 1}))[2]
    assert other.losses != result.losses


def test_on_a_projection_sequential_and_parallel_do_not_share_weights() -> None:
    """A sequential Δh on k reads k's output, a parallel one the hidden state: the same column of W_down
    means a different feature, so the two are different variants (elsewhere insertion shares weights)."""
    def on_k(insertion: str) -> PETLConfig:
        return PETLConfig(attn_qkv=DeltaSpec(form="lora", size=4, insertion=insertion, projections=("k",)))

    supernet = supernet_of("bert", [on_k("parallel"), on_k("sequential")])
    randomise(supernet)
    parallel, sequential = supernet.slices(on_k("parallel")), supernet.slices(on_k("sequential"))
    assert parallel.keys() == sequential.keys()
    assert not any(torch.equal(parallel[n], sequential[n]) for n in parallel)
    ffn = supernet_of("bert", [lora_ffn(8), lora_ffn(8, insertion="sequential")])
    assert len(ffn.shared) == 2 * 2  # W_down and W_up in each of the 2 blocks, shared by both insertions


def test_with_a_budget_the_sandwich_draws_fit_it_and_its_largest_fills_it() -> None:
    from petl_search.core.params import count_params

    config = TINY_CONFIGS["bert"]()
    # a tiny model's 5% cannot hold every site at its smallest; a quarter can
    limit = 0.25 * count_params(PETLConfig(), config).backbone
    source, rng = SpaceDesigns(SPACE, config, budget=0.25), np.random.default_rng(0)
    big, tiny = source.largest(rng), source.smallest(rng)
    stored = [count_params(d, config).stored for d in (big, tiny, *(source.random(rng) for _ in range(100)))]
    assert max(stored) <= limit
    assert stored[0] > 0.5 * limit and stored[1] < stored[0]  # the largest is near the budget, the smallest below
    unbounded = SpaceDesigns(SPACE, config).largest(np.random.default_rng(0))
    assert count_params(unbounded, config).stored > limit  # without a budget: the space's largest


def test_with_a_budget_the_store_holds_only_what_fits_and_every_draw_fits_in_it() -> None:
    """A site's size in a design within budget never exceeds what fits with the site alone, so the store
    is cut to that (on MPNet-base at 1%: 128M shared parameters without, 49M with), and no draw misses."""
    config = TINY_CONFIGS["bert"]()
    bounded, unbounded = SpaceDesigns(SPACE, config, budget=0.25), SpaceDesigns(SPACE, config)
    small = Supernet(make_model("bert"), bounded.all_largest())
    whole = Supernet(make_model("bert"), unbounded.all_largest())
    assert small.shared.keys() == whole.shared.keys()  # the same variants, smaller
    assert all(a <= b for k in small.shared for a, b in zip(small.shared[k].shape, whole.shared[k].shape))
    assert sum(p.numel() for p in small.shared.values()) < 0.5 * sum(p.numel() for p in whole.shared.values())
    rng = np.random.default_rng(1)
    for _ in range(40):
        for design in (bounded.largest(rng), bounded.smallest(rng), bounded.random(rng)):
            small.slices(design)  # raises when a design needs a row the store does not hold


def test_a_killed_supernet_training_goes_on_from_its_checkpoint_to_the_same_result(tmp_path) -> None:
    short = TrainConfig(**{**FAST.__dict__, "max_steps": 15})
    whole, _, result, _ = trained(short, dropout=0.1)

    def killed(step: int, steps: int, loss: float) -> None:
        if step == 12:
            raise KeyboardInterrupt

    path = tmp_path / "supernet.ckpt"
    with pytest.raises(KeyboardInterrupt):
        trained(short, dropout=0.1, checkpoint=path, checkpoint_every=5, progress=killed)
    assert torch.load(path, weights_only=True)["step"] == 10  # the last checkpoint before the kill
    resumed, _, again, _ = trained(short, dropout=0.1, checkpoint=path, checkpoint_every=5)
    assert again.losses == result.losses and again.steps == 15
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
    other = Supernet(tiny_classifier(get_task("sst2"))[0], [lora_ffn(4)], train_modules=["classifier"])
    with pytest.raises(PETLError, match="is a checkpoint of another supernet"):
        train_supernet(other, SpaceDesigns(SMALL_SPACE, other.model.config),
                       prepare_data(DATA, TOKENIZER, get_task("sst2"), short, ("toy supernet",)), TOKENIZER,
                       get_task("sst2"), short, checkpoint=path)
