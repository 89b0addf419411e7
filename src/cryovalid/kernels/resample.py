"""The reference's "resized map": the map resampled so that its Nyquist frequency is 1/R.

The reference (Xmipp crop/resize) resamples to Ts' = R/2 with a box of 2·floor(N·Ts/Ts'/2)
voxels (always even), low-passing first, and builds a hard mask on it with the same recipe
(threshold T, largest component, dilation by ceil(2 Å / Ts')). We resample by Fourier cropping,
which keeps the physical box and the grey levels and is exact for a band-limited map. The box
is 2·ceil(n·Ts/Ts'/2) per axis (non-cubic boxes too), so the voxel spacing along axis i is
L_i/M_i (L_i = n_i·Ts): R/2 or slightly less, never more, so the grid still holds 1/R.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage

from cryovalid.kernels import masks
from cryovalid.kernels.filterbank import FilterBank, fourier_resample
from cryovalid.kernels.fourier import rfft


def resized_shape(shape, voxel_size: float, target_voxel_size: float):
    """Box of the resampled map: 2·ceil(n·Ts/Ts'/2) per axis (even), never larger than the
    original (a map is never upsampled: when Ts' <= Ts the original grid is kept).

    The reference resamples to exactly Ts' and then crops the box to 2·floor(n·Ts/Ts'/2). A
    Fourier crop keeps the box instead, so the voxel size is n·Ts/M; rounding M up keeps it at
    or below Ts' = R/2, so that frequencies up to 1/R stay on the grid."""
    out = []
    for n in shape:
        m = 2 * int(math.ceil(n * voxel_size / target_voxel_size / 2.0 - 1e-9))
        out.append(n if (m >= n or m < 8) else m)
    return tuple(out)


@dataclass
class ResampledMap:
    """A map on a coarser grid of the same box.

    Attributes
    ----------
    data : float32 (z, y, x) on the coarse grid
    lengths : (Lz, Ly, Lx) box lengths in Å (unchanged by resampling)
    original_shape : shape of the map it came from
    target_voxel_size : the Ts' that was asked for (R/2), Å
    threshold : the density threshold T used for the hard mask
    """

    data: np.ndarray
    lengths: tuple
    original_shape: tuple
    target_voxel_size: float
    threshold: float

    @property
    def shape(self):
        return self.data.shape

    @property
    def spacing(self):
        """Voxel size along z, y, x in Å."""
        return tuple(L / n for L, n in zip(self.lengths, self.shape))

    @property
    def voxel_size(self) -> float:
        """Nominal (mean) voxel size in Å."""
        return float(np.mean(self.spacing))

    @property
    def is_original_grid(self) -> bool:
        return tuple(self.shape) == tuple(self.original_shape)

    @cached_property
    def hard_mask(self) -> np.ndarray:
        """The reference's resized hard mask: V' >= T, largest component, dilated ceil(2/Ts')."""
        return masks.hard_mask(self.data, self.threshold, self.voxel_size)

    ft: np.ndarray | None = None  # rfft of ``data`` when already known (original grid)

    @cached_property
    def bank(self) -> FilterBank:
        """The filter bank of the resampled map (one forward FFT, shared by 0.f and 0.g)."""
        ft = self.ft if self.ft is not None else rfft(self.data)
        return FilterBank(ft, self.shape, self.lengths)

    def to_original(self, values: np.ndarray, flat_index: np.ndarray) -> np.ndarray:
        """Trilinear (periodic) interpolation of a coarse-grid volume at voxels of the original
        grid given by their flat indices; returns float32 values."""
        if self.is_original_grid:
            return np.asarray(values, dtype=np.float32).ravel()[flat_index]
        zyx = np.unravel_index(flat_index, self.original_shape)
        coords = np.stack([idx.astype(np.float32) * (m / n) for idx, m, n in
                           zip(zyx, self.shape, self.original_shape)])
        return ndimage.map_coordinates(np.asarray(values, np.float32), coords, order=1,
                                       mode="grid-wrap").astype(np.float32)


def resample_map(data, ft, voxel_size: float, target_voxel_size: float,
                 threshold: float) -> ResampledMap:
    """Fourier-crop a map (given with its rfft) to the reference's resized box."""
    shape = tuple(data.shape)
    new_shape = resized_shape(shape, voxel_size, target_voxel_size)
    lengths = tuple(n * float(voxel_size) for n in shape)
    if new_shape == shape:
        return ResampledMap(data=np.asarray(data, dtype=np.float32), lengths=lengths,
                            original_shape=shape, target_voxel_size=float(voxel_size),
                            threshold=float(threshold), ft=ft)
    small = fourier_resample(ft, shape, new_shape)
    return ResampledMap(data=small, lengths=lengths, original_shape=shape,
                        target_voxel_size=float(target_voxel_size), threshold=float(threshold))
