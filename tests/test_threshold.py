"""Known answers for the automatic threshold (kernels/threshold.py).

Maps are simulated from 5ME2 (haemoglobin, 64 kDa) as a reconstruction delivers them, then masked
the ways depositors mask: a sphere with loud noise inside and quiet outside (EMD-11007), a soft
sphere with exact zeros outside (EMD-3488), a zone a few Å around the atoms (EMD-30342). In each
case the chosen threshold must show one body (0.b's criteria) and enclose a plausible mass.
"""
import os

import numpy as np
import pytest

import simulate
from cryovalid.io.maps import read_map
from cryovalid.kernels import masks
from cryovalid.kernels import threshold as thr

MODEL_KDA = 64.5  # haemoglobin α2β2 (5ME2)
TS = 1.2


@pytest.fixture(scope="module")
def sim(atoms):
    vol, ts, origin = simulate.simulate_with_snr(3.5, bfactor=50.0, voxel_size=TS, padding=30.0,
                                                 atoms=atoms, seed=3)
    return vol, origin


def _sphere(shape, radius, edge=0.0):
    return masks.spherical_mask(shape, radius, edge_sigma=edge)


def _enclosed_kda(vol, t, ts=TS):
    return np.count_nonzero(vol >= t) * ts ** 3 / 1207.0


def _check(vol, est, lowest=0.25):
    """One body, and between ``lowest`` and 1.5 times the model's mass enclosed."""
    st = masks.component_stats(vol >= est.threshold)
    assert st["passes"], (est.threshold, st["n_components_95"], st["outside_largest_fraction"])
    kda = _enclosed_kda(vol, est.threshold)
    assert lowest * MODEL_KDA < kda < 1.5 * MODEL_KDA, kda


def test_unmasked_map(sim):
    vol, _ = sim
    est = thr.estimate(vol, TS)
    assert est.noise_measured
    _check(vol, est)
    # the noise is measured, not the map's spread: the threshold sits a few noise σ up
    assert 3.0 < est.n_sigma < 6.0


def test_spherical_mask_loud_inside_quiet_outside(sim):
    """EMD-11007's case: the global noise is dominated by the quiet outside of the sphere."""
    vol, _ = sim
    sphere = _sphere(vol.shape, 0.45 * vol.shape[0], edge=2.0)
    masked = vol * sphere  # loud inside, quiet outside (below)
    rng = np.random.default_rng(1)
    masked += (1 - sphere) * rng.normal(0, 0.03 * float(vol.std()), vol.shape).astype(np.float32)
    est = thr.estimate(masked.astype(np.float32), TS)
    assert est.noise_measured
    _check(masked, est)
    # the measured noise is the loud one inside the sphere, not the quiet outside
    inside = vol[(sphere > 0.99) & (simulate_distance_from_molecule(vol) > 12)]
    assert est.noise_sigma == pytest.approx(1.4826 * np.median(np.abs(inside - np.median(inside))),
                                            rel=0.25)


def simulate_distance_from_molecule(vol):
    core = masks.largest_component(vol >= np.quantile(vol, 0.99))
    from scipy import ndimage

    return ndimage.distance_transform_edt(~core) * TS


def test_soft_mask_with_exact_zeros(sim):
    """EMD-3488's case: most of the box is exactly 0, the noise is attenuated by a soft edge."""
    vol, _ = sim
    soft = _sphere(vol.shape, 0.32 * vol.shape[0], edge=4.0)
    soft[soft < 1e-3] = 0
    masked = (vol * soft).astype(np.float32)
    assert np.mean(masked == 0) > 0.3
    est = thr.estimate(masked, TS)
    assert est.constant_value == 0 and est.constant_fraction > 0.3
    _check(masked, est)


def test_zone_mask(sim, atoms):
    """EMD-30342's case: the map is kept only within 4 Å of the atoms; no noise can be measured,
    so the threshold is the highest level that still shows one body."""
    vol, origin = sim
    xyz, _ = atoms
    grid = simulate.deposit(xyz, np.ones(len(xyz), np.float32), vol.shape, TS, origin) > 0
    zone = masks.dilate(grid, 4.0, TS)
    masked = np.where(zone, vol, 0).astype(np.float32)
    est = thr.estimate(masked, TS)
    assert not est.noise_measured
    # the highest one-body level is a high contour by construction: it shows the whole chain
    # as one body but encloses less than the molecule's full volume (about a fifth here)
    _check(masked, est, lowest=0.15)
    # and just above it the map no longer passes (it is the highest such level)
    step = thr.STEP_SUPPORT_SIGMA * est.noise_sigma
    assert not masks.component_stats(masked >= est.threshold + 3 * step)["passes"]


def test_binary_map():
    vol = np.zeros((30, 30, 30), np.float32)
    vol[10:20, 10:20, 10:20] = 1.0
    est = thr.estimate(vol, 1.0)
    assert est.threshold == pytest.approx(0.5)


@pytest.mark.parametrize("scale, offset", [(3.0, 0.0), (1.0, 5.0), (0.01, -2.0)])
def test_offset_and_scale_move_the_threshold_alike(sim, scale, offset):
    vol, _ = sim
    t0 = thr.estimate(vol, TS).threshold
    t1 = thr.estimate((vol * scale + offset).astype(np.float32), TS).threshold
    assert t1 == pytest.approx(t0 * scale + offset, rel=1e-3, abs=1e-3 * scale * float(vol.std()))


REAL = ["EMD-3488/emd_3488.map", "EMD-11007/emd_11007.map", "EMD-1997/emd_1997.map",
        "EMD-21457/emd_21457_seg.mrc", "EMD-2566/2566_3J6B_9.mrc",
        "EMD-30342/390_emd_30342_A_z4.mrc", "EMD-3197/emd_3197.map.gz"]


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_real_maps_show_one_body(shared_real, name):
    m = read_map(os.path.join(shared_real, name))
    est = thr.estimate(m.data, m.voxel_size)
    st = masks.component_stats(m.data >= est.threshold)
    assert st["passes"]
    # a plausible volume: between 0.5 % and 60 % of the unmasked box
    support = m.data.size * (1 - est.constant_fraction)
    assert 0.005 < np.count_nonzero(m.data >= est.threshold) / support < 0.6


def test_emd1997_near_author_contour(shared_real):
    """EMD-1997 (GroEL, 7 Å): the author's contour is 1.0 (EMDB header XML)."""
    m = read_map(os.path.join(shared_real, "EMD-1997", "emd_1997.map"))
    t = thr.estimate(m.data, m.voxel_size).threshold
    assert 1.0 / 1.5 <= t <= 1.5
