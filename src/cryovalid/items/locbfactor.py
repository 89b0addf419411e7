"""0.f Local B-factor (LocBFactor, Kaur et al. 2021, Nat Commun 12:1240), as the reference runs it.

The map is Fourier-cropped to the reference's resized grid (Ts' = R/2, ``ctx.map.resized(R)``) and the
local B-factor is fitted per voxel between 15 Å and R (10 points, noise quantile 0.9, Gaussian
shells of σ = 4.8/L); see :func:`cryovalid.kernels.localmaps.local_bfactor`. The result is
interpolated (trilinear) back onto the input grid and written to ``maps/local_bfactor.mrc``
(Å², reference sign, 0 outside the hard mask). Statistics are over the input map's hard mask.

Metrics: ``local_bfactor_median_A2`` and the percentiles ``p2_5`` … ``p97_5`` (Å²).
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import NotApplicable
from cryovalid import criteria
from cryovalid.items.base import Fact, Volume, new_result
from cryovalid.items.percentiles import percentile_table, record
from cryovalid.kernels import localmaps

ID = "0.f"
LEVEL = "0"
REQUIRES = ("resolution",)  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "Local B-factor"
SECTION = "Level 0 analysis"

B_MIN, B_MAX = criteria.B_MIN_A2, criteria.B_MAX_A2
HOMOGENEITY_EPS = 0.01  # Å²

WARN_HOMOGENEOUS = ("The local B-factors are all practically the same (2.5 and 97.5 percentiles "
                    "within {eps:g} Å²); the measurement may have gone wrong.")
WARN_MEDIAN = "The median local B-factor, {median:.1f} Å², is outside [{lo:g}, {hi:g}] Å²."

EXPLANATION = (
    "The local B-factor describes how fast the map's amplitudes fall with resolution around each "
    "point: flexible or poorly aligned parts fall faster. It is estimated with LocBFactor (Kaur "
    "et al. 2021, Nat Commun 12:1240): the map is filtered into ten thin frequency shells between "
    "15 Å and the reported resolution, the local amplitude of each shell is obtained with the "
    "spiral (Riesz) transform, weighted down where it approaches the noise level measured "
    "outside the molecule, and a straight line is fitted, at every voxel, to its logarithm "
    "against 1/d². Four times the slope is the local B-factor, with the reference's sign "
    "(negative when the amplitudes decay). As in the reference, the computation runs on the map "
    "resampled to half the reported resolution. The median should lie between −300 and 0 Å², "
    "the range expected for the overall B-factor (0.d).")

CRITERIA = (f"OK if the median local B-factor is between {B_MIN:g} and {B_MAX:g} Å² (reference "
            f"sign), and the local B-factors are not all the same (the 2.5 and 97.5 "
            f"percentiles differ by at least {HOMOGENEITY_EPS:g} Å²).")

SHELL_NOTE = (
    "As published (and as the reference runs it), each frequency shell is divided by the sum of "
    "its filter, which lowers the amplitude of higher shells by a factor that grows with "
    "frequency. Local B-factors from this method are therefore more negative than a plain "
    "Guinier B (0.d) by an amount that depends only on the fit range and the box: here a map "
    "with a flat spectrum would read {offset:.0f} Å². Differences between regions are not "
    "affected.")


def prepare(ctx, item_id):
    """Gates shared by 0.f and 0.g; returns (resized map, frequency limit actually used, notes)."""
    r = ctx.resolution
    if r >= localmaps.BFACTOR_MIN_RES_A:
        raise NotApplicable(f"the reported resolution ({r:g} Å) is not finer than "
                            f"{localmaps.BFACTOR_MIN_RES_A:g} Å, so the frequency range of "
                            f"{item_id} is empty")
    localmaps.require_finite(ctx.map.data, "the map")
    if not ctx.map.hard_mask.any():
        raise NotApplicable("the mask is empty at this threshold")
    rs = ctx.map.resized(ctx.resolution)
    if not rs.hard_mask.any():
        raise NotApplicable("the mask of the resampled map is empty at this threshold")
    notes = []
    max_res = r
    nyq_res = 1.0 / rs.bank.nyquist
    if max_res < nyq_res - 1e-6:
        notes.append(f"The reported resolution ({r:g} Å) is finer than the map's Nyquist limit "
                     f"({nyq_res:.2f} Å); frequencies were taken up to Nyquist.")
        max_res = nyq_res
    if rs.is_original_grid:
        notes.append("The map was analysed on its own grid (it is not finer than R/2).")
    else:
        sp = rs.spacing
        notes.append(f"Computed on the map Fourier-cropped to {rs.shape[2]}×{rs.shape[1]}×"
                     f"{rs.shape[0]} voxels of {sp[2]:.3f}×{sp[1]:.3f}×{sp[0]:.3f} Å (R/2 = "
                     f"{r / 2:.3f} Å), then interpolated back onto the input grid.")
    return rs, max_res, notes


def normalised_bank(rs):
    """The resized map's filter bank with its bands divided by the map's robust scale
    (:func:`cryovalid.kernels.localmaps.robust_centre_scale`), so that amplitudes are O(1)
    whatever the map's units; the bank already leaves the mean out of every band. Local B and
    local occupancy are then the same for the map, the map + c and the map × k (k > 0; the
    threshold transformed alike). Raises ValueError when the map's spectrum is not finite."""
    _, scale = localmaps.robust_centre_scale(rs.data)
    bank = rs.bank
    localmaps.require_finite(bank.ft, "the resized map's Fourier transform")
    return bank.with_gain(1.0 / scale)


def to_input_grid(ctx, rs, values):
    """Volume on the input grid: ``values`` (resampled grid) interpolated at the hard-mask
    voxels, 0 elsewhere. Returns (volume, values at the mask voxels)."""
    idx = np.flatnonzero(ctx.map.hard_mask)
    at_mask = rs.to_original(values, idx)
    vol = np.zeros(ctx.map.shape, dtype=np.float32)
    vol.ravel()[idx] = at_mask
    return vol, at_mask


def run(ctx):
    res = new_result(sys.modules[__name__])
    rs, max_res, notes = prepare(ctx, ID)
    bmap, info = localmaps.local_bfactor(normalised_bank(rs), rs.hard_mask, max_res)
    vol, vals = to_input_grid(ctx, rs, bmap)
    localmaps.require_finite(vals, "local B-factor")
    res.artefacts.append(Volume("maps/local_bfactor.mrc", vol, ctx.map.voxel_size, ctx.map.origin))

    table, p = percentile_table("Local B-factor percentiles", vals, "Value (Å²)", "{:.1f}")
    median = float(p[2])
    res.metrics["local_bfactor_median_A2"] = round(median, 3)
    record(res.metrics, p)
    res.tables.append(table)
    f = info["frequencies"]
    res.facts += [
        Fact("Median local B-factor (reference sign)", median, "Å²", "{:.1f}"),
        Fact("Fit range", f"{1 / f[0]:.2f} Å to {1 / f[-1]:.2f} Å, {len(f)} frequencies, "
             f"Gaussian shells of σ = {info['sigma']:.4f} 1/Å", "", "{}"),
    ]
    res.notes += notes + [SHELL_NOTE.format(offset=info["flat_spectrum_b"])]
    res.metrics["flat_spectrum_bfactor_A2"] = round(float(info["flat_spectrum_b"]), 3)
    res.data.update(values=vals, volume=vol, p2_5=float(p[0]), p97_5=float(p[4]))

    if abs(p[4] - p[0]) < HOMOGENEITY_EPS:
        res.warn("homogeneous", WARN_HOMOGENEOUS, eps=HOMOGENEITY_EPS)
    if not (B_MIN <= median <= B_MAX):
        res.warn("median_out_of_range", WARN_MEDIAN, median=float(median), lo=B_MIN, hi=B_MAX)
    if res.warnings:
        res.summary = "The local B-factors of the map may be a problem (see 0.f)."
    return res.finish()
