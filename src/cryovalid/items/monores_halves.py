"""1.e Local resolution with MonoRes from the two half maps (Vilas et al. 2018, Structure 26:337).

The signal is the mean of the halves, (h1 + h2)/2; the noise is their half difference,
(h1 − h2)/2, inside the mask (Xmipp's ``--noiseonlyinhalves``, the reference's setting): the
half difference carries exactly the noise of the mean and no signal, so no solvent is needed.
The sweep (:func:`cryovalid.kernels.monodir.halfmap_local_resolution`) uses 0.e's bands, steps
and interpolation with the reference's parameters: from max(10 Å, 5·R) towards Nyquist in steps
of 0.5 Å, significance 0.95, on the hard mask. The threshold of each voxel is the noise's 95 %
quantile scaled to the local noise level (see the kernel), so that a box whose noise level
varies (one part of the reconstruction noisier than another) is measured right everywhere.

Outputs: ``maps/local_resolution_monores.mrc`` on the input grid (Å; 0 outside the hard mask and
where nothing was significant); metrics ``median_A``, ``p2_5``, ``p25``, ``p50``, ``p75``,
``p97_5`` (Å, over the mask voxels with a value) and ``reported_percentile`` (% of those voxels
finer than the reported resolution R), ``unresolved_fraction``.
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.items.base import Fact, Volume, new_result
from cryovalid.items.percentiles import percentile_table, record
from cryovalid.errors import NotApplicable
from cryovalid.kernels import localmaps, monodir

ID = "1.e"
LEVEL = "1"
REQUIRES = ("half_maps", "resolution")  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "Local resolution (MonoRes, half maps)"
SECTION = "Level 1 analysis"

MIN_LOW_RES_A = 10.0  # the sweep starts at max(MIN_LOW_RES_A, LOW_RES_FACTOR × R) (reference)
LOW_RES_FACTOR = 5.0
STEP_A = 0.5  # resolution step (the reference's protocol default)
SIGNIFICANCE = 0.95
HOMOGENEITY_EPS_A = 0.01  # |P97.5 − P2.5| below this: output suspiciously uniform
LOW_PERCENTILE = 0.1  # % of voxels finer than R below this (the reference's 0.001 fraction)

WARN_HOMOGENEOUS = ("The local resolutions are all practically the same (2.5 and 97.5 "
                    "percentiles within {eps:g} Å); the measurement may have gone wrong.")
WARN_TOO_FINE = ("The reported resolution, {r:.2f} Å, is particularly high with respect to the "
                 "local resolution distribution: it is at the {below:.2f} percentile (fewer "
                 "than {limit:g} % of the voxels are finer).")

EXPLANATION = (
    "MonoRes (Vilas et al. 2018, Structure 26:337, doi:10.1016/j.str.2017.12.018) measures the "
    "local resolution from the monogenic signal. The two half maps are averaged (the signal) "
    "and subtracted (half their difference holds the same noise as the average and no signal). "
    "Both are band-pass filtered at a series of frequencies, from coarse towards Nyquist; at "
    "each one the local amplitude of the average (the modulus of its monogenic signal, from the "
    "Riesz transform) is compared, voxel by voxel, with the 95 % quantile of the amplitudes of "
    "the difference inside the mask, scaled to the noise level around the voxel. A voxel takes the finest resolution at which it is still "
    "above the noise (interpolated between the frequencies scanned), and the scan stops at the "
    "halves' information limit. The reported resolution should not be finer than almost every "
    "local value.")

CRITERIA = (
    f"OK if at least {LOW_PERCENTILE:g} % of the voxels in the mask have a local resolution "
    f"finer than the reported resolution, and the local resolutions are not all the same (the "
    f"2.5 and 97.5 percentiles differ by at least {HOMOGENEITY_EPS_A:g} Å).")

METHOD_NOTE = (
    "As the reference (Xmipp MonoRes with --noiseonlyinhalves), the noise is the half "
    "difference of the halves inside the mask. Its threshold is local: the 95 % quantile of "
    "the noise amplitudes in units of their local level (the geometric mean over a window of "
    "about one resolution length around the voxel, without the voxel itself), times that "
    "level; with noise of one level everywhere this is MonoRes's single threshold, and it "
    "stays right where the noise level varies across the box. The squared amplitude is "
    "averaged with a Gaussian window (MonoRes low-passes it), the sweep ends where the mask "
    "holds no more band power than the noise (MonoRes: a z-test of the mean amplitudes), and "
    "percentiles are taken over the voxels themselves (the reference reads them from a "
    "histogram whose last two bins it drops).")


def run(ctx):
    res = new_result(sys.modules[__name__])
    r = float(ctx.resolution)
    hard = ctx.map.hard_mask
    if not hard.any():
        raise NotApplicable("the mask is empty at this threshold")
    h1, h2 = ctx.half_maps
    for h, name in ((h1, "half map 1"), (h2, "half map 2")):
        localmaps.require_finite(h.data, name)
    if np.array_equal(h1.data, h2.data):
        raise NotApplicable("the two half maps are identical: their difference holds no noise "
                            "to compare the signal with")
    F1, F2 = ctx.half_maps.fts
    mean = (h1.data + h2.data) * np.float32(0.5)
    _, scale = localmaps.robust_centre_scale(mean)
    del mean
    shape = ctx.map.shape
    lengths = [n * ctx.map.voxel_size for n in shape]
    signal, noise = monodir.halfmap_banks(F1, F2, shape, lengths, 1.0 / scale)
    low_res = max(MIN_LOW_RES_A, LOW_RES_FACTOR * r)
    out = monodir.halfmap_local_resolution(signal, noise, hard, low_res, STEP_A,
                                           significance=SIGNIFICANCE)
    localmaps.require_finite(out.values, "local resolution")

    vol = np.zeros(shape, dtype=np.float32)
    hard_idx = np.flatnonzero(hard)
    vol.ravel()[hard_idx] = out.values
    res.artefacts.append(Volume("maps/local_resolution_monores.mrc", vol, ctx.map.voxel_size,
                                ctx.map.origin))
    vals = out.values[out.values > 0]
    if vals.size == 0:
        raise NotApplicable(f"no voxel of the mask rose above the half-map noise, even at "
                            f"{low_res:g} Å")
    table, p = percentile_table("Local resolution percentiles (MonoRes)", vals, "Value (Å)",
                                "{:.2f}")
    below = 100.0 * float(np.mean(vals < r))
    median = float(p[2])
    res.metrics["median_A"] = round(median, 3)
    record(res.metrics, p)
    res.metrics["reported_percentile"] = round(below, 3)
    res.metrics["unresolved_fraction"] = round(1.0 - vals.size / out.values.size, 4)
    res.tables.append(table)
    scanned = out.resolutions
    res.facts += [
        Fact("Median local resolution", median, "Å", "{:.2f}"),
        Fact("Reported resolution is at the percentile", below, "%", "{:.1f}"),
        Fact("Resolutions scanned", f"{low_res:g} Å towards Nyquist "
             f"({2.0 * ctx.map.voxel_size:.2f} Å) in steps of {STEP_A:g} Å; {len(scanned)} "
             f"steps down to {scanned[-1]:.2f} Å" if scanned else "none", "", "{}"),
        Fact("End of the sweep", out.stop_reason, "", "{}"),
        Fact("Mask voxels with no significant signal (left out)",
             100.0 * res.metrics["unresolved_fraction"], "%", "{:.1f}"),
        Fact("Noise", "half difference of the half maps, (h1 − h2)/2, inside the mask", "",
             "{}"),
    ]
    res.notes.append(METHOD_NOTE)
    res.resolution_estimates.append({"method": "MonoRes median (1.e)",
                                     "resolution_A": round(median, 3)})
    res.data.update(values=vals, volume=vol, p2_5=float(p[0]), p97_5=float(p[4]),
                    sweep_resolutions=list(scanned), signal_ratio=list(out.signal_ratio))

    if abs(p[4] - p[0]) < HOMOGENEITY_EPS_A:
        res.warn("homogeneous", WARN_HOMOGENEOUS, eps=HOMOGENEITY_EPS_A)
    if below < LOW_PERCENTILE:
        res.warn("reported_too_fine", WARN_TOO_FINE, r=r, below=below, limit=LOW_PERCENTILE)
    return res.finish()
