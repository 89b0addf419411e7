"""1.b FSC permutation test with false-discovery-rate control (FDR-FSC, Beckers & Sachse 2020).

Metrics:
  fdr_fsc_A         resolution at 1 % FDR (Å): 1/frequency of the last significant shell before
                    the first non-significant one; 2·Ts when every shell is significant; None
                    when no shell after the origin is significant
  fdr_all_significant  True when every shell up to Nyquist is significant
  fdr_mask_radius_px   radius of the spherical mask (voxels)
  fdr_identical_halves True when the two halves hold the same numbers, or FSC >= IDENTICAL_FSC
                    in every shell after the origin (near-identical): the item then could not
                    be measured (status failed, fdr_fsc_A None)
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.criteria import OVERESTIMATE_FACTOR, WARN_OVERESTIMATED
from cryovalid.errors import NotApplicable
from cryovalid.items.base import FAILED, Curves, Fact, new_result
from cryovalid.kernels import fourier
from cryovalid.kernels import fsc as K
from cryovalid.kernels.masks import spherical_mask

ID = "1.b"
LEVEL = "1"
REQUIRES = ("half_maps",)  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "FSC permutation"
SECTION = "Level 1 analysis"
EXPLANATION = (
    "Instead of a fixed FSC threshold, each Fourier shell is tested for signal: the FSC of "
    "the two half maps is compared with the FSCs obtained when the coefficients of one half are "
    "paired at random with those of the other, which is what unrelated halves would give. "
    "The p-values of all shells are corrected for multiple testing by the Benjamini–Yekutieli "
    "procedure, and the resolution is the last shell before the first one in which signal is "
    "not detected at a false discovery rate of 1 % (Beckers & Sachse 2020, "
    "doi:10.1107/S2052252520012865). As in the reference's program, the halves are first "
    "multiplied by a spherical mask and the effective number of independent coefficients per "
    "shell is taken as 70 % of the actual number.")
ALPHA = 0.01
CRITERIA = (
    f"OK when the reported resolution is at least {OVERESTIMATE_FACTOR:g} times the resolution "
    f"estimated by the FSC permutation test at {ALPHA:.0%} FDR: a warning when reported "
    f"resolution < {OVERESTIMATE_FACTOR:g}·(FDR-FSC resolution). Not compared when no shell "
    f"after the origin is significant.")
CRITERIA_NO_RESOLUTION = ""  # nothing to check without a reported resolution

MASK_COEFFICIENT = 0.7  # SPOC's global mode
MASK_MARGIN_PX = 4  # SPOC: sphere radius min(N)/2 - 4 voxels
MASK_EDGE_SIGMA_PX = 2.0  # SPOC: Gaussian fall-off sigma 2 voxels
# Halves whose masked FSC reaches this in every shell after the origin are (near-)identical:
# independent reconstructions never agree that well up to Nyquist, where the noise dominates.
IDENTICAL_FSC = 0.99
IDENTICAL_REASON = (
    "The two half maps are {how}, so they are not independent reconstructions: every shell "
    "would be significant up to Nyquist, which says nothing about the resolution (see 1.a).")


def _cannot_measure(res, how, radius):
    res.status = FAILED
    res.reason = IDENTICAL_REASON.format(how=how)
    res.metrics.update({"fdr_fsc_A": None, "fdr_all_significant": None,
                        "fdr_mask_radius_px": round(float(radius), 1),
                        "fdr_identical_halves": True})
    return res


def run(ctx):
    res = new_result(sys.modules[__name__])
    h1, h2 = ctx.half_maps
    shells = ctx.map.shells
    radius = min(h1.shape) / 2.0 - MASK_MARGIN_PX
    if radius < 4:
        raise NotApplicable(f"the box ({min(h1.shape)} voxels) is too small for the spherical mask")
    if np.array_equal(h1.data, h2.data):
        return _cannot_measure(res, "identical (the same numbers in every voxel)", radius)
    sphere = spherical_mask(h1.shape, radius, edge_sigma=MASK_EDGE_SIGMA_PX)
    sphere[sphere < 1e-6] = 0.0
    # Each half's background level (its mean outside the sphere, weighted by 1 - sphere) is
    # subtracted before masking: a constant offset c would otherwise enter both halves as the
    # same c·sphere, whose transform correlates the halves at every frequency (an offset of
    # 2σ made every shell "significant"). With it the test is invariant to V -> a·V + c.
    F1 = fourier.rfft((h1.data - K.background_level(h1.data, sphere)) * sphere)
    F2 = fourier.rfft((h2.data - K.background_level(h2.data, sphere)) * sphere)
    del sphere
    out = K.fdr_fsc(F1, F2, shells, alpha=ALPHA, mask_coefficient=MASK_COEFFICIENT)
    del F1, F2
    if out.fsc.size > 1 and bool(np.all(out.fsc[1:] >= IDENTICAL_FSC)):
        return _cannot_measure(
            res, f"nearly identical (their FSC is at least {IDENTICAL_FSC:g} in every shell up "
                 f"to Nyquist)", radius)

    fdr = out.resolution
    res.metrics.update({
        "fdr_fsc_A": None if fdr is None else round(float(fdr), 3),
        "fdr_all_significant": bool(out.all_significant),
        "fdr_mask_radius_px": round(float(radius), 1),
        "fdr_identical_halves": False,
    })
    if fdr is None:
        res.facts.append(Fact("Resolution at 1 % FDR", "no significant shell after the origin",
                              "", "{}"))
    elif out.all_significant:
        res.facts.append(Fact("Resolution at 1 % FDR (every shell significant, Nyquist limit)",
                              round(fdr, 2), "Å"))
    else:
        res.facts.append(Fact("Resolution at 1 % FDR", round(fdr, 2), "Å"))
    res.facts.append(Fact("Significant shells", int(np.count_nonzero(out.significant[1:])), "",
                          "{}"))
    res.facts.append(Fact("Spherical mask radius", round(float(radius), 1), "voxels", "{:.1f}"))

    res.notes.append(
        "The permutation draws are cyclic shifts of random orderings of each shell's "
        "coefficients, all computed at once by FFT, with enough draws per shell for the "
        "smallest p-value to pass the correction; SPOC draws up to 1000 random permutations. "
        "SPOC's B-factor estimate is not repeated here (see 0.d for the map's B-factor).")

    R = ctx.resolution
    if R is None:
        res.criteria = CRITERIA_NO_RESOLUTION
        res.notes.append("No resolution was reported: the FDR-FSC resolution is not compared "
                         "with it.")
    elif fdr is not None and R < OVERESTIMATE_FACTOR * fdr:
        res.warn("overestimated", WARN_OVERESTIMATED, r=float(R),
                 method="FSC permutation test", est=float(fdr), factor=OVERESTIMATE_FACTOR,
                 limit=OVERESTIMATE_FACTOR * fdr)
        res.summary = ("The reported resolution seems too optimistic compared with the FSC "
                       "permutation test (see 1.b).")
    if fdr is not None:
        res.resolution_estimates.append({"method": "FDR-FSC (1.b)",
                                         "resolution_A": round(float(fdr), 3)})

    freq = shells.frequency
    res.data.update({"frequency": freq, "fsc": out.fsc, "p_values": out.p_values,
                     "q_values": out.q_values, "significant": out.significant,
                     "resolution": fdr, "alpha": ALPHA})
    res.artefacts.append(_curves(freq, out))
    return res.finish()


def _curves(freq, out) -> Curves:
    """fdr_fsc.csv: one row per shell (resolution empty at shell 0)."""
    with np.errstate(divide="ignore"):
        resolution = np.where(freq > 0, 1.0 / np.where(freq > 0, freq, 1.0), np.nan)
    return Curves("fdr_fsc.csv", [
        ("shell", np.arange(freq.size)), ("frequency_1_per_A", freq),
        ("resolution_A", resolution), ("fsc_spherical_mask", out.fsc),
        ("p_value", out.p_values), ("q_value", out.q_values),
        ("significant", np.asarray(out.significant, dtype=int)),
        ("permutation_draws", np.asarray(out.n_draws, dtype=int)),
    ])
