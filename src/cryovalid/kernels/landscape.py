"""Correlation landscapes of the particles over a gallery of projection directions, and what
items 4.b (alignability smoothness) and 4.c (alignability precision and accuracy) compute from
them (vrs_level2_5.md §3.2, §3.3; the reference runs Xmipp's ``angular_assignment_mag
--useForValidation`` (Sorzano, Vargas et al.) and ``reconstruct_significant`` +
``multireference_aligneability`` (Vargas et al. 2016, J Struct Biol 195:11-19)).

One landscape serves both items. On a working grid of ``pixel`` Å (:func:`working_pixel`):

1. *images*: each particle is shifted back by the user's shift (its content centred on pixel
   b//2), phase-flipped (multiplied by sign(CTF) in Fourier space, the exact sign of its own CTF),
   and low-passed at ``cutoff`` Å by a raised cosine (:data:`TAPER` wide) when one is given;
2. *gallery*: the map projected (kernels/projection.Projector, psi = 0) at the directions of
   ``projection.orientations(symmetry, step)`` (the asymmetric unit of the point group), each
   multiplied in Fourier space by the particles' mean |CTF| and the same low-pass;
3. *in-plane search*: every image against every gallery image over all in-plane angles by the
   polar correlation of kernels/align2d (rings 1 to b/2 − 1 px weighted by their radius, one BLAS
   product per angular frequency, an inverse FFT along the angle; Sorzano et al. 2004,
   Ultramicroscopy 101:129): ``score[i, j]`` is the best correlation (≈ Pearson's r within the
   circle of radius b/2) of image i with direction j over the angle, ``psi[i, j]`` (degrees,
   parabola-refined) the angle of that best match, so that the image's orientation is
   (rot_j, tilt_j, psi[i, j]). No shift search: the user's shifts centre the images (a wrong
   shift lowers the whole landscape, which the items then see).

The *reference* landscape (4.c) is that of noise-free particles: the map projected at each
particle's user orientation (centred), times its CTF, then treated exactly as in step 1 (so it
is the projection times |CTF|).

Graph smoothing (4.b): the gallery directions form a graph (neighbours within 2·step, weight
exp(−d/(2·step)), d the symmetry-aware angle between projection directions in degrees); each
particle's score vector is projected on the first k eigenvectors U_k of the Laplacian
L = D − W, i.e. ``S·U_k·U_kᵀ``. The reference keeps 5 % + 1 of them when its gallery has more
than 1000 directions, 50 % + 1 otherwise, on a 3° gallery; on this coarser gallery k is the
number the reference's 3° gallery would keep (:func:`basis_size`), the same angular band
(about 230, spherical harmonics up to degree ~14, for c1).

Alignability (4.c): the top K orientations of each landscape; spread = weighted mean pairwise
angle (weight the product of the two correlations), accuracy = weighted mean angle to the
user's orientation (weight the correlation), both angles between projection axes (a direction
and its opposite are one axis), the smallest over the point group (:func:`axis_angles`, as
Xmipp's multireference_aligneability computes them); the noise level is the mean pairwise
angle of K distinct random gallery orientations.
Angles in degrees throughout; correlations unitless.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

from cryovalid.kernels import align2d, fourier
from cryovalid.kernels import projection as proj
from cryovalid.kernels import symmetry as symk

MIN_PIXEL_A = 3.2  # Å: the reference's 4.c working pixel (0.4 × its 8 Å target resolution)
RESOLUTION_FRACTION = 1.0 / 3.0  # 4.b's working pixel is R/3 in the reference
STEP_DEG = 5.0  # gallery step (the reference: 3° for 4.b, 5° for 4.c)
TAPER = 0.1  # width of the raised-cosine low-pass edge, as a fraction of Nyquist (1/(2 px))
MAX_PARTICLES = 10000  # at most this many particles (a seeded random subset beyond)
IMAGE_CHUNK = 256  # images prepared and correlated at once
CHUNK_ELEMENTS = 6e6  # correlation values (images × directions × angles) held at once
GRAPH_RADIUS = 2.0  # neighbours within this many steps
GRAPH_REFERENCE_STEP = 3.0  # the reference's 4.b gallery step: it sets the size of the basis
GRAPH_LARGE = 1000  # galleries with more directions keep GRAPH_FRACTION_LARGE of the basis
GRAPH_FRACTION_LARGE = 0.05
GRAPH_FRACTION_SMALL = 0.50


def working_pixel(voxel_size: float, resolution: float | None) -> float:
    """The working pixel (Å) shared by 4.b and 4.c: max(map voxel, 3.2 Å, R/3) (R/3 only when
    the resolution is known)."""
    px = max(float(voxel_size), MIN_PIXEL_A)
    if resolution is not None:
        px = max(px, RESOLUTION_FRACTION * float(resolution))
    return px


@dataclass
class Landscape:
    """gallery (m, 3) Euler angles (psi = 0) in degrees; rows (n,) the indices of the particles
    used (all of them, or a seeded random subset of MAX_PARTICLES); score (n, m) float32 best
    correlation of each with each direction; psi (n, m) float32 degrees, its in-plane angle."""
    gallery: np.ndarray
    rows: np.ndarray
    score: np.ndarray
    psi: np.ndarray

    def orientations(self, rows, cols) -> np.ndarray:
        """(..., 3) full orientations (rot, tilt, psi) of the (rows, cols) entries."""
        e = self.gallery[cols].copy()
        e[..., 2] = self.psi[rows, cols]
        return e


def lowpass(box: int, pixel: float, cutoff_A: float | None) -> np.ndarray | None:
    """(b, b//2+1) float32 raised-cosine low-pass at 1/cutoff (1/Å; 1 below, 0 beyond, a
    cosine edge TAPER·Nyquist wide centred on it), or None when cutoff_A is None or beyond
    Nyquist."""
    if cutoff_A is None:
        return None
    nyq = 0.5 / pixel
    fc = 1.0 / float(cutoff_A)
    if fc >= nyq * (1 - TAPER / 2):
        return None
    ky = np.fft.fftfreq(box, pixel)[:, None]
    kx = np.fft.rfftfreq(box, pixel)[None, :]
    s = np.hypot(kx, ky)
    w = TAPER * nyq
    t = np.clip((s - (fc - w / 2)) / w, 0.0, 1.0)
    return (0.5 * (1 + np.cos(np.pi * t))).astype(np.float32)


def prepare(images, shifts, ctf, filt) -> np.ndarray:
    """The images (k, b, b) shifted back by their content shifts (k, 2) px (dx, dy), times
    sign(ctf) (k, b, b//2+1) (None: no CTF) and the filter ``filt`` (None: none), float32."""
    imgs = np.asarray(images, dtype=np.float32)
    b = imgs.shape[-1]
    t = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
    ky = np.fft.fftfreq(b)[None, :, None]
    kx = np.fft.rfftfreq(b)[None, None, :]
    ph = np.exp(2j * np.pi * (kx * t[:, 0, None, None] + ky * t[:, 1, None, None]))
    ft = scipy.fft.rfft2(imgs, workers=fourier.workers()) * ph.astype(np.complex64)
    if ctf is not None:
        ft *= np.sign(ctf)
    if filt is not None:
        ft *= filt
    return scipy.fft.irfft2(ft, s=(b, b), workers=fourier.workers()).astype(np.float32)


def filtered(images, transfer) -> np.ndarray:
    """The images (k, b, b) multiplied in Fourier space by ``transfer`` (b, b//2+1) or
    (k, b, b//2+1) (None: unchanged)."""
    imgs = np.asarray(images, dtype=np.float32)
    if transfer is None:
        return imgs
    b = imgs.shape[-1]
    ft = scipy.fft.rfft2(imgs, workers=fourier.workers()) * transfer
    return scipy.fft.irfft2(ft, s=(b, b), workers=fourier.workers()).astype(np.float32)


def polar_spectra(images, n_angles: int) -> np.ndarray:
    """(k, K, R) complex64 conjugated polar spectra (align2d's weighting and normalisation),
    laid out for the per-frequency products."""
    s = align2d._polar_spectra(align2d.polar(images, n_angles))  # (k, R, K)
    return np.ascontiguousarray(np.conj(s).transpose(2, 0, 1))  # (K, k, R)


def gallery_spectra(gallery_images, n_angles: int) -> np.ndarray:
    """(K, R, m) complex64 polar spectra of the gallery images."""
    s = np.concatenate([align2d._polar_spectra(align2d.polar(gallery_images[lo:lo + 256],
                                                             n_angles))
                        for lo in range(0, len(gallery_images), 256)])  # (m, R, K)
    return np.ascontiguousarray(s.transpose(2, 1, 0))


def correlate(ci: np.ndarray, gal: np.ndarray, n_angles: int):
    """Best polar correlation over the in-plane angle of images ``ci`` (K, n, R) (from
    :func:`polar_spectra`) with every gallery image ``gal`` (K, R, m): (score (n, m) float32,
    psi (n, m) float32 degrees, parabola-refined), as kernels/align2d.coarse_search with one
    shift."""
    kf, n, _ = ci.shape
    m_all = gal.shape[2]
    score = np.empty((n, m_all), dtype=np.float32)
    psi = np.empty((n, m_all), dtype=np.float32)
    chunk = max(8, int(CHUNK_ELEMENTS // (n * n_angles)))
    for lo in range(0, m_all, chunk):
        g = gal[:, :, lo:lo + chunk]
        m = g.shape[2]
        x = np.matmul(ci, g)  # (K, n, m): one BLAS product per angular frequency
        cc = scipy.fft.irfft(x, n=n_angles, axis=0, workers=fourier.workers())  # (A, n, m)
        del x
        j = cc.argmax(axis=0)  # (n, m)
        top = np.take_along_axis(cc, j[None], axis=0)[0]
        lft = np.take_along_axis(cc, ((j - 1) % n_angles)[None], axis=0)[0]
        rgt = np.take_along_axis(cc, ((j + 1) % n_angles)[None], axis=0)[0]
        den = lft - 2 * top + rgt
        curved = den < 0
        frac = np.where(curved, 0.5 * (lft - rgt) / np.where(curved, den, -1), 0.0)
        frac = np.clip(frac, -0.5, 0.5)
        score[:, lo:lo + m] = top - np.where(curved, 0.25 * (lft - rgt) * frac, 0.0)
        psi[:, lo:lo + m] = ((j + frac) * 360.0 / n_angles) % 360.0
    return score, psi


def particle_rows(n: int, limit: int) -> np.ndarray:
    """(k,) sorted indices: all n particles, or a random subset (seed 0) of ``limit``."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, limit, replace=False))


def compute(grid, symmetry: str, step: float = STEP_DEG, cutoff_A: float | None = None,
            reference: bool = False) -> Landscape:
    """The landscape (module docstring) of the particles of ``grid`` (a data.ParticleGrid;
    those of :func:`particle_rows`), or with ``reference`` that of their noise-free
    references."""
    b = grid.box
    rows = particle_rows(grid.particles.n, MAX_PARTICLES)
    n = len(rows)
    n_angles = align2d.n_angles_for(b)
    filt = lowpass(b, grid.pixel_size, cutoff_A)
    gallery, _ = proj.orientations(symmetry, step)
    has_ctf = grid.particles.ctf_parameters is not None
    # the gallery's transfer: the particles' mean |CTF| (after phase flipping) and the filter
    transfer = None
    if has_ctf:
        acc = np.zeros((b, b // 2 + 1), dtype=np.float64)
        for lo in range(0, n, IMAGE_CHUNK):
            acc += np.abs(grid.ctf(rows[lo:lo + IMAGE_CHUNK])).sum(axis=0)
        transfer = (acc / max(n, 1)).astype(np.float32)
    if filt is not None:
        transfer = filt if transfer is None else transfer * filt
    gal = gallery_spectra(filtered(grid.projector.project(gallery), transfer), n_angles)
    score = np.empty((n, len(gallery)), dtype=np.float32)
    psi = np.empty((n, len(gallery)), dtype=np.float32)
    eulers, shifts = grid.eulers[rows], grid.shifts[rows]
    for lo in range(0, n, IMAGE_CHUNK):
        hi = min(n, lo + IMAGE_CHUNK)
        ctf = grid.ctf(rows[lo:hi]) if has_ctf else None
        if reference:
            p = grid.projector.project(eulers[lo:hi])
            ref_transfer = filt if ctf is None else (np.abs(ctf) if filt is None
                                                      else np.abs(ctf) * filt)
            imgs = filtered(p, ref_transfer)
        else:
            imgs = prepare(grid.images[rows[lo:hi]], shifts[lo:hi], ctf, filt)
        score[lo:hi], psi[lo:hi] = correlate(polar_spectra(imgs, n_angles), gal, n_angles)
    for a in (score, psi):
        a.flags.writeable = False
    return Landscape(gallery, rows, score, psi)


# ---------------------------------------------------------------------------- 4.b: graph

def direction_angles(d1, d2, symmetry: str) -> np.ndarray:
    """(n1, n2) degrees: the angle between projection directions d1 (n1, 3) and d2 (n2, 3),
    smallest over the point group (the directions equivalent to n are Sᵀ·n; no mirror)."""
    best = None
    for s in symk.matrices(symmetry):
        c = np.asarray(d1) @ (np.asarray(d2) @ s).T  # n1 · (Sᵀ n2)
        best = c if best is None else np.maximum(best, c)
    return np.degrees(np.arccos(np.clip(best, -1.0, 1.0)))


def direction_distance(e1, e2, symmetry: str) -> np.ndarray:
    """(n,) degrees: the angle between the projection directions of orientations e1[i] and
    e2[i] ((n, 3) each), the smallest over the point group (no mirror): Xmipp's
    graphDistance2MaxPrevious (angular_assignment_mag.cpp)."""
    d1, d2 = symk.directions(e1), symk.directions(e2)
    best = np.full(len(d1), -1.0)
    for s in symk.matrices(symmetry):
        best = np.maximum(best, np.einsum("ni,ni->n", d1, d2 @ s))
    return np.degrees(np.arccos(np.clip(best, -1.0, 1.0)))


def basis_size(symmetry: str, m: int) -> int:
    """The number of Laplacian eigenvectors kept: that of the reference's gallery of
    GRAPH_REFERENCE_STEP° (m₃ directions over the same asymmetric unit): int(f·m₃) + 1,
    f = 5 % when m₃ > GRAPH_LARGE, else 50 %; at most m. The graph's low eigenvectors
    approximate the spherical harmonics of the lowest degrees whatever the step, so the same
    number of them keeps the same angular band as the reference's smoothing."""
    m3 = len(proj.orientations(symmetry, GRAPH_REFERENCE_STEP)[0])
    f = GRAPH_FRACTION_LARGE if m3 > GRAPH_LARGE else GRAPH_FRACTION_SMALL
    return int(min(m, int(f * m3) + 1))


def graph_basis(gallery, symmetry: str, step: float, k: int | None = None) -> np.ndarray:
    """(m, k) float32 the first k eigenvectors (smallest eigenvalues) of the Laplacian of the
    gallery graph (module docstring); k = :func:`basis_size` unless given."""
    import scipy.linalg

    dirs = symk.directions(gallery)
    d = direction_angles(dirs, dirs, symmetry)
    w = np.where((d < GRAPH_RADIUS * step) & ~np.eye(len(d), dtype=bool),
                 np.exp(-d / (2.0 * step)), 0.0)
    lap = np.diag(w.sum(axis=1)) - w
    m = len(d)
    k = basis_size(symmetry, m) if k is None else min(m, int(k))
    _, vec = scipy.linalg.eigh(lap, subset_by_index=(0, k - 1))
    return vec.astype(np.float32)


@lru_cache(maxsize=8)
def gallery_basis(symmetry: str, step: float) -> np.ndarray:
    """:func:`graph_basis` of the gallery ``projection.orientations(symmetry, step)``,
    computed once per (symmetry, step) in a process (read-only)."""
    basis = graph_basis(proj.orientations(symmetry, step)[0], symmetry, step)
    basis.flags.writeable = False
    return basis


def smoothed_maximum(score, basis) -> np.ndarray:
    """(n,) index of the maximum of each score vector low-passed on the graph (S·U·Uᵀ)."""
    out = np.empty(len(score), dtype=np.int64)
    for lo in range(0, len(score), 4096):
        s = np.asarray(score[lo:lo + 4096], dtype=np.float32)
        out[lo:lo + 4096] = ((s @ basis) @ basis.T).argmax(axis=1)
    return out


# ---------------------------------------------------------------------------- 4.c: top K

def top_k(land: Landscape, k: int):
    """(eulers (n, k, 3), correlations (n, k)) of the k best-scoring gallery orientations of
    every particle, best first (plain top k, as xmipp_reconstruct_significant
    --useForValidation keeps them)."""
    s = land.score
    k = min(k, s.shape[1])
    idx = np.argpartition(-s, k - 1, axis=1)[:, :k]
    rows = np.arange(len(s))[:, None]
    order = np.argsort(-s[rows, idx], axis=1, kind="stable")
    idx = idx[rows, order]
    return land.orientations(rows, idx), s[rows, idx].astype(np.float64)


def axis_angles(e1, e2, symmetry: str) -> np.ndarray:
    """Degrees in [0, 90]: the angle between the projection axes of orientations e1 and e2
    (..., 3; broadcast), the smallest over the point group, a direction and its opposite
    counting as one axis: Xmipp's ``SymList::computeDistance(projdir_mode=true,
    check_mirrors=true)`` (the mirror, Euler_mirrorY, turns the direction to its opposite),
    which multireference_aligneability uses."""
    shape = np.broadcast_shapes(np.shape(e1), np.shape(e2))[:-1]
    d1 = symk.directions(np.broadcast_to(e1, shape + (3,)).reshape(-1, 3))
    d2 = symk.directions(np.broadcast_to(e2, shape + (3,)).reshape(-1, 3))
    best = np.zeros(len(d1))
    for s in symk.matrices(symmetry):
        best = np.maximum(best, np.abs(np.einsum("ni,ni->n", d1, d2 @ s)))
    return np.degrees(np.arccos(np.clip(best, 0.0, 1.0))).reshape(shape)


def _weights(cc) -> np.ndarray:
    """Non-negative correlation weights (a set with no positive weight counts evenly)."""
    w = np.clip(cc, 0.0, None)
    return np.where(w.sum(axis=-1, keepdims=True) > 0, w, 1.0)


def spread(eulers, cc, symmetry: str) -> np.ndarray:
    """(n,) degrees: mean angle between the pairs of each particle's k orientations
    (n, k, 3), each pair weighted by the product of its two correlations (n, k)."""
    k = eulers.shape[1]
    i, j = np.triu_indices(k, 1)
    d = axis_angles(eulers[:, i], eulers[:, j], symmetry)  # (n, pairs)
    w = _weights(cc)
    wij = w[:, i] * w[:, j]
    tot = wij.sum(axis=1)
    return np.where(tot > 0, (wij * d).sum(axis=1) / np.where(tot > 0, tot, 1), d.mean(axis=1))


def accuracy_distance(eulers, cc, user, symmetry: str) -> np.ndarray:
    """(n,) degrees: mean angle between the user's orientation (n, 3) and each particle's k
    orientations (n, k, 3), weighted by their correlations (n, k)."""
    d = axis_angles(eulers, np.asarray(user)[:, None, :], symmetry)
    w = _weights(cc)
    return (w * d).sum(axis=1) / w.sum(axis=1)


def noise_level(gallery, k: int, symmetry: str, trials: int = 500, seed: int = 0) -> float:
    """Degrees: the mean angle between the pairs of k distinct random gallery orientations,
    over ``trials`` sets (Xmipp's calc_sumw2, normalised over the distinct pairs)."""
    rng = np.random.default_rng(seed)
    m = len(gallery)
    k = min(k, m)
    idx = np.argsort(rng.random((trials, m)), axis=1)[:, :k]  # k distinct per trial
    e = np.asarray(gallery)[idx]
    i, j = np.triu_indices(k, 1)
    return float(axis_angles(e[:, i], e[:, j], symmetry).mean())


def alignability(exp: Landscape, ref: Landscape, user, k: int, symmetry: str,
                 trials: int = 500) -> dict:
    """Per particle (arrays (n,)): precision = (spread_exp − noise)/(spread_ref − noise),
    accuracy = (acc_exp − noise)/(acc_ref − noise) (module docstring), the four distances and
    the noise level (degrees)."""
    user = np.asarray(user, dtype=np.float64)
    noise = noise_level(exp.gallery, k, symmetry, trials)
    out = {"noise": noise}
    for name, land in (("exp", exp), ("ref", ref)):
        e, cc = top_k(land, k)
        out[f"spread_{name}"] = spread(e, cc, symmetry)
        out[f"accuracy_{name}"] = accuracy_distance(e, cc, user, symmetry)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["precision"] = (out["spread_exp"] - noise) / (out["spread_ref"] - noise)
        out["accuracy"] = (out["accuracy_exp"] - noise) / (out["accuracy_ref"] - noise)
    return out
