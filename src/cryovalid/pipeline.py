"""The ordered list of validation items and the loop that runs them.

To add an item: write ``items/<name>.py`` (ID, TITLE, SECTION, EXPLANATION, CRITERIA, run(ctx)),
optionally a figure function ``draw(result, ctx)`` in ``figures/``, and add one ``Step`` below.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


@dataclass
class Step:
    module: object  # the item module
    draw: Optional[Callable] = None  # draw(result, ctx): appends Figure objects to result.figures
    level: str = "0"


def level0_steps():
    return []


def level1_steps():
    return []
