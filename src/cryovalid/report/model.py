"""The report as data: one dict that is written as report.json and rendered into HTML and PDF.

Everything the renderer shows is decided here (statuses, score, summary sentences); the
renderer only lays it out. The contract of report.json is documented in docs/report-json.md.
"""
from __future__ import annotations

import datetime
import os

import numpy as np

from cryovalid import __version__
from cryovalid.items.base import FAILED, NOT_APPLICABLE, OK, WARNINGS

OVERESTIMATE_FACTOR = 0.8
LEVEL_NAMES = {"0": "Level 0 (map)", "1": "Level 1 (half maps)"}


def status_label(res) -> str:
    """The status as the summary table shows it."""
    if res.status == OK:
        return "OK" if res.criteria else "OK (no automatic criteria)"
    if res.status == WARNINGS:
        n = len(res.warnings)
        return f"{n} warning" + ("" if n == 1 else "s")
    if res.status == NOT_APPLICABLE:
        return "Does not apply"
    return "Could not be measured"


def score(results):
    evaluable = [r for r in results if r.evaluable]
    passed = [r for r in evaluable if r.status == OK]
    return {"passed": len(passed), "evaluable": len(evaluable)}


def resolution_summary(estimates, reported):
    """The resolution-range sentence(s) of the summary, or [] if nothing was estimated."""
    values = [e["resolution_A"] for e in estimates
              if e.get("resolution_A") is not None and np.isfinite(e["resolution_A"])]
    if not values:
        out = []
    else:
        lo, hi, mean = min(values), max(values), float(np.mean(values))
        n = len(values)
        if n == 1:
            out = [f"The one resolution estimate made in this report ({estimates[0]['method']}) "
                   f"is {lo:.1f} Å."]
        else:
            out = [f"The {n} resolution estimates made in this report range from {lo:.1f} Å to "
                   f"{hi:.1f} Å, with a mean of {mean:.1f} Å."]
    if reported is None:
        out.append("The user did not report a resolution.")
    else:
        out.append(f"The resolution reported by the user is {reported:.1f} Å.")
        if values and reported < OVERESTIMATE_FACTOR * float(np.mean(values)):
            out.append(f"The reported resolution may be overestimated: it is better than "
                       f"{OVERESTIMATE_FACTOR:g} times the mean of the estimates.")
    return out


def build(ctx, sections, results, input_notes=()):
    """Assemble the report dict from the context and the item results."""
    m = ctx.map
    estimates = [dict(e, item=r.id) for r in results for e in r.resolution_estimates]
    sc = score(results)
    levels = ["0"] + (["1"] if ctx.half_maps is not None else [])
    sentences = [r.summary for r in results if r.summary and r.status in (OK, WARNINGS)]
    summary = {
        "sentences": sentences,
        "resolution": resolution_summary(estimates, ctx.resolution),
        "score": (f"The overall score (passing tests) of this report is {sc['passed']} out of "
                  f"{sc['evaluable']} evaluable items."),
        "no_resolution_warning": (
            "No resolution was given: the items that need it do not apply."
            if ctx.resolution is None else ""),
    }
    inputs = {
        "map": m.path,
        "map_name": os.path.basename(m.path),
        "sha256": m.sha256,
        "shape": [int(v) for v in m.shape[::-1]],  # x, y, z
        "voxel_size_A": m.voxel_size,
        "origin_A": [float(v) for v in m.origin],
        "threshold": float(ctx.threshold),
        "threshold_method": ctx.threshold_method,
        "resolution_A": ctx.resolution,
        "notes": list(m.notes) + list(input_notes),
    }
    if ctx.half_maps is not None:
        inputs["half_maps"] = [{"path": h.path, "name": os.path.basename(h.path),
                                "sha256": h.sha256} for h in ctx.half_maps]
    return {
        "cryovalid_version": __version__,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "inputs": inputs,
        "levels": levels,
        "level_names": [LEVEL_NAMES[lv] for lv in levels],
        "input_figures": [f.__dict__ for f in sections.get("input_data", [])],
        "half_map_figures": [f.__dict__ for f in sections.get("half_maps", [])],
        "items": [dict(r.to_dict(), status_label=status_label(r)) for r in results],
        "score": sc,
        "resolution_estimates": estimates,
        "summary": summary,
        "warnings_summary": [{"id": r.id, "title": r.title, "warnings": r.warnings}
                             for r in results if r.warnings],
        "timings_s": {k: round(float(v), 3) for k, v in ctx.timings.items()},
    }


__all__ = ["build", "score", "status_label", "resolution_summary", "FAILED"]
