"""1.h 3D FSC: the FSC in cones along x, y and z, the global FSC, the histogram of directional
resolutions and the sphericity of the 3D FSC (Tan et al. 2017, "Addressing preferred specimen
orientation in single-particle cryo-EM through tilting", Nat Methods 14:793,
doi:10.1038/nmeth.4347; nysbc 3DFSC ``ThreeDFSC_Start.py``).

Method (the reference's parameters): the two half maps times the soft mask (each half's solvent
level removed first); the conical FSC in hard double cones of half-angle 20° (3DFSC's
``--dthetaInDegrees 20``) about x, y, z and about 500 directions evenly spread over the half
sphere (:mod:`cryovalid.kernels.directional_fsc`). Resolutions are read where a curve first
falls below 0.143 (``--FSCCutoff``). The 3D FSC's iso-surface at 0.5
(``--ThresholdForSphericity``) lies, along each direction, where that direction's conical FSC
first falls below 0.5; its sphericity π^(1/3)(6V)^(2/3)/A is 1 for a sphere (isotropic
resolution) and smaller the more anisotropic the resolution is.

Frequencies are the correct r/(N·Ts) (per-axis physical frequencies for a non-cubic box). The
reference reads 3DFSC's curves against i·2·Ts/N, so the FSC3D resolutions it reports are the
true ones × 1/(2·Ts²) (right only at Ts = 0.707 Å); ours are the true ones.

Metrics (Å unless said; the Nyquist resolution with ``<metric>_finer_than_nyquist`` when a
curve never falls to 0.143, None when it is below 0.143 from the first reliable shell):
  fsc3d_x_A, fsc3d_y_A, fsc3d_z_A   conical FSC = 0.143 along x, y, z
  fsc3d_global_A                    global FSC (soft-masked halves) = 0.143
  sphericity                        of the 3D FSC at 0.5 (dimensionless, ≤ 1)
  fsc3d_directional_min_A, fsc3d_directional_median_A, fsc3d_directional_max_A
                                    over the directional resolutions (histogram)
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid import criteria
from cryovalid.items.base import Curves, Fact, Table, new_result
from cryovalid.items.fso import (WARN_IDENTICAL, halves_transforms,  # shared with 1.g
                                  identical_halves)
from cryovalid.kernels import directional_fsc as D
from cryovalid.kernels import fsc as K

ID = "1.h"
LEVEL = "1"
REQUIRES = ("half_maps",)  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "3D FSC"
SECTION = "Level 1 analysis"

CONE_DEG = 20.0  # 3DFSC --dthetaInDegrees (the cone's half-angle)
FSC_CUTOFF = K.FSC_GOLD  # 3DFSC --FSCCutoff
SPHERICITY_THRESHOLD = 0.5  # 3DFSC --ThresholdForSphericity
N_DIRECTIONS = 500  # directions of the histogram and of the sphericity surface
CONE_WEIGHTING = "hard"
OVERESTIMATE_FACTOR = criteria.OVERESTIMATE_FACTOR

WARN_NO_GLOBAL = ("The global FSC3D could not be estimated: the global FSC of the masked half "
                  "maps is below {thr:g} already at the first reliable shell ({d:.1f} Å).")

EXPLANATION = (
    "The 3D FSC (Tan et al. 2017, Nat Methods 14:793) measures the FSC between the two half "
    f"maps in cones of {CONE_DEG:g}° about each direction of Fourier space, so that the "
    "resolution can be read direction by direction: a preferred orientation of the particles "
    "leaves some directions much worse resolved than the global FSC says. Shown are the "
    "conical FSC along the x, y and z axes with the global FSC, the histogram of the "
    f"directional resolutions (each direction's FSC at {FSC_CUTOFF:g}), and the sphericity of "
    f"the 3D FSC at {SPHERICITY_THRESHOLD:g}: 1 when every direction is resolved equally, "
    "smaller the more anisotropic the resolution. The half maps are multiplied by the soft "
    "mask first, as in the reference.")
CRITERIA = (
    "OK when the two half maps are not identical, the reported resolution is at least "
    f"{OVERESTIMATE_FACTOR:g} times the resolution of the global FSC at {FSC_CUTOFF:g}, and "
    "that resolution can be estimated (a warning when the global FSC is below the threshold "
    "from the first shell).")
CRITERIA_NO_RESOLUTION = (
    "No resolution was reported, so only whether the half maps differ and whether the global "
    "FSC3D can be estimated are checked "
    f"(a warning when the global FSC is below {FSC_CUTOFF:g} from the first shell).")


def run(ctx):
    res = new_result(sys.modules[__name__])
    if ctx.resolution is None:
        res.criteria = CRITERIA_NO_RESOLUTION
    if identical_halves(ctx, res, WARN_IDENTICAL):
        return res.finish()
    shells = ctx.map.shells
    freq = shells.frequency
    nyquist = 1.0 / float(freq[-1])
    F1, F2, note = halves_transforms(ctx)
    if note:
        res.notes.append(note)
    axes = np.array([D.AXES[a] for a in "xyz"])
    dirs = D.half_sphere_directions(N_DIRECTIONS)
    dfsc = D.directional_fsc(F1, F2, shells, np.concatenate([axes, dirs]), CONE_DEG,
                             CONE_WEIGHTING)
    del F1, F2
    D.require_signal(dfsc)
    start = dfsc.first_reliable_shell()
    axis_fsc, dir_fsc = dfsc.fsc[:3], dfsc.fsc[3:]

    def crossing(curve):
        c = K.first_crossing(freq, curve, FSC_CUTOFF, "below", start=start)
        if c.status == K.CROSSES:
            return float(c.resolution), c.status
        return (nyquist if c.status == K.NEVER else None), c.status

    values = {}
    for name, curve in (("x", axis_fsc[0]), ("y", axis_fsc[1]), ("z", axis_fsc[2]),
                        ("global", dfsc.global_fsc)):
        v, status = crossing(curve)
        values[name] = (v, status)
        key = f"fsc3d_{name}_A"
        res.metrics[key] = None if v is None else round(v, 3)
        if status == K.NEVER:
            res.metrics[f"{key}_finer_than_nyquist"] = True

    cross = D.crossings(freq, dir_fsc, FSC_CUTOFF, start=start)
    dres = cross.resolution
    ok = np.isfinite(dres)
    if ok.any():
        res.metrics.update({
            "fsc3d_directional_min_A": round(float(np.nanmin(dres)), 3),
            "fsc3d_directional_median_A": round(float(np.nanmedian(dres)), 3),
            "fsc3d_directional_max_A": round(float(np.nanmax(dres)), 3),
        })
    half = D.crossings(freq, dir_fsc, SPHERICITY_THRESHOLD, start=start)
    sph = None
    if np.isfinite(half.frequency).sum() >= 4:
        sph = D.sphericity(dirs, half.frequency)
    else:
        res.notes.append(f"No sphericity: fewer than 4 directions reach an FSC of "
                         f"{SPHERICITY_THRESHOLD:g}.")
    res.metrics["sphericity"] = None if sph is None else round(sph, 4)

    # ---- results shown -------------------------------------------------------------------
    def fact(label, v, status):
        if status == K.CROSSES:
            return Fact(label, round(v, 2), "Å")
        if status == K.NEVER:
            return Fact(label, f"finer than Nyquist ({nyquist:.2f} Å)", "", "{}")
        return Fact(label, f"below {FSC_CUTOFF:g} from the first shell", "", "{}")

    for name, label in (("x", "along X"), ("y", "along Y"), ("z", "along Z"),
                        ("global", "global")):
        res.facts.append(fact(f"FSC3D resolution {label} ({FSC_CUTOFF:g})", *values[name]))
    found = [v for v, s in values.values() if v is not None]
    if found:
        res.facts.append(Fact("Range of the four", f"[{min(found):.2f}, {max(found):.2f}]",
                              "Å", "{}"))
    if sph is not None:
        res.facts.append(Fact(f"Sphericity of the 3D FSC at {SPHERICITY_THRESHOLD:g}",
                              round(sph, 3), "", "{:.3f}"))
    pct = np.nanpercentile(dres, [2.5, 25, 50, 75, 97.5]) if ok.any() else [np.nan] * 5
    res.tables.append(Table(
        f"Directional resolution ({N_DIRECTIONS} directions, FSC {FSC_CUTOFF:g} in {CONE_DEG:g}° "
        "cones)", ["Percentile", "Resolution (Å)"],
        [[p, f"{v:.2f}"] for p, v in zip(("2.5", "25", "50", "75", "97.5"), pct)],
        ["{}", "{}"]))
    res.notes.append(
        "Frequencies are r/(N·Ts) (the correct scale). The reference reads 3DFSC's curves "
        "against i·2·Ts/N, so its FSC3D resolutions equal ours × 1/(2·Ts²) "
        f"(here ×{1.0 / (2.0 * ctx.map.voxel_size ** 2):.2f}); its plots, made by 3DFSC, are "
        "right.")
    res.notes.append(
        f"Directions: x, y, z and a Fibonacci set of {N_DIRECTIONS} on the half sphere (3DFSC "
        "computes a cone for every Fourier voxel and samples 100 directions for its histogram). "
        "The sphericity is that of the polyhedron through each direction's 0.5 crossing (3DFSC: "
        "marching cubes on the thresholded, blurred 3D FSC volume). Crossings start at shell "
        f"{start} ({1.0 / freq[start]:.1f} Å), where every cone holds at least "
        f"{D.MIN_CONE_WEIGHT:g} coefficients.")

    # ---- criteria and warnings -------------------------------------------------------------
    R = ctx.resolution
    if R is None:
        res.criteria = CRITERIA_NO_RESOLUTION
    g, gs = values["global"]
    sentences = []
    if gs == K.AT_START:
        res.warn("no_global", WARN_NO_GLOBAL, thr=FSC_CUTOFF, d=float(1.0 / freq[start]))
        sentences.append("The global FSC3D could not be estimated (see 1.h).")
    if R is not None and gs == K.CROSSES and R < OVERESTIMATE_FACTOR * g:
        res.warn("overestimated", criteria.WARN_OVERESTIMATED, r=float(R),
                 method=f"global FSC3D ({FSC_CUTOFF:g})", est=float(g),
                 factor=OVERESTIMATE_FACTOR, limit=OVERESTIMATE_FACTOR * g)
        sentences.append("The reported resolution seems too optimistic compared with the "
                         "FSC3D (see 1.h).")
    res.summary = " ".join(sentences)
    if gs == K.CROSSES:
        res.resolution_estimates.append({"method": f"FSC3D global {FSC_CUTOFF:g} (1.h)",
                                         "resolution_A": round(g, 3)})

    # ---- figures and files ---------------------------------------------------------------
    with np.errstate(all="ignore"):
        mean = np.nanmean(dir_fsc, axis=0) if ok.any() else np.full(freq.size, np.nan)
        sd = np.nanstd(dir_fsc, axis=0) if ok.any() else np.full(freq.size, np.nan)
    res.data.update({
        "frequency": freq, "fsc_x": axis_fsc[0], "fsc_y": axis_fsc[1], "fsc_z": axis_fsc[2],
        "fsc_global": dfsc.global_fsc, "directional_mean": mean, "directional_sd": sd,
        "directional_frequency": cross.frequency, "directional_resolution": dres,
        "cutoff": FSC_CUTOFF, "sphericity": sph,
        "resolutions": {k: v for k, (v, s) in values.items()},
    })
    with np.errstate(divide="ignore"):
        resolution = np.where(freq > 0, 1.0 / np.where(freq > 0, freq, 1.0), np.nan)
    res.artefacts.append(Curves("fsc3d.csv", [
        ("shell", np.arange(freq.size)), ("frequency_1_per_A", freq),
        ("resolution_A", resolution), ("fsc_x", axis_fsc[0]), ("fsc_y", axis_fsc[1]),
        ("fsc_z", axis_fsc[2]), ("fsc_global_masked", dfsc.global_fsc),
        ("directional_fsc_mean", mean), ("directional_fsc_sd", sd)]))
    res.artefacts.append(Curves("fsc3d_directions.csv", [
        ("x", dirs[:, 0]), ("y", dirs[:, 1]), ("z", dirs[:, 2]),
        ("resolution_A", dres), ("frequency_fsc_0.5_1_per_A", half.frequency)]))
    return res.finish()
