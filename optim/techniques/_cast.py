"""A module wrapper for half-precision candidates (top level, so candidates holding it pickle)."""

from __future__ import annotations

import torch
import torch.nn as nn


class CastIO(nn.Module):
    """Runs ``inner`` in ``dtype``: the float32 input is cast down and the output back to float32,
    so a half model still takes and returns float32 like every candidate."""

    def __init__(self, inner: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = inner
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.to(self.dtype)).float()
