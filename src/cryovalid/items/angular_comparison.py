"""4.d Comparison with a second angular assignment (vrs_level2_5.md §3.4–3.6).

The reference re-refines the particles with RELION (4.d1) and cryoSPARC (4.d2) and compares the
assignments with Xmipp ``angular_distance --sym S --check_mirrors`` (Sorzano et al. 2015,
"Cryo-EM and the elucidation of new macromolecular structures: Random Conical Tilt revisited",
Sci Rep 5:14290, for the distance; the program is Xmipp's ``SymList::computeDistance``). Here the
user gives the second, independent assignment (``--angles-b FILE.star``); particles are matched
by ``rlnImageName``.

Per matched particle (kernels/symmetry.orientation_differences):

* ``angle_diff`` (degrees, the reference's number): the mean of the three angles between
  corresponding rows of the two rotation matrices (the rotated x, y and z axes), minimised over
  the point group's elements and the mirror of the second orientation (Xmipp ``--check_mirrors``);
* ``geodesic`` (degrees): the angle of the rotation taking one orientation to the other,
  minimised the same way (reported as well; it is the standard distance on SO(3));
* ``shift_diff`` (Å): the Euclidean norm of the difference of the origins
  (``rlnOriginXAngst``, ``rlnOriginYAngst``). The reference compares pixels of particles
  resampled to R/2 while calling them Å; here the threshold is applied to Å and called Å.

Medians and scaled MADs (1.4826·median|x − median|, scipy ``median_abs_deviation(scale=
'normal')``), and the percentages of particles above :data:`ANGLE_LIMIT_DEG` and
:data:`SHIFT_LIMIT_A`.

Metrics: n_particles, n_matched, angle_diff_median_deg, angle_diff_mad_deg,
geodesic_median_deg, geodesic_mad_deg, shift_diff_median_A, shift_diff_mad_A (None without
origins), percent_angle_above, percent_shift_above (None without origins).
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import CannotMeasure
from cryovalid.items.base import Curves, Fact, new_result
from cryovalid.kernels import symmetry as symk

ID = "4.d"
LEVEL = "4"
REQUIRES = ("angles", "angles_b")
TITLE = "Comparison with a second angular assignment"
SECTION = "Level 4 analysis"

ANGLE_LIMIT_DEG = 5.0  # a particle whose orientations differ by more than this is "uncertain"
SHIFT_LIMIT_A = 5.0  # a particle whose shifts differ by more than this (Å) is "uncertain"
MAX_PERCENT = 20.0  # warn when more than this percentage of particles is uncertain (strict)
MAD_SCALE = 1.4826  # scaled MAD (normal consistency), as scipy's default in the reference
MIN_MATCHED = 10  # fewer matched particles than this: could not be measured

WARN_ANGLES = ("The percentage of images with uncertain angles, {percent:.1f}%, is larger than "
               "{limit:g}%")
WARN_SHIFT = ("The percentage of images with uncertain shift, {percent:.1f}%, is larger than "
              "{limit:g}%")

EXPLANATION = (
    "The particles' angular assignment is compared with a second, independent assignment of "
    "the same particles given by the user (the reference re-refines the particles with RELION "
    "and cryoSPARC and compares). Particles are matched by their image name. For each particle "
    "the angular difference is the mean of the angles between the corresponding axes of the "
    "two orientations (Xmipp's angular distance), taking the smallest value over the "
    "orientations equivalent under the symmetry and their mirrors; the geodesic angle of the "
    "rotation between them is given too. The shift difference is the distance, in Å, between "
    "the two origins. If both assignments are reliable, most particles should agree within a "
    "few degrees and Å; a large fraction of disagreeing particles shows that the alignment is "
    "uncertain.")
CRITERIA = (
    f"OK if at most {MAX_PERCENT:g} % of the images have 1) a shift difference larger than "
    f"{SHIFT_LIMIT_A:g} Å, and 2) an angular difference larger than {ANGLE_LIMIT_DEG:g}°; one "
    f"warning for each.")


def _mad(x):
    return float(MAD_SCALE * np.median(np.abs(x - np.median(x))))


def _keys(names):
    """INDEX@basename(STACK), to match files written from different folders."""
    out = []
    for s in names:
        idx, _, stack = str(s).partition("@")
        out.append(f"{int(idx) if idx.strip().isdigit() else idx.strip()}@"
                   f"{stack.strip().replace(chr(92), '/').rsplit('/', 1)[-1]}")
    return np.array(out, dtype=object)


def match(names_a, names_b):
    """(ia, ib, how): indices of the particles common to both (by exact rlnImageName, else
    by INDEX@basename of the stack when that matches more)."""
    a = np.array([str(s).strip() for s in names_a], dtype=object)
    b = np.array([str(s).strip() for s in names_b], dtype=object)
    best = None
    for how, ka, kb in (("image name", a, b), ("image index and stack file name", _keys(a),
                                                _keys(b))):
        if len(set(ka)) != len(ka) or len(set(kb)) != len(kb):
            continue
        pos = {k: i for i, k in enumerate(kb)}
        ia = np.array([i for i, k in enumerate(ka) if k in pos], dtype=np.int64)
        ib = np.array([pos[ka[i]] for i in ia], dtype=np.int64)
        if best is None or len(ia) > len(best[0]):
            best = (ia, ib, how)
    if best is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), "image name"
    return best


def run(ctx):
    res = new_result(sys.modules[__name__])
    ta = ctx.particles.particles.table
    tb = ctx.angles_b.table
    ia, ib, how = match(ta["rlnImageName"], tb["rlnImageName"])
    n_a, n_b, n = len(ta), len(tb), len(ia)
    if n < MIN_MATCHED:
        raise CannotMeasure(
            f"only {n} of the {n_a} particles are in the second assignment (matched by "
            f"rlnImageName; at least {MIN_MATCHED} are needed)")
    cols = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
    ea = np.asarray(ta[cols], dtype=np.float64)[ia]
    eb = np.asarray(tb[cols], dtype=np.float64)[ib]
    if not (np.all(np.isfinite(ea)) and np.all(np.isfinite(eb))):
        raise CannotMeasure("some matched particles have angles that are not finite numbers")
    angle, geo = symk.orientation_differences(ea, eb, ctx.symmetry, check_mirrors=True)
    origins = ("rlnOriginXAngst", "rlnOriginYAngst")
    has_shift = all(c in ta.columns for c in origins) and ctx.angles_b.has_origins
    shift = None
    if has_shift:
        sa = np.asarray(ta[list(origins)], dtype=np.float64)[ia]
        sb = np.asarray(tb[list(origins)], dtype=np.float64)[ib]
        shift = np.hypot(*(sa - sb).T)
    else:
        res.notes.append("The shifts are not compared: "
                         + ("the particles have no origins (rlnOriginXAngst/YAngst)."
                            if ctx.angles_b.has_origins else
                            "the second assignment has no origins (rlnOriginXAngst/YAngst)."))
    pct_angle = float(100.0 * np.count_nonzero(angle > ANGLE_LIMIT_DEG) / n)
    m = res.metrics
    m["n_particles"] = n_a
    m["n_matched"] = n
    m["angle_diff_median_deg"] = float(np.median(angle))
    m["angle_diff_mad_deg"] = _mad(angle)
    m["geodesic_median_deg"] = float(np.median(geo))
    m["geodesic_mad_deg"] = _mad(geo)
    m["percent_angle_above"] = pct_angle
    m["shift_diff_median_A"] = float(np.median(shift)) if has_shift else None
    m["shift_diff_mad_A"] = _mad(shift) if has_shift else None
    pct_shift = float(100.0 * np.count_nonzero(shift > SHIFT_LIMIT_A) / n) if has_shift else None
    m["percent_shift_above"] = pct_shift
    res.facts += [
        Fact("Particles matched (by " + how + ")", f"{n} of {n_a} (second file: {n_b})",
             fmt="{}"),
        Fact("Symmetry", ctx.symmetry.upper(), fmt="{}"),
        Fact("Median angular difference (mean axis angle)", m["angle_diff_median_deg"], "°",
             "{:.1f}"),
        Fact("MAD of the angular difference", m["angle_diff_mad_deg"], "°", "{:.1f}"),
        Fact("Median geodesic angle", m["geodesic_median_deg"], "°", "{:.1f}"),
        Fact(f"Images with an angular difference > {ANGLE_LIMIT_DEG:g}°", pct_angle, "%",
             "{:.1f}"),
    ]
    if has_shift:
        res.facts += [
            Fact("Median shift difference", m["shift_diff_median_A"], "Å", "{:.1f}"),
            Fact("MAD of the shift difference", m["shift_diff_mad_A"], "Å", "{:.1f}"),
            Fact(f"Images with a shift difference > {SHIFT_LIMIT_A:g} Å", pct_shift, "%",
                 "{:.1f}"),
        ]
    if n < n_a:
        res.notes.append(f"{n_a - n} particle(s) are not in the second assignment and are not "
                         f"compared.")
    if pct_angle > MAX_PERCENT:
        res.warn("uncertain_angles", WARN_ANGLES, percent=pct_angle, limit=MAX_PERCENT)
    if has_shift and pct_shift > MAX_PERCENT:
        res.warn("uncertain_shift", WARN_SHIFT, percent=pct_shift, limit=MAX_PERCENT)
    if res.warnings:
        res.summary = ("The particles' angular assignment does not agree with the second "
                       "assignment given (see 4.d).")
    names = np.asarray(ta["rlnImageName"], dtype=object)[ia]
    res.artefacts.append(Curves("angular_comparison.csv", [
        ("rlnImageName", list(names)), ("angle_diff_deg", angle), ("geodesic_deg", geo),
        ("shift_diff_A", shift if has_shift else [None] * n)]))
    res.data.update(angle_diff=angle, geodesic=geo, shift_diff=shift,
                    angle_limit=ANGLE_LIMIT_DEG, shift_limit=SHIFT_LIMIT_A)
    return res.finish()
