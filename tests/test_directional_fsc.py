"""Directional FSC kernel (kernels/directional_fsc.py), 1.g FSO and 1.h 3D FSC.

Known answers come from half maps whose signal-to-noise ratio is cut by an ellipsoid
(tests/simulate.py: directional_anisotropic_half_maps): the designed FSC along a direction u
crosses 0.143 at 1/sqrt(Σ (u_i·d_i)²), e.g. 3 Å along x and y and 6 Å along z. The kernel is
checked against a brute-force per-coefficient computation with exact cone angles, its conical
crossings against the conical FSC expected from the design, and the sphericity against the
closed form of a spheroid.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from cryovalid.context import Context
from cryovalid.io.maps import Map
from cryovalid.items import fsc3d, fso
from cryovalid.items.base import run_item
from cryovalid.kernels import directional_fsc as D
from cryovalid.kernels import fourier
from cryovalid.kernels import fsc as K

from simulate import (directional_anisotropic_half_maps, directional_anisotropic_radius,
                      directional_resolution_truth, freq2, half_map_snr, shape_map)

ANISO = (3.0, 3.0, 6.0)  # Å along x, y, z
ISO = (3.0, 3.0, 3.0)


def _full_grid(shape, ts):
    sz, sy, sx = fourier.frequency_components(shape, ts)
    return np.broadcast_arrays(sz, sy, sx)


def _brute_cone_fsc(F1, F2, shells, u, cone_deg, gaussian=False):
    """Cone FSC per shell with the exact angle of every coefficient (no binning): hard, or
    with Xmipp's Gaussian taper exp(-4(c-1)²/(cos α-1)²)."""
    sz, sy, sx = _full_grid(shells.shape, shells.voxel_size)
    s = np.sqrt(sz ** 2 + sy ** 2 + sx ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.abs(sx * u[0] + sy * u[1] + sz * u[2]) / s
    cos_a = math.cos(math.radians(cone_deg))
    inside = (c >= cos_a) & (s > 0)
    w = inside.astype(np.float64)  # shells.sum applies the Hermitian weights
    if gaussian:
        w *= np.exp(-4.0 * (np.where(inside, c, 1.0) - 1.0) ** 2 / (cos_a - 1.0) ** 2)
    cross = shells.sum((F1.real * F2.real + F1.imag * F2.imag) * w)
    p1 = shells.sum(np.abs(F1) ** 2 * w)
    p2 = shells.sum(np.abs(F2) ** 2 * w)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cross / np.sqrt(p1 * p2)


def test_kernel_matches_brute_force_on_a_non_cubic_box():
    rng = np.random.default_rng(3)
    shape, ts = (40, 36, 44), 1.3
    common = rng.standard_normal(shape).astype(np.float32)
    h1 = common + 0.7 * rng.standard_normal(shape).astype(np.float32)
    h2 = common + 0.7 * rng.standard_normal(shape).astype(np.float32)
    # a smooth common part so that the FSC falls with frequency
    h1, h2 = (shape_map(h, ts, bfactor=60.0) for h in (h1, h2))
    shells = fourier.FourierShells(shape, ts)
    F1, F2 = fourier.rfft(h1), fourier.rfft(h2)
    dirs = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.6, -0.48, 0.64]], dtype=float)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    r = D.directional_fsc(F1, F2, shells, dirs, 20.0, "hard")
    # the global FSC is the ordinary FSC, from the same one-pass sums
    np.testing.assert_allclose(r.global_fsc[1:], K.fsc(F1, F2, shells)[1:], atol=1e-5)
    start = r.first_reliable_shell()
    for i, u in enumerate(dirs):
        exact = _brute_cone_fsc(F1, F2, shells, u, 20.0)
        # cone membership is exact (cells the edge crosses are tested coefficient by
        # coefficient): the same sums up to float32 rounding
        np.testing.assert_allclose(r.fsc[i, start:], exact[start:], atol=2e-5)
    # the Gaussian cone: exact membership, the weight of the cell's centre inside the cone
    g = D.directional_fsc(F1, F2, shells, dirs, 17.0, "gaussian")
    start = g.first_reliable_shell()
    for i, u in enumerate(dirs):
        exact = _brute_cone_fsc(F1, F2, shells, u, 17.0, gaussian=True)
        diff = np.abs(g.fsc[i, start:] - exact[start:])
        assert diff.max() < 0.03 and diff.mean() < 0.006, (i, diff.max(), diff.mean())


def test_occupancy_counts_directions_above_threshold():
    fsc = np.array([[1.0, 0.9, 0.5, 0.1], [1.0, 0.9, 0.1, 0.0],
                    [1.0, 0.1, 0.1, np.nan], [1.0, 0.9, 0.9, 0.9]])
    occ = D.occupancy(fsc, 0.143)
    np.testing.assert_allclose(occ, [1.0, 0.75, 0.5, 1.0 / 3.0])
    assert D.occupancy(fsc, 0.143, first_shells=3)[2] == 1.0


def _spheroid_sphericity(a, c):
    """Closed form for the spheroid with semi-axes a, a, c."""
    v = 4.0 / 3.0 * math.pi * a * a * c
    if c < a:  # oblate
        e = math.sqrt(1 - c * c / (a * a))
        area = 2 * math.pi * a * a * (1 + (1 - e * e) / e * math.atanh(e))
    else:  # prolate
        e = math.sqrt(1 - a * a / (c * c))
        area = 2 * math.pi * a * a * (1 + c / (a * e) * math.asin(e))
    return math.pi ** (1 / 3) * (6 * v) ** (2 / 3) / area


@pytest.mark.parametrize("a,c", [(1.0, 1.0), (1.0, 0.5), (0.5, 1.0), (1.0, 0.8)])
def test_sphericity_of_spheroids(a, c):
    dirs = D.half_sphere_directions(2000)
    radii = 1.0 / np.sqrt((dirs[:, 0] / a) ** 2 + (dirs[:, 1] / a) ** 2 + (dirs[:, 2] / c) ** 2)
    truth = 1.0 if a == c else _spheroid_sphericity(a, c)
    assert abs(D.sphericity(dirs, radii) - truth) < 0.003


def _expected_cone_resolution(signal, ts, resolution_xyz, u, cone_deg, steepness=16.0):
    """Resolution where the conical FSC expected from the design, Σ S / Σ (S + N) over the
    cone's coefficients of each shell, falls below 0.143 (exact angles, per coefficient)."""
    ft = np.fft.rfftn(signal)
    shells = fourier.FourierShells(signal.shape, ts)
    power = np.abs(ft) ** 2
    s_mean = shells.mean(power)
    sz, sy, sx = _full_grid(signal.shape, ts)
    rho = directional_anisotropic_radius(sz, sy, sx, resolution_xyz)
    idx = np.minimum(shells.index, shells.n_shells - 1)
    noise = s_mean[idx] / half_map_snr(rho, 1.0, steepness)
    s = np.sqrt(freq2(signal.shape, ts))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.abs(sx * u[0] + sy * u[1] + sz * u[2]) / s
    inside = (c >= math.cos(math.radians(cone_deg))) & (s > 0)
    w = inside.astype(np.float64)  # shells.sum applies the Hermitian weights
    with np.errstate(invalid="ignore", divide="ignore"):
        fsc = shells.sum(power * w) / shells.sum((power + noise) * w)
    return K.first_crossing(shells.frequency, fsc, K.FSC_GOLD, "below", start=3).resolution


@pytest.fixture(scope="module")
def aniso_unmasked():
    h1, h2, sig, ts, origin = directional_anisotropic_half_maps(ANISO, voxel_size=1.0)
    shells = fourier.FourierShells(h1.shape, ts)
    F1, F2 = fourier.rfft(h1), fourier.rfft(h2)
    return F1, F2, shells, sig, ts


def test_conical_crossings_match_the_design(aniso_unmasked):
    F1, F2, shells, sig, ts = aniso_unmasked
    axes = np.eye(3)
    r = D.directional_fsc(F1, F2, shells, axes, 20.0, "hard")
    got = D.crossings(r.frequency, r.fsc, K.FSC_GOLD, start=r.first_reliable_shell())
    for i, u in enumerate(axes):
        want = _expected_cone_resolution(sig, ts, ANISO, u, 20.0)
        assert abs(got.resolution[i] / want - 1) < 0.04, (i, got.resolution[i], want)
        # and the axis itself (the cone averages 20° around it)
        assert abs(got.resolution[i] / ANISO[i] - 1) < 0.10


def test_directional_resolutions_follow_the_ellipsoid(aniso_unmasked):
    F1, F2, shells, sig, ts = aniso_unmasked
    dirs = D.half_sphere_directions(321)
    r = D.directional_fsc(F1, F2, shells, dirs, 17.0, "gaussian")
    got = D.crossings(r.frequency, r.fsc, K.FSC_GOLD, start=r.first_reliable_shell())
    truth = directional_resolution_truth(dirs, ANISO)
    ok = np.isfinite(got.resolution)
    assert ok.all()
    assert np.corrcoef(got.resolution, truth)[0, 1] > 0.95
    assert np.median(np.abs(got.resolution / truth - 1)) < 0.06
    # the worst direction is within 25° of z
    assert abs(dirs[np.argmax(got.resolution)][2]) > math.cos(math.radians(25.0))


# ---- items -------------------------------------------------------------------------------
# The items multiply the halves by the soft mask (the reference's choice), which removes the
# noise outside the molecule and so raises the SNR of every shell: the designed resolutions
# then no longer hold exactly. A threshold below the map's minimum makes the mask the whole
# box (soft mask 1 everywhere), where the design is the truth; the masked case is checked for
# what must hold whatever the SNR gain (anisotropy found, worst direction along z, sphericity).
def _context(resolution_xyz, shape=None, reported=None, seed=0, whole_box=True):
    h1, h2, sig, ts, origin = directional_anisotropic_half_maps(resolution_xyz, voxel_size=1.0,
                                                                shape=shape, seed=seed)
    main = Map(shape_map(sig, ts, resolution=3.0), ts, origin, path="main.mrc")
    thr = float(main.data.min()) - 1.0 if whole_box else float(np.percentile(main.data, 95))
    halves = (Map(h1, ts, origin, path="h1.mrc"), Map(h2, ts, origin, path="h2.mrc"))
    ctx = Context.of(main, thr, resolution=reported, half_maps=halves)
    if whole_box:
        assert float(ctx.map.soft_mask.min()) == 1.0
    return ctx, sig


@pytest.fixture(scope="module")
def aniso_results():
    ctx, sig = _context(ANISO, reported=4.5)
    return ctx, sig, run_item(fso, ctx), run_item(fsc3d, ctx)


def test_fsc3d_axes_and_sphericity_on_anisotropic_halves(aniso_results):
    ctx, sig, _, r = aniso_results
    m = r.metrics
    for i, (key, want) in enumerate((("fsc3d_x_A", 3.0), ("fsc3d_y_A", 3.0),
                                     ("fsc3d_z_A", 6.0))):
        assert abs(m[key] / want - 1) < 0.10, (key, m[key])
        cone = _expected_cone_resolution(sig, 1.0, ANISO, np.eye(3)[i], fsc3d.CONE_DEG)
        assert abs(m[key] / cone - 1) < 0.04, (key, m[key], cone)
    # the global FSC averages the shell: between the best and the worst axis
    assert m["fsc3d_x_A"] < m["fsc3d_global_A"] < m["fsc3d_z_A"]
    # a 2:1 oblate spheroid has sphericity 0.913 (the 0.5 surface of the design); the cones
    # and the noise in the radii only lower it a little
    assert 0.85 < m["sphericity"] < 0.93
    assert r.status == "ok", r.warnings  # 4.5 Å reported ≥ 0.8 × global
    assert r.resolution_estimates[0]["resolution_A"] == pytest.approx(m["fsc3d_global_A"],
                                                                      abs=1e-3)


def test_fso_flags_the_anisotropy_and_points_at_z(aniso_results):
    _, _, r, _ = aniso_results
    m = r.metrics
    assert [w.code for w in r.warnings] == ["anisotropic"]
    # design: FSO 0.9 where |cos θ| = 0.9 (5.56 Å), 0.1 where |cos θ| = 0.1 (3.05 Å)
    d09, d01 = directional_resolution_truth([[math.sqrt(0.19), 0, 0.9],
                                             [math.sqrt(0.99), 0, 0.1]], ANISO)
    assert abs(m["fso_09_A"] / d09 - 1) < 0.10 and abs(m["fso_01_A"] / d01 - 1) < 0.10
    assert abs(m["fso_anisotropy"] - (1 - d01 / d09)) < 0.06  # 0.45
    assert abs(m["fso_worst_direction_z"]) > math.cos(math.radians(25.0))
    assert m["fso_worst_direction_A"] / 6.0 == pytest.approx(1.0, abs=0.15)
    assert m["fso_best_direction_A"] / 3.0 == pytest.approx(1.0, abs=0.10)
    # FSO = 0.5 where half the directions are resolved: |cos θ| = 0.5, 3.97 Å on the design
    want = directional_resolution_truth([[math.sqrt(0.75), 0.0, 0.5]], ANISO)[0]
    assert abs(m["fso_05_A"] / want - 1) < 0.06
    pmap = r.data["polar_map"]
    # the polar map is worst at the pole (tilt 0, the z axis) and best at the equator
    assert np.nanmean(pmap[:10]) > 1.5 * np.nanmean(pmap[-10:])


def test_isotropic_halves():
    ctx, _ = _context(ISO, reported=3.0)
    g, h = run_item(fso, ctx), run_item(fsc3d, ctx)
    assert g.status == "ok" and h.status == "ok", (g.warnings, h.warnings)
    assert h.metrics["sphericity"] > 0.98
    assert g.metrics["fso_anisotropy"] < 0.15
    for key in ("fsc3d_x_A", "fsc3d_y_A", "fsc3d_z_A", "fsc3d_global_A"):
        assert abs(h.metrics[key] / 3.0 - 1) < 0.05, key
    assert abs(g.metrics["fso_05_A"] / 3.0 - 1) < 0.05


@pytest.mark.parametrize("res_xyz", [ANISO, ISO])
def test_with_the_soft_mask(res_xyz):
    """The reference's setting: masked halves. The SNR gain moves every resolution finer, but
    the anisotropy and its direction, and the sphericity, stay."""
    ctx, _ = _context(res_xyz, reported=None, whole_box=False)
    assert 0.05 < float(ctx.map.soft_mask.mean()) < 0.5
    g, h = run_item(fso, ctx), run_item(fsc3d, ctx)
    if res_xyz == ANISO:
        assert [w.code for w in g.warnings] == ["anisotropic"]
        assert abs(g.metrics["fso_worst_direction_z"]) > math.cos(math.radians(25.0))
        assert h.metrics["sphericity"] < 0.93
        assert h.metrics["fsc3d_z_A"] > 1.6 * h.metrics["fsc3d_x_A"]
    else:
        assert g.status == "ok" and h.status == "ok"
        assert h.metrics["sphericity"] > 0.98
        assert g.metrics["fso_anisotropy"] < 0.15
    assert g.criteria == fso.CRITERIA_NO_RESOLUTION
    assert h.criteria == fsc3d.CRITERIA_NO_RESOLUTION


def test_non_cubic_box():
    ctx, sig = _context(ANISO, shape=(80, 72, 88), reported=4.5)
    h = run_item(fsc3d, ctx)
    g = run_item(fso, ctx)
    for i, (key, want) in enumerate((("fsc3d_x_A", 3.0), ("fsc3d_y_A", 3.0),
                                     ("fsc3d_z_A", 6.0))):
        assert abs(h.metrics[key] / want - 1) < 0.10, (key, h.metrics[key])
        cone = _expected_cone_resolution(sig, 1.0, ANISO, np.eye(3)[i], fsc3d.CONE_DEG)
        assert abs(h.metrics[key] / cone - 1) < 0.04, (key, h.metrics[key], cone)
    assert [w.code for w in g.warnings] == ["anisotropic"]
    assert abs(g.metrics["fso_worst_direction_z"]) > math.cos(math.radians(25.0))


def test_reported_resolution_too_optimistic_and_frequency_note(aniso_results):
    ctx, _, g, h = aniso_results
    ctx2 = Context(map=ctx.map, resolution=2.0, half_maps=ctx.half_maps)
    h2 = run_item(fsc3d, ctx2)
    assert [w.code for w in h2.warnings] == ["overestimated"]
    g2 = run_item(fso, ctx2)
    assert sorted(w.code for w in g2.warnings) == ["anisotropic", "overestimated"]
    # the correct frequency scale: the note states the reference's factor 1/(2·Ts²)
    assert any("1/(2·Ts²)" in n and "×0.50" in n for n in h.notes)


def test_figures(aniso_results):
    from cryovalid.figures import directional

    ctx, _, g, h = aniso_results
    for res in (g, h):
        d = directional.DRAWS[res.id](res, ctx)
        assert len(d.artefacts) == 2
        assert all(a.png[:4] == b"\x89PNG" for a in d.artefacts)


def test_a_tiny_mask_is_not_used():
    """A threshold that leaves a speck of a mask (< 1 % of the box) would leave each cone a
    few independent coefficients: the unmasked halves are used, with a note, and the design
    holds."""
    h1, h2, sig, ts, origin = directional_anisotropic_half_maps(ISO, voxel_size=1.0)
    main = Map(shape_map(sig, ts, resolution=3.0), ts, origin, path="main.mrc")
    ctx = Context.of(main, float(np.percentile(main.data, 99.99)), resolution=3.0,
                     half_maps=(Map(h1, ts, origin), Map(h2, ts, origin)))
    assert 0 < float(ctx.map.soft_mask.mean()) < fso.MIN_MASK_FRACTION
    h = run_item(fsc3d, ctx)
    assert any("unmasked" in n for n in h.notes)
    assert h.metrics["sphericity"] > 0.98
    assert abs(h.metrics["fsc3d_global_A"] / 3.0 - 1) < 0.05


def test_identical_and_empty_halves():
    rng = np.random.default_rng(1)
    same = Map(rng.standard_normal((32, 30, 34)).astype(np.float32), 2.0, (0.0, 0.0, 0.0))
    ctx = Context.of(same, 1.0, resolution=5.0, half_maps=(same, same))
    for item in (fso, fsc3d):
        r = run_item(item, ctx)
        assert [w.code for w in r.warnings] == ["identical_halves"]
        assert r.resolution_estimates == []
    zero = Map(np.zeros((32, 32, 32), np.float32), 2.0, (0.0, 0.0, 0.0))
    m = Map(rng.standard_normal((32, 32, 32)).astype(np.float32), 2.0, (0.0, 0.0, 0.0))
    ctx = Context.of(m, 1.0, resolution=5.0, half_maps=(zero, Map(zero.data.copy(), 2.0,
                                                                  (0.0, 0.0, 0.0))))
    ctx.half_maps.maps[1].data[0, 0, 0] = 1e-30  # not identical, still no signal
    for item in (fso, fsc3d):
        r = run_item(item, ctx)
        assert r.status == "failed" and "no signal" in r.reason, (r.status, r.reason)
