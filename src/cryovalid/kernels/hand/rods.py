"""Rod detection: Hessian centre lines of the blurred map, split into straight, thin segments.

Part of :mod:`cryovalid.kernels.hand` (the method is described there)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy import ndimage

from cryovalid.kernels.fourier import (crop_spectrum, frequency_components, frequency_magnitude, workers)
from cryovalid.kernels.hand.constants import (DETECTION_SIGMA, DETECTION_VOXEL, LINK_ANGLE_DEG, MAX_SPLIT_DEPTH, MAX_THICKNESS, MIN_LENGTH, REGION_REACH, RIDGE_STEP, ROD_LEVEL_QUANTILE, ROD_ROUNDNESS, ROD_STRAIGHTNESS)
from cryovalid.kernels.hand.grids import Grid, _cropped_shape, gaussian_lowpass


@dataclass
class RodField:
    """Hessian analysis of the detection map at selected voxels (see :func:`rod_field`)."""

    grid: Grid  # the blurred detection map
    flat: np.ndarray  # flat indices of the analysed voxels
    eigenvalues: np.ndarray  # (n, 3) ascending, density per Å²
    eigenvectors: np.ndarray  # (n, 3, 3) columns in world x, y, z
    gradient: np.ndarray  # (n, 3) density per Å, world x, y, z


def rod_field(data, voxel_size, sigma=DETECTION_SIGMA, target=DETECTION_VOXEL, mask_fn=None,
              ft=None):
    """Gradient and Hessian eigen-decomposition of the map blurred for rod detection.

    The map is Fourier-cropped to ``target`` Å/voxel and blurred by a Gaussian of ``sigma`` Å;
    derivatives are taken in Fourier space (2πi s_i and −4π² s_i s_j), in world x, y, z. Only the
    voxels selected by ``mask_fn(grid)`` are analysed (all when None). ``ft``: the map's rfft
    if already computed."""
    shape_in = data.shape
    shape_out = _cropped_shape(shape_in, voxel_size, target)
    if ft is None:
        ft = scipy.fft.rfftn(np.asarray(data, dtype=np.float32), workers=workers())
    ft = crop_spectrum(ft, shape_in, shape_out)
    voxel_zyx = np.array([n * voxel_size / m for n, m in zip(shape_in, shape_out)])
    scale = np.float32(np.prod(shape_out) / np.prod(shape_in))
    s = frequency_magnitude(shape_out, voxel_zyx)
    ft *= (gaussian_lowpass(sigma)(s) * scale).astype(np.float32)
    del s
    grid = Grid(scipy.fft.irfftn(ft, s=shape_out, workers=workers()).astype(np.float32),
                voxel_zyx[::-1].copy(), np.zeros(3))
    sel = mask_fn(grid) if mask_fn is not None else np.ones(shape_out, dtype=bool)
    flat = np.flatnonzero(sel)
    comps = frequency_components(shape_out, voxel_zyx)[::-1]  # sx, sy, sz

    def deriv(factor):
        return scipy.fft.irfftn(ft * factor, s=shape_out, workers=workers()).ravel()[flat]

    g = np.stack([deriv(2j * np.pi * comps[i]) for i in range(3)], axis=1).astype(np.float32)
    h = np.empty((flat.size, 3, 3), dtype=np.float32)
    for i in range(3):
        for j in range(i, 3):
            h[:, i, j] = h[:, j, i] = deriv(-4.0 * np.pi ** 2 * comps[i] * comps[j])
    w, v = np.linalg.eigh(h)
    return RodField(grid, flat, w, v, g)


@dataclass
class Segment:
    """A straight rod: a point on its axis (world x, y, z Å), unit direction, length (Å)."""

    centre: np.ndarray
    direction: np.ndarray
    length: float
    thickness: float = 0.0  # rms distance of its centre-line voxels from the axis (Å)
    n_voxels: int = 0


def _fit_line(points, weights):
    w = weights / weights.sum()
    c = (points * w[:, None]).sum(0)
    rel = points - c
    cov = (rel * w[:, None]).T @ rel
    d = np.linalg.eigh(cov)[1][:, 2]
    t = rel @ d
    perp = rel - t[:, None] * d
    thick = float(np.sqrt((w * (perp ** 2).sum(1)).sum()))
    return c, d, t, thick


def _lateral_split(points, weights, centre, direction):
    """Two-means split of a cloud across its axis: the coordinate along the main direction of
    spread perpendicular to ``direction``, cut where it is halfway between the two groups'
    means (iterated). Returns a boolean array (one group) or None."""
    w = weights / weights.sum()
    rel = points - centre
    perp = rel - np.outer(rel @ direction, direction)
    e2 = np.linalg.eigh((perp * w[:, None]).T @ perp)[1][:, 2]
    p = perp @ e2
    cut = 0.0
    for _ in range(20):
        lo, hi = p <= cut, p > cut
        if not lo.any() or not hi.any():
            return None
        new = 0.5 * (p[lo].mean() + p[hi].mean())
        if abs(new - cut) < 1e-3:
            break
        cut = new
    return p <= cut


def _thick_cost(points, weights, part):
    """Σ weight × squared distance from the fitted lines of the two groups (∞ if one is tiny)."""
    cost = 0.0
    for sel in (part, ~part):
        if sel.sum() < 3:
            return np.inf
        _, _, _, thick = _fit_line(points[sel], weights[sel])
        cost += float(weights[sel].sum()) * thick * thick
    return cost


def _split_segments(points, weights, min_length, max_thickness, depth=0):
    """Principal axis of a cloud of centre-line voxels. While its rms distance from the axis
    exceeds ``max_thickness`` the cloud is split in two, whichever way leaves the smaller
    residual: at the median along the axis (a bent or kinked rod) or across it by two-means
    (two rods side by side, linked through the density between them)."""
    if points.shape[0] < 3:
        return []
    c, d, t, thick = _fit_line(points, weights)
    length = float(t.max() - t.min())
    if length < min_length:
        return []
    if thick <= max_thickness:
        mid = 0.5 * (t.max() + t.min())
        return [Segment(c + mid * d, d, length, thick, points.shape[0])]
    if depth >= MAX_SPLIT_DEPTH:
        return []
    options = []
    if length >= 2 * min_length:
        options.append(t <= np.median(t))
    lateral = _lateral_split(points, weights, c, d)
    if lateral is not None:
        options.append(lateral)
    if not options:
        return []
    costs = [_thick_cost(points, weights, part) for part in options]
    if not np.isfinite(min(costs)):
        return []
    part = options[int(np.argmin(costs))]
    out = []
    for sel in (part, ~part):
        out += _split_segments(points[sel], weights[sel], min_length, max_thickness,
                               depth + 1)
    return out


def _coherent_components(flat, shape, directions, min_cos):
    """Connected components of the voxels ``flat`` (26-neighbourhood), linking two neighbours
    only when their rod directions agree (|cos| ≥ ``min_cos``). Returns labels (n,)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = flat.size
    lookup = np.full(int(np.prod(shape)), -1, dtype=np.int64)
    lookup[flat] = np.arange(n)
    zyx = np.stack(np.unravel_index(flat, shape), axis=1)
    rows, cols = [], []
    for dz in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if (dz, dy, dx) <= (0, 0, 0):
                    continue  # each pair once
                nb = zyx + np.array([dz, dy, dx])
                ok = np.all((nb >= 0) & (nb < np.array(shape)), axis=1)
                j = np.full(n, -1, dtype=np.int64)
                j[ok] = lookup[np.ravel_multi_index(nb[ok].T, shape)]
                has = j >= 0
                i_idx, j_idx = np.flatnonzero(has), j[has]
                cos = np.abs(np.einsum("ij,ij->i", directions[i_idx], directions[j_idx]))
                keep = cos >= min_cos
                rows.append(i_idx[keep])
                cols.append(j_idx[keep])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    adj = coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(n, n))
    return connected_components(adj, directed=False)[1]


def molecule_region(protein_mask, shape_out, voxel_out, reach=REGION_REACH):
    """Voxels of a coarser grid ``shape_out`` (voxel ``voxel_out`` Å, x, y, z) lying within
    about ``reach`` Å of a voxel of ``protein_mask`` (the map's V ≥ T, on the input grid).

    Where rods are sought. Not V ≥ T itself: at high resolution, and above all in sharpened
    maps, the density sits on the backbone atoms 1.6–2.3 Å from a helix's axis and the axis
    itself is below the contour, often negative. Each coarse voxel takes the maximum of the
    mask over its own extent (input voxels within half a coarse voxel), then the result is
    grown by ``reach`` Å (Euclidean distance transform). Returns (core: the coarse voxels
    holding a voxel of the mask, region: core grown by ``reach``), boolean ``shape_out``."""
    shape_in = np.array(protein_mask.shape)
    step = shape_in / np.array(shape_out)
    k = int(math.ceil(float(step.max())))
    m = np.asarray(protein_mask, dtype=np.uint8)
    if k > 1:
        m = ndimage.maximum_filter(m, size=k, mode="nearest")
    # coarse voxel j lies at input index j·n_in/n_out (the Fourier crop keeps voxel 0)
    idx = [np.minimum(np.rint(np.arange(n) * st).astype(int), n_in - 1)
           for n, st, n_in in zip(shape_out, step, shape_in)]
    coarse = m[np.ix_(*idx)].astype(bool)
    if not coarse.any() or reach <= 0:
        return coarse, coarse
    dist = ndimage.distance_transform_edt(~coarse, sampling=np.asarray(voxel_out)[::-1])
    return coarse, dist <= reach


def find_rods(data, voxel_size, protein_mask, min_length=MIN_LENGTH,
              max_thickness=MAX_THICKNESS, ft=None):
    """Straight rod-like density segments (candidate α-helices).

    ``protein_mask``: boolean (z, y, x) on the input grid, where the map is protein (V ≥ T).
    Only detection voxels of :func:`molecule_region` (within REGION_REACH Å of the mask) whose
    blurred density is at least the ROD_LEVEL_QUANTILE quantile of the blurred map over the
    mask's own detection voxels are considered (not V ≥ T at the voxel: a helix axis is below
    the contour in high-resolution and sharpened maps). A detection voxel is on a rod centre
    line when (λ1 ≤ λ2 ≤ λ3 the Hessian eigenvalues, e_i
    the eigenvectors, g the gradient): λ2 < 0, λ2/λ1 ≥ ROD_ROUNDNESS, |λ3| ≤ ROD_STRAIGHTNESS·|λ2|,
    and the Newton step to the ridge, |g·e_k/λ_k| for k = 1, 2, is under RIDGE_STEP voxels.
    Neighbouring centre-line voxels are linked when their rod directions e_3 agree within
    LINK_ANGLE_DEG; each linked set is fitted by a line and split while thicker than
    ``max_thickness`` (along it if bent, across it if two rods lie side by side). Returns
    (segments with centres in world coordinates relative to voxel (0, 0, 0) — add the map
    origin —, RodField)."""
    core = []

    def mask_fn(grid):
        c, region = molecule_region(protein_mask, grid.data.shape, grid.voxel)
        core.append(c)
        return region

    field_ = rod_field(data, voxel_size, mask_fn=mask_fn, ft=ft)
    w, v, g = field_.eigenvalues, field_.eigenvectors, field_.gradient
    l1, l2, l3 = w[:, 0], w[:, 1], w[:, 2]
    blurred = field_.grid.data
    level = (float(np.quantile(blurred[core[0]], ROD_LEVEL_QUANTILE)) if core[0].any()
             else np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        rod = blurred.ravel()[field_.flat] >= level
        rod &= (l2 < 0) & (l2 / np.minimum(l1, -1e-30) >= ROD_ROUNDNESS)
        rod &= np.abs(l3) <= ROD_STRAIGHTNESS * np.abs(l2)
        max_step = RIDGE_STEP * float(field_.grid.voxel.mean())
        for k in (0, 1):
            step = np.einsum("ij,ij->i", g, v[:, :, k]) / w[:, k]
            rod &= np.abs(step) < max_step
    segs = []
    if rod.sum() < 4:
        return segs, field_
    flat = field_.flat[rod]
    shape = field_.grid.data.shape
    labels = _coherent_components(flat, shape, v[rod, :, 2],
                                  math.cos(math.radians(LINK_ANGLE_DEG)))
    zyx = np.stack(np.unravel_index(flat, shape), axis=1).astype(np.float64)
    xyz = field_.grid.to_world(zyx)
    wts = (-l2[rod]).astype(np.float64)
    order = np.argsort(labels, kind="stable")
    n = labels.max() + 1
    bounds = np.searchsorted(labels[order], np.arange(n + 1))
    for k in range(n):
        idx = order[bounds[k]:bounds[k + 1]]
        if idx.size < 4:
            continue
        segs += _split_segments(xyz[idx], wts[idx], min_length, max_thickness)
    return segs, field_
