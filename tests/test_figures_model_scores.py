"""Figures of the per-residue model scores (figures/model_scores.py): A.c multimodel RMSD, A.e
Q-score, A.f EMRinger, A.g SMOC.

Synthetic item results (the ``res.data`` contract) on a small map: every figure is drawn with the
expected name and a printable size, writes nothing, marks exactly the residues beyond the limit,
draws the limit where the data put it, and the ChimeraX scripts set one attribute per finite
value and open files the report holds. The EMRinger histogram's blue/red split is checked
against the kernel's own binning (``kernels.emringer._binned_statistics``), so a wrong
rotameric range would fail here.
"""
import os
import re
import types

import matplotlib.colors
import matplotlib.text
import numpy as np
import pytest

from cryovalid.figures import model as fm
from cryovalid.figures import model_scores as ms
from cryovalid.kernels import emringer as ek
from cryovalid.results import ItemResult, Text, Volume
from figure_checks import FigureCapture, png_checks

LEAD_ROTAMERIC = [(30, 90), (150, 210), (270, 330)]  # what the A.f item passes


@pytest.fixture
def ctx():
    rng = np.random.default_rng(0)
    m = types.SimpleNamespace(data=rng.normal(size=(12, 14, 16)).astype(np.float32),
                              threshold=0.8, voxel_size=1.5, origin=(10.0, -5.0, 3.0))
    return types.SimpleNamespace(map=m, resolution=3.1)


def _chains(spec):
    """(chain, number) arrays from [(name, first, last), …] (consecutive numbers)."""
    chain = np.concatenate([[c] * (b - a + 1) for c, a, b in spec])
    number = np.concatenate([np.arange(a, b + 1) for _, a, b in spec])
    return chain, number


def _panels(fig):
    """Axes of a per-residue figure by chain name."""
    out = {}
    for a in fig.axes:
        for t in a.texts:
            if t.get_text().startswith("chain "):
                out[t.get_text()[6:]] = a
    return out


def _red_points(ax):
    return sorted(float(x) for ln in ax.get_lines() if ln.get_marker() == "o"
                  for x in ln.get_xdata())


def _hlines(ax):
    return [float(ln.get_ydata()[0]) for ln in ax.get_lines()
            if ln.get_linestyle() == "--" and len(set(np.asarray(ln.get_ydata(), float))) == 1]


def _script_checks(out, name, attr, values, chain, number, tmp_path):
    """One setattr per finite value (in order, 4 decimals), files it opens exist once stored."""
    from cryovalid.store import FolderStore

    scripts = [a for a in out.artefacts if isinstance(a, Text)]
    assert [s.name for s in scripts] == [f"chimerax/{name}.cxc"]
    text = scripts[0].text
    sets = re.findall(rf"^setattr #2/(\S+):(-?\d+) residues {attr} (\S+) create true "
                      rf"type float$", text, flags=re.M)
    fin = np.isfinite(values)
    assert len(sets) == int(fin.sum())
    assert sets == [(c, str(n), f"{v:.4f}") for c, n, v in
                    zip(chain[fin], number[fin], values[fin])]
    assert f"color byattribute r:{attr} #2 palette " in text
    opened = [ln.split('"')[1] for ln in text.splitlines() if ln.startswith("open ")]
    assert opened == ["../" + ms.INPUT_COPY, "../" + fm.MODEL_COPY]
    from cryovalid.items import fitgate  # writes the placed model the script opens

    assert fm.MODEL_COPY == fitgate.MODEL_COPY
    assert [v.name for v in out.artefacts if isinstance(v, Volume)] == [ms.INPUT_COPY]
    report = tmp_path / "report"
    store = FolderStore(str(report))
    for a in out.artefacts:
        store.write(a)
    assert os.path.isfile(report / "chimerax" / opened[0])
    for f in out.figures:
        assert os.path.getsize(report / f.path) > 5000
    return text


# ----------------------------------------------------------------------------- A.e
def _qscore_result():
    rng = np.random.default_rng(3)
    chain, number = _chains([("A", 1, 80), ("B", 5, 40), ("C", 1, 6)])
    number[chain == "B"] += (number[chain == "B"] > 20) * 10  # a numbering gap in chain B
    q = np.clip(rng.normal(0.45, 0.15, len(chain)), -0.3, 0.95)
    q[[4, 50, 90]] = np.nan
    q[chain == "C"] = np.nan  # a chain without any Q: no panel
    atom_q = rng.normal(0.45, 0.2, 700)
    data = dict(residue_q=q, residue_chain=chain, residue_number=number, atom_q=atom_q,
                expected_q=-0.1775 * 3.1 + 1.1192, resolution=3.1)
    return ItemResult("A.e", "Q-score", "Level A", data=data)


def test_qscore_figures_and_script(ctx, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cap = FigureCapture(monkeypatch, ms)
    res = _qscore_result()
    out = ms.draw_qscore(res, ctx)
    assert os.listdir(tmp_path) == []
    png_checks(out, ["qscore_residues.png", "qscore_histogram.png"])
    cap.check_print_sizes()
    exp = res.data["expected_q"]
    panels = _panels(cap.figs[0])
    assert sorted(panels) == ["A", "B"]
    for a in panels.values():
        assert _hlines(a) == [pytest.approx(exp)]
        assert _red_points(a) == []
    labels = [t.get_text() for a in panels.values() for t in a.texts]
    assert "expected at 3.1 Å" in labels
    cap_res = out.figures[0].caption
    assert f"{exp:.3f}" in cap_res and "at 3.1 Å" in cap_res and "chain C" in cap_res
    assert f"{int(np.isfinite(res.data['residue_q']).sum())} residues" in cap_res
    # the histogram: per-atom Q with the expected Q marked
    hist_ax = cap.figs[-1].axes[0]
    bars = [p.get_height() for p in hist_ax.patches]
    assert sum(bars) == 700
    marks = [float(ln.get_xdata()[0]) for ln in hist_ax.get_lines()]
    assert marks == [pytest.approx(exp)]
    assert "700 atoms" in out.figures[1].caption
    text = _script_checks(out, "model_q", "q", res.data["residue_q"],
                          res.data["residue_chain"], res.data["residue_number"], tmp_path)
    assert "palette -1,red:0,white:1,blue" in text and "key red:-1 white:0 blue:1" in text
    assert f"level {ctx.map.threshold:.6g}" in text


def test_qscore_missing_and_without_expected(ctx):
    res = _qscore_result()
    res.data["residue_q"] = np.full(len(res.data["residue_q"]), np.nan)
    res.data["atom_q"] = np.zeros(0)
    out = ms.draw_qscore(res, ctx)
    assert [f.path for f in out.figures] == ["", ""]
    assert all(f.caption for f in out.figures)
    assert not any(isinstance(a, (Text, Volume)) for a in out.artefacts)
    assert [f.path for f in ms.draw_qscore(ItemResult("A.e", "Q", "A", data={}), ctx).figures] \
        == ["", ""]
    res = _qscore_result()
    res.data["expected_q"] = None
    out = ms.draw_qscore(res, ctx)
    assert [f.path for f in out.figures] == ["figures/qscore_residues.png",
                                             "figures/qscore_histogram.png"]
    assert "expected" not in out.figures[1].caption


def test_residue_lengths_that_disagree_are_missing_not_raised(ctx):
    res = _qscore_result()
    res.data["residue_chain"] = res.data["residue_chain"][:-1]
    out = ms.draw_qscore(res, ctx)
    assert out.figures[0].path == "" and out.figures[1].path == "figures/qscore_histogram.png"


# ----------------------------------------------------------------------------- A.f
def test_lead_rotameric_ranges_are_the_kernels_bins():
    """A peak at each 5° label is rotameric for the kernel (its binned ratio is 1) exactly when
    the figure paints it blue with the ranges A.f passes."""
    labels = ek.SAMPLING_ANGLE * np.arange(ek.N_ANGLES)
    ratio, _, _ = ek._binned_statistics(np.eye(ek.N_ANGLES, dtype=np.int64))
    kernel = ratio > 0.5
    assert kernel.sum() == 36 and kernel[labels == 30] and not kernel[labels == 25]
    assert np.array_equal(ms.rotameric(labels, LEAD_ROTAMERIC), kernel)
    from cryovalid.items import emringer as item  # the ranges A.f hands to the figure

    assert [tuple(r) for r in item.ROTAMERIC_RANGES] == LEAD_ROTAMERIC
    assert np.array_equal(ms.rotameric(labels, item.ROTAMERIC_RANGES), kernel)
    # a range through 360° wraps
    assert np.array_equal(ms.rotameric([350, 0, 5, 10, 180], [(350, 10)]),
                          [True, True, True, False, False])


def _emringer_result():
    t = np.linspace(0.05, 0.4, 8)
    scores = np.array([1.2, 2.5, 3.4, 3.96, 3.1, 2.0, 1.1, 0.4])
    ratios = np.array([0.6, 0.66, 0.72, 0.77, 0.78, 0.74, 0.7, 0.65])
    angles = 5.0 * np.arange(72)
    hist = np.where(ms.rotameric(angles, LEAD_ROTAMERIC), 9, 2)
    hist[0] = 0
    data = dict(thresholds=t, scores=scores, rotamer_ratios=ratios, optimal_threshold=t[3],
                histogram=hist, histogram_angles=angles, rotameric_bins=LEAD_ROTAMERIC)
    return ItemResult("A.f", "EMRinger", "Level A", data=data)


def test_emringer_figures(ctx, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cap = FigureCapture(monkeypatch, ms)
    res = _emringer_result()
    d = res.data
    out = ms.draw_emringer(res, ctx)
    assert os.listdir(tmp_path) == []
    png_checks(out, ["emringer_threshold_scan.png", "emringer_histogram.png"])
    cap.check_print_sizes()
    scan, hist = cap.figs
    ax, right = scan.axes
    score_line = [ln for ln in ax.get_lines() if ln.get_marker() == "o"][0]
    assert np.allclose(score_line.get_xdata(), d["thresholds"])
    assert np.allclose(score_line.get_ydata(), d["scores"])
    assert np.allclose(right.get_lines()[0].get_ydata(), d["rotamer_ratios"])
    best = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert [float(ln.get_xdata()[0]) for ln in best] == [pytest.approx(d["thresholds"][3])]
    assert "3.960" in out.figures[0].caption and "0.770" in out.figures[0].caption
    assert "8 thresholds" in out.figures[0].caption
    bars = hist.axes[0].patches
    assert len(bars) == 72
    assert [p.get_x() for p in bars] == pytest.approx(list(d["histogram_angles"]))
    assert [p.get_height() for p in bars] == pytest.approx(list(d["histogram"]))
    kernel = ek._binned_statistics(np.eye(72, dtype=np.int64))[0] > 0.5
    blue = np.array([np.allclose(p.get_facecolor()[:3],
                                 matplotlib.colors.to_rgb(ms.ROTAMERIC_COLOUR)) for p in bars])
    red = np.array([np.allclose(p.get_facecolor()[:3],
                                matplotlib.colors.to_rgb(ms.NON_ROTAMERIC_COLOUR)) for p in bars])
    assert np.array_equal(blue, kernel) and np.array_equal(red, ~kernel)
    n_rot = 36 * 9
    n = n_rot + 35 * 2  # label 0 has none
    assert f"{n} peaks, {n_rot} in the rotameric bins 30–90°, 150–210°, 270–330°" in \
        out.figures[1].caption
    assert f"{d['thresholds'][3]:.4g}" in out.figures[1].caption


def test_emringer_missing(ctx):
    res = _emringer_result()
    res.data.update(thresholds=np.zeros(0), scores=np.zeros(0), rotamer_ratios=np.zeros(0),
                    histogram=np.zeros(72, dtype=int))
    out = ms.draw_emringer(res, ctx)
    assert [f.path for f in out.figures] == ["", ""] and all(f.caption for f in out.figures)
    out = ms.draw_emringer(ItemResult("A.f", "EMRinger", "A", data={}), ctx)
    assert [f.path for f in out.figures] == ["", ""]
    res = _emringer_result()
    res.data["scores"] = np.full(8, np.nan)
    res.data["optimal_threshold"] = float("nan")
    out = ms.draw_emringer(res, ctx)
    assert [f.path for f in out.figures] == ["", "figures/emringer_histogram.png"]


# ----------------------------------------------------------------------------- A.c
def test_multimodel_figures(ctx, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cap = FigureCapture(monkeypatch, ms)
    chain, number = _chains([("A", 1, 120), ("B", 1, 60)])
    rng = np.random.default_rng(5)
    rmsd = np.abs(rng.normal(0.8, 0.5, len(chain)))
    rmsd[[7, 130]] = [3.5, 2.6]
    rmsd[[0, 150]] = np.nan
    chain, number = np.append(chain, "A"), np.append(number, 501)  # a ligand: no Cα, no RMSD
    rmsd = np.append(rmsd, np.nan)
    res = ItemResult("A.c", "Multimodel", "Level A",
                     data=dict(residue_rmsd=rmsd, residue_chain=chain, residue_number=number,
                               limit=2.0))
    out = ms.draw_multimodel(res, ctx)
    assert os.listdir(tmp_path) == []
    png_checks(out, ["multimodel_rmsd.png", "multimodel_histogram.png"])
    cap.check_print_sizes()
    panels = _panels(cap.figs[0])
    assert sorted(panels) == ["A", "B"]
    above = np.isfinite(rmsd) & (rmsd > 2.0)
    for c, a in panels.items():
        assert _red_points(a) == sorted(number[above & (chain == c)].astype(float).tolist())
        assert _hlines(a) == [2.0]
    assert panels["A"].get_xlim()[1] < 125  # the range is that of the residues with a value
    n_above = int(above.sum())
    assert n_above >= 2
    assert f"{n_above} of the {len(rmsd) - 3} residues" in out.figures[0].caption
    assert not any(isinstance(a, Text) for a in out.artefacts)
    res.data["residue_rmsd"] = np.full(len(rmsd), np.nan)
    out = ms.draw_multimodel(res, ctx)
    assert [f.path for f in out.figures] == [""] and out.figures[0].caption


# ----------------------------------------------------------------------------- A.g
def _smoc_result(spec=(("A", 1, 90), ("B", 201, 260))):
    chain, number = _chains(list(spec))
    rng = np.random.default_rng(9)
    s = np.clip(rng.normal(0.7, 0.12, len(chain)), 0.0, 1.0)
    s[[2, 40]] = np.nan
    flagged = np.zeros(len(s), dtype=bool)
    flagged[[10, 11, 12, 100]] = True  # the item's flags (e.g. a local z-score), not s < limit
    return ItemResult("A.g", "SMOC", "Level A",
                      data=dict(residue_score=s, residue_chain=chain, residue_number=number,
                                limit=0.5, flagged=flagged))


def test_smoc_figures_and_script(ctx, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cap = FigureCapture(monkeypatch, ms)
    res = _smoc_result()
    d = res.data
    out = ms.draw_smoc(res, ctx)
    assert os.listdir(tmp_path) == []
    png_checks(out, ["smoc_residues.png", "smoc_histogram.png"])
    cap.check_print_sizes()
    panels = _panels(cap.figs[0])
    assert sorted(panels) == ["A", "B"]
    for c, a in panels.items():
        want = d["residue_number"][d["flagged"] & (d["residue_chain"] == c)]
        assert _red_points(a) == sorted(want.astype(float).tolist())
        assert _hlines(a) == [0.5]
    assert "4 of the 148 residues" in out.figures[0].caption
    text = _script_checks(out, "model_smoc", "smoc", d["residue_score"], d["residue_chain"],
                          d["residue_number"], tmp_path)
    assert "palette 0,red:0.5,white:1,blue" in text and "key red:0 white:0.5 blue:1" in text


def test_smoc_many_chains_and_missing(ctx):
    spec = [(f"C{i}", 1, 120) for i in range(9)]
    out = ms.draw_smoc(_smoc_result(spec), ctx)
    assert [f.path for f in out.figures] == ["figures/smoc_residues.png",
                                             "figures/smoc_residues_2.png",
                                             "figures/smoc_residues_3.png",
                                             "figures/smoc_histogram.png"]
    assert "part 3 of 3" in out.figures[2].caption and "chain C8" in out.figures[2].caption
    res = _smoc_result()
    res.data["residue_score"][:] = np.nan
    out = ms.draw_smoc(res, ctx)
    assert [f.path for f in out.figures] == [""] and out.figures[0].caption
    assert not any(isinstance(a, (Text, Volume)) for a in out.artefacts)
    out = ms.draw_smoc(ItemResult("A.g", "SMOC", "A", data={}), ctx)
    assert [f.path for f in out.figures] == [""]


def test_draws_are_declared():
    assert ms.DRAWS == {"A.c": ms.draw_multimodel, "A.e": ms.draw_qscore,
                        "A.f": ms.draw_emringer, "A.g": ms.draw_smoc}
