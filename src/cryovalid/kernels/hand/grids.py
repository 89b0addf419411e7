"""The working grids of the hand test: a map with its voxel and origin, Fourier resampling and low-pass transfer functions (the filter bank's).

Part of :mod:`cryovalid.kernels.hand` (the method is described there)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from cryovalid.kernels import filterbank
from cryovalid.kernels.fourier import workers


@dataclass
class Grid:
    """A (z, y, x) float32 volume with per-axis voxel size (Å, in x, y, z order) and origin."""

    data: np.ndarray
    voxel: np.ndarray  # (3,) Å per voxel along x, y, z
    origin: np.ndarray  # (3,) world x, y, z of voxel (0, 0, 0)

    def to_index(self, xyz):
        """Fractional (z, y, x) indices of world points (..., 3)."""
        return ((np.asarray(xyz) - self.origin) / self.voxel)[..., ::-1]

    def to_world(self, zyx):
        return np.asarray(zyx, dtype=np.float64)[..., ::-1] * self.voxel + self.origin


def _cropped_shape(shape, voxel_size, target):
    return tuple(max(8, min(n, int(round(n * voxel_size / target)))) for n in shape)


def fourier_resample(data, voxel_size: float, target: float, filt=None, ft=None) -> tuple:
    """Fourier-crop a map to about ``target`` Å per voxel (never finer than the map's own) and
    multiply by ``filt(s)`` (s in 1/Å) on the way (the filter bank's resampling). ``ft``: the
    map's rfft if already computed. Returns (volume float32, voxel (x, y, z) Å); the voxel may
    differ slightly between axes. Values are preserved."""
    shape_in = data.shape
    shape_out = _cropped_shape(shape_in, voxel_size, target)
    if ft is None:
        ft = scipy.fft.rfftn(np.asarray(data, dtype=np.float32), workers=workers())
    voxel_zyx = np.array([n * voxel_size / m for n, m in zip(shape_in, shape_out)])
    out = filterbank.fourier_resample(ft, shape_in, shape_out, transfer=filt,
                                      voxel_size=voxel_zyx)
    return out, voxel_zyx[::-1].copy()


def raised_cosine_lowpass(resolution: float):
    """Transfer function of the low-pass used for map and templates alike: 1 below 0.9/R,
    raised cosine to 0 at 1/R (s in 1/Å) — the filter bank's low-pass with that edge."""
    return filterbank.raised_cosine_lowpass(0.9 / resolution, 0.1 / resolution)


def gaussian_lowpass(sigma: float):
    """Transfer function of a real-space Gaussian of ``sigma`` Å."""
    def filt(s):
        return np.exp(-2.0 * (np.pi * sigma * s) ** 2)
    return filt
