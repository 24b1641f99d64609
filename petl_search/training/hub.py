"""Reading a dataset from the Hugging Face Hub, or one clear line saying why it cannot be read.

    load_hub_splits("nyu-mll/glue", "sst2", ["train", "validation"], task="sst2", instead="pass --data-dir DIR")

Without network, `datasets.load_dataset` retries the Hub for about half a minute and then raises
`ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (...)")`. So, before it:
- with HF_HUB_OFFLINE set, nothing is asked of the network: datasets reads its local cache, and a dataset
  that is not cached fails at once;
- otherwise one request with a short timeout and no retries asks the Hub about the dataset (`probe_hub`).
Either way the failure is a HubUnreachableError naming the dataset, the task, the cause and what to do
instead (the caller says what: a GLUE folder, a folder of JSON-lines files, ...). This module knows nothing
of tasks' columns, of files or of models.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from ..core.errors import PETLError

OFFLINE_ENV = "HF_HUB_OFFLINE"
PROBE_TIMEOUT_S = 10.0


class HubUnreachableError(PETLError):
    """The Hugging Face Hub could not be reached (no network, or HF_HUB_OFFLINE without a cached copy)."""


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set to a true value (read now, not when huggingface_hub was imported)."""
    return os.environ.get(OFFLINE_ENV, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def probe_hub(repo_id: str, *, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when the Hub answers a request about dataset `repo_id`, else why it could not be asked."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HfHubHTTPError

    try:
        HfApi().dataset_info(repo_id, timeout=timeout)
    except HfHubHTTPError:  # the Hub answered (401, 404, ...): it is reachable; load_dataset says the rest
        return None
    except Exception as exc:  # noqa: BLE001 -- the HTTP client's own transport errors (requests, httpx or
        # httpx2, depending on the huggingface_hub version): any failure but an answer means no answer
        return f"{type(exc).__name__}: {exc}"
    return None


def unreachable(repo_id: str, config: str | None, task: str, why: str, instead: str) -> HubUnreachableError:
    """The one-line error: which dataset, for which task, why, and what to do instead."""
    dataset = f"{repo_id}, config {config}" if config else repo_id
    return HubUnreachableError(f"could not reach the Hugging Face Hub for task {task!r} ({dataset}): {why}; "
                               f"instead, {instead}")


def load_hub_splits(repo_id: str, config: str | None, splits: Sequence[str], *, task: str,
                    instead: str) -> dict[str, Any]:
    """{split: Dataset} for the Hub `splits` of `repo_id`/`config`, or a HubUnreachableError at once."""
    from datasets import load_dataset

    offline = hub_offline()
    if not offline:
        why = probe_hub(repo_id)
        if why is not None:
            raise unreachable(repo_id, config, task, f"{why} (with {OFFLINE_ENV}=1 a copy in the datasets cache "
                                                     "is used, if there is one)", instead)
    out = {}
    for split in splits:
        try:
            out[split] = load_dataset(repo_id, config, split=split)
        except ConnectionError as exc:  # datasets' answer to "no network" (and to offline mode without a cache)
            why = f"{OFFLINE_ENV} is set and the datasets cache has no copy ({exc})" if offline else str(exc)
            raise unreachable(repo_id, config, task, why, instead) from None
    return out
