"""Direct Fourier reconstruction of a 3-D map from 2-D images with known orientations (the
inverse of :class:`cryovalid.kernels.projection.Projector`), the FSC of two reconstructions and
the projection matching of images against a gallery without a shift search.

Method (the central-slice theorem, as RELION's ``BackProjector`` with trilinear insertion;
Penczek 2010, Methods Enzymol. 482:1-33; Scheres 2012, J Struct Biol 180:519):

* each image (y, x), pixel b//2 its centre, is shifted back to the centre (``image ≈
  align2d.shift(projection, t)``: its transform is multiplied by exp(+2πi k·t/b)) and
  transformed (``rfft2`` of the image with pixel b//2 on index 0); the samples within
  ``max_freq`` (digital frequency, 0.5 = Nyquist) are kept;
* image frequency (v along x, u along y) lies at 3-D frequency ``pad·(v·A[0] + u·A[1])``
  (A = ``projection.euler_matrix``, ZYZ, RELION's convention; the same formula the projector
  samples) on a grid padded ``pad`` times (2 by default), the map's transform stored as an
  ``rfftn`` half (x ≥ 0): a sample with x < 0 is inserted at −k with its complex conjugate;
* insertion is trilinear: each sample adds w·(value) and w·(weight) to the 8 grid nodes around
  it (w the trilinear weights), accumulated by ``np.bincount`` (real part, imaginary part and
  weight separately); the weight of a sample is 1 (phase-flipped images) or CTF² (the value
  then CTF·image: the Wiener numerator);
* Hermitian symmetry: the rfft2 column v = 0 holds both u and −u, which are mirrors of each
  other in 3-D, so its samples count ½; the 3-D plane x = 0 receives only one of every mirror
  pair, so its values and weights are symmetrised at the end, F(0, y, z) += conj F(0, −y, −z);
* point-group symmetry: every image is inserted once per group operator S with matrix A·S
  (``projection.symmetry_matrices``; a projection of a symmetric map at A equals its
  projection at A·S);
* the map's transform is Σ w·value / max(Σ w, floor) (floor = ``WEIGHT_FLOOR`` × the mean
  weight of the sampled nodes within ``max_freq``, a Wiener-like guard against dividing by
  nearly empty nodes), zero beyond ``max_freq``; the padded map is inverted by ``irfftn``,
  its central b³ kept and divided by the real-space transform of the trilinear kernel,
  sinc²(π x/p) per axis (p = pad·b, x in voxels from the centre: the gridding correction).

Units: frequencies in 1/Å where stated, pixel sizes in Å; images and maps float32 (z, y, x),
transforms complex64; accumulators float64.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from cryovalid.kernels import fourier
from cryovalid.kernels.projection import euler_matrix, symmetry_matrices

PAD = 2
WEIGHT_FLOOR = 1e-3  # × the mean weight of the sampled nodes: the smallest divisor
CHUNK_SAMPLES = 2_000_000  # (image, operator, frequency) samples inserted at once
MAX_BOX = 128  # largest working box of the items' reconstructions (memory, time)
FLIP, WIENER = "flip", "wiener"


class Backprojector:
    """Accumulates images of a box ``box`` (px) into a padded Fourier grid (module
    docstring); :meth:`insert` any number of times, :meth:`volume` at any time."""

    def __init__(self, box: int, symmetry: str = "c1", pad: int = PAD,
                 max_freq: float = 0.5):
        b = int(box)
        self.box, self.pad, self.max_freq = b, int(pad), float(max_freq)
        self.size = p = self.pad * b
        self.half = h = p // 2 + 1
        u = np.fft.fftfreq(b) * b  # integer frequencies along y
        v = np.fft.rfftfreq(b) * b  # along x
        vv, uu = np.meshgrid(v, u)  # (b, b//2+1)
        # the rfft2 Nyquist column (v = b/2) is its own mirror: left out (it is at the edge)
        self.inside = (np.hypot(uu, vv) <= self.max_freq * b + 1e-6) & (vv < b / 2)
        self._u = uu[self.inside].astype(np.float32)
        self._v = vv[self.inside].astype(np.float32)
        self._half_weight = np.where(self._v == 0, 0.5, 1.0).astype(np.float32)
        self.symmetry = symmetry
        self._ops = symmetry_matrices(symmetry).astype(np.float64)
        self.re = np.zeros(p * p * h)
        self.im = np.zeros(p * p * h)
        self.weight = np.zeros(p * p * h)
        self.n_images = 0

    @property
    def n_samples(self) -> int:
        """Image frequencies kept per image (within ``max_freq``)."""
        return int(self._u.size)

    def samples(self, images: np.ndarray, shifts=None) -> np.ndarray:
        """(n, q) complex64: the kept transform samples of images (n, b, b), each shifted back
        by its content shift t = (dx, dy) px (``shifts`` (n, 2); none when None)."""
        imgs = np.asarray(images, dtype=np.float32)
        ft = scipy.fft.rfft2(np.fft.ifftshift(imgs, axes=(-2, -1)),
                             workers=fourier.workers())[:, self.inside]
        if shifts is not None:
            t = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
            b = self.box
            ph = 2 * np.pi * (self._v[None, :] * t[:, 0, None] + self._u[None, :] * t[:, 1, None]) / b
            ft = ft * np.exp(1j * ph).astype(np.complex64)
        return ft.astype(np.complex64, copy=False)

    def insert(self, samples: np.ndarray, eulers, ctf=None, mode: str = FLIP):
        """Add images given by their :meth:`samples` (n, q) at Euler angles (n, 3) degrees.
        ``ctf`` (n, b, b//2+1) on the rfft2 grid (None: no CTF): with ``mode`` "flip" the
        samples are multiplied by sign(CTF) and weigh 1 (phase flipping), with "wiener" by
        CTF and weigh CTF²."""
        samples = np.asarray(samples)
        n = len(samples)
        if n == 0:
            return
        mats = euler_matrix(np.asarray(eulers, dtype=np.float64).reshape(-1, 3))
        c = None if ctf is None else np.asarray(ctf, dtype=np.float32)[:, self.inside]
        if c is None:
            vals, wts = samples, None
        elif mode == FLIP:
            vals, wts = samples * np.sign(c), None
        else:
            vals, wts = samples * c, c * c
        k = len(self._ops)
        step = max(1, int(CHUNK_SAMPLES // (k * self.n_samples)))
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            m = (mats[lo:hi, None] @ self._ops[None]).reshape(-1, 3, 3)  # A·S
            val = np.repeat(vals[lo:hi], k, axis=0)
            w = None if wts is None else np.repeat(wts[lo:hi], k, axis=0)
            self._insert(val, m, w)
        self.n_images += n

    def _insert(self, vals, mats, wts):
        p, h = self.size, self.half
        m = mats.astype(np.float32)
        # 3-D frequency (x, y, z) of every sample, padded-grid units: (c, q, 3)
        k = self.pad * (self._v[None, :, None] * m[:, None, 0, :]
                        + self._u[None, :, None] * m[:, None, 1, :])
        neg = k[..., 0] < 0
        k[neg] *= -1
        vals = np.where(neg, np.conj(vals), vals)
        hw = self._half_weight[None, :]
        re = (vals.real * hw).ravel()
        im = (vals.imag * hw).ravel()
        bw = np.broadcast_to(hw, vals.shape) if wts is None else hw * wts
        bw = np.ascontiguousarray(bw, dtype=np.float32).ravel()
        f = np.floor(k)
        fr = (k - f).reshape(-1, 3)
        i0 = f.astype(np.int64).reshape(-1, 3)
        size = p * p * h
        for dz in (0, 1):
            wz = fr[:, 2] if dz else 1 - fr[:, 2]
            iz = (i0[:, 2] + dz) % p
            for dy in (0, 1):
                wy = fr[:, 1] if dy else 1 - fr[:, 1]
                izy = (iz * p + (i0[:, 1] + dy) % p) * h
                wzy = wz * wy
                for dx in (0, 1):
                    wx = fr[:, 0] if dx else 1 - fr[:, 0]
                    ix = np.minimum(i0[:, 0] + dx, h - 1)  # x = p/2 + 1 only with weight 0
                    idx = izy + ix
                    w = wzy * wx
                    self.re += np.bincount(idx, weights=w * re, minlength=size)
                    self.im += np.bincount(idx, weights=w * im, minlength=size)
                    self.weight += np.bincount(idx, weights=w * bw, minlength=size)

    def transform(self) -> np.ndarray:
        """(p, p, p//2+1) complex128: the estimate Σ w·value / max(Σ w, floor) of the padded
        map's transform (origin on index 0), x = 0 plane symmetrised, 0 beyond max_freq."""
        p, h = self.size, self.half
        f = (self.re + 1j * self.im).reshape(p, p, h)
        w = self.weight.reshape(p, p, h).copy()
        mz = (-np.arange(p)) % p
        f0 = f[:, :, 0]
        w0 = w[:, :, 0]
        f[:, :, 0] = f0 + np.conj(f0[mz][:, mz])
        w[:, :, 0] = w0 + w0[mz][:, mz]
        z = np.fft.fftfreq(p) * p
        x = np.arange(h, dtype=np.float64)
        r = np.sqrt(z[:, None, None] ** 2 + z[None, :, None] ** 2 + x[None, None, :] ** 2)
        inside = r <= self.max_freq * p + 1e-6
        sampled = inside & (w > 0)
        floor = WEIGHT_FLOOR * (float(w[sampled].mean()) if sampled.any() else 1.0)
        out = np.where(inside, f / np.maximum(w, floor), 0.0)
        return out

    def volume(self) -> np.ndarray:
        """(b, b, b) float32: the reconstruction (module docstring), voxel b//2 the centre."""
        p, b = self.size, self.box
        big = scipy.fft.irfftn(self.transform().astype(np.complex64), s=(p, p, p),
                               workers=fourier.workers())
        big = np.fft.fftshift(big)
        o = p // 2 - b // 2
        vol = big[o:o + b, o:o + b, o:o + b]
        x = (np.arange(b) - b // 2) / p
        g = np.sinc(x) ** 2  # numpy's sinc is sin(πx)/(πx)
        vol = vol / (g[:, None, None] * g[None, :, None] * g[None, None, :])
        return np.ascontiguousarray(vol, dtype=np.float32)


def working_pixel(map_shape, voxel_size: float, resolution: float,
                  max_box: int = MAX_BOX) -> float:
    """Å per pixel of the reconstructions' working grid: R/2 (the reference's), or the map's
    largest edge / ``max_box`` when the R/2 grid would have more than ``max_box`` pixels (the
    accumulators of a box b take 3·(2b)²·(b+1)·8 bytes: 200 MB at 128)."""
    edge = max(int(v) for v in map_shape) * float(voxel_size)
    return max(float(resolution) / 2.0, edge / float(max_box))


def reconstruct(images, eulers, shifts=None, ctf=None, mode: str = FLIP,
                symmetry: str = "c1", pad: int = PAD, max_freq: float = 0.5) -> np.ndarray:
    """(b, b, b) float32 map from images (n, b, b) at Euler angles (n, 3) degrees with content
    shifts (n, 2) px and CTFs (n, b, b//2+1) (module docstring)."""
    images = np.asarray(images, dtype=np.float32)
    bp = Backprojector(images.shape[-1], symmetry=symmetry, pad=pad, max_freq=max_freq)
    step = 512
    for lo in range(0, len(images), step):
        sl = slice(lo, lo + step)
        bp.insert(bp.samples(images[sl], None if shifts is None else np.asarray(shifts)[sl]),
                  np.asarray(eulers)[sl], None if ctf is None else ctf[sl], mode)
    return bp.volume()


def fsc_curve(vol1: np.ndarray, vol2: np.ndarray, pixel_size: float):
    """(frequency (n_shells,) 1/Å, FSC (n_shells,)) of two maps on the same grid, on shells
    one voxel wide (kernels/fsc.fsc with kernels/fourier.FourierShells)."""
    from cryovalid.kernels.fsc import fsc

    shells = fourier.FourierShells(vol1.shape, pixel_size)
    f1 = scipy.fft.rfftn(np.asarray(vol1, dtype=np.float32), workers=fourier.workers())
    f2 = scipy.fft.rfftn(np.asarray(vol2, dtype=np.float32), workers=fourier.workers())
    return shells.frequency, fsc(f1, f2, shells)


def resolution_at(frequency, curve, threshold: float):
    """(resolution Å, how): where ``curve`` first drops below ``threshold`` (kernels/fsc's
    first_crossing, linear interpolation, the DC shell ignored). ``how`` is "crosses";
    "at_start" when it is below already at the first shell (the resolution of that shell is
    given: the box); "never" when it never drops (the Nyquist resolution is given)."""
    from cryovalid.kernels.fsc.crossings import AT_START, NEVER, first_crossing

    c = first_crossing(frequency, curve, threshold, mode="below", start=1)
    if c.status == NEVER:
        return 1.0 / float(frequency[-1]), NEVER
    if c.status == AT_START:
        return 1.0 / float(frequency[1]), AT_START
    return float(c.resolution), c.status


def match_directions(images: np.ndarray, gallery: np.ndarray, gallery_eulers: np.ndarray,
                     n_angles: int | None = None, chunk: int = 128):
    """Projection matching without a shift search: every image (n, b, b) against every gallery
    image (m, b, b) at every in-plane angle (polar resampling and an FFT along the angle, as
    kernels/align2d's coarse search, rings weighted by their radius); returns ((n, 3) Euler
    angles (rot, tilt of the best gallery image, psi the in-plane angle) in degrees, (n,) the
    best correlation). An image is matched as ``image ≈ rotate(reference, psi)``, so its
    angles are (rot, tilt, psi) (kernels/align2d module docstring)."""
    from cryovalid.kernels import align2d

    b = images.shape[-1]
    n_angles = n_angles or align2d.n_angles_for(b)
    gal = align2d._polar_spectra(align2d.polar(np.asarray(gallery, np.float32), n_angles))
    gal = np.ascontiguousarray(gal.transpose(2, 1, 0))  # (K, R, m)
    n = len(images)
    best = np.empty(n, dtype=np.int64)
    psi = np.empty(n)
    score = np.empty(n)
    for lo in range(0, n, chunk):
        ci = align2d._polar_spectra(align2d.polar(np.asarray(images[lo:lo + chunk],
                                                             np.float32), n_angles))
        ci = np.ascontiguousarray(np.conj(ci).transpose(2, 0, 1))  # (K, c, R)
        x = np.empty((ci.shape[1], gal.shape[2], gal.shape[0]), dtype=np.complex64)
        for k in range(gal.shape[0]):  # one BLAS product per angular frequency
            x[:, :, k] = ci[k] @ gal[k]
        cc = scipy.fft.irfft(x, n=n_angles, axis=-1, workers=fourier.workers())  # (c, m, A)
        del x
        j = cc.argmax(axis=-1)  # (c, m)
        top = np.take_along_axis(cc, j[..., None], axis=-1)[..., 0]
        del cc
        g = top.argmax(axis=1)
        rows = np.arange(len(g))
        best[lo:lo + len(g)] = g
        psi[lo:lo + len(g)] = (j[rows, g] * 360.0 / n_angles) % 360.0
        score[lo:lo + len(g)] = top[rows, g]
    e = np.asarray(gallery_eulers, dtype=np.float64)[best].copy()
    e[:, 2] = psi
    return e, score
