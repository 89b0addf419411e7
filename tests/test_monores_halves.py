"""Known-answer tests of 1.e (MonoRes with the half maps: signal the halves' mean, noise their
half difference inside the mask).

Half maps come from tests/simulate.py ``simulate_half_maps`` (5ME2 haemoglobin, noise shaped per
shell so that the half-map FSC crosses 0.143 at the designed resolution d); "3 Å in one half of
the box, 6 Å in the other" is two such pairs joined by ``blend_halves`` along x.
"""
from __future__ import annotations

import functools

import mrcfile
import numpy as np
import pytest

from conftest import store_artefacts
from cryovalid.context import Context
from cryovalid.io.maps import Map
from cryovalid.items import monores_halves
from cryovalid.items.base import NOT_APPLICABLE, run_item
from cryovalid.kernels import fourier
from cryovalid.kernels import monodir as K

from simulate import blend_halves, shape_map, simulate_half_maps

TS = 1.0
MARGIN = 5  # voxels left out on each side of the seam between the two regions


def _context(h1, h2, sig, ts, origin, resolution=3.0, pct=90.0):
    main = Map(shape_map(sig, ts, resolution=4.0), ts, origin, path="main.mrc")
    thr = float(np.percentile(main.data, pct))
    halves = (Map(h1, ts, origin, path="h1.mrc"), Map(h2, ts, origin, path="h2.mrc"))
    return Context.of(main, thr, resolution=resolution, half_maps=halves)


@functools.lru_cache(maxsize=None)
def _blend():
    a1, a2, sig, ts, origin = simulate_half_maps(3.0, TS, seed=0)
    b1, b2, _, _, _ = simulate_half_maps(6.0, TS, seed=1)
    return blend_halves(a1, b1), blend_halves(a2, b2), sig, ts, origin


def _regions(ctx):
    nx = ctx.map.shape[2]
    x = np.arange(nx)[None, None, :]
    hard = ctx.map.hard_mask
    return hard & (x < nx / 2 - MARGIN), hard & (x > nx / 2 + MARGIN)


def test_two_resolutions_in_one_box(tmp_path):
    """3 Å in the lower x half, 6 Å in the upper: each region's median within 15 % of its
    designed resolution, and the fine region finer."""
    h1, h2, sig, ts, origin = _blend()
    ctx = _context(h1, h2, sig, ts, origin)
    res = run_item(monores_halves, ctx)
    assert res.status in ("ok", "warnings"), res.reason
    vol = res.data["volume"]
    fine, coarse = _regions(ctx)
    med = [float(np.median(vol[r][vol[r] > 0])) for r in (fine, coarse)]
    assert abs(med[0] - 3.0) <= 0.15 * 3.0, med
    assert abs(med[1] - 6.0) <= 0.15 * 6.0, med
    assert med[0] < med[1]
    m = res.metrics
    assert m["p2_5"] <= m["p25"] <= m["p50"] <= m["p75"] <= m["p97_5"]
    assert m["median_A"] == m["p50"]
    vals = vol[ctx.map.hard_mask]
    vals = vals[vals > 0]
    assert m["median_A"] == pytest.approx(float(np.median(vals)), abs=1e-3)
    assert m["reported_percentile"] == pytest.approx(100.0 * float(np.mean(vals < 3.0)), abs=1e-3)
    assert res.resolution_estimates == [{"method": "MonoRes median (1.e)",
                                         "resolution_A": m["median_A"]}]
    # the volume on the input grid, 0 outside the hard mask
    assert [a.name for a in res.artefacts] == ["maps/local_resolution_monores.mrc"]
    store_artefacts(res, tmp_path)
    with mrcfile.open(tmp_path / "maps" / "local_resolution_monores.mrc") as mrc:
        assert mrc.data.shape == ctx.map.shape
        assert not np.any(mrc.data[~ctx.map.hard_mask])


@pytest.mark.slow
def test_uniform_halves_and_non_cubic_box():
    """One designed resolution everywhere, in a non-cubic box: the median within 10 %."""
    for d, shape in ((3.0, (72, 84, 96)), (6.0, (80, 72, 88))):
        h1, h2, sig, ts, origin = simulate_half_maps(d, TS, shape=shape, seed=3)
        ctx = _context(h1, h2, sig, ts, origin, resolution=d)
        res = run_item(monores_halves, ctx)
        assert res.status in ("ok", "warnings"), res.reason
        assert res.data["volume"].shape == shape
        assert abs(res.metrics["median_A"] - d) <= 0.10 * d, (d, res.metrics)


def test_noise_is_the_half_difference():
    """Halves of pure noise: their mean and their half difference (h1 − h2)/2 have the same
    distribution, so one step passes about 5 % of the voxels (1 − significance 0.95). Noise
    taken as (h1 − h2)/√2 (√2 too strong) would pass almost none, and a threshold lowered by
    each voxel's own noise (a local level that includes the voxel: NOISE_HOLE = 0) 10–13 %."""
    rng = np.random.default_rng(7)
    shape = (64, 64, 64)
    halves = [rng.standard_normal(shape).astype(np.float32) for _ in range(2)]
    mask = np.zeros(shape, dtype=bool)
    mask[8:56, 8:56, 8:56] = True
    F1, F2 = fourier.rfft(halves[0]), fourier.rfft(halves[1])
    sig, noise = K.halfmap_banks(F1, F2, shape, [64.0] * 3, 1.0)
    # one step at a time (at 4, 3 and 2 Å: thousands of independent noise speckles in the
    # mask); min_signal_ratio=0: do not stop because the band holds no signal (it holds none)
    fracs = []
    for d in (4.0, 3.0, 2.0):
        out = K.halfmap_local_resolution(sig, noise, mask, d, 5.0, min_signal_ratio=0.0)
        assert len(out.resolutions) == 1
        fracs.append(float(np.mean(out.values > 0)))
    assert 0.035 <= float(np.mean(fracs)) <= 0.09, fracs


def test_reported_resolution_too_fine_and_gates(tmp_path):
    h1, h2, sig, ts, origin = _blend()
    res = run_item(monores_halves, _context(h1, h2, sig, ts, origin, resolution=1.5))
    assert res.metrics["reported_percentile"] < monores_halves.LOW_PERCENTILE
    assert [w.code for w in res.warnings] == ["reported_too_fine"]
    assert "1.50 Å" in res.warnings[0]
    # without the reported resolution, or with identical halves: does not apply, one line
    for ctx in (_context(h1, h2, sig, ts, origin, resolution=None),
                _context(h1, h1, sig, ts, origin)):
        res = run_item(monores_halves, ctx)
        assert res.status == NOT_APPLICABLE and "\n" not in res.reason, res.reason
    ctx = _context(h1, h2, sig, ts, origin)
    ctx.half_maps = None
    assert run_item(monores_halves, ctx).status == NOT_APPLICABLE


def test_local_noise_threshold_follows_the_noise_level():
    """The threshold scales with the local noise: the same signal with 10× the noise in one
    half of the box reads coarser there only (κ·sqrt(P_N), not one global quantile)."""
    a1, a2, sig, ts, origin = simulate_half_maps(3.0, TS, seed=0)
    n1, n2 = a1 - sig, a2 - sig
    w = blend_halves(np.ones_like(sig), np.full_like(sig, 10.0))
    h1, h2 = sig + n1 * w, sig + n2 * w
    ctx = _context(h1, h2, sig, ts, origin)
    res = run_item(monores_halves, ctx)
    vol = res.data["volume"]
    quiet, loud = _regions(ctx)
    med = [float(np.median(vol[r][vol[r] > 0])) for r in (quiet, loud)]
    assert abs(med[0] - 3.0) <= 0.15 * 3.0, med
    assert med[1] > 1.15 * med[0], med


def test_invariant_to_units_and_offset():
    """Halves × 10⁶ + 3·10⁶ (another unit, an offset): the same local resolutions."""
    h1, h2, sig, ts, origin = _blend()
    base = run_item(monores_halves, _context(h1, h2, sig, ts, origin)).metrics
    k, c = np.float32(1e6), np.float32(3e6)
    other = run_item(monores_halves, _context(h1 * k + c, h2 * k + c, sig * k + c, ts,
                                              origin)).metrics
    for key in ("median_A", "p2_5", "p97_5", "reported_percentile"):
        assert other[key] == pytest.approx(base[key], abs=0.02), key


def test_non_finite_half_map_is_not_measured():
    h1, h2, sig, ts, origin = _blend()
    bad = h1.copy()
    bad[0, 0, 0] = np.nan
    res = run_item(monores_halves, _context(bad, h2, sig, ts, origin))
    assert res.status == "failed" and "not finite" in res.reason and "\n" not in res.reason
