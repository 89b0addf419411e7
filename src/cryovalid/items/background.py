"""0.c Background analysis: is the solvent zero-mean noise without outliers?

Background = voxels outside the hard mask. A two-sided one-sample Student t-test against mean 0
(scipy.stats.ttest_1samp), and the fraction of background voxels with |v| > 5σ (σ = population
std of the background, not centred on the mean, as the reference) compared with the Gaussian
expectation 2Φ(−5) ≈ 5.733e-7.
"""
from __future__ import annotations

import sys

import numpy as np
from scipy import stats

from cryovalid.errors import NotApplicable
from cryovalid.items.base import Fact, new_result

ID = "0.c"
TITLE = "Background analysis"
SECTION = "Level 0 analysis"
P_MIN = 0.001
OUTLIER_SIGMA = 5.0
MAX_OUTLIER_RATIO = 20.0
GAUSS_TAIL = 2.0 * stats.norm.sf(OUTLIER_SIGMA)  # 5.733e-7

EXPLANATION = (
    "Outside the molecule a map should contain only noise: zero on average, and with no more "
    "extreme values than Gaussian noise of the same spread. A background whose mean differs "
    "from zero points to a normalisation or masking problem; many extreme values point to "
    "artefacts, neighbouring densities or a threshold that leaves part of the molecule out of "
    "the mask. We test the mean of the voxels outside the mask against zero (two-sided t-test) "
    "and count how many of them lie beyond 5 standard deviations. With millions of voxels the "
    "t-test detects even a tiny offset.")

CRITERIA = (
    f"OK if 1) the p-value of the t-test that the background mean is 0 is at least {P_MIN:g}; and "
    f"2) the fraction of background voxels beyond {OUTLIER_SIGMA:g} standard deviations is at most "
    f"{MAX_OUTLIER_RATIO:g} times the fraction expected for Gaussian noise "
    f"({100 * GAUSS_TAIL:.3e}%).")


def run(ctx):
    res = new_result(sys.modules[__name__])
    bg_mask = ~ctx.hard_mask
    bg = ctx.map.data[bg_mask]
    if bg.size < 100:
        raise NotApplicable("the mask covers (almost) the whole box: there is no background to "
                            "analyse")
    bg64 = bg.astype(np.float64)
    mean, std = float(bg64.mean()), float(bg64.std())
    if std > 0:
        t, p = stats.ttest_1samp(bg64, 0.0)
    else:  # a masked map: the background is one constant value and the t-test is undefined
        t, p = (0.0, 1.0) if mean == 0 else (np.inf, 0.0)
        res.notes.append(f"Every background voxel equals {mean:g}: the map was masked before "
                         f"deposition, so the background carries no noise to test.")
    outliers = np.abs(bg64) > OUTLIER_SIGMA * std
    frac = float(outliers.mean())
    ratio = frac / GAUSS_TAIL
    res.metrics.update(background_mean=mean, background_std=std,
                       background_t_pvalue=float(p), outlier_ratio_5sigma=round(ratio, 4))
    res.facts += [
        Fact("Background voxels", int(bg.size), "", "{:d}"),
        Fact("Background mean", mean, "", "{:.4g}"),
        Fact("Background standard deviation (σ)", std, "", "{:.4g}"),
        Fact("t statistic", float(t), "", "{:.2f}"),
        Fact("p-value (mean = 0)", float(p), "", "{:.3g}"),
        Fact(f"Background voxels beyond {OUTLIER_SIGMA:g}σ", 100 * frac, "%", "{:.3g}"),
        Fact("Expected for Gaussian noise", 100 * GAUSS_TAIL, "%", "{:.3g}"),
        Fact("Ratio observed / expected", ratio, "", "{:.2f}"),
    ]
    beyond = np.zeros_like(ctx.map.data)
    sel = bg_mask & (np.abs(ctx.map.data) > OUTLIER_SIGMA * std)
    beyond[sel] = ctx.map.data[sel]
    res.data["outliers"] = beyond
    if p < P_MIN:
        res.warnings.append(
            f"The background mean ({mean:.3g}) differs from zero: the t-test p-value "
            f"{p:.2g} is below {P_MIN:g}.")
    if ratio > MAX_OUTLIER_RATIO:
        res.warnings.append(
            f"The background has {ratio:.1f} times more voxels beyond {OUTLIER_SIGMA:g}σ than "
            f"Gaussian noise would (limit {MAX_OUTLIER_RATIO:g}).")
    res.summary = ("The background looks like zero-mean noise." if not res.warnings else
                   "The background of the map may have a problem (see 0.c).")
    return res.finish()
