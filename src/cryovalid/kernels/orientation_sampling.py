"""How a set of projection directions samples Fourier space: the sampling compensation factor
(SCF, item 4.h) and the cryoEF directional resolution and efficiency (item 4.g).

Both use the central-section theorem: an image whose projection direction is the unit vector
``n`` fills, in the map's Fourier space, the plane through the origin perpendicular to ``n``.
Directions come from :func:`cryovalid.kernels.symmetry.directions` (expanded by the point
group with :func:`~cryovalid.kernels.symmetry.expand_directions`); a seeded subsample of at
most ``max_particles`` particles is used (the result is a fraction of the planes, so the
subsample only adds sampling noise).

**SCF** (Baldwin & Lyumkis 2020, Prog Biophys Mol Biol 150:160-183; SCF* and the constants
from Baldwin's ``SCFJan2022.py``): ``M = min(int(2π·FR²), 5000)`` points ``s_k`` on a
hemisphere Fibonacci spiral; ``S_k`` = the number of directions with ``|s_k·n|·FR < 0.5``
(the plane passes within half a voxel of the point at Fourier radius FR voxels);
``SCF = 1 / (mean_{S>0}(1/S)·mean_all(S))`` and ``SCF* = SCF / (1 + q·mean_all(S)·SCF/2)`` with
``q`` = (fraction of points with S = 0)/(fraction with S > 0). Unitless; 1 for uniform
directions, 8/π² ≈ 0.81 for side views only (S ∝ 1/sin of the angle to the common axis).

**cryoEF** (Naydenova & Russo 2017, Nat Commun 8:629), re-coded from the published model:
an image of a particle of diameter D (Å) determined to an angular accuracy δ fills a slab
around its central plane; the point at spatial frequency r (1/Å) in the direction u is covered
by the planes with ``|u·n| < a(r) = 1/(2·D·r) + sin(δ/2)`` (the slab's half-thickness 1/(2D)
plus the tilt error at radius r). The transfer function ``T(r, u)`` is the fraction of the
planes that cover the point; for uniformly distributed directions it is ``min(1, a(r))``. The
signal-to-noise ratio of the reconstruction at (r, u) is taken proportional to
``T(r, u)·exp(−B·r²/2)`` (the images' power falls with the B-factor B in Å²), and the
resolution limit is where it drops to the value a uniform distribution of the same particles
reaches at the reported resolution R: ``c = min(1, a(1/R))·exp(−B/(2R²))``. So uniform
directions give the directional resolution R in every direction (the model's prediction) and
an uneven distribution gives worse resolution in the under-sampled directions and better in
the over-sampled ones. The directional resolution along u is ``1/r_u`` with ``r_u`` the first
radius where ``T·exp(−B r²/2) < c`` (searched on :data:`N_RADII` geometrically spaced radii
between 1/(2L) and the particles' Nyquist frequency, L the box edge in Å, and interpolated
linearly between the last radius above and the first below). The efficiency is the fraction
of the particles that, uniformly distributed, would give the same mean directional resolution R̄:
``E = min(1, a(1/R))·e^{−B/(2R²)} / (min(1, a(1/R̄))·e^{−B/(2R̄²)})`` (1 for uniform, smaller
the more uneven; this definition is the re-coding's, cryoEF's binary reports its own E_od).
"""
from __future__ import annotations

import numpy as np

from cryovalid.kernels import symmetry as symk

MAX_PARTICLES = 10000  # the SCF script's limit on the directions used (seeded subsample)
MAX_SPIRAL = 5000  # the SCF script's limit on the spiral points
CHUNK = 4_000_000  # direction × point comparisons per block
N_RADII = 400  # radii of the cryoEF resolution search
MAX_DIRECTIONS_EF = 100_000  # cryoEF model: directions after the symmetry expansion, at most
SEED = 0


def subsample_eulers(eulers, max_particles: int = MAX_PARTICLES, seed: int = SEED):
    """(≤ max_particles, 3) a seeded random subsample (without replacement) of the Euler
    angles, all of them when there are not more."""
    e = np.asarray(eulers, dtype=np.float64)
    if len(e) <= max_particles:
        return e
    pick = np.random.default_rng(seed).choice(len(e), max_particles, replace=False)
    return e[np.sort(pick)]


def _chunks(dirs, m):
    step = max(1, CHUNK // max(m, 1))
    for lo in range(0, len(dirs), step):
        yield dirs[lo:lo + step]


def sampling_counts(points, dirs, half_width: float) -> np.ndarray:
    """(m,) int64: for each unit point, the number of directions with |point·n| < half_width."""
    pts = np.asarray(points, dtype=np.float32)
    out = np.zeros(len(pts), dtype=np.int64)
    for block in _chunks(np.asarray(dirs, dtype=np.float32), len(pts)):
        out += np.count_nonzero(np.abs(pts @ block.T) < half_width, axis=1)
    return out


def scf(eulers, symmetry: str, fourier_radius: int, max_particles: int = MAX_PARTICLES,
        seed: int = SEED) -> dict:
    """Baldwin's SCF and SCF* (module docstring) of (n, 3) Euler angles (degrees).

    Returns a dict: scf, scf_star, fraction_zeros, number_zeros, qk_over_pk, n_used (particles
    used), n_directions (after the symmetry expansion), n_points, fourier_radius, points (m, 3),
    counts (m,)."""
    fr = int(fourier_radius)
    if fr < 1:
        raise ValueError("the Fourier radius must be at least 1 voxel")
    used = subsample_eulers(eulers, max_particles, seed)
    dirs = symk.expand_directions(symk.directions(used), symmetry)
    m = int(min(np.int64(2 * np.pi * fr * fr), MAX_SPIRAL))
    pts = symk.fibonacci_hemisphere(m)
    s = sampling_counts(pts, dirs, 0.5 / fr)
    good = s > 0
    n_zero = int(m - np.count_nonzero(good))
    frac_zero = n_zero / m
    mean_s = float(s.mean())
    if not good.any():
        raise ValueError("no projection direction samples the sphere")
    q = frac_zero / (1.0 - frac_zero)
    scf0 = float(1.0 / (np.mean(1.0 / s[good]) * mean_s))
    star = float(scf0 / (1.0 + q * mean_s * scf0 / 2.0))
    return dict(scf=scf0, scf_star=star, fraction_zeros=frac_zero, number_zeros=n_zero,
                qk_over_pk=q, n_used=len(used), n_directions=len(dirs), n_points=m,
                fourier_radius=fr, points=pts, counts=s)


def _coverage(a_r: float | np.ndarray):
    return np.minimum(1.0, a_r)


def directional_resolution(eulers, symmetry: str, resolution: float, diameter: float,
                           box_A: float, pixel_size: float, b_factor: float,
                           accuracy_deg: float, n_points: int = 500,
                           max_particles: int = MAX_PARTICLES, seed: int = SEED) -> dict:
    """The cryoEF-model directional resolutions (Å) and efficiency (module docstring).

    ``resolution`` R, ``diameter`` D, ``box_A`` L and ``pixel_size`` in Å; ``b_factor`` Å²
    (> 0); ``accuracy_deg`` δ in degrees. Returns a dict: points (m, 3) hemisphere directions,
    resolution (m,) Å, mean, min, max (Å), efficiency, at_nyquist (m,) bool (never below
    threshold up to Nyquist: the value is 2·pixel_size), n_used, n_directions (at most
    :data:`MAX_DIRECTIONS_EF` after the expansion: fewer particles for large groups)."""
    order = len(symk.matrices(symmetry))
    used = subsample_eulers(eulers, min(max_particles, max(1, MAX_DIRECTIONS_EF // order)), seed)
    dirs = symk.expand_directions(symk.directions(used), symmetry).astype(np.float32)
    pts = symk.fibonacci_hemisphere(int(n_points)).astype(np.float32)
    r = np.geomspace(1.0 / (2.0 * box_A), 1.0 / (2.0 * pixel_size), N_RADII)
    sin_half = np.sin(np.radians(accuracy_deg) / 2.0)
    a = 1.0 / (2.0 * diameter * r) + sin_half  # decreasing in r
    # count[u, j] = #{n : |u·n| < a_j}; J(d) = #{j : a_j > d} (a decreasing) -> histogram
    nr = len(r)
    a_up = a[::-1]
    hist = np.zeros((len(pts), nr + 1), dtype=np.int64)
    offs = (np.arange(len(pts)) * (nr + 1))[:, None]
    for block in _chunks(dirs, len(pts)):
        d = np.abs(pts @ block.T)
        jd = nr - np.searchsorted(a_up, d, side="right")
        hist += np.bincount((jd + offs).ravel(), minlength=len(pts) * (nr + 1)).reshape(
            len(pts), nr + 1)
    # count[u, j] = sum_{J > j} hist[u, J]
    tail = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]  # tail[u, J] = sum_{J' >= J}
    frac = tail[:, 1:] / float(len(dirs))  # (m, nr): fraction covering (r_j, u)
    c = _coverage(1.0 / (2.0 * diameter / resolution) + sin_half) * np.exp(
        -b_factor / (2.0 * resolution ** 2))
    with np.errstate(divide="ignore"):
        g = np.log(frac) - b_factor * r[None, :] ** 2 / 2.0 - np.log(c)  # >= 0: resolved
    fail = g < 0
    first = np.where(fail.any(axis=1), fail.argmax(axis=1), nr)
    at_nyq = first == nr
    # the crossing, interpolated linearly in r between the last resolved radius and the next
    lo = np.clip(first - 1, 0, nr - 1)
    hi = np.clip(first, 0, nr - 1)
    rows = np.arange(len(pts))
    g_lo, g_hi = g[rows, lo], g[rows, hi]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(np.isfinite(g_hi) & (g_lo > g_hi), g_lo / (g_lo - g_hi), 0.0)
    r_u = np.where(first == 0, r[0], np.where(at_nyq, r[-1], r[lo] + t * (r[hi] - r[lo])))
    res = 1.0 / r_u
    mean = float(res.mean())
    k_mean = 1.0 / mean
    eff = float(c / (_coverage(1.0 / (2.0 * diameter * k_mean) + sin_half)
                     * np.exp(-b_factor * k_mean ** 2 / 2.0)))
    return dict(points=pts.astype(np.float64), resolution=res, mean=mean,
                min=float(res.min()), max=float(res.max()), efficiency=eff, at_nyquist=at_nyq,
                n_used=len(used), n_directions=len(dirs))
