"""Hand of a cryo-EM map from the twist of its α-helices (no neural network).

Physical fact used: α-helices of L-amino-acid proteins are right-handed (backbone dihedrals
φ ≈ −58°, ψ ≈ −47°; Pauling, Corey & Branson 1951 PNAS 37:205). In a map with the correct hand
the density of every helix winds as a right-handed spiral of pitch 5.4 Å; in a mirrored map it
winds left. The reference (VRS 0.h, DeepHand / HaPi, Garcia Condado et al. 2022 JSB 214:107915)
learns this with two CNNs; here it is measured directly:

1. **Rods.** The map's spectrum is cropped to a detection grid of about 1.5 Å per voxel and
   blurred by a Gaussian of σ = 2.5 Å (a ~5–6 Å low-pass, fixed whatever the map's own
   resolution: at that scale an α-helix is a solid rod whose density peaks on its axis, even
   in a sharpened 1.5 Å map where the axis itself is below the contour or negative); gradient
   and Hessian come from the same spectrum. Rods are sought in the molecule region: detection
   voxels within 3 Å of a voxel with V ≥ T (the backbone atoms lie 1.6–2.3 Å from a helix
   axis), whose blurred density is at least the median of the blurred map over the voxels
   with V ≥ T (a helix axis is among the densest lines of the molecule at that scale). There a
   voxel lies on a rod's centre line when two Hessian eigenvalues are negative and alike
   (round cross-section, not a sheet), the third is small (density continues along the rod)
   and the Newton step to the ridge is under one voxel. Neighbouring centre-line voxels whose
   rod directions agree within 30° are linked; each linked set is fitted by a line (principal
   component) and, while its rms distance from the line exceeds 2 Å, split in two, either at
   its median along the line (a bent rod) or across it by two-means (two helices side by side,
   linked through the density between them), whichever leaves the smaller residual; pieces
   ≥ 10 Å long (about two turns) are kept.
2. **Axis refinement.** On the working map (≈1 Å voxels, low-passed at max(R, 2.5 Å)) the axis is
   refitted to the density centroids of slices perpendicular to it, until it moves less than
   0.05 Å (at most 6 passes).
3. **Cylindrical sampling.** The density is interpolated on a cylindrical grid (r = 1–6 Å,
   φ every 10°, z every 0.5 Å, at most 40 Å) around the axis, in a right-handed frame (u, v, axis),
   u × v = axis, in world x, y, z.
4. **Templates.** An ideal poly-alanine α-helix (N, CA, C, O, CB; φ = −57.8°, ψ = −47.0°, built
   from internal coordinates) is rendered on a grid with the working voxel size and low-passed
   exactly as the map; its mirror image is the left-handed template. Both are sampled on the same
   cylindrical grid, in both polarities (N→C up and down).
5. **Correlation.** The cylindrical average (Bessel order 0: the rod itself, identical for both
   hands) is removed from map and templates; the remainder is correlated over all rotations about
   the axis (FFT along φ), axial shifts of ±1 Å and both polarities. CC_R and CC_L are the best
   normalised correlations with the right- and left-handed templates.
6. **Significance.** The same measurement on 200 cylinders at random protein voxels with random
   directions gives the scatter of CC_L − CC_R where no helix is aligned, in this map, at its
   resolution and noise (robust s.d. = 1.4826 × median |CC_L − CC_R|). A rod whose
   (CC_L − CC_R)/scatter is ≤ −4 votes right-handed, ≥ +4 left-handed; others do not vote.
   A rod lying along a longer one (half its axis within 2.3 Å of it: the same helix found
   twice) does not vote.
7. **Score.** :func:`hand_score`: (left votes + 1)/(votes + 2), and 0.5 with fewer than 3 votes.

Units: Å throughout; angles in radians inside, degrees in reports. Arrays (z, y, x) float32.
World coordinates are (x, y, z) in Å; a map index (z, y, x) is converted with the voxel size and
origin, never used as a coordinate frame itself (its axis order is a mirror of x, y, z).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from scipy import ndimage

from cryovalid.kernels import filterbank
from cryovalid.kernels.fourier import (crop_spectrum, frequency_components,
                                       frequency_magnitude, workers)

# ---- constants (Å unless stated) -----------------------------------------------------------
HELIX_PHI_DEG = -57.8  # ideal α-helix backbone dihedrals (right-handed for L-amino acids)
HELIX_PSI_DEG = -47.0

DETECTION_VOXEL = 1.5  # Å per voxel of the rod-detection grid
DETECTION_SIGMA = 2.5  # Å, Gaussian blur before the Hessian
WORK_VOXEL = 1.0  # Å, the working grid for cylindrical sampling (never finer than the map's)
MIN_LENGTH = 10.0  # Å, shortest segment kept (about two turns)
MAX_THICKNESS = 2.0  # Å, largest rms distance of a segment's rod voxels from its axis
ROD_ROUNDNESS = 0.4  # λ2/λ1 at least (round cross-section, not a sheet)
ROD_STRAIGHTNESS = 0.5  # |λ3|/|λ2| at most (density continues along the axis)
RIDGE_STEP = 1.0  # detection voxels: largest Newton step to the rod's centre line
REFINE_MAX_ITERATIONS = 6  # axis refinement passes at most
REFINE_TOLERANCE = 0.05  # Å, the refinement stops when the axis moves less than this
MAX_SPLIT_DEPTH = 6  # a linked set of centre-line voxels is split at most this often in a row
LINK_ANGLE_DEG = 30.0  # neighbouring centre-line voxels are linked when their axes agree this well
REGION_REACH = 3.0  # Å, rods are sought within this distance of a voxel with V ≥ T
ROD_LEVEL_QUANTILE = 0.5  # a rod voxel's blurred density ≥ this quantile of it over V ≥ T

CYL_RADII = np.arange(1.0, 6.01, 0.5)  # Å, radii of the cylindrical grid
CYL_N_PHI = 36  # samples around the axis (10°)
CYL_DZ = 0.5  # Å, step along the axis


# ---- ideal helix ----------------------------------------------------------------------------
def _place(a, b, c, bond, angle_deg, torsion_deg):
    """Position of atom D bonded to C with |CD| = bond, angle BCD and dihedral ABCD (NeRF)."""
    bc = c - b
    bc /= np.linalg.norm(bc)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.stack([bc, np.cross(n, bc), n], axis=1)
    th, ph = math.radians(angle_deg), math.radians(torsion_deg)
    d2 = np.array([-bond * math.cos(th), bond * math.sin(th) * math.cos(ph),
                   bond * math.sin(th) * math.sin(ph)])
    return c + m @ d2


def dihedral(a, b, c, d) -> float:
    """Dihedral angle ABCD in degrees (IUPAC sign convention)."""
    b0, b1, b2 = a - b, c - b, d - c
    b1 = b1 / np.linalg.norm(b1)
    v = b0 - np.dot(b0, b1) * b1
    w = b2 - np.dot(b2, b1) * b1
    return math.degrees(math.atan2(np.dot(np.cross(b1, v), w), np.dot(v, w)))


def build_backbone(n_residues: int, phi_deg: float = HELIX_PHI_DEG,
                   psi_deg: float = HELIX_PSI_DEG, omega_deg: float = 180.0):
    """Poly-alanine chain (N, CA, C, O, CB per residue) from backbone dihedrals.

    Engh & Huber bond lengths/angles; CB at dihedral C−N−CA−CB = −122.7° (L-amino acid),
    O at N−CA−C−O = ψ + 180°. Returns (xyz (5n, 3) float64 Å, names list)."""
    n_ca, ca_c, c_n, c_o, ca_cb = 1.458, 1.525, 1.329, 1.231, 1.530
    a_n_ca_c, a_ca_c_n, a_c_n_ca, a_ca_c_o, a_n_ca_cb = 111.2, 116.2, 121.7, 120.5, 110.5
    n = np.array([0.0, 0.0, 0.0])
    ca = np.array([n_ca, 0.0, 0.0])
    c = ca + ca_c * np.array([-math.cos(math.radians(a_n_ca_c)),
                              math.sin(math.radians(a_n_ca_c)), 0.0])
    bb = [(n, ca, c)]
    for _ in range(n_residues - 1):
        pn, pca, pc = bb[-1]
        nn = _place(pn, pca, pc, c_n, a_ca_c_n, psi_deg)
        nca = _place(pca, pc, nn, n_ca, a_c_n_ca, omega_deg)
        nc = _place(pc, nn, nca, ca_c, a_n_ca_c, phi_deg)
        bb.append((nn, nca, nc))
    xyz, names = [], []
    for i, (rn, rca, rc) in enumerate(bb):
        o = _place(rn, rca, rc, c_o, a_ca_c_o, psi_deg + 180.0)
        # CB from the C−N−CA frame
        cb = _place(rc, rn, rca, ca_cb, a_n_ca_cb, -122.7)
        xyz += [rn, rca, rc, o, cb]
        names += ["N", "CA", "C", "O", "CB"]
    return np.array(xyz), names


def fit_axis(points: np.ndarray):
    """Axis of a helix through ``points`` (n, 3): (point on axis, unit direction).

    Direction from the cross products of consecutive bisectors (Kahn 1989 Comput Chem 13:185),
    oriented along the chain; centre = least-squares circle of the points projected on the plane
    perpendicular to it."""
    p = np.asarray(points, dtype=np.float64)
    bis = (p[:-2] - p[1:-1]) + (p[2:] - p[1:-1])
    cr = np.cross(bis[:-1], bis[1:])
    d = cr.sum(axis=0)
    d /= np.linalg.norm(d)
    if np.dot(p[-1] - p[0], d) < 0:
        d = -d
    u, v = perpendicular_frame(d)
    x, y = (p - p.mean(0)) @ u, (p - p.mean(0)) @ v
    a = np.stack([2 * x, 2 * y, np.ones_like(x)], axis=1)
    cx, cy, _ = np.linalg.lstsq(a, x * x + y * y, rcond=None)[0]
    centre = p.mean(0) + cx * u + cy * v
    return centre, d


def perpendicular_frame(d):
    """Unit vectors u, v with (u, v, d) a right-handed orthonormal frame (u × v = d)."""
    d = np.asarray(d, dtype=np.float64)
    d = d / np.linalg.norm(d)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(helper, d)
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    return u, v


def ideal_helix(n_residues: int = 48, mirror: bool = False):
    """Ideal α-helix atoms with the axis on +z through the origin (N-terminus at low z).

    Returns (xyz (n, 3) Å, weights = atomic numbers). ``mirror`` flips x (left-handed)."""
    xyz, names = build_backbone(n_residues)
    ca = xyz[1::5]
    centre, d = fit_axis(ca)
    u, v = perpendicular_frame(d)
    rel = xyz - centre
    local = np.stack([rel @ u, rel @ v, rel @ d], axis=1)
    local[:, 2] -= 0.5 * (local[:, 2].min() + local[:, 2].max())
    if mirror:
        local[:, 0] *= -1
    z = {"N": 7.0, "CA": 6.0, "C": 6.0, "O": 8.0, "CB": 6.0}
    return local, np.array([z[nm] for nm in names], dtype=np.float32)


def twist_sign(xyz_ca: np.ndarray) -> float:
    """+1 for a right-handed helix of CA positions, −1 for a left-handed one (mean sign of the
    turning angle about the fitted axis per step along it)."""
    centre, d = fit_axis(xyz_ca)
    u, v = perpendicular_frame(d)
    rel = xyz_ca - centre
    phi = np.unwrap(np.arctan2(rel @ v, rel @ u))
    z = rel @ d
    slope = np.polyfit(z, phi, 1)[0]
    return float(np.sign(slope))


# ---- grids ----------------------------------------------------------------------------------
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


# ---- rod detection --------------------------------------------------------------------------
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


# ---- cylindrical sampling -------------------------------------------------------------------
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


# ---- templates ------------------------------------------------------------------------------
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


# ---- correlation ----------------------------------------------------------------------------
def _twisted(cyl, radii):
    """Remove the cylindrical average (Bessel order 0: the plain rod, the same for both hands)
    and weight by sqrt(r) (the area element r·dr·dφ·dz of a correlation). Works on (..., n_r,
    n_phi, n_z)."""
    out = cyl - cyl.mean(axis=-2, keepdims=True)
    return out * np.sqrt(np.asarray(radii, dtype=np.float32))[:, None, None]


def correlate(m_cyls, t_long, radii, max_shift: int = 2):
    """Best normalised correlation of map samplings with a long template sampling.

    ``m_cyls``: (n, n_r, n_phi, n_z) cylinders of one length; ``t_long``: (n_r, n_phi, n_zt)
    with n_zt ≥ n_z + 2·max_shift, centred. The twisted parts (see :func:`_twisted`) are
    correlated over every rotation about the axis (circular, by FFT along φ) and every axial
    shift of up to ``max_shift`` samples; each correlation is divided by both norms.
    Returns (cc (n,), rotation index (n,), shift (n,)); the template rolled by the rotation
    index and shifted by the shift is the best-aligned template."""
    m_cyls = np.asarray(m_cyls, dtype=np.float32)
    n, _, n_phi, nz = m_cyls.shape
    m = _twisted(m_cyls, radii)
    m_norm = np.sqrt((m * m).sum(axis=(1, 2, 3)))
    m_ft = np.fft.rfft(m, axis=2)
    start0 = t_long.shape[2] // 2 - nz // 2
    best_cc = np.full(n, -np.inf)
    best_k = np.zeros(n, dtype=int)
    best_s = np.zeros(n, dtype=int)
    for s in range(-max_shift, max_shift + 1):
        t = _twisted(t_long[:, :, start0 + s:start0 + s + nz], radii)
        t_norm = float(np.sqrt((t * t).sum()))
        cross = np.einsum("arfz,rfz->af", m_ft, np.conj(np.fft.rfft(t, axis=1)))
        with np.errstate(invalid="ignore", divide="ignore"):
            cc = np.fft.irfft(cross, n=n_phi, axis=1) / (m_norm[:, None] * t_norm)
        cc = np.nan_to_num(cc, nan=0.0, posinf=0.0, neginf=0.0)
        k = np.argmax(cc, axis=1)
        val = cc[np.arange(n), k]
        better = val > best_cc
        best_cc[better], best_k[better], best_s[better] = val[better], k[better], s
    return best_cc, best_k, best_s


# ---- the whole analysis ---------------------------------------------------------------------
Z_VOTE = 4.0  # a helix votes when |CC_L − CC_R| ≥ Z_VOTE × the spread at random positions
MIN_HELICES = 3  # fewer voting helices than this → no evidence (score 0.5)
N_DECOYS = 200  # random cylinders for the null spread
MAX_SEGMENT = 40.0  # Å, longest stretch of a rod correlated at once
MAX_SHIFT = 2  # axial shift search, in CYL_DZ steps (± half a residue rise)
ANALYSIS_MIN_RESOLUTION = 2.5  # Å, map and templates are low-passed at max(R, this)
OVERLAP_RADIUS = 2.3  # Å (the α-helix CA radius): rods whose axes run this close are one helix
OVERLAP_FRACTION = 0.5  # … over at least this fraction of the shorter rod's length
UNROLL_RADII = (1.5, 4.0)  # Å, radii averaged for the unrolled pictures


@dataclass
class HelixEvidence:
    """One rod: where it is, how well each hand's template fits, and its vote."""

    centre: np.ndarray  # world x, y, z (Å, map origin included)
    direction: np.ndarray
    length: float  # Å
    cc_right: float
    cc_left: float
    z: float  # (cc_left − cc_right) / null spread
    vote: int  # −1 right-handed, +1 left-handed, 0 not significant (or overlapping)
    overlaps: bool = False  # lies along a longer rod (the same helix): does not vote
    unrolled: np.ndarray = field(default=None, repr=False)  # (n_z, n_phi) map, twisted part
    unrolled_right: np.ndarray = field(default=None, repr=False)  # best-aligned templates
    unrolled_left: np.ndarray = field(default=None, repr=False)


@dataclass
class HandResult:
    score: float  # 0 correct hand … 1 mirrored; 0.5 no evidence
    n_candidates: int  # rods examined
    n_helices: int  # rods whose twist was significant (voting helices)
    n_right: int
    n_left: int
    null_spread: float  # robust sd of CC_L − CC_R at random positions
    analysis_resolution: float  # Å
    reason: str  # '' or why the score is 0.5 by default
    helices: list  # HelixEvidence, strongest first
    decoy_differences: np.ndarray = field(default=None, repr=False)
    timings: dict = field(default_factory=dict)


def correlate_hands(cyls, templates: Templates):
    """Best correlation of (n, n_r, n_phi, n_z) cylinders with each hand's template over
    rotations, axial shifts and both polarities. Returns {"right"/"left": (cc, k, shift,
    polarity)} with arrays of length n."""
    out = {}
    for name, hand in (("right", templates.right), ("left", templates.left)):
        best = None
        for pol, t in enumerate(hand):
            cc, k, sh = correlate(cyls, t, templates.radii, MAX_SHIFT)
            pol_arr = np.full(cc.shape, pol)
            if best is None:
                best = [cc, k, sh, pol_arr]
            else:
                better = cc > best[0]
                for b, v in zip(best, (cc, k, sh, pol_arr)):
                    b[better] = v[better]
        out[name] = tuple(best)
    return out


def _unroll(cyl, radii):
    """Twisted part of a cylindrical sampling averaged over UNROLL_RADII: (n_z, n_phi)."""
    r = np.asarray(radii)
    sel = (r >= UNROLL_RADII[0]) & (r <= UNROLL_RADII[1])
    tw = cyl[sel] - cyl[sel].mean(axis=1, keepdims=True)
    return tw.mean(axis=0).T.copy()


def _aligned_template(t_long, nz, k, s):
    mid = t_long.shape[2] // 2
    start = mid - nz // 2 + s
    return np.roll(t_long[:, :, start:start + nz], k, axis=1)


def overlapping_rods(rods, radius=OVERLAP_RADIUS, fraction=OVERLAP_FRACTION):
    """Which rods lie along a longer one: ``rods`` is a list of (centre, unit direction,
    length) in Å. Taken longest first, a rod is flagged when at least ``fraction`` of its
    axis (points every 1 Å) lies within ``radius`` Å of the axis segment of a longer rod not
    itself flagged: the same stretch of density, which must not vote twice. Returns a list of
    booleans in the order of ``rods``."""
    order = sorted(range(len(rods)), key=lambda i: -rods[i][2])
    kept, flags = [], [False] * len(rods)
    for i in order:
        c, d, length = (np.asarray(rods[i][0], float), np.asarray(rods[i][1], float),
                        float(rods[i][2]))
        pts = c + np.arange(-length / 2, length / 2 + 1e-9, 1.0)[:, None] * d
        near = np.zeros(len(pts), dtype=bool)
        for kc, kd, klen in kept:
            t = np.clip((pts - kc) @ kd, -klen / 2, klen / 2)
            near |= np.linalg.norm(pts - (kc + t[:, None] * kd), axis=1) < radius
        if near.mean() >= fraction:
            flags[i] = True
        else:
            kept.append((c, d, length))
    return flags


def hand_score(n_right: int, n_left: int, min_helices: int = MIN_HELICES) -> float:
    """Hand score from the helices' votes: (n_left + 1) / (n_right + n_left + 2), Laplace's rule
    of succession (the posterior mean fraction of left-handed helices under a uniform prior),
    and exactly 0.5 when fewer than ``min_helices`` helices voted."""
    n = n_right + n_left
    if n < min_helices:
        return 0.5
    return (n_left + 1.0) / (n + 2.0)


def _null_differences(grid, protein, voxel_size, templates, length, n_decoys, seed):
    """CC_L − CC_R on ``n_decoys`` cylinders of ``length`` Å centred on random protein voxels
    with random (isotropic) axis directions: the spread of the hand evidence where no helix is
    aligned, measured in this map at its resolution and noise."""
    rng = np.random.default_rng(seed)
    flat = np.flatnonzero(protein)
    pick = rng.choice(flat, size=n_decoys, replace=flat.size < n_decoys)
    centres = np.stack(np.unravel_index(pick, protein.shape), axis=1)[:, ::-1] * float(voxel_size)
    dirs = rng.normal(size=(n_decoys, 3))
    dirs /= np.linalg.norm(dirs, axis=1)[:, None]
    z = np.arange(-length / 2, length / 2 + 1e-9, CYL_DZ)
    cyls = np.stack([sample_cylinder(grid, centres[i], dirs[i], templates.radii,
                                     templates.n_phi, z) for i in range(n_decoys)])
    best = correlate_hands(cyls, templates)
    return best["left"][0] - best["right"][0]


def _standardised(data, ft=None):
    """((data − c)/s as float32, its rfft), c the median and s the standard deviation of a
    regular subsample (both move exactly with an offset and a positive scale of the map). The
    given rfft ``ft`` of ``data`` is rescaled instead of recomputed."""
    sample = data.ravel()[:: max(1, data.size // 1_000_000)].astype(np.float64)
    c = float(np.median(sample))
    s = float(sample.std()) or 1.0
    out = (data - np.float32(c)) * np.float32(1.0 / s)
    if ft is None:
        return out, None
    ft_out = ft * np.complex64(1.0 / s)
    ft_out[0, 0, 0] -= np.complex64(c * data.size / s)
    return out, ft_out


def determine_hand(data, voxel_size: float, threshold: float, resolution: float,
                   origin=(0.0, 0.0, 0.0), n_decoys: int = N_DECOYS, seed: int = 0,
                   keep_pictures: int = 4, ft=None, protein=None) -> HandResult:
    """Hand of a map from the twist of its α-helices (see the module docstring).

    Parameters
    ----------
    data : (z, y, x) float32 map; voxel_size : Å; threshold : density where protein begins
    resolution : Å (reported); the map and templates are low-passed at max(R, 2.5 Å)
    origin : world x, y, z of voxel (0, 0, 0), only for reporting helix positions
    n_decoys, seed : random cylinders (fixed seed → reproducible) for the null spread
    keep_pictures : unrolled pictures kept for the strongest helices
    ft : the map's rfft (complex64) if already computed (it is not modified)
    protein : boolean mask data >= threshold if already computed
    """
    import time

    t0 = time.perf_counter()
    timings = {}
    data = np.asarray(data, dtype=np.float32)
    r_an = max(float(resolution), ANALYSIS_MIN_RESOLUTION)
    if protein is None:
        protein = data >= threshold
    # work in units of the map's own median and spread, so that the result does not depend on
    # the map's units or zero level (V -> a·V + c), nor do squares under- or overflow
    data, ft = _standardised(data, ft)
    empty = HandResult(0.5, 0, 0, 0, 0, float("nan"), r_an, "", [], np.zeros(0), timings)
    if not protein.any():
        empty.reason = "no voxel reaches the threshold"
        return empty
    if ft is None:
        ft = scipy.fft.rfftn(data, workers=workers())
    timings["fft"] = time.perf_counter() - t0

    t = time.perf_counter()
    segs, _ = find_rods(data, voxel_size, protein, ft=ft)
    timings["rods"] = time.perf_counter() - t

    t = time.perf_counter()
    work, vox = fourier_resample(data, voxel_size, WORK_VOXEL, raised_cosine_lowpass(r_an), ft=ft)
    del ft
    grid = Grid(work, vox, np.zeros(3))
    templates = make_templates(r_an, float(vox.mean()))
    timings["working map and templates"] = time.perf_counter() - t

    t = time.perf_counter()
    radii = templates.radii
    rows = []
    for seg in segs:
        seg = refine_axis(grid, seg)
        length = min(seg.length, MAX_SEGMENT)
        z = np.arange(-length / 2, length / 2 + 1e-9, CYL_DZ)
        cyl = sample_cylinder(grid, seg.centre, seg.direction, radii, templates.n_phi, z)
        best = correlate_hands(cyl[None], templates)
        rows.append((seg, length, cyl, {k: tuple(a[0] for a in v) for k, v in best.items()}))
    timings["helix correlation"] = time.perf_counter() - t

    # null spread: the same measurement on random cylinders inside the protein
    t = time.perf_counter()
    diffs = _null_differences(grid, protein, voxel_size, templates,
                              float(np.median([r[1] for r in rows])) if rows else 2 * MIN_LENGTH,
                              n_decoys, seed)
    spread = 1.4826 * float(np.median(np.abs(diffs)))
    timings["null"] = time.perf_counter() - t

    helices = []
    pictures = {}
    overlapping = overlapping_rods([(r[0].centre, r[0].direction, r[1]) for r in rows])
    for (seg, length, cyl, best), dup in zip(rows, overlapping):
        d = best["left"][0] - best["right"][0]
        zval = d / spread if spread > 0 else 0.0
        vote = 0 if abs(zval) < Z_VOTE or dup else (1 if zval > 0 else -1)
        h = HelixEvidence(seg.centre + np.asarray(origin, dtype=np.float64), seg.direction,
                          float(length), float(best["right"][0]), float(best["left"][0]),
                          float(zval), vote, overlaps=bool(dup))
        pictures[id(h)] = (cyl, best)
        helices.append(h)
    helices.sort(key=lambda h: -abs(h.z))
    for h in helices[:keep_pictures]:
        cyl, best = pictures[id(h)]
        nz = cyl.shape[2]
        h.unrolled = _unroll(cyl, radii)
        for name, hand in (("right", templates.right), ("left", templates.left)):
            _, k, sh, pol = best[name]
            setattr(h, f"unrolled_{name}",
                    _unroll(_aligned_template(hand[int(pol)], nz, int(k), int(sh)), radii))
    n_right = sum(1 for h in helices if h.vote < 0)
    n_left = sum(1 for h in helices if h.vote > 0)
    score = hand_score(n_right, n_left)
    reason = ""
    if not segs:
        reason = "no helix-like rods were found"
    elif n_right + n_left < MIN_HELICES:
        reason = (f"only {n_right + n_left} of {len(segs)} rods show a significant helical "
                  f"twist (at least {MIN_HELICES} are needed)")
    timings["total"] = time.perf_counter() - t0
    return HandResult(score, len(segs), n_right + n_left, n_right, n_left, spread, r_an, reason,
                      helices, diffs, timings)
