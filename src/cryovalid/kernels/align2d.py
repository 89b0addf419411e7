"""Batched 2-D alignment of images against a gallery of references: in-plane rotation, shift and
normalized cross-correlation within a circular mask (the projection-matching step of Xmipp's
``angular_projection_matching`` and the local refinement of ``angular_continuous_assign2``,
vrs_level2_5.md §1.1; Sorzano et al. 2004, Ultramicroscopy 101:129-138 for the polar search).

Conventions: images (..., y, x), pixel b//2 is the centre. ``rotate(img, a)(x) = img(R(a)·x)``
(R the counter-clockwise rotation of (x, y), a in degrees) and ``shift(img, t)(x) = img(x - t)``
(t = (dx, dy) pixels: the content moves by +t). An image is matched as
``image ≈ shift(rotate(reference, psi), t)``: with references P_0 of psi = 0 the Euler angles of
the image are (rot, tilt, psi) (kernels/projection.py). The correlation is Pearson's r over the
pixels within the circle of radius b/2, invariant to a grey-level change a·I + b.

Search:
1. *coarse*, over the whole gallery: the image is shifted back by each shift of a grid (range
   ``box/10``, step ``box/25``, the reference's 5-D search), resampled on polar rings (radii 1 to
   b/2 − 1 px, ``n_angles`` angles), and correlated with the gallery's polar images along the
   angle by FFT (ring r weighted by r, as the area element): a score, angle and shift for every
   (image, reference); :meth:`Coarse.candidates` keeps the best distinct local maxima over the
   gallery's directions.
2. *refinement*, per image around its candidates (each also turned by 180° in plane):
   references projected at the exact candidate orientations (a callable), shift from the FFT
   cross-correlation of the masked, normalised images (peak within the allowed shifts, position
   and height refined by a parabola per axis); the best ``starts`` candidates are then refined
   by local searches over the 26 small turns of ±step·f about the three axes (f = 1, 1, 1/2,
   1/4, 1/8), each with its shift searched again within 0.05·box (the reference's continuous
   refinement moves angles by at most 5° and shifts by at most 0.05·box). The correlation of
   the result is Pearson's r within the mask, computed exactly.
Everything is batched (images × references × angles are arrays; Python loops only over gallery
chunks, angular frequencies (one BLAS product each), candidate chunks and refinement rounds).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy import ndimage

from cryovalid.kernels import fourier

SHIFT_RANGE = 0.10  # × box: the reference's shift range of the 5-D search
SHIFT_STEP = 0.04  # × box (box/25)
REFINE_SHIFT = 0.05  # × box: further shift allowed by the local refinement
IMAGE_CHUNK = 64  # images searched at once in the coarse search (× the shift grid)
REFINE_CHUNK = 512  # references projected and correlated at once in the refinement
CHUNK_ELEMENTS = 16e6  # correlation values held at once in the coarse search (float32)


def circular_mask(box: int, radius: float | None = None) -> np.ndarray:
    """Boolean (box, box) disc of ``radius`` px (box/2 by default) around pixel box//2."""
    r = box / 2.0 if radius is None else radius
    y, x = np.mgrid[:box, :box] - box // 2
    return (x * x + y * y) <= r * r


def rotate(imgs: np.ndarray, angles_deg, order: int = 1) -> np.ndarray:
    """``out[i](x) = imgs[i](R(angles[i])·x)`` about pixel b//2 (linear interpolation, 0
    outside); ``angles`` one per image (or one for all)."""
    imgs = np.asarray(imgs, dtype=np.float32)
    n, b = imgs.shape[0], imgs.shape[-1]
    a = np.radians(np.broadcast_to(np.asarray(angles_deg, dtype=np.float64), (n,)))
    y, x = (np.mgrid[:b, :b] - b // 2).astype(np.float32)
    c, s = np.cos(a)[:, None, None], np.sin(a)[:, None, None]
    xs = c * x - s * y + b // 2
    ys = s * x + c * y + b // 2
    zs = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], xs.shape)
    return ndimage.map_coordinates(imgs, [zs, ys, xs], order=order, mode="constant",
                                   cval=0.0, prefilter=False).astype(np.float32)


def shift(imgs: np.ndarray, shifts) -> np.ndarray:
    """``out[i](x) = imgs[i](x - t_i)`` for (n, 2) shifts t = (dx, dy) in pixels (Fourier
    shift, periodic)."""
    imgs = np.asarray(imgs, dtype=np.float32)
    b = imgs.shape[-1]
    t = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
    ky = np.fft.fftfreq(b)[None, :, None]
    kx = np.fft.rfftfreq(b)[None, None, :]
    ph = np.exp(-2j * np.pi * (kx * t[:, 0, None, None] + ky * t[:, 1, None, None]))
    ft = scipy.fft.rfft2(imgs, workers=fourier.workers())
    return scipy.fft.irfft2(ft * ph.astype(np.complex64), s=(b, b),
                            workers=fourier.workers()).astype(np.float32)


def n_angles_for(box: int) -> int:
    """Polar angles: about one pixel of arc at the outer ring, a multiple of 8."""
    return int(8 * np.ceil(np.pi * box / 16.0))


def polar(imgs: np.ndarray, n_angles: int) -> np.ndarray:
    """(n, R, n_angles) samples at radii 1..R (R = b/2 − 1 px), angle φ_j = 2πj/n_angles:
    ``p[r, j] = img(b//2 + r·(cos φ_j, sin φ_j))`` (linear interpolation). So
    ``polar(rotate(img, a))[r, j] = polar(img)[r, j + a/Δφ]``."""
    imgs = np.asarray(imgs, dtype=np.float32)
    n, b = imgs.shape[0], imgs.shape[-1]
    r = np.arange(1, b // 2, dtype=np.float32)
    phi = 2 * np.pi * np.arange(n_angles) / n_angles
    xs = (r[:, None] * np.cos(phi)[None, :] + b // 2).astype(np.float32)
    ys = (r[:, None] * np.sin(phi)[None, :] + b // 2).astype(np.float32)
    out = np.empty((n, r.size, n_angles), dtype=np.float32)
    for lo in range(0, n, 256):
        m = min(n, lo + 256) - lo
        zs = np.broadcast_to(np.arange(lo, lo + m, dtype=np.float32)[:, None, None],
                             (m,) + xs.shape)
        out[lo:lo + m] = ndimage.map_coordinates(
            imgs, [zs, np.broadcast_to(ys, zs.shape), np.broadcast_to(xs, zs.shape)],
            order=1, mode="constant", cval=0.0, prefilter=False)
    return out


def _polar_spectra(p: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-norm (ring r weighted by r) polar images → their FFT along the angle,
    times √r, so that Σ_r Σ_k conj(Â)·B̂ / n_angles is the weighted Pearson correlation."""
    r = np.arange(1, p.shape[1] + 1, dtype=np.float32)[None, :, None]
    w = r / r.sum() / p.shape[2]
    mean = (p * w).sum(axis=(1, 2), keepdims=True)
    q = p - mean
    norm = np.sqrt((q * q * w).sum(axis=(1, 2), keepdims=True))
    q = q / np.maximum(norm, 1e-30) * np.sqrt(w)
    return scipy.fft.rfft(q, axis=-1, workers=fourier.workers()).astype(np.complex64)


def shift_grid(box: int) -> np.ndarray:
    """(S, 2) shifts (dx, dy) px of the coarse search: multiples of box·SHIFT_STEP within
    box·SHIFT_RANGE (each axis)."""
    step = SHIFT_STEP * box
    k = int(np.floor(SHIFT_RANGE * box / step + 1e-9))
    s = step * np.arange(-k, k + 1)
    gx, gy = np.meshgrid(s, s)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


@dataclass
class Coarse:
    """Every image against every reference: the polar correlation (n, m), the in-plane angle
    psi (n, m) degrees and the shift (n, m, 2) px of its best match."""
    score: np.ndarray
    psi: np.ndarray
    shift: np.ndarray

    def candidates(self, neighbours: np.ndarray, keep: int) -> np.ndarray:
        """(n, keep) reference indices per image, best first: the references whose score is
        the largest among their ``neighbours`` ((m, k) indices, e.g. the directions within
        1.5 sampling steps), so that the candidates are distinct local maxima rather than
        neighbours of one peak; padded with the next best scores when there are fewer."""
        sc = self.score
        local = sc >= sc[:, neighbours].max(axis=2)
        key = np.where(local, sc + 10.0, sc)  # local maxima first, then by score
        keep = min(keep, sc.shape[1])
        return np.argsort(-key, axis=1, kind="stable")[:, :keep]


def coarse_search(images: np.ndarray, gallery: np.ndarray,
                  n_angles: int | None = None) -> Coarse:
    """Step 1 of the module docstring: every image against every gallery image, every polar
    angle and every shift of :func:`shift_grid` (the gallery's polar spectra computed once,
    the images taken ``IMAGE_CHUNK`` at a time)."""
    images = np.asarray(images, dtype=np.float32)
    n, b = images.shape[0], images.shape[-1]
    n_angles = n_angles or n_angles_for(b)
    gal = np.concatenate([_polar_spectra(polar(gallery[lo:lo + 256], n_angles))
                          for lo in range(0, len(gallery), 256)])  # (m, R, K)
    gal = np.ascontiguousarray(gal.transpose(2, 1, 0))  # (K, R, m)
    parts = [_coarse_chunk(images[lo:lo + IMAGE_CHUNK], gal, n_angles)
             for lo in range(0, n, IMAGE_CHUNK)]
    return Coarse(*(np.concatenate([getattr(c, f) for c in parts])
                    for f in ("score", "psi", "shift")))


def _coarse_chunk(images, gal, n_angles) -> Coarse:
    n, b = images.shape[0], images.shape[-1]
    m_all = gal.shape[2]
    grid = shift_grid(b)
    s = len(grid)
    # image shifted back by t: img(x + t)
    back = shift(np.repeat(images, s, axis=0), -np.tile(grid, (n, 1)))
    ci = _polar_spectra(polar(back, n_angles))  # (n·s, R, K)
    del back
    ci = np.ascontiguousarray(np.conj(ci).transpose(2, 0, 1))  # (K, n·s, R)
    score = np.empty((n, m_all), dtype=np.float32)
    psi = np.empty((n, m_all))
    shifts = np.empty((n, m_all, 2))
    chunk = max(8, int(CHUNK_ELEMENTS // (n * s * n_angles)))
    for lo in range(0, m_all, chunk):
        g = np.ascontiguousarray(gal[:, :, lo:lo + chunk])  # (K, R, m)
        m = g.shape[2]
        x = np.empty((ci.shape[0], n * s, m), dtype=np.complex64)
        for k in range(ci.shape[0]):  # one BLAS product per angular frequency
            np.matmul(ci[k], g[k], out=x[k])
        cc = scipy.fft.irfft(x, n=n_angles, axis=0, workers=fourier.workers())
        del x
        cc = np.moveaxis(cc.reshape(n_angles, n, s, m), 0, -1)  # (n, s, m, angles)
        j = cc.argmax(axis=-1)  # (n, s, m)
        top = np.take_along_axis(cc, j[..., None], axis=-1)[..., 0]
        # parabolic refinement of the angle peak
        lft = np.take_along_axis(cc, ((j - 1) % n_angles)[..., None], axis=-1)[..., 0]
        rgt = np.take_along_axis(cc, ((j + 1) % n_angles)[..., None], axis=-1)[..., 0]
        den = lft - 2 * top + rgt
        frac = np.where(den < 0, 0.5 * (lft - rgt) / np.where(den < 0, den, -1), 0.0)
        ang = (j + np.clip(frac, -0.5, 0.5)) * 360.0 / n_angles
        si = top.argmax(axis=1)  # best shift per (image, reference)
        sc = np.take_along_axis(top, si[:, None, :], axis=1)[:, 0, :]  # (n, m)
        an = np.take_along_axis(ang, si[:, None, :], axis=1)[:, 0, :]
        score[:, lo:lo + m] = sc
        psi[:, lo:lo + m] = an % 360.0
        shifts[:, lo:lo + m] = grid[si]
    return Coarse(score, psi, shifts)


def _normalised(imgs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero mean, unit norm within ``mask``, 0 outside."""
    m = mask.astype(np.float32)
    k = m.sum()
    mean = (imgs * m).sum(axis=(-2, -1), keepdims=True) / k
    q = (imgs - mean) * m
    return q / np.maximum(np.sqrt((q * q).sum(axis=(-2, -1), keepdims=True)), 1e-30)


def pearson(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pearson correlation of a and b (..., y, x) over the pixels in ``mask``."""
    return (_normalised(a, mask) * _normalised(b, mask)).sum(axis=(-2, -1))


def spectra(imgs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """rfft2 of the images normalised within ``mask`` (zero mean, unit norm, 0 outside)."""
    return scipy.fft.rfft2(_normalised(imgs, mask), workers=fourier.workers())


def best_shift(image_ft: np.ndarray, refs: np.ndarray, mask: np.ndarray, max_shift: float,
               centre=None, which=None):
    """For each reference refs[i] and its image (``image_ft[which[i]]``, from :func:`spectra`;
    ``which`` = i by default): the shift t (|t_x|, |t_y| ≤ max_shift around ``centre``, px)
    maximising Σ image(x)·ref(x − t) of the masked normalised images, refined to sub-pixel by
    a parabola per axis; returns (t (n, 2), peak value (n,), about Pearson's r at t)."""
    b = refs.shape[-1]
    fi = image_ft if which is None else image_ft[which]
    cc = scipy.fft.irfft2(fi * np.conj(spectra(refs, mask)), s=(b, b),
                          workers=fourier.workers())
    cc = np.fft.fftshift(cc, axes=(-2, -1))  # lag 0 on pixel b//2
    n = len(cc)
    lag = np.arange(b) - b // 2
    c0 = np.zeros((n, 2)) if centre is None else np.asarray(centre, dtype=np.float64)
    ok = ((np.abs(lag[None, None, :] - c0[:, 0, None, None]) <= max_shift)
          & (np.abs(lag[None, :, None] - c0[:, 1, None, None]) <= max_shift))
    masked = np.where(ok, cc, -np.inf)
    flat = masked.reshape(n, -1).argmax(axis=1)
    iy, ix = np.unravel_index(flat, (b, b))
    rows = np.arange(n)
    peak = cc[rows, iy, ix]

    def parabola(lo, hi):
        """(offset of the vertex in [-0.5, 0.5], its height above the peak)."""
        den = lo - 2 * peak + hi
        curved = den < 0
        d = np.where(curved, den, -1.0)
        off = np.where(curved, np.clip(0.5 * (lo - hi) / d, -0.5, 0.5), 0.0)
        return off, np.where(curved, -0.5 * d * off * off, 0.0)

    fx, gx = parabola(cc[rows, iy, (ix - 1) % b], cc[rows, iy, (ix + 1) % b])
    fy, gy = parabola(cc[rows, (iy - 1) % b, ix], cc[rows, (iy + 1) % b, ix])
    t = np.stack([lag[ix] + fx, lag[iy] + fy], axis=1)
    return t, peak + gx + gy  # the peak's height interpolated at the sub-pixel shift


@dataclass
class Alignment:
    """Per image: Euler angles (n, 3) degrees, shift (n, 2) px (dx, dy), the Pearson
    correlation within the mask after alignment (n,), and the matched references (n, b, b)
    (projections at the angles, shifted by the shift)."""
    eulers: np.ndarray
    shift: np.ndarray
    cc: np.ndarray
    reference: np.ndarray


def _turn(eulers: np.ndarray, rotvec_deg: np.ndarray) -> np.ndarray:
    """Euler angles of the orientations ``eulers`` (..., 3) turned by the small rotations
    ``rotvec_deg`` (..., 3) (axis × angle, degrees; applied in the frame of the image, so
    equal offsets are equal turns at every tilt, also near the poles)."""
    from scipy.spatial.transform import Rotation

    from cryovalid.kernels.projection import euler_matrix, matrix_euler

    shape = np.broadcast_shapes(eulers.shape, rotvec_deg.shape)
    e = np.broadcast_to(eulers, shape).reshape(-1, 3)
    w = np.broadcast_to(rotvec_deg, shape).reshape(-1, 3)
    turn = Rotation.from_rotvec(np.radians(w)).as_matrix()
    return matrix_euler(turn @ euler_matrix(e)).reshape(shape)


_D = np.array([-1.0, 0.0, 1.0])
_OFFSETS = {"axes": np.vstack([np.eye(3), -np.eye(3)]),  # ±1 about x, y, z
            "cube": np.stack(np.meshgrid(_D, _D, _D, indexing="ij"), -1).reshape(-1, 3)}


def refine(images: np.ndarray, project, eulers: np.ndarray, shifts: np.ndarray,
           step: float = 2.5, starts: int = 2,
           rounds=(1, 1, 0.5, 0.25, 0.125), neighbourhood="cube") -> Alignment:
    """Step 2 of the module docstring. ``project((k, 3) Euler angles) -> (k, b, b)``;
    ``eulers`` (n, c, 3) and ``shifts`` (n, c, 2) the c candidates per image. The candidates
    (and each turned by 180° in plane) are scored by their masked cross-correlation peak, the
    best ``starts`` of each image are refined by a local search (turns of ±``step``·f degrees
    about each of the three axes, f in ``rounds``; the shift re-searched within 0.05·box each
    time), and the best result is kept; its Pearson correlation within the mask is computed
    exactly at the end."""
    images = np.asarray(images, dtype=np.float32)
    n, b = images.shape[0], images.shape[-1]
    mask = circular_mask(b)
    coarse_max = np.floor(SHIFT_RANGE * b + 1e-9)
    max_shift = coarse_max + np.floor(REFINE_SHIFT * b)
    fi = spectra(images, mask)

    def evaluate(owner, cand_e, cand_t0, reach, top=1):
        """The ``top`` best of the c candidates (k, c, 3) of images ``owner`` (k,)."""
        k, c = cand_e.shape[:2]
        flat_e, flat_t0 = cand_e.reshape(-1, 3), cand_t0.reshape(-1, 2)
        which = np.repeat(owner, c)
        t = np.empty((k * c, 2))
        score = np.empty(k * c)
        for lo in range(0, k * c, REFINE_CHUNK):
            sl = slice(lo, lo + REFINE_CHUNK)
            t[sl], score[sl] = best_shift(fi, project(flat_e[sl]), mask, reach,
                                          centre=flat_t0[sl], which=which[sl])
        t = np.clip(t, -max_shift, max_shift)
        score = score.reshape(k, c)
        o = np.argsort(-score, axis=1, kind="stable")[:, :top]
        rows = np.arange(k)[:, None]
        return cand_e[rows, o], t.reshape(k, c, 2)[rows, o], score[rows, o]

    eulers = np.asarray(eulers, dtype=np.float64)
    shifts = np.asarray(shifts, dtype=np.float64)
    # each candidate also turned by 180° in plane: an elongated view correlates almost as
    # well upside down at the gallery's low resolution
    flipped = eulers.copy()
    flipped[..., 2] += 180.0
    eulers = np.concatenate([eulers, flipped], axis=1)
    shifts = np.concatenate([shifts, shifts], axis=1)
    starts = min(starts, eulers.shape[1])
    e, t, sc = evaluate(np.arange(n), eulers, shifts, max_shift, top=starts)
    owner = np.repeat(np.arange(n), starts)  # every start refined on its own
    e, t, sc = e.reshape(-1, 3), t.reshape(-1, 2), sc.reshape(-1)
    offs = _OFFSETS[neighbourhood]
    reach = max(1.0, np.floor(REFINE_SHIFT * b))
    for f in rounds:
        cand = _turn(e[:, None, :], step * f * offs[None, :, :])
        e2, t2, sc2 = evaluate(owner, cand, np.repeat(t[:, None, :], len(offs), axis=1), reach)
        e2, t2, sc2 = e2[:, 0], t2[:, 0], sc2[:, 0]
        better = sc2 > sc
        e, t = np.where(better[:, None], e2, e), np.where(better[:, None], t2, t)
        sc = np.where(better, sc2, sc)
    k = sc.reshape(n, starts).argmax(axis=1)
    pick = np.arange(n) * starts + k
    e, t = e[pick], t[pick]
    ref = np.concatenate([shift(project(e[lo:lo + REFINE_CHUNK]), t[lo:lo + REFINE_CHUNK])
                          for lo in range(0, n, REFINE_CHUNK)])
    cc = pearson(images, ref, mask)
    return Alignment(e, t, cc.astype(np.float64), ref.astype(np.float32))


def gray_residual(images: np.ndarray, refs: np.ndarray, mask: np.ndarray):
    """(a·image + b − ref within the mask (0 outside), (a, b)): the grey adjustment a·I + b
    of each image to its reference (Xmipp's gray values) with ``a = var(ref)/cov(image, ref)``
    and b matching the means, so that the image's component along the reference equals the
    reference. (The least-squares fit of a·I + b to the reference would shrink a noisy image
    by its correlation and leave −(1 − ρ)·ref in the residual.)"""
    m = mask.astype(np.float32)
    k = m.sum()
    mi = (images * m).sum(axis=(-2, -1)) / k
    mr = (refs * m).sum(axis=(-2, -1)) / k
    di = (images - mi[:, None, None]) * m
    dr = (refs - mr[:, None, None]) * m
    cov = (di * dr).sum(axis=(-2, -1))
    a = (dr * dr).sum(axis=(-2, -1)) / np.where(np.abs(cov) > 1e-30, cov, 1e-30)
    off = mr - a * mi
    res = (a[:, None, None] * images + off[:, None, None] - refs) * m
    return res.astype(np.float32), (a, off)


def column_covariance(imgs: np.ndarray) -> np.ndarray:
    """Xmipp ``image_residuals``' covariance image: each image seen as a matrix (rows y,
    columns x), each column's mean removed, AᵀA/(rows − 1): (n, x, x)."""
    a = imgs - imgs.mean(axis=-2, keepdims=True)
    return (np.einsum("nyi,nyj->nij", a, a) / (imgs.shape[-2] - 1)).astype(np.float32)
