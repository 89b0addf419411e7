"""Q-score: map resolvability per atom, as MapQ computes it (Pintilie et al. 2020, Nature Methods
17:328–334, "Measurement of atom resolvability in cryo-EM maps with Q-scores"; reference
implementation gregdp/mapq ``mapq/qscores.py``, functions ``MinMaxD``, ``QscorePt3`` and
``SpherePts``, called with numPts = 8, toRAD = 2.0 Å, dRAD = 0.1 Å, σ = 0.6 Å).

Per non-hydrogen atom at position p (world x, y, z in Å):

1. **Reference Gaussian** g(r) = A·exp(−½(r/σ)²) + B in map units, with A = maxD − minD and
   B = minD, maxD = min(mean + 10·SD, max), minD = max(mean − SD, min), all over the whole box
   (MapQ ``MinMaxD``). σ = 0.6 Å.
2. **Samples**: the map value at p counted 8 times (g = A + B), then radial shells r = 0.1, 0.2,
   … 2.0 Å (20 shells; r is accumulated by repeated addition of 0.1, as MapQ does). On each
   shell MapQ tries N = 8, 10, … 106 points of its spiral (``SpherePts``: for k = 1 … N,
   h = −1 + 2(k−1)/(N−1), φ = acos h, θ_k = (θ_{k−1} + 3.6/√(N(1−h²))) mod 2π, θ = 0 for the
   first and last point; point = p + r·(sin φ cos θ, sin φ sin θ, cos φ)) and keeps the points
   that have no non-hydrogen atom of the model strictly closer than 0.9·r (the atom itself is
   at distance r, so it never counts). The first N that keeps ≥ 8 points is used with all its
   kept points; if no N does, the shell is skipped. Map values are interpolated trilinearly.
3. **Q** = Pearson correlation (about the means) of the map values and the g values of all
   samples (the r = 0 value with weight 8).

Box edge. MapQ samples the map through Chimera's ``interpolated_values``, which gives 0 for a
point outside the grid (outside [0, n−1] on an axis), and goes on: the Q of an atom whose
shells leave the box is computed with those zeros. That number is not a measurement of the map,
so by default (``edge="nan"``) such an atom gets NaN and is counted in ``n_edge``; with
``edge="zero"`` the zeros are used as MapQ does.

Residue and chain summaries follow MapQ's ``SaveQStats``/``SetBBAts``: Q_residue is the mean Q
of the residue's non-H atoms; for amino acids the backbone is N, CA, C, O (and OT1, OT2), the
side chain every other non-H atom (CB included); Q_chain is the mean over the chain's non-H
atoms (not over residues). Expected Q at resolution R (Å), MapQ's fits to EMDB entries:
protein −0.1775·R + 1.1192, nucleic acid −0.1377·R + 0.9973.

(MapQ's per-residue "ExpectedQ" column reads −0.1794·R + 1.1244, an older fit, while its chain
line and Est.Res. use −0.1775·R + 1.1192; the latter, the paper's, is used here.)

Checked against MapQ's own outputs for EMD-30342 (gregdp/mapq test data; the map placed by its
header ORIGIN, as Chimera places it): the 100-atom fragment's per-atom Q agree to the file's
3 decimals (max |ΔQ| 0.0005) and its residue table to 1e-5. MapQ's table for the whole chain
came from its multi-process path, which resamples the map first (:func:`mapq_multiprocess_grid`);
with that resampling every residue agrees to 1e-5, without it r = 0.995. MapQ also keeps every
alternative conformer in its exclusion grid; :func:`cryovalid.io.model.read_model` keeps the
first only, so Q differ slightly next to alternative conformers.

Everything is vectorised over atoms: the only Python loops are over batches of atoms (memory),
the 20 shells and the ≤ 50 spiral sizes (each for all the atoms still without 8 points).
EMD-3488 + 5ME2 (4 468 atoms) takes about 0.6–1 s on one core.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

SIGMA = 0.6  # Å, MapQ's default width of the reference Gaussian
N_CENTRE = 8  # the map value at the atom counts this many times (MapQ numPts)
MIN_POINTS = 8  # points per shell MapQ wants (numPts)
N_TRIES = 50  # spiral sizes tried per shell: 8, 10, ... 8 + 2·49
D_RADIUS = 0.1  # Å, shell step (dRAD)
TO_RADIUS = 2.0  # Å, last shell (toRAD)
EXCLUDE_FRACTION = 0.9  # a point is dropped when another atom is closer than 0.9·r
BATCH = 8192  # atoms per batch (memory: about 60 neighbours × 106 points × 8 B each)

# MapQ's expected Q at resolution R (Å): (slope, intercept), qscores.py SaveQStats
EXPECTED_Q = {"protein": (-0.1775, 1.1192), "nucleic": (-0.1377, 0.9973),
              "ion": (-0.1103, 1.0795), "water": (-0.0895, 1.0001)}
# MapQ's backbone atoms of an amino acid (SetBBAts); every other non-H atom is side chain
PROTEIN_BACKBONE = ("N", "CA", "C", "O", "OT1", "OT2")
# MapQ's nucleotide backbone (phosphate + sugar); the base is its "side chain"
NUCLEIC_BACKBONE = ("P", "O1P", "O2P", "OP1", "OP2", "O5'", "C5'", "O3'",
                    "C1'", "C2'", "O4'", "O2'", "C3'", "C4'")
AMINO_ACIDS = frozenset((
    "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE", "LEU", "LYS", "MET",
    "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL", "ASX", "GLX", "HSD", "HSE", "MSE", "SEC",
    "PYL", "UNK"))
NUCLEOTIDES = frozenset(("A", "C", "G", "U", "T", "I", "N", "DA", "DC", "DG", "DT", "DU", "DI",
                         "DN", "ADE", "CYT", "GUA", "URA", "THY", "URI"))


def expected_q(resolution: float, kind: str = "protein") -> float:
    """MapQ's expected Q at resolution R (Å) for ``kind`` 'protein' (−0.1775·R + 1.1192) or
    'nucleic' (−0.1377·R + 0.9973) (also 'ion', 'water'); Pintilie et al. 2020, fits to EMDB
    maps and models, as written by MapQ's ``SaveQStats``."""
    slope, intercept = EXPECTED_Q[kind]
    return slope * float(resolution) + intercept


def estimated_resolution(q: float, kind: str = "protein") -> float:
    """The resolution (Å) at which ``expected_q`` equals q (MapQ's 'Est.Res.')."""
    slope, intercept = EXPECTED_Q[kind]
    return (float(q) - intercept) / slope


def mapq_min_max(data: np.ndarray) -> tuple:
    """(minD, maxD) in map units over the whole box (MapQ ``MinMaxD``): maxD = min(mean + 10·SD,
    max), minD = max(mean − SD, min)."""
    d = np.asarray(data)
    mean = float(np.mean(d, dtype=np.float64))
    sd = float(np.std(d, dtype=np.float64))
    return max(mean - sd, float(d.min())), min(mean + 10.0 * sd, float(d.max()))


@lru_cache(maxsize=None)
def sphere_points(n: int) -> np.ndarray:
    """(n, 3) unit vectors of MapQ's spiral (``SpherePts``): h = −1 + 2(k−1)/(n−1), φ = acos h,
    θ_k = (θ_{k−1} + 3.6/√(n(1−h²))) mod 2π, θ = 0 at both poles. Computed in double precision
    with the same recurrence (the mod is taken at every step, as MapQ does)."""
    thetas, phis = [], []
    for k in range(1, n + 1):
        h = -1.0 + 2.0 * float(k - 1) / float(n - 1)
        phis.append(math.acos(h))
        thetas.append(0.0 if k == 1 or k == n else
                      (thetas[k - 2] + 3.6 / math.sqrt(n * (1.0 - h ** 2.0))) % (2 * math.pi))
    th, ph = np.array(thetas), np.array(phis)
    out = np.stack([np.sin(ph) * np.cos(th), np.sin(ph) * np.sin(th), np.cos(ph)], axis=1)
    out.setflags(write=False)
    return out


def shell_radii() -> list:
    """The shell radii (Å) exactly as MapQ's loop makes them: r = 0.1, then r += 0.1 while
    r < 2.0 + 0.001 (20 values, with the rounding of repeated addition)."""
    radii, r = [], D_RADIUS
    while r < TO_RADIUS + 0.001:
        radii.append(r)
        r += D_RADIUS
    return radii


@dataclass
class QScores:
    """Per-atom Q-scores (MapQ) and what was sampled.

    Attributes
    ----------
    q : (n,) float64, Q per input atom; NaN for hydrogens, atoms not asked for, and (with
        ``edge="nan"``) atoms with a sample outside the box
    min_d, max_d : the reference Gaussian's minD and maxD (map units); A = max_d − min_d,
        B = min_d
    sigma : Å
    n_points : (n,) int, samples per atom (r = 0 counted 8 times); 0 where not computed
    n_skipped_shells : (n,) int, shells without 8 free points at any tried N
    edge : (n,) bool, atoms with at least one sample outside the box
    """

    q: np.ndarray
    min_d: float
    max_d: float
    sigma: float
    n_points: np.ndarray
    n_skipped_shells: np.ndarray
    edge: np.ndarray
    notes: list = field(default_factory=list)

    @property
    def n_edge(self) -> int:
        return int(np.count_nonzero(self.edge))


def _neighbour_offsets(tree, xyz_heavy, centres, reach):
    """(m, K, 3) offsets (Å) from each centre to every non-H atom within ``reach`` of it (the
    atom itself included, as in MapQ's point grid; it sits at distance r from its own shell
    and never excludes a point), padded with far-away dummies; K is the largest count."""
    lists = tree.query_ball_point(centres, reach)
    counts = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    k = max(int(counts.max()) if len(counts) else 1, 1)
    flat = np.fromiter((j for x in lists for j in x), dtype=np.int64, count=int(counts.sum()))
    rows = np.repeat(np.arange(len(lists)), counts)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(counts) - counts, counts)
    off = np.full((len(lists), k, 3), 1.0e6)
    off[rows, cols] = xyz_heavy[flat] - centres[rows]
    # nearest first, so that a shell of radius r needs only the first columns
    order = np.argsort(np.einsum("mkd,mkd->mk", off, off), axis=1, kind="stable")
    return np.take_along_axis(off, order[:, :, None], axis=1)


def _free_points(offsets, centres, radius):
    """MapQ's accepted points on the shell of ``radius`` (Å) around every centre.

    For N = 8, 10, … 106 (``N_TRIES`` sizes) the spiral's points that have no atom strictly
    closer than 0.9·r are counted; the first N with ≥ 8 gives all its kept points. Returns
    (atom index per point, points (m, 3) world Å, (n,) bool shell skipped)."""
    n = len(centres)
    out_rad2 = (radius * EXCLUDE_FRACTION) ** 2
    pending = np.arange(n)
    off2 = np.einsum("mkd,mkd->mk", offsets, offsets)
    # only atoms within r + 0.9 r of the centre can exclude a point (rows are sorted by distance)
    reach2 = (radius * (1.0 + EXCLUDE_FRACTION)) ** 2 * (1.0 + 1e-9) + 1e-12
    k_used = max(int(np.count_nonzero(off2 < reach2, axis=1).max()) if n else 1, 1)
    offsets, off2 = offsets[:, :k_used], off2[:, :k_used]
    idx_parts, pt_parts = [], []
    for k in range(N_TRIES):
        if len(pending) == 0:
            break
        unit = sphere_points(MIN_POINTS + 2 * k)  # (N, 3)
        vec = unit * radius  # offsets of the points from their atom, (N, 3)
        # |p - a|^2 = |v|^2 - 2 v.o + |o|^2 for point offset v and neighbour offset o
        off = offsets if len(pending) == n else offsets[pending]
        o2 = off2 if len(pending) == n else off2[pending]
        d2 = (o2[:, :, None] - 2.0 * (off @ vec.T)) + np.einsum("nd,nd->n", vec, vec)
        keep = ~np.any(d2 < out_rad2, axis=1)  # (m, N): MapQ drops only |p - a| < 0.9 r
        count = keep.sum(axis=1)
        ok = count >= MIN_POINTS
        if np.any(ok):
            rows = np.nonzero(ok)[0]
            sel = keep[rows]
            atom = pending[rows]
            idx_parts.append(np.repeat(atom, count[rows]))
            pts = centres[atom][:, None, :] + vec[None, :, :]
            pt_parts.append(pts[sel])
        pending = pending[~ok]
    skipped = np.zeros(n, dtype=bool)
    skipped[pending] = True
    if idx_parts:
        return np.concatenate(idx_parts), np.concatenate(pt_parts), skipped
    return np.zeros(0, dtype=np.int64), np.zeros((0, 3)), skipped


def _trilinear(data, voxel_size, origin, pts):
    """Trilinear map values at world points (x, y, z Å) and a bool 'outside the grid' (outside
    [0, n−1] on some axis, Chimera's rule; the value there is 0, as Chimera returns)."""
    from scipy.ndimage import map_coordinates

    zyx = ((np.asarray(pts, dtype=np.float64) - np.asarray(origin, dtype=np.float64))
           / float(voxel_size))[:, ::-1]
    hi = np.array(data.shape, dtype=np.float64) - 1.0
    outside = np.any((zyx < 0.0) | (zyx > hi), axis=1)
    vals = map_coordinates(data, zyx.T, order=1, mode="nearest", prefilter=False,
                           output=np.float64)
    vals[outside] = 0.0
    return vals, outside


def _batch_q(data, voxel_size, origin, tree, xyz_heavy, centres, g_of_r):
    """Q, samples, skipped shells and edge flag of a batch of atoms (see :func:`qscores`)."""
    m = len(centres)
    radii = [r for r, _ in g_of_r[1:]]
    # a neighbour can exclude a point only if it lies within r + 0.9 r of the atom
    offsets = _neighbour_offsets(tree, xyz_heavy, centres,
                                 max(radii) * (1.0 + EXCLUDE_FRACTION) + 1e-6)
    # r = 0: the map value at the atom, weight 8
    idx_parts, pt_parts = [np.arange(m)], [centres]
    g_parts, w_parts = [np.full(m, g_of_r[0][1])], [np.full(m, float(N_CENTRE))]
    skipped = np.zeros(m, dtype=np.int64)
    for radius, g_r in g_of_r[1:]:
        idx, pts, skip = _free_points(offsets, centres, radius)
        skipped += skip
        idx_parts.append(idx)
        pt_parts.append(pts)
        g_parts.append(np.full(len(idx), g_r))
        w_parts.append(np.ones(len(idx)))
    idx = np.concatenate(idx_parts)
    g = np.concatenate(g_parts)
    w = np.concatenate(w_parts)
    vals, outside = _trilinear(data, voxel_size, origin, np.concatenate(pt_parts))

    # weighted Pearson per atom (two passes: means, then centred sums)
    sw = np.bincount(idx, weights=w, minlength=m)
    mx = np.bincount(idx, weights=w * vals, minlength=m) / sw
    my = np.bincount(idx, weights=w * g, minlength=m) / sw
    dx = vals - mx[idx]
    dy = g - my[idx]
    sxy = np.bincount(idx, weights=w * dx * dy, minlength=m)
    sxx = np.bincount(idx, weights=w * dx * dx, minlength=m)
    syy = np.bincount(idx, weights=w * dy * dy, minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        qa = sxy / np.sqrt(sxx * syy)
    qa[~np.isfinite(qa)] = np.nan  # flat map or no shell: no correlation defined
    edge_a = np.bincount(idx, weights=outside.astype(np.float64), minlength=m) > 0
    return qa, sw.astype(np.int64), skipped, edge_a


def qscores(map_data, voxel_size, origin, xyz, is_hydrogen=None, *, sigma: float = SIGMA,
            select=None, edge: str = "nan", min_max=None) -> QScores:
    """MapQ Q-scores of the non-hydrogen atoms (Pintilie et al. 2020; gregdp/mapq
    ``QscorePt3``), vectorised over atoms.

    Parameters
    ----------
    map_data : (z, y, x) array, the map (any units; Q is scale-free)
    voxel_size : Å per voxel
    origin : world (x, y, z) Å of voxel (0, 0, 0) (``Map.origin``)
    xyz : (n, 3) world coordinates in Å of every atom of the model (all chains: the 0.9·r
        exclusion uses every non-H atom, as MapQ's point grid does)
    is_hydrogen : (n,) bool or None; hydrogens neither get a Q nor exclude points
    sigma : Å, width of the reference Gaussian (MapQ's default 0.6)
    select : (n,) bool or None: the atoms to score (default every non-H atom)
    edge : "nan" (default) — an atom with any sample outside the box gets NaN; "zero" — MapQ's
        behaviour, such samples read 0 and the atom is scored anyway
    min_max : (minD, maxD) to use instead of the whole box's (MapQ ``MinMaxD``)
    """
    from scipy.spatial import cKDTree

    if edge not in ("nan", "zero"):
        raise ValueError(f"edge must be 'nan' or 'zero', not {edge!r}")
    data = np.asarray(map_data)
    if data.dtype != np.float32:
        data = data.astype(np.float32)
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    n = len(xyz)
    heavy = np.ones(n, dtype=bool) if is_hydrogen is None else ~np.asarray(is_hydrogen, bool)
    todo = heavy.copy() if select is None else (heavy & np.asarray(select, dtype=bool))
    min_d, max_d = mapq_min_max(data) if min_max is None else (float(min_max[0]),
                                                                float(min_max[1]))
    a_amp, b_off = max_d - min_d, min_d

    q = np.full(n, np.nan)
    n_points = np.zeros(n, dtype=np.int64)
    n_skip = np.zeros(n, dtype=np.int64)
    at_edge = np.zeros(n, dtype=bool)
    atoms = np.nonzero(todo)[0]
    if len(atoms) == 0:
        return QScores(q, min_d, max_d, float(sigma), n_points, n_skip, at_edge)
    tree = cKDTree(xyz[heavy])
    g_of_r = [(0.0, a_amp + b_off)] + [(r, a_amp * math.exp(-0.5 * (r / sigma) ** 2) + b_off)
                                       for r in shell_radii()]
    for start in range(0, len(atoms), BATCH):  # batches bound the memory, not a per-atom loop
        part = atoms[start:start + BATCH]
        qa, npts, skipped, edge_a = _batch_q(data, voxel_size, origin, tree, xyz[heavy],
                                             xyz[part], g_of_r)
        if edge == "nan":
            qa[edge_a] = np.nan
        q[part], n_points[part], n_skip[part], at_edge[part] = qa, npts, skipped, edge_a
    edge_a = at_edge
    notes = []
    if np.any(edge_a):
        k = int(np.count_nonzero(edge_a))
        notes.append(f"{k} atom{'s' if k != 1 else ''} within 2 Å of the box edge "
                     + ("not scored" if edge == "nan" else "scored with 0 outside the box "
                        "(MapQ)"))
    return QScores(q, min_d, max_d, float(sigma), n_points, n_skip, at_edge, notes)


def mapq_multiprocess_grid(map_data, voxel_size, origin) -> tuple:
    """The map as MapQ's multi-process path samples it: (data (z, y, x) float32, origin xyz Å).

    MapQ's ``CalcQpn`` (used whenever it runs on more than one processor) hands each process a
    copy made by ``MaskMapResize``, whose grid origin is rounded to a multiple of the voxel size
    *in world coordinates* (``round(nO / step) · step``). When the map's own origin is not such a
    multiple (a Chimera crop, as the EMD-30342 zone map in gregdp/mapq's test data) the copy is
    the map trilinearly resampled onto the lattice {k · voxel}, i.e. smoothed by up to half a
    voxel per axis, and the Q-scores change (EMD-30342 chain A: mean residue Q 0.4539 instead of
    0.4603). This returns that resampled map (points outside the original box read 0, as
    Chimera's interpolation gives) so that such MapQ outputs can be reproduced; the default
    :func:`qscores` uses the map's own grid, as MapQ's single-process path does.

    Trilinear resampling onto a grid shifted by a constant fraction per axis is separable, so it
    is done as three 1-D linear interpolations (no coordinate arrays)."""
    vol = np.asarray(map_data, dtype=np.float32)
    vs = float(voxel_size)
    o = np.asarray(origin, dtype=np.float64)  # x, y, z
    new_origin = np.zeros(3)
    for axis_xyz in range(3):
        ax = 2 - axis_xyz  # array axis of x, y, z
        n = vol.shape[ax]
        t_lo = o[axis_xyz] / vs  # first old voxel in lattice units
        k0 = math.floor(t_lo) - 1
        k1 = math.ceil(t_lo + n - 1) + 1
        t0 = k0 - t_lo  # fractional old index of the first new point
        base = math.floor(t0)
        f = t0 - base
        i = base + np.arange(k1 - k0 + 1)
        valid = (i >= 0) & (i + (1 if f > 0 else 0) <= n - 1)
        lo = np.take(vol, np.clip(i, 0, n - 1), axis=ax)
        hi = np.take(vol, np.clip(i + 1, 0, n - 1), axis=ax)
        vol = ((1.0 - f) * lo + f * hi).astype(np.float32)
        shape = [1, 1, 1]
        shape[ax] = len(i)
        vol = np.where(valid.reshape(shape), vol, np.float32(0.0))
        new_origin[axis_xyz] = k0 * vs
    return np.ascontiguousarray(vol), tuple(float(v) for v in new_origin)


def residue_kind(resname: str) -> str:
    """'protein', 'nucleic', 'ion', 'water' or 'other' (MapQ's residue types)."""
    r = str(resname).upper()
    if r in AMINO_ACIDS:
        return "protein"
    if r in NUCLEOTIDES:
        return "nucleic"
    if r in ("MG", "NA", "CL", "CA", "ZN", "MN", "FE", "CO", "NI"):
        return "ion"
    if r in ("HOH", "WAT", "DOD"):
        return "water"
    return "other"


def backbone_mask(atom_name, resname_of_atom) -> np.ndarray:
    """(n,) bool: MapQ's backbone atoms (SetBBAts): N, CA, C, O, OT1, OT2 of amino acids;
    phosphate and sugar atoms of nucleotides. Every other atom of those residues is side chain
    (base); atoms of other residues are neither."""
    names = np.asarray(atom_name).astype(str)
    kinds = np.array([residue_kind(r) for r in np.asarray(resname_of_atom)])
    return ((kinds == "protein") & np.isin(names, PROTEIN_BACKBONE)) | \
           ((kinds == "nucleic") & np.isin(names, NUCLEIC_BACKBONE))


@dataclass
class ResidueQ:
    """Per-residue Q (means of per-atom Q over non-H atoms, NaN atoms left out; MapQ
    ``SaveQStats``) with backbone / side-chain means, per chain and overall.

    Arrays are per residue of the model's residue table: q_residue, q_backbone, q_sidechain,
    kind ('protein', 'nucleic', ...). ``chain_q`` maps chain name → mean over that chain's
    non-H atoms; ``overall`` is the mean over every scored atom; ``expected`` is
    expected_q(resolution) of the model's main kind when a resolution is given."""

    q_residue: np.ndarray
    q_backbone: np.ndarray
    q_sidechain: np.ndarray
    kind: np.ndarray
    chain_q: dict
    overall: float
    expected: float | None = None


def _group_mean(groups, values, mask, n_groups):
    ok = mask & np.isfinite(values)
    s = np.bincount(groups[ok], weights=values[ok], minlength=n_groups)
    c = np.bincount(groups[ok], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def residue_q(q, residue_index, atom_name, resname, chain, is_hydrogen=None,
              resolution=None) -> ResidueQ:
    """Summaries of per-atom Q (see :class:`ResidueQ`). ``residue_index`` (n,) per atom,
    ``resname``/``chain`` per residue (the :class:`cryovalid.io.model.Model` tables)."""
    q = np.asarray(q, dtype=np.float64)
    ri = np.asarray(residue_index, dtype=np.int64)
    resname = np.asarray(resname).astype(str)
    chain = np.asarray(chain).astype(str)
    nres = len(resname)
    heavy = np.ones(len(q), bool) if is_hydrogen is None else ~np.asarray(is_hydrogen, bool)
    kinds = np.array([residue_kind(r) for r in resname])
    bb = backbone_mask(atom_name, resname[ri])
    sc = heavy & ~bb & np.isin(kinds[ri], ("protein", "nucleic"))
    q_res = _group_mean(ri, q, heavy, nres)
    q_bb = _group_mean(ri, q, heavy & bb, nres)
    q_sc = _group_mean(ri, q, sc, nres)
    chain_of_atom = chain[ri]
    ok = heavy & np.isfinite(q)
    chain_q = {c: (float(np.mean(q[ok & (chain_of_atom == c)]))
                   if np.any(ok & (chain_of_atom == c)) else float("nan"))
               for c in dict.fromkeys(chain.tolist())}
    overall = float(np.mean(q[ok])) if np.any(ok) else float("nan")
    expected = None
    if resolution is not None:
        main = "nucleic" if np.count_nonzero(kinds == "nucleic") > np.count_nonzero(
            kinds == "protein") else "protein"
        expected = expected_q(resolution, main)
    return ResidueQ(q_res, q_bb, q_sc, kinds, chain_q, overall, expected)
