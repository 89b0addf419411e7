"""Map–model correlation coefficients as Phenix reports them (cctbx ``mmtbx/maps/correlation.py``
``five_cc`` and ``mmtbx/maps/map_model_cc.py``; Afonine et al. 2018, Acta Cryst. D74:814–840).

All CCs are Pearson correlation coefficients between the experimental map and the model map
(:func:`cryovalid.kernels.modelmap.model_map`, computed at the resolution used below) over a set
of grid points:

* **CC_mask**: the points of the Jiang–Brünger atom mask (N points);
* **CC_box**: every point of the box;
* **CC_volume**: the points where the model map is ≥ its (N+1)-th largest value (cctbx's
  ``get_selection_above_cutoff``: ``m >= sorted(m, reverse)[N]``, so N+1 points without ties);
* **CC_peaks**: the union of the same selection in the model map and in the experimental map;
* **per residue / per chain / main chain / side chain**: the points within the atom radius r of
  any atom of the selection (distances periodic in the box, as cctbx's
  ``grid_indices_around_sites``). A point near several residues counts for each of them.
  Main chain = atoms N, CA, C, O, CB of amino-acid residues; side chain = every other atom
  (cctbx: ``protein and (name C or name N or name CA or name O or name CB)`` and its complement).

Resolution used: max(R, 3.0) Å, as the reference (I2PC VRS) runs Phenix.

Atom radius (cctbx ``mtriage.get_atom_radius``):
r = max(3, min(10, max(d, 2·r_infl))) Å, where r_infl is the first inflection point of the image
of a carbon atom at resolution d and the model's mean B (all atoms, hydrogens included):

    ρ_C(r) = ∫_0^{1/d} 4π s² f_C(s) exp(−B s²/4) sin(2π s r)/(2π s r) ds

with f_C(s) = Σ_i a_i exp(−b_i s²/4) the electron form factor of carbon (International Tables
C, table 4.3.2.2; s = 1/d_hkl in Å⁻¹), sampled at r = 0, 0.1, 0.2 … Å (cctbx's step in
``get_atom_radius``) and integrated by Simpson's rule with 2000 intervals; the inflection is
the first sample where the discrete second difference turns positive, placed half a step
before it (cctbx ``maptbx.atom_curves.image``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import gemmi
import numpy as np

from cryovalid.kernels.modelmap import atom_mask, model_map

# The reference never asks Phenix for a resolution finer than this (Å).
MIN_RESOLUTION = 3.0
# cctbx get_atom_radius: clamp of the atom radius (Å) and its sampling of the carbon image.
ATOM_RADIUS_MIN = 3.0
ATOM_RADIUS_MAX = 10.0
IMAGE_RADIUS_STEP = 0.1
IMAGE_RADIUS_MAX = 15.0
IMAGE_INTEGRATION_STEPS = 2000
# A residue whose CC is below this is counted as poorly fitting (the reference's histogram).
LOW_RESIDUE_CC = 0.5


def resolution_used(resolution: float) -> float:
    """max(R, 3.0) Å: the resolution the CCs are computed at."""
    return max(float(resolution), MIN_RESOLUTION)


def _carbon_coefficients():
    """(a_i in Å, b_i in Å²) of carbon's electron form factor (ITC C 4.3.2.2, via gemmi)."""
    coefs = gemmi.Element("C").c4322.get_coefs()
    return np.asarray(coefs[:5], dtype=np.float64), np.asarray(coefs[5:], dtype=np.float64)


def carbon_image(resolution: float, b_iso: float, radii: np.ndarray) -> np.ndarray:
    """Image ρ_C(r) of one carbon atom (electron form factor, B = ``b_iso`` Å²) truncated at
    ``resolution`` Å, at the distances ``radii`` (Å); see the module docstring."""
    a, b = _carbon_coefficients()
    n = IMAGE_INTEGRATION_STEPS
    s = np.linspace(0.0, 1.0 / float(resolution), n + 1)
    f = (a[None, :] * np.exp(-b[None, :] * s[:, None] ** 2 / 4.0)).sum(axis=1) \
        * np.exp(-float(b_iso) * s ** 2 / 4.0)
    r = np.asarray(radii, dtype=np.float64)
    x = 2.0 * np.pi * np.outer(r, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(x > 1e-12, np.sin(x) / np.where(x > 1e-12, x, 1.0), 1.0)
    integrand = 4.0 * np.pi * s[None, :] ** 2 * f[None, :] * kernel
    w = np.ones(n + 1)
    w[1:-1:2] = 4.0
    w[2:-1:2] = 2.0
    h = s[1] - s[0]
    return integrand @ w * (h / 3.0)


def carbon_image_radius(resolution: float, b_iso: float, step: float = IMAGE_RADIUS_STEP) -> float:
    """2 × the first inflection point (Å) of :func:`carbon_image` (cctbx
    ``atom_curves.image(...).radius``), sampled every ``step`` Å up to max(15, resolution)."""
    r_max = max(IMAGE_RADIUS_MAX, float(resolution))
    radii = np.arange(0.0, r_max - 1e-9, step)
    v = carbon_image(resolution, b_iso, radii)
    dxx = np.empty_like(v)
    dxx[1:-1] = v[:-2] + v[2:] - 2.0 * v[1:-1]
    dxx[0] = 2.0 * v[1] - 2.0 * v[0]
    dxx[-1] = dxx[-2]
    pos = np.nonzero(dxx > 0)[0]
    if pos.size == 0 or pos[0] == 0:
        return float(r_max)
    i = int(pos[0])
    return float(radii[i - 1] + radii[i])  # 2 × (r[i-1] + r[i]) / 2


def atom_radius(resolution: float, mean_b: float) -> float:
    """cctbx's atom radius for local CCs: max(3, min(10, max(d, carbon image radius))) Å at the
    resolution ``resolution`` (already the one used) and the model's mean B (Å²)."""
    rad = carbon_image_radius(resolution, mean_b)
    return max(ATOM_RADIUS_MIN, min(ATOM_RADIUS_MAX, max(float(resolution), rad)))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2:
        return float("nan")
    x = x - x.mean()
    y = y - y.mean()
    den = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else float("nan")


def _above_cutoff(m: np.ndarray, n: int) -> np.ndarray:
    """cctbx get_selection_above_cutoff: m >= (n+1)-th largest value (bool, flat)."""
    flat = m.ravel()
    n = min(int(n), flat.size - 1)
    kth = np.partition(flat, flat.size - 1 - n)[flat.size - 1 - n]
    return flat >= kth


def five_cc(map_data: np.ndarray, model_map: np.ndarray, mask: np.ndarray) -> dict:
    """CC_mask, CC_box, CC_volume, CC_peaks (see the module docstring) and n_mask."""
    d = map_data.ravel()
    c = model_map.ravel()
    inside = np.asarray(mask, dtype=bool).ravel()
    n = int(np.count_nonzero(inside))
    out = {"n_mask": n, "cc_mask": _pearson(d[inside], c[inside]), "cc_box": _pearson(d, c)}
    if n == 0:
        out.update(cc_volume=float("nan"), cc_peaks=float("nan"))
        return out
    s_calc = _above_cutoff(model_map, n)
    s_map = _above_cutoff(map_data, n)
    out["cc_volume"] = _pearson(d[s_calc], c[s_calc])
    sel = s_calc | s_map
    out["cc_peaks"] = _pearson(d[sel], c[sel])
    return out


def _stencil_offsets(radius: float, ts: float) -> np.ndarray:
    """(z, y, x) voxel offsets from an atom's floor voxel that can lie within ``radius`` Å of
    it (the atom is anywhere in the cell [0, 1)³ of that voxel)."""
    k = int(math.ceil(radius / ts)) + 1
    off = np.arange(-k, k + 1)
    oz, oy, ox = np.meshgrid(off, off, off, indexing="ij")
    offs = np.stack([oz.ravel(), oy.ravel(), ox.ravel()], axis=1)
    low = np.where(offs >= 1, offs - 1, np.where(offs <= 0, -offs, 0))  # per-axis lower bound
    return offs[np.sqrt((low ** 2).sum(axis=1)) * ts <= radius]


def atom_point_pairs(xyz_box, shape, voxel_size, radius: float, *, periodic: bool = True):
    """(atom index, flat voxel index) of every grid point i·Ts within ``radius`` Å of each atom
    (d² ≤ r²): periodic in the box (cctbx), or, with ``periodic=False``, only the points inside
    it. Vectorised over atoms and stencil offsets, in chunks."""
    nz, ny, nx = (int(v) for v in shape)
    ts = float(voxel_size)
    xyz = np.asarray(xyz_box, dtype=np.float64).reshape(-1, 3)
    if len(xyz) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    offs = _stencil_offsets(radius, ts)
    zyx = xyz[:, ::-1] / ts
    base = np.floor(zyx).astype(np.int64)
    frac = zyx - base
    dims = np.array([nz, ny, nx])
    r2 = float(radius) ** 2
    chunk = max(1, int(4_000_000 // len(offs)))
    atoms, flats = [], []
    for i0 in range(0, len(xyz), chunk):
        b = base[i0:i0 + chunk]
        f = frac[i0:i0 + chunk]
        d2 = np.zeros((len(b), len(offs)))
        for a in range(3):
            d2 += ((offs[None, :, a] - f[:, a:a + 1]) * ts) ** 2
        ai, oi = np.nonzero(d2 <= r2)
        idx = b[ai] + offs[oi]
        if periodic:
            idx %= dims
        else:
            ok = np.all((idx >= 0) & (idx < dims), axis=1)
            ai, idx = ai[ok], idx[ok]
        atoms.append(ai + i0)
        flats.append((idx[:, 0] * ny + idx[:, 1]) * nx + idx[:, 2])
    return np.concatenate(atoms), np.concatenate(flats)


# Most (atom, grid point) distance tests held in memory at once by :func:`local_cc`.
PAIRS_PER_CHUNK = 4_000_000


def unique_ints(a: np.ndarray) -> np.ndarray:
    """The sorted distinct values of an integer array, by sorting (numpy 2's hash-based
    ``np.unique`` is ~80 times slower on millions of int64 keys)."""
    k = np.sort(np.asarray(a).ravel())
    if k.size:
        k = k[np.concatenate(([True], k[1:] != k[:-1]))]
    return k


def _standardised(a):
    a = np.asarray(a, dtype=np.float64).ravel()
    sd = a.std()
    return (a - a.mean()) / (sd if sd > 0 else 1.0)


def _sums(x, y):
    return np.array([x.size, x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum()])


def _cc_from_sums(sums):
    """Pearson CC from rows (n, Σx, Σy, Σx², Σy², Σxy) (arrays over groups); NaN where fewer
    than 2 points or no variance."""
    n, sx, sy, sxx, syy, sxy = sums
    with np.errstate(invalid="ignore", divide="ignore"):
        vx = n * sxx - sx * sx
        vy = n * syy - sy * sy
        cc = (n * sxy - sx * sy) / np.sqrt(vx * vy)
    return np.where((n < 2) | ~(vx > 0) | ~(vy > 0), np.nan, cc).astype(np.float64)


def local_cc(map_data, model_map, xyz_box, voxel_size, radius, residue_index, n_residues,
             chain_of_residue, n_chains, is_main_chain):
    """Per-residue, per-chain, main-chain and side-chain CCs over the grid points within
    ``radius`` Å of each selection's atoms (see the module docstring).

    Vectorised over atoms and points: the (atom, point) pairs of a block of whole residues
    (at most PAIRS_PER_CHUNK distance tests) are turned into unique (residue, point) keys whose
    sums of x, y, x², y², xy are added per residue with np.bincount (maps standardised first,
    float64); a chain's points are the union of its blocks' points; main and side chain are
    boolean grids. The Python loops run over chains and blocks, never over atoms or voxels.

    Returns (residue_cc, residue_points, chain_cc, (cc_main_chain, cc_side_chain)).
    """
    shape = map_data.shape
    d = _standardised(map_data)
    c = _standardised(model_map)
    nvox = d.size
    xyz = np.asarray(xyz_box, dtype=np.float64).reshape(-1, 3)
    res_of_atom = np.asarray(residue_index, dtype=np.int64)
    chain_of_residue = np.asarray(chain_of_residue, dtype=np.int64)
    chain_of_atom = chain_of_residue[res_of_atom]
    mc = np.asarray(is_main_chain, dtype=bool)
    order = np.lexsort((res_of_atom, chain_of_atom))
    res_sums = np.zeros((6, n_residues))
    chain_sums = np.zeros((6, n_chains))
    on_main = np.zeros(nvox, dtype=bool)
    on_side = np.zeros(nvox, dtype=bool)
    per_atom = max(1, len(_stencil_offsets(radius, float(voxel_size))))
    atoms_per_chunk = max(1, PAIRS_PER_CHUNK // per_atom)
    chain_sorted = chain_of_atom[order]
    res_sorted = res_of_atom[order]
    cuts = np.flatnonzero(np.diff(chain_sorted)) + 1
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(order)]):  # one chain
        points = []
        start = lo
        while start < hi:
            stop = min(hi, start + atoms_per_chunk)
            if stop < hi:  # end the block at a residue boundary
                stop = int(np.searchsorted(res_sorted[start:hi], res_sorted[stop - 1],
                                           side="right")) + start
            idx = order[start:stop]
            ai, flat = atom_point_pairs(xyz[idx], shape, voxel_size, radius)
            atom = idx[ai]
            key = unique_ints(res_of_atom[atom] * nvox + flat)
            grp, pts = key // nvox, key % nvox
            x, y = d[pts], c[pts]
            res_sums[0] += np.bincount(grp, minlength=n_residues)
            for row, w in enumerate((x, y, x * x, y * y, x * y), start=1):
                res_sums[row] += np.bincount(grp, w, n_residues)
            points.append(unique_ints(flat))
            on_main[flat[mc[atom]]] = True
            on_side[flat[~mc[atom]]] = True
            start = stop
        pts = unique_ints(np.concatenate(points)) if points else np.zeros(0, dtype=np.int64)
        chain_sums[:, chain_sorted[lo]] = _sums(d[pts], c[pts])
    main_side = np.stack([_sums(d[on_main], c[on_main]), _sums(d[on_side], c[on_side])], axis=1)
    ms = _cc_from_sums(main_side)
    return (_cc_from_sums(res_sums), res_sums[0].astype(np.int64), _cc_from_sums(chain_sums),
            (float(ms[0]) if mc.any() else float("nan"),
             float(ms[1]) if (~mc).any() else float("nan")))


@dataclass
class MapModelCC:
    """The Phenix map–model CCs (see the module docstring). CCs are dimensionless; NaN where a
    selection has fewer than two grid points."""

    resolution: float          # Å, the one used (max(R, 3))
    atom_radius: float         # Å, radius of the local CCs
    mean_b: float              # Å², mean B of all atoms (the carbon image's B)
    cc_mask: float
    cc_box: float
    cc_volume: float
    cc_peaks: float
    n_mask: int                # grid points in the atom mask
    residue_cc: np.ndarray     # (n_residues,) per residue of the residue table
    residue_points: np.ndarray  # (n_residues,) grid points used for each
    chain_cc: dict = field(default_factory=dict)  # chain name -> CC
    cc_main_chain: float = float("nan")
    cc_side_chain: float = float("nan")

    def fraction_below(self, threshold: float = LOW_RESIDUE_CC) -> float:
        """Fraction (0–1) of the residues (those with a CC) whose CC is below ``threshold``."""
        v = self.residue_cc[np.isfinite(self.residue_cc)]
        return float(np.count_nonzero(v < threshold)) / v.size if v.size else float("nan")


def map_model_cc(map_data, model_map, mask, xyz_box, voxel_size, residue_index,
                 residue_chain, is_main_chain, resolution: float, mean_b: float,
                 radius: float | None = None) -> MapModelCC:
    """All the CCs of :class:`MapModelCC`.

    Parameters
    ----------
    map_data, model_map : (z, y, x) arrays on the same grid (the model map at ``resolution``)
    mask : (z, y, x) bool, the atom mask (:func:`cryovalid.kernels.modelmap.atom_mask`)
    xyz_box : (n, 3) atom positions in the box frame (Å, x, y, z)
    voxel_size : Å
    residue_index : (n,) int, each atom's row in the residue table
    residue_chain : (n_residues,) chain name of each residue
    is_main_chain : (n,) bool (N, CA, C, O, CB of amino acids); every other atom is side chain
    resolution : Å, the resolution used (max(R, 3); see :func:`resolution_used`)
    mean_b : Å², mean B of all atoms
    radius : Å, the atom radius; cctbx's rule (:func:`atom_radius`) when None
    """
    if map_data.shape != model_map.shape or map_data.shape != mask.shape:
        raise ValueError("map, model map and mask must be on the same grid")
    five = five_cc(map_data, model_map, mask)
    r = atom_radius(resolution, mean_b) if radius is None else float(radius)
    residue_chain = np.asarray(residue_chain).astype(str)
    chains = list(dict.fromkeys(residue_chain.tolist()))
    chain_id = {ch: i for i, ch in enumerate(chains)}
    chain_of_res = np.array([chain_id[ch] for ch in residue_chain.tolist()], dtype=np.int64)
    res_cc, res_n, ch_cc, (cc_mc, cc_sc) = local_cc(
        map_data, model_map, xyz_box, voxel_size, r, residue_index, len(residue_chain),
        chain_of_res, len(chains), is_main_chain)
    return MapModelCC(
        resolution=float(resolution), atom_radius=r, mean_b=float(mean_b),
        cc_mask=five["cc_mask"], cc_box=five["cc_box"], cc_volume=five["cc_volume"],
        cc_peaks=five["cc_peaks"], n_mask=five["n_mask"], residue_cc=res_cc,
        residue_points=res_n, chain_cc={ch: float(ch_cc[i]) for i, ch in enumerate(chains)},
        cc_main_chain=cc_mc, cc_side_chain=cc_sc)


def map_model_cc_for_model(model, map_, resolution: float):
    """Convenience: everything from a :class:`cryovalid.io.model.Model` and a
    :class:`cryovalid.io.maps.Map` at the map's resolution R (Å; max(R, 3) is used).

    Returns (MapModelCC, model_map, mask)."""
    d = resolution_used(resolution)
    xyz_box = model.xyz - np.asarray(map_.origin, dtype=np.float64)
    calc = model_map(xyz_box, model.element, model.b_iso, model.occupancy, map_.shape,
                     map_.voxel_size, d)
    mask = atom_mask(xyz_box, model.element, map_.shape, map_.voxel_size,
                     occupancy=model.occupancy)
    result = map_model_cc(map_.data, calc, mask, xyz_box, map_.voxel_size, model.residue_index,
                          model.chain, main_chain_atoms(model), d,
                          float(np.mean(model.b_iso, dtype=np.float64)))
    return result, calc, mask


def main_chain_atoms(model) -> np.ndarray:
    """(n,) bool: N, CA, C, O, CB of amino-acid residues (cctbx's ``protein and (name ...)``)."""
    names = np.unique(model.resname)
    aa = {n for n in names.tolist()
          if (gemmi.find_tabulated_residue(n) is not None
              and gemmi.find_tabulated_residue(n).is_amino_acid())}
    is_aa = np.isin(model.resname, list(aa))[model.residue_index]
    return model.is_main_chain() & is_aa
