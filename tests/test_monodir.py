"""Known-answer tests of 1.f (MonoDir: directional local resolution from the half maps).

Half maps from tests/simulate.py ``simulate_halves_monodir``: the 5ME2 haemoglobin map
band-limited by an ellipsoid in Fourier space (3 Å along x and y, 6 Å along z) plus independent
noise in each half that is weak up to ~2.2 Å, so that beyond the ellipsoid the halves hold noise
only; with 3 Å along z too the halves are isotropic.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import pytest

from conftest import store_artefacts
from cryovalid.context import Context
from cryovalid.io.maps import Map
from cryovalid.items import monodir, monores_halves
from cryovalid.items.base import NOT_APPLICABLE, run_item
from cryovalid.kernels import monodir as K

from simulate import simulate_halves_monodir

TS = 1.0


def _context(res_z, shape=None, resolution=3.0, seed=0, identical=False):
    h1, h2, sig, ts, origin = _halves(res_z, shape, seed)
    thr = float(np.percentile(sig, 90))
    halves = (Map(h1, ts, origin), Map(h1 if identical else h2, ts, origin))
    return Context.of(Map(sig, ts, origin), thr, resolution=resolution, half_maps=halves)


@functools.lru_cache(maxsize=None)
def _halves(res_z, shape, seed):
    return simulate_halves_monodir(3.0, res_z, TS, shape=shape, seed=seed)


@functools.lru_cache(maxsize=None)
def _run(res_z, shape=None):
    ctx = _context(res_z, shape)
    return ctx, run_item(monodir, ctx)


@pytest.mark.slow
def test_anisotropic_halves_non_cubic_box():
    """3 Å along x, y and 6 Å along z, in a non-cubic box: the best directions are far from
    uniform, the worst direction is (near) z, the best one (near) the x-y plane, and their
    resolutions are those of the ellipsoid within 15 %."""
    shape = (80, 88, 96)
    ctx, res = _run(6.0, shape)
    assert res.status == "warnings", res.reason
    m = res.metrics
    assert m["uniformity_pvalue"] < 1e-6, m
    assert "not_uniform" in [w.code for w in res.warnings]
    assert "not seem to be uniform" in res.summary
    assert m["worst_direction_tilt_deg"] <= 25.0, m
    assert m["best_direction_tilt_deg"] >= 60.0, m
    assert abs(m["worst_direction_A"] - 6.0) <= 0.15 * 6.0, m
    assert abs(m["best_direction_A"] - 3.0) <= 0.15 * 3.0, m
    tilt, per_dir = res.data["tilt"], res.data["per_direction"]
    assert per_dir[tilt < 30].mean() > 1.4 * per_dir[tilt > 60].mean()
    assert m["anisotropy_ratio"] > 1.6, m  # truth: 6 Å / 3 Å = 2, cones blur it a little
    # the best-direction counts: directions near z are almost never the best
    counts = res.data["counts"]
    assert counts[tilt < 30].mean() < 0.5 * counts[tilt > 60].mean()
    assert m["best_median_A"] <= m["mean_median_A"] <= m["worst_median_A"]
    for key in ("best", "worst", "mean"):
        vol = next(a.data for a in res.artefacts if a.name == f"maps/monodir_{key}.mrc")
        assert vol.shape == shape
        assert not np.any(vol[~ctx.map.hard_mask])
        assert np.all(vol[ctx.map.hard_mask] > 0)
    assert res.resolution_estimates[0]["resolution_A"] == m["directional_mean_A"]


@pytest.mark.slow
def test_isotropic_halves_are_uniform():
    """3 Å in every direction: the chi-square test does not reject uniformity, no warning, all
    directions alike, and the mean directional resolution is 3 Å within 15 %."""
    ctx, res = _run(3.0)
    assert res.status == "ok", (res.reason, res.warnings)
    m = res.metrics
    assert m["uniformity_pvalue"] > 0.01, m
    assert m["uniformity_samples"] >= monodir.MIN_PER_DIRECTION * monodir.N_DIRECTIONS
    assert m["worst_direction_A"] < 1.15 * m["best_direction_A"], m
    assert m["anisotropy_ratio"] == pytest.approx(m["worst_direction_A"] / m["best_direction_A"], rel=1e-3)
    assert abs(m["directional_mean_A"] - 3.0) <= 0.15 * 3.0, m
    # the directional mean is the mean over radii of the radial mean curve (the reference's)
    assert m["directional_mean_A"] == pytest.approx(float(np.mean(res.data["radial"]["mean"])),
                                                    abs=1e-3)
    # and the reported resolution 2.0 Å is much better than it: a warning
    res2 = run_item(monodir, _context(3.0, resolution=2.0))
    assert "overestimated" in [w.code for w in res2.warnings]


def test_gates():
    res = run_item(monodir, _context(6.0, resolution=12.0))
    assert res.status == NOT_APPLICABLE and "worse than 10 Å" in res.reason
    for ctx in (_context(6.0, identical=True), _context(6.0, resolution=None)):
        res = run_item(monodir, ctx)
        assert res.status == NOT_APPLICABLE and "\n" not in res.reason, res.reason
    ctx = _context(6.0)
    ctx.half_maps = None
    assert run_item(monodir, ctx).status == NOT_APPLICABLE


def test_directions_cover_the_half_sphere_evenly():
    d = K.half_sphere_directions()
    assert d.shape == (K.N_DIRECTIONS, 3)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-12)
    assert np.all(d[:, 0] > 0)
    # angular distance to the nearest direction (a direction and its opposite are the same)
    cos = np.abs(d @ d.T)
    np.fill_diagonal(cos, 0.0)
    nn = np.degrees(np.arccos(cos.max(axis=1)))
    assert nn.min() > 0.5 * np.median(nn) and nn.max() < 1.6 * np.median(nn), nn
    tilt, rot = K.direction_angles(np.array([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]]))
    np.testing.assert_allclose(tilt, [0, 90, 90], atol=1e-9)
    np.testing.assert_allclose(rot[1:], [0, 90], atol=1e-9)


def test_lattice_values_back_on_the_grid():
    """Values at the lattice points are interpolated to every voxel: a linear ramp comes back
    exactly inside the lattice's span, and 0 outside the mask."""
    shape = (20, 24, 28)
    mask = np.zeros(shape, dtype=bool)
    mask[2:18, 3:21, 4:24] = True
    flat = K.lattice_points(mask, 2)
    z, y, x = np.unravel_index(flat, shape)
    vals = (1.0 + 0.1 * x + 0.05 * z).astype(np.float32)
    vol = K.lattice_to_volume(vals, flat, shape, 2, mask)
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    inner = mask & (xx >= 4) & (xx <= 22) & (zz >= 2) & (zz <= 16)
    np.testing.assert_allclose(vol[inner], (1.0 + 0.1 * xx + 0.05 * zz)[inner], atol=1e-5)
    assert not np.any(vol[~mask])


@pytest.mark.slow
def test_figures(tmp_path, monkeypatch):
    from cryovalid.figures import monodir as figs
    from cryovalid.io.maps import write_map
    from cryovalid.registry import draws as registered_draws

    monkeypatch.setenv("CRYOVALID_NO_VTK", "1")
    ctx, res = _run(6.0, (80, 88, 96))
    os.makedirs(tmp_path / "maps", exist_ok=True)
    write_map(str(tmp_path / "maps" / "mask_soft.mrc"), ctx.map.soft_mask, TS, ctx.map.origin)
    drawing = figs.draw_monodir(res, ctx)
    assert not os.path.exists(tmp_path / "figures")
    assert len(drawing.figures) == 5  # bars, polar, radial, histogram, views
    e = run_item(monores_halves, ctx)
    drawing_e = figs.draw_monores(e, ctx)
    assert len(drawing_e.figures) == 2
    for r, dr in ((res, drawing), (e, drawing_e)):
        r.artefacts = list(r.artefacts) + dr.artefacts
        store_artefacts(r, tmp_path)
        for f in dr.figures:
            assert f.path and os.path.isfile(tmp_path / f.path), f
    assert (tmp_path / "chimerax" / "monodir_mean.cxc").is_file()
    assert (tmp_path / "chimerax" / "local_resolution_monores.cxc").is_file()
    draws = registered_draws()
    assert draws["1.e"] is figs.draw_monores and draws["1.f"] is figs.draw_monodir
