"""A decoder as a causal LM on a prompt -> answer task (kind `causal_lm`): tiny random Llama (tied and untied LM
head) and GPT-2 models built in memory, with a word-level tokenizer that, like Llama's, has no padding token.

The encoding puts the loss on the answer and end of sequence only (a test that fails if the prompt is in it);
exact match on generated answers and accuracy over a verbalizer's scored words agree with values computed by hand
(unpadded, one example at a time); every preset and points of the unified space count exactly on a causal LM,
whose own LM head stays frozen and is no task head; training lowers the loss; an export loads back with the same
logits (`petl_search.load`; PEFT's `PeftModel.from_pretrained` for LoRA; the card's snippet as written); a study
on a causal LM task runs through search, report and dashboard; the SST-2 prompt task of the docs and the SmolLM2
study loads over the packaged SST-2 files. The real SmolLM2 trains as a causal LM in test_smollm2_smoke.py.
"""
from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path
from types import SimpleNamespace

import optuna
import peft
import pytest
import torch
import yaml
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModel, AutoModelForCausalLM, GPT2Config, LlamaConfig, PreTrainedTokenizerFast

import petl_search as ps
from petl_search.cli import main
from petl_search.export import HEAD_FILE, PEFT_DIR, evaluate_export, write_folder
from petl_search.nn.serialization import stored_state_dict
from petl_search.search.language.space import load_space
from petl_search.search.language.study import load_study
from petl_search.search.optuna_bridge.records import read_records
from petl_search.search.runner.inline import run_study_inline
from petl_search.training import metrics
from petl_search.training.config import TrainConfig
from petl_search.training.data import IGNORED, collate, encode
from petl_search.training.evaluation import label_scores, predict
from petl_search.training.models import head_modules, load_model, prepare_tokenizer
from petl_search.training.own_tasks import parse_task
from petl_search.training.splits import carve, constant_references, search_rows
from petl_search.training.tasks import PACKAGED_GLUE_DIR, TaskName, load_task
from petl_search.training.trainer import train
from conftest import randomise_deltas

ROOT = Path(__file__).resolve().parents[1]
CUES = {"neg": "terrible", "pos": "wonderful"}
FILLER = "the a movie film story plot actor scene music some very quite rather it was is".split()
WORDS = [*FILLER, *CUES.values(), "Review:", "Sentiment:", "positive", "negative", "not", "good"]
CPU = torch.device("cpu")
PRESETS = sorted(ps.PRESETS)


def word_tokenizer() -> PreTrainedTokenizerFast:
    """One token per word (split on white space), an end of sequence and no padding token, as Llama's."""
    vocab = {word: i for i, word in enumerate(["<unk>", "<eos>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>")


TOKENIZER = word_tokenizer()
TOKENIZER.pad_token = TOKENIZER.eos_token  # what prepare_tokenizer does (the trainer's tests start without one)
VOCAB = len(TOKENIZER)
CONFIGS = {
    "llama": lambda: LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 intermediate_size=64, vocab_size=VOCAB),
    "llama tied": lambda: LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, intermediate_size=64, vocab_size=VOCAB,
                                      tie_word_embeddings=True),
    "gpt2": lambda: GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=VOCAB, resid_pdrop=0.0, embd_pdrop=0.0,
                               attn_pdrop=0.0),
}


def causal_lm(arch: str = "llama", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(CONFIGS[arch]()).eval()
    prepare_tokenizer(model, word_tokenizer())
    return model


def reviews(n: int, seed: int) -> list[dict]:
    """A sentiment task: the class is told by one cue word among filler words; its answer is the class's word."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(sorted(CUES))
        words = rng.choices(FILLER, k=rng.randint(3, 8))
        words.insert(rng.randint(0, len(words)), CUES[label])
        rows.append({"sentence": " ".join(words), "label": label,
                     "answer": "positive" if label == "pos" else "negative"})
    return rows


def write_files(folder: Path, train: int = 120, dev: int = 40) -> None:
    for name, n, seed in (("train", train, 0), ("dev", dev, 1)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reviews(n, seed)))


PROMPT = "Review: {sentence} Sentiment:"
# the verbalizer's negative words are two tokens: scores sum over a word's tokens
VERBALIZED = {"kind": "causal_lm", "files": {"train": "train.jsonl", "dev": "dev.jsonl"}, "prompt": PROMPT,
              "label": "label", "verbalizer": {"neg": " not good", "pos": " positive"}}
ANSWERED = {"kind": "causal_lm", "files": {"train": "train.jsonl", "dev": "dev.jsonl"}, "prompt": PROMPT,
            "answer": "answer"}


def own_task(folder: Path, block: dict, name: str = "prompted") -> TaskName:
    if not (folder / "train.jsonl").exists():
        write_files(folder)
    return TaskName(parse_task(block, source=str(folder / "task.yaml"), default_name=name))


def encoded(task: TaskName, split: str = "validation", **cfg) -> tuple:
    data = load_task(task)
    return data, encode(data[split], TOKENIZER, task.task, TrainConfig(**cfg), None)


def prompt_ids(text: str) -> list[int]:
    return TOKENIZER(text)["input_ids"]


# --- the task and its encoding -------------------------------------------------------------------------------

def test_a_prompt_task_reads_a_template_and_a_verbalizer_or_an_answer(tmp_path) -> None:
    task = own_task(tmp_path, VERBALIZED).task
    assert (task.kind, task.metric, task.main_metric, task.labels, task.verbalizer) == (
        "causal_lm", "accuracy", "accuracy", ("neg", "pos"), (" not good", " positive"))
    assert (task.prompt, task.text_columns, task.has_head, task.has_classes) == (PROMPT, ("prompt",), False, True)
    first = reviews(40, 1)[0]
    data = load_task(TaskName(task))
    assert data["validation"][0] == {"prompt": f"Review: {first['sentence']} Sentiment:",
                                     "label": ["neg", "pos"].index(first["label"])}
    answered = own_task(tmp_path, ANSWERED, "answered").task
    assert (answered.metric, answered.main_metric, answered.labels, answered.has_classes) == (
        "exact_match", "exact_match", (), False)
    assert load_task(TaskName(answered))["validation"][0]["label"] == first["answer"]
    column = own_task(tmp_path, {**ANSWERED, "prompt": "sentence"}, "column").task  # a column is the template {col}
    assert column.prompt == "{sentence}" and load_task(TaskName(column))["validation"][0]["prompt"] == first["sentence"]


def test_the_encoding_is_prompt_then_answer_then_end_of_sequence_with_labels_on_the_answer_only(tmp_path) -> None:
    for block, answer_of in ((VERBALIZED, lambda row: VERBALIZED["verbalizer"][row["label"]]),
                             (ANSWERED, lambda row: row["answer"])):
        _, split = encoded(own_task(tmp_path, block, f"t{len(block)}"))
        for i, row in enumerate(reviews(40, 1)[:5]):
            prompt = prompt_ids(f"Review: {row['sentence']} Sentiment:")
            answer = TOKENIZER(answer_of(row), add_special_tokens=False)["input_ids"] + [TOKENIZER.eos_token_id]
            encoded_row = split.rows([i])[0]
            assert encoded_row["input_ids"] == prompt + answer and encoded_row["prompt_ids"] == prompt
            assert encoded_row["labels"] == [IGNORED] * len(prompt) + answer


def test_two_tasks_of_one_name_never_share_cached_encodings(tmp_path) -> None:
    """The tokenisation cache (per process, keyed by what the data is) keeps an own task's definition: the same
    task name and rows with another verbalizer or prompt (a study's task edited, run again in one notebook)
    encode anew, and the same definition again reuses the first encoding."""
    first = own_task(tmp_path, VERBALIZED, "same")
    words = own_task(tmp_path, {**VERBALIZED, "verbalizer": {"neg": " negative", "pos": " positive"}}, "same")
    prompt = own_task(tmp_path, {**VERBALIZED, "prompt": "Review: {sentence}"}, "same")
    key, cfg = ("same", "cache test", None), TrainConfig()
    splits = [encode(load_task(t)["validation"], TOKENIZER, t.task, cfg, key) for t in (first, words, prompt, first)]
    assert splits[0] is splits[3] and len({id(s) for s in splits[:3]}) == 3
    row = reviews(40, 1)[0]
    verbalized = {"neg": " negative", "pos": " positive"}[row["label"]]
    assert splits[1].rows([0])[0]["labels"][-2:] == [*TOKENIZER(verbalized, add_special_tokens=False)["input_ids"],
                                                     TOKENIZER.eos_token_id]
    assert splits[2].rows([0])[0]["prompt_ids"] == prompt_ids(f"Review: {row['sentence']}")


def test_two_tokenizers_built_in_memory_never_share_cached_encodings(tmp_path) -> None:
    """Tokenizers built in memory (a model_factory's) all have an empty name_or_path; the cache once keyed on it,
    so a second tokenizer over the same rows got the first one's token ids. An equal tokenizer still reuses."""
    task = own_task(tmp_path, VERBALIZED, "tokenized")
    reordered = {word: i for i, word in enumerate(["<unk>", "<eos>", *reversed(WORDS)])}
    backend = Tokenizer(models.WordLevel(reordered, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    other = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>")
    assert TOKENIZER.name_or_path == other.name_or_path == ""
    same = word_tokenizer()
    same.pad_token = same.eos_token  # as TOKENIZER's
    key, cfg, rows = ("tokenized", "cache test", None), TrainConfig(), load_task(task)["validation"]
    first, second, again = (encode(rows, t, task.task, cfg, key) for t in (TOKENIZER, other, same))
    assert second is not first and again is first
    assert second.rows([0])[0]["prompt_ids"] == other(
        f"Review: {reviews(40, 1)[0]['sentence']} Sentiment:", add_special_tokens=False)["input_ids"]


def test_a_long_prompt_keeps_its_end_and_the_answer_its_start(tmp_path) -> None:
    _, split = encoded(own_task(tmp_path, VERBALIZED), max_length=3, max_target_length=1)
    row = split.rows([0])[0]
    assert TOKENIZER.convert_ids_to_tokens(row["prompt_ids"])[-1] == "Sentiment:" and len(row["prompt_ids"]) == 3
    assert len(row["input_ids"]) == 3 + 1 + 1  # one answer token, then end of sequence


def hand_loss(model: torch.nn.Module, rows: list[dict]) -> torch.Tensor:
    """The mean cross-entropy of each answer token (and end of sequence) given everything before it, computed
    example by example without padding: the loss the encoding must give."""
    terms = []
    for row in rows:
        ids = torch.tensor([row["input_ids"]])
        logp = model(input_ids=ids).logits[0].log_softmax(-1)
        terms += [-logp[t - 1, ids[0, t]] for t in range(len(row["prompt_ids"]), ids.shape[1])]
    return torch.stack(terms).mean()


def test_the_batch_loss_is_on_the_answer_tokens_only(tmp_path) -> None:
    """The trainer's loss on a right-padded batch is the answers' cross-entropy alone: with the prompt's tokens
    in the loss (or the padding's) it would differ."""
    _, split = encoded(own_task(tmp_path, ANSWERED))
    model = causal_lm()
    randomise_deltas(ps.apply_petl(model, ps.presets.lora(r=2)))
    indices = [0, 1, 2, 3]
    batch = collate(split, indices, TOKENIZER.pad_token_id, CPU, False)
    assert len({len(r["input_ids"]) for r in split.rows(indices)}) > 1  # padding is exercised
    with torch.no_grad():
        loss = model(**batch).loss
        rows = split.rows(indices)
        torch.testing.assert_close(loss, hand_loss(model, rows), atol=1e-5, rtol=0)
        every = [{**r, "prompt_ids": r["prompt_ids"][:1]} for r in rows]  # what a loss on the prompt too would be
        assert abs(loss - hand_loss(model, every)) > 1e-3


# --- the metrics -----------------------------------------------------------------------------------------------

def test_exact_match_normalises_white_space_and_case_only() -> None:
    predictions = ["Positive", "  negative\n", "neg ative", "positive.", "very  good", ""]
    references = ["positive", "negative", "negative", "positive", "Very good", "x"]
    assert metrics.exact_match(predictions, references) == 3 / 6  # 1, 2 and 5 match
    assert metrics.compute("exact_match", predictions, references) == {"exact_match": 0.5}
    assert metrics.normalise_answer(" A\tB\n c ") == "a b c"
    assert metrics.constant_scores("exact_match", ["yes", "Yes ", "no"], ["yes", "no", "YES"]) == {
        "exact_match": 2 / 3}  # the most frequent training answer, normalised: "yes"


def hand_scores(model: torch.nn.Module, split, indices: list[int]) -> torch.Tensor:
    """Each class's words' log-likelihood after each prompt, one unpadded sequence at a time."""
    out = torch.zeros(len(indices), len(split.words))
    for e, i in enumerate(indices):
        prompt = split.rows([i])[0]["prompt_ids"]
        for c, word in enumerate(split.words):
            logp = model(input_ids=torch.tensor([prompt + word])).logits[0].log_softmax(-1)
            out[e, c] = sum(logp[len(prompt) - 1 + j, token] for j, token in enumerate(word))
    return out


@pytest.mark.parametrize("arch", sorted(CONFIGS))
def test_verbalizer_accuracy_is_the_best_scored_words_class(arch, tmp_path) -> None:
    task = own_task(tmp_path, VERBALIZED)
    _, split = encoded(task)
    assert [len(w) for w in split.words] == [2, 1]  # " not good" is two tokens
    model = causal_lm(arch)
    randomise_deltas(ps.apply_petl(model, ps.presets.mam(prefix_len=3, ffn_r=8)), seed=5)
    indices = list(range(12))
    with torch.no_grad():
        expected = hand_scores(model, split, indices)
        torch.testing.assert_close(label_scores(model, split, indices, TOKENIZER.pad_token_id, CPU), expected,
                                   atol=1e-4, rtol=0)
    chosen = predict(model, TOKENIZER, split, indices, task.task, TrainConfig(eval_batch_size=5), CPU,
                     lambda: torch.autocast("cpu", enabled=False))
    assert chosen == expected.argmax(-1).tolist()
    truth = [split.references[i] for i in indices]
    assert metrics.compute("accuracy", chosen, truth)["accuracy"] == sum(p == t for p, t in zip(chosen, truth)) / 12


def greedy(model: torch.nn.Module, prompt: list[int], steps: int) -> str:
    """Greedy decoding of one prompt alone (no padding), token by token, to end of sequence."""
    ids, new = list(prompt), []
    for _ in range(steps):
        token = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        if token == TOKENIZER.eos_token_id:
            break
        ids.append(token)
        new.append(token)
    return TOKENIZER.decode(new, skip_special_tokens=True)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("name", ["lora", "prefix_tuning", "houlsby"])
def test_generated_answers_on_left_padded_prompts_are_each_prompts_own(arch, name, tmp_path) -> None:
    """Batched generation (prompts padded on the left, Δh on) gives what each prompt alone gives; exact match
    scores those answers."""
    task = own_task(tmp_path, ANSWERED)
    _, split = encoded(task, max_target_length=4)
    model = causal_lm(arch)
    randomise_deltas(ps.apply_petl(model, ps.preset(name, model_config=model.config)), seed=7)
    indices = list(range(10))
    cfg = TrainConfig(max_target_length=4, eval_batch_size=4)
    got = predict(model, TOKENIZER, split, indices, task.task, cfg, CPU, lambda: torch.autocast("cpu", enabled=False))
    with torch.no_grad():
        assert got == [greedy(model, split.rows([i])[0]["prompt_ids"], 4) for i in indices]
    assert len({len(split.rows([i])[0]["prompt_ids"]) for i in indices}) > 1  # padding is exercised
    truth = [split.references[i] for i in indices]
    assert metrics.compute("exact_match", got, truth)["exact_match"] == \
        sum(" ".join(g.split()).lower() == t for g, t in zip(got, truth)) / 10


# --- counts, heads and gradients ------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", sorted(CONFIGS))
@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_on_a_causal_lm_counts_exactly_and_trains_only_delta(arch, name) -> None:
    model = causal_lm(arch)
    assert head_modules(model) == []  # the LM head (tied or not) is the model's own, not a task head
    config = ps.preset(name, model_config=model.config)
    ps.apply_petl(model, config, train_modules=head_modules(model))
    counted = ps.count_params(config, model.config)
    assert counted.trained == sum(p.numel() for n, p in model.named_parameters() if ps.is_petl_parameter(n))
    assert counted.stored == sum(t.numel() for t in stored_state_dict(model).values())
    assert counted.backbone == sum(p.numel() for p in AutoModel.from_config(CONFIGS[arch]()).parameters())
    ids = torch.tensor([prompt_ids("Review: the movie was wonderful Sentiment: positive")])
    model(input_ids=ids, labels=ids).loss.backward()
    for n, p in model.named_parameters():
        trained = ps.is_petl_parameter(n)
        assert p.requires_grad == trained and (p.grad is not None) == trained, n
    assert not model.get_output_embeddings().weight.requires_grad
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert tied == (arch != "llama")  # GPT-2 ties by default, the tiny Llama only when told


def test_points_of_the_unified_space_count_exactly_on_a_causal_llama() -> None:
    space = load_space(ROOT / "search_spaces" / "unified.yaml")
    config = CONFIGS["llama"]()
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(25):
        trial = study.ask()
        point = space.sample(trial, config)
        with torch.device("meta"):
            ps.apply_petl(model, point)
        try:
            built = sum(p.numel() for n, p in model.named_parameters() if ps.is_petl_parameter(n))
        finally:
            ps.remove_petl(model)
        assert ps.count_params(point, config).trained == built, point.describe()
        study.tell(trial, 0.0)


def factory(arch: str = "llama"):
    return lambda task: (causal_lm(arch), word_tokenizer())


@pytest.mark.parametrize("block", ["verbalizer", "answer"])
def test_training_lowers_the_loss_and_records_no_head(block, tmp_path) -> None:
    task = own_task(tmp_path, VERBALIZED if block == "verbalizer" else ANSWERED)
    losses: list[float] = []
    result = train(ps.presets.lora(r=4), task, data=load_task(task), model_factory=factory(),
                   progress=lambda step, steps, loss: losses.append(loss),
                   train_config=TrainConfig(max_steps=30, batch_size=16, eval_every=100, learning_rate=1e-2,
                                            max_target_length=3, eval_batch_size=20))
    assert result.status == "completed", result.reason
    assert sum(losses[-5:]) < sum(losses[:5]), losses
    assert result.params["head"] == 0 and result.params["trained_total"] == result.params["delta_trained"]
    assert set(result.metrics) == {task.task.main_metric}


def test_the_search_split_is_stratified_by_a_verbalizers_labels_only(tmp_path) -> None:
    cfg = TrainConfig(search_split=0.25, split_seed=0)
    verbalized = own_task(tmp_path, VERBALIZED)
    data = load_task(verbalized)
    labels = data["train"]["label"]
    rest, held = search_rows(verbalized.task, data, cfg)
    assert len(held) == 30 and sorted(rest + held) == list(range(120))
    share = sum(labels) / len(labels)
    assert abs(sum(labels[i] for i in held) / 30 - share) <= 1 / 30  # each class keeps its share
    answered = own_task(tmp_path, ANSWERED, "answered")
    assert search_rows(answered.task, load_task(answered), cfg) == carve(range(120), 0.25, 0, stratify=False)
    constant = constant_references(answered.task, load_task(answered), cfg)
    assert set(constant) == {"search split", "dev"} and 0.3 < constant["dev"]["exact_match"] < 0.7


# --- export --------------------------------------------------------------------------------------------------

def write_export(folder: Path, model, config: ps.PETLConfig, task: TaskName, base_model: str = "tiny-llama") -> str:
    """export.write_folder on a model trained elsewhere: what `petl-search export` writes after re-training."""
    result = SimpleNamespace(trained_model=model, train_config={"learning_rate": 1e-3, "max_steps": 1, "batch_size": 2,
                                                                "seed": 0},
                             metrics={"accuracy": 0.5}, evaluated_on="dev", dev_metrics={}, params={
                                 "delta_stored": 1, "delta_stored_fraction": 0.0, "head": 0, "backbone": 1})
    spec = SimpleNamespace(name="causal", task=task, model=base_model, main_metric="accuracy", data_source=None)
    record = SimpleNamespace(number=0, kind="baseline", label="point", metric=0.5, config=config.to_dict())
    return write_folder(folder, result, spec, record, True)


def inputs() -> dict[str, torch.Tensor]:
    batch = TOKENIZER(["Review: the movie was wonderful Sentiment:", "Review: terrible Sentiment: not"])
    width = max(len(ids) for ids in batch["input_ids"])
    return {"input_ids": torch.tensor([ids + [TOKENIZER.eos_token_id] * (width - len(ids))
                                       for ids in batch["input_ids"]]),
            "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch["input_ids"]])}


@pytest.mark.parametrize("arch", ["llama", "llama tied", "gpt2"])
@pytest.mark.parametrize("name", PRESETS)
def test_every_exported_point_loads_on_a_fresh_causal_lm_with_the_same_logits(arch, name, tmp_path) -> None:
    task = own_task(tmp_path, VERBALIZED)
    config = ps.preset(name, model_config=CONFIGS[arch]())
    model = ps.apply_petl(causal_lm(arch), config)
    randomise_deltas(model)
    with torch.no_grad():
        expected = model(**inputs()).logits
    peft_status = write_export(tmp_path / "out", model, config, task)
    assert not (tmp_path / "out" / HEAD_FILE).exists()  # no task head: nothing but Δh to carry
    fresh = causal_lm(arch)
    ps.load(fresh, tmp_path / "out")
    with torch.no_grad():
        assert torch.equal(fresh(**inputs()).logits, expected)
    assert (peft_status == "written") == (name == "lora" and arch != "gpt2"), peft_status  # GPT-2 fuses q, k, v


@pytest.mark.parametrize("arch", ["llama", "llama tied"])
def test_the_peft_folder_of_a_causal_lora_gives_our_logits(arch, tmp_path) -> None:
    task = own_task(tmp_path, VERBALIZED)
    config = ps.presets.lora(r=4)
    base = causal_lm(arch)
    model = ps.apply_petl(copy.deepcopy(base), config)
    randomise_deltas(model)
    assert write_export(tmp_path / "out", model, config, task) == "written"
    theirs = peft.PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / "out" / PEFT_DIR)).eval()
    assert sorted(theirs.peft_config["default"].target_modules) == ["q_proj", "v_proj"]
    assert not theirs.peft_config["default"].modules_to_save  # no head travels with it
    with torch.no_grad():
        expected = model(**inputs()).logits
        assert not torch.allclose(expected, base(**inputs()).logits, atol=1e-3)
        torch.testing.assert_close(theirs(**inputs()).logits, expected, atol=1e-5, rtol=1e-5)


def card_snippet(folder: Path, heading: str) -> str:
    """The first python block after `heading` in the card."""
    text = (folder / "README.md").read_text()
    return re.search(rf"{heading}.*?```python\n(.*?)```", text, re.S).group(1)


def test_the_cards_loading_snippet_runs_as_written_on_a_causal_lm(tmp_path) -> None:
    """The card builds the base model with the project's loader (AutoModelForCausalLM, no task head) and loads
    the export onto it: run as written, it gives the trained model's logits."""
    task = own_task(tmp_path, VERBALIZED)
    base = causal_lm("llama")
    base.save_pretrained(tmp_path / "base")
    TOKENIZER.save_pretrained(tmp_path / "base")
    config = ps.presets.prefix_tuning(l=3, reparam=None)
    model = ps.apply_petl(base, config)
    randomise_deltas(model)
    write_export(tmp_path / "out", model, config, task, base_model=str(tmp_path / "base"))
    code = card_snippet(tmp_path / "out", "## Load it")
    assert "load_weights(AutoModelForCausalLM.from_pretrained" in code and "num_labels" not in code
    namespace: dict = {}
    exec(compile(code, str(tmp_path / "out" / "README.md"), "exec"), namespace)
    with torch.no_grad():
        torch.testing.assert_close(namespace["model"].eval()(**inputs()).logits, model(**inputs()).logits,
                                   atol=1e-6, rtol=0)
    assert "none: the language model answers with its own LM head" in (tmp_path / "out" / "README.md").read_text()


# --- a study, and the SST-2 prompt task --------------------------------------------------------------------

def test_a_study_on_a_causal_lm_task_searches_reports_and_exports(tmp_path, capsys) -> None:
    write_files(tmp_path)
    causal_lm("llama").save_pretrained(tmp_path / "model")
    TOKENIZER.save_pretrained(tmp_path / "model")
    study = {"name": "prompted", "model": str(tmp_path / "model"), "task": VERBALIZED,
             "space": str(ROOT / "search_spaces" / "unified.yaml"), "budget": 0.5, "n_trials": 1,
             "sampler": {"name": "random", "seed": 0}, "baselines": [{"preset": "lora", "args": {"r": 2}}],
             "train": {"max_steps": 6, "eval_every": 3, "batch_size": 8, "learning_rate": 0.01, "eval_batch_size": 16,
                       "max_target_length": 3}}
    (tmp_path / "prompted.yaml").write_text(yaml.safe_dump(study))
    spec = load_study(tmp_path / "prompted.yaml")
    assert spec.objectives == ("accuracy", "stored_params")
    run_study_inline(spec, progress=lambda line: None)
    records = [r for r in read_records(optuna.load_study(study_name="prompted", storage=spec.storage))
               if r.state == "COMPLETE"]
    assert {r.kind for r in records} == {"search", "baseline"}
    assert all(r.evaluated_on == "search split" and "accuracy" in r.dev_scores and r.head_params == 0
               for r in records)
    assert main(["report", spec.source, "--out", str(tmp_path / "report.md")]) == 0
    assert main(["dashboard", spec.source, "--out", str(tmp_path / "prompted.html")]) == 0
    lora = next(r for r in records if r.kind == "baseline")
    assert main(["export", spec.source, "--trial", str(lora.number), "--out", str(tmp_path / "export")]) == 0
    capsys.readouterr()
    model = ps.load(load_model(spec.model, spec.task.task, seed=3)[0], tmp_path / "export")
    saved = json.loads((tmp_path / "export" / "trial.json").read_text())
    assert evaluate_export(model, tmp_path / "export") == pytest.approx(saved["dev_metrics"])


@pytest.mark.parametrize("block, score", [(VERBALIZED, "accuracy"), (ANSWERED, "exact_match")],
                         ids=["verbalizer", "answer"])
def test_a_oneshot_study_on_a_causal_lm_task_scores_designs_and_trains_its_top_k(block, score, tmp_path) -> None:
    """The supernet trains on the answer tokens, designs are scored by the task's own score with inherited
    weights (no head to adapt: adapt_steps is 0), and the top_k are trained stand-alone, in one process
    (`run_study_inline` once ignored `strategy: oneshot` and ran a plain search)."""
    write_files(tmp_path)
    causal_lm("llama").save_pretrained(tmp_path / "model")
    TOKENIZER.save_pretrained(tmp_path / "model")
    study = {"name": "oneshot", "model": str(tmp_path / "model"), "task": block, "strategy": "oneshot",
             "space": str(ROOT / "search_spaces" / "unified.yaml"), "budget": 0.5, "baselines": [],
             "sampler": {"name": "nsga2", "seed": 0, "population_size": 4},
             "oneshot": {"supernet_steps": 6, "random_designs": 1, "designs": 6, "eval_examples": 16, "top_k": 2},
             "train": {"max_steps": 4, "eval_every": 2, "batch_size": 8, "learning_rate": 0.01, "eval_batch_size": 16,
                       "max_target_length": 3}}
    (tmp_path / "oneshot.yaml").write_text(yaml.safe_dump(study))
    spec = load_study(tmp_path / "oneshot.yaml")
    assert spec.oneshot["adapt_steps"] == 0 and spec.main_metric == score
    lines: list[str] = []
    run_study_inline(spec, progress=lines.append)
    assert any(line.startswith("one-shot: supernet step 6/6") for line in lines), lines
    designs = optuna.load_study(study_name="oneshot.oneshot", storage=spec.storage)
    scored = [t for t in designs.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(scored) == 6 and all(0 <= t.values[0] <= 1 and t.values[1] > 0 for t in scored)
    search = [r for r in read_records(optuna.load_study(study_name="oneshot", storage=spec.storage))
              if r.kind == "search"]
    assert len(search) == 2 and all(r.state == "COMPLETE" and score in r.dev_scores for r in search)
    for r in search:  # each trains the design it was queued for
        assert r.config == designs.trials[r.extra["oneshot_design"]].user_attrs["config"]


STUDY = ROOT / "studies" / "smollm2_sst2_prompt.yaml"


def test_the_sst2_prompt_task_of_the_docs_is_the_studys_and_reads_the_packaged_sst2() -> None:
    docs = (ROOT / "docs" / "training.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", docs, re.S) if "causal_lm" in b]
    sst2 = next(b["task"] for b in blocks if "verbalizer" in b["task"])
    assert sst2 == yaml.safe_load(STUDY.read_text())["task"]
    task = TaskName(parse_task(sst2, source=str(STUDY), default_name="x"))
    paths = {split: Path(path) for split, path in task.task.files.items()}
    assert paths == {"train": PACKAGED_GLUE_DIR / "SST-2" / "train.tsv",
                     "validation": PACKAGED_GLUE_DIR / "SST-2" / "dev.tsv"}
    data = load_task(task)
    glue = load_task("sst2", PACKAGED_GLUE_DIR)
    assert (len(data["train"]), len(data["validation"])) == (67349, 872)
    assert data["validation"]["label"] == glue["validation"]["label"]
    assert data["validation"][0]["prompt"] == f"Review: {glue['validation'][0]['text_a']}\nSentiment:"
    assert task.task.verbalizer == (" negative", " positive") and task.task.main_metric == "accuracy"


def test_train_takes_a_causal_lm_task_file(tmp_path) -> None:
    """`petl-search train --task-file` trains a causal LM on a prompt task (no CLI change: the model follows the
    task's kind) and records its answers' exact match."""
    write_files(tmp_path)
    causal_lm("llama").save_pretrained(tmp_path / "model")
    TOKENIZER.save_pretrained(tmp_path / "model")
    (tmp_path / "answers.yaml").write_text(yaml.safe_dump(ANSWERED))
    assert main(["train", "--task-file", str(tmp_path / "answers.yaml"), "--preset", "lora", "--arg", "r=2",
                 "--model", str(tmp_path / "model"), "--steps", "2", "--eval-every", "2", "--batch-size", "4",
                 "--out", str(tmp_path / "result.json")]) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert (result["task"], result["status"], result["params"]["head"]) == ("answers", "completed", 0)
    assert set(result["metrics"]) == {"exact_match"}
