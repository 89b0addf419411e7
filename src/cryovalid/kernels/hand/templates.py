"""Ideal right- and left-handed α-helix templates rendered at the map's resolution, sampled on cylinders.

Part of :mod:`cryovalid.kernels.hand` (the method is described there)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

from cryovalid.kernels.fourier import frequency_magnitude, workers
from cryovalid.kernels.hand.constants import CYL_DZ, CYL_N_PHI, CYL_RADII
from cryovalid.kernels.hand.geometry import ideal_helix
from cryovalid.kernels.hand.grids import Grid, raised_cosine_lowpass
from cryovalid.kernels.hand.cylinders import sample_cylinder


def _deposit(xyz, weights, shape, voxel, origin):
    """Trilinear splatting of point weights onto a (z, y, x) grid."""
    grid = np.zeros(shape, dtype=np.float32)
    zyx = ((np.asarray(xyz) - np.asarray(origin)) / voxel)[:, ::-1]
    base = np.floor(zyx).astype(int)
    frac = (zyx - base).astype(np.float32)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                idx = base + np.array([dz, dy, dx])
                wz = frac[:, 0] if dz else 1 - frac[:, 0]
                wy = frac[:, 1] if dy else 1 - frac[:, 1]
                wx = frac[:, 2] if dx else 1 - frac[:, 2]
                ok = np.all((idx >= 0) & (idx < np.array(shape)), axis=1)
                np.add.at(grid, (idx[ok, 0], idx[ok, 1], idx[ok, 2]),
                          (weights * wz * wy * wx)[ok])
    return grid


def render_helix(resolution: float, voxel: float, n_residues: int = 48, mirror=False,
                 reverse=False, half_width: float = 12.0) -> Grid:
    """Ideal α-helix density (axis on world +z through (0, 0, 0)), low-passed exactly as the map
    (:func:`raised_cosine_lowpass` at ``resolution``), on a grid of ``voxel`` Å. ``mirror``
    gives the left-handed helix; ``reverse`` turns it end over end (180° about x)."""
    xyz, wts = ideal_helix(n_residues, mirror=mirror)
    if reverse:
        xyz = xyz * np.array([1.0, -1.0, -1.0])
    length = xyz[:, 2].max() - xyz[:, 2].min() + 2 * half_width
    nxy = int(math.ceil(2 * half_width / voxel)) // 2 * 2
    nz = int(math.ceil(length / voxel)) // 2 * 2
    shape = (nz, nxy, nxy)
    origin = -np.array([nxy // 2, nxy // 2, nz // 2], dtype=np.float64) * voxel
    vol = _deposit(xyz, wts, shape, voxel, origin)
    ft = scipy.fft.rfftn(vol, workers=workers())
    ft *= raised_cosine_lowpass(resolution)(frequency_magnitude(shape, voxel)).astype(np.float32)
    vol = scipy.fft.irfftn(ft, s=shape, workers=workers()).astype(np.float32)
    return Grid(vol, np.full(3, voxel), origin)


@dataclass
class Templates:
    """Cylindrical samplings (n_r, n_phi, n_z_long) of the ideal helix templates."""

    right: list  # [forward, reversed] right-handed
    left: list  # [forward, reversed] left-handed
    z_values: np.ndarray  # Å along the axis of the long samplings
    radii: np.ndarray
    n_phi: int


def make_templates(resolution, voxel, radii=CYL_RADII, n_phi=CYL_N_PHI, dz=CYL_DZ,
                   half_length=30.0) -> Templates:
    z = np.arange(-half_length, half_length + 1e-9, dz)
    out = {}
    for hand, mirror in (("right", False), ("left", True)):
        out[hand] = []
        for reverse in (False, True):
            g = render_helix(resolution, voxel, mirror=mirror, reverse=reverse)
            out[hand].append(sample_cylinder(g, np.zeros(3), np.array([0.0, 0.0, 1.0]), radii,
                                             n_phi, z))
    return Templates(out["right"], out["left"], z, np.asarray(radii), n_phi)
