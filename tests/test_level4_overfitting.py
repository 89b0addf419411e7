"""Level 4: the direct Fourier reconstruction (kernels/reconstruct.py), 4.f overfitting
detection and 4.e classification without alignment, against maps simulated from the 5ME2
haemoglobin model (tests/simulate.py) and particles projected from them with known angles,
shifts and CTFs (tests/simulate_particles.py).

Known answers: a reconstruction from noise-free projections at uniform orientations is the map
(FSC ≥ 0.99 to 0.8 Nyquist, with and without shifts, with a CTF Wiener-corrected; ≥ 0.98
phase-flipped, which filters each voxel by its images' mean |CTF|); C4 expansion equals inserting every image at A·S explicitly, and the other
order (S·A) does not give the map. 4.f: simulated particles (SNR 0.1, CTF) get better with
more particles and noise aligned to the map stays far worse (no warning); particles that are
themselves noise aligned to the map give the noise branch's curve (within 15 %). 4.e: a
homogeneous set converges to one class; a 50/50 mix of the tetramer and the tetramer without
chain D gives two classes of about half each, sorted as they were made (≥ 90 %)."""

import numpy as np
import pytest
import scipy.fft

import simulate as S
from simulate_particles import random_eulers, reprojection_atoms, reprojection_cn_map
from simulate_particles import simulate_particles, write_relion

from cryovalid.context import Context
from cryovalid.data import ParticlesData
from cryovalid.io.maps import Map
from cryovalid.io.particles import read_particles
from cryovalid.items import base, classification_3d, overfitting
from cryovalid.kernels import reconstruct as rec
from cryovalid.kernels.align2d import shift
from cryovalid.kernels.ctf import ctf_2d
from cryovalid.kernels.projection import (Projector, euler_matrix, matrix_euler,
                                          orientations, symmetry_matrices)
from cryovalid.kernels.resample2d import fourier_resize

VOXEL = 2.0  # Å
RESOLUTION = 6.0  # Å, the reported resolution: working grid of 3 Å


@pytest.fixture(scope="module")
def nyquist_map():
    """The 5ME2 map at 2 Å with content up to Nyquist (4 Å)."""
    vol, vs, _ = S.simulate(voxel_size=VOXEL, resolution=2 * VOXEL)
    return vol


def fsc_to(rec_vol, ref, fraction=0.8):
    """The FSC of two maps from shell 1 to ``fraction`` of Nyquist."""
    f, c = rec.fsc_curve(rec_vol, ref, VOXEL)
    return c[1:int(fraction * (len(f) - 1)) + 1]


# --------------------------------------------------------------------------- the kernel

@pytest.mark.slow
def test_reconstruction_of_noise_free_projections_is_the_map(nyquist_map):
    vol = nyquist_map
    rng = np.random.default_rng(1)
    e = random_eulers(2000, rng)
    imgs = Projector(vol).project(e)
    out = rec.reconstruct(imgs, e)
    assert fsc_to(out, vol).min() >= 0.99
    inside = vol > np.percentile(vol, 80)
    assert np.corrcoef(out[inside], vol[inside])[0, 1] >= 0.98
    # a known content shift (±3 px), undone by the reconstruction
    t = rng.uniform(-3, 3, (2000, 2))
    moved = shift(imgs, t)
    assert fsc_to(rec.reconstruct(moved, e, shifts=t), vol).min() >= 0.99
    # ... and not undone when the shifts are not given: the test can fail
    assert fsc_to(rec.reconstruct(moved, e), vol).min() < 0.5


@pytest.mark.slow
def test_reconstruction_with_a_ctf(nyquist_map):
    vol = nyquist_map
    rng = np.random.default_rng(2)
    e = random_eulers(2000, rng)
    p = Projector(vol).project(e)
    b = p.shape[-1]
    c = ctf_2d(b, VOXEL, rng.uniform(8000, 25000, len(e)))
    pc = scipy.fft.irfft2(scipy.fft.rfft2(p) * c, s=(b, b)).astype(np.float32)
    assert fsc_to(rec.reconstruct(pc, e, ctf=c, mode=rec.WIENER), vol).min() >= 0.99
    # phase flipping leaves each voxel multiplied by the mean |CTF| of the images through
    # it, which varies within a shell (other defoci): the map, filtered, not quite per shell
    assert fsc_to(rec.reconstruct(pc, e, ctf=c, mode=rec.FLIP), vol).min() >= 0.98
    assert fsc_to(rec.reconstruct(pc, e), vol).min() < 0.0  # uncorrected: contrast inverted


@pytest.mark.slow
def test_symmetry_expansion_is_a_times_s(nyquist_map):
    v4 = reprojection_cn_map(nyquist_map, 4)
    rng = np.random.default_rng(3)
    e = random_eulers(600, rng)
    e[:, 0] %= 90.0  # directions in one C4 asymmetric unit only
    imgs = Projector(v4).project(e)
    sym = rec.reconstruct(imgs, e, symmetry="c4")
    a, s = euler_matrix(e), symmetry_matrices("c4")
    right = matrix_euler((a[:, None] @ s[None]).reshape(-1, 3, 3))
    explicit = rec.reconstruct(np.repeat(imgs, 4, axis=0), right)
    assert np.abs(sym - explicit).max() <= 1e-4 * np.abs(sym).max()
    assert fsc_to(sym, v4).min() >= 0.99
    wrong = matrix_euler((s[None] @ a[:, None]).reshape(-1, 3, 3))
    assert fsc_to(rec.reconstruct(np.repeat(imgs, 4, axis=0), wrong), v4).min() < 0.8


def test_resolution_at_the_fsc_threshold():
    f = np.arange(11) / 20.0  # 1/Å
    curve = np.linspace(1.0, 0.0, 11)  # 0.5 at f = 0.25
    r, how = rec.resolution_at(f, curve, 0.5)
    assert how == "crosses" and r == pytest.approx(4.0)
    assert rec.resolution_at(f, np.ones(11), 0.5) == (2.0, "never")  # Nyquist
    assert rec.resolution_at(f, np.r_[1.0, np.zeros(10)], 0.5) == (20.0, "at_start")  # box


def test_working_grid_is_r_over_2_up_to_the_largest_box():
    assert rec.working_pixel((100, 100, 100), 1.0, 6.0) == 3.0  # R/2: a box of 33
    assert rec.working_pixel((300, 200, 200), 1.0, 2.0) == pytest.approx(300 / rec.MAX_BOX)


# --------------------------------------------------------------------------- 4.f

def _context(vol, vs, origin, sim, tmp):
    star, _ = write_relion(tmp, sim)
    ctx = Context.of(Map(vol, vs, origin), float(vol.max() * 0.2), resolution=RESOLUTION)
    ctx.particles = ParticlesData(read_particles(star), ctx.map, None)
    return ctx


@pytest.fixture(scope="module")
def good_particles():
    vol, vs, origin = S.simulate(voxel_size=VOXEL, resolution=RESOLUTION)
    sim = simulate_particles(vol, vs, n_classes=1000, per_class=1, snr=0.1, ctf=True, seed=3)
    return vol, vs, origin, sim


@pytest.mark.slow
def test_4f_real_particles_improve_and_beat_noise(good_particles, tmp_path):
    ctx = _context(*good_particles, tmp_path)
    res = base.run_item(overfitting, ctx)
    assert res.status == "ok", res.warnings
    m = res.metrics
    keys = [overfitting.size_key(x) for x in overfitting.FRACTIONS]
    assert [m[f"subset_size_{k}"] for k in keys] == [15, 50, 150, 375, 500]
    exp = np.array([m[f"resolution_mean_A_{k}"] for k in keys])
    noise = np.array([m[f"noise_resolution_mean_A_{k}"] for k in keys])
    assert np.all(np.diff(exp) < 0)  # more particles, better resolution
    assert exp[-1] < 10.0  # 500 + 500 particles at SNR 0.1 reach < 10 Å on the 3 Å grid
    assert np.all(noise[2:] >= 1.5 * exp[2:])  # noise stays far worse at 150 and more
    assert m["n_sizes_noise_better"] == 0
    assert any("phase-flipped" in n for n in res.notes)
    csv = [a for a in res.artefacts if a.name == "overfitting.csv"][0]
    assert [h for h, _ in csv.columns][:3] == ["n_particles", "resolution_mean_A",
                                               "resolution_std_A"]


@pytest.mark.slow
def test_4f_noise_particles_aligned_to_the_map_match_the_noise_branch(tmp_path):
    """"Experimental" particles that are pure noise with angles assigned by the same matching
    as the noise branch: both branches measure the same thing, so their resolutions agree
    within 15 % (1/Å) at the three largest sizes (the good particles above are ≥ 50 % apart).
    Which branch is ahead at a given size is then a coin toss; the warning fires exactly when
    noise is ahead at some size, which with these seeds it is."""
    vol, vs, origin = S.simulate(voxel_size=3.0, resolution=RESOLUTION)  # = the working grid
    b, n = vol.shape[0], 1000
    imgs = np.random.default_rng(5).normal(0, 1, (n, b, b)).astype(np.float32)
    small = max(8, 2 * int(round(overfitting.MATCH_FREQ * b)))
    ge, _ = orientations("c1", overfitting.GALLERY_STEP_DEG)
    ge = ge[ge[:, 1] <= overfitting.GALLERY_TILT_MAX_DEG + 1e-9]  # the item's gallery
    gal = fourier_resize(Projector(vol).project(ge, max_freq=overfitting.MATCH_FREQ), small)
    e, _ = rec.match_directions(fourier_resize(imgs, small), gal, ge)
    sim = {"particles": imgs, "eulers": e, "shifts": np.zeros((n, 2)), "defocus_um": None,
           "class_id": np.zeros(n, int), "pixel": 3.0}
    ctx = _context(vol, 3.0, origin, sim, tmp_path)
    res = base.run_item(overfitting, ctx)
    m = res.metrics
    keys = [overfitting.size_key(x) for x in overfitting.FRACTIONS]
    exp = np.array([m[f"resolution_mean_A_{k}"] for k in keys])
    noise = np.array([m[f"noise_resolution_mean_A_{k}"] for k in keys])
    assert np.all(np.abs(1 / exp[2:] - 1 / noise[2:]) <= 0.15 / exp[2:])
    assert exp[-1] < 30.0  # and both do look like a low-resolution structure
    assert (res.status == "warnings") == bool(np.any(noise < exp))
    assert res.status == "warnings" and res.warnings[0].code == "noise_better"


def test_4f_too_few_particles(good_particles, tmp_path):
    vol, vs, origin, sim = good_particles
    few = dict(sim, particles=sim["particles"][:8], eulers=sim["eulers"][:8],
               shifts=sim["shifts"][:8], defocus_um=sim["defocus_um"][:8],
               class_id=sim["class_id"][:8])
    res = base.run_item(overfitting, _context(vol, vs, origin, few, tmp_path))
    assert res.status == "failed" and "too few" in res.reason


# --------------------------------------------------------------------------- 4.e

def _mixture(n, seed=3):
    """n particles (SNR 0.1, CTF): the first half of the 5ME2 tetramer, the second half of
    the tetramer without chain D (same box and origin: two weightless atoms at the corners of
    the full model keep the box)."""
    xyz, _ = S.load_atoms()
    vol, vs, origin = S.simulate(voxel_size=VOXEL, resolution=RESOLUTION)
    xa, wa = reprojection_atoms(chains=("A", "B", "C"))
    xa = np.vstack([xa, xyz.min(axis=0), xyz.max(axis=0)])
    wa = np.concatenate([wa, [0.0, 0.0]]).astype(np.float32)
    vol_b, _, origin_b = S.simulate(atoms=(xa, wa), voxel_size=VOXEL, resolution=RESOLUTION)
    assert vol_b.shape == vol.shape and np.allclose(origin_b, origin)
    a = simulate_particles(vol, vs, n_classes=n, per_class=1, snr=0.1, ctf=True, seed=seed)
    bb = simulate_particles(vol_b, vs, n_classes=n, per_class=1, snr=0.1, ctf=True,
                            seed=seed + 1)
    h = n // 2
    sim = dict(a)
    for k in ("particles", "eulers", "shifts", "defocus_um"):
        sim[k] = np.concatenate([a[k][:h], bb[k][h:]])
    truth = np.r_[np.zeros(h, int), np.ones(n - h, int)]
    return vol, vs, origin, sim, truth


@pytest.mark.slow
def test_4e_homogeneous_particles_form_one_class(tmp_path):
    vol, vs, origin = S.simulate(voxel_size=VOXEL, resolution=RESOLUTION)
    sim = simulate_particles(vol, vs, n_classes=2000, per_class=1, snr=0.1, ctf=True, seed=3)
    res = base.run_item(classification_3d, _context(vol, vs, origin, sim, tmp_path))
    assert res.status == "ok" and res.evaluable
    m = res.metrics
    assert m["n_classes"] == 1 and m["class_fraction_max"] >= 0.95
    assert any("converged to a single class" in n for n in res.notes)
    assert "class_maps" not in res.data


@pytest.mark.slow
def test_4e_a_mixture_forms_two_classes_sorted_correctly(tmp_path, monkeypatch):
    vol, vs, origin, sim, truth = _mixture(2000)
    res = base.run_item(classification_3d, _context(vol, vs, origin, sim, tmp_path))
    assert res.status == "ok" and not res.evaluable  # two classes: no automatic criterion
    m = res.metrics
    assert m["n_classes"] == 2
    assert all(0.4 <= m[f"class_size_{c}"] / 2000 <= 0.6 for c in (1, 2))
    assert m["difference_cc"] >= classification_3d.REPRODUCIBLE_CC
    lab = res.data["labels"]
    assert max(np.mean(lab == truth), np.mean(lab != truth)) >= 0.9
    # the figure: slices of both class maps and their difference
    from cryovalid import registry
    from figure_checks import FigureCapture, png_checks
    from cryovalid.figures import overfitting as figs, slices

    cap = FigureCapture(monkeypatch, slices)
    drawing = registry.draws()["4.e"](res, None)
    png_checks(drawing, ["class_3d_1.png", "class_3d_2.png", "class_3d_difference.png"])
    cap.check_print_sizes()
    assert set(figs.DRAWS) == {"4.e", "4.f"}


@pytest.mark.slow
def test_4f_figure(good_particles, tmp_path, monkeypatch):
    from cryovalid import registry
    from figure_checks import FigureCapture, png_checks
    from cryovalid.figures import overfitting as figs

    res = base.run_item(overfitting, _context(*good_particles, tmp_path))
    cap = FigureCapture(monkeypatch, figs)
    drawing = registry.draws()["4.f"](res, None)
    png_checks(drawing, ["overfitting.png"])
    cap.check_print_sizes()
    assert "15, 50, 150, 375, 500" in drawing.figures[0].caption
