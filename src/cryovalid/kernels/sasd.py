"""Solvent-accessible surface distance (SASD) between residues, as Jwalk defines it.

Bullock, Schwab, Thalassinos & Topf (2016), "The importance of non-accessible crosslinks and
solvent accessible surface distance in modelling proteins with restraints from crosslinking
mass spectrometry", Mol. Cell. Proteomics 15:2491 ("Jwalk"): the SASD of a cross-link is the
length of the shortest path between the two residues' Cα atoms that runs through solvent only,
found on a 1 Å grid whose voxels within an atom's van der Waals radius plus a margin are
removed (the linked residues' own side chains are left out: the linker runs along them), by a
shortest-path search over the 26-connected free voxels that starts at the free voxels nearest
the Cα. Jwalk's limit for DSS/BS3 (33 Å) is such a Cα–Cα SASD.

Here (all lengths in Å, coordinates world x, y, z):

* the grid (:data:`GRID_A`) covers a box around the source and its targets, no larger than
  the box around the atoms and the anchors (a shortest path stays within it), and only the
  voxels through which a path no longer than ``limit_A`` can run are kept (the union of the
  ellipsoids ``|x - source| + |x - target| <= limit_A``);
* a voxel is blocked when its centre lies within the atom's van der Waals radius
  (:data:`VDW_RADII_A`) + :data:`PROBE_RADIUS_A` of any of the ``atoms`` given
  (the caller leaves out the linked residues' own atoms);
* the path starts and ends at the free voxels nearest each anchor atom (the shell one voxel
  thick beyond the nearest free voxel, as Jwalk's growing start shells, out to
  :data:`SEED_RADIUS_A`), that first and last step counted as the straight distance from the
  anchor (a Cα may lie inside its neighbours' excluded zones);
* the shortest path over the free voxels, edges to the 26 neighbours weighted by their length
  (1, √2, √3 voxels), is found with Dijkstra's algorithm (``scipy.sparse.csgraph.dijkstra``)
  from one source to all its targets at once, stopped at ``limit_A``.

A 26-connected grid path is a chamfer distance: never shorter than the straight line, at most
8.2 % longer in a plane and 11.5 % in the worst 3-D direction in free space; around an atom a
path keeps its voxel centres outside the inflated radius, which adds up to half a voxel
diagonal to it (measured on a wall: 11 % above the exact way round). Jwalk's own distances
are measured the same way. An anchor with no free voxel within :data:`SEED_RADIUS_A` is
buried (not solvent accessible, Jwalk's "non-accessible cross-link"): its SASD is infinite.
"""
from __future__ import annotations

import numpy as np

GRID_A = 1.0  # Jwalk's grid spacing
# Jwalk's margin added to each atom's van der Waals radius (a water probe would be 1.4 Å)
PROBE_RADIUS_A = 0.8
# how far from its anchor atom a path may start: Jwalk's outermost start shell (6 voxels)
SEED_RADIUS_A = 6.0
# van der Waals radii, Å: C, N, O, S as Jwalk (Bullock et al. 2016) takes them, the others
# Bondi's (1964, J. Phys. Chem. 68:441); elements not listed get DEFAULT_VDW_A
VDW_RADII_A = {"C": 1.73, "N": 1.43, "O": 1.30, "S": 1.67, "P": 1.80, "SE": 1.90, "F": 1.47,
               "CL": 1.75, "BR": 1.85, "I": 1.98, "MG": 1.73, "NA": 2.27, "K": 2.75,
               "ZN": 1.39, "FE": 1.80, "CA": 1.80, "MN": 1.80, "CU": 1.40}
DEFAULT_VDW_A = 1.80
ATOM_CHUNK = 2048  # atoms blocked at a time (bounds the memory of the blocking step)


def vdw_radii(elements) -> np.ndarray:
    """(n,) float64 van der Waals radii (Å) of upper-case element symbols."""
    return np.array([VDW_RADII_A.get(str(e).upper(), DEFAULT_VDW_A) for e in elements],
                    dtype=np.float64)


def _offsets(reach: int):
    r = np.arange(-reach, reach + 1)
    return np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)


def blocked_grid(atoms_xyz, radii, lo, shape, grid=GRID_A, probe=PROBE_RADIUS_A) -> np.ndarray:
    """(nx, ny, nz) bool: voxels (centres ``lo + index·grid``, x, y, z order) within
    radius + probe of any atom."""
    shape = tuple(int(s) for s in shape)
    out = np.zeros(shape, dtype=bool)
    xyz = np.asarray(atoms_xyz, dtype=np.float64).reshape(-1, 3)
    rad = np.asarray(radii, dtype=np.float64).reshape(-1) + probe
    if len(xyz) == 0:
        return out
    lo = np.asarray(lo, dtype=np.float64)
    hi = lo + (np.asarray(shape) - 1) * grid
    near = np.all((xyz >= lo - rad[:, None]) & (xyz <= hi + rad[:, None]), axis=1)
    xyz, rad = xyz[near], rad[near]
    if len(xyz) == 0:
        return out
    reach = int(np.ceil(rad.max() / grid))
    off = _offsets(reach)
    off = off[np.sum(off * off, axis=1) * grid * grid <= (rad.max() + 0.87 * grid) ** 2]
    # a grid padded by 2 reach on every side (an atom up to reach outside the box, its
    # voxels up to reach beyond it) needs no bounds checks: flat indices
    pad = 2 * reach
    padded = tuple(int(n) + 2 * pad for n in shape)
    flat = np.zeros(int(np.prod(padded)), dtype=bool)
    strides = np.array([padded[1] * padded[2], padded[2], 1], dtype=np.int64)
    off_flat = off @ strides
    off_A = off * grid
    for s in range(0, len(xyz), ATOM_CHUNK):
        p, r = xyz[s:s + ATOM_CHUNK], rad[s:s + ATOM_CHUNK]
        base = np.rint((p - lo) / grid).astype(np.int64)  # nearest voxel of each atom
        delta = p - (lo + base * grid)  # the atom from that voxel's centre
        d2 = np.sum((off_A[None, :, :] - delta[:, None, :]) ** 2, axis=-1)  # (m, k)
        hit = d2 <= (r * r)[:, None]
        cells = ((base + pad) @ strides)[:, None] + off_flat[None, :]
        flat[cells[hit]] = True
    return flat.reshape(padded)[pad:pad + shape[0], pad:pad + shape[1],
                                pad:pad + shape[2]].copy()


# the 13 neighbour offsets with a positive first non-zero component (each edge once)
_HALF = np.array([o for o in _offsets(1).tolist() if o > [0, 0, 0]], dtype=np.int64)


def _graph(free, grid):
    """CSR adjacency of the free voxels (26-connected, edge = its length in Å) with one extra
    node (the last) for the source; node ids in C order of ``free``."""
    n = int(free.sum())
    node = np.full(free.shape, -1, dtype=np.int64)
    node[free] = np.arange(n)
    rows, cols, w = [], [], []
    nx, ny, nz = free.shape
    for dx, dy, dz in _HALF.tolist():
        a = (slice(max(0, -dx), nx - max(0, dx)), slice(max(0, -dy), ny - max(0, dy)),
             slice(max(0, -dz), nz - max(0, dz)))
        b = (slice(max(0, dx), nx - max(0, -dx)), slice(max(0, dy), ny - max(0, -dy)),
             slice(max(0, dz), nz - max(0, -dz)))
        both = free[a] & free[b]
        rows.append(node[a][both])
        cols.append(node[b][both])
        w.append(np.full(rows[-1].shape, grid * np.sqrt(dx * dx + dy * dy + dz * dz)))
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(w), n, node


def _ellipsoids(s, targets, lo, shape, grid, length) -> np.ndarray:
    """(nx, ny, nz) bool: voxels x with |x - s| + |x - t| <= length for some target t."""
    axes = [lo[i] + grid * np.arange(shape[i]) for i in range(3)]
    ds = np.sqrt((axes[0][:, None, None] - s[0]) ** 2 + (axes[1][None, :, None] - s[1]) ** 2
                 + (axes[2][None, None, :] - s[2]) ** 2)
    out = np.zeros(tuple(int(n) for n in shape), dtype=bool)
    for p in targets:
        dt = np.sqrt((axes[0][:, None, None] - p[0]) ** 2 + (axes[1][None, :, None] - p[1]) ** 2
                     + (axes[2][None, None, :] - p[2]) ** 2)
        out |= ds + dt <= length
    return out


def _seeds(point, free, node, lo, grid, radius):
    """Node ids and distances (Å) of the free voxels nearest ``point``: those within one voxel
    of the nearest free voxel's distance, if that is at most ``radius``."""
    off = _offsets(int(np.ceil(radius / grid)))
    base = np.rint((np.asarray(point) - lo) / grid).astype(np.int64)
    idx = base + off
    inside = np.all((idx >= 0) & (idx < np.asarray(free.shape)), axis=1)
    idx = idx[inside]
    d = np.sqrt(np.sum((lo + idx * grid - point) ** 2, axis=1))
    keep = (d <= radius) & free[idx[:, 0], idx[:, 1], idx[:, 2]]
    if np.any(keep):  # the nearest shell of free voxels only (Jwalk's growing start shells)
        keep &= d <= d[keep].min() + grid
    idx, d = idx[keep], d[keep]
    return node[idx[:, 0], idx[:, 1], idx[:, 2]], d


def sasd_from(source, targets, atoms_xyz, radii, limit_A, grid=GRID_A,
              probe=PROBE_RADIUS_A, seed_radius=SEED_RADIUS_A, return_paths=False):
    """SASDs (Å) from one anchor to several, through the solvent around ``atoms_xyz``.

    Parameters
    ----------
    source : (3,) world x, y, z (Å) of the source anchor (a Cα)
    targets : (k, 3) the target anchors
    atoms_xyz, radii : (n, 3) the blocking atoms (Å) and their van der Waals radii (Å)
    limit_A : the longest path searched (Å); a longer SASD is reported as infinite

    Returns
    -------
    sasd : (k,) float64, Å (inf: no path of at most ``limit_A``, or an anchor is buried)
    source_free : bool, whether the source has a free voxel within ``seed_radius``
    target_free : (k,) bool, the same for each target (False, not examined, for a target
        farther than ``limit_A`` in a straight line)
    paths : only with ``return_paths``: per target, the (m, 3) world x, y, z (Å) of the voxel
        centres its shortest path runs through, source end first (None where no path)
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    s = np.asarray(source, dtype=np.float64).reshape(3)
    t = np.asarray(targets, dtype=np.float64).reshape(-1, 3)
    k = len(t)
    sasd = np.full(k, np.inf)
    target_free = np.zeros(k, dtype=bool)
    euclid = np.linalg.norm(t - s, axis=1)
    reach = euclid <= limit_A  # the SASD is never shorter than the straight line
    pts = np.vstack([s[None], t[reach]])
    margin = 0.5 * limit_A + 2 * grid  # a point of a path <= limit lies within limit/2 of an end
    lo, hi = pts.min(axis=0) - margin, pts.max(axis=0) + margin
    xyz = np.asarray(atoms_xyz, dtype=np.float64).reshape(-1, 3)
    if len(xyz):  # a shortest path stays within the box around the atoms and its two ends
        pad = float(np.max(radii)) + probe + 2 * grid
        lo = np.maximum(lo, np.minimum(xyz.min(axis=0) - pad, pts.min(axis=0) - seed_radius
                                       - 2 * grid))
        hi = np.minimum(hi, np.maximum(xyz.max(axis=0) + pad, pts.max(axis=0) + seed_radius
                                       + 2 * grid))
    lo = np.floor(lo / grid) * grid
    shape = np.floor((hi - lo) / grid).astype(np.int64) + 1
    free = ~blocked_grid(atoms_xyz, radii, lo, shape, grid, probe)
    free &= _ellipsoids(s, t[reach], lo, shape, grid, limit_A + 2 * grid)
    r, c, w, n, node = _graph(free, grid)
    src_nodes, src_d = _seeds(s, free, node, lo, grid, seed_radius)
    source_free = len(src_nodes) > 0
    tseeds = [_seeds(p, free, node, lo, grid, seed_radius) if ok else (np.zeros(0, int),
                                                                        np.zeros(0))
              for p, ok in zip(t, reach)]
    for j, (ids, _) in enumerate(tseeds):
        target_free[j] = len(ids) > 0
    paths = [None] * k
    if not source_free or not np.any(target_free):
        # a target out of reach is judged by its own seeds only when it is within the limit
        return (sasd, source_free, target_free, paths) if return_paths else (
            sasd, source_free, target_free)
    # the virtual source node n joins the source's seeds at their distance from the anchor
    # plus one voxel, taken off again after the search (a zero-weight edge would be no edge)
    r = np.concatenate([r, np.full(len(src_nodes), n)])
    c = np.concatenate([c, src_nodes])
    w = np.concatenate([w, src_d + grid])
    g = coo_matrix((w, (r, c)), shape=(n + 1, n + 1)).tocsr()
    out = dijkstra(g, directed=False, indices=n, limit=limit_A + grid,
                   return_predecessors=return_paths)
    dist, pred = (out[0] - grid, out[1]) if return_paths else (out - grid, None)
    voxel_of = np.flatnonzero(free)  # node id -> flat voxel index (C order)
    for j, (ids, d) in enumerate(tseeds):
        if len(ids):
            total = dist[ids] + d
            best = int(np.argmin(total))
            v = float(total[best])
            sasd[j] = v if v <= limit_A else np.inf
            if return_paths and np.isfinite(sasd[j]):
                chain, u = [], int(ids[best])
                while u != n:  # back along the predecessors to the virtual source
                    chain.append(u)
                    u = int(pred[u])
                ijk = np.stack(np.unravel_index(voxel_of[chain[::-1]], free.shape), axis=1)
                paths[j] = lo + ijk * grid
    return (sasd, source_free, target_free, paths) if return_paths else (
        sasd, source_free, target_free)
