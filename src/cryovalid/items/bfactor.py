"""0.d B-factor analysis: a Guinier fit of the map's amplitude fall-off.

For each Fourier shell, y = ln(mean |F|) against x = 1/d² (s², 1/Å²). A straight line is fitted
by least squares to the shells with R <= d <= 15 Å (Rosenthal & Henderson 2003, J Mol Biol
333:721; the reference's xmipp_volume_correct_bfactor --auto). B = 4 × slope, the reference's
sign: a map whose amplitudes decay has a negative B (a crystallographer's B of +100 Å² is
reported as −100 Å²). The corrected map multiplies F by exp(−B s²/4) up to 1/R and leaves
higher frequencies as they are.
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import NotApplicable
from cryovalid import criteria
from cryovalid.items.base import Fact, Volume, new_result
from cryovalid.kernels import fourier

ID = "0.d"
LEVEL = "0"
REQUIRES = ("resolution",)  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "B-factor analysis"
SECTION = "Level 0 analysis"
FIT_LOW_RES_A = 15.0
B_MIN, B_MAX = criteria.B_MIN_A2, criteria.B_MAX_A2
MIN_FIT_SHELLS = 3

WARN_RANGE = "The B-factor, {b:.1f} Å², is outside [{lo:g}, {hi:g}] Å²."
WARN_OVER_SHARPENED = " The map seems over-sharpened."

EXPLANATION = (
    "The amplitudes of a cryo-EM map fall off with spatial frequency, roughly as exp(B s²/4) "
    "with s = 1/d. A Guinier plot (log amplitude against s²) is then a straight line between "
    "15 Å and the resolution, and its slope gives the overall B-factor. We report B with the "
    "sign of the reference: negative for a map whose amplitudes decay (a blurred map), positive "
    "for a map whose high frequencies were boosted beyond flat (over-sharpened). A deposited "
    "map is expected to be sharpened to a modest decay, with B between −300 and 0 Å².")

CRITERIA = (f"OK if the B-factor, fitted between {FIT_LOW_RES_A:g} Å and the reported "
            f"resolution, is between {B_MIN:g} and {B_MAX:g} Å² (reference sign: negative means "
            f"decaying amplitudes).")


def guinier(ctx):
    """(s² per shell, ln mean |F| per shell) for shells 1..Nyquist with non-zero amplitude."""
    return fourier.guinier_profile(ctx.map.ft, ctx.map.shells)


def fit_bfactor(s2, lnf, resolution, low_res=FIT_LOW_RES_A):
    """Least-squares line through the points with resolution <= d <= low_res.

    Returns (B = 4·slope in Å², slope, intercept, boolean selection)."""
    sel = (s2 >= 1.0 / low_res ** 2) & (s2 <= 1.0 / resolution ** 2 * (1 + 1e-9))
    if sel.sum() < MIN_FIT_SHELLS:
        raise NotApplicable(
            f"only {int(sel.sum())} Fourier shells lie between {low_res:g} Å and "
            f"{resolution:g} Å; a Guinier fit needs at least {MIN_FIT_SHELLS}")
    slope, intercept = np.polyfit(s2[sel], lnf[sel], 1)
    return 4.0 * float(slope), float(slope), float(intercept), sel


def run(ctx):
    res = new_result(sys.modules[__name__])
    r = ctx.resolution
    if r >= FIT_LOW_RES_A:
        raise NotApplicable(f"the reported resolution ({r:g} Å) is not better than "
                            f"{FIT_LOW_RES_A:g} Å, so the Guinier fit window is empty")
    s2, lnf = guinier(ctx)
    b, slope, intercept, sel = fit_bfactor(s2, lnf, r)
    res.metrics.update(bfactor_A2=round(b, 3), guinier_slope=slope, guinier_intercept=intercept)
    res.facts += [
        Fact("B-factor (reference sign)", b, "Å²", "{:.1f}"),
        Fact("Fit window", f"{FIT_LOW_RES_A:g} Å to {r:g} Å ({int(sel.sum())} shells)", "", "{}"),
        Fact("Fitted line", f"ln|F| = {slope:.1f} · s² + {intercept:.2f}", "", "{}"),
    ]

    # B-factor-corrected map: F · exp(−B s²/4) for s <= 1/R.
    smag = fourier.frequency_magnitude(ctx.map.shape, ctx.map.voxel_size)
    gain = np.where(smag <= 1.0 / r, np.exp(-b * smag * smag / 4.0), 1.0).astype(np.float32)
    corrected = fourier.irfft(ctx.map.ft * gain, ctx.map.shape)
    res.artefacts.append(Volume("maps/bfactor_corrected.mrc", corrected, ctx.map.voxel_size,
                                ctx.map.origin))
    corr_lnf = lnf - np.where(s2 <= 1.0 / r ** 2, b / 4.0 * s2, 0.0)
    res.data.update(s2=s2, lnf=lnf, selection=sel, slope=slope, intercept=intercept,
                    corrected_lnf=corr_lnf, corrected_map=corrected)

    if not (B_MIN <= b <= B_MAX):
        if b > B_MAX:
            res.warn("over_sharpened", WARN_RANGE + WARN_OVER_SHARPENED, b=b, lo=B_MIN, hi=B_MAX)
        else:
            res.warn("out_of_range", WARN_RANGE, b=b, lo=B_MIN, hi=B_MAX)
        res.summary = "The overall B-factor of the map may be a problem (see 0.d)."
    return res.finish()
