"""Known answers for mtriage's numbers (cryovalid.kernels.mtriage): d99, the map–model FSC, its
smoothing and the d-at-cutoff rule, d_model / d_model(B=0) / overall B, the masked pass; and
cctbx's own numbers on the shared maps (level-a-methods.md, "Numbers to reproduce")."""
import math
import os

import numpy as np
import pytest

import simulate
from cryovalid.kernels import fourier
from cryovalid.kernels import mtriage as mt

# ---- helpers ---------------------------------------------------------------------------------


def _sharp_lowpass(vol, voxel_size, d0):
    """Keep the Fourier coefficients with d > d0 (a sharp cut), float32."""
    ft = fourier.rfft(vol)
    s = fourier.frequency_magnitude(vol.shape, voxel_size)
    ft[s >= 1.0 / d0] = 0
    return fourier.irfft(ft, vol.shape)


@pytest.fixture(scope="module")
def small_model():
    """(model, shape, voxel_size, xyz_box) of 5ME2 in a 1.6 Å/voxel box with 8 Å padding."""
    from cryovalid.io.model import read_model

    model = read_model(simulate.EXAMPLE_MODEL)
    ts = 1.6
    shape, origin = simulate.box_around(model.xyz, ts, padding=8.0)
    return model, shape, ts, model.xyz - np.asarray(origin)


@pytest.fixture(scope="module")
def model_fc(small_model):
    """Unique box coefficients of the model map, with the atoms' B and with B = 0."""
    model, shape, ts, xyz = small_model
    hkl = mt.BoxHKL(shape, ts)
    fc = mt.model_map_all_hkl(xyz, model.element, model.b_iso, model.occupancy, shape, ts)
    fc0 = mt.model_map_all_hkl(xyz, model.element, model.b_iso, model.occupancy, shape, ts,
                               b_zero=True)
    return hkl, fc, hkl.take(fourier.rfft(fc)), hkl.take(fourier.rfft(fc0))


# ---- the box hkl set ---------------------------------------------------------------------------


def test_box_hkl_is_cctbx_unique_set():
    # |h| <= (n-1)//2 per axis, one of each Friedel pair, no F000: for n = (6, 7, 8) that is
    # (5·7·7 − 1)/2 = 122 coefficients, and the corner d is 1/|(2/6, 3/7, 3/8)|/Ts
    hkl = mt.BoxHKL((6, 7, 8), 1.5)
    assert len(hkl.d) == (5 * 7 * 7 - 1) // 2
    corner = 1.0 / math.sqrt((2 / 9) ** 2 + (3 / 10.5) ** 2 + (3 / 12) ** 2)
    assert hkl.d_min == pytest.approx(corner, rel=1e-12)
    assert np.all(np.diff(hkl.d) >= 0)
    assert np.allclose(hkl.ss, 1 / (4 * hkl.d ** 2))


def test_model_map_all_hkl_has_every_box_coefficient(model_fc):
    # no cut at any resolution: every box coefficient, the corners included, carries signal
    hkl, _, fc, _ = model_fc
    corner = hkl.d < 1.02 * hkl.d_min
    assert corner.sum() > 0
    assert np.all(np.abs(fc[corner]) > 0)


# ---- d99 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("d0", [3.0, 4.5])
def test_d99_recovers_a_sharp_cut(d0):
    # white noise cut sharply at d0: CC(d)² = (d0/d)³, so CC < 0.99 from d0·0.98^(-1/3)
    rng = np.random.default_rng(1)
    ts = 1.0
    vol = _sharp_lowpass(rng.normal(size=(64, 64, 64)).astype(np.float32), ts, d0)
    hkl = mt.BoxHKL(vol.shape, ts)
    got = mt.d99(hkl.take(fourier.rfft(vol)), hkl)
    expected = d0 * 0.98 ** (-1.0 / 3.0)
    assert abs(got - expected) <= 0.015
    # a constant offset (F000) does not count
    got2 = mt.d99(hkl.take(fourier.rfft(vol + 5.0)), hkl)
    assert got2 == got


def test_d99_of_an_empty_map_is_none():
    hkl = mt.BoxHKL((16, 16, 16), 1.0)
    assert mt.d99(np.zeros(len(hkl.d), complex), hkl) is None


# ---- FSC bins, smoothing, cutoff ----------------------------------------------------------------


def test_fsc_bins_sizes():
    d = np.sort(np.random.default_rng(0).uniform(2.0, 30.0, 20_000))
    starts = mt.fsc_bins(d)
    sizes = np.diff(np.append(starts, len(d)))
    first_d = d[starts]
    # every bin but the last holds exactly what its first coefficient's d asks for
    want = np.where(first_d <= 5, 500, np.where(first_d <= 10, 250, 100))
    assert np.all(sizes[:-1] == want[:-1])
    assert want[-1] <= sizes[-1] < 2 * want[-1]  # the short remainder joined the last bin
    assert starts[0] == 0


def test_smooth_fsc_keeps_quadratics_and_leaves_low_resolution_alone():
    d = np.linspace(2.0, 30.0, 200)
    i = np.arange(d.size, dtype=float)
    quad = 0.3 + 0.01 * i - 2e-5 * i ** 2
    sel = d <= 15
    out = mt.smooth_fsc(d, quad)
    inner = np.flatnonzero(sel)[10:-10]  # away from the mirrored edges
    assert np.allclose(out[inner], quad[inner], atol=1e-12)
    noisy = quad + np.random.default_rng(2).normal(0, 0.05, d.size)
    sm = mt.smooth_fsc(d, noisy)
    assert np.array_equal(sm[~sel], noisy[~sel])
    assert np.std(sm[inner] - quad[inner]) < 0.5 * np.std(noisy[inner] - quad[inner])


@pytest.mark.parametrize("cutoff", mt.FSC_CUTOFFS)
def test_d_at_cutoff_quadratic_root(cutoff):
    # FSC = 1 − (x/x0)², x = 1/d: the quadratic fit is exact, the root is x0·sqrt(1 − c)
    x0 = 1 / 3.3
    d = np.sort(1.0 / np.linspace(0.02, 1 / 2.2, 300))
    f = 1 - (1 / d / x0) ** 2
    got = mt.d_at_cutoff(d, f, cutoff)
    assert got == pytest.approx(1 / (x0 * math.sqrt(1 - cutoff)), abs=1e-9)


def test_d_at_cutoff_falls_back_to_the_bin_and_to_the_end():
    d = np.sort(1.0 / np.linspace(0.02, 0.45, 100))
    # a single bin dips below the cutoff: the quadratic through its neighbours never reaches
    # 0.5 near it, so the answer is that bin's own d
    f = np.full(d.size, 0.9)
    f[40] = 0.0
    assert mt.d_at_cutoff(d, f, 0.5) == d[40]
    # a curve that never drops below the cutoff: the highest-resolution bin's d
    assert mt.d_at_cutoff(d, np.ones_like(d), 0.5) == d.min()
    # the first crossing coming from low resolution counts, not a later one
    f = np.where(d > 6.0, 0.9, 0.1)
    f[d < 3.0] = 0.9
    assert mt.d_at_cutoff(d, f, 0.5) > 5.7


# ---- d_model, d_model(B=0), B -------------------------------------------------------------------


def test_trial_resolutions_grid():
    g = mt.trial_resolutions(2.46)
    assert g[0] == 2.5 and g[-1] == 10.0
    assert 6.1 not in g and 6.0 in g and 6.5 in g
    assert mt.trial_resolutions(7.0)[-1] == 20.0 and mt.trial_resolutions(12.0)[-1] == 40.0


def test_d_model_b0_finds_the_cut(model_fc):
    # Fo = the B = 0 model cut sharply at 4.2 Å: CC(d) is 1 at the cut and lower elsewhere
    hkl, _, _, fc0 = model_fc
    fo = np.where(hkl.d > 4.2, fc0, 0)
    res = mt.d_model(fo, fc0, hkl, d_fsc_model_0=hkl.d_min)
    assert res.d_model_b0 == pytest.approx(4.2)


@pytest.mark.parametrize("b0", [-40.0, 60.0])
def test_overall_b_is_recovered(model_fc, b0):
    # Fo = the B = 0 model blurred by exp(−B0·s²/4): on the set cut at d_FSC_model(0) = 3.5 Å
    # CC(Fo, Fc·e^(−B·ss)) is 1 at B = B0 only; with signal to the corner, d_model is the
    # finest trial d above the cut (3.6 Å: the trials start at the cut set's d_min > 3.5)
    hkl, _, _, fc0 = model_fc
    fo = fc0 * np.exp(-b0 * hkl.ss)
    res = mt.d_model(fo, fc0, hkl, d_fsc_model_0=3.5)
    assert res.b_iso == b0
    assert res.d_model == pytest.approx(3.6)


@pytest.mark.parametrize("b0", [-40.0, 60.0])
def test_d_model_at_b_finds_the_cut(model_fc, b0):
    # Fo = the model blurred by B0 and cut sharply at 4.2 Å: at B0 the best trial d is 4.2 Å
    hkl, _, _, fc0 = model_fc
    fo = np.where(hkl.d > 4.2, fc0 * np.exp(-b0 * hkl.ss), 0)
    sums = mt._Shells(fo, fc0, hkl.ss, hkl.d)
    d, cc = sums.best_d(b0)
    assert d == pytest.approx(4.2) and cc == pytest.approx(1.0, abs=1e-9)
    assert sums.best_d(b0 + 100.0)[1] < cc


# ---- the masked pass's mask ---------------------------------------------------------------------


def test_smooth_mask_is_a_gaussian_of_radius_r():
    # one voxel smoothed with radius r: a Gaussian of standard deviation r Å per axis
    ts, r = 1.0, 2.5
    m = np.zeros((48, 48, 48), bool)
    m[24, 24, 24] = True
    sm = mt.smooth_mask(m, ts, r)
    prof = sm[24, 24, :].astype(float)
    x = np.arange(48) - 24.0
    var = np.sum(prof * x ** 2) / np.sum(prof)
    assert math.sqrt(var) == pytest.approx(r, rel=1e-3)
    assert sm.min() >= 0


def test_soft_atom_mask_covers_the_model(small_model):
    model, shape, ts, xyz = small_model
    r = 2 * 3.2
    mask = mt.soft_atom_mask(xyz, model.element, shape, ts, r)
    idx = np.rint(xyz[:, ::-1] / ts).astype(int) % np.array(shape)
    at_atoms = mask[idx[:, 0], idx[:, 1], idx[:, 2]]
    assert np.median(at_atoms) > 0.95  # atoms sit deep inside (radius vdW + 2R, smoothed by 2R)
    assert mask.dtype == np.float32 and mask.min() >= 0


# ---- the whole of it on a simulated map ---------------------------------------------------------


def test_mtriage_on_a_map_simulated_at_4_angstrom(small_model):
    # the model map cut sharply at 4 Å plus 10 % noise: d_FSC_model(0.5) ≈ 4 Å (within 5 %)
    model, shape, ts, xyz = small_model
    clean = mt.model_map_all_hkl(xyz, model.element, model.b_iso, model.occupancy, shape, ts)
    vol = _sharp_lowpass(clean, ts, 4.0)
    vol = simulate.add_noise(vol, 0.1, seed=3)
    r = mt.mtriage(vol, ts, 4.0, xyz, model.element, model.b_iso, model.occupancy)
    for d05 in (r.d_fsc_model_05, r.d_fsc_model_05_masked):
        assert abs(d05 - 4.0) <= 0.05 * 4.0
    assert r.d_fsc_model_0143 >= r.d_fsc_model_0 - 1e-9
    assert r.d_fsc_model_05 >= r.d_fsc_model_0143
    assert len(r.fsc_d) == len(r.fsc_unmasked) == len(r.fsc_masked)
    assert r.radius_smooth == 8.0
    # the B = 0 model correlates best with the map truncated where the map was cut
    assert abs(r.d_model_b0 - 4.0) <= 0.1 + EPS


def test_mtriage_of_an_empty_map_measures_nothing(small_model):
    model, shape, ts, xyz = small_model
    r = mt.mtriage(np.zeros(shape, np.float32), ts, 3.0, xyz, model.element, model.b_iso,
                   model.occupancy)
    assert r.d99 is None and r.d_fsc_model_05 is None and r.d_model is None
    assert r.d99_masked is None and r.b_iso_masked is None


# ---- cctbx's numbers on the shared data (level-a-methods.md) ------------------------------------

# (folder, map, model, R, d99 (un, masked), d_FSC_model 0/0.143/0.5 unmasked, masked,
#  d_model, d_model_b0, B) — cctbx-base 2025.11
CCTBX = [
    ("EMD-3488", "emd_3488.map", "5me2.pdb", 3.2, (3.31, 3.31),
     (3.01, 3.12, 3.45), (2.94, 3.10, 3.44), 3.4, 3.4, -5.0),
    ("EMD-30342", "390_emd_30342_A_z4.mrc", "390_7cec_A.cif", 3.9, (4.20, 4.35),
     (2.44, 3.85, 4.18), (2.44, 3.83, 4.15), 3.9, 8.3, 200.0),
    ("EMD-2566", "2566_3J6B_9.mrc", "3J6B_9.pdb", 3.2, (2.63, 2.76),
     (2.93, 3.16, 3.61), (2.91, 3.14, 3.60), 3.2, 3.5, 35.0),
]
EPS = 1e-9  # float rounding of values that sit on the tolerance's edge


@pytest.mark.slow
@pytest.mark.parametrize("case", CCTBX, ids=[c[0] for c in CCTBX])
def test_matches_cctbx_mtriage(shared_real, case):
    from cryovalid.io.maps import read_map
    from cryovalid.io.model import read_model

    folder, map_name, model_name, res, d99s, un, ma, dm, dm0, b = case
    m = read_map(os.path.join(shared_real, folder, map_name))
    model = read_model(os.path.join(shared_real, folder, model_name))
    r = mt.mtriage(m.data, m.voxel_size, res, model.xyz - np.asarray(m.origin), model.element,
                   model.b_iso, model.occupancy)
    assert abs(r.d99 - d99s[0]) <= 0.02 + EPS
    assert abs(r.d99_masked - d99s[1]) <= 0.02 + EPS
    got_un = (r.d_fsc_model_0, r.d_fsc_model_0143, r.d_fsc_model_05)
    got_ma = (r.d_fsc_model_0_masked, r.d_fsc_model_0143_masked, r.d_fsc_model_05_masked)
    assert np.all(np.abs(np.subtract(got_un, un)) <= 0.05 + EPS), got_un
    assert np.all(np.abs(np.subtract(got_ma, ma)) <= 0.05 + EPS), got_ma
    assert abs(r.d_model - dm) <= 0.1 + EPS
    assert abs(r.d_model_b0 - dm0) <= 0.1 + EPS
    assert abs(r.b_iso - b) <= 10 + EPS
