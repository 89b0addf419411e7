"""1.c Local resolution from the FSC of the two half maps in a sliding box (blocres; Cardone,
Heymann & Steven 2013, J Struct Biol 184:226).

As the reference runs Bsoft ``blocres``: a box of 20 voxels, FSC cut-off 0.5, finest value
2 Å (``-maxresolution 2``), values computed inside the soft mask (the voxels where it exceeds
:data:`cryovalid.kernels.local_fsc.REGION_MIN`) and 0 elsewhere (``-fill 0``). The box centres
are sampled every 2–4 voxels and interpolated back to every mask voxel; the algorithm, its
window and how it differs from blocres are in :mod:`cryovalid.kernels.local_fsc`.

Outputs: ``maps/local_resolution_fsc.mrc`` on the input grid (Å; 0 outside the mask); metrics
(Å unless said) ``median_A``, ``p2_5``, ``p25``, ``p50``, ``p75``, ``p97_5`` over the mask
voxels, ``reported_percentile`` (% of those voxels finer than the reported resolution; only with
a resolution), ``boxes``, ``step_voxels``, ``at_finest_fraction``, ``at_coarsest_fraction``.
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import CannotMeasure, NotApplicable
from cryovalid.items.base import Fact, Volume, new_result
from cryovalid.items.percentiles import percentile_table, record
from cryovalid.kernels import local_fsc as LF
from cryovalid.kernels import localmaps

ID = "1.c"
LEVEL = "1"
REQUIRES = ("half_maps",)  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "Local resolution (local FSC, blocres)"
SECTION = "Level 1 analysis"

CUTOFF = LF.CUTOFF_HALVES  # local FSC cut-off (the reference's -cutoff 0.5)
BOX = LF.BOX  # voxels (the reference's -box 20)
FINEST_A = 2.0  # the reference's -maxresolution 2 (Å); never finer than Nyquist 2·Ts either
HOMOGENEITY_EPS_A = 0.01  # |P97.5 - P2.5| below this: output suspiciously uniform
LOW_PERCENTILE = 0.1  # % of voxels finer than R below this: R is too optimistic
VOLUME = "maps/local_resolution_fsc.mrc"

WARN_HOMOGENEOUS = ("The local resolutions are all practically the same (2.5 and 97.5 "
                    "percentiles within {eps:g} Å); the measurement may have gone wrong.")
WARN_TOO_FINE = ("The reported resolution, {r:.2f} Å, is finer than almost all local "
                 "resolutions: only {below:.2f} % of the mask voxels are finer (the limit is "
                 "{limit:g} %).")

EXPLANATION = (
    "Resolution is rarely the same everywhere in a map. Here it is measured locally as blocres "
    "does (Cardone, Heymann & Steven 2013, doi:10.1016/j.jsb.2013.08.002): around each point "
    f"of the mask a box of {BOX} voxels is cut out of both half maps, softened at its edges, "
    "and the Fourier Shell Correlation of the two boxes is computed; the local resolution is "
    f"where that FSC falls below {CUTOFF:g}. A box this small holds much less signal than the "
    f"whole map, so the stricter {CUTOFF:g} threshold is used rather than 0.143, and the local "
    "values are not expected to reach the global FSC resolution everywhere. The distribution "
    "of local resolutions should be consistent with the reported resolution: a reported value "
    "finer than almost every local value suggests that the global figure is optimistic.")

CRITERIA = (
    f"OK if at least {LOW_PERCENTILE:g} % of the mask voxels have a local resolution finer "
    f"than the reported resolution, and the local resolutions are not all the same (the 2.5 "
    f"and 97.5 percentiles differ by at least {HOMOGENEITY_EPS_A:g} Å).")
CRITERIA_NO_RESOLUTION = (
    f"No resolution was reported, so only the spread is checked: OK if the local resolutions "
    f"are not all the same (the 2.5 and 97.5 percentiles differ by at least "
    f"{HOMOGENEITY_EPS_A:g} Å).")

METHOD_NOTE = (
    "blocres computes a box around every voxel and pads each box to twice its size before the "
    "Fourier transform. Here the boxes are centred every {step} voxels ({n} boxes) and the "
    "values interpolated in between, and the FSC is interpolated linearly between the box's "
    "own shells; both change a value by a fraction of the distance between two shells "
    "({shell:.2f} Å⁻¹ here). The box is multiplied by a soft-edged cubic window (a raised "
    "cosine over its outer {edge} voxels) after its mean is removed.")


def run(ctx):
    res = new_result(sys.modules[__name__])
    h1, h2 = ctx.half_maps
    if h1.data is h2.data or np.array_equal(h1.data, h2.data):
        raise CannotMeasure("the two half maps are identical (the same numbers in every "
                            "voxel): their local FSC is 1 everywhere and says nothing about "
                            "the local resolution")
    for h, name in ((h1, "half map 1"), (h2, "half map 2")):
        localmaps.require_finite(h.data, name)
    if min(h1.shape) < BOX:
        raise NotApplicable(f"the box is smaller than the local FSC box ({BOX} voxels)")
    region = ctx.map.soft_mask > LF.REGION_MIN
    if not region.any():
        raise NotApplicable("the mask is empty at this threshold")
    ts = ctx.map.voxel_size
    out = LF.local_fsc_resolution(h1.data, h2.data, ts, region, cutoff=CUTOFF, box=BOX,
                                  finest_A=FINEST_A)
    vals = out.values
    localmaps.require_finite(vals, "local resolution")
    vol = out.volume()
    res.artefacts.append(Volume(VOLUME, vol, ts, ctx.map.origin))

    table, p = percentile_table("Local resolution percentiles", vals, "Resolution (Å)",
                                "{:.2f}")
    median = float(p[2])
    res.metrics["median_A"] = round(median, 3)
    record(res.metrics, p)
    res.metrics.update(boxes=out.n_boxes, step_voxels=out.step,
                       at_finest_fraction=round(out.at_finest, 4),
                       at_coarsest_fraction=round(out.at_coarsest, 4))
    res.tables.append(table)
    res.facts += [
        Fact("Median local resolution", median, "Å", "{:.2f}"),
        Fact("Box / FSC cut-off", f"{BOX} voxels ({BOX * ts:.1f} Å) / {CUTOFF:g}", "", "{}"),
        Fact("Mask voxels measured", int(vals.size), "", "{:d}"),
        Fact(f"Boxes whose FSC stays above {CUTOFF:g} up to {out.finest_A:.2f} Å (finest value)",
             100.0 * out.at_finest, "%", "{:.1f}"),
        Fact(f"Boxes whose FSC is below {CUTOFF:g} from their first shell (coarser than the "
             f"box, {out.coarsest_A:.1f} Å)", 100.0 * out.at_coarsest, "%", "{:.1f}"),
    ]
    R = ctx.resolution
    below = None
    if R is not None:
        below = 100.0 * float(np.mean(vals < R))
        res.metrics["reported_percentile"] = round(below, 3)
        res.facts.insert(1, Fact("Reported resolution is at the percentile", below, "%",
                                 "{:.1f}"))
    else:
        res.criteria = CRITERIA_NO_RESOLUTION
    res.notes.append(METHOD_NOTE.format(step=out.step, n=out.n_boxes, shell=1.0 / (BOX * ts),
                                        edge=max(int(round(LF.EDGE_FRACTION * BOX)), 1)))
    res.resolution_estimates.append({"method": "Local FSC median (blocres, 1.c)",
                                     "resolution_A": round(median, 3)})
    res.data.update(values=vals, volume=vol, p2_5=float(p[0]), p97_5=float(p[4]))

    if abs(p[4] - p[0]) < HOMOGENEITY_EPS_A:
        res.warn("homogeneous", WARN_HOMOGENEOUS, eps=HOMOGENEITY_EPS_A)
    if below is not None and below < LOW_PERCENTILE:
        res.warn("reported_too_fine", WARN_TOO_FINE, r=float(R), below=below,
                 limit=LOW_PERCENTILE)
    return res.finish()
