"""0.g Local occupancy (LocOccupancy, Kaur et al. 2021, Nat Commun 12:1240), as the reference
runs it: on the resized map (Ts' = R/2, ``ctx.map.resized(R)``) with its hard mask, frequencies from
15 Å to R, molecule quantile 0.25, Gaussian shells of σ = 4.8/L; see
:func:`cryovalid.kernels.localmaps.local_occupancy`. Written to ``maps/local_occupancy.mrc`` on
the input grid (values in [0, 1], 0 outside the hard mask).

Metrics: ``local_occupancy_median`` and the percentiles ``p2_5`` … ``p97_5``.
"""
from __future__ import annotations

import sys

from cryovalid.items.base import Fact, Volume, new_result
from cryovalid.items.percentiles import percentile_table, record
from cryovalid.items.locbfactor import normalised_bank, prepare, to_input_grid
from cryovalid.kernels import localmaps

ID = "0.g"
LEVEL = "0"
REQUIRES = ("resolution",)  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "Local occupancy"
SECTION = "Level 0 analysis"

MIN_MEDIAN = 0.5
HOMOGENEITY_EPS = 0.1  # the reference uses 0.1 here (0.01 in 0.e and 0.f)

WARN_HOMOGENEOUS = ("The local occupancies are all practically the same (2.5 and 97.5 "
                    "percentiles within {eps:g}); the measurement may have gone wrong.")
WARN_LOW_MEDIAN = ("The median local occupancy, {median:.2f}, is below {limit:g}: less than half "
                   "of the molecule seems occupied.")

EXPLANATION = (
    "Local occupancy tells how much of the time each part of the map is really there: a "
    "subunit present in only some particles, or a flexible domain, is weaker than the rest. It is "
    "estimated with LocOccupancy (Kaur et al. 2021, Nat Commun 12:1240): the map is filtered into "
    "thin frequency shells between 15 Å and the reported resolution, and at each shell a voxel "
    "counts as occupied when its local amplitude (from the spiral/Riesz transform) reaches the "
    "lower quartile of the amplitudes inside the molecule's mask. The occupancy is the fraction "
    "of shells at which the voxel is occupied, between 0 and 1. As in the reference, the "
    "computation runs on the map resampled to half the reported resolution. Most of the "
    "molecule should be occupied: the median should be at least 0.5.")

CRITERIA = (f"OK if the median local occupancy is at least {MIN_MEDIAN:g}, and the local "
            f"occupancies are not all the same (the 2.5 and 97.5 percentiles differ by at least "
            f"{HOMOGENEITY_EPS:g}).")


def run(ctx):
    res = new_result(sys.modules[__name__])
    rs, max_res, notes = prepare(ctx, ID)
    omap, info = localmaps.local_occupancy(normalised_bank(rs), rs.hard_mask, max_res)
    vol, vals = to_input_grid(ctx, rs, omap)
    localmaps.require_finite(vals, "local occupancy")
    res.artefacts.append(Volume("maps/local_occupancy.mrc", vol, ctx.map.voxel_size,
                                ctx.map.origin))

    table, p = percentile_table("Local occupancy percentiles (0 to 1)", vals, "Value", "{:.3f}")
    median = float(p[2])
    res.metrics["local_occupancy_median"] = round(median, 4)
    record(res.metrics, p, digits=4)
    res.tables.append(table)
    f = info["frequencies"]
    res.facts += [
        Fact("Median local occupancy", median, "", "{:.3f}"),
        Fact("Frequencies", f"{len(f)} from {1 / f[0]:.2f} Å to {1 / f[-1]:.2f} Å, Gaussian "
             f"shells of σ = {info['sigma']:.4f} 1/Å", "", "{}"),
    ]
    res.notes += notes
    res.data.update(values=vals, volume=vol, p2_5=float(p[0]), p97_5=float(p[4]))

    if abs(p[4] - p[0]) < HOMOGENEITY_EPS:
        res.warn("homogeneous", WARN_HOMOGENEOUS, eps=HOMOGENEITY_EPS)
    if median < MIN_MEDIAN:
        res.warn("low_median", WARN_LOW_MEDIAN, median=float(median), limit=MIN_MEDIAN)
    if res.warnings:
        res.summary = "The local occupancy of the map may be a problem (see 0.g)."
    return res.finish()
