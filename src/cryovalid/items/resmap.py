"""1.d Local resolution with ResMap (Kucukelbir, Sigworth & Tagare 2014, Nat Methods 11:63,
doi:10.1038/nmeth.2727), split-volume mode, on the two half maps.

At each trial resolution r (fine to coarse) the mean of the halves, band-passed around 1/r, is
fitted voxel by voxel with ResMap's local model (a constant plus 16 steerable second/third-order
Gaussian-windowed terms of scale r); the 16 terms are tested against the noise (their covariance
measured on the half-map difference inside the mask, scaled to the local noise level) with a
χ² test, with Benjamini–Yekutieli FDR control at p = 0.05 over the voxels still unassigned; a
voxel gets the first r at which it is rejected. See
:mod:`cryovalid.kernels.resmap` for the algorithm and :data:`METHOD_NOTE` for where it differs
from ResMap 1.1.

Mask: the hard mask (as the reference passes to ResMap). Post-processing as the reference: the
unresolved voxels take the mean of the resolved ones, the volume is smoothed by a Gaussian of
σ = 1.5 voxels, and the sample is the smoothed values at the resolved voxels.

Outputs: ``maps/local_resolution_resmap.mrc`` on the input grid (Å; 0 outside the mask and at
unresolved voxels), metrics ``median_A``, ``p2_5``, ``p25``, ``p50``, ``p75``, ``p97_5`` (Å),
``reported_percentile`` (% of voxels finer than the reported resolution; None without one),
``unresolved_fraction``, ``min_trial_A``, ``max_trial_A``, ``step_A``.
"""
from __future__ import annotations

import sys

import numpy as np
from scipy import ndimage

from cryovalid.errors import CannotMeasure, NotApplicable
from cryovalid.items.base import Fact, Volume, new_result
from cryovalid.items.percentiles import percentile_table, record
from cryovalid.kernels import resmap as K

ID = "1.d"
LEVEL = "1"
REQUIRES = ("half_maps",)  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "Local resolution (ResMap)"
SECTION = "Level 1 analysis"

P_VALUE = 0.05  # ResMap's default FDR level
RES_STEP_A = 0.25  # trial step (Å; ResMap's default is 1.0, its smallest allowed 0.25)
MAX_RES_A = 20.0  # coarsest trial (Å); ResMap's default stops at 4·Ts (see METHOD_NOTE)
BAND = (0.6, 0.9, 1.05, 1.35)  # band-pass at trial r: rise 0.6→0.9/r, fall 1.05→1.35/r
SAMPLES_PER_RESOLUTION = 2.7  # working grid ≈ r/2.7 Å (Nyquist 1.35/r)
LOCAL_NOISE_VOXELS = 2.0  # local noise level: Gaussian of 2 working voxels (≈ 0.8 r)
SMOOTH_SIGMA_VOXELS = 1.5  # the reference's Gaussian post-filter
MIN_RESOLVED_FRACTION = 0.01  # fewer resolved mask voxels than this: nothing confident
HOMOGENEITY_EPS_A = 0.01  # |P97.5 - P2.5| below this: output suspiciously uniform
LOW_PERCENTILE = 0.1  # % of voxels finer than R below this: R is too optimistic

WARN_HOMOGENEOUS = ("The local resolutions are all practically the same (2.5 and 97.5 "
                    "percentiles within {eps:g} Å); the measurement may have gone wrong.")
WARN_TOO_FINE = ("The reported resolution, {r:.2f} Å, is particularly high with respect to the "
                 "local resolution distribution: it occupies the {below:.2f} percentile.")

EXPLANATION = (
    "ResMap (Kucukelbir, Sigworth & Tagare 2014) asks, voxel by voxel, whether the map holds "
    "detail at a given scale: around each voxel it fits a constant plus a set of wave-like "
    "(steerable, Gaussian-windowed) functions of that scale, and tests with a likelihood-ratio "
    "test whether the wave-like terms explain significantly more than noise would. The noise "
    "is taken from the difference of the two half maps. Scales from twice the voxel size "
    "upwards are tried in turn; a voxel's local resolution is the finest scale at which the "
    f"test succeeds, with the false discovery rate over the mask controlled at {P_VALUE:g}. The "
    "reported resolution should fall within the distribution of local resolutions: a value "
    "finer than almost every local value suggests that it is optimistic.")

CRITERIA = (
    f"OK if at least {LOW_PERCENTILE:g} % of the voxels in the mask have a local resolution "
    f"finer than the reported resolution, and the local resolutions are not all the same "
    f"(the 2.5 and 97.5 percentiles differ by at least {HOMOGENEITY_EPS_A:g} Å).")

METHOD_NOTE = (
    "cryovalid reimplements ResMap's split-volume test rather than running ResMap 1.1. "
    "Differences: (1) each trial resolution r is tested on the half maps band-passed to "
    f"{BAND[1]:g}–{BAND[2]:g}/r (raised-cosine edges from {BAND[0]:g} to {BAND[3]:g}/r) and "
    f"resampled to about r/{SAMPLES_PER_RESOLUTION:g} Å; ResMap tests the unfiltered map "
    "against a constant, so the smooth part of strong density also passes its test at fine "
    "trial resolutions (on simulated 4 Å half maps a quarter of the voxels came out at "
    "2.2–2.7 Å); "
    "(2) the noise is measured on the half-map difference inside the mask as the full "
    "covariance of the 16 model terms (exact for coloured noise; ResMap pre-whitens and "
    "estimates one variance) and the statistic is the terms' Mahalanobis norm under that "
    "covariance (χ² with 16 degrees of freedom under the null hypothesis) instead of ResMap's "
    "unweighted drop of the residual sum of squares: after the band-pass the terms' noise is "
    "strongly correlated, and the unweighted sum, dominated by the noisiest terms, came out "
    "5–10 % coarser on simulated half maps; each voxel is also "
    f"compared with the noise level of its own neighbourhood (Gaussian of {LOCAL_NOISE_VOXELS:g} "
    "working voxels); (3) tail "
    "probabilities by a saddlepoint approximation instead of Ruben's series to 1e-5 absolute "
    "accuracy on the eigenvalues above 0.1 × the largest; (4) the window weight is "
    "exp(-|u|²/2) as ResMap's code is written (its Python 2 integer division computes "
    "exp(-|u|²)); (5) trial resolutions from 2.2 voxels in steps of "
    f"{RES_STEP_A:g} Å up to {MAX_RES_A:g} Å (ResMap by default: steps of 1 Å and stop at "
    "4 voxels, so that a 1 Å-voxel map is never tested beyond 4.2 Å), without ResMap's early "
    "stopping rule; (6) no 9-voxel border excluded and no low-pass test/downsampling of the "
    "input. On simulated half maps the median comes out about 10–15 % coarser than the "
    "FSC = 0.143 resolution: a local test needs more signal than a whole Fourier shell.")


def run(ctx):
    res = new_result(sys.modules[__name__])
    h1, h2 = ctx.half_maps
    ts = float(ctx.map.voxel_size)
    if np.array_equal(h1.data, h2.data):
        raise CannotMeasure("the two half maps are identical, so their difference holds no "
                            "noise to test against")
    for h in (h1, h2):
        if not np.all(np.isfinite(h.data)):
            raise CannotMeasure("a half map holds non-finite values")
    mask = ctx.map.hard_mask
    if not mask.any():
        raise NotApplicable("the mask is empty at this threshold")
    a = h1.data.astype(np.float64)
    b = h2.data.astype(np.float64)
    # the test does not depend on the maps' units: bring them to O(1) (the noise's RMS inside
    # the mask) so that squares stay finite in float32 for maps in any units
    noise = 0.5 * (a - b)
    unit = float(np.sqrt(np.mean(noise[mask] ** 2)))
    if not np.isfinite(unit) or unit <= 0:
        raise CannotMeasure("the two half maps do not differ inside the mask, so there is no "
                            "noise to test against")
    mean = (0.5 / unit * (a + b)).astype(np.float32)
    noise = (noise / unit).astype(np.float32)
    del a, b
    max_res = min(MAX_RES_A, 0.25 * min(n * ts for n in ctx.map.shape))
    trials = K.trial_resolutions(ts, max(max_res, K.MIN_RES_FACTOR * ts), RES_STEP_A)
    out = K.resmap_local_resolution(mean, noise, mask, ts, trials, alpha=P_VALUE, band=BAND,
                                    samples=SAMPLES_PER_RESOLUTION,
                                    local_noise_voxels=LOCAL_NOISE_VOXELS, whiten=True)
    del mean, noise
    idx = np.flatnonzero(mask)
    resolved = out.values > 0
    frac = float(resolved.mean())
    if frac < MIN_RESOLVED_FRACTION:
        raise CannotMeasure(
            f"only {100 * frac:.2f} % of the mask voxels (fewer than "
            f"{100 * MIN_RESOLVED_FRACTION:g} %) showed signal above the half-map noise at any "
            f"trial resolution from {trials[0]:g} to {out.resolutions[-1]:g} Å, so there is no "
            f"confident local resolution")

    # the reference's post-processing: unresolved → mean of resolved, Gaussian σ = 1.5 voxels
    raw = np.full(ctx.map.shape, np.float32(out.values[resolved].mean()), dtype=np.float32)
    raw.ravel()[idx[resolved]] = out.values[resolved]
    smooth = ndimage.gaussian_filter(raw, SMOOTH_SIGMA_VOXELS, mode="nearest")
    del raw
    good = idx[resolved]
    vals = smooth.ravel()[good].astype(np.float32)
    vol = np.zeros(ctx.map.shape, dtype=np.float32)
    vol.ravel()[good] = vals
    del smooth
    res.artefacts.append(Volume("maps/local_resolution_resmap.mrc", vol, ts, ctx.map.origin))

    table, p = percentile_table("Local resolution percentiles (ResMap)", vals,
                                "Resolution (Å)", "{:.2f}")
    median = float(p[2])
    r = ctx.resolution
    below = None if r is None else 100.0 * float(np.mean(vals < r))
    res.metrics["median_A"] = round(median, 3)
    record(res.metrics, p)
    res.metrics["reported_percentile"] = None if below is None else round(below, 3)
    res.metrics["unresolved_fraction"] = round(1.0 - frac, 4)
    res.metrics["min_trial_A"] = float(trials[0])
    res.metrics["max_trial_A"] = float(out.resolutions[-1])
    res.metrics["step_A"] = RES_STEP_A
    res.tables.append(table)
    res.facts += [
        Fact("Median local resolution (ResMap)", median, "Å", "{:.2f}"),
        Fact("Trial resolutions", f"{trials[0]:g} Å to {out.resolutions[-1]:g} Å in steps of "
             f"{RES_STEP_A:g} Å ({len(out.resolutions)} tested)", "", "{}"),
        Fact("End of the scan", out.stop_reason, "", "{}"),
        Fact("FDR level (Benjamini–Yekutieli)", P_VALUE, "", "{:g}"),
        Fact("Mask voxels never significant (left out)", 100.0 * (1.0 - frac), "%", "{:.1f}"),
    ]
    if below is not None:
        res.facts.insert(1, Fact("Reported resolution is at the percentile", below, "%",
                                 "{:.1f}"))
    res.notes.append(METHOD_NOTE)
    res.resolution_estimates.append({"method": "ResMap median (1.d)",
                                     "resolution_A": round(median, 3)})
    res.data.update(values=vals, volume=vol, p2_5=float(p[0]), p97_5=float(p[4]),
                    trials=list(out.resolutions), assigned=list(out.assigned))

    if abs(p[4] - p[0]) < HOMOGENEITY_EPS_A:
        res.warn("homogeneous", WARN_HOMOGENEOUS, eps=HOMOGENEITY_EPS_A)
    if below is not None and below < LOW_PERCENTILE:
        res.warn("reported_too_fine", WARN_TOO_FINE, r=float(r), below=float(below))
    return res.finish()
