"""Turn a TorchScript model made of standard layers back into an editable ``nn.Module``.

A ScriptModule runs, but techniques that edit layers (pruning, clustering, low-rank, early exit,
feature selection) look for ``nn.Linear`` / ``nn.Conv2d`` and cannot change compiled code. When every
submodule of a TorchScript file is a standard ``torch.nn`` layer (or one of optim's own input layers)
it is rebuilt from its recorded type name, constants, parameters and buffers, and kept only if it
reproduces the TorchScript outputs exactly enough. Anything else stays a ScriptModule.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

#: Attributes that are not in a layer's ``__constants__`` but that its forward reads.
_EXTRA_ATTRS = ("shape", "size", "scale", "inplace", "dim", "negative_slope", "p", "approximate",
                "output_size", "start_dim", "end_dim", "training")


def editable_module(script: Any, example: np.ndarray, *, atol: float = 1e-5) -> Any | None:
    """An eager copy of ``script`` that gives the same outputs on ``example``, or None."""
    import torch

    try:
        module = _rebuild(script)
        module.eval()
        x = torch.from_numpy(np.asarray(example, dtype=np.float32))
        with torch.inference_mode():
            want = script(x)
            got = module(x)
        if not torch.allclose(got.float(), want.float(), atol=atol, rtol=1e-4):
            return None
        return module
    except Exception:  # any layer we cannot rebuild: keep the ScriptModule as it is
        return None


def _layer_class(name: str) -> Any:
    import torch.nn as nn

    from optim import archs

    cls = getattr(archs, name, None)
    if isinstance(cls, type) and issubclass(cls, nn.Module):
        return cls
    cls = getattr(nn, name, None)
    if isinstance(cls, type) and issubclass(cls, nn.Module) and cls.__module__.startswith("torch.nn.modules"):
        return cls
    raise TypeError(f"no editable class for TorchScript module type {name!r}")


def _rebuild(script: Any) -> Any:
    import torch.nn as nn

    name = script.original_name
    cls = _layer_class(name)
    children = OrderedDict((n, _rebuild(c)) for n, c in script.named_children())
    if cls is nn.Sequential:
        return nn.Sequential(children)
    if cls in (nn.ModuleList, nn.ModuleDict):
        raise TypeError("containers other than Sequential are not rebuilt")
    if children:
        raise TypeError(f"{name} has submodules; only leaf layers are rebuilt")
    try:
        # Layers whose arguments all have defaults (ReLU, Flatten, Dropout...) start from a real
        # instance, so attributes a traced file does not record keep their default values.
        module = cls()
    except TypeError:
        module = cls.__new__(cls)
        nn.Module.__init__(module)
    for attr in tuple(getattr(cls, "__constants__", ())) + _EXTRA_ATTRS:
        if attr == "training":
            continue
        try:
            value = getattr(script, attr)
        except (AttributeError, RuntimeError):
            continue
        if isinstance(value, list):
            value = tuple(value)
        object.__setattr__(module, attr, value)
    for pname, param in script.named_parameters(recurse=False):
        module.register_parameter(pname, nn.Parameter(param.detach().clone()))
    for bname, buf in script.named_buffers(recurse=False):
        module.register_buffer(bname, buf.detach().clone())
    if isinstance(module, nn.modules.conv._ConvNd):
        from torch.nn.modules.utils import _reverse_repeat_tuple

        pad = module.padding
        module._reversed_padding_repeated_twice = (
            [0, 0] * len(module.kernel_size) if isinstance(pad, str) else _reverse_repeat_tuple(pad, 2))
    if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)) and "bias" not in module._parameters:
        module.register_parameter("bias", None)  # built with bias=False
    if isinstance(module, nn.modules.batchnorm._NormBase):
        for opt in ("running_mean", "running_var", "num_batches_tracked"):
            if opt not in module._buffers:
                module.register_buffer(opt, None)
        for opt in ("weight", "bias"):
            if opt not in module._parameters:
                module.register_parameter(opt, None)
    return module
