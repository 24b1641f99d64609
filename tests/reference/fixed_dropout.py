"""One fixed dropout mask, for comparing training-mode outputs with a reference implementation.

Dropout draws a fresh mask at every call, so two implementations can only be compared in training mode
if both draw the same one. `fixed_dropout` replaces `torch.nn.functional.dropout` (which nn.Dropout and
BART's functional dropout both call) with a mask that depends only on the tensor's shape and the rate:
any two dropouts of one shape keep the same elements, in our model, in the reference, in both orders.
Imported by the tests and by make_adapterhub_reference.py (which runs in another environment).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def fixed_dropout(input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> torch.Tensor:
    if not training or p == 0.0:
        return input
    generator = torch.Generator().manual_seed(7919 * input.shape[-1] + input.numel() + int(1000 * p))
    keep = torch.rand(input.shape, generator=generator) >= p
    return input * keep.to(input.dtype) / (1.0 - p)


@contextlib.contextmanager
def fixed_dropout_mask() -> Iterator[None]:
    original = torch.nn.functional.dropout
    torch.nn.functional.dropout = fixed_dropout
    try:
        yield
    finally:
        torch.nn.functional.dropout = original
