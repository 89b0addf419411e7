"""Known-answer tests for items 0.a-0.d on maps simulated from the 5me2 model."""
import numpy as np
import pytest

import simulate
from conftest import threshold_for
from cryovalid.context import Context
from cryovalid.io.maps import Map
from cryovalid.items import background, bfactor, mask, mass
from cryovalid.items.base import NOT_APPLICABLE, OK, WARNINGS, run_item


def make_ctx(tmp_path, vol, voxel_size, threshold=None, resolution=None):
    m = Map(data=np.asarray(vol, np.float32), voxel_size=voxel_size, path="sim.mrc")
    t = threshold_for(vol) if threshold is None else threshold
    return Context.of(map=m, threshold=t, resolution=resolution)


# ---------------------------------------------------------------- 0.d B-factor
def test_bfactor_difference_recovered(tmp_path, atoms):
    """Blurring by B differing by 100 A^2 changes the measured B by -100 +- 10 A^2.

    The simulated signal extends to 2.2 A (beyond the 15-3.5 A fit window) with 0.5 % noise,
    so the Guinier line is not flattened by noise."""
    measured = []
    for b in (20.0, 120.0):
        vol, ts, _ = simulate.simulate(atoms=atoms, voxel_size=1.0, resolution=2.2, bfactor=b,
                                       noise=0.005, padding=12.0)
        res = run_item(bfactor, make_ctx(tmp_path, vol, ts, resolution=3.5))
        assert res.status in (OK, WARNINGS), res.reason
        measured.append(res.metrics["bfactor_A2"])
    assert measured[1] - measured[0] == pytest.approx(-100.0, abs=10.0)


def test_bfactor_known_absolute_on_gaussian_decay(tmp_path):
    """White noise with amplitudes multiplied by exp(-B s^2/4): the fitted B is -B (ref. sign)."""
    from cryovalid.kernels import fourier

    rng = np.random.default_rng(5)
    shape, ts, b_true = (96, 96, 96), 1.0, 150.0
    ft = fourier.rfft(rng.normal(size=shape).astype(np.float32))
    s = fourier.frequency_magnitude(shape, ts)
    vol = fourier.irfft(ft * np.exp(-b_true * s * s / 4.0), shape)
    vol[40:56, 40:56, 40:56] += 5 * vol.std()  # something for the mask
    res = run_item(bfactor, make_ctx(tmp_path, vol, ts, threshold=3 * vol.std(),
                                     resolution=3.0))
    assert res.metrics["bfactor_A2"] == pytest.approx(-b_true, abs=8.0)
    assert res.status == OK  # -150 is inside [-300, 0]


def test_bfactor_oversharpened_warns(tmp_path):
    from cryovalid.kernels import fourier

    rng = np.random.default_rng(6)
    shape = (64, 64, 64)
    ft = fourier.rfft(rng.normal(size=shape).astype(np.float32))
    s = fourier.frequency_magnitude(shape, 1.0)
    vol = fourier.irfft(ft * np.exp(+60.0 * s * s / 4.0), shape)  # amplitudes grow
    res = run_item(bfactor, make_ctx(tmp_path, vol, 1.0, threshold=3 * vol.std(),
                                     resolution=3.0))
    assert res.metrics["bfactor_A2"] > 0
    assert res.status == WARNINGS and "over-sharpened" in res.warnings[0]


def test_bfactor_gates(tmp_path, clean_map):
    vol, ts, _ = clean_map
    assert run_item(bfactor, make_ctx(tmp_path, vol, ts)).status == NOT_APPLICABLE
    res = run_item(bfactor, make_ctx(tmp_path, vol, ts, resolution=16.0))
    assert res.status == NOT_APPLICABLE and "15" in res.reason


# ---------------------------------------------------------------- 0.a mass
def test_centred_map_has_no_mass_warning(tmp_path, clean_map):
    vol, ts, _ = clean_map
    res = run_item(mass, make_ctx(tmp_path, vol, ts))
    assert res.status == OK, res.warnings
    for a in "xyz":
        assert res.metrics[f"decentering_pct_{a}"] < 5
        assert res.metrics[f"com_offset_pct_{a}"] < 5
        assert res.metrics[f"space_left_A_{a}"] >= 20


def test_rolled_map_warns(tmp_path, clean_map):
    vol, ts, _ = clean_map
    shift = int(0.3 * vol.shape[2])
    res = run_item(mass, make_ctx(tmp_path, np.roll(vol, shift, axis=2), ts))
    assert res.status == WARNINGS
    # part of the molecule wraps around the box edge, so the centre of mass moves by less
    # than the 30 % roll, but well beyond the 20 % limit
    assert 20.0 < res.metrics["com_offset_pct_x"] <= 30.0
    assert res.metrics["decentering_pct_x"] > 20.0
    assert any("centre of mass" in w and " X" in w for w in res.warnings)
    assert res.metrics["com_offset_pct_y"] < 5  # other axes untouched


def test_free_space_is_measured_in_angstrom(tmp_path):
    vol = np.zeros((40, 40, 40), np.float32)
    vol[10:30, 5:35, 12:28] = 1.0
    vol += np.random.default_rng(0).normal(0, 0.01, vol.shape).astype(np.float32)
    res = run_item(mass, make_ctx(tmp_path, vol, 2.0, threshold=0.5))
    # hard mask dilated by ceil(2/2) = 1 voxel (18-neighbourhood) => x occupies 11..28
    assert res.metrics["space_left_A_x"] == pytest.approx(11 * 2.0)
    assert res.metrics["space_right_A_x"] == pytest.approx((39 - 28) * 2.0)
    assert res.metrics["space_left_A_y"] == pytest.approx(4 * 2.0)
    assert any("left of Y" in w for w in res.warnings)


# ---------------------------------------------------------------- 0.b mask
def test_clean_map_mask_ok_and_noise_blobs_warn(tmp_path, clean_map):
    vol, ts, _ = clean_map
    t = threshold_for(vol)
    clean = run_item(mask, make_ctx(tmp_path, vol, ts, threshold=t))
    assert clean.status == OK, clean.warnings
    assert clean.metrics["n_components_95"] <= 5
    noisy = vol.copy()
    rng = np.random.default_rng(3)
    core = Context.of(map=Map(vol, ts), threshold=t).map.hard_mask
    placed = 0
    while placed < 400:  # small blobs (3x3x3 voxels) above the threshold, away from the molecule
        z, y, x = rng.integers(2, np.array(vol.shape) - 5)
        if not core[z - 2:z + 5, y - 2:y + 5, x - 2:x + 5].any():
            noisy[z:z + 3, y:y + 3, x:x + 3] = 2 * t
            placed += 1
    res = run_item(mask, make_ctx(tmp_path, noisy, ts, threshold=t))
    assert res.status == WARNINGS
    assert res.metrics["n_components"] > clean.metrics["n_components"] + 300
    assert res.metrics["outside_largest_fraction"] > 0.10
    assert any("outside the largest component" in w for w in res.warnings)


def test_threshold_mass_table():
    vol = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    thr, counts = mask.threshold_mass_table(vol, 1.0)
    assert len(thr) == 24 and thr[0] == pytest.approx(999 / 25)
    assert counts[0] == np.count_nonzero(vol > thr[0])
    assert counts[-1] == np.count_nonzero(vol > thr[-1])
    assert mask.threshold_mass_table(-np.abs(vol) - 1, 1.0)[0].size == 0


# ---------------------------------------------------------------- 0.c background
def test_background_offset_warns(tmp_path):
    rng = np.random.default_rng(4)
    vol = rng.normal(0, 1, (64, 64, 64)).astype(np.float32)
    vol[24:40, 24:40, 24:40] += 20
    ok = run_item(background, make_ctx(tmp_path, vol, 1.0, threshold=10.0))
    assert ok.status == OK, ok.warnings
    assert abs(ok.metrics["background_mean"]) < 0.01
    shifted = run_item(background, make_ctx(tmp_path, vol + 0.05, 1.0, threshold=10.0))
    assert shifted.status == WARNINGS
    assert shifted.metrics["background_t_pvalue"] < 1e-3
    assert shifted.metrics["background_mean"] == pytest.approx(0.05, abs=0.01)


def test_background_outliers_warn(tmp_path):
    rng = np.random.default_rng(7)
    vol = rng.normal(0, 1, (64, 64, 64)).astype(np.float32)
    vol[24:40, 24:40, 24:40] += 20
    spikes = rng.integers(0, 64, size=(200, 3))
    spikes = spikes[np.any((spikes < 20) | (spikes > 44), axis=1)]
    vol[spikes[:, 0], spikes[:, 1], spikes[:, 2]] = 8.0  # far beyond 5 sigma
    res = run_item(background, make_ctx(tmp_path, vol, 1.0, threshold=10.0))
    assert res.metrics["outlier_ratio_5sigma"] > 20
    assert any("5σ" in w for w in res.warnings)
