"""1.c local FSC resolution (blocres; Cardone, Heymann & Steven 2013) on half maps whose
resolution varies in space, with known answers.

* Stationary halves (pseudo-atoms filling the whole box, so that signal and noise are the same
  everywhere): the expected FSC is tests/simulate.half_map_fsc everywhere, so every box should
  cross 0.5 where that curve does (3.41 Å for a 3 Å design, 6.81 Å for 6 Å).
* 5me2 halves: the truth of each region is the 0.5 crossing of the FSC of the two halves
  multiplied by a soft mask of the molecule in that region, computed here with plain numpy.

Each signal falls off with B = 16·d² (the steepness of the designed FSC), so that the noise is
white, as in a reconstruction, and the low frequencies dominate (tests/simulate.py
local_fsc_noisy_halves). At 1.5 Å/voxel the 20-voxel box is 30 Å, five times the coarser
resolution (blocres' rule of thumb: a box 5–7 × the resolution).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from conftest import store_artefacts
from cryovalid.context import Context
from cryovalid.io.maps import Map
from cryovalid.items import local_fsc as item
from cryovalid.items import percentiles
from cryovalid.items.base import NOT_APPLICABLE, OK, WARNINGS, run_item
from cryovalid.kernels import local_fsc as LF

from simulate import (blend_halves, freq2, half_map_fsc, load_atoms, local_fsc_noisy_halves,
                      simulate, threshold_for_volume, true_crossing)

TS = 1.5
STEEP = 16.0


def _truth_05(d):
    return 1.0 / true_crossing(lambda s: half_map_fsc(s, d, STEEP), 0.5, 1e-3, 0.5)


def _two_region_halves(atoms, padding, cubic=True, ts=TS, resolutions=(3.0, 6.0)):
    """Half maps whose lower x half has the first resolution and upper x half the second."""
    parts = []
    for i, d in enumerate(resolutions):
        sig, ts, origin = simulate(atoms=atoms, padding=padding, cubic=cubic,
                                   bfactor=STEEP * d * d, voxel_size=ts)
        parts.append(local_fsc_noisy_halves(sig, ts, d, seed=10 + i, steepness=STEEP))
    h1 = blend_halves(parts[0][0], parts[1][0])
    h2 = blend_halves(parts[0][1], parts[1][1])
    return h1, h2, ts, origin


def _sides(index, shape, ts, gap_A=10.0):
    """Boolean (lower side, upper side) of voxels ``index`` along x, ``gap_A`` from the seam
    and half a box from the faces (boxes are periodic: at the +x face a box reaches the other
    region across the face)."""
    x = np.unravel_index(index, shape)[2]
    nx, edge = shape[2], LF.BOX // 2
    return ((x >= edge) & (x < nx / 2 - gap_A / ts),
            (x >= nx / 2 + gap_A / ts) & (x < nx - edge))


@pytest.fixture(scope="module")
def stationary():
    rng = np.random.default_rng(1)
    extent = np.array([84.0, 72.0, 60.0])  # x, y, z Å: a non-cubic box
    n = int(extent.prod() / 12.0)  # about protein density, one carbon per 12 Å3
    xyz = rng.uniform(0.0, 1.0, (n, 3)) * extent
    return _two_region_halves((xyz, np.full(n, 6.0, np.float32)), 0.0, cubic=False)


def test_window_and_shells():
    w = LF.window(20)
    assert w.shape == (20, 20, 20) and w.dtype == np.float32
    assert w[10, 10, 10] == 1.0 and w[0].max() == 0.0  # flat centre, 0 at the first face
    m = LF.shell_matrix(20)
    # the Hermitian-weighted coefficient count of each shell equals the full transform's
    k = np.fft.fftfreq(20) * 20
    r = np.rint(np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2))
    assert np.array_equal(m.sum(axis=0), np.bincount(r.astype(int).ravel())[:11])


def test_crossing_interpolates_linearly():
    f = np.arange(11) / (20 * 1.0)  # shells of a 20-voxel box at 1 Å
    fsc = np.array([[1.0, 0.9, 0.8, 0.6, 0.4, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0],
                    [1.0, 0.3, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                    [1.0] * 11])
    res, never, first = LF.crossing_resolution(fsc, 0.5, 20, 1.0, 2.0)
    assert res[0] == pytest.approx(1.0 / (f[3] + 0.5 * (f[4] - f[3])), rel=1e-6)  # 5.714 Å
    assert res[1] == pytest.approx(20.0) and first[1]  # below at the first shell: the box
    assert res[2] == pytest.approx(2.0) and never[2]  # never below: the finest value


@pytest.mark.slow
def test_stationary_halves_recover_both_resolutions(stationary):
    h1, h2, ts, _ = stationary
    out = LF.local_fsc_resolution(h1, h2, ts, np.ones(h1.shape, bool), cutoff=0.5)
    low, high = _sides(out.index, h1.shape, ts)
    m3, m6 = float(np.median(out.values[low])), float(np.median(out.values[high]))
    t3, t6 = _truth_05(3.0), _truth_05(6.0)  # 3.41 and 6.81 Å
    # measured: 3.31 and 6.30 Å (the 20-voxel box smooths the steep FSC: slightly finer)
    assert abs(m3 - t3) / t3 < 0.15 and abs(m6 - t6) / t6 < 0.15, (m3, m6, t3, t6)
    assert m6 > 1.5 * m3
    # the two sides are separated, not a blur of one value
    assert np.percentile(out.values[high], 5) > np.percentile(out.values[low], 95)


@pytest.mark.slow
def test_the_lattice_interpolation_matches_a_box_at_every_voxel(stationary):
    h1, h2, ts, _ = stationary
    region = np.zeros(h1.shape, bool)
    region[20:30, 10:38, 12:44] = True  # crosses the seam at x = 28
    fine = LF.local_fsc_resolution(h1, h2, ts, region, step=1)
    coarse = LF.local_fsc_resolution(h1, h2, ts, region, step=3)
    assert fine.step == 1 and coarse.step == 3 and coarse.n_boxes < fine.n_boxes / 10
    assert np.array_equal(fine.index, coarse.index)
    # interpolating boxes 3 voxels apart: median change 0.2 %, 95th percentile 9 % (at the
    # seam, where the values change from 3.3 to 6.3 Å within a box)
    change = np.abs(coarse.values - fine.values) / fine.values
    assert np.median(change) < 0.01 and np.percentile(change, 95) < 0.15


def _context(halves, ts, origin, resolution, atoms):
    """Context whose main map is the noise-free molecule (B = 100 Å²) at the threshold that
    encloses the model's volume: the mask of 1.c comes from it."""
    h1, h2 = halves
    ref, _, _ = simulate(atoms=atoms, padding=8.0, cubic=False, voxel_size=ts, bfactor=100.0)
    thr = threshold_for_volume(ref, 4468 * 18.0, ts)
    return Context.of(Map(ref, ts, origin, path="ref.mrc"), thr, resolution=resolution,
                      half_maps=(Map(h1, ts, origin, path="h1.mrc"),
                                 Map(h2, ts, origin, path="h2.mrc")))


@pytest.fixture(scope="module")
def protein():
    atoms = load_atoms()
    h1, h2, ts, origin = _two_region_halves(atoms, 8.0, cubic=False)
    return h1, h2, ts, origin, atoms


def _masked_fsc_05(h1, h2, mask, ts):
    """0.5 crossing (Å) of the FSC of h1·mask and h2·mask (plain numpy, 1-voxel shells)."""
    shape = h1.shape
    n = max(shape)
    shell = np.rint(np.sqrt(freq2(shape, ts)) * n * ts).astype(int).ravel()
    a, b = np.fft.rfftn(h1 * mask), np.fft.rfftn(h2 * mask)
    wx = np.full(a.shape[2], 2.0)
    wx[0] = 1.0
    if shape[2] % 2 == 0:
        wx[-1] = 1.0
    w = np.broadcast_to(wx, a.shape).ravel()
    c = np.bincount(shell, (a * b.conj()).real.ravel() * w)
    p1 = np.bincount(shell, (np.abs(a) ** 2).ravel() * w)
    p2 = np.bincount(shell, (np.abs(b) ** 2).ravel() * w)
    fsc = c / np.sqrt(p1 * p2)
    f = np.arange(fsc.size) / (n * ts)
    i = int(np.argmax(fsc[1:] < 0.5)) + 1
    return 1.0 / (f[i - 1] + (fsc[i - 1] - 0.5) / (fsc[i - 1] - fsc[i]) * (f[i] - f[i - 1]))


@pytest.mark.slow
def test_item_on_5me2_with_two_resolutions(protein, tmp_path):
    h1, h2, ts, origin, atoms = protein
    assert len(set(h1.shape)) == 3  # non-cubic box
    ctx = _context((h1, h2), ts, origin, 3.5, atoms)
    res = run_item(item, ctx)
    assert res.status in (OK, WARNINGS), res.reason
    vol = [a for a in res.artefacts if a.name == item.VOLUME][0].data
    assert vol.shape == h1.shape and vol.dtype == np.float32
    region = ctx.map.soft_mask > LF.REGION_MIN
    assert np.all(vol[~region] == 0) and np.all(vol[region] > 0)
    vals = vol[region]
    low, high = _sides(np.flatnonzero(region), h1.shape, ts)
    m3, m6 = float(np.median(vals[low])), float(np.median(vals[high]))
    x = np.arange(h1.shape[2])[None, None, :]
    hard = ctx.map.hard_mask
    t3 = _masked_fsc_05(h1, h2, ndimage.gaussian_filter((hard & (x < h1.shape[2] / 2 - 10 / ts))
                                                        .astype(np.float32), 2.0), ts)
    t6 = _masked_fsc_05(h1, h2, ndimage.gaussian_filter((hard & (x >= h1.shape[2] / 2 + 10 / ts))
                                                        .astype(np.float32), 2.0), ts)
    # measured 3.18 / 5.61 Å against 3.07 / 5.91 Å (the 3 Å side is near Nyquist, 3.0 Å)
    assert abs(m3 - t3) / t3 < 0.15 and abs(m6 - t6) / t6 < 0.15, (m3, m6, t3, t6)
    assert m6 > 1.5 * m3
    # metrics are the statistics of the volume inside the mask
    assert res.metrics["median_A"] == pytest.approx(np.median(vals), abs=1e-3)
    for key, q in zip(percentiles.PERCENTILE_KEYS, percentiles.PERCENTILES):
        assert res.metrics[key] == pytest.approx(np.percentile(vals, q), abs=1e-3)
    assert res.metrics["reported_percentile"] == pytest.approx(100 * np.mean(vals < 3.5),
                                                               abs=1e-3)
    assert res.resolution_estimates == [{"method": "Local FSC median (blocres, 1.c)",
                                         "resolution_A": res.metrics["median_A"]}]
    assert 0 < res.metrics["reported_percentile"] < 50
    assert res.status == OK
    paths = store_artefacts(res, tmp_path)
    assert any(p.endswith("local_resolution_fsc.mrc") for p in paths)

    # a reported resolution finer than every local value is flagged
    ctx.resolution = 1.0
    too_fine = run_item(item, ctx)
    assert too_fine.metrics["reported_percentile"] == 0.0
    assert [w.code for w in too_fine.warnings] == ["reported_too_fine"]
    ctx.resolution = None
    none = run_item(item, ctx)
    assert none.status == OK and "reported_percentile" not in none.metrics
    assert none.criteria == item.CRITERIA_NO_RESOLUTION


def test_identical_halves_cannot_be_measured():
    """Identical halves (FSC 1 in every box) give no local resolution and no estimate (as 1.b
    does), rather than a map of Nyquist values."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal((40, 36, 44)).astype(np.float32)
    m = Map(data, 1.5, (0.0, 0.0, 0.0))
    ctx = Context.of(m, float(np.quantile(data, 0.9)), resolution=4.0,
                     half_maps=(m, Map(data.copy(), 1.5, (0.0, 0.0, 0.0))))
    res = run_item(item, ctx)
    assert res.status == "failed" and "identical" in res.reason
    assert not res.resolution_estimates and not res.artefacts


def test_a_box_smaller_than_the_kernel_does_not_apply():
    data = np.random.default_rng(0).standard_normal((16, 30, 30)).astype(np.float32)
    m = Map(data, 1.0, (0.0, 0.0, 0.0))
    ctx = Context.of(m, 1.0, resolution=3.0, half_maps=(m, Map(data + 1, 1.0, (0, 0, 0))))
    res = run_item(item, ctx)
    assert res.status == NOT_APPLICABLE and "20 voxels" in res.reason


def test_non_finite_half_map_cannot_be_measured():
    data = np.random.default_rng(0).standard_normal((30, 30, 30)).astype(np.float32)
    bad = data.copy()
    bad[3, 3, 3] = np.nan
    m = Map(data, 1.0, (0.0, 0.0, 0.0))
    ctx = Context.of(m, 1.0, resolution=3.0, half_maps=(Map(bad, 1.0, (0, 0, 0)), m))
    res = run_item(item, ctx)
    assert res.status == "failed" and "not finite" in res.reason


def test_figures_and_chimerax_script(tmp_path, monkeypatch):
    import os

    from cryovalid.figures import local_fsc as figs

    monkeypatch.setenv("CRYOVALID_NO_VTK", "1")  # matplotlib surfaces: fast and display-free
    sig, ts, origin = simulate(atoms=load_atoms(), padding=4.0, voxel_size=2.0, bfactor=100.0)
    h1, h2 = local_fsc_noisy_halves(sig, ts, 6.0)
    ctx = Context.of(Map(sig, ts, origin), threshold_for_volume(sig, 4468 * 18.0, ts),
                     resolution=6.0, half_maps=(Map(h1, ts, origin), Map(h2, ts, origin)))
    res = run_item(item, ctx)
    assert res.status in (OK, WARNINGS), res.reason
    drawing = figs.draw_local_fsc(res, ctx)
    assert [os.path.basename(f.path) for f in drawing.figures] == [
        "local_resolution_fsc_histogram.png", "local_resolution_fsc_views.png"]
    script = [a for a in drawing.artefacts if a.name.endswith(".cxc")][0]
    assert script.name == "chimerax/local_resolution_fsc.cxc"
    assert '"../maps/local_resolution_fsc.mrc"' in script.text  # the item's volume
    assert item.VOLUME == "maps/local_resolution_fsc.mrc"
    assert set(figs.DRAWS) == {"1.c", "A.b"}
