"""0.c Background analysis: is the solvent zero-mean noise without outliers?

Background = voxels at least ``MARGIN_A`` Å from the hard mask (the molecule's own tail hugs the
mask and is not background), excluding the constant region of a masked map (voxels equal to the
most frequent value when it fills more than 1 % of the box: the depositor's mask set them, they
carry no noise). Two tests:

* the mean: neighbouring voxels are correlated, so the t-test uses the effective number of
  independent samples N_eff = N / V_c, V_c the correlation volume of the background noise
  (kernels.noise): t = mean / (σ·√(V_c/N)), two-sided Student t with N_eff − 1 degrees of
  freedom. The mean is also shown in units of σ.
* the outliers: the fraction of background voxels more than 5σ from the mean, compared with
  the Gaussian expectation 2Φ(−5). Mean and σ are local, over the background voxels of a
  12 Å cube around each voxel, because a depositor's spherical or soft mask changes the noise level across
  the box (EMD-11007: σ 0.5–0.8 inside its sphere, 0.03 outside), and against one global σ the
  louder part would count as outliers.
* masked maps: when more than 90 % of the background region equals one constant (the
  depositor's mask), the few voxels left lie at the mask's edge and the item does not apply.

Unlike the reference, the count is centred on the background mean and excludes masked-off
constants, so that an offset or a depositor's mask does not masquerade as outliers.
"""
from __future__ import annotations

import sys

import numpy as np
from scipy import ndimage, stats

from cryovalid.errors import NotApplicable
from cryovalid.items.base import Fact, new_result
from cryovalid.kernels import masks
from cryovalid.kernels.noise import correlation_volume

ID = "0.c"
LEVEL = "0"
REQUIRES = ()  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "Background analysis"
SECTION = "Level 0 analysis"
P_MIN = 0.001
OUTLIER_SIGMA = 5.0
MAX_OUTLIER_RATIO = 20.0
MARGIN_A = 5.0
MIN_VOXELS = 100
MIN_UNMASKED_FRACTION = 0.10  # of the background region, when the map has a constant region
LOCAL_WINDOW_A = 12.0
GAUSS_TAIL = 2.0 * stats.norm.sf(OUTLIER_SIGMA)  # 5.733e-7

WARN_MEAN = ("The background mean ({mean:.3g}, {sigmas:+.2f} σ) differs from zero: the t-test "
             "p-value {p:.2g} over {n:.0f} independent samples is below {limit:g}.")
WARN_OUTLIERS = ("The background has {ratio:,.0f} times more voxels beyond {sigma:g}σ than "
                 "Gaussian noise would (limit {limit:g}).")

EXPLANATION = (
    "Outside the molecule a map should contain only noise: zero on average, and with no more "
    "extreme values than Gaussian noise of the same spread. A background whose mean differs "
    "from zero points to a normalisation or masking problem; many extreme values point to "
    "artefacts, neighbouring densities or a threshold that leaves part of the molecule out of "
    "the mask. The background is taken at least "
    f"{MARGIN_A:g} Å away from the mask, so that the molecule's own faint edge is not counted, "
    "and without the region a depositor's mask set to one constant value. Neighbouring voxels "
    "are correlated, so the test of the mean counts independent samples, not voxels: the "
    "number of voxels divided by the volume over which the noise is correlated.")

CRITERIA = (
    f"OK if 1) the p-value of the t-test that the background mean is 0 (with the effective "
    f"number of independent samples) is at least {P_MIN:g}; and 2) the fraction of background "
    f"voxels more than {OUTLIER_SIGMA:g} local standard deviations from the local background "
    f"mean (over {LOCAL_WINDOW_A:g} Å cubes) is at most {MAX_OUTLIER_RATIO:g} times the fraction expected for Gaussian noise "
    f"({GAUSS_TAIL * 1e7:.1f} voxels in 10 million).")


def local_z(vol, bg_mask, voxel_size):
    """(v − local mean) / local σ of the background voxels (in ``bg_mask`` order). Mean and σ are
    taken over the background voxels of a cube of about ``LOCAL_WINDOW_A`` Å around each voxel
    (separable box filters). A depositor's spherical or soft mask makes the noise level change
    across the box; measured against one global σ, the louder part would count as outliers."""
    size = max(5, 2 * int(round(LOCAL_WINDOW_A / voxel_size / 2)) + 1)
    w = bg_mask.astype(np.float32)
    x = vol * w
    cnt = ndimage.uniform_filter(w, size, mode="constant")
    s1 = ndimage.uniform_filter(x, size, mode="constant")
    x *= vol
    s2 = ndimage.uniform_filter(x, size, mode="constant")
    cnt, s1, s2 = cnt[bg_mask], s1[bg_mask], s2[bg_mask]
    mu = s1 / cnt
    sd = np.sqrt(np.maximum(s2 / cnt - mu * mu, 0.0))
    v = vol[bg_mask]
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (v - mu) / sd
    return np.where(sd > 0, z, 0.0)


def run(ctx):
    res = new_result(sys.modules[__name__])
    vol = ctx.map.data
    bg_mask = ~masks.dilate(ctx.map.hard_mask, MARGIN_A, ctx.map.voxel_size)
    const, _ = ctx.map.constant_region
    n_const = 0
    if const is not None:
        is_const = bg_mask & (vol == const)
        n_const = int(np.count_nonzero(is_const))
        bg_mask &= ~is_const
    n = int(np.count_nonzero(bg_mask))
    unmasked = n / max(n + n_const, 1)
    if n < MIN_VOXELS or (n_const and unmasked < MIN_UNMASKED_FRACTION):
        if n_const:
            raise NotApplicable(
                f"{100 * (1 - unmasked):.0f}% of the background equals {const:g}: the map was "
                f"masked before deposition, and the {n} voxels left lie at the mask's edge, "
                f"too few to test as noise")
        raise NotApplicable(f"fewer than {MIN_VOXELS} voxels lie {MARGIN_A:g} Å or more from "
                            f"the mask: there is no background to analyse")
    bg = vol[bg_mask].astype(np.float64)
    mean, std = float(bg.mean()), float(bg.std())
    if std == 0:
        raise NotApplicable(f"every background voxel equals {mean:g}: there is no noise to test")
    # the correlation and local statistics are computed in units of the background's own
    # mean and σ, so that squares neither underflow nor overflow in float32 (a map × 1e-30)
    unit = ((vol - np.float32(mean)) / np.float32(std)).astype(np.float32, copy=False)
    vc = correlation_volume(unit, bg_mask, 0.0)
    n_eff = n / vc
    t = mean / (std * np.sqrt(vc / n))
    p = float(2.0 * stats.t.sf(abs(t), df=max(n_eff - 1.0, 1.0)))
    z = local_z(unit, bg_mask, ctx.map.voxel_size)
    del unit
    outliers = np.abs(z) > OUTLIER_SIGMA
    frac = float(np.count_nonzero(outliers)) / n
    ratio = frac / GAUSS_TAIL
    res.metrics.update(background_mean=mean, background_std=std,
                       background_mean_sigma=mean / std,
                       background_t_pvalue=p, background_voxels=n,
                       effective_samples=n_eff, correlation_volume_voxels=vc,
                       constant_voxels_excluded=n_const,
                       outlier_ratio_5sigma=ratio)
    if n_const:
        res.facts.append(Fact(f"Voxels equal to {const:g} (masked off, excluded)", n_const, "",
                              "{:d}"))
    res.facts += [
        Fact(f"Background voxels (≥ {MARGIN_A:g} Å from the mask)", n, "", "{:d}"),
        Fact("Background mean", mean, "", "{:.3g}"),
        Fact("Background standard deviation (σ)", std, "", "{:.3g}"),
        Fact("Background mean in units of σ", mean / std, "σ", "{:.3f}"),
        Fact("Correlation volume of the noise", vc, "voxels", "{:.1f}"),
        Fact("Effective independent samples", n_eff, "", "{:.0f}"),
        Fact("t statistic", float(t), "", "{:.2f}"),
        Fact("p-value (mean = 0)", p, "", "{:.2g}"),
        Fact(f"Background voxels beyond {OUTLIER_SIGMA:g} local σ", frac * 1e7,
             "per 10 million", "{:.1f}"),
        Fact("Expected for Gaussian noise", GAUSS_TAIL * 1e7, "per 10 million", "{:.1f}"),
        Fact("Ratio observed / expected", ratio, "", "{:.2f}" if ratio < 100 else "{:,.0f}"),
    ]
    beyond = np.zeros_like(vol)
    sel = np.zeros(vol.shape, dtype=bool)
    sel[bg_mask] = outliers
    beyond[sel] = vol[sel]
    res.data["outliers"] = beyond
    if p < P_MIN:
        res.warn("nonzero_mean", WARN_MEAN, mean=float(mean), sigmas=float(mean / std), p=float(p),
                 n=float(n_eff), limit=P_MIN)
    if ratio > MAX_OUTLIER_RATIO:
        res.warn("outliers", WARN_OUTLIERS, ratio=float(ratio), sigma=OUTLIER_SIGMA,
                 limit=MAX_OUTLIER_RATIO)
    res.summary = ("The background looks like zero-mean noise." if not res.warnings else
                   "The background of the map may have a problem (see 0.c).")
    return res.finish()
