"""1.d ResMap local resolution (Kucukelbir, Sigworth & Tagare 2014).

Known answers: the statistic equals ResMap's weighted-residual drop computed with its matrices;
the null tail probabilities match χ² / Monte Carlo; Benjamini–Yekutieli by hand; simulated half
maps (tests/simulate.py simulate_half_maps: expected FSC crossing 0.143 at d) give a median local
resolution within 15 % of d; pure-noise halves give no confident resolution.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cryovalid.context import Context
from cryovalid.io.maps import Map
from cryovalid.items import resmap
from cryovalid.items.base import run_item
from cryovalid.kernels import resmap as K

from simulate import blend_halves, shape_map, simulate_half_maps


def _ctx(h1, h2, sig, ts, origin, reported=4.0):
    main = Map(shape_map(sig, ts, resolution=4.0), ts, origin)
    thr = float(np.percentile(main.data, 95))
    return Context.of(main, thr, resolution=reported,
                      half_maps=(Map(h1, ts, origin, path="h1.mrc"),
                                 Map(h2, ts, origin, path="h2.mrc")))


@pytest.mark.parametrize("res,spacing", [(4.0, 1.0), (3.3, 1.5), (6.0, (1.0, 1.1, 1.2))])
def test_statistic_is_resmaps_weighted_residual_drop(res, spacing):
    m = K.local_model(res, spacing)
    assert m.filters.shape[1] == 16  # 17 model terms minus the constant of the null
    rng = np.random.default_rng(0)
    for _ in range(5):
        cube = rng.standard_normal(m.offsets.shape[0]) + 3.0
        direct = K.wrss_drop(m, cube)
        assert np.isclose(float(np.sum((m.filters.T @ cube) ** 2)), direct, rtol=1e-9)


def test_volume_statistic_matches_window_by_window():
    m = K.local_model(4.0, 1.3)
    rng = np.random.default_rng(1)
    vol = rng.standard_normal((20, 18, 22)).astype(np.float32)
    T = K.statistic_volume(vol, m)
    for v in [(5, 6, 7), (0, 0, 0), (19, 17, 21)]:
        cube = np.array([vol[tuple((np.array(v) + o) % vol.shape)] for o in m.offsets])
        assert np.isclose(T[v], K.wrss_drop(m, cube.astype(np.float64)), rtol=1e-4)


def test_noise_covariance_of_white_noise_is_sigma2_gram():
    m = K.local_model(4.0, 1.0)
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 2.0, (64, 64, 64)).astype(np.float32)
    mask = np.zeros(noise.shape, bool)
    mask[8:-8, 8:-8, 8:-8] = True
    _, null, C = K.trial_statistic(noise, noise, mask, m)
    G = 4.0 * m.filters.T @ m.filters  # σ² FᵀF: ResMap's Λ_c − Λ times σ²
    assert np.isclose(np.trace(C), np.trace(G), rtol=0.02)
    assert np.abs(C - G).max() < 0.05 * np.abs(G).max()
    assert np.isclose(null.mean, np.trace(G), rtol=0.02)


def test_local_noise_level_tests_each_region_against_its_own_noise():
    # white noise 10× larger in one half: with the local level, T/ℓ of pure noise follows the
    # null distribution in both halves (few rejections at a strict level)
    m = K.local_model(4.0, 1.0)
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((48, 48, 64)).astype(np.float32)
    noise[:, :, 32:] *= 10.0
    other = rng.standard_normal(noise.shape).astype(np.float32)
    other[:, :, 32:] *= 10.0
    mask = np.zeros(noise.shape, bool)
    mask[6:-6, 6:-6, 6:-6] = True
    T, null, _ = K.trial_statistic(other, noise, mask, m, local_noise_voxels=2.0)
    for sl in (np.s_[:, :, 8:26], np.s_[:, :, 40:58]):
        t = T[sl][mask[sl]]
        assert 0.8 < np.median(t) / null.mean < 1.2
        assert np.mean(np.exp(null.log_sf(t)) < 0.001) < 0.01


def test_weighted_chi2_tail_probabilities():
    q = K.WeightedChi2(np.ones(16))
    x = np.array([30.0, 60.0, 100.0])
    assert np.allclose(q.log_sf(x), stats.chi2.logsf(x, 16), atol=0.01)
    lam = np.array([5, 3, 1, 0.5, 0.1, 0.01])
    q = K.WeightedChi2(lam)
    Q = (np.random.default_rng(0).standard_normal((1_000_000, lam.size)) ** 2) @ lam
    for x in (20.0, 40.0):
        assert np.isclose(np.exp(q.log_sf(np.array([x]))[0]), np.mean(Q > x), rtol=0.05)


def test_benjamini_yekutieli_by_hand():
    p = np.array([0.0001, 0.004, 0.03, 0.5])
    # m = 4, H_4 = 25/12; limits j·0.05/(4·25/12) = 0.006 j: 0.006, 0.012, 0.018, 0.024
    rej = K.by_reject(np.log(p), 0.05)
    assert rej.tolist() == [True, True, False, False]


def test_trial_resolutions_start_at_resmaps_minimum():
    t = K.trial_resolutions(1.06, 4.0, 0.25)
    assert t[0] == pytest.approx(2.4) and t[1] == pytest.approx(2.65)
    assert t[-1] <= 4.0 + 1e-9


@pytest.mark.parametrize("d,ts,shape", [pytest.param(3.0, 1.0, (80, 80, 80),
                                                     marks=pytest.mark.slow),
                                        pytest.param(4.0, 1.0, (80, 80, 80),
                                                     marks=pytest.mark.slow),
                                        (6.0, 1.5, (56, 48, 64))])
def test_uniform_halves_median_within_15_percent(d, ts, shape):
    h1, h2, sig, ts, origin = simulate_half_maps(d, ts, shape=shape)
    r = run_item(resmap, _ctx(h1, h2, sig, ts, origin))
    assert r.status in ("ok", "warnings"), r.reason
    assert abs(r.metrics["median_A"] - d) <= 0.15 * d, r.metrics
    assert r.metrics["p2_5"] <= r.metrics["median_A"] <= r.metrics["p97_5"]
    assert r.resolution_estimates[0]["resolution_A"] == r.metrics["median_A"]
    vol = r.artefacts[0].data
    assert vol.shape == shape and r.artefacts[0].name == "maps/local_resolution_resmap.mrc"


# blend_halves joins the halves by a 1.5-voxel logistic ramp, but at 1/3 Å the 6 Å half's noise
# is ~30× (amplitude) the 3 Å half's, so its share stays above 10 % of the local noise until
# 30·w < 0.1, i.e. 1.5·ln(300) ≈ 8.6 voxels from the seam: the regions are compared beyond that.
SEAM_VOXELS = 9


@pytest.mark.slow
def test_blended_halves_recover_both_regions():
    a = simulate_half_maps(3.0, 1.0, shape=(80, 80, 80), seed=1)
    b = simulate_half_maps(6.0, 1.0, shape=(80, 80, 80), seed=2)
    h1, h2 = blend_halves(a[0], b[0]), blend_halves(a[1], b[1])
    r = run_item(resmap, _ctx(h1, h2, a[2], 1.0, a[4]))
    assert r.status in ("ok", "warnings"), r.reason
    vol = r.artefacts[0].data
    left, right = vol[:, :, :40 - SEAM_VOXELS], vol[:, :, 40 + SEAM_VOXELS:]
    m3, m6 = np.median(left[left > 0]), np.median(right[right > 0])
    assert m3 < m6
    assert abs(m3 - 3.0) <= 0.15 * 3.0, (m3, m6)
    assert abs(m6 - 6.0) <= 0.15 * 6.0, (m3, m6)


def test_whitened_statistic_of_noise_is_chi2_16():
    m = K.local_model(4.0, 1.0)
    rng = np.random.default_rng(4)
    shape = (48, 48, 48)
    # correlated (band-passed) noise: the whitened statistic still follows χ²_16
    tr = K.band_transfer(4.0, resmap.BAND)
    from cryovalid.kernels import fourier
    s = fourier.frequency_magnitude(shape, 1.0)
    n1, n2 = (fourier.irfft(fourier.rfft(rng.standard_normal(shape).astype(np.float32)) * tr(s),
                            shape) for _ in range(2))
    mask = np.zeros(shape, bool)
    mask[6:-6, 6:-6, 6:-6] = True
    T, null, _ = K.trial_statistic(n1, n2, mask, m, whiten=True)
    t = T[mask]
    assert null.eigenvalues.size == 16
    assert 0.9 < np.mean(t) / 16 < 1.1
    assert np.mean(t > stats.chi2.ppf(0.99, 16)) < 0.02


@pytest.mark.slow
def test_pure_noise_halves_give_no_confident_resolution():
    rng = np.random.default_rng(5)
    _, _, sig, ts, origin = simulate_half_maps(4.0, 1.5, shape=(48, 48, 48))
    n1 = rng.standard_normal(sig.shape).astype(np.float32)
    n2 = rng.standard_normal(sig.shape).astype(np.float32)
    r = run_item(resmap, _ctx(n1, n2, sig, ts, origin))
    assert r.status == "failed"
    assert "no confident local resolution" in r.reason
    assert r.resolution_estimates == []


def test_identical_halves_cannot_be_measured():
    h1, _, sig, ts, origin = simulate_half_maps(4.0, 2.0, shape=(32, 32, 32))
    r = run_item(resmap, _ctx(h1, h1, sig, ts, origin))
    assert r.status == "failed" and "identical" in r.reason


def test_units_do_not_matter():
    h1, h2, sig, ts, origin = simulate_half_maps(6.0, 2.0, shape=(40, 36, 44))
    r1 = run_item(resmap, _ctx(h1, h2, sig, ts, origin))
    r2 = run_item(resmap, _ctx(h1 * 1e30, h2 * 1e30, sig * 1e30, ts, origin))
    assert r1.status in ("ok", "warnings"), r1.reason
    assert r2.status == r1.status, r2.reason
    assert abs(r1.metrics["median_A"] - r2.metrics["median_A"]) < 0.02


def test_figures_histogram_and_views():
    from cryovalid import registry
    from cryovalid.figures.resmap import draw_resmap

    h1, h2, sig, ts, origin = simulate_half_maps(6.0, 2.0, shape=(40, 36, 44))
    ctx = _ctx(h1, h2, sig, ts, origin)
    r = run_item(resmap, ctx)
    assert registry.draws()["1.d"] is draw_resmap
    d = draw_resmap(r, ctx)
    names = [f.path for f in d.figures]
    assert "figures/local_resolution_resmap_histogram.png" in names
    assert "figures/local_resolution_resmap_views.png" in names
    assert any(a.name == "chimerax/local_resolution_resmap.cxc" for a in d.artefacts)
