"""1.g Fourier Shell Occupancy (FSO): how much of each Fourier shell is resolved, direction by
direction (Vilas & Tagare 2023, "New measures of anisotropy of cryo-EM maps", Nat Methods
20:1021, doi:10.1038/s41592-023-01874-2; Xmipp ``xmipp_resolution_fso``).

Method (the reference's parameters): the two half maps times the soft mask (each half's solvent
level removed first); the directional FSC in Gaussian-weighted double cones of half-angle
17° about 321 directions evenly spread over the half sphere
(:mod:`cryovalid.kernels.directional_fsc`); per shell, the FSO is the fraction of directions
whose directional FSC is at least 0.143. Each direction's resolution is where its FSC first
falls below 0.143.

Metrics (Å unless said):
  fso_05_A            FSO = 0.5: half the directions resolved (the reference's estimate); the
                      Nyquist resolution with ``fso_05_A_finer_than_nyquist`` when the FSO never
                      falls to 0.5; None when it is below 0.5 from the first reliable shell
  fso_09_A, fso_01_A  FSO = 0.9 and 0.1 (the band of the reference's text and figure)
  fso_anisotropy      1 − d(FSO=0.1)/d(FSO=0.9) (dimensionless): the relative width of the
                      shells' transition from 90 % to 10 % occupied; 0 for a step (isotropic),
                      larger the more the directional resolutions differ; a lower bound (flag
                      ``fso_anisotropy_lower_bound``) when the FSO stays above 0.1 to Nyquist
  fso_best_direction_A, fso_worst_direction_A, fso_median_direction_A
                      finest, coarsest and median directional resolution
  fso_worst_direction_x, _y, _z   unit vector of the coarsest direction (dimensionless)
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid import criteria
from cryovalid.items.base import Curves, Fact, Table, new_result
from cryovalid.kernels import directional_fsc as D
from cryovalid.kernels import fsc as K

ID = "1.g"
LEVEL = "1"
REQUIRES = ("half_maps",)  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "Fourier Shell Occupancy (FSO)"
SECTION = "Level 1 analysis"

CONE_DEG = 17.0  # cone half-angle (Xmipp's default, used by the reference)
N_DIRECTIONS = 321  # as Xmipp (its own list; ours is a Fibonacci set of the same size)
DIRECTIONAL_THRESHOLD = K.FSC_GOLD  # a direction is resolved where its FSC ≥ 0.143
FSO_LEVEL = 0.5  # the resolution estimate: half the directions resolved
BAND = (0.9, 0.1)  # the occupancy band of the reference's text and figure
ANISOTROPY_LIMIT = 0.3  # 1 − d(FSO=0.1)/d(FSO=0.9) above this: anisotropic
# For directional resolutions on a spheroid (two equal best axes, the third q times worse):
# d(FSO=p) = d_best·sqrt(1 − p² + p²q²), so the anisotropy is
# 1 − sqrt(0.99 + 0.01 q²)/sqrt(0.19 + 0.81 q²): 0.2 for q = 1.3, 0.29 for q = 1.5, 0.45 for
# q = 2.
ANISOTROPY_RATIO_AT_LIMIT = 1.5
OVERESTIMATE_FACTOR = criteria.OVERESTIMATE_FACTOR
CONE_WEIGHTING = "gaussian"

WARN_ANISOTROPIC = (
    "The resolution is anisotropic: the Fourier shells go from {hi:.0%} to {lo:.0%} occupied "
    "between {d_hi:.2f} Å and {d_lo:.2f} Å, an anisotropy of {a:.2f}{bound} (limit {limit:g}, "
    "about a {ratio:g}× difference between the worst and the best direction). The worst "
    "direction, {worst:.2f} Å, is at tilt {tilt:.0f}° (from z) and rot {rot:.0f}°; the best "
    "is {best:.2f} Å.")
WARN_IDENTICAL = ("The two half maps are identical: they are not independent reconstructions, "
                  "so every directional FSC is 1 and tells nothing about the resolution or "
                  "its anisotropy.")
WARN_NO_SIGNAL = ("Every direction's FSC is below {thr:g} already at the first reliable "
                  "shell ({d:.1f} Å): the half maps share no measurable signal.")

EXPLANATION = (
    "The global FSC averages each Fourier shell over all directions, so a map reconstructed "
    "from particles with a preferred orientation can report a good resolution that holds only "
    "in some directions. The Fourier Shell Occupancy (Vilas & Tagare 2023, Nat Methods "
    "20:1021) measures the FSC between the two half maps in narrow cones (here "
    f"{CONE_DEG:g}° half-angle, Gaussian-weighted, about {N_DIRECTIONS} directions covering "
    "the sphere) and gives, for each shell, the fraction of directions whose FSC is still "
    f"above {DIRECTIONAL_THRESHOLD:g}. For an isotropic map this fraction drops from 1 to 0 "
    "like a step at the resolution; a gradual fall shows that some directions are resolved "
    "much further than others. The resolution is read where half the directions are resolved "
    f"(FSO = {FSO_LEVEL:g}); the map of the directional resolution shows which directions are "
    "worse. The half maps are multiplied by the soft mask first, as in the reference.")

CRITERIA = (
    f"OK when 1) the reported resolution is at least {OVERESTIMATE_FACTOR:g} times the "
    f"resolution where the FSO falls to {FSO_LEVEL:g} (only if it does), and 2) the "
    f"directional resolution is not anisotropic: the anisotropy 1 − d(FSO={BAND[1]:g})/"
    f"d(FSO={BAND[0]:g}), the relative width of the shells' fall from {BAND[0]:.0%} to "
    f"{BAND[1]:.0%} occupied, is at most {ANISOTROPY_LIMIT:g} (about a "
    f"{ANISOTROPY_RATIO_AT_LIMIT:g}× difference between the worst and the best direction). A "
    "warning is also given when the two half maps are identical, and when every direction's "
    "FSC is below the threshold from the first shell.")
CRITERIA_NO_RESOLUTION = (
    f"No resolution was reported, so only the anisotropy is checked: OK when 1 − "
    f"d(FSO={BAND[1]:g})/d(FSO={BAND[0]:g}) is at most {ANISOTROPY_LIMIT:g} (and the half "
    "maps are not identical and share a signal).")


MIN_MASK_FRACTION = 0.01  # a soft mask covering less of the box than this is not used


def halves_transforms(ctx):
    """(F1, F2, note): the rffts of the soft-masked halves (the reference's choice for 1.g and
    1.h), or of the unmasked halves when the threshold leaves no voxel in the mask or a mask
    that covers less than MIN_MASK_FRACTION of the box (masking correlates neighbouring
    Fourier coefficients over about 1/fraction voxels, so a tiny mask leaves a cone only a
    few independent coefficients)."""
    h1, h2 = ctx.half_maps
    if ctx.map.hard_mask.any():
        frac = float(ctx.map.soft_mask.mean(dtype=np.float64))
        if frac >= MIN_MASK_FRACTION:
            F1, F2 = D.masked_transforms(h1.data, h2.data, ctx.map.soft_mask)
            return F1, F2, ""
        why = (f"the soft mask covers only {100 * frac:.2g} % of the box (less than "
               f"{100 * MIN_MASK_FRACTION:g} %)")
    else:
        why = "the map threshold leaves no voxel inside the mask"
    F1, F2 = ctx.half_maps.fts
    return F1, F2, (f"The directional FSC is computed on the unmasked half maps: {why}.")


def _level(freq, curve, level, start, nyquist_f):
    """(resolution Å or None, status) where ``curve`` first falls below ``level``."""
    c = K.first_crossing(freq, curve, level, "below", start=start)
    if c.status == K.CROSSES:
        return float(c.resolution), c.status
    if c.status == K.NEVER:
        return float(1.0 / nyquist_f), c.status
    return None, c.status


def identical_halves(ctx, res, warning: str) -> bool:
    """True (with the warning and the flag) when the two half maps hold the same numbers."""
    h1, h2 = ctx.half_maps
    same = bool(np.array_equal(h1.data, h2.data))
    res.metrics["identical_halves"] = same
    if same:
        res.warn("identical_halves", warning)
        res.summary = "The two half maps are identical, so they cannot measure the resolution."
    return same


def run(ctx):
    res = new_result(sys.modules[__name__])
    if ctx.resolution is None:
        res.criteria = CRITERIA_NO_RESOLUTION
    if identical_halves(ctx, res, WARN_IDENTICAL):
        return res.finish()
    shells = ctx.map.shells
    freq = shells.frequency
    F1, F2, note = halves_transforms(ctx)
    if note:
        res.notes.append(note)
    dirs = D.half_sphere_directions(N_DIRECTIONS)
    dfsc = D.directional_fsc(F1, F2, shells, dirs, CONE_DEG, CONE_WEIGHTING)
    del F1, F2
    D.require_signal(dfsc)
    start = dfsc.first_reliable_shell()
    fso = D.occupancy(dfsc.fsc, DIRECTIONAL_THRESHOLD, first_shells=start)
    nyq_f = float(freq[-1])
    nyquist = 1.0 / nyq_f

    d05, s05 = _level(freq, fso, FSO_LEVEL, start, nyq_f)
    d09, s09 = _level(freq, fso, BAND[0], start, nyq_f)
    d01, s01 = _level(freq, fso, BAND[1], start, nyq_f)
    cross = D.crossings(freq, dfsc.fsc, DIRECTIONAL_THRESHOLD, start=start)
    dres = cross.resolution  # Å per direction (NaN: below the threshold from the start)
    ok = np.isfinite(dres)

    for key, v, st in (("fso_05_A", d05, s05), ("fso_09_A", d09, s09), ("fso_01_A", d01, s01)):
        res.metrics[key] = None if v is None else round(v, 3)
        if st == K.NEVER:
            res.metrics[f"{key}_finer_than_nyquist"] = True
    anis = None
    if d09 is not None and d01 is not None and s09 == K.CROSSES:
        anis = max(0.0, 1.0 - d01 / d09)
        if s01 == K.NEVER:
            res.metrics["fso_anisotropy_lower_bound"] = True
    res.metrics["fso_anisotropy"] = None if anis is None else round(anis, 4)
    worst_i = best_i = None
    if ok.any():
        worst_i = int(np.nanargmax(dres))
        best_i = int(np.nanargmin(dres))
        res.metrics.update({
            "fso_best_direction_A": round(float(dres[best_i]), 3),
            "fso_worst_direction_A": round(float(dres[worst_i]), 3),
            "fso_median_direction_A": round(float(np.nanmedian(dres)), 3),
        })
        res.metrics.update({f"fso_worst_direction_{a}": round(float(v), 4)
                            for a, v in zip("xyz", dirs[worst_i])})

    # ---- results shown -------------------------------------------------------------------
    if s05 == K.CROSSES:
        res.facts.append(Fact(f"Resolution by the FSO ({FSO_LEVEL:g})", round(d05, 2), "Å"))
    elif s05 == K.NEVER:
        res.facts.append(Fact(f"Resolution by the FSO ({FSO_LEVEL:g})",
                              f"finer than Nyquist ({nyquist:.2f} Å)", "", "{}"))
    else:
        res.facts.append(Fact(f"Resolution by the FSO ({FSO_LEVEL:g})",
                              f"the FSO is below {FSO_LEVEL:g} from the first shell", "", "{}"))
    if d09 is not None and d01 is not None:
        lo_txt = f"{d01:.2f}" if s01 == K.CROSSES else f"< {nyquist:.2f}"
        res.facts.append(Fact(f"Shells {BAND[0]:.0%} to {BAND[1]:.0%} occupied between",
                              f"{d09:.2f} and {lo_txt}", "Å", "{}"))
    if anis is not None:
        res.facts.append(Fact("Anisotropy 1 − d(FSO=0.1)/d(FSO=0.9)"
                              + (" (lower bound)" if s01 == K.NEVER else ""),
                              round(anis, 3), "", "{:.3f}"))
    if worst_i is not None:
        rot, tilt = D.directions_to_angles(dirs[[worst_i, best_i]])
        res.facts += [
            Fact("Directional resolution, best / median / worst",
                 f"{dres[best_i]:.2f} / {np.nanmedian(dres):.2f} / {dres[worst_i]:.2f}", "Å",
                 "{}"),
            Fact("Worst direction (tilt from z, rot)", f"{tilt[0]:.0f}°, {rot[0]:.0f}°", "",
                 "{}"),
        ]
    pct = np.nanpercentile(dres, [2.5, 25, 50, 75, 97.5]) if ok.any() else [np.nan] * 5
    res.tables.append(Table(
        "Directional resolution (FSC 0.143 in each cone)", ["Percentile", "Resolution (Å)"],
        [[p, f"{v:.2f}"] for p, v in zip(("2.5", "25", "50", "75", "97.5"), pct)],
        ["{}", "{}"]))
    res.notes.append(
        f"Directions: a Fibonacci set of {N_DIRECTIONS} on the half sphere (Xmipp uses its own "
        f"list of {N_DIRECTIONS}); cones of {CONE_DEG:g}° with Xmipp's Gaussian weight. Shells "
        f"below {start} ({1.0 / freq[start]:.1f} Å), where a cone holds fewer than "
        f"{D.MIN_CONE_WEIGHT:g} coefficients, count as occupied (Xmipp: the first 5). "
        "Crossings are interpolated between shells (Xmipp takes the first shell below). "
        "Frequencies are r/(N·Ts).")

    # ---- criteria and warnings -------------------------------------------------------------
    R = ctx.resolution
    if R is None:
        res.criteria = CRITERIA_NO_RESOLUTION
    sentences = []
    if ok.sum() == 0:
        res.warn("no_signal", WARN_NO_SIGNAL, thr=DIRECTIONAL_THRESHOLD,
                 d=float(1.0 / freq[start]))
        sentences.append("The two half maps share no measurable signal in any direction "
                         "(see 1.g).")
    if anis is not None and anis > ANISOTROPY_LIMIT and worst_i is not None:
        rot, tilt = D.directions_to_angles(dirs[[worst_i]])
        res.warn("anisotropic", WARN_ANISOTROPIC, hi=BAND[0], lo=BAND[1], d_hi=d09, d_lo=d01,
                 a=anis, bound=" (at least)" if s01 == K.NEVER else "",
                 limit=ANISOTROPY_LIMIT, ratio=ANISOTROPY_RATIO_AT_LIMIT,
                 worst=float(dres[worst_i]), tilt=float(tilt[0]), rot=float(rot[0]),
                 best=float(dres[best_i]))
        sentences.append("The resolution is anisotropic: some directions are resolved much "
                         "worse than others (see 1.g).")
    if R is not None and s05 == K.CROSSES and R < OVERESTIMATE_FACTOR * d05:
        res.warn("overestimated", criteria.WARN_OVERESTIMATED, r=float(R),
                 method=f"FSO ({FSO_LEVEL:g})", est=float(d05), factor=OVERESTIMATE_FACTOR,
                 limit=OVERESTIMATE_FACTOR * d05)
        sentences.append("The reported resolution seems too optimistic compared with the "
                         "FSO (see 1.g).")
    res.summary = " ".join(sentences)
    if s05 == K.CROSSES:
        res.resolution_estimates.append({"method": f"FSO {FSO_LEVEL:g} (1.g)",
                                         "resolution_A": round(d05, 3)})

    # ---- figures and files ---------------------------------------------------------------
    rot_all, tilt_all = D.directions_to_angles(dirs)
    prot, ptilt, pmap = D.polar_map(dirs, dres, CONE_DEG)
    with np.errstate(all="ignore"):
        env = dfsc.fsc[:, :]
        lo_env = np.nanmin(np.where(np.isfinite(env), env, np.nan), axis=0) if ok.any() else None
        hi_env = np.nanmax(np.where(np.isfinite(env), env, np.nan), axis=0) if ok.any() else None
    res.data.update({
        "frequency": freq, "fso": fso, "global_fsc": dfsc.global_fsc,
        "dfsc_min": lo_env, "dfsc_max": hi_env, "first_shell": start,
        "fso_level": FSO_LEVEL, "band": BAND,
        "crossings": {"fso05": None if s05 != K.CROSSES else 1.0 / d05,
                      "fso09": None if s09 != K.CROSSES else 1.0 / d09,
                      "fso01": None if s01 != K.CROSSES else 1.0 / d01},
        "directions": dirs, "directional_resolution": dres,
        "polar_rot": prot, "polar_tilt": ptilt, "polar_map": pmap,
        "worst_direction": None if worst_i is None else dirs[worst_i],
    })
    with np.errstate(divide="ignore"):
        resolution = np.where(freq > 0, 1.0 / np.where(freq > 0, freq, 1.0), np.nan)
    res.artefacts.append(Curves("fso.csv", [
        ("shell", np.arange(freq.size)), ("frequency_1_per_A", freq),
        ("resolution_A", resolution), ("fso", fso), ("fsc_global_masked", dfsc.global_fsc),
        ("directional_fsc_min", lo_env if lo_env is not None else np.full(freq.size, np.nan)),
        ("directional_fsc_max", hi_env if hi_env is not None else np.full(freq.size, np.nan)),
    ]))
    res.artefacts.append(Curves("fso_directions.csv", [
        ("x", dirs[:, 0]), ("y", dirs[:, 1]), ("z", dirs[:, 2]), ("rot_deg", rot_all),
        ("tilt_deg", tilt_all), ("resolution_A", dres)]))
    return res.finish()
