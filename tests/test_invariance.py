"""Property test (issue 18, point 4): a map's quality does not depend on its units.

For a few random small maps simulated from 5ME2 (random voxel size, resolution, B-factor, noise
and box), the map V is replaced by V' = a·V + c with a random positive factor a and constant c,
the threshold by T' = a·T + c (and, with half maps, each half alike). Then every item must give
the same status and every metric the same value, within

    |m' − m| <= RTOL·|m| + ATOL        (RTOL = 1e-3, ATOL = 1e-3 in the metric's unit)

(float32 arithmetic on the transformed values; booleans, counts and None exactly), except the
metrics that measure the scale or the offset themselves, which must change exactly as they
should (EXPECTED below, same tolerance on the transformed value). The threshold is placed in a
gap between two map values so that V' ≥ T' selects exactly the voxels V ≥ T.

Items run through the in-process pipeline (``pipeline.run_analyses``), as the command line does.
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import simulate
from cryovalid.context import Context
from cryovalid.io.maps import Map
from cryovalid.pipeline import run_analyses

RTOL = 1e-3
ATOL = 1e-3


def _mean(m, a, c):
    return a * m["background_mean"] + c


# Metrics that measure the map's scale or offset: name -> (expected value after the transform,
# given the untransformed metrics, a, c; or None: only invariant to the scale, not checked with
# an offset).
EXPECTED = {
    "background_mean": lambda m, a, c: _mean(m, a, c),
    "background_std": lambda m, a, c: a * m["background_std"],
    "background_mean_sigma": lambda m, a, c: _mean(m, a, c) / (a * m["background_std"]),
    # the t-test of "zero mean" measures the offset by design: scale-invariant only
    "background_t_pvalue": None,
    # ln|F| = slope·s² + intercept: the amplitudes scale by a (the offset only moves F(0), which
    # is outside the fit window)
    "guinier_intercept": lambda m, a, c: m["guinier_intercept"] + math.log(a),
}
# Items whose verdict legitimately depends on the offset (0.c tests that the background mean
# is zero); their status is compared for a pure scale only.
OFFSET_VERDICT_ITEMS = {"0.c"}


def _gap_threshold(vol, fraction=0.03):
    """A threshold near the (1 - fraction) quantile, in the widest gap between neighbouring map
    values there, so that a float32 rounding of a·V + c never moves a voxel across it."""
    flat = np.sort(vol.ravel().astype(np.float64))
    k = int((1.0 - fraction) * flat.size)
    window = flat[k - 200: k + 200]
    gaps = np.diff(window)
    i = int(np.argmax(gaps))
    return float(0.5 * (window[i] + window[i + 1]))


def _maps():
    """(id, volume, voxel size, origin, resolution, halves or None): three random small maps."""
    rng = np.random.default_rng(18)
    out = []
    specs = [  # voxel size (Å), box, with half maps
        ("A", float(rng.uniform(1.4, 1.6)), None, False),  # fine enough for 0.h (R <= 5 Å)
        ("B", float(rng.uniform(1.8, 2.2)), (36, 36, 36), True),
        ("C", float(rng.uniform(2.0, 2.5)), (32, 30, 34), False),
    ]
    for name, ts, shape, with_halves in specs:
        seed = int(rng.integers(1 << 30))
        if with_halves:
            res = float(rng.uniform(7.0, 9.0))
            h1, h2, _, ts, origin = simulate.simulate_half_maps(res, voxel_size=ts, shape=shape,
                                                                seed=seed)
            vol = ((h1 + h2) / 2).astype(np.float32)
            halves = (h1, h2)
        else:
            res = float(rng.uniform(3.2 * ts, 4.8)) if name == "A" else float(
                rng.uniform(2.5 * ts, 4.0 * ts))
            vol, ts, origin = simulate.simulate(voxel_size=ts, resolution=res,
                                                bfactor=float(rng.uniform(20, 80)),
                                                noise=float(rng.uniform(0.01, 0.05)),
                                                seed=seed, padding=6.0, shape=shape)
            halves = None
        out.append((name, vol, ts, origin, round(res, 2), halves))
    return out


MAPS = _maps()
# (label, a, c in units of the transformed map's std, a·std(V))
TRANSFORMS = [("scale_up", 37.5, 0.0), ("scale_down", 0.0123, 0.0),
              ("scale_offset", 0.0123, 1.7), ("offset", 1.0, -2.3), ("large_offset", 3.1, 20.0)]


def _analyse(vol, ts, origin, threshold, resolution, halves, out_dir):
    m = Map(np.ascontiguousarray(vol, dtype=np.float32), ts, tuple(origin))
    hm = None if halves is None else tuple(
        Map(np.ascontiguousarray(h, dtype=np.float32), ts, tuple(origin)) for h in halves)
    ctx = Context.of(m, float(threshold), resolution=resolution, half_maps=hm)
    kw = {}
    if "figures" in inspect.signature(run_analyses).parameters:
        kw["figures"] = False  # the numbers do not depend on the figures
    if "store" in inspect.signature(run_analyses).parameters:
        from cryovalid.store import FolderStore

        kw["store"] = FolderStore(str(out_dir))
    _, results = run_analyses(ctx, **kw)
    return {r.id: r for r in results}


_BASE = {}


def _base(name, tmp_path_factory):
    if name not in _BASE:
        _, vol, ts, origin, res, halves = next(m for m in MAPS if m[0] == name)
        t = _gap_threshold(vol)
        _BASE[name] = (t, _analyse(vol, ts, origin, t, res, halves,
                                   tmp_path_factory.mktemp(f"base{name}")))
    return _BASE[name]


def _close(x, y):
    return abs(x - y) <= RTOL * abs(x) + ATOL


def _same(want, got) -> bool:
    """Booleans, strings, None and integer counts exactly; other numbers within tolerance."""
    if want is None or got is None or isinstance(want, (bool, np.bool_, str)):
        return want == got
    if isinstance(want, (list, tuple)):
        return isinstance(got, (list, tuple)) and len(want) == len(got) and all(
            _same(w, g) for w, g in zip(want, got))
    if isinstance(want, dict):
        return isinstance(got, dict) and set(want) == set(got) and all(
            _same(want[k], got[k]) for k in want)
    if isinstance(want, (int, np.integer)) and isinstance(got, (int, np.integer)):
        return int(want) == int(got)
    try:
        return bool(np.isfinite(float(got))) and _close(float(want), float(got))
    except (TypeError, ValueError):
        return want == got


def compare(base, new, a, c):
    """The differences (item, metric, before, after, expected) beyond the tolerance."""
    bad = []
    for iid, r0 in base.items():
        r1 = new[iid]
        if r0.status != r1.status and not (c != 0 and iid in OFFSET_VERDICT_ITEMS):
            bad.append((iid, "status", r0.status, r1.status, r0.status))
        for k, v0 in r0.metrics.items():
            if k in EXPECTED:
                if EXPECTED[k] is None and c != 0:
                    continue
                want = v0 if EXPECTED[k] is None else EXPECTED[k](r0.metrics, a, c)
            else:
                want = v0
            if not _same(want, r1.metrics.get(k)):
                bad.append((iid, k, v0, r1.metrics.get(k), want))
    return bad


def _cases():
    """Every map × transform; with half maps (Level 1 runs eight items) only the first
    transform is in the fast tier, the others in the full suite."""
    out = []
    for m in MAPS:
        for i, (label, a, c_sigma) in enumerate(TRANSFORMS):
            slow = m[5] is not None and i > 0
            out.append(pytest.param(m[0], label, a, c_sigma, id=f"{m[0]}-{label}",
                                    marks=pytest.mark.slow if slow else ()))
    return out


@pytest.mark.parametrize("name, label, a, c_sigma", _cases())
def test_metrics_invariant_to_scale_and_offset(name, label, a, c_sigma, tmp_path,
                                               tmp_path_factory):
    _, vol, ts, origin, res, halves = next(m for m in MAPS if m[0] == name)
    t, base = _base(name, tmp_path_factory)
    c = c_sigma * a * float(vol.std())
    f = (lambda v: (np.float64(a) * v.astype(np.float64) + c).astype(np.float32))
    new = _analyse(f(vol), ts, origin, a * t + c, res,
                   None if halves is None else tuple(f(h) for h in halves), tmp_path)
    assert set(new) == set(base)
    ran = [i for i, r in base.items() if r.status in ("ok", "warnings")]
    assert len(ran) >= 5, {i: (r.status, r.reason) for i, r in base.items()}
    bad = compare(base, new, a, c)
    assert not bad, (f"map {name} (voxel {ts:.3f} Å, R {res} Å), V' = {a:g}·V + {c:.4g}: not "
                     "invariant: " + "; ".join(
                         f"{i} {k}: {v0!r} -> {v1!r} (expected {w!r})" for i, k, v0, v1, w in bad))


EXTREME = [("times_1e30", 1e30), ("times_1e-30", 1e-30)]


@pytest.mark.parametrize("label, a", EXTREME, ids=[e[0] for e in EXTREME])
@pytest.mark.parametrize("name", ["A", "C"])
def test_extreme_scales_measure_alike_or_say_why(name, label, a, tmp_path, tmp_path_factory):
    """At 1e30 or 1e-30 the arithmetic may overflow or underflow: an item may then say it could
    not be measured (with its reason), but an item that gives a verdict gives the same one,
    with the same numbers (issue 18, point 6)."""
    _, vol, ts, origin, res, halves = next(m for m in MAPS if m[0] == name)
    t, base = _base(name, tmp_path_factory)
    new = _analyse((vol.astype(np.float64) * a).astype(np.float32), ts, origin, t * a, res,
                   None, tmp_path)
    bad = []
    for iid, r1 in new.items():
        if r1.status == "failed":
            assert r1.reason and not r1.warnings and not r1.resolution_estimates, (iid, r1)
            continue
        bad += compare({iid: base[iid]}, {iid: r1}, a, 0.0)
    assert not bad, (f"map {name}, V' = {a:g}·V: gives a verdict that differs: " + "; ".join(
        f"{i} {k}: {v0!r} -> {v1!r} (expected {w!r})" for i, k, v0, v1, w in bad))
