"""Q-score (cryovalid.kernels.qscore) — MapQ's algorithm (Pintilie et al. 2020, Nature Methods
17:328; gregdp/mapq ``qscores.py`` QscorePt3 / SpherePts):

* analytic known answers: isolated Gaussian atoms give the closed-form Pearson of two Gaussians
  sampled at MapQ's radii;
* a plain loop-per-atom transcription of QscorePt3 (written here from the paper's description,
  independent of the vectorised kernel) gives the same numbers;
* MapQ's own outputs shipped with gregdp/mapq for EMD-30342 (per atom and per residue);
* simulated maps of 5ME2 (resolution dependence, a chain without density, the box edge).
"""
import math
import os

import gemmi
import numpy as np
import pytest

import simulate
from cryovalid.io.maps import read_map
from cryovalid.io.model import read_model
from cryovalid.kernels import qscore as qk

REAL = simulate.SHARED_REAL
needs_real = pytest.mark.skipif(not os.path.isdir(REAL),
                                reason="../shared/data/real not present (user clone)")
EMD30342 = os.path.join(REAL, "EMD-30342")


# ---- helpers ----------------------------------------------------------------------------

def _gauss_map(centres, s, vs, n, origin):
    """Sum of isotropic unit Gaussians of width s (Å) at ``centres`` on an n³ grid (z, y, x)."""
    ax = [origin[i] + vs * np.arange(n) for i in range(3)]
    vol = np.zeros((n, n, n))
    for c in centres:
        ex, ey, ez = (np.exp(-(ax[i] - c[i]) ** 2 / (2 * s * s)) for i in range(3))
        vol += ez[:, None, None] * ey[None, :, None] * ex[None, None, :]
    return vol.astype(np.float32)


def _pearson_two_gaussians(s, sigma=0.6):
    """Q of an isolated atom whose image is a Gaussian of width s: with no neighbour every shell
    keeps its first 8 spiral points, so r = 0 and each of the 20 shells weigh 8 — the Pearson of
    exp(−r²/2s²) and exp(−r²/2σ²) over r = 0, 0.1, … 2.0."""
    r = np.round(np.arange(21) * 0.1, 10)
    return float(np.corrcoef(np.exp(-r ** 2 / (2 * s * s)), np.exp(-r ** 2 / (2 * sigma ** 2)))[0, 1])


def _spiral(n):
    """MapQ's SpherePts directions, written out from the paper's supplement."""
    out, theta = [], 0.0
    for k in range(1, n + 1):
        h = -1.0 + 2.0 * (k - 1) / (n - 1)
        phi = math.acos(h)
        if k == 1 or k == n:
            theta = 0.0
        else:
            theta = (theta + 3.6 / math.sqrt(n * (1.0 - h * h))) % (2 * math.pi)
        out.append((math.sin(phi) * math.cos(theta), math.sin(phi) * math.sin(theta), math.cos(phi)))
    return out


def _trilinear_point(vol, vs, origin, p):
    """Trilinear value at world point p, 0 outside [0, n−1] (Chimera's rule), 8 corners."""
    x, y, z = ((p[i] - origin[i]) / vs for i in range(3))
    nz, ny, nx = vol.shape
    if not (0 <= x <= nx - 1 and 0 <= y <= ny - 1 and 0 <= z <= nz - 1):
        return 0.0
    i0, j0, k0 = min(int(x), nx - 2), min(int(y), ny - 2), min(int(z), nz - 2)
    fx, fy, fz = x - i0, y - j0, z - k0
    v = 0.0
    for dk in (0, 1):
        for dj in (0, 1):
            for di in (0, 1):
                w = (fx if di else 1 - fx) * (fy if dj else 1 - fy) * (fz if dk else 1 - fz)
                v += w * float(vol[k0 + dk, j0 + dj, i0 + di])
    return v


def _reference_q(vol, vs, origin, xyz, heavy, atom, sigma=0.6):
    """Loop transcription of MapQ's QscorePt3 for one atom (slow; for a few atoms only)."""
    d = vol.astype(np.float64)
    mean, sd = d.mean(), d.std()
    max_d, min_d = min(mean + 10 * sd, d.max()), max(mean - sd, d.min())
    a_amp, b_off = max_d - min_d, min_d
    others = xyz[heavy]
    c = xyz[atom]
    mv = [_trilinear_point(vol, vs, origin, c)] * 8
    gv = [a_amp + b_off] * 8
    rad = 0.1
    while rad < 2.0 + 0.001:
        out_rad = 0.9 * rad
        for i in range(50):
            kept = []
            for u in _spiral(8 + 2 * i):
                p = c + rad * np.array(u)
                if not np.any(np.sqrt(((others - p) ** 2).sum(axis=1)) < out_rad):
                    kept.append(p)
            if len(kept) >= 8:
                break
        else:
            kept = []
        for p in kept:
            mv.append(_trilinear_point(vol, vs, origin, p))
            gv.append(a_amp * math.exp(-0.5 * (rad / sigma) ** 2) + b_off)
        rad += 0.1
    return float(np.corrcoef(mv, gv)[0, 1])


def _residue_table(path):
    """{resseq: (Q_backBone, Q_sideChain or nan, Q_residue)} from a MapQ *_All.txt file."""
    out = {}
    with open(path) as f:
        for line in f:
            t = line.rstrip("\n").split("\t")
            if len(t) > 6 and t[1] and t[2].strip().lstrip("-").isdigit() and t[5]:
                out[int(t[2])] = (float(t[3]), float(t[4]) if t[4] else float("nan"), float(t[5]))
    return out


def _chain_line(path):
    """(Q_chain, Est.Res.) of the first chain line of a MapQ *_All.txt file."""
    with open(path) as f:
        f.readline()
        t = f.readline().split("\t")
    return float(t[1]), float(t[2])


@pytest.fixture(scope="module")
def model_5me2():
    return read_model(simulate.EXAMPLE_MODEL)


@pytest.fixture(scope="module")
def sim25(atoms):
    """5ME2 simulated at 2.5 Å, 1 Å/voxel, B = 0, no noise."""
    return simulate.simulate(atoms=atoms, voxel_size=1.0, resolution=2.5)


# ---- small pieces -----------------------------------------------------------------------

def test_spiral_is_mapqs():
    for n in (8, 10, 56, 106):
        np.testing.assert_allclose(qk.sphere_points(n), np.array(_spiral(n)), rtol=0, atol=1e-15)
        np.testing.assert_allclose(np.linalg.norm(qk.sphere_points(n), axis=1), 1.0, atol=1e-12)


def test_shells_are_mapqs_twenty_radii():
    r = qk.shell_radii()
    assert len(r) == 20
    np.testing.assert_allclose(r, np.arange(1, 21) * 0.1, atol=1e-12)


def test_min_max_d_is_mapqs_formula():
    rng = np.random.default_rng(3)
    vol = rng.normal(1.0, 2.0, (20, 20, 20)).astype(np.float32)
    vol[0, 0, 0] = 100.0  # max beyond mean + 10 SD: maxD is capped there
    lo, hi = qk.mapq_min_max(vol)
    m, s = float(vol.astype(np.float64).mean()), float(vol.astype(np.float64).std())
    assert hi == pytest.approx(min(m + 10 * s, 100.0), rel=1e-12)
    assert lo == pytest.approx(max(m - s, float(vol.min())), rel=1e-12)
    flat = np.zeros((10, 10, 10), np.float32)
    flat[5, 5, 5] = 1.0  # mean − SD below the min: minD is the min (0)
    assert qk.mapq_min_max(flat)[0] == 0.0


def test_expected_q_is_mapqs_lines():
    # the formula MapQ prints on its chain line ("=-0.1775 * 3.90 + 1.1192") and uses for
    # Est.Res. (checked against its files below). Its per-residue "ExpectedQ@3.90" column reads
    # 0.424740 = −0.1794·3.9 + 1.1244, an older fit (qscores.py SaveQ): not the one used here.
    assert qk.expected_q(3.9) == pytest.approx(-0.1775 * 3.9 + 1.1192, abs=1e-12)
    assert qk.expected_q(3.9) == pytest.approx(0.42695, abs=5e-7)
    assert qk.expected_q(2.5, "nucleic") == pytest.approx(-0.1377 * 2.5 + 0.9973)
    assert qk.estimated_resolution(qk.expected_q(3.1)) == pytest.approx(3.1)


# ---- analytic known answers ---------------------------------------------------------------

@pytest.mark.parametrize("s", [0.6, 0.8, 1.0, 1.5])
def test_isolated_gaussian_atoms_give_the_closed_form(s):
    """27 atoms 8 Å apart (no neighbour within 3.8 Å, no overlap) imaged as Gaussians of width s
    on a 0.2 Å grid, plus a constant: Q = the closed-form Pearson. The residual is trilinear
    interpolation error (∝ voxel²): measured ≤ 0.0008 at 0.2 Å (≤ 0.0002 at 0.1 Å)."""
    rng = np.random.default_rng(0)
    g = np.arange(3) * 8.0 + 2.0
    centres = np.array([[x, y, z] for x in g for y in g for z in g]) + rng.uniform(-.5, .5, (27, 3))
    origin = (-2.0, -2.0, -2.0)
    vol = _gauss_map(centres, s, 0.2, 120, origin) + 0.3
    r = qk.qscores(vol, 0.2, origin, centres)
    assert np.all(r.n_points == 8 * 21)  # every shell kept its first 8 points
    np.testing.assert_allclose(r.q, _pearson_two_gaussians(s), atol=0.0015)


def test_sigma_parameter_matches_the_atom_width():
    rng = np.random.default_rng(1)
    g = np.arange(3) * 9.0 + 3.0
    centres = np.array([[x, y, z] for x in g for y in g for z in g]) + rng.uniform(-.5, .5, (27, 3))
    vol = _gauss_map(centres, 1.0, 0.2, 130, (-1.0, -1.0, -1.0))
    r = qk.qscores(vol, 0.2, (-1.0, -1.0, -1.0), centres, sigma=1.0)
    assert np.all(r.q > 0.999)
    r6 = qk.qscores(vol, 0.2, (-1.0, -1.0, -1.0), centres)  # σ = 0.6 on width-1.0 atoms
    np.testing.assert_allclose(r6.q, _pearson_two_gaussians(1.0), atol=0.0015)


@pytest.mark.slow
def test_vectorised_kernel_equals_a_loop_transcription_of_qscorept3(sim25, model_5me2):
    """30 atoms of 5ME2 (crowded protein: many points excluded, N often > 8) in the 2.5 Å
    simulation: the kernel equals the per-atom loop to rounding."""
    vol, vs, origin = sim25
    m = model_5me2
    heavy = ~m.is_hydrogen
    pick = np.nonzero(heavy)[0][::150][:30]
    sel = np.zeros(m.n_atoms, bool)
    sel[pick] = True
    r = qk.qscores(vol, vs, origin, m.xyz, m.is_hydrogen, select=sel)
    ref = [_reference_q(vol, vs, np.asarray(origin), m.xyz, heavy, i) for i in pick]
    np.testing.assert_allclose(r.q[pick], ref, rtol=0, atol=1e-9)
    assert np.all(np.isnan(r.q[~sel]))
    assert int(r.n_points[pick].max()) > 8 * 21  # some shell needed N > 8


def test_hydrogens_are_ignored(sim25, model_5me2):
    """MapQ drops H from both the scored atoms and the exclusion grid: adding hydrogens next to
    every atom changes nothing, and they get NaN."""
    vol, vs, origin = sim25
    m = model_5me2
    heavy = np.nonzero(~m.is_hydrogen)[0][:300]
    xyz = m.xyz[heavy]
    h_xyz = xyz + np.array([0.6, 0.5, 0.4])  # 0.9 Å away: would exclude many points
    both = np.vstack([xyz, h_xyz])
    is_h = np.r_[np.zeros(len(xyz), bool), np.ones(len(h_xyz), bool)]
    a = qk.qscores(vol, vs, origin, xyz)
    b = qk.qscores(vol, vs, origin, both, is_h)
    np.testing.assert_array_equal(b.q[:len(xyz)], a.q)
    assert np.all(np.isnan(b.q[len(xyz):]))


# ---- MapQ's own outputs (gregdp/mapq test data, EMD-30342) --------------------------------

@needs_real
def test_fragment_per_atom_equals_mapq():
    """MapQ's per-atom Q (``_atom_site.Q_score``, 3 decimals) for the 100-atom fragment: every
    atom within 0.002 (measured max 0.00049, the rounding of the file), and MapQ's per-residue
    table (6 decimals) within 1e-4 (measured 2e-6)."""
    mp = read_map(os.path.join(EMD30342, "390_emd_30342_A_z4.mrc"))
    m = read_model(os.path.join(EMD30342, "390_7cec_A100.cif"))
    block = gemmi.cif.read(os.path.join(EMD30342,
                                        "390_7cec_A100__Q__390_emd_30342_A_z4.cif")).sole_block()
    ref = np.array([float(v) for v in block.find_values("_atom_site.Q_score")])
    names = list(block.find_values("_atom_site.label_atom_id"))
    assert names == m.atom_name.tolist()
    r = qk.qscores(mp.data, mp.voxel_size, mp.origin, m.xyz, m.is_hydrogen)
    assert r.n_edge == 0
    assert np.max(np.abs(r.q - ref)) <= 0.002
    rq = qk.residue_q(r.q, m.residue_index, m.atom_name, m.resname, m.chain, m.is_hydrogen)
    table = _residue_table(os.path.join(EMD30342, "390_7cec_A100__Q__390_emd_30342_A_z4_All.txt"))
    want = np.array([table[s] for s in m.resseq])
    np.testing.assert_allclose(rq.q_residue, want[:, 2], atol=1e-4)
    np.testing.assert_allclose(rq.q_backbone, want[:, 0], atol=1e-4)
    np.testing.assert_allclose(rq.q_sidechain, want[:, 1], atol=1e-4)  # GLY: both NaN
    q_chain, est = _chain_line(os.path.join(EMD30342,
                                            "390_7cec_A100__Q__390_emd_30342_A_z4_All.txt"))
    assert round(rq.chain_q["A"], 2) == q_chain == 0.52
    assert round(qk.estimated_resolution(rq.chain_q["A"]), 2) == est


@needs_real
def test_full_chain_against_mapq_table():
    """MapQ's table for all of chain A (553 residues) came from its multi-process path, which
    samples a copy of the map resampled onto world multiples of the voxel (the map's origin
    is not one): on the map's own grid we get per-residue r = 0.995 and a mean 0.006 higher
    (criterion: r ≥ 0.99, mean ± 0.01); on MapQ's resampled copy every residue is reproduced to
    1e-4 (measured 6e-6) and Q_chain = 0.45, Est.Res. 3.77 as in the file."""
    mp = read_map(os.path.join(EMD30342, "390_emd_30342_A_z4.mrc"))
    m = read_model(os.path.join(EMD30342, "390_7cec_A.cif"))
    path = os.path.join(EMD30342, "390_7cec_A__Q__390_emd_30342_A_z4_All.txt")
    table = _residue_table(path)
    want = np.array([table[s] for s in m.resseq])
    q_chain, est = _chain_line(path)

    r = qk.qscores(mp.data, mp.voxel_size, mp.origin, m.xyz, m.is_hydrogen)
    rq = qk.residue_q(r.q, m.residue_index, m.atom_name, m.resname, m.chain, m.is_hydrogen)
    assert np.corrcoef(rq.q_residue, want[:, 2])[0, 1] >= 0.99
    assert abs(rq.q_residue.mean() - want[:, 2].mean()) <= 0.01
    assert abs(rq.chain_q["A"] - q_chain) <= 0.01

    vol, origin = qk.mapq_multiprocess_grid(mp.data, mp.voxel_size, mp.origin)
    r2 = qk.qscores(vol, mp.voxel_size, origin, m.xyz, m.is_hydrogen,
                    min_max=qk.mapq_min_max(mp.data))
    rq2 = qk.residue_q(r2.q, m.residue_index, m.atom_name, m.resname, m.chain, m.is_hydrogen)
    np.testing.assert_allclose(rq2.q_residue, want[:, 2], atol=1e-4)
    np.testing.assert_allclose(rq2.q_backbone, want[:, 0], atol=1e-4)
    np.testing.assert_allclose(rq2.q_sidechain, want[:, 1], atol=1e-4)
    assert round(rq2.chain_q["A"], 2) == q_chain == 0.45
    assert round(qk.estimated_resolution(rq2.chain_q["A"]), 2) == est == 3.77


# ---- simulated maps -------------------------------------------------------------------------

def _protein_residue_mean(r, m):
    rq = qk.residue_q(r.q, m.residue_index, m.atom_name, m.resname, m.chain, m.is_hydrogen)
    return float(np.nanmean(rq.q_residue[rq.kind == "protein"])), rq


@pytest.mark.slow
def test_q_falls_with_resolution_and_a_perfect_map_beats_the_emdb_line(atoms, model_5me2):
    """Noise-free B = 0 maps of 5ME2: mean residue Q 0.904 / 0.830 / 0.773 / 0.634 at
    2 / 2.5 / 3 / 4 Å (measured). MapQ's expected-Q line is a fit to experimental EMDB maps,
    whose models carry coordinate error and whose maps carry noise and B; a perfect model in its
    own noise-free map is more resolvable, by 0.15–0.23 here — so the test asks for the order
    and for Q above the line (and below the isolated-atom limit 1), not for equality."""
    m = model_5me2
    q = {}
    for d in (2.0, 2.5, 3.0, 4.0):
        vol, vs, origin = simulate.simulate(atoms=atoms, voxel_size=1.0, resolution=d)
        q[d], _ = _protein_residue_mean(qk.qscores(vol, vs, origin, m.xyz, m.is_hydrogen), m)
    assert q[2.0] > q[2.5] > q[3.0] > q[4.0]
    for d, v in q.items():
        assert qk.expected_q(d) < v < 1.0
    # noise lowers Q
    vol, vs, origin = simulate.simulate(atoms=atoms, voxel_size=1.0, resolution=2.5, noise=1.0,
                                        seed=2)
    noisy, _ = _protein_residue_mean(qk.qscores(vol, vs, origin, m.xyz, m.is_hydrogen), m)
    assert noisy < q[2.5] - 0.005


@pytest.mark.slow
def test_chain_without_density_scores_low(model_5me2):
    """Density of chains B–D only (2.5 Å, 10 % noise): chain A's Q_chain ≈ 0 (measured −0.02)
    and ≥ 80 % of its residues below 0.2 (measured 90 %; the rest sit at the interfaces or
    correlate with noise), while B–D keep the Q of the full map (0.83)."""
    m = model_5me2
    heavy = ~m.is_hydrogen
    water = np.isin(m.resname[m.residue_index], ("HOH",))
    w = np.array([gemmi.Element(e).atomic_number for e in m.element], dtype=np.float32)
    sel = heavy & ~water
    in_a = m.chain[m.residue_index] == "A"
    shape, origin = simulate.box_around(m.xyz[sel], 1.0)

    def q_for(mask):
        grid = simulate.deposit(m.xyz[mask], w[mask], shape, 1.0, origin)
        vol = simulate.add_noise(simulate.shape_map(grid, 1.0, resolution=2.5), 0.1, seed=1)
        return _protein_residue_mean(qk.qscores(vol, 1.0, origin, m.xyz, m.is_hydrogen), m)[1]

    full, no_a = q_for(sel), q_for(sel & ~in_a)
    prot_a = (m.chain == "A") & (no_a.kind == "protein")
    assert no_a.chain_q["A"] < 0.2
    assert np.nanmean(no_a.q_residue[prot_a]) < 0.2
    assert np.mean(no_a.q_residue[prot_a] < 0.2) >= 0.8
    for c in ("B", "C", "D"):
        assert full.chain_q[c] > 0.8
        assert abs(no_a.chain_q[c] - full.chain_q[c]) < 0.01


@pytest.mark.slow
def test_box_edge_atoms(sim25, model_5me2):
    """A box cut through the model: no error; atoms whose samples all lie inside keep exactly
    the Q of the whole map; atoms with a sample outside get NaN (default) or, as MapQ does,
    a Q computed with 0 outside (edge="zero"); atoms outside the box get NaN."""
    vol, vs, origin = sim25
    m = model_5me2
    whole = qk.qscores(vol, vs, origin, m.xyz, m.is_hydrogen)
    assert whole.n_edge == 0
    cut = vol.shape[2] // 2
    part = np.ascontiguousarray(vol[:, :, :cut])  # keep x < cut (same origin)
    mm = qk.mapq_min_max(vol)  # same reference Gaussian, so Q is comparable
    r = qk.qscores(part, vs, origin, m.xyz, m.is_hydrogen, min_max=mm)
    rz = qk.qscores(part, vs, origin, m.xyz, m.is_hydrogen, min_max=mm, edge="zero")
    x_idx = (m.xyz[:, 0] - origin[0]) / vs
    heavy = ~m.is_hydrogen
    inside = heavy & (x_idx < cut - 1 - 2.0 / vs - 1e-6)
    near = heavy & (x_idx > cut - 1 - 0.5 / vs) & (x_idx < cut - 1 - 1e-6)
    outside = heavy & (x_idx > cut - 1 + 2.0 / vs + 1e-6)
    assert inside.sum() > 100 and near.sum() > 10 and outside.sum() > 100
    np.testing.assert_allclose(r.q[inside], whole.q[inside], rtol=0, atol=1e-12)
    assert np.all(r.edge[near]) and np.all(np.isnan(r.q[near]))
    assert r.n_edge == int(np.count_nonzero(r.edge)) > 0 and r.notes
    assert np.all(np.isfinite(rz.q[near]))
    assert np.all(np.isnan(r.q[outside])) and np.all(np.isnan(rz.q[outside]))
    np.testing.assert_array_equal(rz.q[inside], r.q[inside])


def test_empty_selection_and_flat_map():
    xyz = np.array([[5.0, 5.0, 5.0], [9.0, 5.0, 5.0]])
    r = qk.qscores(np.zeros((12, 12, 12), np.float32), 1.0, (0, 0, 0), xyz)
    assert np.all(np.isnan(r.q))  # flat map: no correlation defined, not a crash
    r = qk.qscores(np.ones((12, 12, 12), np.float32), 1.0, (0, 0, 0), xyz,
                   is_hydrogen=np.array([True, True]))
    assert np.all(np.isnan(r.q)) and r.n_edge == 0
    with pytest.raises(ValueError):
        qk.qscores(np.ones((12, 12, 12), np.float32), 1.0, (0, 0, 0), xyz, edge="clip")


def test_batches_give_the_same_numbers(sim25, model_5me2, monkeypatch):
    vol, vs, origin = sim25
    m = model_5me2
    sel = np.zeros(m.n_atoms, bool)
    sel[:500] = True
    a = qk.qscores(vol, vs, origin, m.xyz, m.is_hydrogen, select=sel)
    monkeypatch.setattr(qk, "BATCH", 37)
    b = qk.qscores(vol, vs, origin, m.xyz, m.is_hydrogen, select=sel)
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.n_points, b.n_points)
