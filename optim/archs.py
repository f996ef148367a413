"""Bundled architectures (built by name for ``--arch`` and the samples) and the small layers that
let every model take its dataset's raw features: scaling and reshaping live inside the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from optim.errors import ConfigError


class Standardize(nn.Module):
    """``(x - mean) / std`` with the statistics of the training split, stored as buffers."""

    def __init__(self, mean: torch.Tensor | Any, std: torch.Tensor | Any) -> None:
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32)
        std = torch.as_tensor(std, dtype=torch.float32)
        # A constant feature (std 0, e.g. a digit pixel that is always blank in training) would
        # divide by ~0 and blow up on test rows where it is not constant: leave it unscaled.
        std = torch.where(std < 1e-6, torch.ones_like(std), std)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch types a module attribute (buffer, submodule) as Tensor | Module.
        return (x - self.mean) / self.std  # type: ignore[operator]


class Reshape(nn.Module):
    """Reshape each sample (batch dimension kept), e.g. 64 digit pixels to 1×8×8."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape((x.shape[0],) + self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class ToRGB(nn.Module):
    """Upscale a 1-channel image and repeat it to 3 channels, for torchvision networks."""

    def __init__(self, size: int, scale: float = 1.0) -> None:
        super().__init__()
        self.size = int(size)
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x * self.scale, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x.expand(-1, 3, -1, -1)


def mlp(n_in: int, hidden: tuple[int, ...], n_out: int, mean: Any = None, std: Any = None) -> nn.Sequential:
    """An MLP (ReLU between layers), with a Standardize first layer when statistics are given."""
    layers: list[nn.Module] = []
    if mean is not None:
        layers.append(Standardize(mean, std))
    else:
        layers.append(Standardize(torch.zeros(n_in), torch.ones(n_in)))
    prev = n_in
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        prev = h
    layers.append(nn.Linear(prev, n_out))
    return nn.Sequential(*layers)


def digits_cnn(n_out: int = 10, width: int = 32) -> nn.Sequential:
    """A small conv net with batch norm for 8×8 digit images given as 64 raw pixel values (0–16)."""
    w = width
    return nn.Sequential(
        Reshape(1, 8, 8),
        Standardize(torch.tensor(4.9), torch.tensor(6.0)),
        nn.Conv2d(1, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),
        nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * w * 4, 64), nn.ReLU(),
        nn.Linear(64, n_out),
    )


def torchvision_on_digits(name: str, n_out: int = 10, size: int = 32, **kwargs: Any) -> nn.Sequential:
    """A torchvision architecture (random init, no download) fed 64 raw digit pixels."""
    import torchvision

    try:
        net = torchvision.models.get_model(name, weights=None, num_classes=n_out, **kwargs)
    except ValueError as err:
        raise ConfigError(f"--arch torchvision:{name}: {err}") from None
    # torchvision's MobileNetV3 uses batch-norm momentum 0.01, tuned for ImageNet's many steps; the
    # few hundred steps a small dataset gives leave its running statistics far from the batch
    # statistics (eval accuracy stays at chance). PyTorch's default 0.1 tracks them.
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None and m.momentum < 0.1:
            m.momentum = 0.1
    return nn.Sequential(Reshape(1, 8, 8), ToRGB(size, scale=1 / 16.0), net)


def torchvision_arch(name: str, n_out: int, **kwargs: Any) -> nn.Module:
    """``torchvision:NAME`` for image datasets: the network with ``n_out`` classes, untrained."""
    import torchvision

    try:
        return torchvision.models.get_model(name, weights=None, num_classes=n_out, **kwargs)
    except ValueError:
        known = ", ".join(sorted(torchvision.models.list_models())[:12])
        raise ConfigError(f"--arch torchvision:{name}: no such torchvision model (e.g. {known}, ...).") from None


#: name -> builder(n_in, n_out). The samples' architectures; their weights live in sample_models/.
ARCHS: dict[str, Callable[[int, int], nn.Module]] = {
    "digits-mlp": lambda n_in, n_out: mlp(n_in, (300, 100), n_out),
    "digits-cnn": lambda n_in, n_out: digits_cnn(n_out),
    "digits-mobilenet": lambda n_in, n_out: torchvision_on_digits("mobilenet_v3_small", n_out),
    "breast-cancer-mlp": lambda n_in, n_out: mlp(n_in, (32, 16), n_out),
    "wine-mlp": lambda n_in, n_out: mlp(n_in, (32, 16), n_out),
    "diabetes-mlp": lambda n_in, n_out: mlp(n_in, (64, 32), n_out),
}


def architecture_names() -> list[str]:
    """Names ``--arch`` accepts: the bundled architectures, then torchvision's classifiers."""
    try:
        import torchvision

        tv = [f"torchvision:{n}" for n in sorted(torchvision.models.list_models(module=torchvision.models))]
    except Exception:  # noqa: BLE001 - torchvision missing or broken: bundled architectures still work
        tv = []
    return list(ARCHS) + tv


def build_arch(name: str, n_in: int, n_out: int) -> nn.Module:
    """The architecture called ``name`` (bundled, or ``torchvision:NAME``), untrained."""
    if name.startswith("torchvision:"):
        return torchvision_arch(name.split(":", 1)[1], n_out)
    try:
        return ARCHS[name](n_in, n_out)
    except KeyError:
        raise ConfigError(
            f"--arch {name!r}: unknown architecture; bundled: {', '.join(ARCHS)}, or torchvision:NAME."
        ) from None


# --- input transforms feature selection bakes into a candidate (rebuilt by optim.candidate) ---------
class SelectColumns(nn.Module):
    """Keep the input columns ``idx`` (in that order): ``x[:, idx]``."""

    def __init__(self, idx: Any) -> None:
        super().__init__()
        self.register_buffer("idx", torch.as_tensor(np.asarray(idx), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch types a module attribute (buffer, submodule) as Tensor | Module.
        return x.index_select(1, self.idx)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        # torch types a module attribute (buffer, submodule) as Tensor | Module.
        return f"idx={self.idx.tolist()}"  # type: ignore[operator]


class PCAProject(nn.Module):
    """Project raw features on principal components: ``(x - mean) @ components.T``.

    Standardisation is folded in: ``components`` are the PCA axes divided by the features'
    standard deviations and ``mean`` includes the scaler's mean, so raw columns go straight in.
    """

    def __init__(self, mean: Any, components: Any) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.register_buffer("components", torch.as_tensor(np.asarray(components), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch types a module attribute (buffer, submodule) as Tensor | Module.
        return torch.matmul(x - self.mean, self.components.t())  # type: ignore[operator]

    def extra_repr(self) -> str:
        # torch types a module attribute (buffer, submodule) as Tensor | Module.
        return f"in={self.components.shape[1]}, components={self.components.shape[0]}"  # type: ignore[index]
