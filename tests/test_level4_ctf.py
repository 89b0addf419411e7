"""Level 4 items 4.a (similarity criteria) and 4.i (CTF stability) against known answers:
particles simulated from the 5ME2 haemoglobin map (tests/simulate.py, simulate_particles.py)
with known angles, shifts and defocus (300 kV, Cs 2.7 mm, Q0 0.1), written as RELION STAR +
MRCS and read back as the report does. Expected values come from outside the code under test:
IMED by hand on delta images, the CC of signal + white noise from its signal-to-noise ratio
(√(s/(1+s)) with s the ratio after the low-pass, the noise's share computed by Parseval from
the filter's definition), the defocus offsets and astigmatism written into the STAR file."""
import tempfile

import numpy as np
import pytest

import simulate as S
from figure_checks import FigureCapture, png_checks
from simulate_particles import random_eulers, simulate_particles, write_relion

from cryovalid.context import Context
from cryovalid.data import ParticlesData
from cryovalid.io.maps import Map
from cryovalid.io.particles import read_particles
from cryovalid.items import ctf_stability, similarity
from cryovalid.items.base import run_item
from cryovalid.kernels import similarity as simk
from cryovalid.kernels.align2d import circular_mask

W0 = 1.0 / np.sqrt(2.0 * np.pi)  # g(0, 0) = 0.3989422804
W1 = np.exp(-0.5) / np.sqrt(2.0 * np.pi)  # g(1, 0) = 0.2419707245


# --------------------------------------------------------------------------- IMED by hand

def test_imed_of_a_delta_difference_is_root_of_the_kernel_peak():
    a = np.zeros((2, 16, 16))
    a[0, 8, 8] = 2.0  # one pixel differs by 2: IMED² = 2·2·g(0) = 4/√(2π)
    a[1, 8, 8] = a[1, 8, 9] = 1.0  # two neighbours: IMED² = 2·g(0) + 2·g(1, 0)
    got = simk.imed(a, np.zeros_like(a))
    assert got[0] == pytest.approx(np.sqrt(4.0 * W0), rel=1e-12)  # 1.2632
    assert got[1] == pytest.approx(np.sqrt(2.0 * W0 + 2.0 * W1), rel=1e-12)  # 1.1322
    assert got[0] == pytest.approx(1.26324, abs=1e-5)


def test_imed_skips_the_border_and_the_corners_outside_the_circle():
    b = np.zeros((3, 32, 32))
    b[0, 2, 16] = 5.0  # within 3 px of the edge: never a centre, neighbours' d = 0
    b[1, 4, 4] = 5.0  # inside the border but outside the inscribed circle (144 + 144 > 256)
    b[2, 4, 16] = 5.0  # inside both: counted
    got = simk.imed(b, np.zeros_like(b))
    assert got[0] == 0.0 and got[1] == 0.0
    assert got[2] == pytest.approx(5.0 * np.sqrt(W0), rel=1e-12)
    # the sign of the difference does not matter, the order of the images neither
    assert simk.imed(np.zeros_like(b), b)[2] == pytest.approx(got[2], rel=1e-12)


def test_imed_kernel_is_xmipps_table_and_the_sum_is_the_direct_one():
    w = simk.imed_weights()
    # entries of the literal 7×7 table of Xmipp's imedDistance (filters.cpp)
    assert w[3, 3] == pytest.approx(0.398942280401433, abs=1e-15)
    assert w[2, 3] == pytest.approx(0.241970724519143, abs=1e-15)
    assert w[2, 2] == pytest.approx(0.146762663173740, abs=1e-15)
    assert w[0, 0] == pytest.approx(0.000049233388666, abs=1e-15)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 18, 18))
    d, total = a - b, 0.0
    for i in range(3, 15):  # the definition, term by term
        for j in range(3, 15):
            if (i - 9) ** 2 + (j - 9) ** 2 <= 81:
                total += d[i, j] * (w * d[i - 3:i + 4, j - 3:j + 4]).sum()
    assert simk.imed(a[None], b[None])[0] == pytest.approx(np.sqrt(total), rel=1e-12)


# --------------------------------------------------------------------------- simulated data

def _context(vol, vs, origin, sim, resolution, du=None, dv=None):
    """Context with the particles of ``sim`` written to a STAR file whose defocus U/V are the
    true defocus plus ``du``/``dv`` (Å per particle; no astigmatism in the images)."""
    folder = tempfile.mkdtemp(prefix="l4ctf_")
    star, _ = write_relion(folder, sim)
    if du is not None:
        lines, i = [], 0
        for line in open(star, encoding="utf-8").read().splitlines():
            if "@particles.mrcs" in line:
                p = line.split()
                df = float(p[-3])
                p[-3], p[-2] = f"{df + du[i]:.2f}", f"{df + dv[i]:.2f}"
                line, i = " ".join(p), i + 1
            lines.append(line)
        with open(star, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    ctx = Context.of(Map(vol, vs, origin), float(vol.max() * 0.2), resolution=resolution)
    ctx.particles = ParticlesData(read_particles(star), ctx.map, None)
    return ctx


@pytest.fixture(scope="module")
def hb():
    """The 5ME2 map at 2 Å (6 Å resolution) and 200 particles at SNR 0.1 with CTF, each at
    its own random orientation, exact angles and shifts."""
    vol, vs, origin = S.simulate(voxel_size=2.0, resolution=6.0)
    sim = simulate_particles(vol, vs, n_classes=200, per_class=1, snr=0.1, ctf=True,
                             jitter_deg=0.0, shift_jitter=0.0, seed=3)
    return vol, vs, origin, sim


# --------------------------------------------------------------------------- 4.a

def test_4a_cc_of_true_angles_is_that_of_signal_plus_white_noise():
    """Map at 3.5 Å, band-limited to 20 Å: the working grid is the map's own (pixel
    max(3.5, 10/3) Å), the low-pass at 10 Å leaves the signal untouched and keeps the share
    mean(H²) of the white noise, so CC_i = √(s_i/(1 + s_i)), s_i = v_i/(σ²·mean(H²))."""
    snr = 0.5
    vol, vs, origin = S.simulate(voxel_size=3.5, resolution=20.0, shape=(32, 32, 32))
    kw = dict(n_classes=150, per_class=1, ctf=True, jitter_deg=0.0, shift_jitter=0.0, seed=1)
    sim = simulate_particles(vol, vs, snr=snr, **kw)
    clean = simulate_particles(vol, vs, snr=1e12, **kw)["particles"]  # same draws, no noise
    b = clean.shape[-1]
    mask = circular_mask(b)
    v = clean[:, mask].var(axis=1)
    sigma2 = v.mean() / snr  # the simulator's noise variance
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(b), np.fft.fftfreq(b)))
    t = np.clip((f - vs / 10.0) / 0.02, 0, 1)
    h2 = np.mean((0.5 * (1 + np.cos(np.pi * t))) ** 2)  # Parseval: filtered white noise share
    s = v / (sigma2 * h2)
    expected = np.sqrt(s / (1 + s))
    res = run_item(similarity, _context(vol, vs, origin, sim, resolution=None))
    assert res.status == "ok" and res.metrics["pixel_size_A"] == pytest.approx(3.5)
    assert res.metrics["target_resolution_A"] == 10.0
    ratio = res.data["cc"] / expected
    assert np.median(ratio) == pytest.approx(1.0, abs=0.02)
    assert res.metrics["cc_median"] == pytest.approx(float(np.median(expected)), abs=0.02)


def test_4a_randomised_angles_are_the_low_cc_particles(hb):
    vol, vs, origin, sim = hb
    good = run_item(similarity, _context(vol, vs, origin, sim, resolution=6.0))
    assert good.status == "ok" and not good.evaluable and not good.warnings
    assert any("no automatic criterion" in n for n in good.notes)
    assert good.metrics["fraction_below_null"] <= 0.1  # 5 % of the null's tail, plus noise
    assert good.metrics["cc_median"] > good.metrics["null_cc_threshold"]
    assert good.metrics["fraction_random_like_max"] <= 0.05
    rng = np.random.default_rng(7)
    bad = rng.random(len(sim["eulers"])) < 0.3
    wrong = dict(sim, eulers=sim["eulers"].copy())
    wrong["eulers"][bad] = random_eulers(int(bad.sum()), rng)
    res = run_item(similarity, _context(vol, vs, origin, wrong, resolution=6.0))
    cc, thr = res.data["cc"], res.data["threshold"]
    flagged = cc <= thr
    assert (flagged & bad).sum() / flagged.sum() >= 0.8  # precision of "flagged = randomised"
    assert (flagged & bad).sum() / bad.sum() >= 0.8  # and recall
    assert np.median(cc[bad]) < np.median(cc[~bad]) - 0.15  # two groups
    assert res.metrics["fraction_below_null"] == pytest.approx(bad.mean(), abs=0.08)
    assert res.metrics["fraction_random_like_max"] == pytest.approx(bad.mean(), abs=0.1)
    csv = [a for a in res.artefacts if a.name == "similarity.csv"][0]
    assert [c[0] for c in csv.columns] == ["particle", "cc", "imed", "cc_random_orientation",
                                          "defocus_A"]
    assert np.allclose(dict(csv.columns)["defocus_A"], sim["defocus_um"] * 1e4, atol=0.01)


def test_4a_without_ctf_says_so_and_draws_three_panels(hb, monkeypatch):
    from cryovalid.figures import similarity as fig_mod

    cap = FigureCapture(monkeypatch, fig_mod)
    vol, vs, origin, _ = hb
    sim = simulate_particles(vol, vs, n_classes=40, per_class=1, snr=1.0, ctf=False, seed=4)
    res = run_item(similarity, _context(vol, vs, origin, sim, resolution=6.0))
    assert res.status == "ok" and res.metrics["ctf_applied"] is False
    assert res.data["defocus"] is None and any("no CTF" in n for n in res.notes)
    assert res.metrics["cc_median"] > 0.5
    d = fig_mod.draw_similarity(res, None)
    png_checks(d, ["similarity.png"])
    cap.check_print_sizes()
    assert "no defocus panel" in d.figures[0].caption


# --------------------------------------------------------------------------- 4.i

def test_4i_true_defocus_is_centred_and_passes(hb):
    vol, vs, origin, sim = hb
    res = run_item(ctf_stability, _context(vol, vs, origin, sim, resolution=6.0))
    m = res.metrics
    assert res.status == "ok", res.warnings
    assert abs(m["ddiff_A_median"]) < 100.0  # the estimator's median error (stated tolerance)
    assert m["ddiff_median_ci_lo_A"] < 0 < m["ddiff_median_ci_hi_A"]
    assert m["cc_after_median"] >= m["cc_before_median"] - 0.01
    assert m["defocus_tolerance_A"] == pytest.approx(36.0 / (2 * 0.019687), rel=1e-3)
    assert m["scale_median"] == 1.0 and m["bfactor_A2_median"] == 0.0  # relative by definition
    assert len(res.tables[0].rows) == 7


def test_4i_defocus_offset_by_2000_is_recovered_and_warns(hb):
    vol, vs, origin, sim = hb
    n = len(sim["eulers"])
    off = np.full(n, 2000.0)
    res = run_item(ctf_stability, _context(vol, vs, origin, sim, 6.0, off, off))
    m = res.metrics
    assert m["ddiff_A_median"] == pytest.approx(2000.0, abs=100.0)
    assert res.status == "warnings"
    assert [w.code for w in res.warnings] == ["ddiff_not_centred"]
    assert "not centred" in res.warnings[0] and res.summary == ctf_stability.SUMMARY


def test_4i_astigmatism_given_wrong_by_6000_warns(hb):
    vol, vs, origin, sim = hb
    n = len(sim["eulers"])
    res = run_item(ctf_stability, _context(vol, vs, origin, sim, 6.0, np.full(n, 3000.0),
                                           np.full(n, -3000.0)))
    codes = {w.code for w in res.warnings}
    assert "adiff_not_centred" in codes and "ddiff_not_centred" not in codes
    assert res.metrics["adiff_A_median"] > 4000.0  # 6000 given, the images have none
    assert abs(res.metrics["ddiff_A_median"]) < 200.0


def test_4i_needs_ctf_and_resolution(hb):
    vol, vs, origin, _ = hb
    sim = simulate_particles(vol, vs, n_classes=5, per_class=1, snr=1.0, ctf=False, seed=4)
    res = run_item(ctf_stability, _context(vol, vs, origin, sim, resolution=6.0))
    assert res.status == "not_applicable" and "CTF" in res.reason
    sim = simulate_particles(vol, vs, n_classes=5, per_class=1, snr=1.0, ctf=True, seed=4)
    res = run_item(ctf_stability, _context(vol, vs, origin, sim, resolution=None))
    assert res.status == "not_applicable" and "--resolution" in res.reason
    res = run_item(ctf_stability, _context(vol, vs, origin, sim, resolution=3.0))
    assert res.status == "failed" and "Nyquist" in res.reason


@pytest.mark.slow
def test_4i_and_4a_figures(hb, monkeypatch):
    from cryovalid import registry
    from cryovalid.figures import ctf_stability as fig_ctf
    from cryovalid.figures import similarity as fig_sim

    cap = FigureCapture(monkeypatch, fig_sim)  # and common (the histograms of 4.i)
    vol, vs, origin, sim = hb
    ctx = _context(vol, vs, origin, sim, resolution=6.0)
    d = registry.draws()["4.i"](run_item(ctf_stability, ctx), ctx)
    png_checks(d, [p[1] for p in fig_ctf.PANELS])
    d = registry.draws()["4.a"](run_item(similarity, ctx), ctx)
    png_checks(d, ["similarity.png"])
    assert d.figures[0].caption.endswith("defocus against CC.")
    cap.check_print_sizes()


def test_4i_relative_bfactor_recovers_a_known_envelope(hb):
    """Half of the particles get an extra envelope exp(−B s²/4), B = 200 Å², before the
    noise (SNR 10): their refined B, relative to the median, is 200 Å² above the others'
    (± 20; at SNR 0.1 the estimator's noise shrinks the difference to about 140)."""
    vol, vs, origin, sim = hb
    kw = dict(n_classes=200, per_class=1, ctf=True, jitter_deg=0.0, shift_jitter=0.0, seed=3)
    clean = simulate_particles(vol, vs, snr=1e12, **kw)["particles"].astype(np.float64)
    b = clean.shape[-1]
    s2 = np.fft.fftfreq(b, vs)[:, None] ** 2 + np.fft.rfftfreq(b, vs)[None, :] ** 2
    blurred = np.arange(len(clean)) % 2 == 1
    ft = np.fft.rfft2(clean)
    ft[blurred] *= np.exp(-200.0 * s2 / 4.0)
    clean = np.fft.irfft2(ft, s=(b, b))
    mask = circular_mask(b)
    sd = np.sqrt(clean[:, mask].var(axis=1).mean() / 10.0)
    noisy = clean + np.random.default_rng(11).normal(0, sd, clean.shape)
    res = run_item(ctf_stability, _context(vol, vs, origin, dict(sim, particles=noisy.astype(
        np.float32)), resolution=6.0))
    bf = res.data["values"]["bfactor"]
    assert np.median(bf[blurred]) - np.median(bf[~blurred]) == pytest.approx(200.0, abs=20.0)


def test_4i_refines_a_phase_plates_shift(hb):
    """Phase-plate data: 200 particles simulated with a 60° phase shift at SNR 0.3, the STAR
    saying 30° (rlnPhaseShift): the phase is refined (median 59.92°; the per-particle
    estimates spread over a 95 % interval of 32-84°, so the median's standard error is about
    1.2°: tolerance 5°), and the defocus stays centred (median ddiff −46 Å; searching the
    defocus alone, then the phase alone, let the defocus absorb part of the phase error: 50°
    and −270 Å at SNR 0.1); no warning. Without rlnPhaseShift the phase is kept as given (0)
    and said to be."""
    vol, vs, origin, _ = hb
    sim = simulate_particles(vol, vs, n_classes=200, per_class=1, snr=0.3, ctf=True,
                             jitter_deg=0.0, shift_jitter=0.0, seed=3, phase_shift_deg=60.0)
    res = run_item(ctf_stability, _context(vol, vs, origin, dict(sim, phase_shift_deg=30.0),
                                           resolution=6.0))
    m = res.metrics
    assert m["phase_refined"] is True
    assert m["phase_deg_median"] == pytest.approx(60.0, abs=5.0)
    assert abs(m["ddiff_A_median"]) < 150.0 and not res.warnings, [str(w) for w in res.warnings]
    assert m["cc_after_median"] > m["cc_before_median"]
    assert "refined" in res.tables[0].rows[4][0] and "not refined" not in res.tables[0].rows[4][0]
    plain = run_item(ctf_stability, _context(vol, vs, origin, hb[3], resolution=6.0))
    assert plain.metrics["phase_refined"] is False and plain.metrics["phase_deg_median"] == 0.0
