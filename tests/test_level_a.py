"""Level A items (A.0 fit gate, A.a map–model fit, A.d Guinier match) on maps simulated from a
real model with known answers, and end to end on the shared EMDB pairs (cctbx's numbers, from
level-a-methods.md, as literal expected values)."""
import json
import os

import gemmi
import numpy as np
import pytest

from cryovalid.context import Context
from cryovalid.data import ModelData
from cryovalid.io.maps import Map
from cryovalid.io.model import read_model
from cryovalid.items import emringer, fitgate, guinier_match, mapmodel, multimodel, qscore, smoc
from cryovalid.items.base import NOT_APPLICABLE, OK, WARNINGS, run_item

from simulate import EXAMPLE_MODEL, SHARED_REAL, simulate, threshold_for_volume

VOXEL = 1.2
RES = 3.5


@pytest.fixture(scope="module")
def sim():
    """A 3.5 Å map of 5ME2 (independent of the package's model map: tests/simulate.py) with 10 %
    noise, and the model."""
    vol, ts, origin = simulate(EXAMPLE_MODEL, VOXEL, bfactor=30.0, resolution=RES, noise=0.1,
                               padding=8.0)
    return Map(vol, ts, origin, path="sim.mrc"), read_model(EXAMPLE_MODEL)


def _ctx(m, model, resolution=RES):
    t = threshold_for_volume(m.data, 4468 * 18.0, m.voxel_size)
    ctx = Context.of(m, t, resolution=resolution)
    ctx.model = ModelData(model, ctx.map, resolution)
    return ctx


def _moved(model, shift, tmp_path, name="moved.pdb"):
    st = model.structure.clone()
    for mdl in st:
        mdl.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift)))
    path = str(tmp_path / name)
    st.write_pdb(path)
    return read_model(path)


def test_a_fitted_model_passes_the_gate_and_correlates(sim):
    m, model = sim
    ctx = _ctx(m, model)
    gate = run_item(fitgate, ctx)
    assert gate.status == OK, (gate.reason, gate.warnings)
    assert gate.metrics["model_moved_A"] == 0.0 and gate.metrics["fraction_atoms_inside"] == 1.0
    a = run_item(mapmodel, ctx)
    assert a.status == OK, (a.reason, a.warnings)
    assert a.metrics["cc_mask"] > 0.9 and a.metrics["cc_box"] > 0.8
    assert a.metrics["residues_cc_below_05_pct"] == 0.0
    # the map was simulated at 3.5 Å: map and model agree (FSC 0.5) within 10 % of it
    assert abs(a.metrics["d_fsc_model_05_masked_A"] - RES) / RES < 0.10
    assert len(a.residue_columns["cc"]) == model.n_residues
    assert {x.name for x in a.artefacts} >= {"maps/model_map.mrc", "fsc_model.csv"}
    d = run_item(guinier_match, ctx)
    assert d.status == OK and d.metrics["guinier_correlation"] > 0.9


def test_a_shift_of_3A_lowers_every_cc(sim, tmp_path):
    m, model = sim
    base = _ctx(m, model).model.cc
    from cryovalid.kernels.mapmodel_cc import map_model_cc_for_model

    moved, _, _ = map_model_cc_for_model(_moved(model, (3.0, 0.0, 0.0), tmp_path), m, RES)
    assert moved.cc_mask < base.cc_mask - 0.2
    cc0, cc1 = base.residue_cc, moved.residue_cc
    ok = np.isfinite(cc0) & np.isfinite(cc1)
    assert np.mean(cc1[ok] < cc0[ok]) > 0.95


@pytest.mark.slow
def test_zeroing_one_chain_flags_its_residues(sim):
    m, model = sim
    from scipy import ndimage

    xyz = model.xyz[(model.chain[model.residue_index] == "A") & ~model.is_hydrogen]
    idx = np.rint(m.xyz_to_index(xyz)).astype(int)
    near = np.zeros(m.shape, bool)
    near[tuple(idx.T)] = True
    near = ndimage.binary_dilation(near, iterations=3)
    vol = np.where(near, np.float32(0.0), m.data)
    ctx = _ctx(Map(vol, m.voxel_size, m.origin), model)
    a = run_item(mapmodel, ctx)
    cc = np.asarray(a.residue_columns["cc"], dtype=float)
    chain = np.asarray(a.residue_columns["chain"])
    # residues at the interface keep part of their neighbours' density within the CC radius
    assert np.mean(cc[chain == "A"] < 0.5) > 0.95
    assert np.mean(cc[chain != "A"] > 0.5) > 0.95
    assert a.status == WARNINGS and a.warnings[0].code == "low_residue_cc"


@pytest.mark.slow
def test_a_model_moved_by_half_the_box_is_found_again(sim, tmp_path):
    m, model = sim
    half = np.array(m.shape[::-1]) * m.voxel_size / 2.0
    away = _moved(model, tuple(half), tmp_path)
    ctx = _ctx(m, away)
    gate = run_item(fitgate, ctx)
    assert gate.status == WARNINGS and gate.warnings[0].code == "moved"
    assert gate.metrics["cc_mask_at_input"] < 0.5 < gate.metrics["cc_mask"]
    # the box-centre candidate puts the model back within a voxel of where it was simulated
    assert np.allclose(ctx.model.xyz, model.xyz, atol=m.voxel_size)
    a = run_item(mapmodel, ctx)
    assert a.status == OK and a.metrics["cc_mask"] > 0.9


@pytest.mark.slow
def test_an_unfitted_model_makes_level_a_not_apply(sim, tmp_path):
    m, model = sim
    # rotated by 90° about z: no translation can fit it
    st = model.structure.clone()
    rot = gemmi.Mat33([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    for mdl in st:
        mdl.transform_pos_and_adp(gemmi.Transform(rot, gemmi.Vec3(0, 0, 0)))
    path = str(tmp_path / "rotated.pdb")
    st.write_pdb(path)
    ctx = _ctx(m, read_model(path))
    gate = run_item(fitgate, ctx)
    assert gate.status == WARNINGS and gate.warnings[0].code == "not_fitted"
    for item in (mapmodel, guinier_match):
        r = run_item(item, ctx)
        assert r.status == NOT_APPLICABLE and "does not fit" in r.reason


def test_without_resolution_level_a_says_why(sim):
    m, model = sim
    ctx = _ctx(m, model, resolution=None)
    for item in (fitgate, mapmodel, guinier_match):
        r = run_item(item, ctx)
        assert r.status == NOT_APPLICABLE and "resolution" in r.reason


def _ensemble(model, tmp_path, sigma, name):
    """The model twice in one file, the second copy's atoms moved by Gaussian noise of
    ``sigma`` Å per axis (RMSD √3·σ) and by a rigid rotation + shift (which the superposition
    must remove)."""
    rng = np.random.default_rng(1)
    st = model.structure.clone()
    second = st[0].clone()
    rot = gemmi.Mat33([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    second.transform_pos_and_adp(gemmi.Transform(rot, gemmi.Vec3(5.0, -3.0, 2.0)))
    for ch in second:
        for res in ch:
            for at in res:
                d = rng.normal(0.0, sigma, 3) if sigma else np.zeros(3)
                at.pos = gemmi.Position(at.pos.x + d[0], at.pos.y + d[1], at.pos.z + d[2])
    st.add_model(second)
    st.renumber_models()
    path = str(tmp_path / name)
    st.write_pdb(path)
    return read_model(path)


def test_multimodel_warns_for_a_perturbed_ensemble_only(sim, tmp_path):
    m, model = sim
    same = run_item(multimodel, _ctx(m, _ensemble(model, tmp_path, 0.0, "same.pdb")))
    assert same.status == OK and same.metrics["models"] == 2
    assert same.metrics["rmsd_mean_A"] < 1e-3  # the rigid motion is removed exactly
    noisy = run_item(multimodel, _ctx(m, _ensemble(model, tmp_path, 3.0 / np.sqrt(3), "n.pdb")))
    assert noisy.status == WARNINGS and noisy.warnings[0].code == "ambiguous"
    # per-residue RMSD of 3 Å Gaussian displacements: mean of |d| ≈ 3·0.921 (chi, 3 dof)
    assert noisy.metrics["rmsd_mean_A"] == pytest.approx(3.0 * 0.921, rel=0.1)
    single = run_item(multimodel, _ctx(m, model))
    assert single.status == NOT_APPLICABLE and "one model" in single.reason


@pytest.mark.slow
def test_qscore_and_emringer_items_run_and_fill_the_residue_table(sim):
    m, model = sim
    ctx = _ctx(m, model)
    e = run_item(qscore, ctx)
    assert e.status == OK, (e.reason, e.warnings)
    # a perfect model in a 3.5 Å map: Q above MapQ's expected line at 3.5 Å, below 1
    assert e.metrics["qscore_expected"] == pytest.approx(-0.1775 * RES + 1.1192)
    assert e.metrics["qscore_expected"] < e.metrics["qscore_mean"] < 1.0
    assert len(e.residue_columns["q"]) == model.n_residues
    assert len(e.tables[-1].rows) == 4 * qscore.WORST_PER_CHAIN
    f = run_item(emringer, ctx)
    assert f.status in (OK, WARNINGS), f.reason
    assert f.metrics["emringer_residues"] > 300
    assert len(f.residue_columns["emringer_peak_chi1"]) == model.n_residues


def _rotate_chi1(model, fraction, angle, tmp_path, seed=0):
    """The model with the side chain beyond CB of ``fraction`` of the residues that have a γ
    atom turned by ``angle`` degrees about CA→CB; returns (model, turned residue indices)."""
    from scipy.spatial.transform import Rotation

    st = model.structure.clone()
    rng = np.random.default_rng(seed)
    turned, r_index = [], 0
    for ch in st[0]:
        for res in ch:
            ca, cb = res.find_atom("CA", "*"), res.find_atom("CB", "*")
            side = [a for a in res if a.name not in ("N", "CA", "C", "O", "CB", "OXT")
                    and a.element.name != "H"]
            if ca is not None and cb is not None and side and rng.random() < fraction:
                axis = np.array(cb.pos.tolist()) - np.array(ca.pos.tolist())
                rot = Rotation.from_rotvec(np.radians(angle) * axis / np.linalg.norm(axis))
                for a in side:
                    p = rot.apply(np.array(a.pos.tolist()) - np.array(cb.pos.tolist()))
                    a.pos = gemmi.Position(*(p + np.array(cb.pos.tolist())))
                turned.append(r_index)
            r_index += 1
    path = str(tmp_path / "chi1.pdb")
    st.write_pdb(path)
    return read_model(path), np.array(turned)


@pytest.mark.slow
def test_smoc_flags_a_displaced_chain_and_lowers_turned_side_chains(sim, tmp_path):
    m, model = sim
    good = run_item(smoc, _ctx(m, model))
    assert good.status == OK and good.metrics["residues_flagged_pct"] < 1.0
    v0 = np.asarray(good.residue_columns["smoc"], dtype=float)
    # chain A moved by 3 Å in the model, the map unchanged: its residues are flagged
    st = model.structure.clone()
    for res in st[0]["A"]:
        for a in res:
            a.pos = gemmi.Position(a.pos.x + 3.0, a.pos.y, a.pos.z)
    path = str(tmp_path / "shiftA.pdb")
    st.write_pdb(path)
    shifted = run_item(smoc, _ctx(m, read_model(path)))
    chain = np.asarray(shifted.residue_columns["chain"])
    flag = np.asarray([bool(f) for f in shifted.residue_columns["smoc_flagged"]])
    polymer = np.isfinite(v0)
    assert np.mean(flag[polymer & (chain == "A")]) > 0.9
    assert np.mean(flag[polymer & (chain != "A")]) < 0.02
    assert shifted.status == WARNINGS and shifted.warnings[0].code == "flagged"
    # χ1 of 30 % of the side chains turned by 60°: those residues lose overlap, the others not
    turned_model, turned = _rotate_chi1(model, 0.3, 60.0, tmp_path)
    t = run_item(smoc, _ctx(m, turned_model))
    vt = np.asarray(t.residue_columns["smoc"], dtype=float)
    others = np.setdiff1d(np.nonzero(polymer)[0], turned)
    drop = v0[turned] - vt[turned]
    assert np.median(drop) > 0.05 and np.median(np.abs(v0[others] - vt[others])) < 0.02


# ---- the shared EMDB pairs, end to end through validate() ------------------------------------
needs_real = pytest.mark.skipif(not os.path.isdir(SHARED_REAL),
                                reason="../shared/data/real is not here (a user's clone)")


def _report(tmp_path, map_path, model_path, resolution, **opts):
    from cryovalid import Inputs, Options, validate

    rep = validate(Inputs(map_path, model=model_path),
                   Options(resolution=resolution, formats=("json",), **opts),
                   store=str(tmp_path / "out"))
    return {it["id"]: it for it in rep["items"]}, rep


@needs_real
@pytest.mark.slow
def test_emd_3488_reproduces_phenix(tmp_path):
    items, rep = _report(tmp_path, os.path.join(SHARED_REAL, "EMD-3488", "emd_3488.map"),
                         os.path.join(SHARED_REAL, "EMD-3488", "5me2.pdb"), 3.2)
    a = items["A.a"]["metrics"]
    expected = {"cc_mask": 0.741, "cc_box": 0.660, "cc_volume": 0.709, "cc_peaks": 0.659}
    for k, v in expected.items():
        assert a[k] == pytest.approx(v, abs=0.005), k
    assert a["residues_cc_below_05_pct"] == pytest.approx(0.88, abs=0.01)
    assert a["d99_A"] == pytest.approx(3.31, abs=0.02)
    assert a["d_fsc_model_05_masked_A"] == pytest.approx(3.44, abs=0.05)
    assert a["d_model_A"] == pytest.approx(3.4, abs=0.1) and a["b_iso_A2"] == pytest.approx(-5, abs=10)
    assert items["A.0"]["status"] == "ok" and items["A.a"]["status"] == "ok"
    assert items["A.d"]["metrics"]["guinier_correlation"] > 0.5
    f = items["A.f"]["metrics"]  # cctbx's phenix.emringer
    assert f["emringer_score"] == pytest.approx(3.963, abs=0.01)
    assert f["emringer_max_z"] == pytest.approx(7.22, abs=0.01)
    assert f["emringer_residues"] == 332
    assert f["emringer_threshold"] == pytest.approx(0.1001, abs=0.002)
    assert items["A.e"]["status"] == "ok" and items["A.c"]["status"] == "not_applicable"
    assert items["A.g"]["metrics"]["smoc_mean"] == pytest.approx(0.607, abs=0.01)  # TEMPy
    assert len(rep["residues"]["cc"]) == 570
    assert rep["inputs"]["model"]["chains"] == ["A", "B", "C", "D"]
    text = (tmp_path / "out" / "residues.csv").read_text().splitlines()
    assert text[0].startswith("chain,number,icode,name,cc,q,") and len(text) == 571
    assert (tmp_path / "out" / "model" / "model.cif").exists()
    assert (tmp_path / "out" / "maps" / "model_map.mrc").exists()
    json.dumps(rep)  # valid JSON (no NaN)


@needs_real
@pytest.mark.slow
def test_emd_1997_with_1oel_is_not_fitted(tmp_path):
    items, _ = _report(tmp_path, os.path.join(SHARED_REAL, "EMD-1997", "emd_1997.map"),
                       os.path.join(SHARED_REAL, "EMD-1997", "1oel.pdb"), 7.0, threshold=1.0)
    gate = items["A.0"]
    assert gate["status"] == "warnings" and gate["warning_details"][0]["code"] == "not_fitted"
    assert gate["metrics"]["cc_mask_at_input"] < 0.1
    assert items["A.a"]["status"] == "not_applicable"


@needs_real
@pytest.mark.slow
def test_emd_21457_header_variants_place_the_model_alike():
    """ORIGIN-only, NSTART-only and (with the shifted model) zero-origin headers: the same
    placement, the same CC_mask (0.497 on this segment, zeroed outside its zone), the same
    verdict of the gate."""
    from cryovalid.io.maps import read_map

    folder = os.path.join(SHARED_REAL, "EMD-21457")
    gates = []
    for variant, pdb in (("emd_21457_seg.mrc", "6vyb_Ndom.pdb"),
                         ("emd_21457_seg_nstart.mrc", "6vyb_Ndom.pdb"),
                         ("emd_21457_seg_orig0.mrc", "6vyb_Ndom_shifted.pdb")):
        m = read_map(os.path.join(folder, variant))
        ctx = _ctx(m, read_model(os.path.join(folder, pdb)), resolution=3.2)
        gates.append(run_item(fitgate, ctx))
    for g in gates:
        assert g.metrics["fraction_atoms_inside"] > 0.99
        assert g.metrics["cc_mask_at_input"] == pytest.approx(0.4967, abs=0.002)
        assert g.status == gates[0].status and g.metrics["cc_mask"] == pytest.approx(
            gates[0].metrics["cc_mask"], abs=1e-4)
