"""Known answers for 0.c (background) and the 0.a centre of mass on correlated, offset and
masked maps."""
import os

import numpy as np
import pytest
import scipy.fft

import simulate
from cryovalid.context import Context
from cryovalid.io.maps import Map, read_map
from cryovalid.items import background, mass
from cryovalid.items.base import NOT_APPLICABLE, OK, WARNINGS, run_item
from cryovalid.kernels.noise import correlation_volume


def _ctx(vol, ts, threshold):
    return Context.of(map=Map(data=np.asarray(vol, np.float32), voxel_size=ts, path="sim.mrc"),
                   threshold=threshold)


def correlated_noise(seed, shape=(64, 64, 64), ts=1.0, resolution=3.0):
    """Zero-mean Gaussian noise low-passed to ``resolution`` Å, unit variance, plus a 20σ cube
    in the centre to be the molecule (the mask)."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(shape).astype(np.float32)
    s2 = simulate.freq2(shape, ts)
    vol = scipy.fft.irfftn(scipy.fft.rfftn(white) * simulate.lowpass_filter(s2, resolution),
                           s=shape).astype(np.float32)
    vol /= np.float32(vol.std())
    c = [n // 2 for n in shape]
    vol[c[0] - 6:c[0] + 6, c[1] - 6:c[1] + 6, c[2] - 6:c[2] + 6] += 20.0
    return vol


def test_correlation_volume_of_white_and_lowpassed_noise():
    rng = np.random.default_rng(0)
    white = rng.standard_normal((64, 64, 64)).astype(np.float32)
    every = np.ones(white.shape, bool)
    assert correlation_volume(white, every) == pytest.approx(1.0, abs=0.2)
    # an ideal low-pass at 3 Å on 1 Å voxels keeps a fraction f = (4π/3)(1/3)³ of the
    # coefficients, so a voxel holds about 1/f ≈ 6.4 voxels of correlated noise; the sum over
    # the positive core of ρ is of that order and never below it by much
    vol = correlated_noise(1)
    vc = correlation_volume(vol, np.abs(vol) < 10)
    assert 4.0 < vc < 12.0


@pytest.mark.parametrize("seed", range(20))
def test_zero_mean_correlated_noise_does_not_warn(seed):
    vol = correlated_noise(seed)
    res = run_item(background, _ctx(vol, 1.0, threshold=10.0))
    assert res.status == OK, res.warnings
    assert res.metrics["background_t_pvalue"] >= background.P_MIN


@pytest.mark.parametrize("seed", range(3))
def test_offset_of_a_fifth_sigma_warns(seed):
    vol = correlated_noise(seed) + 0.2
    res = run_item(background, _ctx(vol, 1.0, threshold=10.2))
    assert res.status == WARNINGS
    assert res.metrics["background_mean_sigma"] == pytest.approx(0.2, abs=0.06)
    assert any("differs from zero" in w for w in res.warnings)


def test_outlier_count_ignores_offset_and_scale():
    vol = correlated_noise(7)
    rng = np.random.default_rng(2)
    spikes = rng.integers(0, 64, size=(60, 3))
    spikes = spikes[np.any((spikes < 20) | (spikes > 44), axis=1)]
    vol[spikes[:, 0], spikes[:, 1], spikes[:, 2]] = 9.0
    a = run_item(background, _ctx(vol, 1.0, threshold=10.0))
    b = run_item(background, _ctx(vol * 7.0 + 3.0, 1.0, threshold=73.0))
    assert a.metrics["outlier_ratio_5sigma"] > background.MAX_OUTLIER_RATIO
    assert b.metrics["outlier_ratio_5sigma"] == pytest.approx(a.metrics["outlier_ratio_5sigma"])
    assert b.metrics["background_mean_sigma"] == pytest.approx(
        a.metrics["background_mean_sigma"] + 3.0 / (7.0 * a.metrics["background_std"]), rel=1e-3)


def test_louder_noise_inside_a_sphere_is_not_outliers():
    """A depositor's spherical mask: σ 1 inside, 0.05 outside, with a soft edge 6 voxels wide
    as EMD-11007's (its rms falls from 0.47 to 0.17 between radii 120 and 126); no outliers in
    either. (A hard step would leave some excess next to the edge, where the 12 Å window mixes
    the two levels.)"""
    vol = correlated_noise(3, shape=(80, 80, 80))
    g = np.indices(vol.shape) - 40
    r = np.sqrt((g ** 2).sum(0))
    edge = np.clip((r - 28) / 6.0, 0.0, 1.0)
    vol *= (1.0 - 0.95 * 0.5 * (1 - np.cos(np.pi * edge))).astype(np.float32)
    res = run_item(background, _ctx(vol, 1.0, threshold=10.0))
    assert res.metrics["outlier_ratio_5sigma"] < background.MAX_OUTLIER_RATIO


def test_masked_map_background_does_not_apply():
    vol = correlated_noise(4)
    g = np.indices(vol.shape) - 32
    vol[np.sqrt((g ** 2).sum(0)) > 14] = 0.0  # zero beyond 14 voxels: only an edge is left
    res = run_item(background, _ctx(vol, 1.0, threshold=10.0))
    assert res.status == NOT_APPLICABLE
    assert "masked before deposition" in res.reason


# ---------------------------------------------------------------- 0.a centre of mass
def test_centre_of_mass_ignores_solvent_offset(clean_map):
    vol, ts, _ = clean_map
    t = float(np.quantile(vol, 0.97))
    base = run_item(mass, _ctx(vol, ts, t))
    shifted = run_item(mass, _ctx(vol * 2.0 + 0.05 * float(vol.std()) * 20, ts,
                                  t * 2.0 + 0.05 * float(vol.std()) * 20))
    for a in "xyz":
        assert shifted.metrics[f"com_offset_pct_{a}"] == pytest.approx(
            base.metrics[f"com_offset_pct_{a}"], abs=0.01)


@pytest.mark.slow
def test_centre_of_mass_of_emd11007_is_central(shared_real):
    """EMD-11007's solvent is negative (mean −0.08): the raw map's centre of mass was 30 % off in
    X, the molecule's is a few %."""
    m = read_map(os.path.join(shared_real, "EMD-11007", "emd_11007.map"))
    res = run_item(mass, Context.of(map=m, threshold=2.5))
    assert all(res.metrics[f"com_offset_pct_{a}"] < 6 for a in "xyz")
    assert not any("centre of mass" in w for w in res.warnings)
