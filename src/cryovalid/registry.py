"""The registry of validation items: found, not listed by hand.

Every module of :mod:`cryovalid.items` that declares an ``ID`` is an item; it also declares its
``LEVEL`` (a key of :data:`LEVEL_ORDER`) and what it ``REQUIRES`` (see
:data:`cryovalid.items.base.REQUIREMENTS`). Every module of :mod:`cryovalid.figures` may
declare ``DRAWS = {item ID: draw(result, ctx)}``. The run order is the level order, then the
item ID. Adding an item is adding its module (and, for its figures, a DRAWS entry).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

LEVEL_ORDER = ("0", "1", "2", "3", "4", "5", "A", "W", "O")


@dataclass(frozen=True)
class Step:
    module: object  # the item module
    draw: Optional[Callable] = None  # draw(result, ctx) -> figures.common.Drawing (never writes)


def _modules(package: str):
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        yield importlib.import_module(f"{package}.{info.name}")


@lru_cache(maxsize=None)
def items() -> tuple:
    """Every item module, in run order."""
    found = [m for m in _modules("cryovalid.items") if hasattr(m, "ID")]
    for m in found:
        if getattr(m, "LEVEL", None) not in LEVEL_ORDER:
            raise ValueError(f"item {m.__name__} declares no known LEVEL")
    ids = [m.ID for m in found]
    if len(set(ids)) != len(ids):
        raise ValueError(f"two items share an ID: {sorted(ids)}")
    return tuple(sorted(found, key=lambda m: (LEVEL_ORDER.index(m.LEVEL), m.ID)))


@lru_cache(maxsize=None)
def draws() -> dict:
    """Item ID -> its figure function, from every figures module's DRAWS."""
    out = {}
    for m in _modules("cryovalid.figures"):
        for item_id, fn in getattr(m, "DRAWS", {}).items():
            if item_id in out:
                raise ValueError(f"two figure functions for item {item_id}")
            out[item_id] = fn
    return out


def steps(level: str) -> list:
    """The steps of one level, in run order."""
    d = draws()
    return [Step(m, d.get(m.ID)) for m in items() if m.LEVEL == level]


def levels_with_items() -> set:
    return {m.LEVEL for m in items()}
