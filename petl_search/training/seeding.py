"""One call that seeds every random number generator a trial uses (same seed, same machine: same trial)."""
from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
