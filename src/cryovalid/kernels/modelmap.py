"""A map computed from an atomic model, and the model's atom mask, on a map's own grid.

Model map (level-a-methods.md "Model map", as cctbx's ``five_cc._get_map_calc`` /
``miller.structure_factor_box_from_map`` make it; Afonine et al. 2018, Acta Cryst. D74:814):

* electron scattering factors (International Tables C, table 4.3.2.2, five Gaussians per
  element; gemmi ``DensityCalculatorE``), each atom's own isotropic B (Å²) and occupancy,
  hydrogens included;
* on the map's box taken as a periodic P1 cell of edge N·Ts per axis (an atom near one face
  also contributes near the opposite face, as in cctbx);
* truncated in reciprocal space with a sharp cut: Miller indices with |h| ≤ (n−1)//2 on each
  axis (n voxels) and d = 1/|s| > resolution; no smooth edge and no added blur.

gemmi sums the atoms in real space on a finer grid (``rate`` points per half d_min) with a
"refmac-compatible" blur B_add added to every atom so that the sampling is exact; we take the
FFT, multiply by exp(+B_add s²/4) to take the blur off again, keep the hkl set above, and
inverse-FFT onto the map's grid (N voxels per axis). The values are the density of the
table's amplitudes (a_i in Å per Å³, so Å⁻²; the Fourier coefficients equal
Σ_j occ_j f_j(s) exp(−B_j s²/4) exp(−2πi s·x_j) × N/V, checked in tests/test_modelmap.py); only
correlations and shapes are used downstream.

Atom mask (Jiang & Brünger 1994, J. Mol. Biol. 243:100; cctbx ``mmtbx.masks`` /
``cctbx.masks.around_atoms``): a grid point is inside when it lies within an atom's van der
Waals radius r (cctbx's radii: C 1.775, N 1.5, O 1.45, S 1.8, H 1.2 Å; gemmi
``AtomicRadiiSet.Cctbx``), or within r + r_probe of an atom and farther than r_shrink from every
point that is not within r + r_probe of any atom (the shrink step works on grid points, so it
does nothing when the voxel is larger than r_shrink). Distances are periodic in the box, like
the model map. Both functions take plain arrays in the box frame: ``xyz_box = xyz − map.origin``
(Å, x, y, z; voxel (0, 0, 0) at 0) and return (z, y, x) arrays.
"""
from __future__ import annotations

import math

import gemmi
import numpy as np
import scipy.fft
from scipy import ndimage

# Points of gemmi's fine grid per half d_min (level-a-methods.md: 2–3). With the
# refmac-compatible blur the map differs from the one at rate 4 by 1.7e-4 (rate 1.5), 4.6e-5
# (rate 2) of its peak on EMD-3488 + 5me2, far below anything a CC resolves.
RATE = 2.0
# Probe and shrink radii of the Jiang–Brünger mask (cctbx mmtbx.masks defaults, Å).
RPROBE = 1.11
RSHRINK = 0.9


def has_electron_form_factor(element: str) -> bool:
    """True when International Tables C 4.3.2.2 has electron form factors for ``element``
    (H to Cf, Z ≤ 98; gemmi's ``c4322``)."""
    el = gemmi.Element(str(element))
    return el.c4322 is not None and el.atomic_number > 0


def _as_arrays(xyz_box, element, b_iso=None, occupancy=None):
    xyz = np.asarray(xyz_box, dtype=np.float64).reshape(-1, 3)
    el = np.asarray(element).astype(str).reshape(-1)
    if el.shape[0] != xyz.shape[0]:
        raise ValueError("xyz_box and element differ in length")
    b = np.zeros(len(xyz)) if b_iso is None else np.asarray(b_iso, dtype=np.float64).reshape(-1)
    q = np.ones(len(xyz)) if occupancy is None else np.asarray(occupancy,
                                                               dtype=np.float64).reshape(-1)
    return xyz, el, b, q


def _gemmi_model(xyz, element, b_iso, occupancy):
    """A one-residue gemmi Model holding the atoms (elements without electron form factors
    left out: the caller's notes say so)."""
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    res = gemmi.Residue()
    res.name = "UNK"
    res.seqid = gemmi.SeqId(1, " ")
    cache = {}
    for (x, y, z), e, b, q in zip(xyz.tolist(), element.tolist(), b_iso.tolist(),
                                  occupancy.tolist()):
        el = cache.get(e)
        if el is None:
            el = cache[e] = gemmi.Element(e)
        if el.c4322 is None or el.atomic_number == 0:
            continue
        a = gemmi.Atom()
        a.pos = gemmi.Position(x, y, z)
        a.element = el
        a.b_iso = b
        a.occ = q
        res.add_atom(a)
    chain.add_residue(res)
    model.add_chain(chain)
    return model


def model_map(xyz_box, element, b_iso, occupancy, shape, voxel_size, resolution, *,
              b_zero: bool = False, rate: float = RATE) -> np.ndarray:
    """Model map on the map's grid, float32 (z, y, x), see the module docstring.

    Parameters
    ----------
    xyz_box : (n, 3) Å, atom positions in the box frame (x, y, z; voxel (0,0,0) at 0)
    element : (n,) element symbols (gemmi names: 'C', 'FE', 'D', ...)
    b_iso : (n,) isotropic B (Å²); ignored (all 0) when ``b_zero``
    occupancy : (n,) occupancies
    shape : (nz, ny, nx) of the map
    voxel_size : Å
    resolution : Å; Fourier coefficients with d ≤ resolution are removed (sharp cut)
    """
    nz, ny, nx = (int(v) for v in shape)
    ts = float(voxel_size)
    xyz, el, b, q = _as_arrays(xyz_box, element, b_iso, occupancy)
    if b_zero:
        b = np.zeros_like(b)
    model = _gemmi_model(xyz, el, b, q)
    dc = gemmi.DensityCalculatorE()
    dc.d_min = float(resolution)
    dc.rate = float(rate)
    dc.grid.unit_cell = gemmi.UnitCell(nx * ts, ny * ts, nz * ts, 90.0, 90.0, 90.0)
    dc.grid.spacegroup = gemmi.find_spacegroup_by_name("P1")
    dc.set_refmac_compatible_blur(model)
    blur = float(dc.blur)
    dc.put_model_density_on_grid(model)
    fine = np.array(dc.grid, copy=False)  # (mx, my, mz), index [x, y, z]
    mx, my, mz = fine.shape
    fine_zyx = np.ascontiguousarray(fine.transpose(2, 1, 0), dtype=np.float32)
    f_fine = scipy.fft.rfftn(fine_zyx)

    # Miller indices kept on the map's grid: |h| <= (n-1)//2 per axis, d > resolution.
    hz, hy, hx = (nz - 1) // 2, (ny - 1) // 2, (nx - 1) // 2
    kz = np.fft.fftfreq(nz, 1.0 / nz).round().astype(int)
    ky = np.fft.fftfreq(ny, 1.0 / ny).round().astype(int)
    kx = np.arange(nx // 2 + 1)
    sz2 = (kz / (nz * ts)) ** 2
    sy2 = (ky / (ny * ts)) ** 2
    sx2 = (kx / (nx * ts)) ** 2
    s2 = sz2[:, None, None] + sy2[None, :, None] + sx2[None, None, :]
    keep = (s2 < 1.0 / float(resolution) ** 2)
    keep &= (np.abs(kz) <= hz)[:, None, None] & (np.abs(ky) <= hy)[None, :, None] \
        & (kx <= hx)[None, None, :]
    out = np.zeros((nz, ny, nx // 2 + 1), dtype=np.complex64)
    iz, iy, ix = np.nonzero(keep)
    fz, fy, fx = kz[iz] % mz, ky[iy] % my, kx[ix]
    if np.any(np.abs(kz[iz]) > (mz - 1) // 2) or np.any(np.abs(ky[iy]) > (my - 1) // 2) \
            or np.any(fx > (mx - 1) // 2):
        raise ValueError("model map: gemmi's grid does not reach the requested resolution")
    scale = (nz * ny * nx) / float(mz * my * mx)
    unblur = np.exp(blur * s2[iz, iy, ix] / 4.0)
    out[iz, iy, ix] = (f_fine[fz, fy, fx] * (scale * unblur)).astype(np.complex64)
    return scipy.fft.irfftn(out, s=(nz, ny, nx)).astype(np.float32)


def vdw_radius(element) -> np.ndarray:
    """cctbx van der Waals radii (Å) per atom (gemmi ``AtomicRadiiSet.Cctbx``)."""
    el = np.asarray(element).astype(str).reshape(-1)
    uniq, inv = np.unique(el, return_inverse=True)
    table = np.array([_cctbx_radius(e) for e in uniq], dtype=np.float64)
    return table[inv]


_CCTBX_RADII = {}


def _cctbx_radius(name: str) -> float:
    """The radius gemmi's SolventMasker uses with AtomicRadiiSet.Cctbx for this element,
    measured from a one-atom mask once per element and cached."""
    r = _CCTBX_RADII.get(name)
    if r is None:
        r = _CCTBX_RADII[name] = _measure_masker_radius(name)
    return r


def _measure_masker_radius(name: str) -> float:
    # gemmi has no Python accessor for its cctbx radius table: read it off a one-atom mask on
    # a fine grid (spacing 0.0005 Å along one axis) with probe and shrink 0.
    st = gemmi.Structure()
    st.cell = gemmi.UnitCell(10.0, 1.0, 1.0, 90, 90, 90)
    st.spacegroup_hm = "P 1"
    m = gemmi.Model("1")
    ch = gemmi.Chain("A")
    res = gemmi.Residue()
    res.name = "UNK"
    a = gemmi.Atom()
    a.pos = gemmi.Position(5.0, 0.0, 0.0)
    a.element = gemmi.Element(name)
    a.name = name
    res.add_atom(a)
    ch.add_residue(res)
    m.add_chain(ch)
    grid = gemmi.FloatGrid(20000, 1, 1)
    grid.set_unit_cell(st.cell)
    masker = gemmi.SolventMasker(gemmi.AtomicRadiiSet.Cctbx)
    masker.rprobe = 0.0
    masker.rshrink = 0.0
    masker.ignore_hydrogen = False
    masker.put_mask_on_float_grid(grid, m)
    arr = np.array(grid, copy=False)[:, 0, 0]
    inside = np.count_nonzero(arr == 0)
    # the points at |x - 5| <= r count 2*floor(r/0.0005)+1
    return round((inside - 1) / 2 * 0.0005 + 0.00025, 3)


# Largest number of (atom, stencil point) distance tests the direct stencil is allowed; beyond
# it (large extra radius, many atoms) the far part of a mask is found by an exact dilation.
STENCIL_PAIRS_MAX = 3_000_000
# The stencil part of a dilated mask reaches this far beyond the radii (Å).
STENCIL_REACH = RPROBE


def _stencil(r_reach: float, ts: float) -> np.ndarray:
    """Integer (z, y, x) offsets of the voxels that can lie within ``r_reach`` Å of a point in
    the voxel cell around offset 0 (the nearest voxel of an atom)."""
    k = int(math.ceil(r_reach / ts)) + 1
    off = np.arange(-k, k + 1)
    oz, oy, ox = np.meshgrid(off, off, off, indexing="ij")
    offs = np.stack([oz.ravel(), oy.ravel(), ox.ravel()], axis=1)
    near = np.sqrt(((np.abs(offs) - 0.5).clip(min=0) ** 2).sum(axis=1)) * ts <= r_reach
    return offs[near]


def _within_stencil(xyz, radii, t, shape, ts: float):
    """bool (z, y, x): grid points within radii[i] + t Å of some atom (periodic), by marking a
    stencil around every atom (vectorised over atoms in chunks). ``t`` may be a tuple of
    reaches: then a list of masks, one per reach, from one pass over the distances."""
    reaches = tuple(t) if isinstance(t, (tuple, list)) else (t,)
    nz, ny, nx = shape
    outs = [np.zeros(shape, dtype=bool) for _ in reaches]
    offs = _stencil(float(radii.max()) + max(reaches), ts)
    zyx = xyz[:, ::-1] / ts
    base = np.rint(zyx).astype(np.int64)
    dims = np.array([nz, ny, nx])
    chunk = max(1, int(2_000_000 // len(offs)))
    flats = [o.ravel() for o in outs]
    for i0 in range(0, len(xyz), chunk):
        b = base[i0:i0 + chunk]
        frac = (zyx[i0:i0 + chunk] - b).astype(np.float32)
        d2 = np.zeros((len(b), len(offs)), dtype=np.float32)
        for a in range(3):
            d2 += ((offs[None, :, a].astype(np.float32) - frac[:, a:a + 1]) * ts) ** 2
        for reach, flat in zip(reaches, flats):
            rr = (radii[i0:i0 + chunk, None] + reach).astype(np.float32)
            ci, oi = np.nonzero(d2 <= rr * rr)
            idx = (b[ci] + offs[oi]) % dims
            flat[(idx[:, 0] * ny + idx[:, 1]) * nx + idx[:, 2]] = True
    return outs if isinstance(t, (tuple, list)) else outs[0]


def _within(xyz, radii, t: float, shape, ts: float) -> np.ndarray:
    """bool (z, y, x): grid points x with |x − x_i| ≤ r_i + t for some atom i, distances
    periodic in the box. Exact. (One reach of :func:`_within_reaches`.)"""
    return _within_reaches(xyz, radii, (t,), shape, ts)[0]


def _within_reaches(xyz, radii, reaches, shape, ts: float) -> list:
    """[bool (z, y, x) for t in reaches]: grid points x with |x − x_i| ≤ r_i + t for some atom
    i, distances periodic in the box. Exact.

    Small reach: :func:`_within_stencil`. Large reach (``STENCIL_PAIRS_MAX``): the union of
    balls of radius r_i + t is the union of balls of radius r_i + a dilated by a ball of radius
    b = t − a (Minkowski sums distribute over unions). S_a (a = STENCIL_REACH) is marked on the
    grid by the stencil; the Euclidean distance d_grid from each grid point to the grid points
    of S_a bounds the true distance d to S_a by d ≤ d_grid ≤ d + ε with ε = √3·Ts (every point of
    a ball of radius ≥ √3·Ts/2 lies within ε of a grid point inside it). So d_grid ≤ b is inside,
    d_grid > b + ε is outside, and the thin band between is decided exactly with a periodic
    KD-tree per radius. One distance transform serves every large reach.
    """
    shape = tuple(int(v) for v in shape)
    a = STENCIL_REACH
    eps = math.sqrt(3.0) * ts
    out = [None] * len(reaches)
    small, large = [], []
    for i, t in enumerate(reaches):
        n_pairs = len(xyz) * len(_stencil(float(radii.max()) + t, ts))
        if n_pairs <= STENCIL_PAIRS_MAX or t <= a or float(radii.min()) + a < eps / 2:
            small.append(i)
        else:
            large.append(i)
    # one stencil pass for every small reach (and the core of the large ones)
    stencil_reaches = [reaches[i] for i in small] + ([a] if large else [])
    if stencil_reaches:
        marked = _within_stencil(xyz, radii, tuple(stencil_reaches), shape, ts)
        for i, mk in zip(small, marked):
            out[i] = mk
    if not large:
        return out
    from scipy.spatial import cKDTree

    core = marked[-1]
    b_max = max(reaches[i] for i in large) - a
    pad = int(math.ceil((b_max + eps) / ts)) + 1
    wrapped = np.pad(~core, pad, mode="wrap")
    dist = ndimage.distance_transform_edt(wrapped, sampling=ts)[pad:-pad, pad:-pad, pad:-pad]
    del wrapped, core
    box = np.array([shape[2] * ts, shape[1] * ts, shape[0] * ts])
    trees = {float(rv): cKDTree(np.mod(xyz[radii == rv], box), boxsize=box)
             for rv in np.unique(radii)}
    for i in large:
        t = reaches[i]
        b = t - a
        inside = dist <= b
        band = np.nonzero((dist > b) & (dist <= b + eps))
        if band[0].size:
            pts = np.stack([band[2] * ts, band[1] * ts, band[0] * ts], axis=1)  # x, y, z
            hit = np.zeros(len(pts), dtype=bool)
            for rv, tree in trees.items():
                d, _ = tree.query(pts, k=1, distance_upper_bound=rv + t + 1e-9)
                hit |= d <= rv + t
            inside[band] = hit
        out[i] = inside
    return out


def atom_mask(xyz_box, element, shape, voxel_size, *, rprobe: float = RPROBE,
              rshrink: float = RSHRINK, extra_radius: float = 0.0,
              occupancy=None) -> np.ndarray:
    """Jiang–Brünger atom mask on the map's grid, bool (z, y, x), see the module docstring.

    Each atom's radius is its cctbx van der Waals radius + ``extra_radius`` (Å). When
    ``occupancy`` is given, atoms of zero occupancy are left out (cctbx's and gemmi's
    ``ignore_zero_occupancy_atoms``, on by default there). Vectorised, no loop over atoms or
    voxels: the points within r and r + r_probe of the atoms come from :func:`_within`, the
    shrink step is a Euclidean distance transform on a wrapped copy (periodic, as the model
    map): a point within r + r_probe but not within r of an atom stays inside only when it is
    farther than r_shrink from every point outside the r + r_probe region.
    """
    shape = tuple(int(v) for v in shape)
    ts = float(voxel_size)
    xyz, el, _, q = _as_arrays(xyz_box, element, occupancy=occupancy)
    if occupancy is not None:
        xyz, el = xyz[q > 0], el[q > 0]
    if len(xyz) == 0:
        return np.zeros(shape, dtype=bool)
    r = vdw_radius(el)
    extra = float(extra_radius)
    if rshrink <= 0:
        return _within(xyz, r, extra + float(rprobe), shape, ts)
    acc, core = _within_reaches(xyz, r, (extra + float(rprobe), extra), shape, ts)
    pad = int(math.ceil(rshrink / ts)) + 1
    wrapped = np.pad(acc, pad, mode="wrap")
    dist = ndimage.distance_transform_edt(wrapped, sampling=ts)[pad:-pad, pad:-pad, pad:-pad]
    return core | (acc & (dist > rshrink))
