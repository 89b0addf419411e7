"""Similarity of particles with the map's projections at their assigned orientations (item 4.a;
vrs_level2_5.md §3.1 and §6.6): the CTF-modulated, shifted projection of each particle
(:func:`reprojections`), a raised-cosine low-pass (:func:`raised_cosine_lowpass`), Pearson's
correlation within the circle of radius box/2 (kernels/align2d.pearson) and the IMage
Euclidean Distance (:func:`imed`).

IMED (Wang, Zhang & Feng 2005, "On the Euclidean distance of images", IEEE TPAMI 27:1334; as
Xmipp's ``imedDistance``, filters.cpp): with d = a − b,

    IMED² = Σ_p d(p) · Σ_{|kx|,|ky| ≤ 3} g(k) d(p + k),   g(x, y) = exp(−(x² + y²)/2) / √(2π)

(σ = 1 px, peak 1/√(2π) ≈ 0.3989, not normalised to sum 1), the outer sum over the pixels p
at least 3 px from every edge of the image and inside the inscribed circle ((i − b//2)² +
(j − b//2)² ≤ (b//2)²), and IMED its square root. Units: those of the images' grey values.
The 7 × 7 Gaussian is separable, so the inner sum is two 1-D correlations (batched over
images). Images are (..., y, x) with pixel b//2 the centre (kernels/align2d's conventions).
"""
from __future__ import annotations

import numpy as np
import scipy.fft
from scipy import ndimage

from cryovalid.kernels import fourier

IMED_HALF = 3  # the Gaussian window is (2·3 + 1)² pixels; this border is skipped
IMED_SIGMA = 1.0  # px
RAISED_WIDTH = 0.02  # cycles/px: the raised-cosine band of the low-pass (Xmipp's raised_w)


def imed_weights() -> np.ndarray:
    """(7, 7) float64 g(x, y) = exp(−(x² + y²)/(2σ²))/√(2π) for x, y in −3..3."""
    x = np.arange(-IMED_HALF, IMED_HALF + 1, dtype=np.float64)
    r2 = x[:, None] ** 2 + x[None, :] ** 2
    return np.exp(-r2 / (2 * IMED_SIGMA ** 2)) / np.sqrt(2 * np.pi)


def imed_region(box_y: int, box_x: int) -> np.ndarray:
    """Boolean (y, x): the pixels IMED sums over (3 px from the edges, inscribed circle)."""
    i = np.arange(box_y)[:, None]
    j = np.arange(box_x)[None, :]
    h = IMED_HALF
    inside = (i >= h) & (i < box_y - h) & (j >= h) & (j < box_x - h)
    r2 = (box_y // 2) ** 2
    return inside & ((i - box_y // 2) ** 2 + (j - box_x // 2) ** 2 <= r2)


def imed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IMED (module docstring) of each pair of images a[i], b[i] (..., y, x); float64 (...)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    x = np.arange(-IMED_HALF, IMED_HALF + 1, dtype=np.float64)
    g1 = np.exp(-x * x / (2 * IMED_SIGMA ** 2))  # g = g1(x)·g1(y)/√(2π)
    # the region never reaches the border, so the boundary mode does not matter
    conv = ndimage.correlate1d(d, g1, axis=-1, mode="constant")
    conv = ndimage.correlate1d(conv, g1, axis=-2, mode="constant") / np.sqrt(2 * np.pi)
    region = imed_region(d.shape[-2], d.shape[-1])
    s = (d * conv * region).sum(axis=(-2, -1))
    return np.sqrt(np.maximum(s, 0.0))


def raised_cosine_lowpass(box: int, cutoff: float, width: float = RAISED_WIDTH) -> np.ndarray:
    """(b, b//2+1) float32 filter on the rfft2 grid: 1 up to ``cutoff`` (cycles/px), a raised
    cosine down to 0 at cutoff + width, 0 beyond (Xmipp's LOWPASS with raised_w)."""
    ky = np.fft.fftfreq(box)[:, None]
    kx = np.fft.rfftfreq(box)[None, :]
    f = np.hypot(kx, ky)
    t = np.clip((f - cutoff) / width, 0.0, 1.0)
    return (0.5 * (1.0 + np.cos(np.pi * t))).astype(np.float32)


def shift_phases(box: int, shifts) -> np.ndarray:
    """(n, b, b//2+1) complex64: the rfft2 factors that move an image's content by +t
    ((n, 2) px, (dx, dy)); as kernels/align2d.shift."""
    t = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
    ky = np.fft.fftfreq(box)[None, :, None]
    kx = np.fft.rfftfreq(box)[None, None, :]
    return np.exp(-2j * np.pi * (kx * t[:, 0, None, None]
                                 + ky * t[:, 1, None, None])).astype(np.complex64)


def reprojections(projections: np.ndarray, ctf, shifts, lowpass=None) -> np.ndarray:
    """(n, b, b) float32: the projections multiplied by their CTF ((n, b, b//2+1) or None),
    moved by ``shifts`` (n, 2) px and low-passed by ``lowpass`` ((b, b//2+1) or None)."""
    b = projections.shape[-1]
    ft = scipy.fft.rfft2(projections, workers=fourier.workers())
    ft *= shift_phases(b, shifts)
    if ctf is not None:
        ft *= ctf
    if lowpass is not None:
        ft *= lowpass
    return scipy.fft.irfft2(ft, s=(b, b), workers=fourier.workers()).astype(np.float32)


def filtered(images: np.ndarray, lowpass: np.ndarray) -> np.ndarray:
    """(n, b, b) float32 images low-passed by ``lowpass`` (b, b//2+1)."""
    b = images.shape[-1]
    ft = scipy.fft.rfft2(images, workers=fourier.workers()) * lowpass
    return scipy.fft.irfft2(ft, s=(b, b), workers=fourier.workers()).astype(np.float32)


def grey_fit(reference: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n, b, b) float32: a·reference + c with (a, c) the least-squares fit of each image
    within ``mask`` (the grey-level adjustment of Xmipp's continuous assignment)."""
    m = mask.astype(np.float64)
    k = m.sum()
    r = np.asarray(reference, dtype=np.float64)
    im = np.asarray(image, dtype=np.float64)
    mr = (r * m).sum(axis=(-2, -1), keepdims=True) / k
    mi = (im * m).sum(axis=(-2, -1), keepdims=True) / k
    rc = (r - mr) * m
    cov = (rc * (im - mi)).sum(axis=(-2, -1), keepdims=True)
    var = (rc * rc).sum(axis=(-2, -1), keepdims=True)
    a = cov / np.maximum(var, 1e-30)
    return (a * (r - mr) + mi).astype(np.float32)

