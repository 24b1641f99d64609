"""Take a study's chosen configuration away as a module that loads onto a base model with one call.

    petl-search export quickstart --best --max-params 0.005 --out exported/
    model = petl_search.load(load_weights(AutoModelForSequenceClassification.from_pretrained, base, num_labels=2),
                             "exported/")

A search keeps results, not weights, so export trains the trial again with its exact settings (model,
task, trainer budget, seed, and the learning rate the trial trained at): on the same machine and device that gives the trial's model bit for bit,
and the export checks it (the dev metric must equal the stored one). `--steps N` or `--full-train`
trains longer instead. The folder holds `petl_config.json` + `weights.safetensors` (Δh, as `save_petl`
writes them), `head.safetensors` (the task head trained with it), `trial.json` (the study's record),
`README.md` (a card: task, metric, parameters, learning rate, how to load and how to check the score, in
snippets that run as written: the base model built by the project's own loader, `load_weights`, which reads a
packaged name offline, SmolLM2's GGUF file included, whose folder has no config.json; a causal LM has no task
head, and no head file), where the configuration is plain LoRA on attention projections, `peft/` (a folder PEFT
loads), and `petl_export.json` (the manifest: the names export wrote). It is written to a
temporary folder and moved into place, so a failed export leaves nothing half-written. A non-empty folder
is kept unless `force`; with `force`, export replaces only what an earlier export wrote there (its
manifest says what), keeps the files the user put beside them, and refuses a folder it did not write:
export never deletes a file it did not write. The folder and its files get the modes the user's umask gives.
"""
from __future__ import annotations

import copy
import json
import math
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file

from .analysis.front import lr_text
from .core.config import PETLConfig
from .core.errors import PETLError
from .core.params import percent
from .core.version import __version__
from .nn.inject import PETL_PREFIX, remove_petl
from .nn.merge import merge_petl
from .nn.serialization import CONFIG_FILE, WEIGHTS_FILE, copy_checked, load_petl, save_petl, umask_permissions
from .search.optuna_bridge.records import TrialRecord
from .search.language.study import StudySpec
from .training.config import TrainConfig
from .training.data import encode
from .training.evaluation import evaluate
from .training.models import head_modules, load_pretrained, prepare_tokenizer
from .training.tasks import GLUE_DIR_ENV, HUB, get_task, load_cached_task, load_task
from .training.trainer import bf16_autocast, train

HEAD_FILE = "head.safetensors"
TRIAL_FILE = "trial.json"
CARD_FILE = "README.md"
PEFT_DIR = "peft"
MANIFEST_FILE = "petl_export.json"  # the names export wrote in the folder: what a later --force may replace
MANIFEST_FORMAT = "petl-search-export"
# every name export may write: a user's file with one of these names is refused up front, before training
# (the move into place checks the names actually written, so a name missing here is still never overwritten)
EXPORT_NAMES = frozenset({CONFIG_FILE, WEIGHTS_FILE, HEAD_FILE, TRIAL_FILE, CARD_FILE, PEFT_DIR, MANIFEST_FILE})


def peft_lora_config(config: PETLConfig, model: Any) -> tuple[dict[str, Any] | None, str]:
    """PEFT LoraConfig arguments when `config` (on `model`) is plain LoRA on separate projections, else why not."""
    if config.is_empty:
        return None, ("the configuration has no Δh (the frozen backbone): there is nothing for PEFT to hold; "
                      "the exported folder holds only the task head")
    heads = config.attn_heads
    if heads is not None and heads.form == "prefix" and all(getattr(config, s) is None for s in ("attn_out", "attn_qkv", "ffn")):
        return None, ("PEFT's prefix tuning shifts position ids by the prefix length, so a PEFT folder would not "
                      "give this model's outputs (load it with petl_search.load)")
    spec = config.attn_qkv
    if spec is None or any(getattr(config, site) is not None for site in ("attn_heads", "attn_out", "ffn")):
        return None, "PEFT's LoRA modifies projections: the configuration has Δh at other sites"
    if (spec.form, spec.insertion, spec.heads, spec.input_norm, spec.layer_sizes) != ("lora", "parallel", 1, False, ()):
        return None, "PEFT's LoRA is a parallel, single-head low-rank Δ without input norm or per-layer sizes"
    if spec.composition not in ("add", "scale"):
        return None, f"PEFT's LoRA has a fixed scale, not composition {spec.composition!r}"
    names = {id(m): n for n, m in model.named_modules()}
    wired = set()
    for wiring in model.petl._wirings:
        if wiring.start is not None:
            return None, "the model fuses q, k and v in one module (GPT-2): PEFT's LoRA would span all three"
        wired.add(names[id(wiring.exit)])
    scale = spec.scale if spec.composition == "scale" else 1.0
    args = {"r": spec.size, "lora_alpha": scale * spec.size, "target_modules": peft_targets(model, wired),
            "lora_dropout": 0.0, "bias": "none"}
    return args, ""


def peft_targets(model: Any, wired: set[str]) -> list[str]:
    """PEFT's `target_modules` for LoRA on exactly the modules named `wired`. PEFT takes a module whose name
    ends in a target: the short names (`q_proj`) when they pick exactly these modules, else the full names.
    Never `layers_to_transform`: it counts blocks within each stack of an encoder-decoder, where
    `DeltaSpec.layers` counts encoder blocks first, then decoder blocks, so a layer set would land on the
    wrong blocks (or none)."""
    short = {name.rsplit(".", 1)[-1] for name in wired}
    picked = {name for name, _ in model.named_modules()
              if name.rsplit(".", 1)[-1] in short and not name.startswith(PETL_PREFIX + ".")}
    return sorted(short) if picked == wired else sorted(wired)


@dataclass(frozen=True)
class Exported:
    folder: Path
    record: TrialRecord
    metric: float  # the exported model's dev metric
    reproduced: bool | None  # equal to the trial's metric (None: trained differently on purpose)
    peft: str  # "written", or why not
    learning_rate: float  # what it was re-trained at: the trial's rate


def export_trial(spec: StudySpec, record: TrialRecord, out: str | Path, *, force: bool = False,
                 steps: int | None = None, full_train: bool = False,
                 progress: Callable[[str], None] = print) -> Exported:
    """Re-train `record`'s point as the study trained it (or longer), check it, and write the folder."""
    out = Path(out)
    check_out_folder(out, force=force)  # before training: a refusal costs nothing
    spec.model_config()  # an unknown model fails now, naming the study file, not after the data is loaded
    task = get_task(spec.task)
    train_config = spec.train_config(record.seed if record.seed is not None else spec.seed,
                                     learning_rate=record.learning_rate)  # None: stored before trials kept it
    if full_train:
        n_train = len(load_cached_task(spec.task, spec.data_source)["train"])
        steps = max(steps or 0, math.ceil(n_train / train_config.batch_size), train_config.max_steps)
    if steps is not None:
        train_config = replace(train_config, max_steps=steps)
    progress(f"training trial {record.number} ({record.label}) for {train_config.max_steps} steps at learning rate "
             f"{lr_text(train_config.learning_rate)}")
    result = train(record.config, task, model=spec.model, data_dir=spec.data_source, train_config=train_config,
                   keep_model=True)
    if result.status != "completed":
        raise PETLError(f"re-training trial {record.number} failed: {result.reason}")
    metric = result.metrics[spec.main_metric]  # the score the study selected on, on the set it selected on
    reproduced = metric == record.metric if steps is None else None
    if reproduced is False:
        progress(f"warning: the re-trained model scores {metric:.6f}, the trial scored {record.metric:.6f} "
                 f"(another machine, device or library version than the study's)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        peft_status = write_folder(staging, result, spec, record, reproduced, final=out)
        write_manifest(staging)
        # mkdtemp's folder is private (0700) and safetensors writes its files 0600: the user's umask decides
        for path in (staging, *staging.rglob("*")):
            path.chmod(umask_permissions(0o777 if path.is_dir() else 0o666))
    except BaseException:
        shutil.rmtree(staging)  # nothing but this export's files are in it yet
        raise
    move_into_place(staging, out)
    return Exported(out, record, metric, reproduced, peft_status, train_config.learning_rate)


def check_out_folder(out: Path, *, force: bool) -> None:
    """Refuse, before any training, an `--out` that export may not write: a file; a non-empty folder without
    `force`; with `force`, a folder export did not write, or one where a file of the user's has a name export
    writes."""
    if out.exists() and not out.is_dir():
        raise PETLError(f"{out} is a file, not a folder; choose a new or empty folder for --out")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise PETLError(f"{out} exists and is not empty; pass --force to replace the export written there (files "
                        f"export did not write are kept)")
    clash = sorted(set(users_entries(out)) & EXPORT_NAMES)
    if clash:
        raise clash_error(out, clash)


def users_entries(out: Path) -> list[str]:
    """The names in folder `out` that no export wrote, sorted: everything but what its manifest lists. A
    non-empty folder without a manifest is refused: export wrote none of it, so none of it is export's to replace."""
    present = sorted(p.name for p in out.iterdir())
    if MANIFEST_FILE not in present:
        if present:
            raise PETLError(f"{out} holds files export did not write ({names_text(present)}); choose an empty or "
                            f"new folder")
        return []
    written = read_manifest(out / MANIFEST_FILE)
    return [name for name in present if name not in written and name != MANIFEST_FILE]


def names_text(names: list[str], shown: int = 5) -> str:
    """`a, b, c`, or the first `shown` and how many more: an error stays one line for a full folder."""
    more = f", and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def clash_error(out: Path, clash: list[str]) -> PETLError:
    which = "it" if len(clash) == 1 else "them"
    return PETLError(f"{out} holds {names_text(clash)}, which export did not write but may write now; move {which} "
                     f"away or choose an empty or new folder")


def read_manifest(path: Path) -> set[str]:
    """The names the export that wrote manifest `path` wrote; anything else at that path is refused (a file of
    the same name that export did not write must not decide what gets replaced)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        why = f"{type(exc).__name__}: {exc}"
    else:
        document = data if isinstance(data, dict) else {}
        written = document.get("written")
        if document.get("format") == MANIFEST_FORMAT and isinstance(written, list) and \
                all(isinstance(name, str) for name in written):
            return set(written)
        why = f"expected an object with format {MANIFEST_FORMAT!r} and a list of the names written"
    raise PETLError(f"{path} is not a petl-search export manifest ({why}); choose an empty or new folder")


def write_manifest(folder: Path) -> None:
    """Name, in `folder`, everything export wrote there (nothing else is there yet): a later `--force`
    replaces exactly these and keeps whatever the user adds beside them."""
    written = sorted([*(p.name for p in folder.iterdir()), MANIFEST_FILE])
    document = {"format": MANIFEST_FORMAT, "petl_search": __version__, "written": written}
    (folder / MANIFEST_FILE).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def move_into_place(staging: Path, out: Path) -> None:
    """Make the finished folder `staging` the folder `out`, with the user's entries of `out` (those no export
    wrote) moved into it first. `out` holds the earlier export or the new one, each whole, never a mix (and,
    between two renames, nothing); the earlier export is deleted only once the new one is in place. On a failure the user's entries go back to
    `out`, the earlier export stays, and `staging` is removed (it then holds only the new export's files)."""
    kept = users_entries(out) if out.is_dir() else []
    clash = sorted(set(kept) & {p.name for p in staging.iterdir()})  # the folder may have changed while training
    if clash:
        shutil.rmtree(staging)
        raise clash_error(out, clash)
    moved: list[str] = []
    old = None
    try:
        for name in kept:  # a rename: staging sits beside `out`, on the same file system
            (out / name).rename(staging / name)
            moved.append(name)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            out.rename(old / out.name)
        staging.rename(out)
    except BaseException:
        if old is not None and (old / out.name).exists():
            (old / out.name).rename(out)
        for name in moved:
            (staging / name).rename(out / name)
        shutil.rmtree(staging)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old)  # the earlier export (or nothing, when it was put back)


def write_folder(folder: Path, result: Any, spec: StudySpec, record: TrialRecord, reproduced: bool | None, *,
                 final: Path | None = None) -> str:
    """Write the export into `folder`; `final` is where it will be moved (the card's snippets load from there)."""
    model = result.trained_model
    learning_rate = result.train_config["learning_rate"]  # what it trained at: the trial's rate
    save_petl(model, folder, overwrite=True, metadata={"study": spec.name, "trial": record.number,
                                                        "task": spec.task, "base_model": spec.model,
                                                        "learning_rate": learning_rate})
    heads = head_modules(model) if get_task(spec.task).has_head else []  # a language model's own head is frozen
    head_state = {name: p.detach().contiguous().cpu() for name, p in model.named_parameters()
                  if any(name == h or name.startswith(h + ".") for h in heads)}
    if head_state:
        save_file(head_state, str(folder / HEAD_FILE), metadata={"format": "pt"})
    document = {"study": spec.name, "trial": record.number, "kind": record.kind, "label": record.label,
                "base_model": spec.model, "task": spec.task, "main_metric": spec.main_metric,
                "trial_metric": record.metric, "exported_metric": result.metrics[spec.main_metric],
                "evaluated_on": result.evaluated_on, "dev_metrics": result.dev_metrics,
                "reproduced": reproduced, "metrics": result.metrics, "params": result.params,
                "learning_rate": learning_rate, "data_dir": spec.data_source,
                "train_config": result.train_config, "petl_config": record.config}
    (folder / TRIAL_FILE).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    peft_status = write_peft(folder / PEFT_DIR, model, PETLConfig.from_dict(record.config), heads)
    (folder / CARD_FILE).write_text(card(document, peft_status, (final or folder).resolve()))
    return peft_status


def write_peft(folder: Path, model: Any, config: PETLConfig, heads: list[str]) -> str:
    """A PEFT LoRA folder with the same weights (and the trained head as modules_to_save), if expressible."""
    args, why = peft_lora_config(config, model)
    if args is None:
        return f"not written: {why}"
    try:
        import peft
    except ImportError:
        return "not written: install peft (`pip install peft`) to export a PEFT folder"
    wirings = {id(w.exit): w for w in model.petl._wirings}
    names = {id(m): n for n, m in model.named_modules()}
    base = remove_petl(copy.deepcopy(model))  # trained head, frozen backbone, no Δh
    wrapped = peft.get_peft_model(base, peft.LoraConfig(**args, modules_to_save=heads or None))
    with torch.no_grad():
        for key, wiring in wirings.items():
            layer = wrapped.base_model.model.get_submodule(names[key])
            layer.lora_A["default"].weight.copy_(wiring.delta.bottleneck.down_weight[0])
            layer.lora_B["default"].weight.copy_(wiring.delta.bottleneck.up_weight[0])
    wrapped.save_pretrained(str(folder))
    return "written"


def load(model: Any, directory: str | Path, *, merge: bool = False) -> Any:
    """Put an exported configuration (Δh and, if saved, the task head) on a fresh base model.

    merge=True then folds Δh into the base weights (no extra cost at inference); it refuses, naming
    the parts, when a Δh is not linear (bottleneck activations, prefixes, gates).
    """
    directory = Path(directory)
    load_petl(model, directory)
    head_path = directory / HEAD_FILE
    if head_path.is_file():
        wrong = copy_checked(dict(model.named_parameters()), load_file(str(head_path)))
        if wrong:
            raise PETLError(f"{head_path} does not fit this model's head ({wrong}): build the model with "
                            f"the task's head (e.g. num_labels) as the card says")
    if merge:
        merge_petl(model)
    return model


def evaluate_export(model: Any, directory: str | Path, *, data_dir: str | None = None,
                    limit: int | None = None) -> dict[str, float]:
    """The task's scores of `model`, with the export in `directory` loaded on it (`load`), on the task's
    official dev set (its first `limit` examples when given) read from `data_dir` (as `load_task` reads it:
    None is the default GLUE folder), computed as the trainer computed the export's dev scores: tokenised with
    the trial's settings, by the trainer's own evaluation, on the device the model is on."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise PETLError(f"limit must be a positive integer or None, but got {limit!r}")
    from transformers import AutoTokenizer  # transformers stays unimported until a model is evaluated

    directory = Path(directory)
    trial = read_trial(directory)
    task = get_task(trial["task"])
    cfg = TrainConfig.from_dict(trial["train_config"])  # max_length and eval batch size: the trial's
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, trial["base_model"],
                                field=f"{directory / TRIAL_FILE}'s base_model")
    prepare_tokenizer(model, tokenizer)
    dev = encode(load_task(task.name, data_dir, splits=("validation",))["validation"], tokenizer, task, cfg, None)
    indices = list(range(len(dev) if limit is None else min(limit, len(dev))))
    device = next(model.parameters()).device
    return evaluate(model, tokenizer, dev, indices, task, cfg, device, bf16_autocast(device, cfg))


def read_trial(directory: Path) -> dict[str, Any]:
    path = directory / TRIAL_FILE
    if not path.is_file():
        raise PETLError(f"{directory} has no {TRIAL_FILE}: give the folder petl-search export wrote (its task and "
                        f"settings are read from there)")
    return json.loads(path.read_text())


def data_dir_comment(data_dir: str | None) -> str:
    """What the card's `data_dir` line says about the value export writes in it (the study's data source)."""
    if data_dir is None:
        return (f"the GLUE folder: None looks in ${GLUE_DIR_ENV}, then ../shared/data/glue beside the checkout, "
                f"then the SST-2 files that ship with the package")
    if data_dir == HUB:
        return "read from the Hugging Face Hub (needs network); or a folder with the task's data"
    return "where the study read the task (a copy of it elsewhere works too)"


def head_row(params: dict[str, Any], has_head: bool) -> str:
    """The card's table row on the task head: its size, or that the language model's own head stayed frozen."""
    if not has_head:
        return "| task head | none: the language model answers with its own LM head, frozen (not in the budget) |"
    return (f"| task head parameters (trained with Δh, in `{HEAD_FILE}`; not in the budget) | {params['head']:,} "
            f"({percent(params['head'] / params['backbone'])} of the backbone) |")


def card(doc: dict[str, Any], peft_status: str, folder: Path) -> str:
    """The folder's README: what it holds, how well it scores, and snippets that run as written (each
    defines what it uses, and loads from `folder`, where the export was written)."""
    params = doc["params"]
    main = doc["main_metric"]
    check = {True: f"equal to the trial's {doc['trial_metric']:.4f}: the trial's model, reproduced",
             False: f"the trial scored {doc['trial_metric']:.4f}: not reproduced exactly on this machine",
             None: "trained longer than the trial"}[doc["reproduced"]]
    dev = (doc.get("dev_metrics") or {}).get(main)
    dev_row = f"\n| {main} (official dev set) | {dev:.4f} |" if dev is not None else ""
    task = get_task(doc["task"])
    head = {"seq2seq": "AutoModelForSeq2SeqLM", "causal_lm": "AutoModelForCausalLM"}.get(
        task.kind, "AutoModelForSequenceClassification")
    labels = f", num_labels={task.num_labels}" if task.has_head else ""
    quiet = "  # the task head is reported missing: it is loaded from this folder next" if task.has_head else ""
    base_model = f"""from transformers import {head}
import petl_search
from petl_search.training.models import load_weights

folder = {str(folder)!r}  # this folder (where petl-search export wrote it)
# the base model as petl-search loads it: a packaged name offline (a GGUF file dequantised), a folder, a Hub id
with petl_search.quiet_loading():{quiet}
    model = load_weights({head}.from_pretrained, {doc['base_model']!r}{labels})"""
    expected = dev if dev is not None else doc["exported_metric"] if doc.get("evaluated_on", "dev") == "dev" else None
    scored = f" (the export scored {expected:.4f} on dev)" if expected is not None else ""
    data_dir = doc.get("data_dir")
    evaluation = f"""{base_model}
petl_search.load(model, folder)
from petl_search.export import evaluate_export

data_dir = {data_dir!r}  # {data_dir_comment(data_dir)}
scores = evaluate_export(model, folder, data_dir=data_dir)  # limit=N: the first N dev examples only, for a quick look
print(f"{main} {{scores[{main!r}]:.4f}}{scored}")"""
    peft_text = (f"`peft/` holds the same LoRA for PEFT:\n\n```python\nfrom peft import PeftModel\n{base_model}\n"
                 f"model = PeftModel.from_pretrained(model, f\"{{folder}}/peft\")\n```\n"
                 if peft_status == "written" else f"PEFT folder: {peft_status}.\n")
    return f"""# {doc['label']}

Exported from study `{doc['study']}`, trial {doc['trial']} ({doc['kind']}), by petl-search.

| | |
|---|---|
| base model | `{doc['base_model']}` |
| task | `{doc['task']}` |
| {main} ({doc.get('evaluated_on', 'dev')}) | {doc['exported_metric']:.4f} ({check}) |{dev_row}
| Δh stored parameters | {params['delta_stored']:,} ({percent(params['delta_stored_fraction'])} of the backbone's {params['backbone']:,}) |
{head_row(params, task.has_head)}
| trained for | {doc['train_config']['max_steps']} steps of batch {doc['train_config']['batch_size']} at learning rate {lr_text(doc['learning_rate'])}, seed {doc['train_config']['seed']} |

Design point (`petl_config.json`): `{json.dumps(doc['petl_config'], sort_keys=True)}`

## Load it

```python
{base_model}
petl_search.load(model, folder)  # Δh{" + the trained task head" if task.has_head else ""}
# petl_search.load(model, folder, merge=True)  # also fold linear Δh into the weights
```

## Check its score

`evaluate_export` scores the loaded model on the task's official dev set as the trainer scored the export there
(tokenised with the trial's settings), on the device the model is on (`model.to("cuda")` first for a GPU).

```python
{evaluation}
```

{peft_text}"""
