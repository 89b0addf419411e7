"""EMRinger (cryovalid.kernels.emringer; Barad et al. 2015, Nature Methods 12:943): the
sampling against a scalar re-derivation of cctbx's loop, the statistics against hand-computed
answers, simulated known answers, and cctbx's numbers on the shared real data
(level-a-methods.md, A.f and "Numbers to reproduce")."""
import dataclasses
import math
import os

import gemmi
import numpy as np
import pytest

import simulate
from cryovalid.errors import CannotMeasure
from cryovalid.io.maps import read_map
from cryovalid.io.model import read_model
from cryovalid.kernels import emringer as er

REAL = simulate.SHARED_REAL
needs_real = pytest.mark.skipif(not os.path.isdir(REAL),
                                reason="../shared/data/real not present (user clone)")

# Side-chain atoms that stay put when χ1 turns (main chain and CB).
FIXED_ATOMS = ("N", "CA", "C", "O", "CB", "OXT")


@pytest.fixture(scope="module")
def model():
    return read_model(simulate.EXAMPLE_MODEL)


def _atoms_for_simulation(md, xyz=None):
    """(xyz, weights = atomic number) of the model's non-H, non-water atoms."""
    xyz = md.xyz if xyz is None else xyz
    keep = ~md.is_hydrogen & (md.resname[md.residue_index] != "HOH")
    w = np.array([gemmi.Element(e).atomic_number for e in md.element[keep]], dtype=np.float32)
    return xyz[keep], w


def _simulated_map(md, xyz=None, resolution=2.5, voxel=1.0):
    """Map simulated from the model (atoms at ``xyz``) in the box of the unperturbed model."""
    shape, origin = simulate.box_around(_atoms_for_simulation(md)[0], voxel)
    pos, w = _atoms_for_simulation(md, xyz)
    grid = simulate.deposit(pos, w, shape, voxel, origin)
    return simulate.shape_map(grid, voxel, resolution=resolution), voxel, origin


@pytest.fixture(scope="module")
def sim25(model):
    return _simulated_map(model)


def _rotate_chi1(md, residues, angle_deg):
    """Copy of the model with the side chains beyond CB of ``residues`` turned about CA→CB by
    ``angle_deg`` (right-handed), i.e. χ1 increased by that angle."""
    xyz = md.xyz.copy()
    for r in residues:
        rows = np.flatnonzero(md.residue_index == r)
        names = md.atom_name[rows]
        ca = xyz[rows[names == "CA"][0]]
        cb = xyz[rows[names == "CB"][0]]
        moving = rows[~np.isin(names, FIXED_ATOMS)]
        u = (cb - ca) / np.linalg.norm(cb - ca)
        a = math.radians(angle_deg)
        k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
        rot = np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k
        xyz[moving] = (xyz[moving] - ca) @ rot.T + ca
    return dataclasses.replace(md, xyz=xyz), xyz


# ---- sampling --------------------------------------------------------------------------------

def test_chi1_dihedral_matches_gemmi(model):
    res, atoms = er.chi1_atoms(model)
    p = [model.xyz[atoms[:, k]] for k in range(4)]
    ours = er.dihedral_deg(*p)
    ref = [math.degrees(gemmi.calculate_dihedral(*(gemmi.Position(*q[i]) for q in p)))
           for i in range(len(res))]
    assert len(res) == 332
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_scored_residue_set_and_gamma_atoms(model):
    """Only R N D C E Q H L K M F S W Y are scored; Ser uses OG, Cys SG, the rest CG."""
    res, atoms = er.chi1_atoms(model)
    names = set(model.resname[res])
    assert names <= set(er.SCORED_RESIDUES)
    assert not names & {"ALA", "GLY", "PRO", "THR", "VAL", "ILE"}
    for r, g in zip(res, atoms[:, 3]):
        assert model.atom_name[g] == er.SCORED_RESIDUES[model.resname[r]]
        assert model.residue_index[g] == r
    # every residue of those types with its four atoms is a candidate (5me2 is complete)
    expected = [i for i, n in enumerate(model.resname) if n in er.SCORED_RESIDUES]
    assert list(res) == expected


def _scalar_profiles(data, voxel, origin, md):
    """cctbx's loop re-derived point by point: γ rotated by −χ1, then 72 × (+5°, sample);
    trilinear interpolation by hand; a residue with a cell outside the box is dropped."""
    nz, ny, nx = data.shape
    kept, profiles = [], []
    res, atoms = er.chi1_atoms(md)
    for r, (i_n, i_ca, i_cb, i_g) in zip(res, atoms):
        n, ca, cb, g = (md.xyz[i] for i in (i_n, i_ca, i_cb, i_g))
        chi = math.degrees(gemmi.calculate_dihedral(
            *(gemmi.Position(*q) for q in (n, ca, cb, g))))

        def turn(p, deg):
            u = (cb - ca) / np.linalg.norm(cb - ca)
            a = math.radians(deg)
            v = p - ca
            return ca + v * math.cos(a) + np.cross(u, v) * math.sin(a) \
                + u * np.dot(u, v) * (1 - math.cos(a))

        point = turn(g, -chi)
        prof, ok = [], True
        for _ in range(72):
            point = turn(point, 5.0)
            gx, gy, gz = (point - np.asarray(origin)) / voxel
            i, j, k = math.floor(gx), math.floor(gy), math.floor(gz)
            if not (0 <= i <= nx - 2 and 0 <= j <= ny - 2 and 0 <= k <= nz - 2):
                ok = False
                break
            fx, fy, fz = gx - i, gy - j, gz - k
            v = 0.0
            for di, wx in ((0, 1 - fx), (1, fx)):
                for dj, wy in ((0, 1 - fy), (1, fy)):
                    for dk, wz in ((0, 1 - fz), (1, fz)):
                        v += wx * wy * wz * float(data[k + dk, j + dj, i + di])
            prof.append(v)
        if ok:
            kept.append(r)
            profiles.append(prof)
    return np.array(kept), np.array(profiles)


def test_profiles_match_scalar_reference_and_drop_residues_leaving_the_box(model, sim25):
    vol, voxel, origin = sim25
    crop = vol[:, :, :52]                          # cut through the model along x
    kept, prof = _scalar_profiles(crop, voxel, origin, model)
    res, ours, _, cand, _ = er.sample_profiles(crop, voxel, origin, model)
    assert 50 < len(kept) < len(cand) - 50          # the cut drops residues, keeps others
    np.testing.assert_array_equal(res, kept)
    np.testing.assert_allclose(ours, prof, rtol=1e-9, atol=1e-12)


def test_peak_label_is_five_degrees_below_the_sampled_angle(model, sim25):
    """In a map simulated from the model the profile peaks near the model's γ atom: sample i
    sits at χ1 = 5(i+1)°, so (label + 5°) − χ1 centres on 0 while the bare label sits ~5°
    low. Would fail with the wrong rotation sense or offset."""
    r = er.emringer(*sim25, model)
    s = r.residue_scored
    d = (r.residue_peak_chi[s] + 5.0 - r.residue_chi1[s] + 180.0) % 360.0 - 180.0
    assert abs(np.median(d)) < 2.5
    assert np.mean(np.abs(d) <= 30.0) > 0.9
    d0 = (r.residue_peak_chi[s] - r.residue_chi1[s] + 180.0) % 360.0 - 180.0
    assert np.median(d0) < -4.0


# ---- statistics ------------------------------------------------------------------------------

def test_binned_statistic_of_one_peak_per_label():
    """One peak at each of the 72 labels: bins 6–17, 30–41, 54–65 hold 36 peaks; cctbx's Z
    uses the expected share 39/72:
    Z = (36 − 72·39/72)/sqrt(72·39·33/72²) = −3/sqrt(39·33/72)."""
    ratio, z, n = er._binned_statistics(np.ones((1, 72), dtype=np.int64))
    assert n[0] == 72
    assert ratio[0] == pytest.approx(0.5)
    assert z[0] == pytest.approx(-3.0 / math.sqrt(39 * 33 / 72), rel=1e-12)
    # bin edges: a peak at index 5 or 18 is not rotameric, 6 and 17 are
    for idx, rot in ((5, 0), (6, 1), (17, 1), (18, 0), (29, 0), (30, 1), (65, 1), (66, 0)):
        c = np.zeros((1, 72), dtype=np.int64)
        c[0, idx] = 1
        assert er._binned_statistics(c)[0][0] == rot, idx


def _profile(peaks, height, n=72):
    p = np.zeros(n)
    for i in np.atleast_1d(peaks):
        p[i] = height
    return p


def test_score_profiles_hand_computed():
    """10 residues peaking at label 60° (index 12) with height 1: every threshold sees 10
    rotameric peaks, so Z = (10 − 10·39/72)/sqrt(10·39·33/72²) at all 20 thresholds, the best
    is the first (t_0 = avg_avg = 1/72) and the score is 10·Z/sqrt(10)."""
    st = er.score_profiles(np.stack([_profile(12, 1.0)] * 10))
    z = (10 - 10 * 39 / 72) / math.sqrt(10 * 39 * 33 / 72 ** 2)
    assert len(st["zscores"]) == 20
    np.testing.assert_allclose(st["zscores"], z, rtol=1e-12)
    assert st["best"] == 0
    assert st["avg_avg"] == pytest.approx(1 / 72) and st["max_max"] == 1.0
    np.testing.assert_allclose(st["all_thresholds"], 1 / 72 + np.arange(20) * (1 - 1 / 72) / 20)
    assert st["scores"][0] == pytest.approx(10 * z / math.sqrt(10))
    assert st["rotamer_ratios"][0] == 1.0


def test_score_profiles_ties_stop_rule_and_best_threshold():
    """4 rotameric residues of height 1 (one with two equal maxima, counted twice) and 2
    non-rotameric ones of height 2: 7 peaks, 5 rotameric, while t_i < 1. The thresholds rise
    from avg_avg to max_max = 2; once t_i ≥ 1 only the 2 non-rotameric peaks remain: ratio 0,
    the scan stops there."""
    prof = np.stack([_profile(12, 1.0), _profile(36, 1.0), _profile(60, 1.0),
                     _profile([12, 36], 1.0), _profile(24, 2.0), _profile(0, 2.0)])
    st = er.score_profiles(prof)
    avg = prof.mean()
    t = avg + np.arange(20) * (2.0 - avg) / 20
    k = int(np.argmax(t >= 1.0))                   # first threshold with no height-1 peak
    assert len(st["thresholds"]) == k
    n, rot = 7, 5                                   # 5 rotameric peaks + 2 non-rotameric
    z = (rot - n * 39 / 72) / math.sqrt(n * 39 * 33 / 72 ** 2)
    np.testing.assert_allclose(st["zscores"], z, rtol=1e-12)
    np.testing.assert_array_equal(st["n_peaks"], 7)
    assert st["rotamer_ratios"][0] == pytest.approx(5 / 7)
    assert st["best"] == 0
    assert st["scores"][0] == pytest.approx(10 * z / math.sqrt(6))


def test_score_profiles_refuses_flat_or_non_rotameric():
    with pytest.raises(CannotMeasure):
        er.score_profiles(np.ones((5, 72)))
    with pytest.raises(CannotMeasure):
        er.score_profiles(np.stack([_profile(0, 1.0)] * 3))     # peaks only at label 0°


# ---- simulated known answers -----------------------------------------------------------------

def test_simulated_map_gives_a_positive_score_and_per_residue_output(model, sim25):
    r = er.emringer(*sim25, model)
    assert r.n_residues == 332
    assert r.score > 3.0 and r.zscore_max > 5.0
    assert r.rotamer_ratio > 0.8
    assert r.optimal_threshold in r.thresholds
    assert r.score == pytest.approx(10 * r.zscore_max / math.sqrt(r.n_residues))
    assert r.histogram.shape == (72,) and r.histogram.sum() == r.n_peaks[np.argmax(r.zscores)]
    assert r.residue_peak_chi.shape == (model.n_residues,)
    unscored = ~np.isin(model.resname, list(er.SCORED_RESIDUES))
    assert np.isnan(r.residue_peak_chi[unscored]).all()
    assert np.isfinite(r.residue_peak_chi[r.residue_scored]).all()
    assert r.residue_peak_above.sum() == r.histogram.sum()      # no ties in a real profile


def test_rotating_chi1_in_the_model_leaves_the_score_unchanged(model, sim25):
    """EMRinger samples the whole χ1 circle from χ1 = 0 (defined by N, CA, CB), so it does
    not depend on where the model puts the γ atom along that circle."""
    res = np.flatnonzero(np.isin(model.resname, list(er.SCORED_RESIDUES)))
    rng = np.random.default_rng(0)
    moved = rng.choice(res, size=int(0.3 * len(res)), replace=False)
    turned, _ = _rotate_chi1(model, moved, 60.0)
    a = er.emringer(*sim25, model)
    b = er.emringer(*sim25, turned)
    assert b.score == pytest.approx(a.score, abs=1e-9)
    np.testing.assert_allclose(b.profiles, a.profiles, atol=1e-9)


def test_map_with_rotated_side_chains_lowers_the_score(model, sim25):
    """A map simulated with χ1 of 30 % of the scored residues turned by 60° (rotameric →
    non-rotameric) scores the deposited model lower, with a lower rotamer ratio."""
    res = np.flatnonzero(np.isin(model.resname, list(er.SCORED_RESIDUES)))
    rng = np.random.default_rng(0)
    moved = rng.choice(res, size=int(0.3 * len(res)), replace=False)
    _, xyz = _rotate_chi1(model, moved, 60.0)
    wrong_map = _simulated_map(model, xyz)
    good = er.emringer(*sim25, model)
    bad = er.emringer(*wrong_map, model)
    assert bad.score < good.score - 2.0
    assert bad.rotamer_ratio < good.rotamer_ratio - 0.1


# ---- bad input -------------------------------------------------------------------------------

def test_model_outside_the_box_cannot_be_measured(model, sim25):
    vol, voxel, origin = sim25
    far = tuple(np.asarray(origin) + 500.0)
    with pytest.raises(CannotMeasure, match="inside the map box"):
        er.emringer(vol, voxel, far, model)


def test_poly_ala_model_cannot_be_measured(model, sim25):
    ala = dataclasses.replace(model, resname=np.where(np.isin(model.resname, ["HOH"]),
                                                      model.resname, "ALA"))
    with pytest.raises(CannotMeasure, match="no residue EMRinger scores"):
        er.emringer(*sim25, ala)


def test_flat_or_non_finite_map_cannot_be_measured(model, sim25):
    vol, voxel, origin = sim25
    with pytest.raises(CannotMeasure):
        er.emringer(np.ones_like(vol), voxel, origin, model)
    with pytest.raises(CannotMeasure, match="non-finite"):
        er.emringer(np.full_like(vol, np.nan), voxel, origin, model)


# ---- cctbx's numbers on the shared real data -------------------------------------------------

CCTBX = [
    # map, model, score, threshold, rotamer ratio, max Z, scored residues
    ("EMD-3488/emd_3488.map", "EMD-3488/5me2.pdb", 3.963, 0.1001, 0.770, 7.22, 332),
    ("EMD-30342/390_emd_30342_A_z4.mrc", "EMD-30342/390_7cec_A.cif",
     1.837, 0.0610, 0.690, 3.35, 333),
    ("EMD-2566/2566_3J6B_9.mrc", "EMD-2566/3J6B_9.pdb", 1.996, 0.3384, 0.762, 2.03, 103),
]


@needs_real
@pytest.mark.parametrize("map_name,model_name,score,threshold,ratio,zmax,n", CCTBX,
                         ids=["EMD-3488", "EMD-30342", "EMD-2566"])
def test_matches_cctbx_on_real_maps(map_name, model_name, score, threshold, ratio, zmax, n):
    mp = read_map(os.path.join(REAL, map_name))
    md = read_model(os.path.join(REAL, model_name))
    r = er.emringer(mp.data, mp.voxel_size, mp.origin, md)
    assert r.score == pytest.approx(score, abs=0.01)
    assert r.optimal_threshold == pytest.approx(threshold, abs=0.002)
    assert r.rotamer_ratio == pytest.approx(ratio, abs=0.002)
    assert r.zscore_max == pytest.approx(zmax, abs=0.01)
    assert r.n_residues == n
