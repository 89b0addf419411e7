"""Figures of the atomic model (figures/model.py): the Atomic model section's views, A.a's
per-residue CC, histogram, map–model FSC and ChimeraX script, A.d's Guinier match.

Ground truth: the 5me2 haemoglobin model (4 chains, 566 Cα, no chain breaks) in a map simulated
from it; where the views are checked, the chains' centroids must appear on screen where the
reference's view turns put them. A figure function writes nothing: the working folder stays
empty until the test itself stores the artefacts.
"""
import dataclasses
import os
import re
import types

import numpy as np
import pytest
from scipy import ndimage

import simulate
from cryovalid.figures import isosurface
from cryovalid.figures import model as fm
from cryovalid.io.model import read_model
from cryovalid.results import ItemResult, Text, Volume
from figure_checks import FigureCapture, png_checks

VOXEL = 2.0  # Å: a 40³ box, fast


@pytest.fixture(scope="module")
def haemoglobin():
    return read_model(simulate.EXAMPLE_MODEL)


@pytest.fixture(scope="module")
def sim_map():
    vol, ts, origin = simulate.simulate(voxel_size=VOXEL, resolution=6.0, padding=6.0)
    return vol, ts, origin, float(np.quantile(vol, 0.9))


def _subset(model, chains):
    """The model restricted to some chains (arrays only, as read_model gives them)."""
    keep = np.isin(model.chain, chains)
    atoms = keep[model.residue_index]
    renumber = np.cumsum(keep) - 1
    per_atom = {f: getattr(model, f)[atoms] for f in
                ("xyz", "element", "b_iso", "occupancy", "is_hydrogen", "atom_name")}
    per_res = {f: getattr(model, f)[keep] for f in ("chain", "resseq", "icode", "resname")}
    return dataclasses.replace(model, residue_index=renumber[model.residue_index[atoms]],
                               **per_atom, **per_res)


def _ctx(model, sim_map, threshold=None, shift=(0.0, 0.0, 0.0)):
    """A context by hand: the map and the model, both moved by ``shift`` (Å), as Level A
    places them (ctx.model.xyz is the placement; model.xyz stays the file's)."""
    vol, ts, origin, thr = sim_map
    shift = np.asarray(shift, dtype=float)
    m = types.SimpleNamespace(data=vol, threshold=thr if threshold is None else threshold,
                              voxel_size=ts, origin=tuple(np.asarray(origin) + shift))
    return types.SimpleNamespace(map=m, resolution=6.0,
                                 model=types.SimpleNamespace(model=model,
                                                             xyz=model.xyz + shift))


# ----------------------------------------------------------------------------- the trace
def test_trace_of_haemoglobin_is_four_unbroken_chains(haemoglobin):
    pts, chain, seg = fm.trace(haemoglobin, haemoglobin.xyz)
    assert len(pts) == 566  # one Cα per amino acid; the four haems have none
    assert list(dict.fromkeys(chain.tolist())) == ["A", "B", "C", "D"]
    assert [int(np.count_nonzero(chain == c)) for c in "ABCD"] == [140, 143, 140, 143]
    assert len(np.unique(seg)) == 4
    assert all(len(np.unique(seg[chain == c])) == 1 for c in "ABCD")
    # chain A's Cα 50 moved across both its bonds: by 0.3 Å it stays bonded (√(3.8² + 0.3²)
    # < 4.5 Å), by 6 Å both bonds break and the chain falls into three pieces
    ca = np.nonzero(haemoglobin.atom_name == "CA")[0]
    p = haemoglobin.xyz[ca[49:52]]
    across = np.cross(p[1] - p[0], p[2] - p[1])
    across /= np.linalg.norm(across)
    for move, pieces in ((0.3, 4), (6.0, 6)):
        xyz = haemoglobin.xyz.copy()
        xyz[ca[50]] += move * across
        assert len(np.unique(fm.trace(haemoglobin, xyz)[2])) == pieces, move


def test_trace_uses_p_for_nucleic_acids_and_ignores_calcium():
    """P atoms 6.5 Å apart are one strand (P–P ≤ 8 Å), Cα atoms 6.5 Å apart are broken
    (Cα–Cα ≤ 4.5 Å); a calcium ion named CA is not a trace atom."""
    n = 5
    xyz = np.stack([np.arange(n) * 6.5, np.zeros(n), np.zeros(n)], axis=1)
    for name, el, segments in (("P", "P", 1), ("CA", "C", n), ("CA", "CA", 0)):
        m = types.SimpleNamespace(atom_name=np.array([name] * n), element=np.array([el] * n),
                                  residue_index=np.arange(n), chain=np.array(["R"] * n))
        pts, chain, seg = fm.trace(m, xyz)
        assert len(np.unique(seg)) == segments, (name, el)


# ----------------------------------------------------------------------------- section views
def _colour_centroid(img, rgb, tol=40):
    a = np.asarray(img).astype(float)
    near = np.all(np.abs(a - 255 * np.asarray(rgb)) < tol, axis=2)
    ys, xs = np.nonzero(near)
    return (float(xs.mean()), float(ys.mean()), int(near.sum())) if len(xs) else None


def _check_view_geometry(images, model, xyz, origin, centre):
    """Each chain's colour sits on screen where the view turn puts the chain's centroid:
    screen x to the right, y up, after turns about x, then y, then z (degrees)."""
    from scipy.spatial.transform import Rotation

    pts, chain, _ = fm.trace(model, xyz)
    chains = list(dict.fromkeys(chain.tolist()))
    colours = fm.chain_colours(chains)
    box = pts - np.asarray(origin)
    checked = 0
    for img, turns in zip(images, isosurface.VIEW_TURNS):
        rot = Rotation.from_euler("xyz", turns, degrees=True)
        where = {}
        for c in chains:
            want = rot.apply(box[chain == c].mean(axis=0) - np.asarray(centre))
            got = _colour_centroid(img, colours[c])
            assert got is not None and got[2] > 200, (turns, c)
            where[c] = (want, got)
        for a in chains:
            for b in chains:
                (wa, ga), (wb, gb) = where[a], where[b]
                if wa[0] - wb[0] > 12.0:  # a clearly right of b
                    assert ga[0] > gb[0], (turns, a, b)
                    checked += 1
                if wa[1] - wb[1] > 12.0:  # a clearly above b (image rows run down)
                    assert ga[1] < gb[1], (turns, a, b)
                    checked += 1
    assert checked >= 6


@pytest.mark.slow
def test_model_section_views_without_vtk(haemoglobin, sim_map, tmp_path, monkeypatch):
    monkeypatch.setenv("CRYOVALID_NO_VTK", "1")
    monkeypatch.chdir(tmp_path)
    cap = FigureCapture(monkeypatch, fm)
    ctx = _ctx(haemoglobin, sim_map, shift=(100.0, -50.0, 20.0))  # a placed model, world frame
    out = fm.draw_model_section(ctx)
    assert os.listdir(tmp_path) == []  # nothing written
    png_checks(out, ["model_views.png", "model_in_map.png"])
    assert "chains A, B, C, D" in out.figures[0].caption
    assert f"threshold {ctx.map.threshold:.4g}" in out.figures[1].caption
    assert "View 1 (0,-90,-90)" in out.figures[0].caption
    cap.check_print_sizes()  # the chain legend strips
    box, rgb, segments, chains, colours, centre = fm.scene(ctx)
    assert chains == ["A", "B", "C", "D"] and len(segments) == 4
    # the trace sits in the map's box frame: the Cα atoms are in the density (the map was
    # simulated from this model) wherever both are placed
    vals = ndimage.map_coordinates(ctx.map.data, (box[:, ::-1] / ctx.map.voxel_size).T, order=1)
    assert np.mean(vals > ctx.map.threshold) > 0.9
    assert centre == pytest.approx((np.array(ctx.map.data.shape[::-1]) - 1) * VOXEL / 2)
    views = fm.render_trace_views(box, rgb, segments, centre)
    _check_view_geometry(views, haemoglobin, ctx.model.xyz, ctx.map.origin, centre)


def test_model_section_with_one_chain(haemoglobin, sim_map, tmp_path, monkeypatch):
    monkeypatch.setenv("CRYOVALID_NO_VTK", "1")
    monkeypatch.chdir(tmp_path)
    one = _subset(haemoglobin, ["B"])
    assert one.chains == ["B"] and len(fm.trace(one, one.xyz)[0]) == 143
    out = fm.draw_model_section(_ctx(one, sim_map))
    png_checks(out, ["model_views.png", "model_in_map.png"])
    assert "chain B;" in out.figures[0].caption
    assert os.listdir(tmp_path) == []


def test_no_isosurface_is_said_not_raised(haemoglobin, sim_map, monkeypatch):
    monkeypatch.setenv("CRYOVALID_NO_VTK", "1")
    vol = sim_map[0]
    out = fm.draw_model_section(_ctx(haemoglobin, sim_map, threshold=float(vol.max()) + 1.0))
    assert [f.path for f in out.figures] == ["figures/model_views.png", ""]
    assert "no isosurface at threshold" in out.figures[1].caption


@pytest.mark.slow
def test_model_section_with_vtk(haemoglobin, sim_map, monkeypatch):
    """The VTK path (where this machine can render off-screen): the same geometry, a grey
    translucent surface around the trace."""
    monkeypatch.delenv("CRYOVALID_NO_VTK", raising=False)
    ctx = _ctx(haemoglobin, sim_map)
    vol, ts = ctx.map.data, ctx.map.voxel_size
    box, rgb, segments, _, _, centre = fm.scene(ctx)
    try:
        views = fm._render_vtk(box, rgb, segments, 0.6, None, centre)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"VTK cannot render off-screen here ({exc})")
    _check_view_geometry(views, haemoglobin, ctx.model.xyz, ctx.map.origin, centre)
    surface = isosurface._surface(vol, ctx.map.threshold, ts)
    inside = fm._render_vtk(box, rgb, segments, 0.6, surface, centre)
    a = np.asarray(inside[2]).astype(int)
    grey = (np.ptp(a, axis=2) < 12) & (a.mean(axis=2) > 120) & (a.mean(axis=2) < 240)
    assert grey.mean() > 0.05  # the translucent surface covers the molecule
    out = fm.draw_model_section(ctx)
    png_checks(out, ["model_views.png", "model_in_map.png"])


# ----------------------------------------------------------------------------- A.a
def _aa_result(model, nan_rows=(3, 77, 300)):
    rng = np.random.default_rng(1)
    n = model.n_residues
    cc = np.clip(rng.normal(0.75, 0.12, n), -0.2, 1.0)
    cc[list(nan_rows)] = np.nan
    cc[10] = 0.31  # certainly below 0.5
    d = np.linspace(2.4, 40.0, 60)
    fsc = 1.0 / (1.0 + np.exp((1.0 / d - 1.0 / 3.1) * 30.0))
    data = dict(residue_cc=cc, residue_chain=model.chain, residue_number=model.resseq,
                low_cc=0.5, fsc_d=d, fsc_unmasked=0.9 * fsc, fsc_masked=fsc,
                d_fsc_model={0.0: 2.9, 0.143: 3.1, 0.5: None})
    return ItemResult("A.a", "Map-model fit", "Level A", data=data)


def test_mapmodel_figures_and_script(haemoglobin, sim_map, tmp_path, monkeypatch):
    from cryovalid.store import FolderStore

    monkeypatch.chdir(tmp_path)
    cap = FigureCapture(monkeypatch, fm)
    ctx = _ctx(haemoglobin, sim_map)
    res = _aa_result(haemoglobin)
    out = fm.draw_mapmodel(res, ctx)
    assert os.listdir(tmp_path) == []
    png_checks(out, ["residue_cc.png", "residue_cc_histogram.png", "fsc_model.png"])
    cap.check_print_sizes()
    # the FSC figure: masked crossings at (1/d, cutoff); none drawn for a missing d
    fsc_fig = cap.figs[-1]
    ax = fsc_fig.axes[0]
    marks = sorted((round(float(ln.get_xdata()[0]), 6), float(ln.get_ydata()[0]))
                   for ln in ax.get_lines() if ln.get_marker() == "o")
    assert marks == [(round(1 / 3.1, 6), 0.143), (round(1 / 2.9, 6), 0.0)]
    top = fsc_fig.axes[1]
    for t, lab in zip(top.get_xticks(), top.get_xticklabels()):
        assert lab.get_text() == ("∞" if t <= 0 else f"{1 / t:.1f}")
    # residue panels: one per chain, the low residues marked
    cc_fig = cap.figs[0]
    panels = [a for a in cc_fig.axes if any(t.get_text().startswith("chain ") for t in a.texts)]
    assert sorted(t.get_text() for a in panels for t in a.texts) == \
        ["chain A", "chain B", "chain C", "chain D"]
    cc = res.data["residue_cc"]
    red = sum(len(ln.get_xdata()) for a in panels for ln in a.get_lines()
              if ln.get_marker() == "o")
    assert red == int(np.count_nonzero(np.isfinite(cc) & (cc < 0.5)))
    # the ChimeraX script: one setattr per residue with a CC, NaN ones skipped
    script = next(a for a in out.artefacts if isinstance(a, Text))
    assert script.name == "chimerax/model_cc.cxc"
    text = script.text
    sets = re.findall(r"^setattr #2/(\S+):(-?\d+) residues cc (\S+) create true type float$",
                      text, flags=re.M)
    fin = np.isfinite(cc)
    assert len(sets) == int(fin.sum()) == haemoglobin.n_residues - 3
    want = [(c, str(n), f"{v:.4f}") for c, n, v in
            zip(haemoglobin.chain[fin], haemoglobin.resseq[fin], cc[fin])]
    assert sets == want
    assert f"level {ctx.map.threshold:.6g}" in text
    assert "palette 0,red:0.5,white:1,blue" in text and "key red:0 white:0.5 blue:1" in text
    opened = [ln.split('"')[1] for ln in text.splitlines() if ln.startswith("open ")]
    assert opened == ["../" + fm.INPUT_COPY, "../" + fm.MODEL_COPY]
    from cryovalid.items import fitgate  # the item that writes the placed model for the script

    assert fm.MODEL_COPY == fitgate.MODEL_COPY
    vols = [a for a in out.artefacts if isinstance(a, Volume)]
    assert [v.name for v in vols] == [fm.INPUT_COPY]
    # once stored (the pipeline's job), the map it opens exists relative to the script
    report = tmp_path / "report"
    store = FolderStore(str(report))
    for a in out.artefacts:
        store.write(a)
    assert os.path.isfile(report / "chimerax" / opened[0])
    for f in out.figures:
        assert os.path.getsize(report / f.path) > 5000


def test_residue_cc_rows_and_pages(haemoglobin, sim_map, monkeypatch):
    """Chains pack into rows (short chains side by side, each panel ≥ 1/6 of a row); four rows
    a figure, so nine long chains make three figures."""
    rows, width = fm._rows(["L", "a", "b", "c", "d", "e", "f", "g"],
                           {"L": 200, "a": 30, "b": 30, "c": 30, "d": 30, "e": 30, "f": 30,
                            "g": 80})
    assert rows == [["L"], ["a", "b", "c", "d", "e", "f"], ["g"]]  # six 1/6 panels fill a row
    assert width["a"] == pytest.approx(200 / 6)
    n = 9 * 120
    chains = np.repeat([f"C{i}" for i in range(9)], 120)
    numbers = np.tile(np.arange(1, 121), 9)
    cc = np.full(n, 0.8)
    res = ItemResult("A.a", "Map-model fit", "Level A",
                     data=dict(residue_cc=cc, residue_chain=chains, residue_number=numbers,
                               low_cc=0.5))
    ctx = _ctx(haemoglobin, sim_map)
    out = fm.draw_mapmodel(res, ctx)
    assert [f.path for f in out.figures] == ["figures/residue_cc.png", "figures/residue_cc_2.png",
                                             "figures/residue_cc_3.png",
                                             "figures/residue_cc_histogram.png"]
    assert "part 3 of 3" in out.figures[2].caption and "chain C8" in out.figures[2].caption


def test_mapmodel_without_any_residue_cc(haemoglobin, sim_map):
    res = _aa_result(haemoglobin)
    res.data["residue_cc"] = np.full(haemoglobin.n_residues, np.nan)
    out = fm.draw_mapmodel(res, _ctx(haemoglobin, sim_map))
    assert [f.path for f in out.figures] == ["", "figures/fsc_model.png"]
    assert not any(isinstance(a, Text) for a in out.artefacts)


# ----------------------------------------------------------------------------- A.d
def test_guinier_match(haemoglobin, sim_map, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cap = FigureCapture(monkeypatch, fm)
    s2 = np.linspace(0.0, 1.0 / 36.0, 30)
    res = ItemResult("A.d", "Guinier match", "Level A",
                     data=dict(s2=s2, map_profile=5.0 - 20.0 * s2, model_profile=5.1 - 21.0 * s2,
                               correlation=0.9871))
    out = fm.draw_guinier_match(res, _ctx(haemoglobin, sim_map))
    assert os.listdir(tmp_path) == []
    png_checks(out, ["guinier_match.png"])
    cap.check_print_sizes()
    fig = cap.figs[0]
    assert fig.axes[0].get_legend().get_title().get_text() == "Pearson R = 0.987"
    top = fig.axes[1]
    for t, lab in zip(top.get_xticks(), top.get_xticklabels()):
        assert lab.get_text() == ("∞" if t <= 0 else f"{1 / np.sqrt(t):.1f}")
    assert "Pearson R = 0.987" in out.figures[0].caption


def test_draws_are_declared():
    assert fm.DRAWS == {"A.a": fm.draw_mapmodel, "A.d": fm.draw_guinier_match}
