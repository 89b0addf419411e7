"""Known answers of 4.b (alignability smoothness) and 4.c (alignability precision and accuracy),
kernels/landscape.py.

Particles: the map of one αβ dimer of the 5ME2 haemoglobin model (no internal symmetry;
tests/simulate.py, 2 Å voxels, 6 Å resolution, 48³) projected at uniform random orientations
with known shifts and CTF (defocus 1–3 µm) and white noise (tests/simulate_particles.py), one
particle per orientation. Wrong assignments are made by replacing a known fraction of the
angles by uniform random ones (the images and shifts stay right), so which particles should be
flagged is known. Pure-noise images with random angles carry no orientation at all.
"""
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from simulate import simulate  # noqa: E402
from simulate_particles import (random_eulers, reprojection_atoms,  # noqa: E402
                                simulate_particles, write_relion)

from cryovalid.context import Context  # noqa: E402
from cryovalid.data import ParticlesData  # noqa: E402
from cryovalid.io.maps import Map  # noqa: E402
from cryovalid.io.particles import read_particles  # noqa: E402
from cryovalid.items import alignability_precision as prec_item  # noqa: E402
from cryovalid.items import alignability_smoothness as smooth_item  # noqa: E402
from cryovalid.items import base  # noqa: E402
from cryovalid.kernels import landscape as land  # noqa: E402
from cryovalid.kernels import projection  # noqa: E402
from cryovalid.kernels import symmetry as symk  # noqa: E402

TS, BOX, RES = 2.0, 48, 6.0
N, SNR = 400, 0.1


@pytest.fixture(scope="module")
def dimer():
    vol, _, _ = simulate(voxel_size=TS, resolution=RES, shape=(BOX,) * 3,
                         atoms=reprojection_atoms())
    return vol


@pytest.fixture(scope="module")
def sim(dimer):
    """N particles, one per uniform random orientation, CTF, SNR 0.1."""
    return simulate_particles(dimer, TS, n_classes=N, per_class=1, snr=SNR, ctf=True,
                              jitter_deg=0.0, max_shift=2.0, shift_jitter=0.0, seed=3)


def context(tmp_path, vol, sim, eulers=None, resolution=RES, name="p"):
    s = dict(sim)
    if eulers is not None:
        s["eulers"] = eulers
    star, _ = write_relion(tmp_path / name, s)
    ctx = Context.of(Map(vol, TS), float(np.quantile(vol, 0.97)), resolution=resolution)
    ctx.particles = ParticlesData(read_particles(star), ctx.map, None)
    return ctx


def randomised(sim, fraction, seed):
    """(eulers with ``fraction`` of them replaced by uniform random ones, the replaced ones)."""
    rng = np.random.default_rng(seed)
    bad = np.zeros(N, bool)
    bad[rng.choice(N, int(round(fraction * N)), replace=False)] = True
    e = sim["eulers"].copy()
    e[bad] = random_eulers(int(bad.sum()), rng)
    return e, bad


def flagged_quality(flag, bad):
    """(precision, recall) of ``flag`` as a detector of the randomised particles ``bad``."""
    tp = float((flag & bad).sum())
    return tp / max(flag.sum(), 1), tp / max(bad.sum(), 1)


def csv_column(res, name):
    (curves,) = [a for a in res.artefacts if a.name == "alignability_precision.csv"]
    return np.asarray(dict(curves.columns)[name], dtype=np.float64)


# --------------------------------------------------------------------------- kernel

def test_graph_smoothing_finds_the_peak_and_removes_a_spike():
    """A toy landscape over the c1 gallery: a smooth peak (Gaussian, σ = 12°, height 1) plus
    noise (σ 0.05), and a single direction 90° away set to 1.5: the raw maximum is the spike,
    the smoothed one lies within one gallery step of the peak; the spike alone smooths to less
    than a third of its height."""
    step = land.STEP_DEG
    gal, _ = projection.orientations("c1", step)
    dirs = symk.directions(gal)
    basis = land.graph_basis(gal, "c1", step)
    assert basis.shape == (len(gal), land.basis_size("c1", len(gal)))
    assert basis.shape[1] == int(0.05 * len(projection.orientations("c1", 3.0)[0])) + 1
    rng = np.random.default_rng(0)
    peak = symk.directions(np.array([[40.0, 70.0, 0.0]]))
    ang = land.direction_angles(peak, dirs, "c1")[0]
    spike = int(np.argmin(np.abs(ang - 90.0)))
    s = np.exp(-0.5 * (ang / 12.0) ** 2) + rng.normal(0, 0.05, len(gal))
    s[spike] = 1.5
    scores = np.stack([s, np.eye(len(gal))[spike]]).astype(np.float32)
    assert scores[0].argmax() == spike
    best = land.smoothed_maximum(scores, basis)
    assert ang[best[0]] <= step
    smooth_spike = (scores[1] @ basis) @ basis.T
    assert smooth_spike[spike] < 1 / 3


def test_graph_distance_is_symmetry_aware():
    """Under c4 a direction turned by 90° about z is the same direction; under d2 the opposite
    direction (tilt 180 − t, rot + 180 about x's 2-fold) too; under c1 they are apart."""
    a = symk.directions(np.array([[10.0, 60.0, 0.0]]))
    b = symk.directions(np.array([[100.0, 60.0, 0.0]]))
    assert land.direction_angles(a, b, "c4")[0, 0] < 1e-4
    assert land.direction_angles(a, b, "c1")[0, 0] > 50
    c = symk.directions(np.array([[-10.0, 120.0, 0.0]]))  # x 2-fold: (x, -y, -z)
    assert land.direction_angles(a, c, "d2")[0, 0] < 1e-4
    e = np.array([[10.0, 60.0, 5.0], [10.0, 60.0, 5.0], [10.0, 60.0, 5.0]])
    f = np.array([[100.0, 60.0, 70.0], [190.0, 120.0, 0.0], [10.0, 75.0, 0.0]])
    assert np.allclose(land.direction_distance(e, f, "c4"), [0.0, 60.0, 15.0], atol=1e-4)
    assert np.allclose(land.direction_distance(e, f, "c1")[1:], [180.0, 15.0], atol=1e-4)


def test_noise_level_of_random_orientations():
    """Random projection axes (uniform on the sphere, a direction and its opposite one axis)
    are on average 1 rad = 57.30° apart (density sin θ on [0, 90°]); the gallery's random
    orientations give that within 1°. Under c2 (the axes folded by the 2-fold about z) the
    mean is smaller."""
    gal, _ = projection.orientations("c1", land.STEP_DEG)
    c1 = land.noise_level(gal, 6, "c1", trials=1000)
    assert abs(c1 - np.degrees(1.0)) < 1.0
    gal2, _ = projection.orientations("c2", land.STEP_DEG)
    assert land.noise_level(gal2, 6, "c2", trials=1000) < c1 - 5


def test_axis_angles_fold_the_mirror_and_the_group():
    """The angle between projection axes ignores psi, counts the opposite direction as the
    same axis and takes the smallest over the group."""
    a = np.array([10.0, 60.0, 33.0])
    assert land.axis_angles(a, np.array([10.0, 60.0, 200.0]), "c1") < 1e-4
    assert land.axis_angles(a, np.array([190.0, 120.0, 0.0]), "c1") < 1e-4  # −direction
    assert abs(land.axis_angles(a, np.array([10.0, 80.0, 0.0]), "c1") - 20.0) < 1e-4
    assert land.axis_angles(a, np.array([100.0, 60.0, 0.0]), "c4") < 1e-4


def test_prepare_centres_flips_and_filters():
    """prepare() undoes the content shift t (align2d.shift(img, t) back to img), multiplies by
    sign(CTF) (twice = unchanged) and applies the filter (all-pass = unchanged)."""
    from cryovalid.kernels.align2d import shift

    rng = np.random.default_rng(2)
    # band-limited (a fractional shift of the Nyquist term cannot be undone on a real grid)
    img = land.filtered(rng.normal(size=(3, 24, 24)), land.lowpass(24, 1.0, 3.0))
    t = np.array([[1.5, -2.0], [0.0, 3.0], [-0.7, 0.4]])
    assert np.allclose(land.prepare(shift(img, t), t, None, None), img, atol=1e-4)
    from cryovalid.kernels.ctf import ctf_2d

    ctf = ctf_2d(24, 1.0, np.array([8000.0, 15000.0, 25000.0]))
    once = land.prepare(img, np.zeros((3, 2)), ctf, None)
    assert not np.allclose(once, img, atol=1e-2)
    assert np.allclose(land.prepare(once, np.zeros((3, 2)), ctf, None), img, atol=1e-4)
    ones = np.ones((24, 13), np.float32)
    assert np.allclose(land.prepare(img, np.zeros((3, 2)), None, ones), img, atol=1e-4)
    lp = land.lowpass(24, 2.0, 8.0)  # 1/8 Å⁻¹ of a 1/4 Å⁻¹ Nyquist
    assert lp[0, 0] == 1.0 and lp[0, 12] == 0.0 and land.lowpass(24, 2.0, 4.0) is None


def test_noise_free_references_find_their_orientation(tmp_path, dimer, sim):
    """The reference landscape (noise-free projections at the user's orientations): the best
    gallery orientation is the true one to within the gallery's quantisation (all < 8°, median
    < 4°); checks the in-plane angle's convention."""
    ctx = context(tmp_path, dimer, sim)
    g = ctx.particles.grid(land.working_pixel(TS, RES))
    ref = g.landscape("c1", land.STEP_DEG, RES, reference=True)
    e, _ = land.top_k(ref, 1)
    _, geo = symk.orientation_differences(e[:, 0], sim["eulers"], "c1", check_mirrors=False)
    assert np.median(geo) < 4.0 and geo.max() < 8.0


# --------------------------------------------------------------------------- items

@pytest.mark.slow
def test_true_angles_pass_both(tmp_path, dimer, sim):
    ctx = context(tmp_path, dimer, sim)
    b = base.run_item(smooth_item, ctx)
    assert b.status == "ok", (b.reason, b.warnings)
    assert b.metrics["percent_above"] < 15.0 and b.metrics["n_particles"] == N
    assert b.metrics["pixel_size_A"] == pytest.approx(3.2, abs=0.01)
    c = base.run_item(prec_item, ctx)
    assert c.status == "ok", (c.reason, c.warnings)
    m = c.metrics
    assert m["percent_accuracy_low"] < 15.0 and m["percent_precision_low"] < 15.0
    assert m["mean_accuracy"] > 0.8 and m["mean_precision"] > 0.8
    assert m["n_used"] >= 0.95 * N


def test_true_angles_without_ctf_pass(tmp_path, dimer):
    """Particles without CTF (no rlnDefocusU): no phase flip, the gallery unfiltered; true
    angles pass both items and the note says so. SNR 0.3: without the CTF the signal's
    variance is mostly the low-frequency blob, so at the same SNR the views' details are
    noisier than with it (at 0.1 even the raw maximum is > 10° off for a third)."""
    s = simulate_particles(dimer, TS, n_classes=200, per_class=1, snr=0.3, ctf=False,
                           jitter_deg=0.0, max_shift=2.0, shift_jitter=0.0, seed=5)
    ctx = context(tmp_path, dimer, s, name="noctf")
    assert ctx.particles.ctf_parameters is None
    for mod in (smooth_item, prec_item):
        res = base.run_item(mod, ctx)
        assert res.status == "ok", (mod.ID, res.reason, res.warnings)
        assert any("no CTF" in t for t in res.notes)
    assert res.metrics["percent_accuracy_low"] < 15.0


@pytest.mark.slow
def test_forty_percent_randomised_warns_ten_percent_passes(tmp_path, dimer, sim):
    """40 % randomised: 4.b and 4.c's accuracy warn, and the particles they flag are mostly the
    randomised ones (precision ≥ 0.8, recall ≥ 0.9); 4.c's precision does not warn (the images
    are as alignable as before, only the assignment is wrong). 10 %: both pass."""
    e40, bad40 = randomised(sim, 0.4, seed=7)
    ctx = context(tmp_path, dimer, sim, e40, name="r40")
    b = base.run_item(smooth_item, ctx)
    assert b.status == "warnings" and [w.code for w in b.warnings] == ["away_from_maximum"]
    p, r = flagged_quality(b.data["distance"] > smooth_item.DISTANCE_LIMIT_DEG, bad40)
    assert p >= 0.8 and r >= 0.9, (p, r)
    c = base.run_item(prec_item, ctx)
    assert [w.code for w in c.warnings] == ["low_accuracy"], c.warnings
    acc = csv_column(c, "accuracy")
    p, _ = flagged_quality(acc < prec_item.LOW_LIMIT, bad40)
    # a random axis lies within 30° of the true one with probability 1 − cos 30° = 13 %: such
    # a "randomised" assignment is not wrong, so the recall counts the ones more than 30° off
    far = bad40 & (land.axis_angles(e40, sim["eulers"], "c1") > 30.0)
    _, r = flagged_quality(acc < prec_item.LOW_LIMIT, far)
    assert p >= 0.8 and r >= 0.9, (p, r)

    e10, _ = randomised(sim, 0.1, seed=8)
    ctx = context(tmp_path, dimer, sim, e10, name="r10")
    assert base.run_item(smooth_item, ctx).status == "ok"
    assert base.run_item(prec_item, ctx).status == "ok"


@pytest.mark.slow
def test_thirty_percent_randomised_are_the_flagged_ones(tmp_path, dimer, sim):
    """The issue's case, 30 % of the angles randomised: the particles 4.b (distance > 10°) and
    4.c (accuracy < 0.5) flag are mostly the randomised ones (precision ≥ 0.8). Whether the
    items warn is not asserted here: 30 % flagged plus the few correct particles beyond the
    limit sits at the reference's 30 % limit (see the 40 % / 10 % test)."""
    e30, bad30 = randomised(sim, 0.3, seed=9)
    ctx = context(tmp_path, dimer, sim, e30, name="r30")
    b = base.run_item(smooth_item, ctx)
    p, r = flagged_quality(b.data["distance"] > smooth_item.DISTANCE_LIMIT_DEG, bad30)
    assert p >= 0.8 and r >= 0.85, (p, r)
    c = base.run_item(prec_item, ctx)
    p, _ = flagged_quality(csv_column(c, "accuracy") < prec_item.LOW_LIMIT, bad30)
    assert p >= 0.8, p


def test_pure_noise_is_not_alignable(tmp_path, dimer, sim):
    """Images of pure noise with random angles: accuracy about 0 (|mean| < 0.2) and 4.c warns
    for it; 4.b finds most distances above 10°. Precision does not fall to 0: a noise image's
    landscape is as smooth over the directions as any (neighbouring projections are alike), so
    its best orientations still cluster, only less than those of a noise-free projection
    (median spread at least 1.5 × the references')."""
    rng = np.random.default_rng(11)
    noise = dict(sim, particles=rng.normal(size=sim["particles"].shape).astype(np.float32))
    ctx = context(tmp_path, dimer, noise, random_eulers(N, rng), name="noise")
    b = base.run_item(smooth_item, ctx)
    assert b.status == "warnings" and b.metrics["percent_above"] > 80
    c = base.run_item(prec_item, ctx)
    assert "low_accuracy" in [w.code for w in c.warnings]
    assert abs(c.metrics["mean_accuracy"]) < 0.2
    assert (np.median(csv_column(c, "spread_exp_deg"))
            > 1.5 * np.median(csv_column(c, "spread_ref_deg")))


def test_symmetry_c3_map(tmp_path, dimer):
    """A C3 map (the dimer off the z axis plus its copies turned by 120°, simulate_particles.
    reprojection_cn_map) and particles with their true angles: under c3 both items pass; under
    c1 the three symmetry mates are equally good, so the smoothed maximum is a mate for about
    2/3 of the particles and 4.b warns (between 50 % and 80 % beyond 10°), and 4.c cannot
    score most particles: their noise-free references split their best orientations between
    the mates (scattered by more than half the random level)."""
    from simulate_particles import reprojection_cn_map

    v3 = reprojection_cn_map(dimer, 3, offset_px=5)
    sim3 = simulate_particles(v3, TS, n_classes=240, per_class=1, snr=SNR, ctf=True,
                              jitter_deg=0.0, max_shift=2.0, shift_jitter=0.0, seed=4)
    ctx = context(tmp_path, v3, sim3, name="c3")
    ctx.symmetry = "c3"
    b = base.run_item(smooth_item, ctx)
    c = base.run_item(prec_item, ctx)
    assert b.status == "ok" and c.status == "ok", (b.warnings, c.warnings)
    assert b.metrics["n_directions"] < 0.4 * len(projection.orientations("c1", 5.0)[0])
    assert c.metrics["n_dropped"] <= 0.02 * 240
    ctx = context(tmp_path, v3, sim3, name="c3_as_c1")
    b = base.run_item(smooth_item, ctx)
    assert b.status == "warnings" and 50.0 < b.metrics["percent_above"] < 80.0
    c = base.run_item(prec_item, ctx)
    assert c.metrics["n_dropped"] > 0.5 * 240 and any("left out" in t for t in c.notes)


def test_many_particles_use_a_seeded_subset(tmp_path, dimer, sim, monkeypatch):
    """Above landscape.MAX_PARTICLES a seeded random subset is measured (the same one for 4.b
    and 4.c), its particles' own angles compared: true angles still pass."""
    monkeypatch.setattr(land, "MAX_PARTICLES", 150)
    ctx = context(tmp_path, dimer, sim, name="subset")
    b = base.run_item(smooth_item, ctx)
    c = base.run_item(prec_item, ctx)
    assert b.status == "ok" and c.status == "ok", (b.reason, c.reason)
    assert b.metrics["n_used"] == 150 and b.metrics["n_particles"] == N
    assert c.metrics["n_measured"] == 150 and any("subset" in t for t in c.notes)
    rows = csv_column(c, "particle").astype(int) - 1
    assert len(np.unique(rows)) == 150 and rows.max() < N
    assert b.metrics["percent_above"] < 15.0 and c.metrics["percent_accuracy_low"] < 15.0


def test_bad_inputs_say_why(tmp_path, dimer, sim):
    ctx = context(tmp_path, dimer, sim, resolution=None, name="nores")
    b = base.run_item(smooth_item, ctx)
    assert b.status == "not_applicable" and "resolution" in b.reason
    e = sim["eulers"].copy()
    e[3, 1] = np.nan
    ctx = context(tmp_path, dimer, sim, e, name="nan")
    for mod in (smooth_item, prec_item):
        res = base.run_item(mod, ctx)
        assert res.status == "failed" and "not finite" in res.reason


@pytest.mark.slow
def test_figures_draw(tmp_path, dimer, sim):
    from cryovalid import registry

    ctx = context(tmp_path, dimer, sim)
    for mod in (smooth_item, prec_item):
        res = base.run_item(mod, ctx)
        drawing = registry.draws()[mod.ID](res, ctx)
        assert drawing.figures and all(im.png[:4] == b"\x89PNG" for im in drawing.artefacts)
    assert len(registry.draws()["4.c"](res, SimpleNamespace()).figures) == 3
