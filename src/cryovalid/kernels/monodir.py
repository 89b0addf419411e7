"""Half-map monogenic local resolution (1.e, MonoRes with half maps) and directional local
resolution (1.f, MonoDir).

* :func:`halfmap_local_resolution` — MonoRes (Vilas et al. 2018, Structure 26:337) with the
  noise taken from the half maps, as Xmipp's ``--noiseonlyinhalves``: the signal is the mean of
  the two halves, (h1 + h2)/2, the noise their half difference, (h1 − h2)/2, at the same mask
  voxels. The half difference holds exactly the noise of the mean (for halves S + N1, S + N2
  with independent noise of variance σ², both have variance σ²/2; Xmipp divides the difference
  by 2 for this reason; (h1 − h2)/√2 would be the noise of one half, √2 too strong for the
  mean). Bands, steps and interpolation are 0.e's (:mod:`cryovalid.kernels.localmaps`); the
  threshold is local (see :func:`sweep`).
* :func:`directional_local_resolution` — MonoDir (Vilas et al. 2020, Nat Commun 11:55): the
  same sweep with every band restricted to a cone of half-angle ``cone_deg`` around ±n for each
  of N_DIRECTIONS directions n. The local amplitude is the modulus of the analytic signal along
  n, |F⁻¹[2·1(s·n > 0)·W·H·F]| (for a cone this narrow s/|s| ≈ ±n, and the monogenic amplitude
  reduces to it). Its spectrum is confined to one cap-shaped region of frequency space, so it is
  computed demodulated (shifted by a whole number of Fourier bins to the origin: a change of
  phase only, the modulus is exact) on a small grid (:meth:`DirectionalBank.energies`). Per
  voxel and direction the resolution is found as in MonoRes (:func:`sweep`, stopping at the
  first failure); per voxel the best/worst directional resolution are the 5 % / 95 %
  percentiles over directions (Xmipp ``resolution_directional``'s highest/lowest resolution
  maps), the mean their mean (:func:`summarise_directions`).

Smoothing: the squared amplitudes are averaged with real-space Gaussians (positive windows),
not low-passed in Fourier space as MonoRes does: a sharp low-pass rings, and next to a region
whose noise is 1000 times stronger its ringing alone exceeds the quiet region's noise.

Units: frequencies 1/Å, resolutions and lengths Å, angles degrees. Vectorised over voxels (one
Python loop over frequency steps, and over directions in 1.f); float32/complex64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from scipy import ndimage

from cryovalid.kernels import localmaps
from cryovalid.kernels.filterbank import FilterBank, fast_even_size, raised_cosine_band
from cryovalid.kernels.fourier import workers


# ---------------------------------------------------------------------------------------------
# Parameters (ours unless said)
# ---------------------------------------------------------------------------------------------
SIGNIFICANCE = localmaps.SIGNIFICANCE  # 0.95: a voxel must exceed this quantile of the noise
NOISE_WINDOW = 1.0  # local noise power: the geometric mean of the noise's squared amplitude
#                     over a Gaussian window of σ = 1.0 d (d = the step's resolution). A wider
#                     window (1.5 d) let the noise of a much noisier region next to a quiet one
#                     raise the quiet region's thresholds (tests/test_monores_halves)
NOISE_HOLE = 1.0  # ... leaving out the voxel's own neighbourhood (window × (1 − G(1.0 d))): a
#                   voxel's own noise amplitude must not lower its threshold (with the voxel
#                   in its own window pure-noise halves pass 10–13 % of the voxels instead of
#                   5 %; tests/test_monores_halves)
MIN_SIGNAL_RATIO = 1.0  # stop when the mask's band power is no more than the noise's (in units
#                         of the local noise power): no signal left anywhere
MAX_REFERENCE_POINTS = 100_000  # mask voxels (fixed seed) for the noise quantile and the ratio
MAX_DIR_REFERENCE_POINTS = 5_000  # the same per direction and step in 1.f
CONE_DEG = 15.0  # half-angle of each direction's cone (Xmipp resolution_directional: 15°)
CONE_TAPER_DEG = 5.0  # the cone's edge: weight 1 to CONE−TAPER, raised cosine to 0 at CONE+TAPER
N_DIRECTIONS = 48  # directions on the half sphere (Xmipp's fast mode: 47)
SMOOTH_ISO = 0.35  # 1.e: squared amplitude averaged with a Gaussian of σ = 0.35 d (MonoRes:
#                    a low-pass at f)
SMOOTH = 0.8  # 1.f: squared directional amplitude averaged with a Gaussian of σ = 0.8 d
DIR_SPACING = 1.0  # 1.f: the working grid's spacing is at most this × the smoothing σ
DIR_NOISE_WINDOW, DIR_NOISE_HOLE = 2.5, 1.5  # 1.f: the local noise window (σ) and hole, × d:
#   a cone's amplitude is correlated over ~3 d along its direction, so the window must be
#   wider than in 1.e to hold enough independent noise
DIR_MIN_SIGNAL_RATIO = 1.3  # 1.f: a direction's sweep ends where the mask's band power (median,
#   in units of the local noise) is below 1.3 × the noise's: one cone holds few independent
#   noise samples, and in noise-only bands this ratio scatters from 0.65 to 1.2 (64³ tests), so
#   a stop at 1.0 would end each direction's sweep at random past its limit
DIR_MAX_FAILS = 1  # 1.f: a voxel stops at its first failure in a direction: a later chance
#   pass would decide its best direction by luck
BEST_PERCENTILE, WORST_PERCENTILE = 5.0, 95.0  # per voxel, over directions (Xmipp)


# ---------------------------------------------------------------------------------------------
# The sweep, shared by 1.e and 1.f
# ---------------------------------------------------------------------------------------------
@dataclass
class Measurement:
    """What one step measures (see :func:`sweep` and :func:`measure_fields`)."""

    level: np.ndarray  # a_S / sqrt(P_N) at the active points (ρ = level / κ)
    reference_noise: np.ndarray  # a_N / sqrt(P_N) at the reference points (κ: its quantile)
    signal_ratio: float  # median a_S²/P_N over median a_N²/P_N at the reference points
    noise_power: float  # mean a_N² at the reference points (raw)


@dataclass
class SweepResult:
    """values: float32 resolution (Å) per point (0 = never significant); resolutions: the steps
    used (Å); signal_ratio: per step, mean a_S²/P_N over the reference points divided by the
    same for the noise; stop_reason; limit_A: the finest step accepted (Å)."""

    values: np.ndarray
    resolutions: list = field(default_factory=list)
    signal_ratio: list = field(default_factory=list)
    noise_power: list = field(default_factory=list)
    stop_reason: str = "the sweep reached Nyquist"
    limit_A: float = float("nan")




def band_for(f, f_prev, shell_length):
    """0.e's band for the step at f (1/Å): raised-cosine rise from the previous step's
    frequency to f (the first step: from one Fourier shell below), flat to 1.1 f, zero at
    1.3 f; ``f_min`` records where it starts."""
    rise = f_prev if f_prev is not None else max(f - 1.0 / shell_length, 0.0)
    band = raised_cosine_band(rise, f, localmaps.BAND_FLAT_TO * f, localmaps.BAND_ZERO_AT * f)
    band.f_min = rise
    return band


class SweepState:
    """The per-point bookkeeping of one sweep (one map, or one direction): values, failures,
    the ratio ρ = a/t and frequency at the last pass and at the failure after it."""

    def __init__(self, n_points: int, max_fails: int = 2):
        self.n = n_points
        self.max_fails = max_fails
        self.values = np.zeros(n_points, dtype=np.float32)
        self.fails = np.zeros(n_points, dtype=np.int8)
        self.active = np.ones(n_points, dtype=bool)
        self.pass_r = np.zeros(n_points, dtype=np.float32)
        self.pass_f = np.zeros(n_points, dtype=np.float32)
        self.fail_r = np.zeros(n_points, dtype=np.float32)
        self.fail_f = np.zeros(n_points, dtype=np.float32)
        self.result = SweepResult(values=self.values)
        self.running = True
        self.max_noise = 0.0

    def active_index(self):
        return np.flatnonzero(self.active)

    def step(self, d, f, act, rho, ratio, noise_power, min_signal_ratio, noise_drop) -> bool:
        """Apply one step's ρ at the active points ``act``; False (and ``running`` off) when
        the sweep stops here (before updating: see :func:`sweep`)."""
        out = self.result
        out.signal_ratio.append(ratio)
        out.noise_power.append(noise_power)
        self.max_noise = max(self.max_noise, noise_power)
        if not (noise_power > noise_drop * self.max_noise) or rho is None:
            out.stop_reason = (f"at {d:.2f} Å the half maps held less than {noise_drop:g} of "
                               f"the noise power they held at coarser resolutions: they were "
                               f"low-pass filtered there, their information limit")
            self.running = False
            return False
        if not ratio >= min_signal_ratio:
            out.stop_reason = (f"at {d:.2f} Å the band held no more than {min_signal_ratio:g} "
                               f"times the noise's power in the mask (ratio {ratio:.2f}): the "
                               f"information limit")
            last = (self.values[act] > 0) & (self.fail_f[act] == 0) & (rho <= 1.0)
            self.fail_r[act[last]] = rho[last]
            self.fail_f[act[last]] = f
            self.running = False
            return False
        out.resolutions.append(d)
        passed = rho > 1.0
        up, down = act[passed], act[~passed]
        self.values[up] = d
        self.pass_r[up] = rho[passed]
        self.pass_f[up] = f
        self.fail_f[up] = 0.0
        self.fails[up] = 0
        new_fail = self.fails[down] == 0
        self.fail_r[down[new_fail]] = rho[~passed][new_fail]
        self.fail_f[down[new_fail]] = f
        self.fails[down] += 1
        self.active[down[self.fails[down] >= self.max_fails]] = False
        return True

    def too_few(self, d, stop_fraction) -> bool:
        if self.active.sum() < stop_fraction * self.n:
            self.result.stop_reason = (f"fewer than {100 * stop_fraction:g} % of the voxels were "
                                       f"still resolved at {d:.2f} Å")
            self.running = False
            return True
        return False

    def finish(self) -> SweepResult:
        out = self.result
        if out.resolutions:
            out.limit_A = float(out.resolutions[-1])
        v = self.values
        ok = (v > 0) & (self.fail_f > 0)
        v[ok] = localmaps.crossing_resolution(self.pass_f[ok], self.pass_r[ok], self.fail_f[ok],
                                              self.fail_r[ok])
        return out


def sweep(resolutions, freqs, n_points, measure, shell_length,
          significance: float = SIGNIFICANCE, min_signal_ratio: float = MIN_SIGNAL_RATIO,
          stop_fraction: float = localmaps.STOP_FRACTION,
          noise_drop: float = localmaps.NOISE_DROP, max_fails: int = 2) -> SweepResult:
    """MonoRes sweep with a local noise threshold, vectorised over the points.

    ``measure(band, f, active_index) -> Measurement`` measures one step
    (:func:`measure_fields`). Per step (resolution d = 1/f): the threshold of point x is
    t(x) = κ·sqrt(P_N(x)), P_N the local noise power (the half difference's squared band
    amplitude, geometric mean over a positive window around x that leaves x's own
    neighbourhood out: :func:`local_power`) and κ the ``significance`` quantile of
    a_N/sqrt(P_N) over the reference points: with noise of the same level everywhere this is
    MonoRes's threshold (the quantile of the noise amplitudes), and it stays right where the
    noise level varies across the box. Stops (before updating) when fewer than
    ``stop_fraction`` of the points are active, when the noise's band power falls below
    ``noise_drop`` × its maximum (halves low-pass filtered: their information limit), or when
    the signal's band power over the reference points, in units of the local noise power, is
    below ``min_signal_ratio`` × the noise's (no signal left). A point passes when a > t;
    ``max_fails`` consecutive failures end it (MonoRes: 2); its value is interpolated between
    its last pass and the failure after it (:func:`localmaps.crossing_resolution`)."""
    state = SweepState(n_points, max_fails)
    f_prev = None
    for d, f in zip(resolutions, freqs):
        if state.too_few(d, stop_fraction):
            break
        act = state.active_index()
        band = band_for(f, f_prev, shell_length)
        f_prev = f
        m = measure(band, f, act)
        kappa = float(np.quantile(m.reference_noise, significance))
        rho = m.level / np.float32(kappa) if kappa > 0 else None
        if not state.step(d, f, act, rho, m.signal_ratio, m.noise_power, min_signal_ratio,
                          noise_drop):
            break
    else:
        state.result.stop_reason = "the sweep reached Nyquist"
    return state.finish()


def sample(volume, grid_shape, full_shape, zyx):
    """Trilinear (periodic) values of ``volume`` (on ``grid_shape``, a grid of the box of
    ``full_shape``) at points ``zyx`` (3, n) given in voxels of the full grid; float32."""
    if tuple(grid_shape) == tuple(full_shape):
        coords = zyx
    else:
        scale = np.array([m / n for m, n in zip(grid_shape, full_shape)], dtype=np.float32)
        coords = zyx * scale[:, None]
    v = ndimage.map_coordinates(volume, coords, order=1, mode="grid-wrap")
    return np.asarray(v, dtype=np.float32)


TRUNCATE = 2.5  # Gaussian windows are cut at 2.5 σ


def _gaussian_sum(sigmas, truncate=TRUNCATE):
    """Sum of the discrete separable Gaussian exp(−x²/2σ²) (peak 1) that
    ``ndimage.gaussian_filter`` uses with these σ (voxels, per axis) and ``truncate``."""
    total = 1.0
    for sg in sigmas:
        r = int(truncate * float(sg) + 0.5)
        x = np.arange(-r, r + 1, dtype=np.float64)
        total *= float(np.exp(-0.5 * (x / sg) ** 2).sum()) if sg > 0 else 1.0
    return total


def local_power(energy, grid_shape, lengths, sigma_A, geometric=False, hole_A=0.0):
    """``energy`` (on ``grid_shape``, box ``lengths`` Å) clipped at 0 and averaged with a
    periodic Gaussian window of ``sigma_A`` Å (a positive kernel: never negative, even next to a
    much larger value, where a Fourier low-pass would ring).

    ``geometric``: average the logarithm instead (the local geometric mean): a region whose
    noise is 1000 times stronger then raises the level of its neighbours by 1000^p (p its
    weight in the window), not by 1000·p; a constant factor from the mean for any one
    distribution of amplitudes, which the threshold's κ absorbs. ``hole_A`` > 0: the window
    is G(σ)·(1 − exp(−r²/2h²)), i.e. without the voxel's own neighbourhood (radius ~h), so that
    the level at x does not depend on the amplitude at x itself (a difference of two separable
    Gaussians, a positive kernel)."""
    e = np.maximum(energy, 0.0)
    if geometric:
        floor = np.float32(max(float(e.mean()), 1e-30) * 1e-8)
        e = np.log(np.maximum(e, floor))
    sig = [sigma_A * m / L for m, L in zip(grid_shape, lengths)]
    g = ndimage.gaussian_filter(e, sig, mode="wrap", truncate=TRUNCATE)
    if hole_A > 0:
        # G(σ)·(1 − G(h)) = G(σ) − G(σ_c), 1/σ_c² = 1/σ² + 1/h²: a difference of two
        # separable Gaussians (peak 1), positive everywhere since σ_c < σ
        sc_A = 1.0 / math.sqrt(1.0 / sigma_A ** 2 + 1.0 / hole_A ** 2)
        sig_c = [sc_A * m / L for m, L in zip(grid_shape, lengths)]
        s1, s2 = _gaussian_sum(sig), _gaussian_sum(sig_c)
        g *= np.float32(s1)
        g -= np.float32(s2) * ndimage.gaussian_filter(e, sig_c, mode="wrap", truncate=TRUNCATE)
        g *= np.float32(1.0 / (s1 - s2))
    return np.exp(g, out=g) if geometric else g


def reference_subset(n_points: int, seed: int = 0, max_points: int = MAX_REFERENCE_POINTS):
    """Positions (sorted) of a fixed random subset of at most ``max_points`` points."""
    if n_points <= max_points:
        return np.arange(n_points)
    return np.sort(np.random.default_rng(seed).choice(n_points, size=max_points,
                                                      replace=False))


def measure_fields(s_f, n_f, n_w, grid, full, zyx, act, ref) -> Measurement:
    """One step's :class:`Measurement` from the smoothed squared amplitudes of the signal
    (``s_f``) and of the noise (``n_f``) and the local noise power ``n_w``, all on ``grid``
    (a grid of the box of ``full``); points ``zyx`` (3, n) in voxels of the full grid, ``act``
    the active and ``ref`` the reference positions among them. The level a_S/sqrt(P_N) is
    formed on the grid and interpolated at the active points (one interpolation per point)."""
    pr = zyx[:, ref]
    pn = np.maximum(sample(n_w, grid, full, pr), np.float32(1e-30))
    an2 = np.maximum(sample(n_f, grid, full, pr), 0.0)
    as2 = np.maximum(sample(s_f, grid, full, pr), 0.0)
    # medians: a_S²/P_N has a heavy tail where P_N is small, and the mean would follow it
    ref_noise = float(np.median(an2 / pn))
    ratio = float(np.median(as2 / pn)) / ref_noise if ref_noise > 0 else math.inf
    floor = np.float32(max(float(n_w.max()), 1e-30) * 1e-12)
    level2 = np.maximum(s_f, 0.0) / np.maximum(n_w, floor)
    level = np.sqrt(np.maximum(sample(level2, grid, full, zyx[:, act]), 0.0))
    return Measurement(level, np.sqrt(an2 / pn), ratio,
                       float(np.mean(an2, dtype=np.float64)))


# ---------------------------------------------------------------------------------------------
# 1.e: MonoRes with the half maps
# ---------------------------------------------------------------------------------------------
def halfmap_banks(F1, F2, shape, lengths, gain: float):
    """(signal bank of (h1 + h2)/2, noise bank of (h1 − h2)/2), from the halves' rffts."""
    mean = ((F1 + F2) * np.complex64(0.5)).astype(np.complex64, copy=False)
    diff = ((F1 - F2) * np.complex64(0.5)).astype(np.complex64, copy=False)
    return (FilterBank(mean, shape, lengths, gain=gain),
            FilterBank(diff, shape, lengths, gain=gain))


def halfmap_local_resolution(signal: FilterBank, noise: FilterBank, mask: np.ndarray,
                             low_res: float, step: float,
                             significance: float = SIGNIFICANCE,
                             min_signal_ratio: float = MIN_SIGNAL_RATIO) -> SweepResult:
    """MonoRes local resolution (Å, in the flat order of ``mask``) of the ``signal`` bank (the
    halves' mean) against the ``noise`` bank (their half difference) at the ``mask`` voxels:
    :func:`sweep` with isotropic bands (:func:`band_for`), each computed on the smallest grid
    that holds it (:meth:`FilterBank.energy`); the squared amplitude is averaged with a Gaussian
    of σ = SMOOTH_ISO × d (MonoRes low-passes it at f; a positive window cannot carry the
    energy of a much noisier region into a quiet one, as a sharp low-pass's ringing does);
    steps :func:`localmaps.resolution_steps`."""
    flat = np.flatnonzero(mask)
    if flat.size == 0:
        raise ValueError("the mask is empty")
    zyx = np.stack(np.unravel_index(flat, mask.shape)).astype(np.float32)
    ref = reference_subset(flat.size)
    resolutions, freqs = localmaps.resolution_steps(signal, low_res, step)
    full = signal.shape

    def measure(band, f, act):
        grid = signal.shape_for(band.f_max)
        s_e, grid = signal.energy(band, grid=grid)
        n_e, _ = noise.energy(band, grid=grid)
        d = 1.0 / f
        s_f = local_power(s_e, grid, signal.lengths, SMOOTH_ISO * d)
        n_f = local_power(n_e, grid, signal.lengths, SMOOTH_ISO * d)
        n_w = local_power(n_e, grid, signal.lengths, NOISE_WINDOW * d, geometric=True,
                          hole_A=NOISE_HOLE * d)
        del s_e, n_e
        return measure_fields(s_f, n_f, n_w, grid, full, zyx, act, ref)

    return sweep(resolutions, freqs, flat.size, measure, signal.shell_length,
                 significance=significance, min_signal_ratio=min_signal_ratio)


# ---------------------------------------------------------------------------------------------
# 1.f: directional sweep
# ---------------------------------------------------------------------------------------------
def half_sphere_directions(n: int = N_DIRECTIONS) -> np.ndarray:
    """``n`` unit vectors (z, y, x) spread evenly over the half sphere z > 0 (a golden-angle
    spiral, equal area per direction: z_k = (k + 0.5)/n, azimuth k × 137.5°). A direction and
    its opposite are the same for a real map."""
    k = np.arange(n, dtype=np.float64)
    z = (k + 0.5) / n
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    r = np.sqrt(1.0 - z * z)
    return np.stack([z, r * np.sin(phi), r * np.cos(phi)], axis=1)


def direction_angles(dirs: np.ndarray):
    """(tilt from the z axis, azimuth in the x-y plane from x) of (z, y, x) unit vectors taken
    with z >= 0, degrees."""
    d = np.where(dirs[:, :1] < 0, -dirs, dirs)
    tilt = np.degrees(np.arccos(np.clip(d[:, 0], -1.0, 1.0)))
    rot = np.degrees(np.arctan2(d[:, 1], d[:, 2])) % 360.0
    return tilt, rot


def _axis_index(n):
    """Signed integer frequency indices present on an axis of n voxels (fftfreq order)."""
    return np.rint(np.fft.fftfreq(n) * n).astype(np.int64)


class DirectionalBank:
    """Directional band amplitudes of one or more maps of a box, from their rffts.

    ``fts``: rffts (complex64, shape (nz, ny, nx//2 + 1)) of the maps (the halves' mean and
    half difference); ``shape`` the real-space shape; ``lengths`` (Lz, Ly, Lx) Å; ``gain``
    multiplies every band (1 / the map's robust scale)."""

    def __init__(self, fts, shape, lengths, gain: float = 1.0):
        self.fts = list(fts)
        self.shape = tuple(int(v) for v in shape)
        self.lengths = np.array([float(v) for v in lengths])
        self.gain = float(gain)
        self.size = int(np.prod(self.shape))

    def _region(self, direction, f_lo, f_hi, cone_max):
        """Bounding box (integer frequency indices per axis) of the frequencies s with
        f_lo <= |s| <= f_hi within ``cone_max`` radians of +direction: (centre, half-width)."""
        d = np.asarray(direction, dtype=np.float64)
        a = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        u = np.cross(d, a)
        u /= np.linalg.norm(u)
        v = np.cross(d, u)
        th = np.linspace(0.0, cone_max, 9)[:, None, None, None]
        ph = np.linspace(0.0, 2 * math.pi, 33)[None, :, None, None]
        r = np.array([f_lo, f_hi])[None, None, :, None]
        pts = (np.cos(th) * d + np.sin(th) * (np.cos(ph) * u + np.sin(ph) * v)) * r
        k = pts.reshape(-1, 3) * self.lengths  # in bins
        lo, hi = np.floor(k.min(axis=0)) - 1, np.ceil(k.max(axis=0)) + 1
        centre = np.rint((lo + hi) / 2.0).astype(np.int64)
        half = np.maximum(centre - lo, hi - centre)
        return centre, half

    def energies(self, direction, band, spacing_A, cone_deg=CONE_DEG,
                 taper_deg=CONE_TAPER_DEG):
        """Squared directional amplitudes |F⁻¹[2·W·H·F]|² of every map, for one direction.

        ``band``: a transfer of |s| with ``f_max`` and ``f_min`` (:func:`band_for`); W the cone
        (weight 1 within ``cone_deg`` − ``taper_deg`` of +direction, raised cosine to 0 at
        ``cone_deg`` + ``taper_deg``; one-sided, so that the result is the analytic signal
        along the direction). The coefficients inside the cone × band are shifted by a whole
        number of bins to the origin (a change of phase only) and transformed on the smallest
        fast grid of the same box that holds them and whose spacing is at most ``spacing_A``
        Å. Returns (list of float32 volumes on that grid, the grid)."""
        f_hi = float(band.f_max)
        f_lo = float(getattr(band, "f_min", 0.0))
        cone_max = math.radians(cone_deg + taper_deg)
        centre, half = self._region(direction, f_lo, f_hi, cone_max)
        w = half / self.lengths  # half-extent of the shifted spectrum, 1/Å per axis
        nyq = np.maximum(w, 0.5 / spacing_A)
        grid = tuple(fast_even_size(int(math.ceil(2 * nu * L)) + 2)
                     for nu, L in zip(nyq, self.lengths))
        k = [c + _axis_index(m) for c, m in zip(centre, grid)]
        valid = [(kk >= -(n // 2)) & (kk <= (n - 1) // 2) for kk, n in zip(k, self.shape)]
        sz, sy, sx = ((kk / L).astype(np.float32) for kk, L in zip(k, self.lengths))
        sz, sy, sx = sz[:, None, None], sy[None, :, None], sx[None, None, :]
        mag = np.sqrt(sz * sz + sy * sy + sx * sx)
        dz, dy, dx = (np.float32(c) for c in direction)
        with np.errstate(invalid="ignore", divide="ignore"):
            cosang = np.where(mag > 0, (sz * dz + sy * dy + sx * dx) / mag, -1.0)
        ang = np.degrees(np.arccos(np.clip(cosang, -1.0, 1.0)))
        t = np.clip((ang - (cone_deg - taper_deg)) / (2 * taper_deg), 0.0, 1.0)
        weight = ((0.5 + 0.5 * np.cos(np.pi * t)) * band(mag)).astype(np.float32)
        weight *= valid[0][:, None, None] & valid[1][None, :, None] & valid[2][None, None, :]
        nonzero = np.nonzero(weight)
        # F(k) from the half-space rfft (kx < 0: the conjugate of F(−k))
        nz, ny, nx = self.shape
        kz, ky, kx = k[0][nonzero[0]], k[1][nonzero[1]], k[2][nonzero[2]]
        neg = kx < 0
        iz = np.where(neg, -kz, kz) % nz
        iy = np.where(neg, -ky, ky) % ny
        ix = np.abs(kx)
        # 2: the one-sided spectrum of the analytic signal; grid/full: true samples
        wv = weight[nonzero] * np.float32(2.0 * self.gain * float(np.prod(grid)) / self.size)
        out = []
        for ft in self.fts:
            vals = ft[iz, iy, ix]
            spec = np.zeros(grid, dtype=np.complex64)
            spec[nonzero] = np.where(neg, np.conj(vals), vals) * wv
            dmod = scipy.fft.ifftn(spec, workers=workers(), overwrite_x=True)
            del spec
            e = np.square(dmod.real, dtype=np.float32)
            e += np.square(dmod.imag, dtype=np.float32)
            out.append(e)
            del dmod
        return out, grid


def directional_steps(bank: FilterBank, low_res: float, coarse_step: float = 1.0,
                      fine_step: float = 0.5, switch_A: float = 8.0):
    """Resolutions (Å) and frequencies of the directional sweep: from ``low_res`` in steps of
    ``coarse_step`` Å down to ``switch_A``, then of ``fine_step`` Å towards Nyquist (Xmipp's
    MonoDir: 1 Å above 8 Å, 0.5 Å below), each moved to the nearest Fourier shell, repeats
    merged (:func:`localmaps.resolution_steps`)."""
    res, freqs = [], []
    if low_res > switch_A:
        r1, f1 = localmaps.resolution_steps(bank, low_res, coarse_step)
        keep = [i for i, d in enumerate(r1) if d > switch_A + 1e-6]
        res += [r1[i] for i in keep]
        freqs += [f1[i] for i in keep]
    r2, f2 = localmaps.resolution_steps(bank, min(low_res, switch_A), fine_step)
    for d, f in zip(r2, f2):
        if not freqs or f > freqs[-1] + 1e-12:
            res.append(d)
            freqs.append(f)
    return res, freqs


@dataclass
class DirectionalResolution:
    """Result of :func:`directional_local_resolution`: ``values`` float32 (n_directions,
    n_points) resolution (Å), 0 = never significant; ``directions`` (n_directions, 3) unit
    vectors (z, y, x); ``sweeps`` the per-direction :class:`SweepResult` (values dropped)."""

    values: np.ndarray
    directions: np.ndarray
    sweeps: list = field(default_factory=list)


def directional_local_resolution(bank: DirectionalBank, zyx: np.ndarray, resolutions, freqs,
                                 directions=None, significance: float = SIGNIFICANCE,
                                 smooth: float = SMOOTH, cone_deg: float = CONE_DEG,
                                 seed: int = 0) -> DirectionalResolution:
    """MonoDir: the sweep of :func:`sweep` for every direction at once (one loop over the
    steps, one over the directions inside it), each band times a cone of half-angle
    ``cone_deg`` around the direction (±); ``bank.fts`` = [the halves' mean, their half
    difference]; points ``zyx`` (3, n) in voxels of the full grid (a fixed random subset of
    them, the reference points, for κ and the signal ratio); steps ``resolutions``/``freqs``
    (Å, 1/Å, coarse to fine: :func:`directional_steps`). Differences from :func:`sweep`: κ is
    pooled over the directions still running (each keeps its own local noise level P_N), a
    voxel stops at its first failure (DIR_MAX_FAILS) and a direction where its signal ratio
    falls below DIR_MIN_SIGNAL_RATIO: both so that chance does not decide which direction is
    a voxel's best."""
    dirs = half_sphere_directions() if directions is None else np.asarray(directions)
    n_pts = zyx.shape[1]
    ref = reference_subset(n_pts, seed, MAX_DIR_REFERENCE_POINTS)
    full = bank.shape
    states = [SweepState(n_pts, DIR_MAX_FAILS) for _ in dirs]
    shell_length = float(max(bank.lengths))
    f_prev = None
    for d, f in zip(resolutions, freqs):
        running = [i for i, st in enumerate(states) if st.running
                   and not st.too_few(d, localmaps.STOP_FRACTION)]
        if not running:
            break
        band = band_for(f, f_prev, shell_length)
        f_prev = f
        meas, acts = {}, {}
        for i in running:
            acts[i] = states[i].active_index()
            (s_e, n_e), grid = bank.energies(dirs[i], band, DIR_SPACING * smooth * d,
                                             cone_deg=cone_deg)
            s_f = local_power(s_e, grid, bank.lengths, smooth * d)
            n_f = local_power(n_e, grid, bank.lengths, smooth * d)
            n_w = local_power(n_e, grid, bank.lengths, DIR_NOISE_WINDOW * d, geometric=True,
                              hole_A=DIR_NOISE_HOLE * d)
            del s_e, n_e
            meas[i] = measure_fields(s_f, n_f, n_w, grid, full, zyx, acts[i], ref)
        # κ pooled over the directions: the shape of the normalised noise distribution is the
        # same for every cone (the noise level of each direction is in its own P_N), and one
        # direction's 5 000 correlated reference values would give it its own luck
        kappa = float(np.quantile(np.concatenate([meas[i].reference_noise for i in running]),
                                  significance))
        for i in running:
            m = meas[i]
            rho = m.level / np.float32(kappa) if kappa > 0 else None
            states[i].step(d, f, acts[i], rho, m.signal_ratio, m.noise_power,
                           DIR_MIN_SIGNAL_RATIO, localmaps.NOISE_DROP)
        meas.clear()
    values = np.zeros((len(dirs), n_pts), dtype=np.float32)
    out = DirectionalResolution(values=values, directions=dirs)
    for i, st in enumerate(states):
        if st.running:
            st.result.stop_reason = "the sweep reached Nyquist"
        res = st.finish()
        values[i] = res.values
        res.values = None
        out.sweeps.append(res)
    return out


def summarise_directions(values: np.ndarray, seed: int = 0):
    """Per point: (best, worst, mean directional resolution, index of the best direction).

    Best / worst = the BEST_PERCENTILE / WORST_PERCENTILE percentiles over the directions with
    a value (Xmipp's highest/lowest resolution maps), mean = their mean; the best direction is
    the one ranked at the best percentile (ties broken at random with a fixed seed). Points
    without any value get 0 and direction −1."""
    n_dir, n = values.shape
    have = values > 0
    count = have.sum(axis=0)
    big = np.float32(1e9)
    jitter = np.random.default_rng(seed).random(values.shape, dtype=np.float32) * np.float32(1e-4)
    key = np.where(have, values + jitter, big)
    order = np.argsort(key, axis=0)
    cnt = np.maximum(count, 1)
    lo_rank = np.floor(BEST_PERCENTILE / 100.0 * cnt).astype(np.int64)
    hi_rank = np.minimum(np.floor(WORST_PERCENTILE / 100.0 * cnt).astype(np.int64), cnt - 1)
    cols = np.arange(n)
    best_dir = order[lo_rank, cols]
    worst_dir = order[hi_rank, cols]
    best = values[best_dir, cols]
    worst = values[worst_dir, cols]
    with np.errstate(invalid="ignore"):
        mean = np.where(count > 0, np.where(have, values, 0).sum(axis=0) / cnt, 0.0)
    none = count == 0
    best = np.where(none, 0.0, best).astype(np.float32)
    worst = np.where(none, 0.0, worst).astype(np.float32)
    best_dir = np.where(none, -1, best_dir)
    return best, worst, mean.astype(np.float32), best_dir


def lattice_points(mask: np.ndarray, stride: int):
    """Flat indices of the ``mask`` voxels on the lattice of every ``stride``-th voxel per axis
    (starting at 0)."""
    sub = np.zeros(mask.shape, dtype=bool)
    sub[::stride, ::stride, ::stride] = True
    return np.flatnonzero(mask & sub)


def lattice_to_volume(values, flat, shape, stride, mask):
    """A volume on the full grid from values at lattice points (``flat`` indices, every
    ``stride``-th voxel): the lattice grid is filled outside the points with the nearest point's
    value, interpolated trilinearly to every voxel, and set to 0 outside ``mask``."""
    coarse_shape = tuple(-(-n // stride) for n in shape)
    z, y, x = np.unravel_index(flat, shape)
    cz, cy, cx = z // stride, y // stride, x // stride
    coarse = np.zeros(coarse_shape, dtype=np.float32)
    have = np.zeros(coarse_shape, dtype=bool)
    coarse[cz, cy, cx] = values
    have[cz, cy, cx] = values > 0
    if not have.any():
        return np.zeros(shape, dtype=np.float32)
    if stride > 1 or not have.all():
        idx = ndimage.distance_transform_edt(~have, return_distances=False, return_indices=True)
        coarse = coarse[tuple(idx)]
    vol = coarse
    if stride > 1:  # separable linear interpolation, one axis at a time
        for axis, n in enumerate(shape):
            pos = np.arange(n, dtype=np.float32) / stride
            i0 = np.minimum(np.floor(pos).astype(np.int64), vol.shape[axis] - 1)
            i1 = np.minimum(i0 + 1, vol.shape[axis] - 1)
            t = (pos - i0).reshape([-1 if a == axis else 1 for a in range(3)])
            vol = (np.take(vol, i0, axis=axis) * (1 - t)
                   + np.take(vol, i1, axis=axis) * t).astype(np.float32)
    vol = np.where(mask, vol, 0.0).astype(np.float32)
    return vol


def radial_profiles(zyx, best, worst, mean, shape, spacing, width_A):
    """Radial curves from the box centre (n/2 voxel per axis): for each shell of ``width_A`` Å,
    the mean over its points (with a value) of the best, worst and mean directional
    resolution. Returns dict of arrays (radius_A = shell centre)."""
    centre = np.array([n / 2.0 for n in shape])[:, None]
    r = np.sqrt((((zyx - centre) * np.asarray(spacing)[:, None]) ** 2).sum(axis=0))
    ok = mean > 0
    b = np.floor(r[ok] / width_A).astype(np.int64)
    nb = int(b.max()) + 1 if b.size else 0
    cnt = np.bincount(b, minlength=nb).astype(np.float64)
    keep = cnt > 0
    prof = {"radius_A": ((np.arange(nb) + 0.5) * width_A)[keep], "count": cnt[keep]}
    for key, v in (("best", best), ("worst", worst), ("mean", mean)):
        s = np.bincount(b, weights=v[ok].astype(np.float64), minlength=nb)
        prof[key] = (s[keep] / cnt[keep])
    return prof
