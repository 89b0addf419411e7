"""Local maps from the monogenic amplitude: local resolution, local B-factor, local occupancy.

All three read band amplitudes from a :class:`~cryovalid.kernels.filterbank.FilterBank` and work
on whole volumes at once (no loop over voxels; one loop over frequency bands).

* :func:`monogenic_local_resolution` — a single-map version of MonoRes (Vilas et al. 2018,
  Structure 26:337): sweep from low to high resolution; at each step compare the local amplitude
  of the map in a band starting at that frequency with the amplitude of noise (outside the
  molecule) in the same band; a voxel keeps the finest resolution at which it is significant
  (interpolated between steps), and drops out after two consecutive failures; the sweep stops
  at the map's information limit (band power in the mask no more than in the noise, or the
  noise's band power collapsed: a low-passed map).
* :func:`local_bfactor` — LocBFactor (Kaur et al. 2021, Nat Commun 12:1240): a per-voxel Guinier
  fit of the noise-weighted log amplitude against s².
* :func:`local_occupancy` — LocOccupancy (same paper): the fraction of bands at which a voxel's
  amplitude reaches the lower quartile of the molecule's amplitudes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from cryovalid.kernels.filterbank import (FilterBank, SamplePoints, gaussian_shell,
                                          raised_cosine_band, raised_cosine_lowpass)
from cryovalid.kernels.threshold import constant_region

# ---- MonoRes parameters (ours, following Xmipp's defaults) ------------------------------------
LOW_RES_A = 15.0  # coarsest resolution scanned (Å)
RES_STEP_A = 0.25  # resolution step (Å); steps in the same Fourier shell are merged
SIGNIFICANCE = 0.95  # quantile of the noise amplitude a voxel must exceed
BAND_FLAT_TO = 1.1  # ... flat to 1.1 f ...
BAND_ZERO_AT = 1.3  # ... and falls to 0 at 1.3 f
SMOOTH_TAPER = 0.01  # width of the amplitude low-pass taper, cycles/voxel (MonoRes: 0.01)
STOP_FRACTION = 0.025  # stop when fewer than 2.5 % of the mask voxels are still being refined
MIN_POWER_RATIO = 1.25  # stop when the mask holds < 1.25 × the noise's band power (ours)
NOISE_DROP = 0.01  # ... or the noise's band power fell below 1 % of its maximum (a low-pass)
MAX_NOISE_SAMPLES = 200_000  # random noise voxels used (fixed seed): ample for a 0.95 quantile
MAX_CORE_SAMPLES = 100_000  # random core voxels for the mean band power (fixed seed)

# ---- LocBFactor / LocOccupancy parameters (the reference's) -----------------------------------
BFACTOR_MIN_RES_A = 15.0
BFACTOR_POINTS = 10
BFACTOR_NOISE_QUANTILE = 0.9
OCCUPANCY_QUANTILE = 0.25
SHELL_WIDTH_BINS = 4.8  # Gaussian shell sigma, in units of 1/L (L = box length)


def inscribed_ellipsoid(shape) -> np.ndarray:
    """Boolean ellipsoid inscribed in the box (the sphere of a cubic box), centred at n/2."""
    z, y, x = (((np.arange(n, dtype=np.float32) - np.float32(n / 2.0)) / np.float32(n / 2.0))
               ** 2 for n in shape)
    r2 = z[:, None, None] + y[None, :, None]  # (nz, ny, 1), then one full-size float32 sum
    return (r2 + x[None, None, :]) < 1.0


def flattened_background(data: np.ndarray, outside: np.ndarray):
    """Voxels of ``outside`` that hold one exactly repeated value (a map masked or cropped to a
    zone by its depositor is often exactly 0 away from the molecule): the constant region of
    :func:`cryovalid.kernels.threshold.constant_region` within ``outside``. Returns (boolean
    volume, the value or None)."""
    value, _ = constant_region(data, outside)
    if value is None:
        return np.zeros(data.shape, dtype=bool), None
    return (data == value) & outside, value


def robust_centre_scale(data: np.ndarray, max_samples: int = 2_000_000):
    """(centre, scale) of a map for normalisation: the median and 1.4826 × the median absolute
    deviation of a regular subsample (float64), the standard deviation when the MAD is 0 (a map
    mostly zeroed by its depositor). Items divide the bands by ``scale`` so that amplitudes are
    O(1) whatever the map's units (a map × 1e30 would overflow float32 when squared, × 1e-30
    underflow). Raises ValueError when the map is not finite or constant."""
    v = np.asarray(data).ravel()
    if v.size > max_samples:
        v = v[:: v.size // max_samples + 1]
    v = v.astype(np.float64)
    if not np.all(np.isfinite(v)):
        raise ValueError("the map holds values that are not finite (NaN or infinity)")
    centre = float(np.median(v))
    scale = 1.4826 * float(np.median(np.abs(v - centre)))
    if not scale > 0:
        scale = float(v.std())
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError("the map is constant")
    return centre, scale


def require_finite(values: np.ndarray, what: str):
    """Raise ValueError when ``values`` hold NaN or infinity: such a result is not a
    measurement, so the item reports that it could not be measured (never a verdict)."""
    if not np.all(np.isfinite(values)):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise ValueError(f"{what}: {bad} of {np.size(values)} values are not finite")


@dataclass
class LocalResolution:
    """Result of :func:`monogenic_local_resolution`.

    values : float32 local resolution (Å) of each mask voxel (flat order of ``mask``), 0 where
        the map was never significant above noise, not even at the coarsest step; between two
        scanned steps a value is interpolated (see the function)
    resolutions : the resolutions scanned and used (Å), coarse to fine
    power_ratio : mean squared band amplitude over the mask / the same over the noise, per step
        (including the step that stopped the sweep)
    stop_reason : why the sweep ended
    limit_A : the finest resolution the sweep accepted (the map's information limit as this
        method sees it: the sweep stopped at the next step), Å
    """

    values: np.ndarray
    resolutions: list = field(default_factory=list)
    power_ratio: list = field(default_factory=list)
    noise_power: list = field(default_factory=list)
    stop_reason: str = ""
    limit_A: float = float("nan")


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


def crossing_resolution(f_pass, r_pass, f_fail, r_fail):
    """Resolution (Å) where the amplitude/threshold ratio crosses 1, interpolating ln(ratio)
    linearly in frequency between the last step a voxel passed (f_pass, ratio r_pass > 1) and the
    step it then failed (f_fail, r_fail <= 1). Vectorised; float32."""
    lp = np.log(np.maximum(r_pass, 1.0 + 1e-6))
    lf = np.log(np.maximum(r_fail, 1e-6))
    t = lp / np.maximum(lp - np.minimum(lf, 0.0), 1e-12)
    f = f_pass + np.clip(t, 0.0, 1.0) * (f_fail - f_pass)
    return (1.0 / f).astype(np.float32)


def monogenic_local_resolution(bank: FilterBank, mask: np.ndarray, noise: np.ndarray,
                               low_res: float = LOW_RES_A, step: float = RES_STEP_A,
                               significance: float = SIGNIFICANCE, seed: int = 0,
                               max_noise_samples: int = MAX_NOISE_SAMPLES,
                               min_power_ratio: float = MIN_POWER_RATIO,
                               core: np.ndarray | None = None) -> LocalResolution:
    """Local resolution of a single map by the monogenic amplitude (MonoRes-style sweep).

    Parameters
    ----------
    bank : filter bank of the map (its own grid)
    mask : boolean volume, the voxels to measure (the molecule)
    noise : boolean volume, voxels holding noise only (outside the molecule)
    low_res : coarsest resolution scanned (Å); the sweep goes to Nyquist (2·Ts) at most
    step : resolution step (Å)
    significance : a voxel is resolved at a frequency when its amplitude exceeds this quantile of
        the noise amplitudes at that frequency
    min_power_ratio : the sweep stops at the first step where the mean squared amplitude over
        the mask (its ``core`` voxels) is below this multiple of the mean over the noise voxels
    core : optional boolean volume; the mask voxels in it are those whose band power is
        compared with the noise's (default: all the mask)

    Method (per step, resolution d = 1/f, previous step frequency f_prev)
    -------------------------------------------------------------------
    1. Band: raised-cosine rise from f_prev to f, flat to 1.1 f, fall to 0 at 1.3 f. (MonoRes
       uses a high-pass from f; we close the band at 1.3 f so that it can be computed on a
       cropped grid, and so that the noise of still higher frequencies does not dilute the
       test. Either way the band holds only frequencies at or beyond the one being tested.)
    2. Local amplitude a = |monogenic signal| of the band; a² is low-passed at f (taper 0.01
       cycles/voxel), as MonoRes smooths its amplitude, and sampled at the mask and noise
       voxels (:meth:`FilterBank.amplitude_at`).
    3. Information limit: stop (before updating) at the first step where mean(a²) over the mask
       is below ``min_power_ratio`` × mean(a²) over the noise, i.e. where the band holds no more
       power in the molecule than in the solvent (the map's spectrum has reached its noise
       floor, or the map was low-pass filtered there). This replaces MonoRes's z-test of the
       mean amplitude, which with 10⁵–10⁶ voxels stays "significant" for differences far too
       small to matter (on EMD-11007, low-pass filtered at ≈ 2.9 Å, the z-test let the sweep go
       on to Nyquist on interpolation residue 10⁴ times weaker than the signal). Being the first
       crossing from low frequency, it is not fooled by such residue beyond the cut-off.
    4. Threshold t = the ``significance`` quantile of a over the noise voxels.
    5. Also stop before updating if fewer than 2.5 % of the mask voxels are still active.
    6. Active voxels with a > t take resolution d; others count a failure, and after two
       consecutive failures they stop. A voxel's value is then interpolated between the last
       step it passed (f_k, ratio ρ_k = a/t > 1) and the step it failed just after (f_k+1,
       ρ_k+1 <= 1): ln ρ linear in f, value = 1/f where ρ = 1 (:func:`crossing_resolution`).
       A voxel that still passed at the last accepted step is interpolated towards the step
       that stopped the sweep when that stop came from the power ratio (the band is then
       noise-like but measured) and the voxel falls below the threshold there; otherwise (a
       chance pass, or a low-passed map whose band holds nothing) it keeps that step's value.
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
    in_core = np.ones(n_mask, dtype=bool) if core is None else core.ravel()[mask_idx]
    if not in_core.any():
        in_core[:] = True
    # the power ratio is a mean over the core: a fixed random subsample of it is ample, and
    # then only the voxels still active need their amplitude at each step
    core_pos = np.flatnonzero(in_core)
    if core_pos.size > MAX_CORE_SAMPLES:
        core_pos = np.sort(rng.choice(core_pos, size=MAX_CORE_SAMPLES, replace=False))
    mask_points = bank.sample_points(mask_idx)
    fixed_points = bank.sample_points(np.concatenate([mask_idx[core_pos], noise_idx]))
    n_core = core_pos.size
    values = np.zeros(n_mask, dtype=np.float32)
    fails = np.zeros(n_mask, dtype=np.int8)
    active = np.ones(n_mask, dtype=bool)
    # interpolation bookkeeping: ratio and frequency at the last pass and at the first failure
    # after it (fail_f = 0: no failure recorded since the last pass)
    pass_r = np.zeros(n_mask, dtype=np.float32)
    pass_f = np.zeros(n_mask, dtype=np.float32)
    fail_r = np.zeros(n_mask, dtype=np.float32)
    fail_f = np.zeros(n_mask, dtype=np.float32)
    taper = SMOOTH_TAPER / min(bank.spacing)
    out = LocalResolution(values=values)
    resolutions, freqs = resolution_steps(bank, low_res, step)
    f_prev = None
    max_noise = 0.0
    for d, f in zip(resolutions, freqs):
        n_active = int(active.sum())
        if n_active < STOP_FRACTION * n_mask:
            out.stop_reason = (f"fewer than {100 * STOP_FRACTION:g} % of the mask voxels were "
                               f"still resolved at {d:.2f} Å")
            break
        rise_start = f_prev if f_prev is not None else max(f - 1.0 / bank.shell_length, 0.0)
        f_prev = f
        band = raised_cosine_band(rise_start, f, BAND_FLAT_TO * f, BAND_ZERO_AT * f)
        act_pos = np.flatnonzero(active)
        pts = fixed_points if act_pos.size == 0 else SamplePoints(
            np.concatenate([mask_points.flat[act_pos], fixed_points.flat]),
            np.concatenate([mask_points.zyx[:, act_pos], fixed_points.zyx], axis=1))
        amp = bank.amplitude_at(band, raised_cosine_lowpass(f, taper), pts)
        a_mask = np.zeros(n_mask, dtype=np.float32)  # inactive voxels: not needed, 0
        a_mask[act_pos] = amp[: act_pos.size]
        a_core = amp[act_pos.size: act_pos.size + n_core]
        a_noise = amp[act_pos.size + n_core:]
        p_mask = float(np.mean(np.square(a_core, dtype=np.float64)))
        p_noise = float(np.mean(np.square(a_noise, dtype=np.float64)))
        ratio = p_mask / p_noise if p_noise > 0 else math.inf
        out.power_ratio.append(ratio)
        out.noise_power.append(p_noise)
        max_noise = max(max_noise, p_noise)
        if p_noise < NOISE_DROP * max_noise:
            out.stop_reason = (f"at {d:.2f} Å the band held less than {NOISE_DROP:g} of the "
                               f"noise power it held at coarser resolutions: the map was "
                               f"low-pass filtered there, its information limit")
            break
        if not ratio >= min_power_ratio:
            out.stop_reason = (f"at {d:.2f} Å the band held less than {min_power_ratio:g} times "
                               f"as much power in the mask as in the noise ({ratio:.2f}): the "
                               f"map's information limit")
            # the band is noise-like but still measured: voxels that passed at the last
            # accepted step and fall below the noise here are interpolated into the last
            # interval instead of all keeping that step's value
            thr = float(np.quantile(a_noise, significance))
            if thr > 0:
                rho = a_mask / np.float32(thr)
                last = active & (values > 0) & (fail_f == 0) & (rho <= 1.0)
                fail_r[last] = rho[last]
                fail_f[last] = f
            break
        thr = float(np.quantile(a_noise, significance))
        if not thr > 0:
            out.stop_reason = f"the noise amplitude vanished at {d:.2f} Å"
            break
        out.resolutions.append(d)
        rho = a_mask / np.float32(thr)
        del amp
        passed = rho > 1.0
        up = active & passed
        values[up] = d
        pass_r[up] = rho[up]
        pass_f[up] = f
        fail_f[up] = 0.0
        fails[up] = 0
        down = active & ~passed
        first = down & (fails == 0)
        fail_r[first] = rho[first]
        fail_f[first] = f
        fails[down] += 1
        active &= ~(down & (fails >= 2))
    else:
        out.stop_reason = "the sweep reached Nyquist"
    if out.resolutions:
        out.limit_A = float(out.resolutions[-1])
    ok = (values > 0) & (fail_f > 0)
    values[ok] = crossing_resolution(pass_f[ok], pass_r[ok], fail_f[ok], fail_r[ok])
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
