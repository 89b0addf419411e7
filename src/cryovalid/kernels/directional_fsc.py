"""Directional (conical) FSC of two half maps: the FSC in double cones about a set of
directions, shared by 1.g (Fourier Shell Occupancy) and 1.h (3D FSC).

Method
------
For a direction u (a unit vector, x, y, z in physical frequency space) and a cone half-angle α,
the directional FSC of shell r is

    FSC_u(r) = Σ w·Re(F1·F2*) / sqrt(Σ w·|F1|² · Σ w·|F2|²)

over the coefficients k of shell r (1-voxel shells of :class:`~cryovalid.kernels.fourier.
FourierShells`, frequency r/(N·Ts) in 1/Å, N = largest box side) whose angle to the axis ±u is
at most α (|cos(k, u)| ≥ cos α: a double cone, Friedel mates belong to the same cone), with a
weight w per coefficient:

* ``"hard"``: w = 1 inside the cone (nysbc 3DFSC, Tan et al. 2017, Nat Methods 14:793,
  doi:10.1038/nmeth.4347);
* ``"gaussian"``: w = exp(-4·(c - 1)² / (cos α - 1)²), c = |cos(k, u)|, inside the cone (Xmipp
  ``resolution_fso``, Vilas & Tagare 2023, Nat Methods 20:1021, doi:10.1038/s41592-023-01874-2;
  the weight is 1 on the axis and e⁻⁴ at the cone's edge).

Directions are those of the *physical* frequency (kz/(nz·Ts), ky/(ny·Ts), kx/(nx·Ts)), so a
non-cubic box has the right cones.

One pass over the transform
---------------------------
Every rfft coefficient is binned once into (shell, angular cell): the half sphere of axes
(antipodal directions folded together) is cut into cells of ``cell_deg`` in polar angle θ
(from z) and azimuth φ, and the Hermitian-weighted sums Σ Re(F1·F2*), Σ|F1|², Σ|F2|² and the
coefficient count are accumulated per (shell, cell) with ``np.bincount`` (z-slabs of the
transform at a time, to bound memory). A cell wholly inside a direction's cone (its centre's
axis angle plus the cell's angular radius ≤ α) enters that cone's sums as a whole, through one
sparse matrix product of the (shell × cell) tables with the (cell × direction) weights; a cell
the cone's edge crosses has its coefficients tested one by one (exact angle, vectorised over
all such (coefficient, direction) pairs of a slab, about 1 % of the coefficients per
direction). Cone membership is therefore exact, and so is the hard cone's FSC. With the
Gaussian weighting a coefficient of a wholly-inside cell gets the weight of its cell's centre,
which differs from its own by at most about 0.09 (the steepest part of the taper, half a cell
away) and linearly across the cell, so a cell's sum is unchanged to first order: on a 40³ box
the directional FSC differs from the per-coefficient Gaussian weighting by < 0.02 (mean 0.003;
tests/test_directional_fsc.py).

Outputs (:class:`DirectionalFSC`): per direction and shell the FSC, the effective number of
coefficients (Σ w over the full transform), plus the ordinary (global) FSC from the same sums.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse
from scipy.spatial import ConvexHull

from cryovalid.errors import CannotMeasure
from cryovalid.kernels import fourier
from cryovalid.kernels.fsc.crossings import CROSSES, NEVER, first_crossing

GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))
CELL_DEG = 1.0  # angular cells (θ and φ) of the one-pass binning
SLAB_COEFFS = 1_000_000  # coefficients binned per slab (bounds the temporary arrays)
# A cone's FSC is trusted from the first shell where every cone holds at least this weight
# (Σ w over the full transform, Friedel mates included: about 5 independent coefficients at
# full weight); below it a cone holds one or two coefficients and its FSC is a coin toss.
MIN_CONE_WEIGHT = 10.0

EMPTY = "empty"
AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


def half_sphere_directions(n: int) -> np.ndarray:
    """``n`` unit vectors (x, y, z) spread evenly over the half sphere z ≥ 0 (a Fibonacci
    spiral: cos θ uniform in (0, 1), azimuth advancing by the golden angle), float64 (n, 3).
    With the double cones, the half sphere covers every axis once."""
    i = np.arange(n, dtype=np.float64)
    z = (i + 0.5) / n
    r = np.sqrt(np.maximum(1.0 - z * z, 0.0))
    phi = i * GOLDEN_ANGLE
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def directions_to_angles(dirs):
    """(rot, tilt) in degrees of unit vectors (x, y, z) (Xmipp's convention: tilt = polar angle
    from z, rot = azimuth from x towards y, in [0, 360))."""
    d = np.asarray(dirs, dtype=np.float64)
    tilt = np.degrees(np.arccos(np.clip(d[:, 2], -1.0, 1.0)))
    rot = np.degrees(np.arctan2(d[:, 1], d[:, 0])) % 360.0
    return rot, tilt


@dataclass
class DirectionalFSC:
    """Directional FSC curves of two half maps.

    directions : (n_dir, 3) unit vectors (x, y, z)
    cone_deg : cone half-angle α (degrees); weighting : "hard" or "gaussian"
    frequency : (n_shells,) shell frequencies r/(N·Ts) in 1/Å
    fsc : (n_dir, n_shells) directional FSC (NaN where the cone holds no coefficient or no power)
    weight : (n_dir, n_shells) Σ w over the cone's coefficients in the full transform
    global_fsc : (n_shells,) the ordinary FSC from the same sums
    counts : (n_shells,) coefficients per shell in the full transform
    """

    directions: np.ndarray
    cone_deg: float
    weighting: str
    frequency: np.ndarray
    fsc: np.ndarray
    weight: np.ndarray
    global_fsc: np.ndarray
    counts: np.ndarray

    def first_reliable_shell(self, min_weight: float = MIN_CONE_WEIGHT,
                             at_least: int = 2) -> int:
        """The first shell (≥ ``at_least``) where every direction's cone holds at least
        ``min_weight`` (Σ w); the last shell when none does (a box too small to measure)."""
        ok = (self.weight >= min_weight).all(axis=0)
        ok[:at_least] = False
        hits = np.flatnonzero(ok)
        return int(hits[0]) if hits.size else len(ok) - 1


def _cells(cell_deg: float):
    """Cell grid of the half sphere: (n_theta, n_phi, (n_cells, 3) centre unit vectors,
    (n_cells,) angular radius in radians: the largest angle between a cell's centre and any of
    its points, i.e. its corners)."""
    n_t = int(math.ceil(90.0 / cell_deg))
    n_p = int(math.ceil(360.0 / cell_deg))
    dt = math.radians(90.0) / n_t
    dp = 2.0 * math.pi / n_p
    t = (np.arange(n_t) + 0.5) * dt
    p = (np.arange(n_p) + 0.5) * dp

    def unit(theta, phi):
        st = np.sin(theta)[:, None]
        return np.stack([(st * np.cos(phi)[None, :]).ravel(), (st * np.sin(phi)[None, :]).ravel(),
                         np.repeat(np.cos(theta), phi.size)], axis=1)

    centres = unit(t, p)
    radius = np.zeros(n_t * n_p)
    for a in (-0.5, 0.5):  # the four corners (a loop of 4, not over cells)
        for b in (-0.5, 0.5):
            corner = unit(t + a * dt, p + b * dp)
            dot = np.clip((centres * corner).sum(axis=1), -1.0, 1.0)
            radius = np.maximum(radius, np.arccos(dot))
    return n_t, n_p, centres, radius


def _weight(c, cos_a: float, weighting: str):
    """Cone weight of coefficients whose |cos| to the axis is ``c`` (all inside the cone)."""
    if weighting == "hard":
        return np.ones_like(c, dtype=np.float64)
    return np.exp(-4.0 * (np.asarray(c, dtype=np.float64) - 1.0) ** 2 / (cos_a - 1.0) ** 2)


def _classify(centres, radius, directions, cone_deg: float, weighting: str):
    """Split the (cell, direction) pairs: cells wholly inside the cone (their sums enter with
    the weight at the cell's centre: a sparse (n_cells, n_dir) matrix) and cells the cone's
    edge crosses ((cell, direction) index arrays, whose coefficients are tested one by one).
    Cells wholly outside are dropped. A coefficient's axis angle differs from its cell
    centre's by at most the cell's radius, so "wholly inside" and "wholly outside" are exact."""
    alpha = math.radians(cone_deg)
    margin = 1e-6  # radians, against rounding
    ang = np.arccos(np.clip(np.abs(centres @ np.asarray(directions, dtype=np.float64).T),
                            0.0, 1.0))
    r = radius[:, None] + margin
    inside = ang + r <= alpha
    edge = (~inside) & (ang - r <= alpha)
    rows, cols = np.nonzero(inside)
    vals = _weight(np.cos(ang[rows, cols]), math.cos(alpha), weighting)
    W = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=ang.shape)
    e_cells, e_dirs = np.nonzero(edge)
    return W, e_cells, e_dirs


def cone_weights(cell_dirs, directions, cone_deg: float, weighting: str = "hard"):
    """Sparse (n_points, n_dir) matrix of the cone weight of each point (unit vectors) for
    each direction (the weight of the module docstring; 0 outside the cone)."""
    if weighting not in ("hard", "gaussian"):
        raise ValueError(f"unknown cone weighting {weighting!r}")
    cos_a = math.cos(math.radians(cone_deg))
    c = np.abs(np.asarray(cell_dirs, dtype=np.float64) @ np.asarray(directions,
                                                                     dtype=np.float64).T)
    rows, cols = np.nonzero(c >= cos_a)
    vals = _weight(c[rows, cols], cos_a, weighting)
    return scipy.sparse.csr_matrix((vals, (rows, cols)), shape=c.shape)


def _cone_sums(F1, F2, shells: fourier.FourierShells, directions, cone_deg: float,
               weighting: str, cell_deg: float):
    """The one pass over the transforms. Returns (per direction: cross, power1, power2, weight
    each (n_shells, n_dir); per shell: cross, power1, power2, count each (n_shells,)), all
    float64 sums over the full transform (Hermitian weights)."""
    n_t, n_p, centres, radius = _cells(cell_deg)
    n_cells = n_t * n_p
    n_sh = shells.n_shells
    n_dir = len(directions)
    cos_a = math.cos(math.radians(cone_deg))
    W, e_cells, e_dirs = _classify(centres, radius, directions, cone_deg, weighting)
    dx, dy, dz = (np.asarray(directions, dtype=np.float32)[:, k] for k in range(3))
    nz = F1.shape[0]
    sz_all, sy, sx = fourier.frequency_components(shells.shape, shells.voxel_size)
    wx = fourier.hermitian_weights(shells.shape)[0, 0, :].astype(np.float32)
    per_plane = F1.shape[1] * F1.shape[2]
    step = max(1, SLAB_COEFFS // per_plane)
    size = (n_sh + 1) * n_cells  # the last row collects the corners beyond Nyquist
    table = [np.zeros(size) for _ in range(4)]
    edge = [np.zeros(n_sh * n_dir) for _ in range(4)]
    dt = math.radians(90.0) / n_t
    dp = 2.0 * math.pi / n_p
    for z0 in range(0, nz, step):  # slabs of z planes (a few per map), not voxels
        z1 = min(nz, z0 + step)
        sz = sz_all[z0:z1]
        # fold the axis to z >= 0 (a direction and its opposite share the double cone)
        sign = np.where(sz < 0, np.float32(-1.0), np.float32(1.0))
        fz = (np.abs(sz) + np.zeros_like(sy) + np.zeros_like(sx)).ravel()
        fy = (sign * sy + np.zeros_like(sx)).ravel()
        fx = (sign * sx + np.zeros_like(sy)).ravel()
        rho = np.sqrt(fx * fx + fy * fy)
        theta = np.arctan2(rho, fz)  # 0 … π/2
        it = np.minimum((theta / dt).astype(np.int64), n_t - 1)
        phi = np.arctan2(fy, fx) % np.float32(2.0 * math.pi)
        ip = np.minimum((phi / dp).astype(np.int64), n_p - 1)
        del rho, theta, phi
        cell = it * n_p + ip
        del it, ip
        shell = shells.index[z0:z1].astype(np.int64).ravel()
        a = F1[z0:z1]
        b = F2[z0:z1]
        w = np.broadcast_to(wx, a.shape).ravel()
        vals = ((a.real * b.real + a.imag * b.imag).ravel() * w,
                (a.real * a.real + a.imag * a.imag).ravel() * w,
                (b.real * b.real + b.imag * b.imag).ravel() * w, w)
        idx = shell * n_cells + cell
        for acc, v in zip(table, vals):
            acc += np.bincount(idx, weights=v, minlength=size)
        del idx
        # coefficients of the cells the cone's edge crosses, one (coefficient, direction) at
        # a time: sort the slab's valid coefficients by cell, expand each edge pair to its cell
        norm = np.sqrt(fx * fx + fy * fy + fz * fz)
        valid = np.flatnonzero((shell < n_sh) & (norm > 0))
        order = valid[np.argsort(cell[valid], kind="stable")]
        per_cell = np.bincount(cell[order], minlength=n_cells)
        first = np.concatenate([[0], np.cumsum(per_cell)[:-1]])
        cnt = per_cell[e_cells]
        total = int(cnt.sum())
        if total:
            rep = np.repeat(np.arange(e_cells.size), cnt)
            offs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            k = order[first[e_cells][rep] + offs]
            d = e_dirs[rep]
            del rep, offs
            inv = np.float32(1.0) / norm[k]
            c = np.abs((fx[k] * dx[d] + fy[k] * dy[d] + fz[k] * dz[d]) * inv)
            inside = c >= np.float32(cos_a)
            k, d, c = k[inside], d[inside], c[inside]
            wt = _weight(c, cos_a, weighting)
            key = shell[k] * n_dir + d
            for acc, v in zip(edge, vals):
                acc += np.bincount(key, weights=v[k] * wt, minlength=n_sh * n_dir)
            del k, d, c, wt, key, inside, inv
        del fx, fy, fz, norm, cell, shell, vals, valid, order
    tab = [t.reshape(n_sh + 1, n_cells)[:n_sh] for t in table]
    per_dir = [np.asarray((W.T @ t.T).T) + e.reshape(n_sh, n_dir) for t, e in zip(tab, edge)]
    per_shell = [t.sum(axis=1) for t in tab]
    return per_dir, per_shell


def masked_transforms(h1, h2, mask):
    """rffts of the two half maps multiplied by a soft ``mask`` (float, 0–1), each half's
    solvent level (mean outside the mask) removed first as in 1.a's masked FSC, so that an
    offset of the maps does not enter the cones as a shared mask-shaped signal."""
    from cryovalid.kernels.fsc.masked import background_level

    mask = np.asarray(mask, dtype=np.float32)
    out = []
    for h in (h1, h2):
        b = background_level(h, mask)
        out.append(fourier.rfft((h - b) * mask))
    return tuple(out)


def directional_fsc(F1, F2, shells: fourier.FourierShells, directions, cone_deg: float,
                    weighting: str = "hard", cell_deg: float = CELL_DEG) -> DirectionalFSC:
    """Directional FSC of two half maps (rffts ``F1``, ``F2`` of the map's grid) in double
    cones of half-angle ``cone_deg`` about each of ``directions`` ((n, 3) unit vectors x, y,
    z), for every shell of ``shells``. See the module docstring."""
    if weighting not in ("hard", "gaussian"):
        raise ValueError(f"unknown cone weighting {weighting!r}")
    directions = np.asarray(directions, dtype=np.float64)
    directions = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    (c_d, p1_d, p2_d, n_d), (c, p1, p2, count) = _cone_sums(F1, F2, shells, directions,
                                                           cone_deg, weighting, cell_deg)
    with np.errstate(invalid="ignore", divide="ignore"):
        fsc = c_d / np.sqrt(p1_d * p2_d)
        g = c / np.sqrt(p1 * p2)
    fsc[~np.isfinite(fsc)] = np.nan
    g[~np.isfinite(g)] = np.nan
    return DirectionalFSC(directions=directions, cone_deg=float(cone_deg), weighting=weighting,
                          frequency=shells.frequency.copy(), fsc=fsc.T.copy(),
                          weight=n_d.T.copy(), global_fsc=g, counts=count)


def require_signal(dfsc: DirectionalFSC) -> None:
    """Raise CannotMeasure when the half maps hold no power (every FSC is undefined): their
    curves would otherwise read as never crossing, i.e. finer than Nyquist."""
    if not np.isfinite(dfsc.global_fsc[1:]).any():
        raise CannotMeasure("The half maps hold no signal (their Fourier transforms are zero "
                            "beyond the origin), so no FSC can be computed.")


@dataclass
class DirectionalCrossings:
    """Where each directional FSC first falls below a threshold.

    frequency : (n_dir,) 1/Å of the crossing (linear interpolation between shells); Nyquist
        where the curve never crosses; NaN where it is past the threshold from the first shell
        searched
    status : (n_dir,) "crosses", "never" or "at_start" (see kernels.fsc.first_crossing), or
        "empty" (no finite FSC from the first shell searched: NaN frequency)
    """

    frequency: np.ndarray
    status: np.ndarray

    @property
    def resolution(self) -> np.ndarray:
        """1/frequency in Å (NaN where there is no crossing frequency)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1.0 / self.frequency


def crossings(frequency, curves, threshold: float, start: int = 1) -> DirectionalCrossings:
    """First crossing below ``threshold`` of each row of ``curves`` ((n_dir, n_shells)), with
    the rules of :func:`cryovalid.kernels.fsc.first_crossing` (search from shell ``start``).
    A curve that never crosses is given the Nyquist frequency (the last shell)."""
    f = np.full(len(curves), np.nan)
    status = np.empty(len(curves), dtype=object)
    for i, c in enumerate(curves):  # one call per direction (hundreds), not per voxel
        if not np.isfinite(c[start:]).any():  # an empty cone or no power: not measured
            status[i] = EMPTY
            continue
        cr = first_crossing(frequency, c, threshold, "below", start=start)
        status[i] = cr.status
        if cr.status == CROSSES:
            f[i] = cr.frequency
        elif cr.status == NEVER:
            f[i] = frequency[-1]
    return DirectionalCrossings(f, status)


def occupancy(fsc, threshold: float, first_shells: int = 0) -> np.ndarray:
    """Fourier Shell Occupancy (Vilas & Tagare 2023): per shell, the fraction of directions
    whose directional FSC is at least ``threshold`` (directions whose cone is empty in that
    shell are not counted; NaN when all are). The first ``first_shells`` shells are set to 1,
    as Xmipp does (their cones hold a handful of coefficients)."""
    fsc = np.asarray(fsc, dtype=np.float64)
    valid = np.isfinite(fsc)
    with np.errstate(invalid="ignore"):
        above = (fsc >= threshold) & valid
        n = valid.sum(axis=0)
        out = np.where(n > 0, above.sum(axis=0) / np.maximum(n, 1), np.nan)
    out[:first_shells] = 1.0
    return out


def sphericity(directions, radii) -> float:
    """Sphericity Ψ = π^(1/3)·(6V)^(2/3) / A (Wadell 1935; 1 for a sphere, less for any other
    shape) of the star-shaped body whose surface is at distance ``radii[i]`` from the origin
    along ±``directions[i]`` (half-sphere unit vectors, reflected through the origin as
    Friedel symmetry makes the 3D FSC). The surface is the triangulation of the directions'
    convex hull on the unit sphere with its vertices moved to their radii; V and A are those
    of that polyhedron (exact, no voxelisation)."""
    d = np.asarray(directions, dtype=np.float64)
    r = np.asarray(radii, dtype=np.float64)
    keep = np.isfinite(r) & (r > 0)
    if keep.sum() < 4:
        raise ValueError("too few directions with a radius for a sphericity")
    d, r = d[keep], r[keep]
    pts = np.concatenate([d, -d])
    rad = np.concatenate([r, r])
    hull = ConvexHull(pts)
    v = pts * rad[:, None]
    a, b, c = (v[hull.simplices[:, k]] for k in range(3))
    volume = float(np.abs(np.einsum("ij,ij->i", a, np.cross(b, c))).sum() / 6.0)
    area = float(np.linalg.norm(np.cross(b - a, c - a), axis=1).sum() / 2.0)
    return float(math.pi ** (1.0 / 3.0) * (6.0 * volume) ** (2.0 / 3.0) / area)


def polar_map(directions, values, cone_deg: float, rot_step: float = 1.0,
              tilt_step: float = 1.0):
    """The directional values interpolated on a (rot, tilt) grid of the half sphere, as Xmipp's
    ``Resolution_Distribution``: at each grid direction g, Σ w·value / Σ w over the directions
    within the cone of g (|cos| ≥ cos α), with the Gaussian cone weight of the module
    docstring. Returns (rot degrees (n_rot,), tilt degrees (n_tilt,), map (n_tilt, n_rot));
    NaN where no direction is within the cone or the values are NaN."""
    rot = np.arange(0.0, 360.0, rot_step)
    tilt = np.arange(0.0, 90.0 + 1e-9, tilt_step)
    R, T = np.meshgrid(np.radians(rot), np.radians(tilt))
    g = np.stack([(np.sin(T) * np.cos(R)).ravel(), (np.sin(T) * np.sin(R)).ravel(),
                  np.cos(T).ravel()], axis=1)
    vals = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(vals)
    W = cone_weights(g, np.asarray(directions)[ok], cone_deg, "gaussian")
    num = W @ vals[ok]
    den = np.asarray(W.sum(axis=1)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(den > 0, num / den, np.nan)
    return rot, tilt, m.reshape(T.shape)
