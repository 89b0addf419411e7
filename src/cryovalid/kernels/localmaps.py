"""Local maps from the monogenic amplitude: local resolution, local B-factor, local occupancy.

All three read band amplitudes from a :class:`~cryovalid.kernels.filterbank.FilterBank` and work
on whole volumes at once (no loop over voxels; one loop over frequency bands).

* :func:`monogenic_local_resolution` — a single-map version of MonoRes (Vilas et al. 2018,
  Structure 26:337): sweep from low to high resolution; at each step compare the local amplitude
  of the map in a band starting at that frequency with the amplitude of noise (outside the
  molecule) in the same band; a voxel keeps the finest resolution at which it is significant,
  and drops out after two consecutive failures.
* :func:`local_bfactor` — LocBFactor (Kaur et al. 2021, Nat Commun 12:1240): a per-voxel Guinier
  fit of the noise-weighted log amplitude against s².
* :func:`local_occupancy` — LocOccupancy (same paper): the fraction of bands at which a voxel's
  amplitude reaches the lower quartile of the molecule's amplitudes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from cryovalid.kernels.filterbank import (FilterBank, gaussian_shell, raised_cosine_band,
                                          raised_cosine_lowpass)

# ---- MonoRes parameters (ours, following Xmipp's defaults) ------------------------------------
LOW_RES_A = 15.0  # coarsest resolution scanned (Å)
RES_STEP_A = 0.25  # resolution step (Å); steps in the same Fourier shell are merged
SIGNIFICANCE = 0.95  # quantile of the noise amplitude a voxel must exceed
BAND_FLAT_TO = 1.1  # ... flat to 1.1 f ...
BAND_ZERO_AT = 1.3  # ... and falls to 0 at 1.3 f
SMOOTH_TAPER = 0.01  # width of the amplitude low-pass taper, cycles/voxel (MonoRes: 0.01)
STOP_FRACTION = 0.025  # stop when fewer than 2.5 % of the mask voxels are still being refined
MAX_NOISE_SAMPLES = 200_000  # random noise voxels used (fixed seed): ample for a 0.95 quantile

# ---- LocBFactor / LocOccupancy parameters (the reference's) -----------------------------------
BFACTOR_MIN_RES_A = 15.0
BFACTOR_POINTS = 10
BFACTOR_NOISE_QUANTILE = 0.9
OCCUPANCY_QUANTILE = 0.25
SHELL_WIDTH_BINS = 4.8  # Gaussian shell sigma, in units of 1/L (L = box length)


def inscribed_ellipsoid(shape) -> np.ndarray:
    """Boolean ellipsoid inscribed in the box (the sphere of a cubic box), centred at n/2."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    r2 = sum(((g - n / 2.0) / (n / 2.0)) ** 2 for g, n in zip(grids, shape))
    return r2 < 1.0


def flattened_background(data: np.ndarray, outside: np.ndarray, seed: int = 0,
                         min_fraction: float = 0.01):
    """Voxels of ``outside`` that hold one exactly repeated value (a map masked or cropped to a
    zone by its depositor is often exactly 0 away from the molecule). Returns (boolean volume,
    the value or None). A value counts when it fills more than ``min_fraction`` of ``outside``."""
    idx = np.flatnonzero(outside)
    if idx.size == 0:
        return np.zeros(data.shape, dtype=bool), None
    rng = np.random.default_rng(seed)
    sample = data.ravel()[rng.choice(idx, size=min(idx.size, 200_000), replace=False)]
    values, counts = np.unique(sample, return_counts=True)
    k = int(np.argmax(counts))
    if counts[k] <= min_fraction * sample.size:
        return np.zeros(data.shape, dtype=bool), None
    value = values[k]
    return (data == value) & outside, float(value) + 0.0  # + 0.0: no "-0" in messages


@dataclass
class LocalResolution:
    """Result of :func:`monogenic_local_resolution`.

    values : float32 local resolution (Å) of each mask voxel (flat order of ``mask``), 0 where
        the map was never significant above noise, not even at the coarsest step
    resolutions : the resolutions scanned (Å), coarse to fine
    thresholds : noise amplitude threshold at each scanned step
    stop_reason : why the sweep ended
    """

    values: np.ndarray
    resolutions: list = field(default_factory=list)
    thresholds: list = field(default_factory=list)
    active_fraction: list = field(default_factory=list)
    stop_reason: str = ""


def resolution_steps(bank: FilterBank, low_res: float = LOW_RES_A, step: float = RES_STEP_A):
    """Resolutions (Å) scanned, from ``low_res`` to Nyquist in steps of ``step`` Å, each moved to
    the nearest Fourier shell (frequency k/L, L = the longest box side); repeats are merged as in
    Xmipp's MonoRes. Returns (resolutions, frequencies) coarse to fine."""
    L = bank.shell_length
    nyquist_res = 1.0 / bank.nyquist
    res, freqs, last_k = [], [], -1
    n_steps = int(math.floor((low_res - nyquist_res) / step + 1e-9)) + 1
    for j in range(max(n_steps, 1)):
        d = low_res - j * step
        k = max(1, int(round(L / d)))
        if k == last_k:
            continue
        if L / k < nyquist_res - 1e-6:
            break
        last_k = k
        res.append(L / k)
        freqs.append(k / L)
    return res, freqs


def monogenic_local_resolution(bank: FilterBank, mask: np.ndarray, noise: np.ndarray,
                               low_res: float = LOW_RES_A, step: float = RES_STEP_A,
                               significance: float = SIGNIFICANCE, seed: int = 0,
                               max_noise_samples: int = MAX_NOISE_SAMPLES) -> LocalResolution:
    """Local resolution of a single map by the monogenic amplitude (MonoRes-style sweep).

    Parameters
    ----------
    bank : filter bank of the map (its own grid)
    mask : boolean volume, the voxels to measure (the molecule)
    noise : boolean volume, voxels holding noise only (outside the molecule)
    low_res : coarsest resolution scanned (Å); the sweep goes to Nyquist (2·Ts)
    step : resolution step (Å)
    significance : a voxel is resolved at a frequency when its amplitude exceeds this quantile of
        the noise amplitudes at that frequency

    Method (per step, resolution d = 1/f, previous step frequency f_prev)
    -------------------------------------------------------------------
    1. Band: raised-cosine rise from f_prev to f, flat to 1.1 f, fall to 0 at 1.3 f. (MonoRes
       uses a high-pass from f; we close the band at 1.3 f so that it can be computed on a
       cropped grid, and so that the noise of still higher frequencies does not dilute the
       test. Either way the band holds only frequencies at or beyond the one being tested.)
    2. Local amplitude a = |monogenic signal| of the band; a² is low-passed at f (taper 0.01
       cycles/voxel), as MonoRes smooths its amplitude, and sampled at the mask and noise
       voxels (:meth:`FilterBank.amplitude_at`).
    3. Threshold t = the ``significance`` quantile of a over the noise voxels.
    4. Stop before updating if fewer than 2.5 % of the mask voxels are still active, or if the
       mean active amplitude fell below 0.001 of its maximum over the sweep.
    5. Active voxels with a > t take resolution d; others count a failure, and after two
       consecutive failures they stop (keeping the last resolution at which they passed).
    6. Stop after updating if the mean amplitude of the active voxels is not significantly above
       the noise mean (one-sided z-test at ``significance``), or at Nyquist.
    """
    mask_idx = np.flatnonzero(mask)
    noise_idx = np.flatnonzero(noise)
    if mask_idx.size == 0:
        raise ValueError("the mask is empty")
    if noise_idx.size < 100:
        raise ValueError(f"only {noise_idx.size} noise voxels")
    rng = np.random.default_rng(seed)
    if noise_idx.size > max_noise_samples:
        noise_idx = np.sort(rng.choice(noise_idx, size=max_noise_samples, replace=False))

    n_mask = mask_idx.size
    points = bank.sample_points(np.concatenate([mask_idx, noise_idx]))
    values = np.zeros(n_mask, dtype=np.float32)
    fails = np.zeros(n_mask, dtype=np.int8)
    active = np.ones(n_mask, dtype=bool)
    z_crit = float(stats.norm.ppf(significance))
    taper = SMOOTH_TAPER / min(bank.spacing)
    out = LocalResolution(values=values)
    resolutions, freqs = resolution_steps(bank, low_res, step)
    max_mean = -np.inf
    f_prev = None
    for d, f in zip(resolutions, freqs):
        n_active = int(active.sum())
        if n_active < STOP_FRACTION * n_mask:
            out.stop_reason = (f"fewer than {100 * STOP_FRACTION:g} % of the mask voxels were "
                               f"still resolved at {d:.2f} Å")
            break
        rise_start = f_prev if f_prev is not None else max(f - 1.0 / bank.shell_length, 0.0)
        f_prev = f
        band = raised_cosine_band(rise_start, f, BAND_FLAT_TO * f, BAND_ZERO_AT * f)
        amp = bank.amplitude_at(band, raised_cosine_lowpass(f, taper), points)
        a_mask = amp[:n_mask]
        a_noise = amp[n_mask:]
        del amp
        a_act = a_mask[active]
        mean_s = float(a_act.mean())
        max_mean = max(max_mean, mean_s)
        if mean_s < 1e-3 * max_mean:
            out.stop_reason = f"the signal vanished at {d:.2f} Å"
            break
        thr = float(np.quantile(a_noise, significance))
        out.resolutions.append(d)
        out.thresholds.append(thr)
        out.active_fraction.append(n_active / n_mask)
        passed = a_mask > thr
        up = active & passed
        values[up] = d
        fails[up] = 0
        down = active & ~passed
        fails[down] += 1
        active &= ~(down & (fails >= 2))
        mean_n = float(a_noise.mean())
        var_s = float(a_act.var())
        var_n = float(a_noise.var())
        z = (mean_s - mean_n) / math.sqrt(var_s / a_act.size + var_n / a_noise.size + 1e-30)
        if z < z_crit:
            out.stop_reason = (f"at {d:.2f} Å the mean amplitude in the mask was no longer "
                               f"significantly above the noise")
            break
    else:
        out.stop_reason = "the sweep reached Nyquist"
    return out


def local_bfactor(bank: FilterBank, mask: np.ndarray, max_res: float,
                  min_res: float = BFACTOR_MIN_RES_A, num_points: int = BFACTOR_POINTS,
                  noise_quantile: float = BFACTOR_NOISE_QUANTILE,
                  width_bins: float = SHELL_WIDTH_BINS):
    """LocBFactor (Kaur et al. 2021): local B-factor map in Å², the reference's sign.

    For ``num_points`` frequencies f linearly spaced from 1/min_res to 1/max_res, the map is
    filtered by a Gaussian shell centred at f with σ = width_bins / L (L = box length), divided
    by the shell's sum over the spectrum (as published), and its local amplitude m computed with
    the Riesz transform. q = the ``noise_quantile`` quantile of m over the background (outside
    ``mask``, inside the inscribed sphere/ellipsoid). Each voxel's y = ln(m²/(m + q)) is fitted
    by least squares against f²; B = 4 × slope (negative for decaying amplitudes).

    Returns (B map float32 on the bank's grid, dict with the frequencies, noise levels and
    ``flat_spectrum_b``: the B this procedure gives a map with a flat amplitude spectrum, i.e.
    the part of every local B that comes from the shell normalisation alone, in Å²).
    """
    background = ~mask & inscribed_ellipsoid(bank.shape)
    if not background.any():
        raise ValueError("no background voxels to estimate the noise")
    sigma = width_bins / bank.shell_length
    freqs = np.linspace(1.0 / min_res, 1.0 / max_res, num_points)
    x = freqs ** 2
    xc = x - x.mean()
    denom = float(np.sum(xc * xc))
    slope = np.zeros(bank.shape, dtype=np.float32)
    noise_levels = []
    offset = 0.0
    tiny = np.float32(np.finfo(np.float32).tiny)
    for f, w in zip(freqs, xc):
        shell = gaussian_shell(f, sigma)
        h = bank.transfer_values(shell)
        # what a flat (white) spectrum would read: rms amplitude ∝ sqrt(ΣH²)/ΣH
        offset += w * 0.5 * math.log(bank.hermitian_sum(h * h) / bank.hermitian_sum(h) ** 2)
        del h
        m = bank.amplitude(shell, normalise=True, grid=bank.shape)
        q = float(np.quantile(m[background], noise_quantile))
        noise_levels.append(q)
        y = m * m
        y /= m + np.float32(q)
        np.maximum(y, tiny, out=y)
        np.log(y, out=y)
        y *= np.float32(w / denom)
        slope += y
        del m, y
    slope *= np.float32(4.0)
    return slope, {"frequencies": freqs, "noise": noise_levels, "sigma": sigma,
                   "flat_spectrum_b": 4.0 * offset / denom}


def occupancy_frequencies(bank: FilterBank, max_res: float, min_res: float = BFACTOR_MIN_RES_A,
                          width_bins: float = SHELL_WIDTH_BINS):
    """The reference's LocOccupancy frequencies: n = max(1, int((1/max_res − 1/min_res)/σ))
    points from 1/min_res to 1/max_res, σ = width_bins / L."""
    sigma = width_bins / bank.shell_length
    f_lo, f_hi = 1.0 / min_res, 1.0 / max_res
    n = max(1, int((f_hi - f_lo) / sigma))
    return np.linspace(f_lo, f_hi, n), sigma


def local_occupancy(bank: FilterBank, mask: np.ndarray, max_res: float,
                    min_res: float = BFACTOR_MIN_RES_A, quantile: float = OCCUPANCY_QUANTILE,
                    width_bins: float = SHELL_WIDTH_BINS):
    """LocOccupancy (Kaur et al. 2021): fraction of bands (Gaussian shells as in
    :func:`local_bfactor`) at which a voxel's local amplitude is at least the ``quantile``
    quantile of the amplitudes inside ``mask``. Values in [0, 1].

    Returns (occupancy map float32 on the bank's grid, dict with the frequencies)."""
    if not mask.any():
        raise ValueError("the mask is empty")
    freqs, sigma = occupancy_frequencies(bank, max_res, min_res, width_bins)
    count = np.zeros(bank.shape, dtype=np.float32)
    levels = []
    for f in freqs:
        m = bank.amplitude(gaussian_shell(f, sigma), normalise=True, grid=bank.shape)
        q = float(np.quantile(m[mask], quantile))
        levels.append(q)
        count += m >= np.float32(q)
        del m
    count /= np.float32(len(freqs))
    return count, {"frequencies": freqs, "levels": levels, "sigma": sigma}
