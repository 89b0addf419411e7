"""Statistics of correlated map noise: how many independent samples a set of voxels holds.

Neighbouring voxels of a cryo-EM map are correlated (the map is band-limited, then filtered and
sharpened), so N background voxels carry far fewer than N independent samples. For a stationary
process the variance of the mean of N voxels is (σ²/N) Σ_k ρ(k), the sum of the autocorrelation
coefficients over all lags k (e.g. Priestley 1981, *Spectral analysis and time series*, §5.3).
We call V_c = Σ_k ρ(k) the correlation volume (voxels per independent sample) and
N_eff = N / V_c the effective number of samples.

ρ is measured on the voxels themselves: the masked, mean-removed values x·M and the mask M are
autocorrelated with FFTs, ρ(k) = (x·M ⋆ x·M)(k) / ((M ⋆ M)(k) · σ²), which counts only pairs that
are both in the set. The sum runs over lags up to the first zero of the radially averaged ρ (at
most ``MAX_LAG`` voxels): summing the positive core only is conservative (it never makes N_eff
larger than the full sum would) and ignores the noisy far tail.
"""
from __future__ import annotations

import numpy as np

from cryovalid.kernels import fourier

MAX_LAG = 16  # voxels
CROP = 128  # the correlation is measured in a central block of at most CROP³ voxels


def correlation_volume(vol: np.ndarray, mask: np.ndarray, mean: float | None = None) -> float:
    """V_c = Σ ρ(k) over lags up to the first zero of ρ, in voxels (≥ 1), for the voxels of
    ``vol`` where ``mask`` is True. ``mean``: the set's mean (computed if None)."""
    sl = tuple(slice(max(0, (n - CROP) // 2), max(0, (n - CROP) // 2) + min(n, CROP))
               for n in vol.shape)
    m = mask[sl].astype(np.float32)
    if m.sum() < 64:
        return 1.0
    v = vol[sl].astype(np.float32)
    if mean is None:
        mean = float(v[mask[sl]].mean())
    x = (v - np.float32(mean)) * m
    fx, fm = fourier.rfft(x), fourier.rfft(m)
    shape = x.shape
    acf_x = fourier.irfft(fx * fx.conj(), shape)
    acf_m = fourier.irfft(fm * fm.conj(), shape)
    pairs = np.maximum(acf_m, 0.0)
    var = acf_x.flat[0] / max(pairs.flat[0], 1.0)
    if var <= 0:
        return 1.0
    # signed lags (wrap-around) and their radius
    grids = np.meshgrid(*[np.fft.fftfreq(n, 1.0 / n) for n in shape], indexing="ij",
                        sparse=True)
    r = np.sqrt(sum(g.astype(np.float32) ** 2 for g in grids))
    near = (r <= MAX_LAG) & (pairs >= 0.1 * pairs.flat[0])
    rho = np.zeros_like(acf_x)
    rho[near] = acf_x[near] / (pairs[near] * var)
    rbin = np.rint(r[near]).astype(int)
    radial = np.bincount(rbin, weights=rho[near]) / np.maximum(np.bincount(rbin), 1)
    zero = np.flatnonzero(radial <= 0)
    cut = int(zero[0]) - 1 if zero.size else radial.size - 1
    vc = float(rho[near][rbin <= cut].sum())
    return max(1.0, vc)
