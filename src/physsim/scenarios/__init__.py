"""Scene families, one module each, registered by name on import.

A new family is one new module in this package that defines a `Scenario`
subclass decorated with `@register`; nothing else needs to change.
"""

from __future__ import annotations

import importlib
import pkgutil

from physsim.scenarios.base import FamilyConfig, Scenario, get, names, register, resolve, unregister

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["FamilyConfig", "Scenario", "get", "names", "register", "resolve", "unregister"]
