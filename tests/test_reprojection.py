"""Level 2, item 2.a (reprojection consistency): the class-stack reader, the resampling chain,
the projector's Euler convention, orientation sampling, 2-D alignment, and known answers on
class averages simulated from the 5ME2 haemoglobin model (one αβ dimer, no internal symmetry;
tests/simulate_particles.py).

Known answers of the item (48³ map at 2.5 Å, 6 Å resolution; 20 classes of 40 particles at
SNR 0.1, angles jittered by 1°, shifts by 0.5 px):
* the right map: a class of 40 particles has SNR 4 within the box's circle (the simulator's
  definition), so its expected correlation with the clean projection within the particle
  window's circle is √(S/(1+S)) with S = 4 × the ratio of the signal variance in the two
  circles (0.918); every class within 5° of its true orientation;
* the same molecule and classes in a box 3 × larger: the same window, correlations and
  orientations;
* the mirrored map gives the same correlations (a projection cannot tell the hand: the
  projection of the mirror image is the mirror image of a projection from the opposite side);
* maps of other shapes (a torus, a rod) fail the criterion;
* the same classes at 2.0 Å / 60 px (another pixel size, resampled by the reader's chain)
  give the same orientations and correlations.
"""
from __future__ import annotations

import gzip
import os

import mrcfile
import numpy as np
import pytest

from simulate import simulate
from simulate_particles import (reprojection_atoms, reprojection_wrong_shape,
                                simulate_particles, write_relion, write_stack)
from cryovalid.context import Context
from cryovalid.data import ClassesData
from cryovalid.errors import InputError
from cryovalid.io.maps import Map
from cryovalid.io.stacks import Stack, read_classes
from cryovalid.items import reprojection as item
from cryovalid.kernels import align2d, projection
from cryovalid.kernels.resample2d import fourier_resize, to_grid, window

TS = 2.5
BOX = 48
N_CLASSES, PER_CLASS, SNR = 20, 40, 0.1


# ---- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def atoms():
    return reprojection_atoms()


@pytest.fixture(scope="module")
def dimer(atoms):
    vol, _, _ = simulate(voxel_size=TS, resolution=6.0, shape=(BOX,) * 3, atoms=atoms)
    return vol


@pytest.fixture(scope="module")
def sim(dimer):
    return simulate_particles(dimer, TS, n_classes=N_CLASSES, per_class=PER_CLASS, snr=SNR,
                              seed=1)


def run_item(vol, classes, pixel=TS, symmetry="c1"):
    ctx = Context.of(map=Map(data=vol, voxel_size=TS, path="sim.mrc"),
                     threshold=float(np.quantile(vol, 0.97)))
    ctx.classes = ClassesData(Stack(np.asarray(classes, dtype=np.float32), pixel), ctx.map)
    ctx.symmetry = symmetry
    return item.run(ctx), ctx


@pytest.fixture(scope="module")
def right(dimer, sim):
    return run_item(dimer, sim["classes"])


# ---- projector and Euler convention ---------------------------------------------------------
def test_projection_convention_matches_real_space_sums(dimer):
    """(0, 0, 0) is the sum along z; (0, 90, 0) the sum along x with image x' = −z; a change of
    psi turns the image as align2d.rotate does."""
    pr = projection.Projector(dimer)
    p = pr.project([[0, 0, 0], [0, 90, 0], [30, 40, 0], [30, 40, 25]])
    mask = np.ones((BOX, BOX), bool)
    assert align2d.pearson(p[0], dimer.sum(axis=0), mask) > 0.9999
    side = dimer.sum(axis=2)  # (z, y)
    expect = np.zeros((BOX, BOX), np.float32)
    j = np.arange(1, BOX)  # x' index j ↔ z = b//2 − (j − b//2)
    expect[:, j] = side[BOX - j, :].T
    assert align2d.pearson(p[1], expect, mask) > 0.9999
    disc = align2d.circular_mask(BOX)
    assert align2d.pearson(align2d.rotate(p[2:3], 25)[0], p[3], disc) > 0.995
    assert align2d.pearson(align2d.rotate(p[2:3], -25)[0], p[3], disc) < 0.9


def test_euler_matrix_round_trip():
    rng = np.random.default_rng(0)
    e = np.column_stack([rng.uniform(0, 360, 50), rng.uniform(0, 180, 50),
                         rng.uniform(0, 360, 50)])
    e = np.vstack([e, [[10, 0, 20], [10, 180, 20]]])  # the poles too
    back = projection.matrix_euler(projection.euler_matrix(e))
    assert np.abs(projection.euler_matrix(back) - projection.euler_matrix(e)).max() < 1e-9
    assert projection.angular_distance(e, back).max() < 1e-4


@pytest.mark.parametrize("sym", ["c1", "c3", "d2"])
def test_orientations_cover_the_asymmetric_unit(sym):
    """Every direction, moved into the asymmetric unit by the group, lies within 4° of a
    sampled one (5° sampling), and the sample shrinks by the group's order."""
    eul, note = projection.orientations(sym, 5.0)
    assert note == ""
    order = len(projection.symmetry_matrices(sym))
    assert abs(len(eul) * order / 1652 - 1) < 0.1
    rng = np.random.default_rng(1)
    v = rng.normal(size=(2000, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    dirs = projection.euler_matrix(eul)[:, 2, :]
    best = np.full(len(v), -1.0)
    for s in projection.symmetry_matrices(sym):  # directions equivalent under the group
        best = np.maximum(best, ((v @ s) @ dirs.T).max(axis=1))
    assert np.degrees(np.arccos(np.clip(best, -1, 1))).max() < 4.0


def test_orientations_of_t_o_i_fall_back_to_c1():
    eul, note = projection.orientations("o")
    assert len(eul) == len(projection.orientations("c1")[0]) and "C1" in note


# ---- 2-D kernels ----------------------------------------------------------------------------
def test_alignment_recovers_exact_projections(dimer):
    """Noise-free projections at off-grid angles and sub-pixel shifts: within 1° and 0.25 px."""
    pr = projection.Projector(dimer)
    truth = np.array([[33.0, 41.0, 25.0], [100.0, 122.0, 300.0], [207.0, 12.0, 170.0]])
    t = np.array([[2.3, -1.2], [0.0, 3.4], [-4.1, 1.0]])
    imgs = align2d.shift(pr.project(truth), t)
    eul, _ = projection.orientations("c1")
    coarse = align2d.coarse_search(imgs, pr.project(eul, max_freq=0.25))
    pick = coarse.candidates(projection.neighbours(eul, 7.5), 5)
    cand = eul[pick].copy()
    cand[..., 2] = np.take_along_axis(coarse.psi, pick, axis=1)
    al = align2d.refine(imgs, pr.project, cand,
                        np.take_along_axis(coarse.shift, pick[..., None], axis=1))
    assert projection.angular_distance(al.eulers, truth).max() < 1.0
    assert np.abs(al.shift - t).max() < 0.25
    assert al.cc.min() > 0.999


def test_gray_residual_and_column_covariance():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(3, 16, 16)).astype(np.float32)
    mask = align2d.circular_mask(16)
    res, (a, b) = align2d.gray_residual(2.0 * ref + 3.0, ref, mask)
    assert np.allclose(a, 0.5, atol=1e-5) and np.allclose(b, -1.5, atol=1e-4)
    assert np.abs(res).max() < 1e-4
    cov = align2d.column_covariance(ref)
    assert cov.shape == (3, 16, 16)
    assert np.allclose(cov[1], np.cov(ref[1], rowvar=False), atol=1e-5)


def _blob(box, pixel, centre_A=(6.0, -4.0), sigma_A=8.0):
    y, x = (np.mgrid[:box, :box] - box // 2) * pixel
    return np.exp(-((x - centre_A[0]) ** 2 + (y - centre_A[1]) ** 2) / (2 * sigma_A ** 2))


def test_resampling_chain_keeps_position_and_values():
    """A Gaussian blob at 2 Å in a 60-px box → 2.5 Å, 48 px: the same blob (same place in Å,
    same peak value) as drawn directly on that grid; and a 40-px box at 2 Å (80 Å) is padded
    to the 120 Å of the target box."""
    src = _blob(60, 2.0)[None].astype(np.float32)
    out = to_grid(src, 2.0, 48, 2.5)[0]
    want = _blob(48, 2.5)
    assert np.abs(out - want).max() < 2e-3
    small = to_grid(_blob(40, 2.0)[None].astype(np.float32), 2.0, 48, 2.5)[0]
    assert np.abs(small - want).max() < 5e-3
    assert np.array_equal(to_grid(src, 2.0, 60, 2.0), src)
    assert window(src, 64).shape == (1, 64, 64) and np.array_equal(window(window(src, 64), 60), src)
    assert abs(fourier_resize(src, 48).mean() - src.mean()) < 1e-6


# ---- the reader -----------------------------------------------------------------------------
def _stack(tmp_path, data, pixel=2.5, name="c.mrcs"):
    return write_stack(tmp_path / name, data, pixel)


def test_read_classes_reads_a_stack_and_a_gzipped_one(tmp_path, sim):
    p = _stack(tmp_path, sim["classes"])
    s = read_classes(p)
    assert s.data.shape == (N_CLASSES, BOX, BOX) and s.pixel_size == pytest.approx(2.5)
    assert np.array_equal(s.data, sim["classes"]) and len(s.sha256) == 64 and not s.notes
    gz = tmp_path / "c.mrcs.gz"
    with open(p, "rb") as f, gzip.open(gz, "wb") as g:
        g.write(f.read())
    assert np.array_equal(read_classes(str(gz)).data, sim["classes"])
    one = read_classes(_stack(tmp_path, sim["classes"][:1], name="one.mrcs"))
    assert one.data.shape == (1, BOX, BOX)


def test_read_classes_pixel_size_rules(tmp_path, sim):
    p = _stack(tmp_path, sim["classes"][:2])
    s = read_classes(p, pixel_size=2.6)
    assert s.pixel_size == 2.6 and "header says 2.5" in s.notes[0]
    assert not read_classes(p, pixel_size=2.51).notes  # within 1 %
    p0 = _stack(tmp_path, sim["classes"][:2], pixel=0.0, name="p0.mrcs")
    with pytest.raises(InputError, match="--classes-pixel"):
        read_classes(p0)
    assert read_classes(p0, pixel_size=2.5).pixel_size == 2.5
    p1 = _stack(tmp_path, sim["classes"][:2], pixel=1.0, name="p1.mrcs")
    assert "1 Å" in read_classes(p1).notes[0]


def _one_line(exc):
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_read_classes_refuses_bad_stacks(tmp_path, sim):
    imgs = sim["classes"][:3].copy()
    with pytest.raises(InputError) as e:
        read_classes(str(tmp_path / "missing.mrcs"))
    assert "no such file" in _one_line(e)
    (tmp_path / "empty.mrcs").write_bytes(b"")
    with pytest.raises(InputError) as e:
        read_classes(str(tmp_path / "empty.mrcs"))
    assert "empty" in _one_line(e)
    (tmp_path / "text.mrcs").write_text("not an MRC file\n" * 100)
    with pytest.raises(InputError) as e:
        read_classes(str(tmp_path / "text.mrcs"))
    assert "MRC" in _one_line(e)
    with pytest.raises(InputError) as e:
        read_classes(_stack(tmp_path, imgs[:, :, :40], name="rect.mrcs"))
    assert "not square" in _one_line(e)
    vol = tmp_path / "vol.mrc"
    with mrcfile.new(str(vol)) as m:
        m.set_data(np.random.default_rng(0).normal(size=(16, 16, 16)).astype(np.float32))
        m.set_volume()
        m.voxel_size = 2.5
    with pytest.raises(InputError) as e:
        read_classes(str(vol))
    assert "a volume, not a stack of 2-D images" in _one_line(e)
    bad = imgs.copy()
    bad[1, 3, 3] = np.nan
    with pytest.warns(RuntimeWarning, match="NaN"):  # mrcfile warns when it writes them
        nan_path = _stack(tmp_path, bad, name="nan.mrcs")
    with pytest.raises(InputError) as e:
        read_classes(nan_path)
    assert "NaN" in _one_line(e) and "image 2" in str(e.value)
    flat = imgs.copy()
    flat[2] = 0.5  # a blank class (RELION's image of a class with no particle): kept, noted
    st = read_classes(_stack(tmp_path, flat, name="flat.mrcs"))
    assert len(st.data) == len(imgs) and any("Image 3 " in n and "blank" in n for n in st.notes)
    with pytest.raises(InputError) as e:
        read_classes(_stack(tmp_path, np.zeros_like(imgs), name="zeros.mrcs"))
    assert "every image is constant" in _one_line(e)
    with pytest.raises(InputError) as e:
        read_classes(_stack(tmp_path, imgs[:, :4, :4], name="tiny.mrcs"))
    assert "too small" in _one_line(e)


def test_simulator_writes_relion_star(tmp_path, dimer):
    s = simulate_particles(dimer, TS, n_classes=2, per_class=3, snr=1.0, ctf=True, seed=4)
    star, mrcs = write_relion(tmp_path, s)
    text = open(star, encoding="utf-8").read()
    assert "data_optics" in text and "data_particles" in text and "_rlnDefocusU" in text
    rows = [ln for ln in text.splitlines() if "@particles.mrcs" in ln]
    assert len(rows) == 6 and rows[0].startswith("000001@particles.mrcs")
    assert read_classes(mrcs).data.shape == (6, BOX, BOX)


def test_classes_data_puts_classes_on_the_map_grid(dimer, sim):
    ctx = Context.of(map=Map(data=dimer[:, :, 4:-4].copy(), voxel_size=TS, path="s.mrc"),
                     threshold=0.1)  # a non-cubic map: the 2-D grid is its largest edge
    cd = ClassesData(Stack(sim["classes"][:2], 2.0), ctx.map)
    g = cd.on_map_grid
    assert g.shape == (2, BOX, BOX) and not g.flags.writeable and cd.pixel_size == TS


# ---- the item: known answers ------------------------------------------------------------------
@pytest.mark.slow
def test_right_map_passes_with_the_expected_correlation_and_orientations(right, sim, dimer):
    res, ctx = right
    m = res.metrics
    # the simulator's SNR is the signal variance within the box's circle over the noise's;
    # 2.a correlates within the particle window's circle, where the signal is denser
    w = ctx.classes.window_box
    assert w < BOX and (res.data["classes"].shape[-1], ctx.classes.box) == (w, BOX)
    clean = align2d.shift(projection.Projector(dimer).project(sim["class_eulers"]),
                          sim["class_shifts"])
    in_w = window(clean, w)[:, align2d.circular_mask(w)].var(axis=1).mean()
    in_box = clean[:, align2d.circular_mask(BOX)].var(axis=1).mean()
    class_snr = PER_CLASS * SNR * in_w / in_box
    expected = np.sqrt(class_snr / (1 + class_snr))  # 0.918 (0.894 within the box's circle)
    assert abs(m["cc_mean"] - expected) < 0.01, (m, expected)
    assert m["n_classes"] == N_CLASSES and m["fraction_below_cc"] == 0.0
    assert not res.warnings and res.summary == ""
    err = projection.angular_distance(res.data["eulers"], sim["class_eulers"])
    assert np.mean(err < 5.0) >= 0.9, np.round(err, 1)
    # the table is sorted worst first and names the class from 1
    cc_col = [row[-1] for row in res.tables[0].rows]
    assert cc_col == sorted(cc_col) and res.tables[0].rows[0][0] == int(res.data["order"][0]) + 1
    assert res.data["covariances"].shape == (N_CLASSES, w, w)
    # the class is reprojection/a + noise: the residual is the noise, uncorrelated with the
    # reprojection
    disc = align2d.circular_mask(w)
    assert np.abs(align2d.pearson(res.data["residuals"], res.data["reprojections"], disc)).max() < 0.05


def test_a_small_molecule_in_a_large_box_is_matched_on_its_own_scale(atoms, dimer, sim, right):
    """The same molecule and classes in a 144-px box (3 × the particle's; the classes padded
    with noise of their background's level, the map simulated in the large box, one threshold
    for both): the particle window (the molecule's diameter from the mask, plus a margin) is the
    same, and so are the correlations and the orientations. On the whole box the search's
    shift steps and circle are 3 × coarser: 35 % of the classes were within 5°, cc 0.57."""
    big = 3 * BOX
    vol, _, _ = simulate(voxel_size=TS, resolution=6.0, shape=(big,) * 3, atoms=atoms)
    rng = np.random.default_rng(0)
    inner = window(np.ones((1, BOX, BOX), np.float32), big)[0] > 0
    noise = rng.normal(0, sim["classes"][:, :4, :].std(), (N_CLASSES, big, big))
    classes = np.where(inner, window(sim["classes"], big), noise.astype(np.float32))
    ctx = Context.of(map=Map(data=vol, voxel_size=TS, path="big.mrc"),
                     threshold=float(np.quantile(dimer, 0.97)))
    ctx.classes = ClassesData(Stack(classes, TS), ctx.map)
    res = item.run(ctx)
    small, small_ctx = right
    assert ctx.classes.window_box == small_ctx.classes.window_box < BOX
    assert res.metrics["cc_mean"] == pytest.approx(small.metrics["cc_mean"], abs=0.01)
    err = projection.angular_distance(res.data["eulers"], sim["class_eulers"])
    assert np.mean(err < 5.0) >= 0.9, np.round(err, 1)


@pytest.mark.slow
def test_mirrored_map_gives_the_same_correlations(dimer, sim, right):
    res, _ = right
    mirror, _ = run_item(dimer[:, :, ::-1].copy(), sim["classes"])
    assert np.abs(mirror.data["cc"] - res.data["cc"]).max() < 0.01


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["torus", "rod"])
def test_map_of_another_shape_fails(dimer, sim, right, kind):
    other, _ = run_item(reprojection_wrong_shape(dimer.shape, TS, kind), sim["classes"])
    m = other.metrics
    assert m["fraction_below_cc"] > item.MAX_FRACTION, m
    assert m["cc_mean"] < right[0].metrics["cc_mean"] - 0.15
    assert [w.code for w in other.warnings] == ["low_cc"]
    assert f"{100 * m['fraction_below_cc']:.1f}%" in other.warnings[0]
    assert other.summary


@pytest.mark.slow
def test_dumbbell_of_the_same_size_only_lowers_the_correlation(dimer, sim, right):
    """Two balls of the molecule's size correlate at about 0.74 at 6 Å: clearly below the right
    map, though not always below the reference's 0.7 (a limit of the criterion)."""
    other, _ = run_item(reprojection_wrong_shape(dimer.shape, TS, "dumbbell"), sim["classes"])
    assert other.metrics["cc_mean"] < right[0].metrics["cc_mean"] - 0.1


@pytest.mark.slow
def test_classes_at_another_pixel_size_give_the_same_result(atoms, dimer):
    """Classes projected from the map simulated at 2.0 Å in a 60-px box (the same 120 Å) and
    at 2.5 Å, 48 px, with the same angles (high SNR, so that the resampling's low-pass does
    not change the noise): orientations within 2° of each other, correlations within 0.01."""
    fine, _, _ = simulate(voxel_size=2.0, resolution=6.0, shape=(60,) * 3, atoms=atoms)
    a = simulate_particles(dimer, TS, n_classes=12, per_class=10, snr=50, seed=3)
    b = simulate_particles(fine, 2.0, n_classes=12, per_class=10, snr=50, seed=3)
    assert np.array_equal(a["class_eulers"], b["class_eulers"])
    ra, _ = run_item(dimer, a["classes"])
    rb, _ = run_item(dimer, b["classes"], pixel=2.0)
    assert projection.angular_distance(ra.data["eulers"], rb.data["eulers"]).max() < 2.0
    assert np.abs(ra.data["cc"] - rb.data["cc"]).max() < 0.01
    assert projection.angular_distance(rb.data["eulers"], b["class_eulers"]).max() < 5.0


@pytest.mark.slow
def test_ctf_phase_flipped_classes_pass(dimer):
    """With CTF (defocus 1–3 µm) and phase flipping the classes are the projections times the
    mean |CTF| (low frequencies damped): correlation about 0.78, above the limit. Their
    correlation landscape is flat over several degrees, so the test is that the search finds
    its top: the found orientation correlates at least as well as the true one (−0.01), and
    ≥ 80 % of the classes are within 6° of it."""
    s = simulate_particles(dimer, TS, n_classes=N_CLASSES, per_class=PER_CLASS, snr=SNR,
                           ctf=True, seed=2)
    res, _ = run_item(dimer, s["classes"])
    assert res.metrics["fraction_below_cc"] == 0.0 and not res.warnings
    pr = projection.Projector(dimer)
    truth = align2d.shift(pr.project(s["class_eulers"]), s["class_shifts"])
    cc_true = align2d.pearson(s["classes"], truth, align2d.circular_mask(BOX))
    assert np.all(res.data["cc"] >= cc_true - 0.01), np.round(res.data["cc"] - cc_true, 3)
    err = projection.angular_distance(res.data["eulers"], s["class_eulers"])
    assert np.mean(err < 6.0) >= 0.8, np.round(err, 1)


@pytest.mark.slow
def test_figures(right, monkeypatch):
    from figure_checks import FigureCapture, png_checks

    from cryovalid.figures import level2

    res, ctx = right
    cap = FigureCapture(monkeypatch, level2)
    d = level2.draw_reprojection(res, ctx)
    png_checks(d, ["reprojection_cc_histogram.png", "reprojection_gallery_1.png",
                   "reprojection_gallery_2.png"])
    s = level2.draw_classes_section(ctx)
    png_checks(s, ["classes_input.png"])
    assert "Set of 2D classes provided by the user" in s.figures[0].caption
    cap.check_print_sizes()


def test_criteria_text_uses_the_constants():
    assert f"{item.CC_LIMIT:g}" in item.CRITERIA and f"{100 * item.MAX_FRACTION:g} %" in item.CRITERIA
    assert os.path.basename(item.__file__) == "reprojection.py"


@pytest.mark.slow
def test_c3_map_with_c3_sampling(dimer):
    """A C3 trimer of the dimer: with symmetry c3 the gallery holds a third of the directions
    and every class is found within 5° of its true orientation up to the group; the map is
    symmetric to the resolution of the interpolation (the known answer checks it too)."""
    from simulate_particles import reprojection_cn_map

    tri = reprojection_cn_map(dimer, 3)
    ops = projection.symmetry_matrices("c3")
    pr = projection.Projector(tri)
    e = np.array([[20.0, 50.0, 10.0]])
    same = [projection.matrix_euler(projection.euler_matrix(e) @ s) for s in ops]
    p = pr.project(np.vstack(same))  # the same view through the three symmetry operations
    disc = align2d.circular_mask(BOX)
    assert align2d.pearson(p[1:], np.repeat(p[:1], 2, axis=0), disc).min() > 0.99
    s = simulate_particles(tri, TS, n_classes=12, per_class=PER_CLASS, snr=SNR, seed=5)
    res, _ = run_item(tri, s["classes"], symmetry="c3")
    assert abs(res.metrics["n_orientations"] * 3 / 1652 - 1) < 0.1
    assert res.metrics["fraction_below_cc"] == 0.0
    err = projection.angular_distance(res.data["eulers"], s["class_eulers"], "c3")
    assert np.all(err < 5.0), np.round(err, 1)


def test_blank_class_on_the_map_grid_cannot_be_measured(dimer, sim):
    """A class whose content is all outside the map's box (a 200-px class at 2.5 Å with its
    signal in a corner) is said, not measured as a correlation of 0."""
    from cryovalid.items.base import FAILED
    from cryovalid.items.base import run_item as run_safely

    big = np.zeros((2, 200, 200), np.float32)
    big[:, :40, :40] = sim["classes"][:2, :40, :40]
    big[0, 100:148, 76:124] = sim["classes"][0]  # class 1 is fine, class 2 blank in the box
    ctx = Context.of(map=Map(data=dimer, voxel_size=TS, path="sim.mrc"), threshold=0.1)
    ctx.classes = ClassesData(Stack(big, TS), ctx.map)
    res = run_safely(item, ctx)
    assert res.status == FAILED and res.reason.startswith("class 2 is constant"), res.reason


def test_pixel_size_out_of_range_names_the_classes_option(tmp_path, sim):
    p = _stack(tmp_path, sim["classes"][:2])
    with pytest.raises(InputError, match="--classes-pixel") as e:
        read_classes(p, pixel_size=500.0)
    assert "--voxel-size" not in str(e.value)


def test_coarse_search_in_image_chunks_gives_the_same_answer(dimer, sim, monkeypatch):
    pr = projection.Projector(dimer)
    eul, _ = projection.orientations("c6")
    gal = pr.project(eul, max_freq=0.25)
    whole = align2d.coarse_search(sim["classes"][:5], gal)
    monkeypatch.setattr(align2d, "IMAGE_CHUNK", 2)
    parts = align2d.coarse_search(sim["classes"][:5], gal)
    assert np.allclose(whole.score, parts.score, atol=1e-5)  # BLAS rounding differs by shape
    assert np.array_equal(whole.shift, parts.shift) and np.allclose(whole.psi, parts.psi, atol=1e-3)


@pytest.mark.slow
def test_the_command_line_grades_level_2_with_its_input_section(tmp_path, dimer, sim, capsys):
    """cryovalid report MAP --classes STACK: Level 2 is graded, the report shows the classes'
    section (file, count, box, pixel size, symmetry, the gallery) and 2.a with its figures."""
    import json

    from cryovalid import cli
    from simulate import write_mrc

    m = write_mrc(tmp_path / "map.mrc", dimer, TS)
    stack = write_stack(tmp_path / "classes.mrcs", sim["classes"], TS)
    out = tmp_path / "out"
    code = cli.main(["report", m, "--classes", stack, "--threshold",
                     f"{float(np.quantile(dimer, 0.97)):.6g}", "--levels", "2", "--out",
                     str(out), "--formats", "json,html", "--quiet"])
    assert code == 0, capsys.readouterr().err
    rep = json.loads((out / "report.json").read_text())
    assert rep["levels"] == ["2"]
    cl = rep["inputs"]["classes"]
    assert (cl["n_classes"], cl["box_px"], cl["pixel_size_A"], cl["symmetry"]) == \
        (N_CLASSES, BOX, TS, "c1")
    assert rep["class_figures"] and all((out / f["path"]).is_file()
                                        for f in rep["class_figures"])
    two_a = next(i for i in rep["items"] if i["id"] == "2.a")
    assert two_a["status"] == "ok" and two_a["metrics"]["cc_mean"] > 0.85
    assert len(two_a["figures"]) >= 2
    html = (out / "report.html").read_text()
    assert "Set of 2D classes" in html and "classes.mrcs" in html and "2.a" in html
