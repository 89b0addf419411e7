"""The shared machinery of Level 4: the CTF kernel (kernels/ctf.py), the particles' working grid
(data.ParticleGrid) and the angular distribution figure of the input section.

Known answers: the CTF's zeros sit where χ(s) + atan(Q0/√(1−Q0²)) = kπ, a closed form in s for
Cs = 0; the astigmatic defocus along the angle θ is U and across it V; RELION's envelope is
exp(−B s²/4). On the working grid, the map's CTF-modulated projection at the particles' true
angles and shifts matches particles simulated at SNR 100 with the CC the SNR implies."""
import os
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from cryovalid.kernels import ctf as ctfk  # noqa: E402


def test_wavelength_at_300_kv():
    # the relativistic wavelength at 300 kV is 0.019687 Å (textbook value)
    assert ctfk.wavelength(300.0) == pytest.approx(0.019687, abs=2e-6)
    assert ctfk.wavelength(200.0) == pytest.approx(0.025079, abs=2e-6)


def test_ctf_zeros_follow_the_closed_form_without_cs():
    box, px, df, q0 = 512, 1.0, 20000.0, 0.1
    c = ctfk.ctf_2d(box, px, df, cs_mm=0.0, q0=q0)[0, 0, :]  # the kx axis (ky = 0)
    s = np.fft.rfftfreq(box, px)
    lam = ctfk.wavelength(300.0)
    # −(w sin χ + q0 cos χ) = −sin(χ + a), a = atan(q0/w): zeros at χ = kπ − a
    a = np.arctan(q0 / np.sqrt(1 - q0 * q0))
    k = np.arange(1, 4)
    s_zero = np.sqrt((k * np.pi - a) / (np.pi * lam * df))
    sign_changes = np.flatnonzero(np.diff(np.sign(c)) != 0)
    # interpolate each crossing between its two samples
    found = s[sign_changes] - c[sign_changes] * (s[1] - s[0]) / (c[sign_changes + 1]
                                                                 - c[sign_changes])
    np.testing.assert_allclose(found[:3], s_zero, rtol=2e-3)
    assert c[0] == pytest.approx(-q0, abs=1e-6)  # at s = 0 only the amplitude contrast


def test_astigmatism_angle_and_envelope():
    box, px = 256, 1.0
    u, v, theta = 25000.0, 15000.0, 45.0  # along the grid's diagonals
    c = ctfk.ctf_2d(box, px, u, v, theta, cs_mm=0.0, q0=0.0)[0]
    ref_u = ctfk.ctf_2d(box, px, u, cs_mm=0.0, q0=0.0)[0]
    ref_v = ctfk.ctf_2d(box, px, v, cs_mm=0.0, q0=0.0)[0]
    s2, alpha = ctfk.frequencies(box, px)
    # the defocus has period 180° in the azimuth: compare angles modulo 180°
    along = np.abs(np.angle(np.exp(2j * (alpha - np.radians(theta))))) < 1e-9
    across = np.abs(np.angle(np.exp(2j * (alpha - np.radians(theta + 90))))) < 1e-9
    assert along.sum() > 3 and across.sum() > 3
    np.testing.assert_allclose(c[along], ref_u[along], atol=1e-5)
    np.testing.assert_allclose(c[across], ref_v[across], atol=1e-5)
    b = ctfk.ctf_2d(box, px, u, bfactor=80.0, scale=0.5)[0]
    plain = ctfk.ctf_2d(box, px, u)[0]
    np.testing.assert_allclose(b, plain * 0.5 * np.exp(-80.0 * s2 / 4.0), atol=1e-6)


def test_particle_parameters_defaults_and_absence():
    t = pd.DataFrame({"rlnDefocusU": [1e4, 2e4]})
    p = ctfk.particle_parameters(t, 2)
    np.testing.assert_array_equal(p["defocus_v"], [1e4, 2e4])
    assert p["scale"] == 1.0 and p["bfactor"] == 0.0
    assert ctfk.particle_parameters(pd.DataFrame({"x": [1]}), 1) is None


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    from simulate import simulate
    from simulate_particles import simulate_particles, write_relion

    from cryovalid.io.particles import read_particles

    vol, vs, origin = simulate(voxel_size=1.5, resolution=6.0)
    sim = simulate_particles(vol, vs, n_classes=4, per_class=5, snr=100.0, ctf=True,
                             max_shift=2.0)
    star, _ = write_relion(str(tmp_path_factory.mktemp("grid")), sim)
    return vol, vs, origin, sim, read_particles(star)


def test_working_grid_matches_the_simulated_particles(simulated):
    import scipy.fft

    from cryovalid.data import MapData, ParticlesData
    from cryovalid.io.maps import Map
    from cryovalid.kernels.align2d import circular_mask, pearson, shift

    vol, vs, origin, sim, parts = simulated
    pd_ = ParticlesData(parts, MapData(Map(vol, vs, origin), float(vol.max()) * 0.2), None)
    g = pd_.grid(3.0)
    assert g is pd_.grid(3.0)  # cached per pixel size
    assert g.box == 2 * round(vol.shape[0] * vs / 3.0 / 2) and g.pixel_size == pytest.approx(
        vol.shape[0] * vs / g.box)
    assert g.images.shape == (len(parts), g.box, g.box) and not g.images.flags.writeable
    np.testing.assert_allclose(g.shifts, sim["shifts"] * vs / g.pixel_size, atol=1e-3)
    np.testing.assert_allclose(g.eulers, sim["eulers"], atol=1e-3)
    proj = g.projector.project(g.eulers)
    model = scipy.fft.irfft2(scipy.fft.rfft2(proj) * g.ctf(), s=proj.shape[-2:])
    cc = pearson(shift(model, g.shifts), g.images, circular_mask(g.box))
    # SNR 100 on the original grid: the expected CC of the clean model with the noisy image is
    # √(SNR/(1+SNR)) = 0.995, higher after the low-pass that binning applies to white noise
    assert cc.min() > 0.99
    # a wrong defocus (1 µm off) breaks the match: the CTF is really applied
    wrong = pd_.ctf_parameters["defocus_u"] + 1e4
    bad_ctf = ctfk.ctf_2d(g.box, g.pixel_size, wrong, wrong, q0=0.1)
    bad = scipy.fft.irfft2(scipy.fft.rfft2(proj) * bad_ctf, s=proj.shape[-2:])
    assert np.median(pearson(shift(bad, g.shifts), g.images, circular_mask(g.box))) < 0.9


def test_ctf_needs_defocus_and_acquisition(simulated):
    from cryovalid.data import MapData, ParticlesData
    from cryovalid.io.maps import Map

    vol, vs, origin, sim, parts = simulated
    md = MapData(Map(vol, vs, origin), float(vol.max()) * 0.2)
    assert ParticlesData(parts, md, None).ctf_parameters is not None
    from dataclasses import replace

    no_kv = replace(parts, voltage_kv=None)
    assert ParticlesData(no_kv, md, None).ctf_parameters is None
    no_df = replace(parts, table=parts.table.drop(columns=["rlnDefocusU"]))
    assert ParticlesData(no_df, md, None).ctf_parameters is None


def test_angular_distribution_figure_draws():
    from cryovalid.figures.level4 import angular_distribution

    rng = np.random.default_rng(0)
    e = np.stack([rng.uniform(0, 360, 500), np.degrees(np.arccos(rng.uniform(-1, 1, 500))),
                  rng.uniform(0, 360, 500)], axis=1)
    png = angular_distribution(e)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_micrograph_paths_are_inputs(tmp_path):
    from cryovalid.api import Inputs

    for name in ("b.mrc", "a.mrc", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    inp = Inputs(map="m.mrc", micrographs=str(tmp_path / "*.mrc"))
    assert inp.micrograph_paths() == [str(tmp_path / "a.mrc"), str(tmp_path / "b.mrc")]
    assert set(inp.micrograph_paths()) <= set(inp.paths())  # the store never writes over them
