"""A.b FSC-Q (Ramírez-Aportela et al. 2021) with known answers.

Half maps of 5ME2 at 3.5 Å (tests/simulate.py local_fsc_noisy_halves: signal with B = 16·d²,
white noise, designed FSC crossing 0.143 at 3.5 Å); the map is their average. With the model
the map was simulated from, the map–model local resolution follows the half-map one (FSC-Qr
near 0 everywhere). With chain A moved by 3 Å (the map still from the model in place) the map
and model disagree in chain A only: its residues must have FSC-Qr > 1.5, the others not.
"""
from __future__ import annotations

import gemmi
import numpy as np
import pytest

from cryovalid.context import Context
from cryovalid.data import ModelData
from cryovalid.io.maps import Map
from cryovalid.io.model import read_model
from cryovalid.items import fscq, local_fsc
from cryovalid.items.base import NOT_APPLICABLE, OK, WARNINGS, run_item

from simulate import (EXAMPLE_MODEL, load_atoms, local_fsc_noisy_halves, simulate,
                      threshold_for_volume)

RES = 3.5
TS = 1.2
SHIFT_A = 3.0

pytestmark = pytest.mark.slow


def _moved_chain(model, chain, shift, path):
    st = model.structure.clone()
    for mdl in st:
        for ch in mdl:
            if ch.name == chain:
                for r in ch:
                    for a in r:
                        a.pos = gemmi.Position(a.pos.x + shift[0], a.pos.y + shift[1],
                                               a.pos.z + shift[2])
    st.write_pdb(str(path))
    return read_model(str(path))


@pytest.fixture(scope="module")
def maps():
    sig, ts, origin = simulate(atoms=load_atoms(), padding=8.0, cubic=False,
                               bfactor=16.0 * RES * RES, voxel_size=TS)
    h1, h2 = local_fsc_noisy_halves(sig, ts, RES)
    thr = threshold_for_volume(sig, 4468 * 18.0, ts)
    return h1, h2, ts, origin, thr


def _ctx(maps, model, resolution=RES):
    h1, h2, ts, origin, thr = maps
    ctx = Context.of(Map((h1 + h2) / 2, ts, origin, path="map.mrc"), thr, resolution=resolution,
                     half_maps=(Map(h1, ts, origin, path="h1.mrc"),
                                Map(h2, ts, origin, path="h2.mrc")))
    ctx.model = ModelData(model, ctx.map, resolution)
    return ctx


@pytest.fixture(scope="module")
def results(maps, tmp_path_factory):
    model = read_model(EXAMPLE_MODEL)
    moved = _moved_chain(model, "A", (SHIFT_A, 0.0, 0.0),
                         tmp_path_factory.mktemp("fscq") / "moved.pdb")
    good_ctx = _ctx(maps, model)
    return (good_ctx, run_item(fscq, good_ctx)), run_item(fscq, _ctx(maps, moved))


def _per_residue(res):
    qr = np.array([np.nan if v is None else v for v in res.residue_columns["fscqr"]], float)
    return qr, np.asarray(res.residue_columns["chain"])


def test_the_model_of_the_map_scores_near_zero(results):
    (_, good), _ = results
    assert good.status in (OK, WARNINGS), good.reason
    assert "many_unsupported" not in [w.code for w in good.warnings]
    assert abs(good.metrics["fscq_median"]) < 0.5  # Å; measured 0.07
    assert good.metrics["fscqr_above_15_pct"] < 2.0  # measured 0
    qr, _ = _per_residue(good)
    assert np.isfinite(qr).mean() > 0.99 and np.nanmax(np.abs(qr)) < 1.0


def test_a_displaced_chain_is_flagged_and_only_it(results):
    _, moved = results
    qr, chain = _per_residue(moved)
    a, others = qr[(chain == "A") & np.isfinite(qr)], qr[(chain != "A") & np.isfinite(qr)]
    # measured: 87 % of chain A above 1.5 (median 2.4), 1.4 % of the other chains
    assert np.mean(a > fscq.QR_LIMIT) > 0.75 and np.median(a) > fscq.QR_LIMIT
    assert np.mean(others > fscq.QR_LIMIT) < 0.08 and abs(np.median(others)) < 0.2
    pct = 100.0 * np.mean(np.abs(qr[np.isfinite(qr)]) > fscq.QR_LIMIT)
    assert moved.metrics["fscqr_above_15_pct"] == pytest.approx(pct, abs=1e-3)
    assert moved.metrics["fscqr_above_15_pct"] > fscq.MAX_PCT
    assert "many_unsupported" in [w.code for w in moved.warnings]
    assert moved.summary
    assert set(moved.residue_columns) == {"chain", "number", "icode", "name", "fscqr"}
    assert len(moved.residue_columns["fscqr"]) == len(moved.residue_columns["number"])


def test_fscqr_is_fscq_over_the_half_map_local_resolution(results):
    (ctx, good), _ = results
    vols = {a.name: a.data for a in good.artefacts}
    q, qr = vols[fscq.VOLUME_Q], vols[fscq.VOLUME_QR]
    half = {a.name: a.data for a in run_item(local_fsc, ctx).artefacts}[local_fsc.VOLUME]
    inside = half > 0  # 1.c's clip at 2 Å is below Nyquist (2.4 Å) here: the same values
    assert inside.sum() > 1000
    np.testing.assert_allclose(qr[inside] * half[inside], q[inside], rtol=1e-4, atol=1e-4)
    assert np.all(q[~inside] == 0) and np.all(qr[~inside] == 0)


def test_without_half_maps_it_does_not_apply(maps):
    ctx = _ctx(maps, read_model(EXAMPLE_MODEL))
    ctx.half_maps = None
    res = run_item(fscq, ctx)
    assert res.status == NOT_APPLICABLE and "half maps" in res.reason


def test_fscq_figures(results, monkeypatch):
    import os

    from cryovalid.figures import local_fsc as figs

    monkeypatch.setenv("CRYOVALID_NO_VTK", "1")
    (ctx, _), moved = results
    drawing = figs.draw_fscq(moved, ctx)
    assert [os.path.basename(f.path) for f in drawing.figures] == [
        "fscqr_histogram.png", "fscqr_views.png"]
    script = [a for a in drawing.artefacts if a.name.endswith(".cxc")][0]
    assert '"../maps/fscqr.mrc"' in script.text and fscq.VOLUME_QR == "maps/fscqr.mrc"
    lo, hi = moved.data["p2_5"], moved.data["p97_5"]  # colour range: P2.5–P97.5 of FSC-Qr
    assert f"range {lo:.6g},{hi:.6g}" in script.text
    assert hi == pytest.approx(moved.metrics["fscqr_p97_5"], abs=1e-4) and hi > fscq.QR_LIMIT
