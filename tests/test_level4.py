"""Level 4 (the angular assignment): the symmetry kernel, the second-assignment reader and items
4.d (comparison with a second assignment), 4.g (angular distribution efficiency, cryoEF
model) and 4.h (SCF). Angle sets are generated in numpy with known properties; expected values
come from independent derivations (Monte Carlo of the perturbation, the Maxwell and Rayleigh
medians, 8/π² for side views, the model's closed form for a single view)."""
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cryovalid.errors import InputError
from cryovalid.io.angles import read_angles
from cryovalid.io.particles import Particles
from cryovalid.items import angular_comparison, angular_efficiency, base, scf
from cryovalid.kernels import orientation_sampling as sampling
from cryovalid.kernels import projection
from cryovalid.kernels import symmetry as symk

PX, BOX = 1.5, 100  # particles: 1.5 Å pixels, 100 px box (150 Å)
COLS = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]


def uniform_eulers(n, rng):
    """(n, 3) Euler angles of rotations uniform on SO(3) (directions uniform on the sphere)."""
    return np.stack([rng.uniform(0, 360, n), np.degrees(np.arccos(rng.uniform(-1, 1, n))),
                     rng.uniform(0, 360, n)], axis=1)


def side_eulers(n, rng):
    return np.stack([rng.uniform(0, 360, n), np.full(n, 90.0), rng.uniform(0, 360, n)], axis=1)


def top_eulers(n, rng):
    return np.stack([np.zeros(n), np.zeros(n), rng.uniform(0, 360, n)], axis=1)


def names(n):
    return [f"{i + 1:06d}@Particles/stack.mrcs" for i in range(n)]


def particles(eulers, shifts=None):
    n = len(eulers)
    t = pd.DataFrame({"rlnImageName": names(n)})
    for c, v in zip(COLS, np.asarray(eulers).T):
        t[c] = v
    if shifts is not None:
        t["rlnOriginXAngst"], t["rlnOriginYAngst"] = np.asarray(shifts).T
    return Particles(path="particles.star", table=t, stacks=np.array(["s"] * n, dtype=object),
                     index=np.arange(n), box=BOX, pixel_size=PX)


def write_angles(path, eulers, shifts=None, order=None, relion30_pixel=None):
    """A STAR file of a second assignment (``order``: the particles written, in that order)."""
    import starfile

    n = len(eulers)
    order = np.arange(n) if order is None else np.asarray(order)
    t = pd.DataFrame({"rlnImageName": [names(n)[i] for i in order]})
    for c, v in zip(COLS, np.asarray(eulers)[order].T):
        t[c] = v
    if shifts is not None:
        s = np.asarray(shifts)[order]
        if relion30_pixel:  # RELION 3.0: origins in pixels, pixel size from the detector
            t["rlnOriginX"], t["rlnOriginY"] = (s / relion30_pixel).T
            t["rlnDetectorPixelSize"] = 5.0
            t["rlnMagnification"] = 5.0e4 / relion30_pixel
        else:
            t["rlnOriginXAngst"], t["rlnOriginYAngst"] = s.T
    starfile.write({"particles": t}, str(path), overwrite=True)
    return str(path)


def context(parts, angles_b=None, symmetry="c1", resolution=None):
    return SimpleNamespace(particles=SimpleNamespace(particles=parts), angles_b=angles_b,
                           symmetry=symmetry, resolution=resolution)


def small_rotations(n, sigma_deg, rng):
    """(n, 3, 3) rotations exp([ω]×) with ω ~ N(0, σ²·I) (radians), and ω."""
    w = rng.normal(0.0, np.radians(sigma_deg), (n, 3))
    return np.array([symk.axis_rotation(v, np.linalg.norm(v)) for v in w]), w


# --------------------------------------------------------------------------- symmetry kernel

@pytest.mark.parametrize("sym,order", [("c1", 1), ("c4", 4), ("d3", 6), ("t", 12), ("o", 24),
                                       ("i", 60), ("i1", 60)])
def test_point_groups_are_closed_groups_of_rotations(sym, order):
    m = symk.matrices(sym)
    assert len(m) == order
    np.testing.assert_allclose(np.einsum("kji,kjl->kil", m, m), np.broadcast_to(np.eye(3),
                               m.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-9)
    prod = np.einsum("aij,bjk->abik", m, m).reshape(-1, 9)
    # every product is again an element (closure), and the elements are distinct
    d = np.abs(prod[:, None, :] - m.reshape(1, -1, 9)).max(axis=2)
    assert np.all(d.min(axis=1) < 1e-6)
    assert len(np.unique(np.round(m.reshape(-1, 9), 6), axis=0)) == order


def test_group_settings_follow_relion():
    """RELION's axes: T has a 3-fold on z; O 4-folds on x, y, z; I (= I2) 2-folds on x, y, z and
    a 5-fold along (0.5257, 0, 0.8507); I1 a 5-fold along (0.8507, 0, −0.5257)."""
    def has(sym, axis, fold):
        r = symk.axis_rotation(axis, 2 * np.pi / fold)
        return np.abs(symk.matrices(sym) - r).max(axis=(1, 2)).min() < 1e-5
    assert has("t", (0, 0, 1), 3) and not has("t", (0, 0, 1), 2)
    assert all(has("o", ax, 4) for ax in np.eye(3))
    assert all(has("i", ax, 2) for ax in np.eye(3)) and has("i", (0.5257311, 0, 0.8506508), 5)
    assert has("i1", (0.8506508, 0, -0.5257311), 5) and not has("i1", (0.5257311, 0, 0.8506508), 5)
    assert has("d4", (1, 0, 0), 2) and has("d4", (0, 0, 1), 4)
    with pytest.raises(ValueError):
        symk.matrices("x3")


def test_orientation_differences_small_rotation_known_answer():
    """A1 = R(ω)·A2 with ω ~ N(0, σ²I): the geodesic angle is |ω| (Maxwell, median
    1.5382·σ) and the mean-row angle is mean_i 2·asin(sin(|ω|/2)·sqrt(1 − u_i²)) (u = ω/|ω|),
    its median from a Monte Carlo of ω independent of the kernel."""
    from scipy.stats import chi

    rng = np.random.default_rng(3)
    sigma, n = 2.0, 4000
    a = uniform_eulers(n, rng)
    rots, w = small_rotations(n, sigma, rng)
    b = projection.matrix_euler(rots @ projection.euler_matrix(a))
    mean_row, geo = symk.orientation_differences(b, a, "c1")
    np.testing.assert_allclose(np.median(geo), chi(3).median() * sigma, rtol=0.03)
    mc = rng.normal(0.0, np.radians(sigma), (200000, 3))
    th = np.linalg.norm(mc, axis=1)
    u2 = (mc / th[:, None]) ** 2
    expect = np.degrees(2 * np.arcsin(np.sin(th / 2)[:, None] * np.sqrt(1 - u2))).mean(axis=1)
    np.testing.assert_allclose(np.median(mean_row), np.median(expect), rtol=0.03)
    assert np.median(mean_row) < 0.85 * np.median(geo)  # the two definitions differ
    # exactly per particle: the geodesic is |ω|
    np.testing.assert_allclose(geo, np.degrees(np.linalg.norm(w, axis=1)), atol=1e-5)


def test_symmetry_and_mirror_equivalents_have_no_difference():
    rng = np.random.default_rng(4)
    a = uniform_eulers(300, rng)
    for sym in ("c4", "d2", "o", "i"):
        g = symk.matrices(sym)
        k = rng.integers(0, len(g), len(a))
        b = projection.matrix_euler(projection.euler_matrix(a) @ g[k])
        mean_row, geo = symk.orientation_differences(a, b, sym)
        assert mean_row.max() < 1e-3 and geo.max() < 1e-3, sym
        mean_row1, _ = symk.orientation_differences(a, b, "c1")
        assert np.median(mean_row1) > 30  # without the group they differ
    # Xmipp's Euler_up_down is the 180° turn about the image's x axis: diag(1, -1, -1)·A
    np.testing.assert_allclose(projection.euler_matrix(symk.mirror_eulers(a)),
                               np.diag([1.0, -1.0, -1.0]) @ projection.euler_matrix(a),
                               atol=1e-9)
    mean_row, geo = symk.orientation_differences(a, symk.mirror_eulers(a), "c1")
    assert mean_row.max() < 1e-3
    m_off, _ = symk.orientation_differences(a, symk.mirror_eulers(a), "c1", check_mirrors=False)
    assert np.median(m_off) > 30


# --------------------------------------------------------------------------- reader

def test_read_angles_relion30_pixels_to_angstrom_and_errors(tmp_path):
    rng = np.random.default_rng(5)
    e = uniform_eulers(6, rng)
    s = rng.normal(0, 3, (6, 2))
    ang = read_angles(write_angles(tmp_path / "b.star", e, s, relion30_pixel=1.25))
    np.testing.assert_allclose(ang.table[["rlnOriginXAngst", "rlnOriginYAngst"]], s, atol=1e-4)
    np.testing.assert_allclose(ang.table[COLS], e, atol=1e-4)
    assert ang.has_origins and len(ang) == 6 and len(ang.sha256) == 64
    no_shift = read_angles(write_angles(tmp_path / "c.star", e))
    assert not no_shift.has_origins and no_shift.notes
    import starfile
    starfile.write({"particles": pd.DataFrame({"rlnImageName": names(2),
                                               "rlnAngleRot": [1.0, 2.0]})},
                   str(tmp_path / "bad.star"), overwrite=True)
    with pytest.raises(InputError, match=r"bad\.star: no rlnAngleTilt, rlnAnglePsi"):
        read_angles(str(tmp_path / "bad.star"))
    (tmp_path / "junk.star").write_text("this is not a star file\n")
    with pytest.raises(InputError, match="junk.star"):
        read_angles(str(tmp_path / "junk.star"))
    with pytest.raises(InputError):
        read_angles(str(tmp_path / "absent.star"))


# --------------------------------------------------------------------------- 4.d

@pytest.mark.slow
def test_4d_noisy_copy_passes_with_the_expected_medians(tmp_path):
    """Second assignment = first + rotation noise σ = 2° and shift noise 1 Å per axis, written
    shuffled and missing 10 particles: matched by name; medians as derived (the mean-row angle
    from a Monte Carlo, the shift from Rayleigh: σ·sqrt(2 ln 2)); no warning."""
    rng = np.random.default_rng(6)
    n = 3000
    a = uniform_eulers(n, rng)
    sa = rng.normal(0, 4, (n, 2))
    rots, _ = small_rotations(n, 2.0, rng)
    b = projection.matrix_euler(rots @ projection.euler_matrix(a))
    sb = sa + rng.normal(0, 1.0, (n, 2))
    order = rng.permutation(n)[: n - 10]
    ang = read_angles(write_angles(tmp_path / "b.star", b, sb, order=order))
    res = base.run_item(angular_comparison, context(particles(a, sa), ang))
    m = res.metrics
    assert res.status == "ok" and not res.warnings, (res.status, res.reason)
    assert m["n_matched"] == n - 10 and m["n_particles"] == n
    mc = rng.normal(0.0, np.radians(2.0), (200000, 3))
    th = np.linalg.norm(mc, axis=1)
    u2 = (mc / th[:, None]) ** 2
    expect = np.degrees(2 * np.arcsin(np.sin(th / 2)[:, None] * np.sqrt(1 - u2))).mean(axis=1)
    np.testing.assert_allclose(m["angle_diff_median_deg"], np.median(expect), rtol=0.04)
    np.testing.assert_allclose(m["geodesic_median_deg"], 1.5382 * 2.0, rtol=0.04)
    np.testing.assert_allclose(m["shift_diff_median_A"], np.sqrt(2 * np.log(2)), rtol=0.05)
    # scaled MAD of the Rayleigh(1) distribution, from a Monte Carlo
    r = np.hypot(*rng.normal(0, 1, (2, 400000)))
    np.testing.assert_allclose(m["shift_diff_mad_A"],
                               1.4826 * np.median(np.abs(r - np.median(r))), rtol=0.08)
    assert m["percent_angle_above"] < 2 and m["percent_shift_above"] < 0.5
    assert len(res.data["angle_diff"]) == n - 10


def test_4d_assignment_rotated_by_the_group_agrees():
    rng = np.random.default_rng(7)
    n = 500
    a = uniform_eulers(n, rng)
    g = symk.matrices("c4")
    b = projection.matrix_euler(projection.euler_matrix(a) @ g[rng.integers(0, 4, n)])
    tb = particles(b, np.zeros((n, 2))).table
    ang = SimpleNamespace(table=tb, has_origins=True, notes=[])
    res = base.run_item(angular_comparison, context(particles(a, np.zeros((n, 2))), ang, "c4"))
    assert res.status == "ok" and res.metrics["angle_diff_median_deg"] < 1e-3
    assert res.metrics["percent_angle_above"] == 0
    res1 = base.run_item(angular_comparison, context(particles(a, np.zeros((n, 2))), ang, "c1"))
    assert res1.status == "warnings" and res1.metrics["percent_angle_above"] > 60


def test_4d_thirty_percent_randomised_warns_for_both():
    rng = np.random.default_rng(8)
    n = 1000
    a = uniform_eulers(n, rng)
    sa = rng.normal(0, 3, (n, 2))
    b, sb = a.copy(), sa.copy()
    bad = rng.permutation(n)[:300]
    b[bad] = uniform_eulers(300, rng)
    sb[bad] = sa[bad] + rng.normal(0, 20, (300, 2))
    ang = SimpleNamespace(table=particles(b, sb).table, has_origins=True, notes=[])
    res = base.run_item(angular_comparison, context(particles(a, sa), ang))
    codes = {w.code for w in res.warnings}
    assert res.status == "warnings" and codes == {"uncertain_angles", "uncertain_shift"}
    assert 28 < res.metrics["percent_angle_above"] <= 30
    assert 25 < res.metrics["percent_shift_above"] <= 30
    # 15 % randomised stays below the 20 % limit
    b2 = a.copy()
    b2[bad[:150]] = uniform_eulers(150, rng)
    ang2 = SimpleNamespace(table=particles(b2, sa).table, has_origins=True, notes=[])
    res2 = base.run_item(angular_comparison, context(particles(a, sa), ang2))
    assert res2.status == "ok" and 13 < res2.metrics["percent_angle_above"] <= 15


def test_4d_requirements_and_too_few_matches():
    rng = np.random.default_rng(9)
    a = uniform_eulers(20, rng)
    res = base.run_item(angular_comparison, context(particles(a), None))
    assert res.status == "not_applicable" and "--angles-b" in res.reason
    t = particles(a).table.copy()
    t["rlnImageName"] = [f"{i + 1:06d}@other.mrcs" for i in range(20)]
    res = base.run_item(angular_comparison, context(
        particles(a), SimpleNamespace(table=t, has_origins=False, notes=[])))
    assert res.status == "failed" and "only 0 of the 20" in res.reason
    assert str(angular_comparison.ANGLE_LIMIT_DEG).rstrip("0").rstrip(".") in \
        angular_comparison.CRITERIA
    # a second assignment without origins: angles compared, shifts not (said in a note)
    res = base.run_item(angular_comparison, context(
        particles(a, np.zeros((20, 2))),
        SimpleNamespace(table=particles(a).table, has_origins=False, notes=[])))
    assert res.status == "ok" and res.metrics["shift_diff_median_A"] is None
    assert res.metrics["percent_shift_above"] is None and "shifts are not compared" in \
        " ".join(res.notes)


# --------------------------------------------------------------------------- 4.h SCF

def test_4h_scf_uniform_side_and_single_view():
    rng = np.random.default_rng(10)
    n = 12000
    fr = int(2 * BOX * PX / scf.RESOLUTION_ANALYSIS_A)
    uni = base.run_item(scf, context(particles(uniform_eulers(n, rng))))
    # uniform: sampling ~ binomial(N, 1/FR): SCF ≈ 1/(1 + FR/N), no zeros
    assert uni.status == "ok" and uni.metrics["fourier_radius"] == fr == 60
    assert uni.metrics["n_used"] == sampling.MAX_PARTICLES
    assert uni.metrics["n_points"] == 5000
    np.testing.assert_allclose(uni.metrics["scf"], 1 / (1 + fr / 10000), atol=0.01)
    assert uni.metrics["fraction_zeros"] == 0 and uni.metrics["scf_star"] == uni.metrics["scf"]
    side = base.run_item(scf, context(particles(side_eulers(n, rng))))
    np.testing.assert_allclose(side.metrics["scf"], 8 / np.pi ** 2, atol=0.015)
    assert side.status == "ok"
    top = base.run_item(scf, context(particles(top_eulers(n, rng))))
    # one view: only the band |z| < 1/(2 FR) is sampled
    np.testing.assert_allclose(top.metrics["fraction_zeros"], 1 - 1 / (2 * fr), atol=0.002)
    assert top.metrics["scf_star"] < 0.01 and top.status == "warnings"
    assert [w.code for w in top.warnings] == ["low_scf_star"]


def test_4h_symmetry_expansion_fills_the_sphere():
    """Directions confined to one asymmetric unit of C4 (rot in [0, 90)) are uniform once
    expanded by C4 (SCF ≈ 1) and not without the group."""
    rng = np.random.default_rng(11)
    e = uniform_eulers(3000, rng)
    e[:, 0] = rng.uniform(0, 90, len(e))
    c4 = base.run_item(scf, context(particles(e), symmetry="c4"))
    c1 = base.run_item(scf, context(particles(e), symmetry="c1"))
    assert c4.metrics["n_directions"] == 4 * 3000
    assert c4.metrics["scf"] > 0.97 and c1.metrics["scf"] < c4.metrics["scf"] - 0.05


# --------------------------------------------------------------------------- 4.g cryoEF

def test_4g_uniform_side_and_single_view():
    """Uniform: every direction at R, efficiency 1 (the model's calibration). Side views:
    anisotropic, lower efficiency. One top view: the worst direction (z) is resolved only
    while a(r) = 1/(2Dr) + sin(δ/2) ≥ 1, i.e. to 2D(1 − sin(δ/2)) Å, and it warns."""
    rng = np.random.default_rng(12)
    n, r = 8000, 4.0
    uni = base.run_item(angular_efficiency, context(particles(uniform_eulers(n, rng)),
                                                    resolution=r))
    m = uni.metrics
    assert uni.status == "ok", uni.reason
    np.testing.assert_allclose(m["efficiency"], 1.0, atol=0.02)
    np.testing.assert_allclose([m["directional_resolution_mean_A"],
                                m["directional_resolution_min_A"],
                                m["directional_resolution_max_A"]], r, rtol=0.03)
    side = base.run_item(angular_efficiency, context(particles(side_eulers(n, rng)),
                                                     resolution=r))
    ms = side.metrics
    assert ms["directional_resolution_max_A"] > 1.3 * ms["directional_resolution_min_A"]
    assert 0.5 < ms["efficiency"] < 0.92
    top = base.run_item(angular_efficiency, context(particles(top_eulers(n, rng)),
                                                    resolution=r))
    mt = top.metrics
    d = angular_efficiency.DIAMETER_FRACTION * BOX * PX
    worst = 2 * d * (1 - np.sin(np.radians(angular_efficiency.ACCURACY_DEG) / 2))
    np.testing.assert_allclose(mt["directional_resolution_max_A"], worst, rtol=0.02)
    assert mt["efficiency"] < 0.05 < ms["efficiency"] < m["efficiency"]
    assert top.status == "warnings" and [w.code for w in top.warnings] == \
        ["resolution_vs_directional"]
    assert "0.8 times the average directional resolution" in angular_efficiency.CRITERIA


def test_4g_symmetry_expansion():
    """Directions in one asymmetric unit of D2 (rot in [0, 180), tilt ≤ 90°) are uniform once
    expanded by D2: efficiency 1; as C1 they leave half of the directions worse."""
    rng = np.random.default_rng(16)
    e = uniform_eulers(3000, rng)
    e[:, 0] = rng.uniform(0, 180, len(e))
    e[:, 1] = np.degrees(np.arccos(rng.uniform(0, 1, len(e))))
    d2 = base.run_item(angular_efficiency, context(particles(e), symmetry="d2", resolution=4.0))
    c1 = base.run_item(angular_efficiency, context(particles(e), symmetry="c1", resolution=4.0))
    np.testing.assert_allclose(d2.metrics["efficiency"], 1.0, atol=0.02)
    np.testing.assert_allclose(d2.metrics["directional_resolution_max_A"], 4.0, rtol=0.03)
    assert c1.metrics["directional_resolution_max_A"] > 4.2


def test_4g_needs_a_resolution_inside_the_particles_band():
    rng = np.random.default_rng(13)
    p = particles(uniform_eulers(100, rng))
    res = base.run_item(angular_efficiency, context(p, resolution=None))
    assert res.status == "not_applicable" and "--resolution" in res.reason
    res = base.run_item(angular_efficiency, context(p, resolution=2.0))
    assert res.status == "failed" and "Nyquist" in res.reason


# --------------------------------------------------------------------------- figures

def test_level4_figures_draw():
    from cryovalid.figures import level4
    from cryovalid import registry

    rng = np.random.default_rng(14)
    a = uniform_eulers(400, rng)
    ang = SimpleNamespace(table=particles(a, np.zeros((400, 2))).table, has_origins=True,
                          notes=[])
    ctx = context(particles(a, np.zeros((400, 2))), ang, resolution=4.0)
    for mod in (angular_comparison, angular_efficiency, scf):
        res = base.run_item(mod, ctx)
        drawing = registry.draws()[mod.ID](res, ctx)
        assert drawing.figures and all(im.png[:4] == b"\x89PNG" for im in drawing.artefacts)
    assert set(level4.DRAWS) == {"4.d", "4.g", "4.h"}


# --------------------------------------------------------------------------- end to end

def _cli_inputs(tmp_path, n, rng, box=8):
    import starfile

    from simulate import write_mrc
    from simulate_particles import write_stack

    vol = np.zeros((32, 32, 32), np.float32)
    vol[12:20, 10:22, 14:18] = 1.0
    m = write_mrc(tmp_path / "map.mrc", vol, PX)
    os.makedirs(tmp_path / "Particles")
    write_stack(tmp_path / "Particles" / "stack.mrcs",
                rng.normal(size=(n, box, box)).astype(np.float32), PX)
    a = uniform_eulers(n, rng)
    sa = rng.normal(0, 2, (n, 2))
    t = pd.DataFrame({"rlnImageName": names(n)})
    for c, v in zip(COLS, a.T):
        t[c] = v
    t["rlnOriginXAngst"], t["rlnOriginYAngst"] = sa.T
    t["rlnImagePixelSize"] = PX
    starfile.write({"particles": t}, str(tmp_path / "particles.star"), overwrite=True)
    return m, str(tmp_path / "particles.star"), a, sa


def test_cli_bad_second_assignment_is_one_line_exit_2(tmp_path, capsys):
    from cryovalid import cli

    m, star, a, _ = _cli_inputs(tmp_path, 12, np.random.default_rng(17))
    (tmp_path / "b.star").write_text("data_\nloop_\n_rlnImageName #1\n000001@x.mrcs\n")
    code = cli.main(["report", m, "--particles", star, "--angles-b", str(tmp_path / "b.star"),
                     "--resolution", "6", "--threshold", "0.5", "--levels", "4", "--out",
                     str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "b.star" in err and "rlnAngleRot" in err


@pytest.mark.slow
def test_cli_level4_report(tmp_path, capsys):
    """cryovalid report MAP --particles STAR --angles-b STAR2 --resolution R --levels 4: the
    three items run and agree with the known answers (noisy copy passes)."""
    import json

    from cryovalid import cli

    rng = np.random.default_rng(15)
    n = 600
    m, star, a, sa = _cli_inputs(tmp_path, n, rng, box=32)
    rots, _ = small_rotations(n, 1.0, rng)
    b = projection.matrix_euler(rots @ projection.euler_matrix(a))
    write_angles(tmp_path / "b.star", b, sa + rng.normal(0, 0.5, (n, 2)))
    out = tmp_path / "out"
    code = cli.main(["report", m, "--particles", star,
                     "--angles-b", str(tmp_path / "b.star"), "--resolution", "6",
                     "--threshold", "0.5", "--levels", "4", "--out", str(out),
                     "--formats", "json,html", "--quiet"])
    assert code == 0, capsys.readouterr().err
    rep = json.loads((out / "report.json").read_text())
    items = {i["id"]: i for i in rep["items"]}
    assert items["4.d"]["status"] == "ok" and items["4.d"]["metrics"]["n_matched"] == n
    assert items["4.d"]["metrics"]["geodesic_median_deg"] < 2.5
    assert items["4.h"]["status"] == "ok" and items["4.h"]["metrics"]["scf"] > 0.9
    assert items["4.g"]["status"] == "ok" and items["4.g"]["metrics"]["efficiency"] > 0.95
    assert all(len(items[k]["figures"]) >= 1 for k in ("4.d", "4.g", "4.h"))
    assert "4.h" in (out / "report.html").read_text()
