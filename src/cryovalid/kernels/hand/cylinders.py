"""Sampling a map on cylinders and planes about an axis; refining the axis.

Part of :mod:`cryovalid.kernels.hand` (the method is described there)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from cryovalid.kernels.hand.constants import REFINE_MAX_ITERATIONS, REFINE_TOLERANCE
from cryovalid.kernels.hand.geometry import perpendicular_frame
from cryovalid.kernels.hand.grids import Grid
from cryovalid.kernels.hand.rods import Segment, _fit_line


def sample_cylinder(grid: Grid, centre, direction, radii, n_phi, z_values, order=1):
    """Density on a cylindrical grid around an axis: array (n_r, n_phi, n_z) float32.

    Point (r, φ, z) = centre + z·d + r·(cos φ·u + sin φ·v), (u, v, d) right-handed in world
    x, y, z (see :func:`perpendicular_frame`); φ = 2πk/n_phi. Outside the box: 0."""
    u, v = perpendicular_frame(direction)
    d = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
    phi = 2.0 * np.pi * np.arange(n_phi) / n_phi
    r = np.asarray(radii, dtype=np.float64)[:, None, None]
    cp, sp = np.cos(phi)[None, :, None], np.sin(phi)[None, :, None]
    z = np.asarray(z_values, dtype=np.float64)[None, None, :]
    pts = (np.asarray(centre)[None, None, None, :] + z[..., None] * d
           + r[..., None] * (cp[..., None] * u + sp[..., None] * v))
    idx = grid.to_index(pts.reshape(-1, 3)).T
    vals = ndimage.map_coordinates(grid.data, idx, order=order, mode="constant", cval=0.0,
                                   prefilter=False)
    return vals.reshape(len(radii), n_phi, -1).astype(np.float32)


def sample_planes(grid: Grid, centre, direction, half_width, step, z_values, order=1):
    """Density on square planes perpendicular to an axis: (n_z, n, n) plus the in-plane
    coordinates (a, b) in Å along (u, v)."""
    u, v = perpendicular_frame(direction)
    d = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
    a = np.arange(-half_width, half_width + 1e-9, step)
    z = np.asarray(z_values, dtype=np.float64)
    pts = (np.asarray(centre)[None, None, None, :] + z[:, None, None, None] * d
           + a[None, :, None, None] * u + a[None, None, :, None] * v)
    idx = grid.to_index(pts.reshape(-1, 3)).T
    vals = ndimage.map_coordinates(grid.data, idx, order=order, mode="constant", cval=0.0,
                                   prefilter=False)
    return vals.reshape(z.size, a.size, a.size), a


def refine_axis(grid: Grid, seg: Segment, iterations=REFINE_MAX_ITERATIONS, radius=4.0,
                step=1.0, tolerance=REFINE_TOLERANCE):
    """Refit a segment's axis to the density centroids of slices perpendicular to it (positive
    density within ``radius`` Å of the current axis, one slice per ``step`` Å), repeated until
    the axis moves less than ``tolerance`` (Å sideways, and that many Å over the segment's
    half length in tilt) or ``iterations`` times. The centre keeps its place along the axis
    (the nearest point of the new axis), so a segment cannot slide out of its helix."""
    c, d = np.asarray(seg.centre, float), np.asarray(seg.direction, float)
    half = 0.5 * seg.length
    for _ in range(iterations):
        z = np.arange(-half, half + 1e-9, step)
        planes, a = sample_planes(grid, c, d, radius, 0.5, z)
        aa, bb = np.meshgrid(a, a, indexing="ij")
        disc = (aa * aa + bb * bb) <= radius * radius
        w = np.clip(planes, 0.0, None) * disc
        tot = w.sum(axis=(1, 2))
        good = tot > 0
        if good.sum() < 3:
            break
        ca = (w * aa).sum(axis=(1, 2))[good] / tot[good]
        cb = (w * bb).sum(axis=(1, 2))[good] / tot[good]
        u, v = perpendicular_frame(d)
        pts = c + z[good, None] * d + ca[:, None] * u + cb[:, None] * v
        c2, d2, _, _ = _fit_line(pts, tot[good].astype(np.float64))
        if np.dot(d2, d) < 0:
            d2 = -d2
        c2 = c2 + np.dot(c - c2, d2) * d2  # the point of the new axis nearest the old centre
        rel = c2 - c
        shift = float(np.linalg.norm(rel - np.dot(rel, d) * d))
        tilt = float(np.linalg.norm(d2 - d)) * max(half, 1.0)
        c, d = c2, d2
        if shift < tolerance and tilt < tolerance:
            break
    return Segment(c, d, seg.length, seg.thickness, seg.n_voxels)
