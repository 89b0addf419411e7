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
# "One body" at a threshold (0.b's criteria, also the automatic threshold's sanity check): the
# largest MAX_COMPONENTS_95 components hold 95 % of the voxels, and at most MAX_OUTSIDE_FRACTION
# of them lie outside the largest component.
MAX_COMPONENTS_95 = 5
MAX_OUTSIDE_FRACTION = 0.10


def label_components(binary: np.ndarray):
    """26-connected components: returns (labels int32, sizes per label with sizes[0] = 0)."""
    labels, n = ndimage.label(binary, structure=CONNECTIVITY_26)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return labels, sizes


def component_stats(binary: np.ndarray):
    """Connectivity of a boolean volume, or None if it is empty: a dict with ``n_components``,
    ``n_components_95`` (how many of the largest hold 95 % of the voxels),
    ``outside_largest_fraction``, ``second_fraction`` (the second largest / all), ``sizes``
    (descending), ``passes`` (the one-body criteria above) and ``largest`` (its boolean mask)."""
    labels, sizes = label_components(binary)
    n = int(sizes.sum())
    if n == 0:
        return None
    order = np.argsort(sizes[1:])[::-1] + 1
    comp = sizes[order]
    cum = np.cumsum(comp) / n
    n95 = int(np.searchsorted(cum, 0.95 - 1e-12) + 1)
    outside = 1.0 - comp[0] / n
    second = comp[1] / n if comp.size > 1 else 0.0
    return {"n_components": int(comp.size), "n_components_95": n95,
            "outside_largest_fraction": float(outside), "second_fraction": float(second),
            "sizes": comp, "largest": labels == int(order[0]),
            "passes": n95 <= MAX_COMPONENTS_95 and outside <= MAX_OUTSIDE_FRACTION}


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


def dilate(binary: np.ndarray, distance_A: float, voxel_size: float) -> np.ndarray:
    """Grow a boolean volume by at least ``distance_A`` Å in every direction (a cube of half-width
    ceil(d/Ts) voxels: separable, so it costs a few passes over the box whatever the distance)."""
    k = int(math.ceil(distance_A / voxel_size - 1e-9))
    if k <= 0:
        return binary.copy()
    return ndimage.maximum_filter(binary, size=2 * k + 1, mode="constant")


def distance_from(binary: np.ndarray, voxel_size: float, max_side: int = 128) -> np.ndarray:
    """Euclidean distance in Å of every voxel from the True voxels of ``binary`` (0 on them).

    For a box larger than ``max_side`` voxels per side it is computed on bins of b³ voxels
    (b = ceil(largest side / max_side); a bin is set when any of its voxels is) and read back
    at every voxel, minus the bin's diagonal (b − 1)·√3·Ts, so that it never exceeds the true
    distance: a 360³ box costs the distance transform of a 120³ one. float32."""
    b = max(1, int(math.ceil(max(binary.shape) / max_side)))
    if b == 1:
        return (ndimage.distance_transform_edt(~binary) * voxel_size).astype(np.float32)
    small = ndimage.maximum_filter(binary, size=b, mode="constant", origin=-(b // 2))[::b, ::b, ::b]
    d = ndimage.distance_transform_edt(~small).astype(np.float32) * np.float32(b * voxel_size)
    d = np.maximum(d - np.float32((b - 1) * math.sqrt(3.0) * voxel_size), 0.0)
    idx = [np.arange(n) // b for n in binary.shape]
    return d[idx[0][:, None, None], idx[1][None, :, None], idx[2][None, None, :]]


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
