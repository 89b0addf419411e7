"""O.c tilt-pair validation: the reader (io/tiltpairs.py), the geometry of the relative rotation,
the item's known answers and its figures.

Known answers (the 48³ αβ-dimer map of 5ME2 at 2.5 Å, 6 Å resolution, tests/simulate_particles.py;
the untilted image of a pair is the projection at a random orientation A_u, the tilted one the
projection at R_tilt·A_u with R_tilt a rotation by 30° about the in-plane axis at 20° from the
image x axis; each shifted by up to ±2 px and with white noise at SNR 1 within the circle):
* 40 pairs: mean tilt 30 ± 3°, axis 20 ± 5°, every pair within 10° of 30°, axis in the plane;
* the same pairs declared with a nominal 60° (on a non-cubic crop of the map) warn;
* pairs of unrelated images (independent random orientations): the measured tilts follow the
  angle distribution of a random rotation (density (1 − cos θ)/π on [0, π], mean
  π/2 + 2/π = 126.5°, sd 37°), so the mean is far from 30°, almost no pair is within 10° of it,
  the axes are scattered (uniform on the sphere: median angle out of the image plane 30°), and
  the item warns.
* the dimer in an 80³ box is matched in a 40-px box cropped about the particle: 30 ± 3°.
(At SNR 0.3, 40 pairs: 36 within 10° of 30°, 3 near 160-175° (one image of the pair matched
at the mirror-related view, 180° away); mean 38.9° (passes), median 30.7°: the reference's
criterion on the mean is sensitive to such pairs. Not a test: measured once.)
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from simulate import simulate, write_mrc
from simulate_particles import random_eulers, reprojection_atoms, write_relion, write_stack
from cryovalid.context import Context
from cryovalid.errors import InputError
from cryovalid.io.maps import Map
from cryovalid.io.tiltpairs import TiltPairs, read_tilt_pairs
from cryovalid.items import tiltpairs as item
from cryovalid.items.base import run_item
from cryovalid.kernels import align2d, projection

TS, BOX = 2.5, 48
TILT, AXIS = 30.0, 20.0


def axis_rotation(axis, angle_deg):
    """Rotation by ``angle_deg`` about the unit vector ``axis`` (right hand), Rodrigues."""
    u = np.asarray(axis, dtype=np.float64)
    u = u / np.linalg.norm(u)
    k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    a = np.radians(angle_deg)
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)


def stage_tilt(tilt=TILT, axis=AXIS):
    a = np.radians(axis)
    return axis_rotation((np.cos(a), np.sin(a), 0.0), tilt)


def tilt_pair_images(vol, n, tilt=TILT, axis=AXIS, snr=1.0, seed=0, unrelated=False):
    """(untilted, tilted, e_u, e_t): projections of ``vol`` at random A_u and at
    R_tilt·A_u (or at independent random orientations when ``unrelated``), shifted by up to
    ±2 px, with white noise of variance var(signal in the circle)/snr."""
    rng = np.random.default_rng(seed)
    e_u = random_eulers(n, rng)
    if unrelated:
        e_t = random_eulers(n, rng)
    else:
        e_t = projection.matrix_euler(stage_tilt(tilt, axis) @ projection.euler_matrix(e_u))
    pr = projection.Projector(vol)
    mask = align2d.circular_mask(pr.box)
    out = []
    for e in (e_u, e_t):
        clean = align2d.shift(pr.project(e), rng.uniform(-2, 2, (n, 2)))
        sd = np.sqrt(clean[:, mask].var(axis=1).mean() / snr)
        out.append((clean + rng.normal(0, sd, clean.shape)).astype(np.float32))
    return out[0], out[1], e_u, e_t


class ArrayPairs:
    """Tilt pairs held in memory (the reader's interface: n, pixel_size, tilt_angle, notes,
    images)."""

    def __init__(self, u, t, pixel, tilt):
        self.u, self.t = u, t
        self.n, self.box = len(u), u.shape[-1]
        self.pixel_size, self.tilt_angle, self.notes = pixel, tilt, []

    def images(self, which=slice(None)):
        return self.u[which], self.t[which]


@pytest.fixture(scope="module")
def dimer():
    vol, _, _ = simulate(voxel_size=TS, resolution=6.0, shape=(BOX,) * 3,
                         atoms=reprojection_atoms())
    return vol


@pytest.fixture(scope="module")
def pairs(dimer):
    return tilt_pair_images(dimer, 40, seed=1)


def context(vol, u, t, tilt=TILT, symmetry="c1"):
    ctx = Context.of(map=Map(data=vol, voxel_size=TS, path="sim.mrc"),
                     threshold=float(np.quantile(vol, 0.97)))
    ctx.tilt_pairs = ArrayPairs(u, t, TS, tilt)
    ctx.symmetry = symmetry
    return ctx


# ---- geometry -------------------------------------------------------------------------------
def test_relative_rotation_of_exact_orientations():
    """R_t = R_tilt·R_u exactly: tilt 30°, axis 20°, in the plane; the opposite tilt is the
    same angle about the opposite axis (200°); a pure in-plane turn has its axis along z."""
    rng = np.random.default_rng(5)
    e_u = random_eulers(50, rng)
    a_u = projection.euler_matrix(e_u)
    rel = item.relative_rotations(e_u, projection.matrix_euler(stage_tilt() @ a_u))
    assert np.allclose(rel["tilt"], TILT, atol=1e-6)
    assert np.allclose(rel["axis"], AXIS, atol=1e-6)
    assert np.allclose(rel["out_of_plane"], 0.0, atol=1e-6)
    neg = item.relative_rotations(e_u, projection.matrix_euler(stage_tilt(-TILT) @ a_u))
    assert np.allclose(neg["tilt"], TILT, atol=1e-6) and np.allclose(neg["axis"], 200.0,
                                                                        atol=1e-6)
    inplane = item.relative_rotations(e_u, projection.matrix_euler(
        axis_rotation((0, 0, 1), 45.0) @ a_u))
    assert np.allclose(inplane["tilt"], 45.0, atol=1e-6)
    assert np.allclose(inplane["out_of_plane"], 90.0, atol=1e-4)
    # another stage tilt and axis
    rel2 = item.relative_rotations(e_u, projection.matrix_euler(stage_tilt(55.0, 300.0) @ a_u))
    assert np.allclose(rel2["tilt"], 55.0, atol=1e-6) and np.allclose(rel2["axis"], 300.0,
                                                                        atol=1e-6)


@pytest.mark.parametrize("sym", ["c2", "d3", "o", "i"])
def test_relative_rotation_takes_the_smallest_symmetry_equivalent(sym):
    """The tilted orientation found at a symmetry-equivalent A_t·S: the measured tilt is still
    30°; without the group (C1) it would be the angle of R_tilt·A_u·S·A_uᵀ, larger."""
    mats = projection.symmetry_matrices(sym)
    rng = np.random.default_rng(6)
    e_u = random_eulers(30, rng)
    a_u = projection.euler_matrix(e_u)
    s = mats[rng.integers(1, len(mats), 30)]  # never the identity
    e_t = projection.matrix_euler(stage_tilt() @ a_u @ s)
    rel = item.relative_rotations(e_u, e_t, sym)
    assert np.allclose(rel["tilt"], TILT, atol=1e-5) and np.allclose(rel["axis"], AXIS,
                                                                       atol=1e-4)
    assert (item.relative_rotations(e_u, e_t, "c1")["tilt"] > TILT + 5).all()


def test_matching_box_is_a_little_larger_than_the_particle():
    """A ball of radius 10 voxels at the centre of a 64³ box: radius 10 + 3 (margin), box
    ceil(2·1.15·13) = 30 → 30 px; off-centre by 5 voxels: radius 18, box 42; a ball filling
    the box: the map's edge."""
    z, y, x = np.mgrid[:64, :64, :64] - 32
    ball = (x * x + y * y + z * z) <= 100
    assert item.particle_radius_px(ball) == pytest.approx(13.0)
    assert item.matching_box(ball) == 30
    assert item.matching_box(np.roll(ball, 5, axis=2)) == 42
    assert item.matching_box(np.ones((40, 64, 50), bool)) == 64
    assert item.matching_box(np.zeros((40, 64, 50), bool)) == 64
    assert item.matching_box((x == 0) & (y == 0) & (z == 0)) == item.MIN_MATCHING_BOX  # 7 → 24


# ---- the reader -----------------------------------------------------------------------------
def _stacks(tmp_path, n=4, box=32, pixel=2.0, n_t=None, box_t=None, pixel_t=None):
    rng = np.random.default_rng(0)
    u = write_stack(tmp_path / "u.mrcs", rng.normal(size=(n, box, box)), pixel)
    t = write_stack(tmp_path / "t.mrcs", rng.normal(size=(n_t or n, box_t or box,
                                                          box_t or box)), pixel_t or pixel)
    return u, t


def test_reader_stacks_paired_by_index(tmp_path):
    u, t = _stacks(tmp_path)
    tp = read_tilt_pairs(u, t, tilt_angle=-40.0)
    assert isinstance(tp, TiltPairs)
    assert (tp.n, tp.box, tp.pixel_size, tp.tilt_angle) == (4, 32, 2.0, 40.0)
    assert tp.path.endswith("u.mrcs") and tp.path_tilted.endswith("t.mrcs")
    assert len(tp.sha256) == 64 and tp.sha256 != tp.sha256_tilted
    assert any("magnitude" in note for note in tp.notes)
    a, b = tp.images([1, 3])
    import mrcfile
    with mrcfile.open(t) as m:
        assert np.array_equal(b, m.data[[1, 3]])
    assert a.shape == (2, 32, 32) and a.dtype == np.float32
    assert read_tilt_pairs(u, t, tilt_angle=30, pixel_size=1.5).pixel_size == 1.5


def test_reader_star_files_paired_by_row(tmp_path):
    rng = np.random.default_rng(1)
    sims = []
    for name in ("untilted", "tilted"):
        sim = {"particles": rng.normal(size=(3, 32, 32)).astype(np.float32),
               "eulers": np.zeros((3, 3)), "shifts": np.zeros((3, 2)), "defocus_um": None,
               "class_id": np.zeros(3, int), "pixel": 1.7}
        sims.append(write_relion(tmp_path / name, sim)[0])
    tp = read_tilt_pairs(*sims, tilt_angle=45)
    assert (tp.n, tp.box, tp.pixel_size) == (3, 32, 1.7)
    assert tp.path.endswith("particles.star")


@pytest.mark.parametrize("kw, tilt, words", [
    ({}, None, "give --tilt-angle"),
    ({}, 0.0, "--tilt-angle"),
    ({}, 120.0, "at most 90"),
    ({"n_t": 5}, 30.0, "must be as many"),
    ({"box_t": 40}, 30.0, "same box"),
    ({"pixel_t": 2.5}, 30.0, "--tilt-pixel"),
])
def test_reader_refuses_bad_pairs_in_one_line(tmp_path, kw, tilt, words):
    u, t = _stacks(tmp_path, **kw)
    with pytest.raises(InputError) as err:
        read_tilt_pairs(u, t, tilt_angle=tilt)
    msg = str(err.value)
    assert words in msg and "\n" not in msg and ".mrcs" in msg


def test_reader_missing_file_names_it(tmp_path):
    u, _ = _stacks(tmp_path)
    with pytest.raises(InputError) as err:
        read_tilt_pairs(u, str(tmp_path / "nope.mrcs"), tilt_angle=30)
    assert "nope.mrcs" in str(err.value)


# ---- the item ---------------------------------------------------------------------------------
def test_criteria_text_uses_the_constant():
    assert f"{item.MAX_DIFFERENCE_DEG:g} degrees" in item.CRITERIA
    assert "{limit:g} degrees" in item.WARN_DIFF


def test_constant_image_cannot_be_measured(dimer, pairs):
    u, t = pairs[0][:3].copy(), pairs[1][:3].copy()
    t[1] = 0.0
    res = run_item(item, context(dimer, u, t))
    assert res.status == "failed" and "pair 2 " in res.reason


@pytest.mark.slow
def test_thirty_degree_pairs_measure_thirty(dimer, pairs):
    u, t, _, _ = pairs
    res = run_item(item, context(dimer, u, t))
    m = res.metrics
    assert not res.warnings and not res.summary, res.warnings
    assert m["n_pairs"] == 40 and m["tilt_angle_nominal_deg"] == TILT
    assert abs(m["mean_tilt_deg"] - TILT) < 3.0, m
    assert abs(m["median_tilt_deg"] - TILT) < 3.0, m
    assert m["tilt_difference_deg"] == pytest.approx(abs(m["mean_tilt_deg"] - TILT), abs=1e-3)
    assert m["fraction_within_10deg"] >= 0.95, m
    assert abs(m["mean_tilt_axis_deg"] - AXIS) < 5.0 and m["tilt_axis_concentration"] > 0.95
    assert m["median_axis_out_of_plane_deg"] < 5.0, m
    assert m["cc_untilted_mean"] > 0.6 and m["cc_tilted_mean"] > 0.6
    assert len(res.tables[0].rows) == item.TABLE_ROWS
    assert res.data["tilt"].shape == (40,)


@pytest.mark.slow
def test_declared_sixty_degrees_warns_on_a_non_cubic_map(dimer, pairs):
    """The same pairs (12 of them) declared as tilted by 60°, against the map cropped to
    40 × 48 × 44 voxels (the pairs are projections of the full box: the crop removes only
    empty voxels, and the item works on the 48-px square grid)."""
    u, t = pairs[0][:12], pairs[1][:12]
    crop = dimer[4:44, :, 2:46]
    assert crop.shape == (40, 48, 44)
    res = run_item(item, context(np.ascontiguousarray(crop), u, t, tilt=60.0))
    m = res.metrics
    assert abs(m["mean_tilt_deg"] - TILT) < 3.0, m
    assert abs(m["tilt_difference_deg"] - 30.0) < 3.0
    assert [w.code for w in res.warnings] == ["tilt_difference"]
    assert "60.0" in res.warnings[0] and f"{item.MAX_DIFFERENCE_DEG:g} degrees" in \
        res.warnings[0]
    assert res.summary and "tilt pair" in res.summary


@pytest.mark.slow
def test_mirrored_map_gives_the_same_tilt_about_the_opposite_axis(dimer, pairs):
    """The mirror image of the map (z reversed about voxel 24): the same 12 pairs measure 30°
    again, about the axis at 20° + 180° (module docstring of the item: N·R·N)."""
    mirror = np.ascontiguousarray(np.roll(dimer[::-1], 1, axis=0))
    u, t = pairs[0][:12], pairs[1][:12]
    m = run_item(item, context(mirror, u, t)).metrics
    assert abs(m["mean_tilt_deg"] - TILT) < 3.0 and m["fraction_within_10deg"] == 1.0, m
    assert abs(m["mean_tilt_axis_deg"] - (AXIS + 180.0)) < 5.0, m


@pytest.mark.slow
def test_a_box_much_larger_than_the_particle_is_cropped_for_matching():
    """The dimer in an 80³ box (200 Å; the particle is about 60 Å across) with the threshold
    at its volume: the matching box is cropped to 40 px, and 30 pairs measure 30 ± 3°."""
    vol, _, _ = simulate(voxel_size=TS, resolution=6.0, shape=(80,) * 3,
                         atoms=reprojection_atoms())
    u, t, _, _ = tilt_pair_images(vol, 30, seed=3)
    ctx = Context.of(map=Map(data=vol, voxel_size=TS, path="sim.mrc"),
                     threshold=float(np.quantile(vol, 1 - 3300 / 80 ** 3)))
    ctx.tilt_pairs = ArrayPairs(u, t, TS, TILT)
    ctx.symmetry = "c1"
    res = run_item(item, ctx)
    m = res.metrics
    assert m["matching_box_px"] < 50, m
    assert abs(m["median_tilt_deg"] - TILT) < 3.0 and m["fraction_within_10deg"] >= 0.9, m
    assert abs(m["mean_tilt_deg"] - TILT) < 3.0 and not res.warnings, m


@pytest.mark.slow
def test_unrelated_pairs_give_random_rotation_angles(dimer):
    u, t, _, _ = tilt_pair_images(dimer, 30, seed=2, unrelated=True)
    res = run_item(item, context(dimer, u, t))
    m = res.metrics
    haar_mean = np.degrees(np.pi / 2 + 2 / np.pi)  # 126.5°, sd 37°: 30 pairs, se 6.8°
    assert abs(m["mean_tilt_deg"] - haar_mean) < 25.0, m
    assert m["fraction_within_10deg"] < 0.15, m  # 1.5 % expected
    assert m["tilt_axis_concentration"] < 0.5, m  # ~0.18 expected for random axes
    # a random axis is uniform on the sphere: median angle out of the plane asin(0.5) = 30°
    assert abs(m["median_axis_out_of_plane_deg"] - 30.0) < 15.0, m  # sd of the median ~6°
    assert [w.code for w in res.warnings] == ["tilt_difference"]


# ---- figures --------------------------------------------------------------------------------
def test_figures_polar_and_tilt_histogram(monkeypatch):
    from figure_checks import FigureCapture, png_checks

    from cryovalid.figures import tiltpairs as fig
    from cryovalid.results import ItemResult

    cap = FigureCapture(monkeypatch, fig)
    rng = np.random.default_rng(0)
    res = ItemResult(id="O.c", title="", section="")
    res.data.update({"tilt": rng.normal(30, 2, 50), "axis": rng.normal(20, 3, 50) % 360,
                     "nominal": 30.0, "max_difference": 15.0})
    d = fig.draw_tiltpairs(res, None)
    png_checks(d, ["tiltpair_polar.png", "tiltpair_histogram.png"])
    assert "tilt" in d.figures[1].caption.lower()
    cap.check_print_sizes()
    assert fig.draw_tiltpairs(ItemResult(id="O.c", title="", section=""), None).figures == []


# ---- the command line -------------------------------------------------------------------------
@pytest.mark.slow
def test_command_line_report_with_tilt_pairs(tmp_path, dimer, pairs, capsys):
    from cryovalid import cli

    m = write_mrc(tmp_path / "map.mrc", dimer, TS)
    u = write_stack(tmp_path / "U.mrcs", pairs[0][:10], TS)
    t = write_stack(tmp_path / "T.mrcs", pairs[1][:10], TS)
    thr = f"{float(np.quantile(dimer, 0.97)):.6g}"
    out = tmp_path / "out"
    code = cli.main(["report", m, "--tilt-pairs", u, t, "--tilt-angle", "30", "--threshold",
                     thr, "--levels", "O", "--out", str(out), "--formats", "json,html",
                     "--quiet"])
    assert code == 0, capsys.readouterr().err
    rep = json.loads((out / "report.json").read_text())
    oc = next(i for i in rep["items"] if i["id"] == "O.c")
    assert oc["status"] == "ok", oc
    assert oc["metrics"]["n_pairs"] == 10 and abs(oc["metrics"]["mean_tilt_deg"] - 30) < 3
    assert len(oc["figures"]) == 2 and all((out / f["path"]).is_file() for f in oc["figures"])
    assert "O.c" in (out / "report.html").read_text()
    capsys.readouterr()
    code = cli.main(["report", m, "--tilt-pairs", u, t, "--threshold", thr, "--levels", "O",
                     "--out", str(tmp_path / "o2"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--tilt-angle" in err


def test_cli_accepts_a_negative_tilt_angle():
    """A stage tilted the other way is given as a negative angle: the reader takes its
    magnitude, so the command line must let it through (it once refused it)."""
    from cryovalid.cli import build_parser

    args = build_parser().parse_args(["report", "m.mrc", "--out", "o", "--tilt-pairs",
                                      "u.mrcs", "t.mrcs", "--tilt-angle", "-40"])
    assert args.tilt_angle == -40.0
