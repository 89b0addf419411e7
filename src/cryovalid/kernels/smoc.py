"""SMOC: per-residue segment Manders' overlap coefficient, as TEMPy computes it.

SMOC scores how well each residue's neighbourhood of the map agrees with a simulated map of the
model (Joseph, Malhotra, Burnley, Wood, Clare, Winn & Topf 2016, Methods 100:42–49,
"Refinement of atomic models in high resolution EM reconstructions using Flex-EM and local
assessment"; TEMPy: Farabella et al. 2015, J. Appl. Cryst. 48:1314; Cragnolini et al. 2021,
Acta Cryst. D77:41). It is a published, non-learned per-residue score, used here for item A.g
in place of DAQ (a neural network whose weights are not available).

The definition reproduced is TEMPy 2.1.2's ``FastSMOC`` scored with ``score_chain_contig`` and
an 11-residue window, which is what ``TEMPy.smoc`` (default ``--smoc-window 11``) and the EMDB
validation analysis (``va/metrics/smoc.py``: window 11, NaN counted as 0 in its mean) run:

1. **Atoms.** Polymer residues only: HETATM residues (ligands, ions) and waters are left out,
   as TEMPy's parsers do by default; hydrogens are kept. Each atom weighs its "mass" from the
   first letter of its name: H 1, C 12, N 14, O 16, S 32, anything else 1 (TEMPy
   ``ATOMIC_MASSES``; so SE counts as S).
2. **Simulated map** (``StructureBlurrer.gaussian_blur_real_space`` with σ-coefficient 0.225,
   the pure-numpy path): an intermediate grid of ``int(n·Ts)`` points per axis over the map's
   box (spacing ≈ 1 Å, exactly n·Ts/int(n·Ts)); each atom's mass added to its nearest point
   (index ``round((x − origin)/spacing)``, half to even); a Gaussian filter of σ = 0.225·R in
   points of that grid (scipy ``gaussian_filter``, mirror-reflected edges, truncated at 4σ);
   cubic-spline interpolation back onto the map's grid (spline prefilter, order 3, points
   beyond the last grid point get the grid's minimum); then normalised to mean 0 and SD 1 over
   the whole box.
3. **Points of a residue** (voxcov's coverage rule, which TEMPy's voxel trees share): the grid
   points whose *voxel centre* (i + ½)·Ts + origin lies within r = σ_thr·max(0.225·R, 1 Å) of
   one of the residue's atoms, σ_thr = 2.5 (r = 2.5 Å for R ≤ 4.44 Å); points outside the box
   do not count (not periodic).
4. **Window.** The residues of a chain are cut into contigs (runs of consecutive residue
   numbers); residue i's window is residues i − 5 … i + 5 of its contig (shorter at a contig's
   ends). Its points are the union of those residues' points, each point once.
5. **SMOC** = Manders' overlap coefficient over the window's points,
   Σ a·b / √(Σ a² · Σ b²), a = map value (raw, map units), b = normalised simulated value
   (no mean subtracted). Dimensionless, in [−1, 1]. NaN where the window has no point in the box
   (or only zero values).

Checked against TEMPy's numbers (level-a-methods.md): mean SMOC 0.6074 / 0.8187 / 0.7199 on
EMD-3488 + 5ME2 / EMD-30342 + 7CEC chain A / EMD-2566 + 3J6B chain 9 (TEMPy 0.607 / 0.819 /
0.720). The details matter: a Gaussian of σ = 0.225·R evaluated exactly on the map's grid gives
0.635 / 0.822 / 0.736, voxel corners instead of voxel centres for step 3 give 0.606 / 0.817 /
0.713, and leaving the hydrogens out of 3J6B gives 0.749.

Everything is vectorised: atoms are deposited with ``bincount``, (atom, point) pairs come from
one stencil of offsets for all atoms, and the window sums are ``bincount`` sums over unique
(window, point) pairs; the only Python loops are over the stencil offsets, the window's 11
offsets and chunks (memory). EMD-3488 + 5ME2 takes about 0.6 s on one core.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

WINDOW = 11  # residues, TEMPy's default (TEMPy.smoc --smoc-window, EMDB VA)
SIGMA_COEFF = 0.225  # σ of the simulated map = SIGMA_COEFF · resolution (TEMPy FastSMOC)
SIGMA_THRESHOLD = 2.5  # point radius = SIGMA_THRESHOLD · max(SIGMA_COEFF · R, 1 Å)
MIN_SIGMA_A = 1.0  # Å, the floor on σ in the point radius
GAUSS_TRUNCATE = 4.0  # scipy gaussian_filter's default truncation, in σ
# TEMPy's atom "masses", keyed by the first letter of the atom name (others weigh 1).
TEMPY_MASSES = {"H": 1.0, "C": 12.0, "N": 14.0, "O": 16.0, "S": 32.0}
# Most (window, point) pairs held in memory at once.
PAIRS_PER_CHUNK = 8_000_000


@dataclass
class SmocResult:
    """Per-residue SMOC (dimensionless) and its summaries.

    Attributes
    ----------
    per_residue : (n_residues,) float64 in the model's residue order; NaN for residues not
        scored (HETATM, water) and where undefined (no grid point in the box)
    scored : (n_residues,) bool, the residues TEMPy scores (polymer residues)
    n_points : (n_residues,) int, grid points in each residue's window (0 when not scored)
    mean : mean SMOC over the scored residues where it is defined (NaN if none)
    mean_nan_as_zero : the same with undefined values counted as 0 (EMDB VA's average)
    chain_means : {chain: mean over its scored residues where defined}
    n_scored, n_undefined : residues scored, and scored residues whose SMOC is NaN
    window : residues per window; resolution : Å; sigma_coeff, sigma_threshold : TEMPy's
    radius : Å, the point radius around each atom
    """

    per_residue: np.ndarray
    scored: np.ndarray
    n_points: np.ndarray
    mean: float
    mean_nan_as_zero: float
    chain_means: dict = field(default_factory=dict)
    n_scored: int = 0
    n_undefined: int = 0
    window: int = WINDOW
    resolution: float = float("nan")
    sigma_coeff: float = SIGMA_COEFF
    sigma_threshold: float = SIGMA_THRESHOLD
    radius: float = float("nan")


def point_radius(resolution: float, sigma_coeff: float = SIGMA_COEFF,
                 sigma_threshold: float = SIGMA_THRESHOLD) -> float:
    """Radius (Å) around each atom within which grid points belong to its residue (FastSMOC)."""
    return float(sigma_threshold) * max(float(sigma_coeff) * float(resolution), MIN_SIGMA_A)


def tempy_masses(atom_name) -> np.ndarray:
    """(n,) float64 TEMPy atom masses from the first letter of each atom name."""
    first = np.array([str(n).strip()[:1].upper() for n in atom_name], dtype="<U1")
    out = np.ones(len(first), dtype=np.float64)
    for letter, m in TEMPY_MASSES.items():
        out[first == letter] = m
    return out


def polymer_residues(model) -> np.ndarray:
    """(n_residues,) bool: residues read from ATOM records (gemmi ``het_flag == 'A'``) that are
    not water — the residues TEMPy's parsers keep by default. Falls back to gemmi's table of
    amino acids and nucleotides when the structure's residues cannot be matched to the model's
    residue table."""
    import gemmi

    n = int(len(model.resseq))
    flags = []
    st = getattr(model, "structure", None)
    if st is not None and len(st) > 0:
        for ch in st[0]:
            for res in ch:
                if len(res) == 0:
                    continue
                flags.append(res.het_flag)
    names = np.asarray(model.resname).astype(str)
    if len(flags) == n:
        poly = np.array(flags) == "A"
    else:
        def is_poly(name):
            info = gemmi.find_tabulated_residue(name)
            return bool(info and (info.is_amino_acid() or info.is_nucleic_acid()))
        poly = np.array([is_poly(nm) for nm in names], dtype=bool)
    water = np.isin(names, ("HOH", "WAT", "H2O", "DOD"))
    return poly & ~water


def tempy_model_map(shape, voxel_size: float, origin, xyz, mass, resolution: float,
                    sigma_coeff: float = SIGMA_COEFF) -> np.ndarray:
    """TEMPy's simulated map on a map's grid (step 2 of the module docstring), not normalised.

    shape : (nz, ny, nx); voxel_size : Å; origin : world (x, y, z) Å of voxel (0, 0, 0);
    xyz : (n, 3) world Å; mass : (n,) weights; resolution : Å. Returns float32 (z, y, x) in
    mass units (the sum of Gaussian-filtered masses, as TEMPy's before normalisation).
    """
    from scipy import ndimage

    n = np.array([int(v) for v in shape])
    # TEMPy: x_s = int(x_size * apix), apix a float32 from mrcfile.
    ns = np.array([int(np.float32(voxel_size) * np.float32(k)) for k in n])
    ns = np.maximum(ns, 1)
    spacing = float(voxel_size) * n / ns  # (z, y, x) Å per point of the intermediate grid
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    mass = np.asarray(mass, dtype=np.float64).ravel()
    out = np.zeros(tuple(n), dtype=np.float32)
    if len(xyz) == 0:
        return out
    rel = (xyz - np.asarray(origin, dtype=np.float64))[:, ::-1] / spacing
    idx = np.rint(rel).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < ns), axis=1)
    idx, w = idx[inside], mass[inside]
    if len(idx) == 0:
        return out
    sigma = float(sigma_coeff) * float(resolution)
    # Work in a sub-box around the atoms (the filtered field is 0 beyond 4σ and the spline's
    # reach); where the sub-box meets the box edge, the edge rules are TEMPy's.
    margin = int(math.ceil(GAUSS_TRUNCATE * sigma)) + 8
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, ns)
    sub = hi - lo
    loc = idx - lo
    flat = (loc[:, 0] * sub[1] + loc[:, 1]) * sub[2] + loc[:, 2]
    grid = np.bincount(flat, weights=w, minlength=int(np.prod(sub))).astype(np.float32)
    grid = grid.reshape(tuple(sub))
    grid = ndimage.gaussian_filter(grid, sigma, output=np.float32, truncate=GAUSS_TRUNCATE)
    full_box = bool(np.all(lo == 0) and np.all(hi == ns))
    cval = float(grid.min()) if full_box else 0.0
    coef = ndimage.spline_filter(grid, order=3, output=np.float32)
    # Map point i sits at intermediate-grid coordinate i·Ts/spacing; only the points whose
    # coordinates fall in the sub-box need interpolating (the rest stay cval, 0 in practice).
    scale = float(voxel_size) / spacing
    axes = []
    for a in range(3):
        c = np.arange(n[a]) * scale[a] - lo[a]
        sel = np.nonzero((c >= -1.0) & (c <= sub[a]))[0]
        axes.append((sel, c[sel]))
    (sz, cz), (sy, cy), (sx, cx) = axes
    if cval != 0.0:
        out[:] = cval
    if len(sz) and len(sy) and len(sx):
        ny_, nx_ = len(sy), len(sx)
        gy, gx = np.meshgrid(cy, cx, indexing="ij")
        planes = max(1, int(2_000_000 // (ny_ * nx_)))
        for k0 in range(0, len(sz), planes):
            zc = cz[k0:k0 + planes]
            coords = np.empty((3, len(zc), ny_, nx_), dtype=np.float64)
            coords[0] = zc[:, None, None]
            coords[1] = gy[None]
            coords[2] = gx[None]
            vals = ndimage.map_coordinates(coef, coords, order=3, prefilter=False, cval=cval,
                                           output=np.float32)
            out[np.ix_(sz[k0:k0 + planes], sy, sx)] = vals
    return out


def centre_point_pairs(xyz, shape, voxel_size: float, origin, radius: float):
    """(atom index, flat voxel index) of every voxel of the box whose centre (i + ½)·Ts + origin
    lies within ``radius`` Å of each atom (d ≤ r; voxcov/TEMPy coverage; not periodic): the
    grid points of :func:`cryovalid.kernels.mapmodel_cc.atom_point_pairs` in a frame shifted
    by half a voxel."""
    from cryovalid.kernels.mapmodel_cc import atom_point_pairs

    ts = float(voxel_size)
    shifted = np.asarray(xyz, dtype=np.float64).reshape(-1, 3) - np.asarray(origin) - 0.5 * ts
    return atom_point_pairs(shifted, shape, ts, radius, periodic=False)


def _contig_order(chain, resseq, scored):
    """Scored residues in TEMPy's order (chains in order of first appearance, file order within
    a chain) and the contig id of each (a new contig where the number is not previous + 1)."""
    rows = np.nonzero(scored)[0]
    if len(rows) == 0:
        return rows, rows
    ch = np.asarray(chain).astype(str)[rows]
    _, first = np.unique(ch, return_index=True)
    rank = np.empty(len(first), dtype=np.int64)
    names = np.unique(ch)
    rank[np.argsort(first)] = np.arange(len(first))
    chain_rank = rank[np.searchsorted(names, ch)]
    order = np.argsort(chain_rank, kind="stable")
    rows = rows[order]
    ch = ch[order]
    seq = np.asarray(resseq, dtype=np.int64)[rows]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = ~((ch[1:] == ch[:-1]) & (seq[1:] == seq[:-1] + 1))
    return rows, np.cumsum(new) - 1


def _scored_atoms(xyz, model):
    """(atom selection, polymer residue selection): the atoms SMOC scores and blurs."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    residue_index = np.asarray(model.residue_index, dtype=np.int64)
    if len(xyz) != len(residue_index):
        raise ValueError(f"SMOC: {len(xyz)} coordinates for {len(residue_index)} atoms")
    scored = polymer_residues(model)
    return scored[residue_index] & np.all(np.isfinite(xyz), axis=1), scored


def simulated_map(shape, voxel_size: float, origin, xyz, model, resolution: float,
                  sigma_coeff: float = SIGMA_COEFF) -> np.ndarray:
    """TEMPy's model map of the atoms SMOC scores (:func:`tempy_model_map`), to compute once
    and pass to several :func:`smoc` calls (e.g. two windows) as ``model_map``."""
    atom_ok, _ = _scored_atoms(xyz, model)
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    mass = tempy_masses(np.asarray(model.atom_name)[atom_ok])
    return tempy_model_map(tuple(shape), float(voxel_size), origin, xyz[atom_ok], mass,
                           float(resolution), sigma_coeff)


def smoc(map_data, voxel_size: float, origin, xyz, model, resolution: float, *,
         window: int = WINDOW, sigma_coeff: float = SIGMA_COEFF,
         sigma_threshold: float = SIGMA_THRESHOLD, model_map=None) -> SmocResult:
    """Per-residue SMOC of ``model`` (placed at ``xyz``) in the map (see the module docstring).

    map_data : (z, y, x) map, map units; voxel_size : Å; origin : world (x, y, z) Å of voxel
    (0, 0, 0); xyz : (n_atoms, 3) world Å, the placement to score (may differ from model.xyz);
    model : :class:`cryovalid.io.model.Model` (atom names, residue table); resolution : Å;
    window : odd number of residues per window (TEMPy's default 11).
    model_map : :func:`simulated_map` of the same atoms and resolution, if already computed.
    Atoms with non-finite coordinates are left out (of the simulated map and the points).
    Raises ValueError (one line) for a map that is not 3-D, a non-positive voxel size or
    resolution, an even window, or coordinates that do not match the model's atoms.
    """
    data = np.asarray(map_data)
    if data.ndim != 3 or data.size == 0:
        raise ValueError("SMOC needs a non-empty 3-D map")
    ts = float(voxel_size)
    res = float(resolution)
    if not (math.isfinite(ts) and ts > 0):
        raise ValueError(f"SMOC needs a positive voxel size, not {voxel_size!r}")
    if not (math.isfinite(res) and res > 0):
        raise ValueError(f"SMOC needs a positive resolution, not {resolution!r}")
    window = int(window)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"SMOC window must be an odd number of residues, not {window}")
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    residue_index = np.asarray(model.residue_index, dtype=np.int64)
    if len(xyz) != len(residue_index):
        raise ValueError(f"SMOC: {len(xyz)} coordinates for {len(residue_index)} atoms")
    n_res = int(len(model.resseq))
    radius = point_radius(res, sigma_coeff, sigma_threshold)

    scored = polymer_residues(model)
    atom_ok = scored[residue_index] & np.all(np.isfinite(xyz), axis=1)
    a_xyz = xyz[atom_ok]
    a_res = residue_index[atom_ok]
    mass = tempy_masses(np.asarray(model.atom_name)[atom_ok])

    sim = (tempy_model_map(data.shape, ts, origin, a_xyz, mass, res, sigma_coeff)
           if model_map is None else np.asarray(model_map))
    if sim.shape != data.shape:
        raise ValueError("SMOC: the model map is not on the map's grid")
    mu = float(sim.mean(dtype=np.float64))
    sd = float(sim.std(dtype=np.float64))
    e = data.ravel()
    s = sim.ravel()

    rows, contig = _contig_order(model.chain, model.resseq, scored)
    n_w = len(rows)
    pos_of_res = np.full(n_res, -1, dtype=np.int64)
    pos_of_res[rows] = np.arange(n_w)

    ai, vox = centre_point_pairs(a_xyz, data.shape, ts, origin, radius)
    # unique (point, residue position) pairs, sorted by point then position (a sort, not a
    # hash: numpy's hash-based unique is far slower on tens of millions of keys)
    key = np.sort(vox.astype(np.int64) * n_w + pos_of_res[a_res[ai]])
    if key.size:
        key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    pair_vox = key // n_w
    pair_pos = key % n_w

    # The window centred at t holds the points of residues t − half … t + half of t's contig.
    # A point touched by residue p is in the windows [p − half, p + half] ∩ p's contig; the
    # union of these intervals over the residues touching a point (consecutive in the sorted
    # pairs; intervals of one contig grow monotonically) gives each (window, point) once, and
    # its values are added to every window of a merged interval with a difference array.
    half = (window - 1) // 2
    c_of = contig[pair_pos] if n_w else pair_pos
    c_first = np.full(int(contig.max()) + 1 if n_w else 0, n_w, dtype=np.int64)
    c_last = np.zeros_like(c_first)
    if n_w:
        np.minimum.at(c_first, contig, np.arange(n_w))
        np.maximum.at(c_last, contig, np.arange(n_w))
    lo = np.maximum(pair_pos - half, c_first[c_of])
    hi = np.minimum(pair_pos + half, c_last[c_of])
    start = np.ones(len(key), dtype=bool)
    if len(key) > 1:
        start[1:] = ((pair_vox[1:] != pair_vox[:-1]) | (c_of[1:] != c_of[:-1])
                     | (lo[1:] > hi[:-1] + 1))
    group = np.cumsum(start) - 1
    g_lo = lo[start]
    g_hi = np.zeros(int(start.sum()), dtype=np.int64)
    g_hi[group] = hi  # hi grows within a group: its last value is the group's end
    g_vox = pair_vox[start]
    a = e[g_vox].astype(np.float64)
    bb = (s[g_vox].astype(np.float64) - mu) / (sd if sd > 0 else 1.0)

    def spread(weights):
        d = np.bincount(g_lo, weights, n_w + 1) - np.bincount(g_hi + 1, weights, n_w + 1)
        return np.cumsum(d)[:n_w]

    sab, saa, sbb = spread(a * bb), spread(a * a), spread(bb * bb)
    npts = np.rint(spread(np.ones(len(g_lo)))).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        val = sab / np.sqrt(saa * sbb)
    val = np.where((npts > 0) & (saa > 0) & (sbb > 0), val, np.nan)

    per_residue = np.full(n_res, np.nan)
    per_residue[rows] = val
    n_points = np.zeros(n_res, dtype=np.int64)
    n_points[rows] = npts
    defined = np.isfinite(val)
    mean = float(val[defined].mean()) if defined.any() else float("nan")
    mean0 = float(np.where(defined, val, 0.0).mean()) if n_w else float("nan")
    chain_arr = np.asarray(model.chain).astype(str)
    chain_means = {}
    for ch in dict.fromkeys(chain_arr[rows].tolist()):
        v = per_residue[(chain_arr == ch) & scored]
        v = v[np.isfinite(v)]
        chain_means[ch] = float(v.mean()) if len(v) else float("nan")
    return SmocResult(per_residue=per_residue, scored=scored, n_points=n_points, mean=mean,
                      mean_nan_as_zero=mean0, chain_means=chain_means, n_scored=int(n_w),
                      n_undefined=int(n_w - defined.sum()), window=window, resolution=res,
                      sigma_coeff=float(sigma_coeff), sigma_threshold=float(sigma_threshold),
                      radius=radius)
