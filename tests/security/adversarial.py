"""Adversarial models shared by the security, page and browser tests."""

from __future__ import annotations

from pathlib import Path

import torch


class Forever(torch.nn.Module):
    """A forward pass that never returns."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = 0
        while i >= 0:  # never false: the model never answers
            i = (i + 1) % 1000
        return x


def forever_torchscript(path: Path) -> Path:
    """Save :class:`Forever` as TorchScript at ``path`` (what a user would upload)."""
    torch.jit.script(Forever()).save(str(path))
    return path


class Chatty(torch.nn.Module):
    """A pickled module (runs only with trust_pickle) that writes junk on every open descriptor,
    as code in a compromised child could, then answers normally."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import os

        for fd in range(3, 64):
            try:
                os.write(fd, b'{"result": "not a dict"}\nnot json\n')
            except OSError:
                pass
        return x[:, :10]
