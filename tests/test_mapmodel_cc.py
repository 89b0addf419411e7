"""Map–model CCs (cryovalid.kernels.mapmodel_cc): the formulas against brute force and
analytic results, simulated known answers, and cctbx's numbers on the shared real data
(level-a-methods.md, "Numbers to reproduce")."""
import copy
import os

import gemmi
import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.spatial import cKDTree

import simulate
from cryovalid.io.maps import Map, read_map
from cryovalid.io.model import fraction_inside, read_model
from cryovalid.kernels import mapmodel_cc as mc

REAL = simulate.SHARED_REAL
needs_real = pytest.mark.skipif(not os.path.isdir(REAL),
                                reason="../shared/data/real not present (user clone)")


# ---- carbon image and atom radius -------------------------------------------------------

def _carbon_gaussians():
    co = gemmi.Element("C").c4322.get_coefs()
    return np.array(co[:5]), np.array(co[5:])


def test_carbon_image_equals_the_analytic_gaussian_sum_when_untruncated():
    """With 1/d far beyond where exp(−(b+B)s²/4) matters, the image is the real-space sum of
    Gaussians a_i (4π/(b_i+B))^{3/2} exp(−4π² r²/(b_i+B)); its inflection is a root of the
    analytic second derivative."""
    a, b = _carbon_gaussians()
    B = 100.0
    w = b + B

    def rho(r):
        return (a * (4 * np.pi / w) ** 1.5 * np.exp(-4 * np.pi ** 2 * r ** 2 / w)).sum()

    def d2(r):
        k = 4 * np.pi ** 2 / w
        return (a * (4 * np.pi / w) ** 1.5 * np.exp(-k * r * r) * (4 * k * k * r * r - 2 * k)).sum()

    r = np.array([0.0, 0.5, 1.0, 2.0])
    got = mc.carbon_image(0.5, B, r)
    assert np.allclose(got, [rho(x) for x in r], rtol=1e-6)
    root = optimize.brentq(d2, 0.2, 3.0)
    assert mc.carbon_image_radius(0.5, B, step=0.01) == pytest.approx(2 * root, abs=0.02)
    assert mc.carbon_image_radius(0.5, B) == pytest.approx(2 * root, abs=0.1)  # cctbx's 0.1 step


def test_carbon_image_truncated_matches_quadrature():
    a, b = _carbon_gaussians()
    d, B = 3.2, 24.0

    def integrand(s, r):
        f = (a * np.exp(-b * s * s / 4)).sum() * np.exp(-B * s * s / 4)
        x = 2 * np.pi * s * r
        return 4 * np.pi * s * s * f * (np.sin(x) / x if x > 0 else 1.0)

    r = np.array([0.0, 0.7, 1.5, 3.0])
    want = [integrate.quad(integrand, 0, 1 / d, args=(x,), epsabs=1e-12)[0] for x in r]
    assert np.allclose(mc.carbon_image(d, B, r), want, rtol=1e-7, atol=1e-10)


def test_atom_radius_rule():
    # max(3, min(10, max(R, image radius)))
    assert mc.atom_radius(3.0, 0.0) == 3.0          # image 2.5 Å: the floor
    assert mc.atom_radius(3.2, 23.9) == 3.2         # EMD-3488: R wins (image 2.7 Å)
    assert mc.atom_radius(3.0, 500.0) == pytest.approx(mc.carbon_image_radius(3.0, 500.0))
    assert 5.0 < mc.atom_radius(3.0, 500.0) < 5.2   # a blurred atom: the image wins
    assert mc.atom_radius(3.0, 3000.0) == 10.0      # the ceiling
    assert mc.resolution_used(2.1) == 3.0 and mc.resolution_used(3.9) == 3.9


# ---- five CCs and grouped CCs against brute force ---------------------------------------

def test_five_cc_definitions():
    rng = np.random.default_rng(0)
    calc = rng.normal(size=(12, 13, 14)).astype(np.float32)
    obs = (calc + rng.normal(size=calc.shape)).astype(np.float32)
    mask = np.zeros(calc.shape, bool)
    mask[3:8, 4:9, 2:10] = True
    n = int(mask.sum())
    r = mc.five_cc(obs, calc, mask)
    assert r["n_mask"] == n
    assert r["cc_mask"] == pytest.approx(np.corrcoef(obs[mask], calc[mask])[0, 1])
    assert r["cc_box"] == pytest.approx(np.corrcoef(obs.ravel(), calc.ravel())[0, 1])
    top_c = np.argsort(calc.ravel())[::-1][:n + 1]  # cctbx: the N+1 highest (>= the [N]-th)
    top_o = np.argsort(obs.ravel())[::-1][:n + 1]
    assert r["cc_volume"] == pytest.approx(np.corrcoef(obs.ravel()[top_c],
                                                       calc.ravel()[top_c])[0, 1])
    both = np.union1d(top_c, top_o)
    assert r["cc_peaks"] == pytest.approx(np.corrcoef(obs.ravel()[both], calc.ravel()[both])[0, 1])
    perfect = mc.five_cc(2 * calc + 1, calc, mask)
    assert all(perfect[k] == pytest.approx(1.0) for k in ("cc_mask", "cc_box", "cc_volume",
                                                          "cc_peaks"))


def _brute_cc(obs, calc, xyz, selections, ts, radius):
    """Pearson CC over the grid points within ``radius`` of each selection's atoms, by explicit
    periodic distances from every grid point (small boxes only)."""
    nz, ny, nx = obs.shape
    g = np.stack(np.meshgrid(np.arange(nx) * ts, np.arange(ny) * ts, np.arange(nz) * ts,
                             indexing="ij"), -1).transpose(2, 1, 0, 3).reshape(-1, 3)
    box = np.array([nx, ny, nz]) * ts
    out = []
    for sel in selections:
        d = g[:, None, :] - xyz[sel][None, :, :]
        d -= box * np.round(d / box)
        near = ((d ** 2).sum(-1) <= radius ** 2).any(1)
        out.append(np.corrcoef(obs.ravel()[near], calc.ravel()[near])[0, 1])
    return np.array(out)


@pytest.mark.parametrize("pairs_per_chunk", [4_000_000, 500])
def test_local_cc_matches_brute_force(monkeypatch, pairs_per_chunk):
    """Residues, chains, main and side chain; near the faces the points wrap around; with a
    tiny block size every chain is cut into many blocks and nothing changes."""
    monkeypatch.setattr(mc, "PAIRS_PER_CHUNK", pairs_per_chunk)
    rng = np.random.default_rng(1)
    shape, ts, radius = (18, 16, 20), 1.1, 3.2
    box = np.array([shape[2], shape[1], shape[0]]) * ts
    calc = rng.normal(size=shape)
    obs = calc + rng.normal(size=shape)
    n_res, n_atoms = 70, 150
    xyz = rng.uniform(0, 1, (n_atoms, 3)) * box
    xyz[:3] = [[0.1, 0.2, 0.3], [box[0] - 0.2, 1.0, 2.0], [3.0, box[1] - 0.1, box[2] - 0.3]]
    residue = np.sort(np.arange(n_atoms) % n_res)  # 2–3 atoms each, in file order
    chain_of_res = np.repeat([0, 1, 2], [30, 25, 15])
    main = rng.uniform(size=n_atoms) < 0.5
    got_res, npts, got_chain, (got_mc, got_sc) = mc.local_cc(
        obs, calc, xyz, ts, radius, residue, n_res, chain_of_res, 3, main)
    want_res = _brute_cc(obs, calc, xyz, [residue == k for k in range(n_res)], ts, radius)
    want_chain = _brute_cc(obs, calc, xyz, [chain_of_res[residue] == k for k in range(3)], ts,
                           radius)
    want_ms = _brute_cc(obs, calc, xyz, [main, ~main], ts, radius)
    assert np.allclose(got_res, want_res, rtol=1e-9, atol=1e-12)
    assert np.allclose(got_chain, want_chain, rtol=1e-9, atol=1e-12)
    assert np.allclose([got_mc, got_sc], want_ms, rtol=1e-9, atol=1e-12)
    assert npts.min() > 50


# ---- simulated known answers ------------------------------------------------------------

@pytest.fixture(scope="module")
def sim():
    """5me2 simulated by tests/simulate.py (an independent density model: trilinear atomic
    numbers, B 30 Å², 3.5 Å low-pass, 30 % noise), 1.2 Å voxels."""
    model = read_model(simulate.EXAMPLE_MODEL)
    vol, ts, origin = simulate.simulate(atoms=simulate.load_atoms(), voxel_size=1.2,
                                        resolution=3.5, bfactor=30.0, noise=0.3, padding=10.0)
    return model, Map(data=vol, voxel_size=ts, origin=origin)


def test_simulated_map_fits_its_model(sim):
    model, mp = sim
    r, calc, mask = mc.map_model_cc_for_model(model, mp, 3.5)
    assert r.resolution == 3.5 and r.atom_radius == 3.5
    assert r.cc_mask > 0.9 and r.cc_box > 0.85 and r.cc_volume > 0.9
    assert len(r.residue_cc) == 570 and np.isfinite(r.residue_cc).all()
    assert r.fraction_below() == 0.0 and np.min(r.residue_cc) > 0.8
    assert set(r.chain_cc) == {"A", "B", "C", "D"} and min(r.chain_cc.values()) > 0.9
    assert r.cc_main_chain > 0.9 and r.cc_side_chain > 0.9
    # the model's own map plus noise fits even better
    noisy = calc + np.random.default_rng(0).normal(0, 0.3 * calc.std(), calc.shape)
    r2, _, _ = mc.map_model_cc_for_model(model, Map(noisy.astype(np.float32), mp.voxel_size,
                                                    mp.origin), 3.5)
    assert r2.cc_mask > r.cc_mask and r2.cc_mask > 0.98


def test_a_shifted_model_fits_worse(sim):
    model, mp = sim
    r, _, _ = mc.map_model_cc_for_model(model, mp, 3.5)
    moved = copy.copy(model)
    moved.xyz = model.xyz + np.array([3.0, 0.0, 0.0])
    r3, _, _ = mc.map_model_cc_for_model(moved, mp, 3.5)
    assert r3.cc_mask < r.cc_mask - 0.5
    assert np.all(r3.residue_cc < r.residue_cc)
    assert r3.fraction_below() > 0.9


def test_a_chain_without_density_falls_below_half(sim):
    model, mp = sim
    # zero the map wherever the nearest atom belongs to chain A
    nz, ny, nx = mp.shape
    zyx = np.stack(np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij"),
                   -1).reshape(-1, 3)
    _, nearest = cKDTree(model.xyz).query(mp.index_to_xyz(zyx))
    in_a = (model.chain[model.residue_index] == "A")[nearest].reshape(mp.shape)
    data = np.where(in_a, 0.0, mp.data).astype(np.float32)
    r, _, _ = mc.map_model_cc_for_model(model, Map(data, mp.voxel_size, mp.origin), 3.5)
    is_a = model.chain == "A"
    assert np.all(r.residue_cc[is_a] < 0.5)
    assert np.all(r.residue_cc[~is_a] > 0.5)
    assert r.chain_cc["A"] < 0.5 < min(r.chain_cc[c] for c in "BCD")
    assert r.fraction_below() == pytest.approx(is_a.mean())


# ---- cctbx's numbers on the shared real data -------------------------------------------

# (map, model, R): CC_mask, CC_box, CC_volume, CC_peaks (cctbx-base 2025.11), residues, how
# many residues have CC < 0.5 (0.88 % of 570, 0.54 % of 553, 3.08 % of 195)
CCTBX = [
    ("EMD-3488/emd_3488.map", "EMD-3488/5me2.pdb", 3.2, (0.741, 0.660, 0.709, 0.659), 570, 5),
    ("EMD-30342/390_emd_30342_A_z4.mrc", "EMD-30342/390_7cec_A.cif", 3.9,
     (0.808, 0.915, 0.810, 0.748), 553, 3),
    ("EMD-2566/2566_3J6B_9.mrc", "EMD-2566/3J6B_9.pdb", 3.2, (0.699, 0.599, 0.703, 0.607), 195,
     6),
]


@needs_real
@pytest.mark.parametrize("map_name, model_name, res, ccs, n_res, n_low", CCTBX,
                         ids=[c[0].split("/")[0] for c in CCTBX])
def test_reproduces_cctbx_map_model_cc(map_name, model_name, res, ccs, n_res, n_low):
    model = read_model(os.path.join(REAL, model_name))
    mp = read_map(os.path.join(REAL, map_name))
    r, _, _ = mc.map_model_cc_for_model(model, mp, res)
    got = (r.cc_mask, r.cc_box, r.cc_volume, r.cc_peaks)
    assert got == pytest.approx(ccs, abs=0.005)
    assert np.count_nonzero(np.isfinite(r.residue_cc)) == n_res
    assert np.count_nonzero(r.residue_cc < 0.5) == n_low
    assert 100 * r.fraction_below() == pytest.approx(100 * n_low / n_res)


@needs_real
def test_header_placement_variants_of_emd_21457():
    """ORIGIN-only and NSTART-only headers place the model identically; with ORIGIN zeroed
    the deposited model lies outside the box and only the shifted copy fits."""
    d = os.path.join(REAL, "EMD-21457")
    model = read_model(os.path.join(d, "6vyb_Ndom.pdb"))
    shifted = read_model(os.path.join(d, "6vyb_Ndom_shifted.pdb"))
    res = {}
    for name in ("seg", "seg_nstart", "seg_orig0"):
        mp = read_map(os.path.join(d, f"emd_21457_{name}.mrc"))
        for label, m in (("model", model), ("shifted", shifted)):
            r, _, _ = mc.map_model_cc_for_model(m, mp, 3.2)
            res[name, label] = (fraction_inside(m, mp), r.cc_mask)
    assert res["seg", "model"][1] == pytest.approx(res["seg_nstart", "model"][1], abs=1e-6)
    assert res["seg", "model"][0] > 0.99 and res["seg", "model"][1] > 0.45
    assert res["seg_orig0", "model"][0] == 0.0 and abs(res["seg_orig0", "model"][1]) < 0.1
    assert res["seg_orig0", "shifted"][1] == pytest.approx(res["seg", "model"][1], abs=1e-6)


@needs_real
def test_the_unfitted_groel_model_correlates_with_nothing():
    model = read_model(os.path.join(REAL, "EMD-1997", "1oel.pdb"))
    mp = read_map(os.path.join(REAL, "EMD-1997", "emd_1997.map"))
    r, _, _ = mc.map_model_cc_for_model(model, mp, 7.0)
    assert abs(r.cc_mask) < 0.1 and r.fraction_below() > 0.95


def test_main_chain_is_amino_acid_backbone_and_cb(tmp_path):
    from test_model_io import _pdb_line, _write

    lines = [_pdb_line(i + 1, n, "ALA", "A", 1, i, 0, 0, element=n[0])
             for i, n in enumerate(["N", "CA", "C", "O", "CB", "H"])]
    lines += [_pdb_line(10 + i, n, "ACT", "A", 2, i, 3, 0, element=n[0], record="HETATM")
              for i, n in enumerate(["C", "O", "CH3"])]
    model = read_model(_write(tmp_path / "m.pdb", lines))
    assert list(mc.main_chain_atoms(model)) == [True] * 5 + [False] * 4
