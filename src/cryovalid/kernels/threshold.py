"""Automatic choice of a visualisation threshold when the user gives none.

Method: the solvent dominates a cryo-EM box, so the bulk of the voxel histogram is noise. Its
centre and spread are estimated robustly from the voxels outside a first rough molecule mask
(median and 1.4826 × median absolute deviation, iterated twice so that the molecule does not
inflate them); the threshold is centre + 5 × spread, the level at which Gaussian noise leaves
about 3 voxels in 10 million above it.
"""
from __future__ import annotations

import numpy as np

N_SIGMA = 5.0
METHOD = ("automatic: robust noise level (median and MAD of the solvent voxels) "
          f"+ {N_SIGMA:g} noise standard deviations")


def robust_noise(vol: np.ndarray, iterations: int = 2):
    """(centre, sigma) of the solvent noise by median/MAD, excluding the molecule iteratively."""
    v = np.asarray(vol, dtype=np.float32).ravel()
    if v.size > 2_000_000:  # a regular subsample is enough for two quantiles
        v = v[:: v.size // 2_000_000 + 1]
    sel = v
    for _ in range(iterations + 1):
        centre = float(np.median(sel))
        sigma = 1.4826 * float(np.median(np.abs(sel - centre)))
        if sigma <= 0:
            sigma = float(sel.std()) or 1e-12
        sel = v[v < centre + 3 * sigma]
    return centre, sigma


def auto_threshold(vol: np.ndarray) -> float:
    centre, sigma = robust_noise(vol)
    t = centre + N_SIGMA * sigma
    vmax = float(np.max(vol))
    if t >= vmax:  # a noise-free or tiny map: fall back to half the maximum
        t = 0.5 * (centre + vmax)
    return float(t)
