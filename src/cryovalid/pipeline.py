"""The levels of a report and the loop that runs their items.

Items are found by :mod:`cryovalid.registry` (each declares its ID, LEVEL and REQUIRES; figure
functions are declared in the figures modules' DRAWS). ``LEVELS`` lists every level of the spec
with the input it needs; a level with items is available, and its items are run when its
input was given, else reported as ``not_run``.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from cryovalid import registry
from cryovalid.figures import level0 as fig0
from cryovalid.errors import InputError
from cryovalid.items.base import not_run_result, run_item
from cryovalid.results import FAILED, OK, STATUS_TEXT, Curves, Figure, Volume
from cryovalid.store import FolderStore


@dataclass
class Level:
    """One level of the report (spec, "Levels"): what it needs and how the user adds it."""
    id: str
    name: str  # as the front page names it
    needs: str  # the input it adds to the previous ones
    option: str = ""  # the command-line option that gives that input ('' = always given)
    given: Callable = lambda ctx: True  # whether the input the level needs was given

    @property
    def available(self) -> bool:
        """Whether this version has items of the level (registry)."""
        return self.id in registry.levels_with_items()

    def steps(self) -> list:
        return registry.steps(self.id)


LEVELS = [
    Level("0", "Level 0 (map)", "the map (with a threshold and the reported resolution)",
          "MAP [--threshold T] [--resolution R]"),
    Level("1", "Level 1 (half maps)", "two half maps", "--half-maps H1 H2",
          lambda ctx: ctx.half_maps is not None),
    Level("2", "Level 2 (2D classes)", "2D class averages", "--classes STACK.mrcs",
          lambda ctx: ctx.classes is not None),
    Level("3", "Level 3 (particles)", "the particles with their CTF",
          "--particles FILE.star (with --classes)",
          lambda ctx: ctx.particles is not None and ctx.classes is not None),
    Level("4", "Level 4 (angular assignment)", "the particles' angular assignment",
          "--particles FILE.star with angles",
          lambda ctx: ctx.particles is not None and not ctx.particles.particles.missing(
              "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")),
    Level("5", "Level 5 (micrographs)", "the micrographs and particle coordinates",
          "--micrographs GLOB (with --particles carrying coordinates)",
          lambda ctx: ctx.micrographs is not None),
    Level("A", "Level A (atomic model)", "an atomic model", "--model FILE",
          lambda ctx: ctx.model is not None),
    Level("W", "Level W (workflow)", "the image-processing workflow", "--workflow FILE",
          lambda ctx: ctx.workflow is not None),
    Level("O", "Level O (other techniques)", "data from other techniques (XL-MS, SAXS, tilt "
          "pairs)", "--crosslinks FILE | --saxs CURVE.dat | --tilt-pairs U T",
          lambda ctx: (ctx.crosslinks is not None or ctx.saxs is not None
                       or ctx.tilt_pairs is not None)),
]


def asked(lv, ctx) -> bool:
    """Whether the user asked for this level (``--levels``; every level when not said)."""
    return ctx.levels is None or lv.id in ctx.levels


def level_state(lv, ctx) -> str:
    """"graded", "not_given" (its input is missing), "not_asked" (left out with --levels) or
    "not_available" (no items in this version)."""
    if not lv.available:
        return "not_available"
    if not lv.given(ctx):
        return "not_given"
    return "graded" if asked(lv, ctx) else "not_asked"


def graded(level_id: str, ctx) -> bool:
    """Whether the level with this ID is graded in this report."""
    return any(level_state(lv, ctx) == "graded" for lv in LEVELS if lv.id == level_id)


def steps_for(ctx):
    """The steps of every available level whose input was given and which was asked for, in
    report order."""
    return [s for lv in LEVELS if level_state(lv, ctx) == "graded" for s in lv.steps()]


def not_run_results(ctx):
    """One ``not_run`` result per item of an available level whose input was not given (or
    which was left out with ``--levels``), so that the report lists what the user could have
    asked for (they count in no score)."""
    out = []
    for lv in LEVELS:
        state = level_state(lv, ctx)
        if state == "not_given":
            reason = f"needs {lv.needs} ({lv.option})"
        elif state == "not_asked":
            reason = f"level {lv.id} was not asked for (--levels {','.join(ctx.levels)})"
        else:
            continue
        out += [not_run_result(s.module, reason) for s in lv.steps()]
    return out


STATUS_WORDS = {k: (v if k == OK else v.lower()) for k, v in STATUS_TEXT.items()}


RESIDUE_KEYS = ("chain", "number", "icode", "name")  # the columns that name a residue


def residue_table(results) -> dict:
    """The per-residue columns of every item that ran (Level A), merged: the residue's chain,
    number, insertion code and name once, then each item's columns ({} without a model)."""
    table = {}
    for res in results:
        if res.status == FAILED:
            continue
        for k, v in res.residue_columns.items():
            if k in RESIDUE_KEYS and k in table:
                continue
            table[k] = list(v)
    if not table:
        return {}
    return {**{k: table[k] for k in RESIDUE_KEYS if k in table},
            **{k: v for k, v in table.items() if k not in RESIDUE_KEYS}}


def _store_drawing(store, drawing) -> list:
    """Write a figure function's artefacts (PNGs, scripts) and return its report entries."""
    for artefact in drawing.artefacts:
        store.write(artefact)
    return drawing.figures


# The input sections of the levels after 0 (Level A's model is drawn after the items): (key of
# the report's sections, levels that show it when graded, figures module, its draw(ctx),
# timing key, progress label)
INPUT_SECTIONS = (
    ("half_maps", ("1",), "halfmaps", "draw_half_maps", "half map figures", "Half map figures"),
    ("classes", ("2",), "level2", "draw_classes_section", "class figures", "2D class figures"),
    ("particles", ("3", "4"), "level3", "draw_particles_section", "particle figures",
     "Particle figures"),
    ("micrographs", ("5",), "micrographs", "draw_micrographs_section", "micrograph figures",
     "Micrograph figures"),
)


def run_analyses(ctx, progress=None, figures: bool = True, store=None, timings=None):
    """Run the shared preparation, the Input data figures and every applicable item.

    ``figures=False`` (only report.json asked for) draws no figure at all; the numbers are the
    same. ``progress(label, seconds, status)`` is called after each step (None: silent).
    ``store`` writes the artefacts the items and figures hand over (default: a
    :class:`~cryovalid.store.FolderStore` on the current folder); ``timings`` (a dict) receives
    the seconds of each step.
    Returns (sections, results): sections maps "input_data" (and "half_maps" with Level 1)
    to its list of figures; results holds every item of the available levels, those of a level
    whose input was not given as ``not_run``."""
    done = progress or (lambda label, seconds, status="": None)
    store = store if store is not None else FolderStore(".")
    timings = timings if timings is not None else {}
    t0 = time.perf_counter()
    m = ctx.map
    hard = m.hard_mask
    if not hard.any():
        raise InputError(f"{m.path}: the mask at threshold {m.threshold:g} is empty; lower the "
                         f"threshold")
    # the binary mask as 8-bit (MRC mode 0): a quarter of float32
    store.write(Volume("maps/mask_hard.mrc", hard.astype(np.int8), m.voxel_size, m.origin))
    store.write(Volume("maps/mask_soft.mrc", m.soft_mask, m.voxel_size, m.origin))
    timings["masks"] = time.perf_counter() - t0
    done("Masks (hard and soft)", timings["masks"])

    sections = {"input_data": []}
    if figures:
        t0 = time.perf_counter()
        sections["input_data"] = _store_drawing(store, fig0.draw_input_data(ctx))
        timings["input data figures"] = time.perf_counter() - t0
        done("Input data figures", timings["input data figures"])
    for key, levels, module, function, timing, label in INPUT_SECTIONS:
        if not any(graded(lv, ctx) for lv in levels):
            continue
        sections[key] = []
        if figures:
            draw = getattr(importlib.import_module(f"cryovalid.figures.{module}"), function)
            t0 = time.perf_counter()
            sections[key] = _store_drawing(store, draw(ctx))
            timings[timing] = time.perf_counter() - t0
            done(label, timings[timing])

    results = []
    for step in steps_for(ctx):
        res = run_item(step.module, ctx)
        t1 = time.perf_counter()
        if figures and step.draw is not None and res.status != FAILED:
            try:
                res.figures += _store_drawing(store, step.draw(res, ctx))
            except Exception as exc:  # noqa: BLE001 - a figure must not lose the numbers
                res.notes.append(f"A figure of this item could not be drawn ({exc}).")
        if res.status != FAILED:  # a failed item's numbers are not written out
            for artefact in res.artefacts:
                store.write(artefact)
        res.seconds = round(res.seconds + time.perf_counter() - t1, 3)
        res.data.clear()  # arrays are no longer needed once drawn and written
        res.artefacts.clear()
        timings[res.id] = res.seconds
        done(f"{res.id} {res.title}", res.seconds, STATUS_WORDS[res.status])
        results.append(res)
    # after the items: the views use the fit gate's placement, which A.0 computes and times
    if graded("A", ctx):
        sections["model"] = []
        if figures:
            t0 = time.perf_counter()
            try:
                from cryovalid.figures.model import draw_model_section

                sections["model"] = _store_drawing(store, draw_model_section(ctx))
            except Exception as exc:  # noqa: BLE001 - a figure must not stop the report
                sections["model"] = [Figure("", f"The model could not be drawn ({exc}).")]
            timings["model figures"] = time.perf_counter() - t0
            done("Atomic model figures", timings["model figures"])
    residues = residue_table(results)
    if residues:
        store.write(Curves("residues.csv", list(residues.items())))
    results += not_run_results(ctx)
    order = {m.ID: i for i, m in enumerate(registry.items())}  # report order: level, then ID
    results.sort(key=lambda r: order.get(r.id, len(order)))
    return sections, results
