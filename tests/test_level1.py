"""Level 1 global items: half-map input checks, 1.a (FSC, DPR, SSNR, masked FSC) and 1.b (FDR-FSC).

Known answers come from simulated half maps (tests/simulate.py: simulate_half_maps) whose noise is
shaped so that the expected FSC per shell is S/(S+N) = SNR/(1+SNR) with a designed SNR(s); every
"truth" below is computed from that design, independently of the code under test.
"""
from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import scipy.fft
from scipy.stats import norm

from conftest import store_artefacts
from cryovalid.context import Context
from cryovalid.errors import InputError
from cryovalid.io.halfmaps import check_half_maps, read_half_maps
from cryovalid.io.maps import Map
from cryovalid.items import fdr_fsc, global_resolution
from cryovalid.items.base import run_item
from cryovalid.kernels import fourier, masks
from cryovalid.kernels import fsc as K

from simulate import (freq2, half_map_fsc, half_map_snr, shape_map, simulate,
                      simulate_half_maps, true_crossing, write_mrc)

# (resolution Å, voxel size Å, box (z, y, x)); the last one is non-cubic.
CASES = [(2.5, 0.9, (96, 96, 96)), (3.5, 1.0, (96, 96, 96)), (4.0, 1.2, (80, 80, 80)),
         (6.0, 1.5, (64, 56, 72))]


def _context(d, ts, shape, tmp_path, seed=0, reported=None, pct=95.0, steepness=16.0):
    h1, h2, sig, ts, origin = simulate_half_maps(d, ts, shape=shape, seed=seed,
                                                 steepness=steepness)
    main = Map(shape_map(sig, ts, resolution=d), ts, origin, path="main.mrc")
    thr = float(np.percentile(main.data, pct))
    halves = (Map(h1, ts, origin, path="h1.mrc"), Map(h2, ts, origin, path="h2.mrc"))
    ctx = Context.of(main, thr, resolution=reported, half_maps=halves)
    return ctx, sig


def _truth(curve, threshold, ts):
    s = true_crossing(curve, threshold, 1e-3, 0.5 / ts)
    return None if s is None else 1.0 / s


def _va_half_bit(s, shape, ts):
    """Half-bit curve at frequency s written out from EMDB VA's formula (shell r = s·N·Ts, VA's
    shell volume between r-1 and r, 0.99² reduction, density factor for a non-cubic box)."""
    n = max(shape)
    r = s * n * ts
    vol = 4.0 / 3.0 * np.pi * (r ** 3 - (r - 1.0) ** 3)
    neff = max(vol * (1.5 * 0.66) ** 2 / 2.0 * np.prod(shape) / n ** 3, 1.0)
    q = np.sqrt(neff)
    return (0.2071 + 1.9102 / q) / (1.2071 + 0.9102 / q)


def _fsc_at_dpr(deg, n=400_000):
    """FSC = SNR/(1+SNR) of two halves S + noise whose amplitude-weighted rms phase difference
    (the DPR) is ``deg`` degrees (Monte Carlo). Signal and noise are complex Gaussian: a
    macromolecule's structure factors follow Wilson statistics (with unit-modulus signal the
    answer would be 0.67)."""
    from scipy.optimize import brentq

    rng = np.random.default_rng(0)
    s, z1, z2 = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
                 for _ in range(3))

    def dpr(snr):
        f1, f2 = s + z1 / np.sqrt(snr), s + z2 / np.sqrt(snr)
        d, w = np.angle(f1 * np.conj(f2)), np.abs(f1) + np.abs(f2)
        return np.degrees(np.sqrt((w * d * d).sum() / w.sum()))

    snr = brentq(lambda a: dpr(a) - deg, 0.05, 100.0)
    return snr / (1.0 + snr)


def test_dpr_fsc_equivalent_is_stated_right():
    assert _fsc_at_dpr(K.DPR_THRESHOLD_DEG) == pytest.approx(global_resolution.DPR_FSC_EQUIVALENT,
                                                             abs=0.01)


# ---- 1.a known answers -------------------------------------------------------------------
@pytest.mark.parametrize("d,ts,shape", CASES)
def test_fsc_resolutions_known_answer(d, ts, shape, tmp_path):
    """FSC 0.143 within 3 % of the designed resolution; 0.5 and half-bit crossings within 3 % of
    the designed curve's crossings; SSNR within 5 % of its Wilson-statistics prediction."""
    ctx, _ = _context(d, ts, shape, tmp_path, reported=d)
    res = run_item(global_resolution, ctx)
    assert res.status == "ok", (res.reason, res.warnings)
    m = res.metrics
    fsc_true = lambda s: half_map_fsc(s, d)  # noqa: E731
    assert m["fsc_0143_A"] == pytest.approx(d, rel=0.03)
    assert m["fsc_05_A"] == pytest.approx(_truth(fsc_true, 0.5, ts), rel=0.03)
    hb_true = _truth(fsc_true, lambda s: _va_half_bit(s, shape, ts), ts)
    assert m["halfbit_A"] == pytest.approx(hb_true, rel=0.03)
    # Wilson statistics: mean |F1+F2|/|F1-F2| = (π/2)·sqrt(1 + 2·SNR); SSNR = 1 at ratio 2,
    # i.e. SNR = (16/π² - 1)/2 (true FSC ≈ 0.237). Approximate model, hence 5 %.
    snr_star = (16.0 / np.pi ** 2 - 1.0) / 2.0
    ssnr_true = _truth(lambda s: half_map_snr(s, d), snr_star, ts)
    assert m["ssnr_A"] == pytest.approx(ssnr_true, rel=0.05)
    # estimates for the abstract: the reference's three
    # DPR 45°: where Gaussian halves have the SNR at which the amplitude-weighted rms phase
    # difference is 45° (Monte Carlo below, FSC ≈ 0.77); 5 % as for the SSNR
    assert m["dpr_A"] == pytest.approx(_truth(fsc_true, _fsc_at_dpr(45.0), ts), rel=0.05)
    # estimates for the abstract: those compared with the reported resolution (not the DPR)
    methods = [e["method"] for e in res.resolution_estimates]
    assert methods[0].startswith("FSC") and methods[1].startswith("SSNR") and len(methods) == 2


@pytest.mark.parametrize("d,ts,shape", CASES[:3])
def test_masked_fsc_known_answer(d, ts, shape, tmp_path):
    """Masked, corrected FSC = 0.143 within 5 % of the partial-volume prediction
    SNR_masked = SNR·f_S/f_N (f_N = mean of mask², f_S = fraction of the signal power near the
    resolution kept by the mask; RELION's fsc_part, Sindelar & Grigorieff 2012). The
    approximation needs the mask's transform to be narrow compared with the FSC fall-off, which
    holds in these cubic boxes (r ≥ 20 shells at the resolution)."""
    ctx, sig = _context(d, ts, shape, tmp_path, reported=d)
    res = run_item(global_resolution, ctx)
    m = ctx.map.soft_mask
    f_n = float(np.mean(m * m))
    s = np.sqrt(freq2(shape, ts))
    band = ((s > 0.85 / d) & (s < 1.15 / d)).astype(np.float32)
    sb = scipy.fft.irfftn(scipy.fft.rfftn(sig) * band, s=shape)
    f_s = float(np.sum((m * sb) ** 2) / np.sum(sb ** 2))
    gain = f_s / f_n
    pred = _truth(lambda x: half_map_snr(x, d) * gain / (1 + half_map_snr(x, d) * gain),
                  0.143, ts)
    assert res.metrics["fsc_0143_masked_A"] == pytest.approx(pred, rel=0.05)
    assert res.metrics["fsc_0143_masked_A"] < res.metrics["fsc_0143_A"]


def test_phase_randomisation_removes_mask_correlation():
    """Signal with a hard cut-off at 6 Å plus independent noise, masked with a sharp binary mask:
    the mask spreads correlation beyond 6 Å, so the raw masked FSC stays high; the corrected FSC
    must drop to zero within 3 shells of the cut-off (RELION keeps 2 shells after the
    randomisation shell uncorrected)."""
    d, ts, shape = 6.0, 1.0, (80, 80, 80)
    sig, ts, _ = simulate(voxel_size=ts, shape=shape)
    s = np.sqrt(freq2(shape, ts))
    sl = scipy.fft.irfftn(scipy.fft.rfftn(sig) * (s <= 1 / d), s=shape).astype(np.float32)
    rng = np.random.default_rng(0)
    h1 = sl + rng.normal(0, 0.3 * sl.std(), shape).astype(np.float32)
    h2 = sl + rng.normal(0, 0.3 * sl.std(), shape).astype(np.float32)
    hard = masks.hard_mask(sl, np.percentile(sl, 90), ts).astype(np.float32)
    sh = fourier.FourierShells(shape, ts)
    F1, F2 = fourier.rfft(h1), fourier.rfft(h2)
    out = K.masked_fsc(h1, h2, F1, F2, hard, sh, K.fsc(F1, F2, sh))
    cut_shell = max(shape) * ts / d  # 13.3
    raw = K.first_crossing(sh.frequency, out.masked, 0.143).frequency * max(shape) * ts
    cor = K.first_crossing(sh.frequency, out.corrected, 0.143).frequency * max(shape) * ts
    assert raw > cut_shell + 10  # the mask-induced correlation is real
    assert abs(cor - cut_shell) <= 3.0
    assert np.all(np.abs(out.corrected[int(cut_shell) + 4:]) < 0.05)


def test_dpr_known_phase_residual():
    """Half 2 = half 1 with every phase shifted by ±b(r) (random sign), b growing linearly with
    the shell: the DPR of shell r is exactly b(r), so DPR = 45° at b = 45°."""
    sig, ts, _ = simulate(voxel_size=1.0, shape=(64, 64, 64))
    sh = fourier.FourierShells(sig.shape, ts)
    F1 = fourier.rfft(sig)
    s = fourier.frequency_magnitude(sig.shape, ts)
    b_max = 150.0
    b = b_max * s / sh.frequency[-1]  # degrees, continuous in s
    sign = np.where(np.random.default_rng(1).random(F1.shape) < 0.5, -1.0, 1.0)
    F2 = (F1 * np.exp(1j * np.radians(b * sign))).astype(np.complex64)
    curves = K.half_map_curves(F1, F2, sh)
    # the shell's weighted rms of b over its coefficients, for r >= 1
    rms_b = np.sqrt(sh.sum((np.abs(F1) * 2) * b * b) / sh.sum(np.abs(F1) * 2))
    np.testing.assert_allclose(curves.dpr[1:], rms_b[1:], rtol=1e-3)
    cross = K.first_crossing(sh.frequency, curves.dpr, K.DPR_THRESHOLD_DEG, "above")
    expected_freq = K.DPR_THRESHOLD_DEG / b_max * sh.frequency[-1]
    assert cross.frequency == pytest.approx(expected_freq, rel=0.02)
    assert K.DPR_THRESHOLD_DEG == 45.0  # Frank et al. 1981 (the spec's corrected decision)


# ---- 1.b known answers -------------------------------------------------------------------
def _predicted_fdr_shell(d, ts, shape, gain, alpha=0.01, coef=0.7):
    """Last shell where the expected FSC exceeds the detection limit z/sqrt(2m) of a
    permutation test on m = 0.7·(independent coefficients) samples, z at the
    Benjamini–Yekutieli level α·J/(M·c(M)) with J = shells significant so far (normal
    approximation of the permutation distribution, sd 1/sqrt(2m) for complex coefficients).
    ``gain`` = f_S/f_N of the spherical mask (it removes noise outside the sphere)."""
    n = max(shape)
    grids = np.meshgrid(*[np.fft.fftfreq(k) / ts for k in shape], indexing="ij")
    shell = np.rint(np.sqrt(sum(g * g for g in grids)) * n * ts).astype(int)
    n_sh = n // 2 + 1
    n_unique = np.bincount(shell.ravel(), minlength=n_sh + 60)[:n_sh] / 2.0
    c = np.sum(1.0 / np.arange(1, n_sh + 1))
    snr = half_map_snr(np.arange(n_sh) / (n * ts), d) * gain
    rho = snr / (1 + snr)
    last = 0
    for r in range(1, n_sh):
        m = coef * n_unique[r]
        z = norm.isf(alpha * (r + 1) / (n_sh * c))
        if (m < 100 and rho[r] > 0.75) or rho[r] > z / np.sqrt(2 * m):
            last = r
        else:
            break
    return last


@pytest.mark.parametrize("d,ts,shape", [CASES[0], CASES[2], CASES[3]])
def test_fdr_fsc_known_answer(d, ts, shape, tmp_path):
    """FDR-FSC resolution within one shell (and 10 %) of the statistical prediction. It is
    better than the 0.143 resolution here because the test detects the FSC tail (FSC ≈ 0.03-0.05
    in these boxes), as Beckers & Sachse describe."""
    ctx, sig = _context(d, ts, shape, tmp_path, reported=d)
    res = run_item(fdr_fsc, ctx)
    assert res.status == "ok", (res.reason, res.warnings)
    sphere = masks.spherical_mask(shape, min(shape) / 2 - 4, 2.0)
    s = np.sqrt(freq2(shape, ts))
    band = ((s > 0.85 / d) & (s < 1.3 / d)).astype(np.float32)
    sb = scipy.fft.irfftn(scipy.fft.rfftn(sig) * band, s=shape)
    gain = float(np.sum((sphere * sb) ** 2) / np.sum(sb ** 2)) / float(np.mean(sphere ** 2))
    pred_shell = _predicted_fdr_shell(d, ts, shape, gain)
    n = max(shape)
    got = res.metrics["fdr_fsc_A"]
    got_shell = n * ts / got
    assert abs(got_shell - pred_shell) <= 1.0 + 1e-9
    assert got == pytest.approx(n * ts / pred_shell, rel=0.10)
    assert got < d  # beyond the 0.143 resolution
    assert res.resolution_estimates == [{"method": "FDR-FSC (1.b)", "resolution_A": got}]


@pytest.mark.parametrize("d,ts,shape", CASES)
def test_fdr_fsc_within_10_percent_when_signal_ends_at_d(d, ts, shape, tmp_path):
    """Half maps whose signal ends sharply at d (SNR falls e-fold every ~1.3 % in frequency
    past the 0.143 crossing, as in a map whose information stops at its resolution): the
    FDR-FSC resolution is within 10 % of d, in cubic and non-cubic boxes. With a gradual
    tail (steepness 16, test above) it is finer than d, as the statistics predict."""
    ctx, _ = _context(d, ts, shape, tmp_path, reported=d, steepness=40.0)
    res = run_item(fdr_fsc, ctx)
    assert res.status == "ok", (res.reason, res.warnings)
    assert res.metrics["fdr_fsc_A"] == pytest.approx(d, rel=0.10)


def test_fdr_fsc_draws_and_pvalues():
    """Every shell beyond the small-sample rule gets at least the default number of draws and
    p-values in (0, 1]; a shell with no signal has a p-value that is not tiny."""
    d, ts, shape = 4.0, 1.2, (64, 64, 64)
    h1, h2, *_ = simulate_half_maps(d, ts, shape=shape)
    sh = fourier.FourierShells(shape, ts)
    out = K.fdr_fsc(fourier.rfft(h1), fourier.rfft(h2), sh)
    c = np.sum(1.0 / np.arange(1, sh.n_shells + 1))
    need = int(np.ceil(sh.n_shells * c / 0.01))
    used = out.n_draws[out.n_draws > 0]
    assert used.size > sh.n_shells - 4 and used.min() >= need
    perm = out.n_draws > 0
    assert np.all((out.p_values[perm] > 0) & (out.p_values[perm] <= 1))
    assert set(out.p_values[~perm]) <= {0.0, 1.0}  # DC and the small-sample rule
    last = sh.n_shells - 1  # FSC ≈ 0.001 at Nyquist: no detectable signal
    assert out.p_values[last] > 0.01


# ---- kernels ------------------------------------------------------------------------------
def test_first_crossing_rules():
    x = np.arange(6) * 0.1
    y = np.array([-1.0, 0.9, 0.5, 0.3, 0.1, 0.0])  # DC is -1 and must be ignored
    c = K.first_crossing(x, y, 0.2)
    assert c.status == K.CROSSES and c.index == 4
    assert c.frequency == pytest.approx(0.35)  # halfway between 0.3 (x=.3) and 0.1 (x=.4)
    assert c.resolution == pytest.approx(1 / 0.35)
    assert K.first_crossing(x, y, 0.95).status == K.AT_START  # below already at shell 1
    assert K.first_crossing(x, y, -0.5).status == K.NEVER
    assert K.first_crossing(x, y, 0.95).resolution is None
    up = K.first_crossing(x, -y, -0.2, mode="above")
    assert up.frequency == pytest.approx(0.35)
    curve = np.array([1.0, 0.2, 0.2, 0.2, 0.3, 0.3])  # a threshold curve
    cc = K.first_crossing(x, y, curve)
    assert cc.index == 4 and cc.frequency == pytest.approx(0.3 + 0.1 * 0.1 / 0.3)
    nan = np.array([1.0, 0.9, np.nan, 0.5, 0.1, 0.0])
    assert K.first_crossing(x, nan, 0.2).index == 4


def test_benjamini_yekutieli_hand_computed():
    p = np.array([0.001, 0.04, 0.01, 0.5])
    c = 1 + 1 / 2 + 1 / 3 + 1 / 4  # 2.0833
    # sorted: .001 (rank 1), .01 (2), .04 (3), .5 (4); raw = p·m·c/rank, then running minimum
    raw = np.array([0.001 * 4 * c / 1, 0.01 * 4 * c / 2, 0.04 * 4 * c / 3, 0.5 * 4 * c / 4])
    q_sorted = np.minimum(np.minimum.accumulate(raw[::-1])[::-1], 1)
    expected = np.array([q_sorted[0], q_sorted[2], q_sorted[1], q_sorted[3]])
    np.testing.assert_allclose(K.benjamini_yekutieli(p), expected)


def test_threshold_curves_match_emdb_va_formula():
    sh = fourier.FourierShells((100, 100, 100), 1.0)
    t = K.threshold_curves(sh)
    neff = 4 / 3 * np.pi * (10 ** 3 - 9 ** 3) * 0.99 ** 2 / 2  # shell 10, VA convention
    q = np.sqrt(neff)
    assert t["half_bit"][10] == pytest.approx((0.2071 + 1.9102 / q) / (1.2071 + 0.9102 / q))
    assert t["one_bit"][10] == pytest.approx((0.5 + 2.4142 / q) / (1.5 + 1.4142 / q))
    assert t["three_sigma"][10] == pytest.approx(3 / (q + 2))
    assert t["half_bit"][0] == 1.0 and np.all(t["0.143"] == 0.143)
    # non-cubic: sample density scales n_eff
    sh2 = fourier.FourierShells((50, 100, 100), 1.0)
    assert K.effective_voxels(sh2)[10] == pytest.approx(neff / 2)


def test_unique_half_space_keeps_each_pair_once():
    for shape in [(8, 6, 10), (7, 5, 9), (6, 8, 7)]:
        keep = K.unique_half_space(shape)
        full = np.prod(shape)
        # self-conjugate points: every axis index 0 or n/2 (even n)
        self_conj = np.prod([2 if n % 2 == 0 else 1 for n in shape])
        assert keep.sum() == (full - self_conj) // 2 + self_conj
        # a real map's rfft: the kept coefficients carry the whole power exactly once
        v = np.random.default_rng(0).standard_normal(shape)
        F = np.fft.rfftn(v)
        Ffull = np.fft.fftn(v)
        halves = [(0, n // 2) if n % 2 == 0 else (0,) for n in shape]  # self-paired indices
        p_self = sum(abs(Ffull[i, j, k]) ** 2
                     for i in halves[0] for j in halves[1] for k in halves[2])
        assert 2 * np.sum(np.abs(F[keep]) ** 2) - p_self == pytest.approx(
            np.sum(np.abs(Ffull) ** 2), rel=1e-9)


# ---- degenerate inputs ---------------------------------------------------------------------
def test_identical_halves(tmp_path):
    h1, _, sig, ts, origin = simulate_half_maps(4.0, 1.2, shape=(48, 48, 48))
    main = Map(sig, ts, origin)
    half = Map(h1, ts, origin, path="h.mrc")
    ctx = Context.of(main, float(np.percentile(sig, 95)), resolution=4.0,
                  half_maps=(half, half))
    a = run_item(global_resolution, ctx)
    assert a.status == "warnings" and a.metrics["identical_halves"] is True
    assert a.metrics["fsc_0143_A"] is None and a.metrics["dpr_A"] is None
    assert a.metrics["ssnr_A"] is None
    assert len(a.warnings) == 1 and "identical" in a.warnings[0]
    assert "identical" in a.summary and a.resolution_estimates == []
    # 1.b must not call Nyquist a resolution: identical halves cannot be measured
    b = run_item(fdr_fsc, ctx)
    assert b.status == "failed" and "identical" in b.reason
    assert b.resolution_estimates == [] and b.metrics["fdr_fsc_A"] is None


def test_unrelated_noise_halves(tmp_path):
    rng = np.random.default_rng(5)
    shape = (48, 48, 48)
    n1 = rng.standard_normal(shape).astype(np.float32)
    n2 = rng.standard_normal(shape).astype(np.float32)
    main = Map(n1 + n2, 1.0)
    ctx = Context.of(main, 2.0, resolution=3.0,
                  half_maps=(Map(n1, 1.0, path="a.mrc"), Map(n2, 1.0, path="b.mrc")))
    a = run_item(global_resolution, ctx)
    assert a.status == "warnings", a.reason
    assert a.metrics["fsc_0143_A"] is None
    assert any("no measurable signal" in w for w in a.warnings)
    assert "no measurable signal" in a.summary
    b = run_item(fdr_fsc, ctx)
    assert b.status == "ok", b.reason
    assert b.metrics["fdr_fsc_A"] is None and b.resolution_estimates == []


def test_no_half_maps_is_not_applicable(tmp_path):
    sig, ts, origin = simulate(voxel_size=2.0, shape=(32, 32, 32))
    ctx = Context.of(Map(sig, ts, origin), float(sig.max() / 3), 4.0)
    assert run_item(global_resolution, ctx).status == "not_applicable"
    assert run_item(fdr_fsc, ctx).status == "not_applicable"


def test_without_reported_resolution(tmp_path):
    ctx, _ = _context(4.0, 1.2, (48, 48, 48), tmp_path, reported=None)
    a = run_item(global_resolution, ctx)
    assert a.status == "ok" and a.criteria == global_resolution.CRITERIA_NO_RESOLUTION
    assert a.metrics["fsc_0143_A"] is not None
    b = run_item(fdr_fsc, ctx)
    assert b.status == "ok" and not b.evaluable and b.metrics["fdr_fsc_A"] is not None


def test_optimistic_resolution_warns(tmp_path):
    ctx, _ = _context(4.0, 1.2, (64, 64, 64), tmp_path, reported=2.5)
    a = run_item(global_resolution, ctx)
    assert a.status == "warnings"
    assert any("FSC (0.143)" in w and "2.50 Å" in w for w in a.warnings)
    assert "too optimistic" in a.summary
    b = run_item(fdr_fsc, ctx)
    assert b.status == "warnings" and "1.b" in b.summary


# ---- outputs --------------------------------------------------------------------------------
def test_fsc_csv_and_figures(tmp_path):
    from cryovalid.figures import fsc as figs

    ctx, _ = _context(4.0, 1.2, (48, 48, 48), tmp_path, reported=4.0)
    a = run_item(global_resolution, ctx)
    store_artefacts(a, tmp_path)
    with open(os.path.join(tmp_path, "fsc.csv")) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == ctx.map.shells.n_shells
    assert {"frequency_1_per_A", "resolution_A", "fsc_unmasked", "fsc_masked_corrected",
            "dpr_deg", "ssnr", "threshold_half_bit", "threshold_3sigma"} <= set(rows[0])
    r10 = rows[10]
    assert float(r10["frequency_1_per_A"]) == pytest.approx(10 / (48 * 1.2), rel=1e-5)
    assert float(r10["fsc_unmasked"]) == pytest.approx(a.data["fsc"][10], rel=1e-5)
    figs.draw_global_resolution(a, ctx)
    b = run_item(fdr_fsc, ctx)
    figs.draw_fdr_fsc(b, ctx)
    store_artefacts(b, tmp_path)
    with open(os.path.join(tmp_path, "fdr_fsc.csv")) as fh:
        fdr_rows = list(csv.DictReader(fh))
    assert fdr_rows[0]["resolution_A"] == ""  # shell 0: no resolution, and no "inf"
    assert rows[0]["resolution_A"] == ""
    for f in a.figures + b.figures:
        assert os.path.getsize(os.path.join(tmp_path, f.path)) > 1000


def test_half_fts_cached(tmp_path):
    ctx, _ = _context(4.0, 1.2, (32, 32, 32), tmp_path)
    f1, f2 = ctx.half_maps.fts
    assert ctx.half_maps.fts[0] is f1 and not f1.flags.writeable
    np.testing.assert_allclose(f1, np.fft.rfftn(ctx.half_maps[0].data), rtol=1e-4, atol=1e-2)


# ---- input checks -----------------------------------------------------------------------------
def _write(tmp_path, name, data, ts, origin=(0.0, 0.0, 0.0)):
    return write_mrc(tmp_path / name, data, ts, origin)


def test_read_half_maps_accepts_matching(tmp_path):
    rng = np.random.default_rng(0)
    v = rng.standard_normal((20, 24, 28)).astype(np.float32)
    from cryovalid.io.maps import read_map

    main = read_map(_write(tmp_path, "m.mrc", v, 1.3, (10.0, 0.0, -5.2)))
    p1 = _write(tmp_path, "h1.mrc", v + 1, 1.3, (10.0, 0.0, -5.2))
    p2 = _write(tmp_path, "h2.mrc", v - 1, 1.3, (10.0, 0.0, -5.2))
    h1, h2 = read_half_maps(p1, p2, main)
    assert h1.shape == main.shape and h2.sha256 and h1.sha256 != h2.sha256


@pytest.mark.parametrize("what,kwargs,needle", [
    ("box", {"data_shape": (20, 24, 30)}, "box 30x24x20"),
    ("voxel", {"ts": 1.4}, "voxel size 1.4000"),
    ("origin", {"origin": (12.0, 0.0, -5.2)}, "origin"),
])
def test_mismatched_halves_raise_one_line(tmp_path, what, kwargs, needle):
    from cryovalid.io.maps import read_map

    rng = np.random.default_rng(0)
    v = rng.standard_normal((20, 24, 28)).astype(np.float32)
    main = read_map(_write(tmp_path, "m.mrc", v, 1.3, (10.0, 0.0, -5.2)))
    p1 = _write(tmp_path, "h1.mrc", v, 1.3, (10.0, 0.0, -5.2))
    bad = rng.standard_normal(kwargs.get("data_shape", v.shape)).astype(np.float32)
    p2 = _write(tmp_path, "h2.mrc", bad, kwargs.get("ts", 1.3),
                kwargs.get("origin", (10.0, 0.0, -5.2)))
    with pytest.raises(InputError) as exc:
        read_half_maps(p1, p2, main)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(str(p2)) and needle in msg
    # the same check on Map objects, half 1 wrong
    with pytest.raises(InputError, match="main map"):
        check_half_maps(main, read_map(p2), read_map(p1))


def test_half_map_section_figures(tmp_path):
    from cryovalid.figures.halfmaps import draw_half_maps
    from cryovalid.store import FolderStore

    ctx, _ = _context(4.0, 1.2, (32, 32, 32), tmp_path)
    drawing = draw_half_maps(ctx)
    figs = drawing.figures
    assert [os.path.basename(f.path) for f in figs] == [
        "half1_slices.png", "half2_slices.png", "half_difference_slices.png"]
    assert not os.path.exists(os.path.join(tmp_path, "figures"))  # figures never write
    store = FolderStore(str(tmp_path))
    for a in drawing.artefacts:
        store.write(a)
    for f in figs:
        assert os.path.getsize(os.path.join(tmp_path, f.path)) > 1000



def test_fsc_finer_than_nyquist(tmp_path):
    """Halves designed to cross 0.143 at 1.5 Å on 1.2 Å voxels (Nyquist 2.4 Å): the FSC stays
    above 0.143 up to Nyquist, so the resolution reads "finer than Nyquist" (the Nyquist value
    with a flag), not null."""
    ctx, _ = _context(1.5, 1.2, (48, 48, 48), tmp_path, reported=2.5)
    res = run_item(global_resolution, ctx)
    assert res.metrics["fsc_0143_A"] == pytest.approx(2.4)
    assert res.metrics["fsc_0143_A_finer_than_nyquist"] is True
    fact = next(f for f in res.facts if f.label.startswith("Resolution by the FSC"))
    assert fact.value == "finer than Nyquist (2.40 Å)"
    # a bound is not an estimate: the summary's range does not start at Nyquist
    assert all(e["method"] != "FSC 0.143 (1.a)" for e in res.resolution_estimates)
