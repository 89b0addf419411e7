"""Masks as the reference builds them (Xmipp "create 3d mask"), and the helpers around them.

Hard mask: V >= T, keep the largest 26-connected component, dilate ceil(2 Å / Ts) times with the
18-neighbourhood (faces and edges). Soft mask: the hard mask smoothed by a periodic Gaussian of
sigma sqrt(2) voxels (Xmipp's "real_gaussian 2" transfer function exp(-pi² f² sigma²) is a
real-space Gaussian of sigma/sqrt(2)), negatives clipped to 0.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)
NEIGHBOURHOOD_18 = ndimage.generate_binary_structure(3, 2)
DILATION_A = 2.0
SOFT_SIGMA_VOXELS = math.sqrt(2.0)


def label_components(binary: np.ndarray):
    """26-connected components: returns (labels int32, sizes per label with sizes[0] = 0)."""
    labels, n = ndimage.label(binary, structure=CONNECTIVITY_26)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return labels, sizes


def largest_component(binary: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean volume (all False if it is empty)."""
    labels, sizes = label_components(binary)
    if sizes.size <= 1 or sizes.max() == 0:
        return np.zeros_like(binary, dtype=bool)
    return labels == int(np.argmax(sizes))


def dilation_steps(voxel_size: float, distance_A: float = DILATION_A) -> int:
    """Number of 18-neighbourhood dilation steps for a given distance (ceil(d/Ts), at least 1)."""
    return max(1, int(math.ceil(distance_A / voxel_size - 1e-9)))


def hard_mask(vol: np.ndarray, threshold: float, voxel_size: float) -> np.ndarray:
    """Boolean hard mask: largest component of vol >= threshold, dilated by 2 Å."""
    core = largest_component(vol >= threshold)
    if not core.any():
        return core
    return ndimage.binary_dilation(core, structure=NEIGHBOURHOOD_18,
                                   iterations=dilation_steps(voxel_size))


def soft_mask(hard: np.ndarray) -> np.ndarray:
    """Float32 soft mask in [0, 1]: the hard mask blurred by a periodic Gaussian (sigma sqrt 2)."""
    soft = ndimage.gaussian_filter(hard.astype(np.float32), SOFT_SIGMA_VOXELS, mode="wrap")
    np.clip(soft, 0.0, 1.0, out=soft)
    return soft


def spherical_mask(shape, radius: float, edge_sigma: float = 0.0) -> np.ndarray:
    """Float32 sphere centred in the box (radius in voxels), with an optional Gaussian edge."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    r2 = sum((g - (n // 2)) ** 2 for g, n in zip(grids, shape))
    r = np.sqrt(r2).astype(np.float32)
    if edge_sigma <= 0:
        return (r <= radius).astype(np.float32)
    out = np.ones(shape, dtype=np.float32)
    outside = r > radius
    out[outside] = np.exp(-0.5 * ((r[outside] - radius) / edge_sigma) ** 2)
    return out
