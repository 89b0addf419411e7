"""Model map and atom mask (cryovalid.kernels.modelmap) against independent calculations:
structure factors summed directly from the electron form factors, a brute-force distance
mask, and gemmi's own SolventMasker."""
import gemmi
import numpy as np
import pytest

import simulate
from cryovalid.kernels import modelmap as mm

SHAPE = (22, 20, 24)  # z, y, x: odd and even edges
TS = 1.1
BOX = np.array([SHAPE[2] * TS, SHAPE[1] * TS, SHAPE[0] * TS])  # x, y, z edges (Å)


def _atoms(seed=1):
    rng = np.random.default_rng(seed)
    el = np.array(["C", "N", "O", "S", "H", "FE"])
    xyz = rng.uniform(0, 1, (6, 3)) * BOX
    xyz[0] = [0.2, 0.3, BOX[2] - 0.4]  # next to three faces: its density wraps around
    b = np.array([10, 20, 0, 50, 15, 30.0])
    q = np.array([1, 0.5, 1, 1, 1, 0.7])
    return xyz, el, b, q


def _miller(shape, box):
    nz, ny, nx = shape
    kz = np.fft.fftfreq(nz, 1 / nz).round()
    ky = np.fft.fftfreq(ny, 1 / ny).round()
    kx = np.arange(nx // 2 + 1)
    s = np.stack(np.meshgrid(kz / box[2], ky / box[1], kx / box[0], indexing="ij"), -1)
    hkl_ok = ((np.abs(kz) <= (nz - 1) // 2)[:, None, None]
              & (np.abs(ky) <= (ny - 1) // 2)[None, :, None] & (kx <= (nx - 1) // 2)[None, None, :])
    return s, hkl_ok


def _direct_sf(xyz, el, b_iso, occ, shape, box):
    """F(s) = Σ_j occ_j Σ_i a_i exp(−(b_i + B_j) s²/4) exp(−2πi s·x_j) (ITC C 4.3.2.2 electron
    form factors), scaled to numpy's rfftn of the sampled density: × N_voxels / V."""
    s, _ = _miller(shape, box)
    s2 = (s ** 2).sum(-1)
    f = np.zeros(s2.shape, complex)
    for j in range(len(xyz)):
        co = gemmi.Element(el[j]).c4322.get_coefs()
        a, bb = np.array(co[:5]), np.array(co[5:])
        ff = (a[:, None, None, None]
              * np.exp(-(bb[:, None, None, None] + b_iso[j]) * s2 / 4)).sum(0)
        phase = s[..., 2] * xyz[j, 0] + s[..., 1] * xyz[j, 1] + s[..., 0] * xyz[j, 2]
        f += occ[j] * ff * np.exp(-2j * np.pi * phase)
    return f * np.prod(shape) / np.prod(box)


@pytest.mark.parametrize("resolution", [3.0, 4.5])
def test_model_map_equals_directly_summed_structure_factors(resolution):
    xyz, el, b, q = _atoms()
    m = mm.model_map(xyz, el, b, q, SHAPE, TS, resolution)
    assert m.dtype == np.float32 and m.shape == SHAPE
    got = np.fft.rfftn(m.astype(np.float64))
    want = _direct_sf(xyz, el, b, q, SHAPE, BOX)
    s, hkl_ok = _miller(SHAPE, BOX)
    keep = hkl_ok & ((s ** 2).sum(-1) < 1 / resolution ** 2)
    scale = np.abs(want[keep]).max()
    # every kept coefficient is right (absolute scale too) and nothing else is left
    assert np.abs(got[keep] - want[keep]).max() < 1e-3 * scale
    assert np.abs(got[~keep]).max() < 1e-5 * scale
    # the cut is sharp: a coefficient just inside d > R is not attenuated
    ring = keep & ((s ** 2).sum(-1) > (0.9 / resolution) ** 2)
    assert np.allclose(np.abs(got[ring]), np.abs(want[ring]), rtol=0.02, atol=1e-3 * scale)


def test_model_map_b_zero_periodic_and_rate():
    xyz, el, b, q = _atoms()
    m0 = mm.model_map(xyz, el, b, q, SHAPE, TS, 3.0, b_zero=True)
    assert np.allclose(m0, mm.model_map(xyz, el, np.zeros(6), q, SHAPE, TS, 3.0), atol=1e-6)
    assert m0.max() > mm.model_map(xyz, el, b, q, SHAPE, TS, 3.0).max()  # sharper without B
    # the box is periodic: moving an atom by a whole box edge changes nothing
    moved = xyz.copy()
    moved[0] += BOX * np.array([1, -1, 1])
    a = mm.model_map(xyz, el, b, q, SHAPE, TS, 3.0)
    assert np.abs(mm.model_map(moved, el, b, q, SHAPE, TS, 3.0) - a).max() < 1e-4 * a.max()
    # gemmi's fine-grid sampling has converged at the default rate
    fine = mm.model_map(xyz, el, b, q, SHAPE, TS, 3.0, rate=4.0)
    assert np.abs(fine - a).max() < 3e-4 * np.abs(fine).max()


def test_model_map_skips_elements_without_form_factors():
    xyz, el, b, q = _atoms()
    el2 = el.copy()
    el2[3] = "X"  # unknown element: left out, no crash
    a = mm.model_map(xyz, el2, b, q, SHAPE, TS, 3.0)
    keep = np.arange(6) != 3
    ref = mm.model_map(xyz[keep], el[keep], b[keep], q[keep], SHAPE, TS, 3.0)
    assert np.allclose(a, ref, atol=1e-6)
    assert not mm.has_electron_form_factor("X") and not mm.has_electron_form_factor("Es")
    assert mm.has_electron_form_factor("Cf") and mm.has_electron_form_factor("D")


def test_cctbx_van_der_waals_radii():
    assert np.allclose(mm.vdw_radius(["C", "N", "O", "S", "H", "D"]),
                       [1.775, 1.5, 1.45, 1.8, 1.2, 1.2])


def _brute_force_mask(xyz, r, shape, ts, rprobe, rshrink):
    """Jiang–Brünger mask by explicit periodic distances from every grid point to every atom
    and from every point to every non-accessible point (small boxes only)."""
    nz, ny, nx = shape
    g = np.stack(np.meshgrid(np.arange(nx) * ts, np.arange(ny) * ts, np.arange(nz) * ts,
                             indexing="ij"), -1).transpose(2, 1, 0, 3).reshape(-1, 3)  # (z,y,x)
    box = np.array([nx, ny, nz]) * ts
    d = g[:, None, :] - xyz[None, :, :]
    d -= box * np.round(d / box)
    dist = np.sqrt((d ** 2).sum(-1))
    core = (dist <= r[None, :]).any(1)
    acc = (dist <= r[None, :] + rprobe).any(1)
    out = acc.copy()
    sol = g[~acc]
    for i in np.nonzero(acc & ~core)[0]:
        dd = sol - g[i]
        dd -= box * np.round(dd / box)
        if ((dd ** 2).sum(-1) <= rshrink ** 2).any():
            out[i] = False
    return out.reshape(shape)


# A finer grid for the mask: with voxels larger than r_shrink (0.9 Å) no two grid points are
# close enough for the shrink step to act.
FINE_SHAPE = (26, 24, 28)
FINE_TS = 0.55


def _clustered_atoms(seed=3, n=12):
    """Atoms 1.3–2.5 Å apart in a small cluster (so the probe bridges gaps and the shrink
    step matters), inside the fine box."""
    rng = np.random.default_rng(seed)
    box = np.array([FINE_SHAPE[2], FINE_SHAPE[1], FINE_SHAPE[0]]) * FINE_TS
    xyz = [box / 2]
    while len(xyz) < n:
        p = xyz[rng.integers(len(xyz))] + rng.normal(0, 1, 3) * 1.2
        d = np.sqrt(((np.array(xyz) - p) ** 2).sum(1)).min()
        if 1.3 < d < 2.5:
            xyz.append(p)
    xyz = np.array(xyz)
    xyz[-1] = [0.3, box[1] / 2, box[2] / 2]  # one atom by a face: the mask wraps around
    el = np.array((["C", "N", "O", "S", "H"] * n)[:n])
    return xyz, el


@pytest.mark.parametrize("extra", [0.0, 1.5])
def test_atom_mask_matches_brute_force(extra):
    xyz, el = _clustered_atoms()
    got = mm.atom_mask(xyz, el, FINE_SHAPE, FINE_TS, extra_radius=extra)
    want = _brute_force_mask(xyz, mm.vdw_radius(el) + extra, FINE_SHAPE, FINE_TS, mm.RPROBE,
                             mm.RSHRINK)
    assert got.dtype == bool and got.shape == FINE_SHAPE
    assert np.array_equal(got, want)
    # the shrink step and the probe both matter here (the test would see them wrong)
    no_shrink = mm.atom_mask(xyz, el, FINE_SHAPE, FINE_TS, extra_radius=extra, rshrink=0.0)
    no_probe = mm.atom_mask(xyz, el, FINE_SHAPE, FINE_TS, extra_radius=extra, rprobe=0.0,
                            rshrink=0.0)
    assert (no_shrink & ~want).sum() > 100 and (want & ~no_probe).sum() > 10


def test_atom_mask_large_radius_path_is_exact(monkeypatch):
    """The dilation path (many atoms or a large extra radius) gives the same mask as the
    direct stencil."""
    xyz_all, _ = simulate.load_atoms()
    xyz = xyz_all[:600]
    el = np.array(["C", "N", "O", "S"] * 150)
    shape, origin = simulate.box_around(xyz, 1.3, padding=4.0)
    xb = xyz - np.array(origin)
    fast = mm.atom_mask(xb, el, shape, 1.3, extra_radius=6.4)
    monkeypatch.setattr(mm, "STENCIL_PAIRS_MAX", 10 ** 12)
    direct = mm.atom_mask(xb, el, shape, 1.3, extra_radius=6.4)
    assert fast.sum() > 0 and np.array_equal(fast, direct)


def test_atom_mask_matches_gemmi_solvent_masker():
    xyz, _ = simulate.load_atoms()
    st = gemmi.read_structure(simulate.EXAMPLE_MODEL)
    el = np.array([a.element.name.upper() for ch in st[0] for r in ch for a in r
                   if not a.is_hydrogen() and not r.is_water()])
    shape, origin = simulate.box_around(xyz, 1.2, padding=5.0)
    xb = xyz - np.array(origin)
    got = mm.atom_mask(xb, el, shape, 1.2)
    nz, ny, nx = shape
    grid = gemmi.FloatGrid(nx, ny, nz)
    grid.set_unit_cell(gemmi.UnitCell(nx * 1.2, ny * 1.2, nz * 1.2, 90, 90, 90))
    masker = gemmi.SolventMasker(gemmi.AtomicRadiiSet.Cctbx)
    masker.rprobe, masker.rshrink = mm.RPROBE, mm.RSHRINK
    masker.put_mask_on_float_grid(grid, mm._gemmi_model(xb, el, np.zeros(len(el)),
                                                        np.ones(len(el))))
    want = np.array(grid, copy=False).transpose(2, 1, 0) == 0
    assert np.array_equal(got, want)


def test_atom_mask_ignores_zero_occupancy_atoms_when_asked():
    xyz, el, _, q = _atoms(seed=3)
    q = q.copy()
    q[2] = 0.0
    keep = q > 0
    a = mm.atom_mask(xyz, el, SHAPE, TS, occupancy=q)
    assert np.array_equal(a, mm.atom_mask(xyz[keep], el[keep], SHAPE, TS))
    assert not np.array_equal(a, mm.atom_mask(xyz, el, SHAPE, TS))
