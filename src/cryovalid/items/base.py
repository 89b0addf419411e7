"""Running an item safely: the wrapper that turns exceptions and non-finite numbers into
"does not apply" / "could not be measured", and the helpers items use to start a result.

An item is a module with constants ``ID``, ``TITLE``, ``SECTION``, ``EXPLANATION``, ``CRITERIA``
and one function ``run(ctx) -> ItemResult``. ``run`` computes; it never draws, never builds HTML
and never opens a file. The result model itself is :mod:`cryovalid.results` (re-exported here
for the items).
"""
from __future__ import annotations

import os
import time
import traceback

import numpy as np

from cryovalid.errors import CannotMeasure, InputError, NotApplicable
from cryovalid.results import (FAILED, NOT_APPLICABLE, NOT_RUN, OK, STATUS_TEXT,  # noqa: F401
                               WARNINGS, Curves, Fact, Figure, ItemResult, Table, Text, Volume)


# What an item may require (its REQUIRES), how to tell that it is there, and what the report says
# when it is not: one place instead of a check in every item.
REQUIREMENTS = {
    "resolution": (lambda ctx: ctx.resolution is not None,
                   "the resolution was not reported (give it with --resolution)"),
    "half_maps": (lambda ctx: ctx.half_maps is not None,
                  "no half maps were given (give them with --half-maps H1 H2)"),
    "model": (lambda ctx: ctx.model is not None,
              "no atomic model was given (give one with --model FILE)"),
    "classes": (lambda ctx: ctx.classes is not None,
                "no 2D class averages were given (give them with --classes STACK.mrcs)"),
    "particles": (lambda ctx: ctx.particles is not None,
                  "no particles were given (give them with --particles FILE.star)"),
    # the particles carry an angular assignment (rlnAngleRot, rlnAngleTilt, rlnAnglePsi)
    "angles": (lambda ctx: ctx.particles is not None and not ctx.particles.particles.missing(
        "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"),
        "the particles carry no angular assignment (rlnAngleRot, rlnAngleTilt, rlnAnglePsi in "
        "the STAR file)"),
    "angles_b": (lambda ctx: ctx.angles_b is not None,
                 "no second angular assignment was given (give it with --angles-b FILE.star)"),
    "crosslinks": (lambda ctx: ctx.crosslinks is not None,
                   "no cross-links were given (give them with --crosslinks FILE)"),
    "saxs": (lambda ctx: ctx.saxs is not None,
             "no SAXS curve was given (give it with --saxs CURVE.dat)"),
    "tilt_pairs": (lambda ctx: ctx.tilt_pairs is not None,
                   "no tilt pairs were given (give them with --tilt-pairs UNTILTED TILTED "
                   "--tilt-angle DEG)"),
    "micrographs": (lambda ctx: ctx.micrographs is not None,
                    "no micrographs were given (give them with --micrographs GLOB)"),
    # the particles carry their CTF (rlnDefocusU, and the acquisition: kV, Cs, Q0)
    "ctf": (lambda ctx: ctx.particles is not None and ctx.particles.ctf_parameters is not None,
            "the particles carry no CTF (rlnDefocusU and the acquisition: rlnVoltage, "
            "rlnSphericalAberration, rlnAmplitudeContrast, or --kv, --cs, --q0)"),
    "workflow": (lambda ctx: ctx.workflow is not None,
                 "no workflow was given (give it with --workflow FILE)"),
    # the fit gate (A.0) found a placement where the model fits the map (needs "resolution")
    "fitted_model": (lambda ctx: ctx.model.placement.fits,
                     "the model does not fit the map: CC_mask is below the fit gate's limit "
                     "where it was given and at every candidate placement (see A.0)"),
}


def missing_requirement(module, ctx) -> str:
    """Why ``module`` cannot run on ``ctx`` ('' when every input it REQUIRES is there)."""
    for name in getattr(module, "REQUIRES", ()):
        present, text = REQUIREMENTS[name]
        if not present(ctx):
            return text
    return ""


def new_result(module) -> ItemResult:
    """An empty result carrying the item module's identity, explanation and criteria."""
    return ItemResult(id=module.ID, title=module.TITLE, section=module.SECTION,
                      criteria=module.CRITERIA, explanation=module.EXPLANATION)


def not_run_result(module, reason: str) -> ItemResult:
    """The result of an item whose level was not run, e.g. ``reason = "needs half maps"``."""
    res = new_result(module)
    res.status, res.reason = NOT_RUN, reason
    return res


def run_item(module, ctx) -> ItemResult:
    """Run ``module.run(ctx)``; a NotApplicable becomes 'not_applicable', any other exception
    'failed' with its reason, so that one broken item never stops the report."""
    t0 = time.perf_counter()
    overflows = []  # numpy's floating-point overflows during the item (this thread)
    try:
        missing = missing_requirement(module, ctx)
        if missing:
            raise NotApplicable(missing)
        with np.errstate(over="call", call=lambda kind, flag: overflows.append(kind)):
            res = module.run(ctx)
    except NotApplicable as exc:
        res = new_result(module)
        res.status, res.reason = NOT_APPLICABLE, str(exc)
    except CannotMeasure as exc:
        res = new_result(module)
        res.status, res.reason = FAILED, str(exc)
    except MemoryError:
        res = new_result(module)
        res.status, res.reason = FAILED, "ran out of memory"
    except Exception as exc:  # noqa: BLE001 - a failing item must not stop the report
        res = new_result(module)
        res.status = FAILED
        res.reason = exception_reason(exc)
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else ""
        res.notes.append(f"Technical detail (for the developers): {type(exc).__name__}: "
                         f"{_first_line(exc)}{where}.")
        res.data["traceback"] = traceback.format_exc()
    else:
        if res.status in (OK, WARNINGS):  # the verdict follows the warnings, whatever the item set
            res.finish()
        fail_non_finite(res)
        if overflows and res.status in (OK, WARNINGS):
            no_verdict(res, OVERFLOW_REASON)
    res.seconds = round(time.perf_counter() - t0, 3)
    return res


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def exception_reason(exc) -> str:
    """A sentence in words for an item stopped by an exception (the user never sees a raw
    ``ValueError: ...``; the type and place go to a technical note)."""
    msg = _first_line(exc).rstrip(".")
    if isinstance(exc, InputError):
        return f"{msg}."
    if isinstance(exc, (ZeroDivisionError, OverflowError, FloatingPointError)):
        return ("The computation divided by zero or overflowed: the map's values, voxel size "
                "or the reported resolution lie outside the range this item can handle.")
    if isinstance(exc, OSError):
        what = exc.strerror or msg or "an input/output error"
        return f"A file this item needs could not be read or written ({what})."
    if isinstance(exc, (ValueError, RuntimeError, ArithmeticError)) and msg:
        return f"The computation could not be carried out on this map: {msg}."
    return ("An internal error stopped this item (a bug in cryovalid; the technical detail is "
            "in the notes).")


def _non_finite(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return not np.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple, np.ndarray)):
        return any(_non_finite(v) for v in value)
    return False


def fail_non_finite(res) -> ItemResult:
    """An item that ran but whose metrics are not finite numbers (NaN, ±inf: the map's values
    overflowed or underflowed the computation) could not be measured: it gives no verdict, no
    warning, no summary sentence and no resolution estimate; the non-finite metrics become
    None (valid JSON) and the reason names them."""
    if res.status not in (OK, WARNINGS):
        return res
    bad = [k for k, v in res.metrics.items() if _non_finite(v)]
    bad += [e.get("method", "?") for e in res.resolution_estimates
            if _non_finite(e.get("resolution_A"))]
    if not bad:
        return res
    for k in bad:
        if k in res.metrics:
            res.metrics[k] = None
    return no_verdict(res, f"The measured value of {', '.join(bad)} is not a finite number (NaN "
                           f"or infinite): the map's values are outside the range the "
                           f"computation can handle (overflow or underflow), so no verdict is "
                           f"given.")


# An overflow inside an item (a map scaled by 1e30: its squares exceed float32) makes every
# number it gives suspect, even a finite one (0.c once counted 0 outliers around a NaN sigma).
# No item overflows on real or simulated maps of ordinary scale (checked on EMD-3488 and the
# maps of tests/test_invariance.py).
OVERFLOW_REASON = ("The computation overflowed: the map's values are too large for the "
                   "arithmetic (their squares exceed the float32 range), so the numbers would be "
                   "wrong and no verdict is given; rescale the map.")


def no_verdict(res, reason: str) -> ItemResult:
    """Make an item that ran 'failed' (could not be measured) with ``reason``: no warning, no
    summary sentence, no resolution estimate, no non-finite fact, no table."""
    res.status, res.reason = FAILED, reason
    res.warnings, res.summary, res.resolution_estimates = [], "", []
    res.facts = [f for f in res.facts if not _non_finite(f.value)]
    res.tables = []
    return res
