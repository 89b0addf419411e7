"""The report as data: one dict that is written as report.json and rendered into HTML and PDF.

Everything the renderer shows is decided here (statuses, score, summary sentences); the
renderer only lays it out. The contract of report.json is documented in docs/report-json.md.
"""
from __future__ import annotations

import datetime
import math
import os

import numpy as np

from cryovalid import __version__
from cryovalid.criteria import OVERESTIMATE_FACTOR
from cryovalid.results import FAILED, NOT_RUN, OK, STATUS_TEXT, WARNINGS

SCHEMA_VERSION = "1.0"  # of report.json, described by the JSON Schema at SCHEMA_PATH
SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "schema", "report.schema.json")
SIGNIFICANT_DIGITS = 6  # report.json keeps this many significant digits of a float64 value


def status_label(res) -> str:
    """The status as the summary table shows it."""
    if res.status == OK:
        return STATUS_TEXT[OK] if res.criteria else f"{STATUS_TEXT[OK]} (no automatic criteria)"
    if res.status == WARNINGS:
        n = len(res.warnings)
        return f"{n} warning" + ("" if n == 1 else "s")
    if res.status == NOT_RUN:
        return f"{STATUS_TEXT[NOT_RUN]}: {res.reason}"
    return STATUS_TEXT[res.status]


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


def tidy_number(x: float) -> float:
    """A float rounded to what it means: a value that is exactly a float32 (a voxel size or a
    map value read from the file) becomes its shortest float32 representation (1.0499999237 →
    1.05); any other keeps ``SIGNIFICANT_DIGITS`` significant digits. Non-finite values are
    returned unchanged (report.json writes them as null)."""
    if not math.isfinite(x):
        return x
    if x == 0.0:
        return 0.0  # -0.0 too
    f32 = np.float32(x)
    if math.isfinite(float(f32)) and float(f32) == x:
        return float(str(f32))
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def tidy(o):
    """``tidy_number`` applied to every float of a nested structure of dicts and lists (numpy
    scalars become Python numbers; booleans, integers and strings are kept)."""
    if isinstance(o, (bool, np.bool_)):
        return bool(o)
    if isinstance(o, (float, np.floating)):
        return tidy_number(float(o))
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, dict):
        return {k: tidy(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [tidy(v) for v in o]
    return o


def split_flags(metrics: dict):
    """(metrics, flags): metrics keeps the numbers (or null), flags the booleans."""
    numbers, flags = {}, {}
    for k, v in metrics.items():
        (flags if isinstance(v, (bool, np.bool_)) else numbers)[k] = v
    return numbers, flags


def _levels_context(ctx):
    """Every level of the spec: what it needs, how to add it, and its state in this report."""
    from cryovalid.pipeline import LEVELS, level_state

    out = []
    for lv in LEVELS:
        state = level_state(lv, ctx)
        out.append({"id": lv.id, "name": lv.name, "needs": lv.needs, "option": lv.option,
                    "state": state})
    return out


def _number(report):
    """Section and figure numbers, HTML anchors and the table of contents, in reading order.

    Adds ``number`` and ``anchor`` to each item and figure and returns the ``toc`` list of
    ``{number, title, anchor, depth}`` (depth 1 = section, 2 = subsection)."""
    toc = []

    def add(number, title, anchor, depth):
        toc.append({"number": number, "title": title, "anchor": anchor, "depth": depth})

    add("1", "Summarized overall quality", "sec-summary", 1)
    add("1.1", "Status of each item", "sec-status", 2)
    add("1.2", "Summary of the warnings", "sec-warnings", 2)
    add("2", "Context: the levels of a report", "sec-context", 1)
    add("3", "Input data", "sec-input", 1)
    sub = 0
    if report["inputs"].get("threshold_estimate"):
        sub += 1
        add(f"3.{sub}", "Automatic threshold", "sec-threshold", 2)
    if "half_maps" in report["inputs"]:
        sub += 1
        add(f"3.{sub}", "Half maps", "sec-half-maps", 2)
    if "classes" in report["inputs"]:
        sub += 1
        add(f"3.{sub}", "2D classes", "sec-classes", 2)
    if "particles" in report["inputs"]:
        sub += 1
        add(f"3.{sub}", "Particles", "sec-particles", 2)
    if "micrographs" in report["inputs"]:
        sub += 1
        add(f"3.{sub}", "Micrographs", "sec-micrographs", 2)
    if "model" in report["inputs"]:
        sub += 1
        add(f"3.{sub}", "Atomic model", "sec-model", 2)
    if any(k in report["inputs"] for k in (*OTHER_INPUTS, "tilt_pairs")):
        sub += 1
        add(f"3.{sub}", "Other inputs", "sec-other-inputs", 2)
    sec, sub, current = 3, 0, None
    for it in report["items"]:
        if it["section"] != current:
            current, sec, sub = it["section"], sec + 1, 0
            add(str(sec), current, f"sec-{sec}", 1)
        sub += 1
        it["number"] = f"{sec}.{sub}"
        it["anchor"] = "item-" + "".join(c for c in it["id"] if c.isalnum())
        add(it["number"], f"{it['id']} {it['title']}", it["anchor"], 2)
    add("A", "Appendix: computing times", "sec-timings", 1)

    n = 0
    figures = (report["input_figures"] + report["half_map_figures"]
               + report.get("class_figures", []) + report.get("particle_figures", [])
               + report.get("micrograph_figures", [])
               + report.get("model_figures", []) + [f for it in report["items"] for f in it["figures"]])
    for f in figures:
        if f.get("path"):
            n += 1
            f["number"], f["anchor"] = n, f"fig-{n}"
        else:  # a figure that could not be drawn is a note, not numbered
            f["number"], f["anchor"] = None, ""
    return toc


def residue_table(results) -> dict:
    from cryovalid.pipeline import residue_table as merged

    return merged(results)


OTHER_INPUTS = {"angles_b": "Second angular assignment", "crosslinks": "Cross-links (XL-MS)",
                "saxs": "SAXS curve", "workflow": "Image-processing workflow"}


def _micrographs_input(md) -> dict:
    """The micrographs (Level 5) for the Input data section: the pattern, each file (name,
    size, hash) and the particles' coordinates on them (data.MicrographsData)."""
    mg = md.micrographs
    c = md.coordinates
    return {"pattern": mg.pattern, "n_micrographs": mg.n, "pixel_size_A": mg.pixel_size,
            "files": [{"name": n, "path": p, "width_px": int(sh[1]), "height_px": int(sh[0]),
                       "sha256": h} for n, p, sh, h in zip(mg.names, mg.paths, mg.shapes,
                                                           mg.sha256)],
            "coordinates": {"available": c.available, "reason": c.reason,
                            "n_coordinates": int(len(c.mic)), "n_unmatched": c.n_unmatched,
                            "box_px": c.box_px if c.available else None,
                            "convention": c.convention},
            "notes": list(mg.notes)}


def build(ctx, sections, results, timings=None, entry=None, names=None):
    """Assemble the report dict from the context, the item results (``not_run`` ones
    included, listed where their level's section is) and the run's ``timings`` (step ->
    seconds)."""
    m = ctx.map
    shown = dict(names or {})

    def name(key, path):
        return str(shown.get(key) or os.path.basename(path))

    estimates = [dict(e, item=r.id) for r in results for e in r.resolution_estimates]
    sc = score(results)
    context_levels = _levels_context(ctx)
    levels = [lv["id"] for lv in context_levels if lv["state"] == "graded"]
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
        "map_name": name("map", m.path),
        "sha256": m.sha256,
        "shape": [int(v) for v in m.shape[::-1]],  # x, y, z
        "voxel_size_A": m.voxel_size,
        "origin_A": [float(v) for v in m.origin],
        "threshold": float(ctx.map.threshold),
        "threshold_method": ctx.map.threshold_method,
        "resolution_A": ctx.resolution,
        "notes": list(m.notes),
    }
    estimate = m.threshold_estimate
    if estimate:
        inputs["threshold_estimate"] = dict(estimate)
    if ctx.half_maps is not None:
        inputs["half_maps"] = [{"path": h.path, "name": name(f"half_map_{i}", h.path),
                                "sha256": h.sha256} for i, h in enumerate(ctx.half_maps, 1)]
    if ctx.classes is not None:
        st = ctx.classes.stack
        inputs["classes"] = {"path": st.path, "name": name("classes", st.path),
                             "sha256": st.sha256, "n_classes": int(st.data.shape[0]),
                             "box_px": int(st.data.shape[-1]), "pixel_size_A": st.pixel_size,
                             "symmetry": ctx.symmetry, "notes": list(st.notes)}
    if ctx.particles is not None:
        pt = ctx.particles.particles
        inputs["particles"] = {"path": pt.path, "name": name("particles", pt.path),
                               "sha256": pt.sha256, "n_particles": len(pt),
                               "n_given": int(pt.n_given or len(pt)), "box_px": pt.box,
                               "pixel_size_A": pt.pixel_size, "voltage_kv": pt.voltage_kv,
                               "cs_mm": pt.cs_mm, "q0": pt.q0, "notes": list(pt.notes)}
    if getattr(ctx, "micrographs", None) is not None:
        inputs["micrographs"] = _micrographs_input(ctx.micrographs)
    if ctx.tilt_pairs is not None:
        tp = ctx.tilt_pairs
        inputs["tilt_pairs"] = {
            "untilted": {"path": tp.path, "name": name("tilt_untilted", tp.path),
                         "sha256": tp.sha256},
            "tilted": {"path": tp.path_tilted, "name": name("tilt_tilted", tp.path_tilted),
                       "sha256": tp.sha256_tilted},
            "n_pairs": int(tp.n), "box_px": int(tp.box), "pixel_size_A": float(tp.pixel_size),
            "tilt_angle_deg": float(tp.tilt_angle), "notes": list(tp.notes)}
        if getattr(tp, "micrographs", None):  # cut from micrograph pairs (--tilt-micrographs)
            inputs["tilt_pairs"]["micrographs"] = dict(tp.micrographs)
    for key in OTHER_INPUTS:  # Level O and W inputs: the file and what its reader noted
        obj = getattr(ctx, key, None)
        if obj is not None:
            inputs[key] = {"label": OTHER_INPUTS[key], "path": obj.path,
                           "name": name(key, obj.path), "sha256": obj.sha256,
                           "notes": list(getattr(obj, "notes", []))}
    if entry:
        inputs["entry"] = dict(entry)
    if ctx.model is not None:
        md = ctx.model.model
        lo, hi = md.b_range
        inputs["model"] = {"path": md.path, "name": str(shown.get("model") or md.name),
                           "sha256": md.sha256,
                           "chains": md.chains, "residues": md.n_residues, "atoms": md.n_atoms,
                           "b_min_A2": lo, "b_max_A2": hi,
                           "fraction_inside": ctx.model.fraction_inside,
                           "notes": list(md.notes)}
    items = []
    for r in results:
        d = r.to_dict()
        d["metrics"], d["flags"] = split_flags(d["metrics"])
        d["status_label"] = status_label(r)
        items.append(d)
    report = {
        "schema_version": SCHEMA_VERSION,
        "cryovalid_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "inputs": inputs,
        "levels": levels,
        "level_names": [lv["name"] for lv in context_levels if lv["state"] == "graded"],
        "context": {"levels": context_levels},
        "input_figures": [dict(f.__dict__) for f in sections.get("input_data", [])],
        "half_map_figures": [dict(f.__dict__) for f in sections.get("half_maps", [])],
        "class_figures": [dict(f.__dict__) for f in sections.get("classes", [])],
        "particle_figures": [dict(f.__dict__) for f in sections.get("particles", [])],
        "micrograph_figures": [dict(f.__dict__) for f in sections.get("micrographs", [])],
        "model_figures": [dict(f.__dict__) for f in sections.get("model", [])],
        "residues": residue_table(results),
        "items": items,
        "score": sc,
        "resolution_estimates": estimates,
        "summary": summary,
        "warnings_summary": [{"id": r.id, "title": r.title, "warnings": r.warnings}
                             for r in results if r.warnings],
        "timings_s": {k: round(float(v), 3) for k, v in (timings or {}).items()},
    }
    report["toc"] = _number(report)
    return tidy(report)


__all__ = ["build", "score", "status_label", "resolution_summary", "tidy", "split_flags",
           "FAILED"]
