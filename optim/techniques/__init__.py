"""Technique modules, one per family. Importing this package registers every one of them.

Adding a technique is one new module here: it is found and imported automatically.
"""

from __future__ import annotations

import importlib
import pkgutil

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_") and _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")
