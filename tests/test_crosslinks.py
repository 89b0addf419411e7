"""O.a cross-linking mass spectrometry: reader, SASD kernel, item and figures, with known answers.

* Blocked voxels: exactly those whose centre lies within an atom's radius + probe (brute
  force, non-cubic box, atoms outside it).
* Free space: the SASD between two points with nothing between them is their distance exactly
  along a grid axis and a grid diagonal (anchors on voxel centres), and within the chamfer
  bounds [d, 1.0824·d + 1 voxel] in a plane, [d, 1.1154·d + 1 voxel] in 3-D otherwise.
* A wall (a 17 × 17 Å square slab of atoms of radius 1.70 Å) between two points 12 Å apart:
  the SASD is at least the exact shortest way around the inflated wall (two tangents and an
  arc around its edge, computed analytically: 25.26 Å) and at most the chamfer ratio times the
  way around a wall inflated by half a voxel diagonal more (29.65 Å; measured 28.14 and
  27.50 Å); without the wall it would be 12 Å.
* 5ME2 chain A: every link between two lysines whose Cα lie within 15 Å (10 links) is
  satisfied (DSS, 33 Å; measured SASDs 4.6–21.1 Å), every SASD is at least its Cα–Cα
  distance (within 20 Å 23 of 25 are satisfied: the two others reach Lys 99, 36.4 and
  45.0 Å); a link gets the same SASD alone, in a list or reversed; links to a copy of the
  chain 80 Å away all fail; a link naming a chain the model lacks is "not in the model" and
  counts in the denominator; exactly half satisfied warns (the stated "more than 50 %"), more
  than half does not; a maximum 0.05 Å below / above a link's SASD flips it.
* End to end: ``cryovalid report MAP --model M --crosslinks F --levels O`` (report.json valid
  against the schema, figures written) and a bad line as a one-line error, exit 2.
"""
from __future__ import annotations

import os
import types

import gemmi
import numpy as np
import pytest

from cryovalid.errors import InputError
from cryovalid.figures import crosslinks as fig_mod
from cryovalid.io.crosslinks import (DEFAULT_MAX_SASD_A, SIDE_CHAIN_REACH_A, Link,
                                     read_crosslinks)
from cryovalid.io.model import read_model
from cryovalid.items import crosslinks as item
from cryovalid.items.base import run_item
from cryovalid.kernels.sasd import PROBE_RADIUS_A, blocked_grid, sasd_from

HERE = os.path.dirname(__file__)
MODEL = os.path.join(HERE, "..", "examples", "5me2.pdb.gz")
CHAMFER_2D = 1.0 / np.cos(np.pi / 8)  # the 8-connected chamfer metric's worst ratio, 1.0824
CHAMFER_3D = (np.sqrt(3) + 1) / np.sqrt(6)  # 26-connected, direction (2, 1, 1): 1.1154


def _write(tmp_path, text, name="xl.txt"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# --------------------------------------------------------------------------- reader
def test_jwalk_format_counts_only_link_lines(tmp_path):
    p = _write(tmp_path, "# my links\n1|A|7|A|\n\n 12 | B | 30 | A |\n52A|A|-3|C\n")
    xl = read_crosslinks(p)
    assert xl.format == "Jwalk" and len(xl) == 3
    a, b, c = xl.links
    assert (a.line, a.resseq1, a.chain1, a.resseq2, a.chain2) == (2, 1, "A", 7, "A")
    assert (b.line, b.resseq1, b.chain1, b.resseq2, b.chain2) == (4, 12, "B", 30, "A")
    assert (c.resseq1, c.icode1, c.resseq2, c.icode2, c.chain2) == (52, "A", -3, "", "C")
    assert all(ln.max_A == DEFAULT_MAX_SASD_A == 33.0 for ln in xl.links)
    assert xl.notes and "33 Å" in xl.notes[0]
    assert len(xl.sha256) == 64 and os.path.isabs(xl.path)


def test_csv_with_header_and_linkers(tmp_path):
    p = _write(tmp_path, "res1,chain1,res2,chain2,linker\n5,A,9,A,DSS\n5,A,9,A,bs3\n"
                         "5,A,9,A,EDC\n5,A,9,A,DSSO\n5,A,9,A,25\n5,A,9,A\n")
    xl = read_crosslinks(p)
    assert xl.format == "CSV" and len(xl) == 6
    assert [ln.max_A for ln in xl.links] == pytest.approx(
        [33.0, 33.0, 21.6, 10.1 + 21.6, 25.0, 33.0])
    assert SIDE_CHAIN_REACH_A == pytest.approx(33.0 - 11.4)
    over = read_crosslinks(p, max_distance_A=20)
    assert all(ln.max_A == 20.0 for ln in over.links)
    assert "20 Å" in over.notes[0]


@pytest.mark.parametrize("text, words", [
    ("1|A|7|A|\n1|A|7\n", "line 2: 3 fields"),
    ("1,A,7,A\n1,A,x7,A\n", "line 2: residue 'x7'"),
    ("1,A,7,A\n1,A,7,A,FOO\n", "line 2: unknown linker 'FOO'"),
    ("1,A,7,A\n1,,7,A\n", "line 2: chain ''"),
    ("1,A,7,A\n1 A 7 A\n", "line 2: not a cross-link"),
    ("1,A,7,A,-5\n", "line 1: the maximum distance"),
    ("1,A,7,A,150\n", "not between 0 and 100 Å"),
    ("res1,chain1,res2,chain2\n\n", "no cross-link found"),
])
def test_bad_lines_are_one_line_errors_with_their_line(tmp_path, text, words):
    p = _write(tmp_path, text)
    with pytest.raises(InputError) as e:
        read_crosslinks(p)
    msg = str(e.value)
    assert words in msg and p in msg and "\n" not in msg


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_crosslinks(str(tmp_path / "none.txt"))
    b = tmp_path / "b.txt"
    b.write_bytes(b"1|A|7|A|\n\xff\xfe\x00")
    with pytest.raises(InputError, match="not a text file"):
        read_crosslinks(str(b))
    for bad_max in (float("nan"), 0.0, 101.0):
        with pytest.raises(InputError, match="--crosslink-max"):
            read_crosslinks(_write(tmp_path, "1|A|7|A|\n"), max_distance_A=bad_max)


# --------------------------------------------------------------------------- kernel
def test_blocked_voxels_are_those_within_radius_plus_probe():
    rng = np.random.default_rng(3)
    lo, shape = np.array([-3.2, 1.1, 0.4]), (11, 7, 9)  # x, y, z; non-cubic
    atoms = lo + rng.uniform(-3.0, 1.0, size=(40, 3)) * np.array([4.0, 3.0, 3.5]) + 6.0
    radii = rng.choice([1.52, 1.55, 1.70, 1.80], size=40)
    got = blocked_grid(atoms, radii, lo, shape, 1.0, PROBE_RADIUS_A)
    centres = lo + np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    d = np.linalg.norm(centres[..., None, :] - atoms, axis=-1)
    want = np.any(d <= radii + PROBE_RADIUS_A, axis=-1)
    assert want.any() and (~want).any() and np.any(~np.all((atoms >= lo) & (
        atoms <= lo + np.array(shape) - 1), axis=1))  # some atoms lie outside the box
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("s, atol", [
    ((0.0, 0.0, 0.0), 1e-9),  # anchors on voxel centres: exact
    # off the grid, e = 0.37 Å from the nearest voxel centre: the path runs from the anchor
    # to a voxel near it, over voxels, to the target; by the triangle inequality it is at
    # most 4e = 1.5 Å longer than the straight line (measured: 0.05, 0.13, 0.29 Å)
    ((0.3, -0.2, 0.1), 4 * np.sqrt(0.3 ** 2 + 0.2 ** 2 + 0.1 ** 2))])
def test_free_space_sasd_is_the_straight_distance(s, atol):
    s = np.array(s)
    t = s + np.array([[20.0, 0, 0], [0, 0, -17.0], [9.0, 9.0, 9.0], [12.0, 5.0, 0.0],
                      [10.0, 4.0, 7.0]])
    d, src_free, tgt_free = sasd_from(s, t, np.zeros((0, 3)), np.zeros(0), 60.0)
    euclid = np.linalg.norm(t - s, axis=1)
    assert src_free and np.all(tgt_free)
    np.testing.assert_allclose(d[:3], euclid[:3], atol=atol)  # axis, axis, 3-D diagonal
    assert np.all(d >= euclid - 1e-9)
    assert d[3] <= CHAMFER_2D * euclid[3] + 1.0
    assert d[4] <= CHAMFER_3D * euclid[4] + 1.0
    assert d[3] > euclid[3] + 0.5  # a grid path, not the straight line


def _wall(half=8.0):
    g = np.arange(-half, half + 0.01, 1.0)
    x, y = np.meshgrid(g, g)
    return np.c_[x.ravel(), y.ravel(), np.zeros(x.size)], np.full(x.size, 1.70)


def _around_the_edge(half, h, r):
    """The shortest way (Å) between (0, 0, ±h) around a square slab of half-width ``half`` in
    the plane z = 0 inflated by ``r``: two tangents to the cylinder of radius r around the
    middle of an edge and the arc between them."""
    dist = np.hypot(half, h)  # anchor to the edge's axis
    arc = 2 * np.pi - 2 * np.arctan2(h, half) - 2 * np.arccos(r / dist)
    return 2 * np.sqrt(dist ** 2 - r ** 2) + r * arc


def test_a_wall_makes_the_path_go_around_it():
    half, h = 8.0, 6.0
    atoms, radii = _wall(half)
    r = 1.70 + PROBE_RADIUS_A  # the wall's inflated half-thickness and edge radius
    exact = _around_the_edge(half, h, r)
    assert exact == pytest.approx(25.265, abs=1e-3)
    # a voxel path keeps its voxel centres outside the inflated wall; the exact way around a
    # wall inflated by half a voxel diagonal more has a free voxel within that of each point:
    # the grid path is at most the chamfer ratio longer than it (27.39 · 1.0824 = 29.65 Å)
    upper = CHAMFER_2D * _around_the_edge(half, h, r + np.sqrt(3) / 2)
    for off in ((0.0, 0.0, 0.0), (0.3, 0.2, 0.45)):  # measured 28.14, 27.50 Å
        s = np.array([0.0, 0.0, h]) + off
        t = np.array([[0.0, 0.0, -h], [0.0, 0.0, h - 3.0]]) + off
        d, _, _ = sasd_from(s, t, atoms, radii, 60.0)
        assert exact <= d[0] <= upper, (d[0], exact, upper)
        assert d[1] == pytest.approx(3.0, abs=0.2)  # same side of the wall: straight
        # too short a search: not found
        d2, _, _ = sasd_from(s, t[:1], atoms, radii, 20.0)
        assert np.isinf(d2[0])


def test_a_buried_anchor_has_no_path():
    g = np.arange(-6.0, 6.01, 1.5)
    ball = np.stack(np.meshgrid(g, g, g), -1).reshape(-1, 3)
    ball = ball[np.linalg.norm(ball, axis=1) <= 6.0]
    d, src_free, tgt_free = sasd_from([0, 0, 0], [[15.0, 0, 0]], ball,
                                      np.full(len(ball), 1.7), 60.0)
    assert not src_free and tgt_free[0] and np.isinf(d[0])


# --------------------------------------------------------------------------- item
@pytest.fixture(scope="module")
def chain_a(tmp_path_factory):
    """5ME2 chain A (141 residues) and a file with it plus a copy 80 Å away (chain Z)."""
    st = gemmi.read_structure(MODEL)
    st.remove_ligands_and_waters()
    for name in [c.name for c in st[0]][1:]:
        st[0].remove_chain(name)
    d = tmp_path_factory.mktemp("xl")
    one = str(d / "chain_a.pdb")
    st.write_pdb(one)
    copy = st[0]["A"].clone()
    copy.name = "Z"
    for res in copy:
        for a in res:
            a.pos = gemmi.Position(a.pos.x + 80.0, a.pos.y, a.pos.z)
    st[0].add_chain(copy)
    two = str(d / "chain_a_z.pdb")
    st.write_pdb(two)
    return read_model(one), read_model(two)


def _lys_pairs(m, within):
    ca = m.atom_name == "CA"
    ri = m.residue_index[ca]
    lys = (m.resname[ri] == "LYS") & (m.chain[ri] == "A")
    idx, xyz = ri[lys], m.xyz[ca][lys]
    dist = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    i, j = np.nonzero(np.triu(dist < within, 1))
    return [(int(m.resseq[idx[a]]), int(m.resseq[idx[b]])) for a, b in zip(i, j)]


def _ctx(model, links):
    xl = types.SimpleNamespace(links=links, name="xl.txt", sha256="0" * 64, notes=[])
    return types.SimpleNamespace(model=types.SimpleNamespace(model=model), crosslinks=xl)


def _link(c1, r1, c2, r2, mx=33.0, line=1):
    return Link(line, c1, r1, "", c2, r2, "", "DSS", mx)


def test_lysine_links_within_15_A_are_all_satisfied(chain_a):
    m, _ = chain_a
    pairs = _lys_pairs(m, 15.0)
    assert len(pairs) == 10
    links = [_link("A", a, "A", b, line=k + 1) for k, (a, b) in enumerate(pairs)]
    res = run_item(item, _ctx(m, links))
    assert res.status == "ok", res.reason
    assert res.metrics["links"] == 10 and res.metrics["links_satisfied"] == 10
    assert res.metrics["satisfied_fraction"] == 1.0
    euclid, sasd = res.data["euclidean"], res.data["sasd"]
    assert np.all(np.isfinite(sasd)) and np.all(sasd >= euclid)
    assert np.all(euclid < 15.0) and np.all(sasd <= 33.0)
    assert res.metrics["sasd_median_A"] > res.metrics["euclidean_median_A"]
    rows = res.tables[0].rows
    assert len(rows) == 10 and all(r[8] == "yes" for r in rows)


def test_links_80_A_apart_fail_and_missing_chains_count(chain_a):
    _, m2 = chain_a
    pairs = _lys_pairs(m2, 15.0)[:4]
    near = [_link("A", a, "A", b) for a, b in pairs]
    far = [_link("A", a, "Z", b) for a, b in pairs]  # the copy 80 Å away
    missing = [_link("A", pairs[0][0], "Q", pairs[0][1])]
    res = run_item(item, _ctx(m2, near + far + missing))
    st = res.data["status"]
    assert st[:4] == [item.SATISFIED] * 4
    assert all(s in (item.TOO_LONG, item.VIOLATED) for s in st[4:8])
    assert np.all(res.data["euclidean"][4:8] > 60.0)
    assert st[8] == item.NOT_IN_MODEL
    assert res.metrics["links"] == 9 and res.metrics["links_not_in_model"] == 1
    assert res.metrics["satisfied_fraction"] == pytest.approx(4 / 9)
    assert res.status == "warnings" and res.warnings[0].code == "few_satisfied"
    assert "4 of the 9" in str(res.warnings[0]) and res.summary
    assert any("lacks" in n for n in res.notes)


def test_exactly_half_is_not_more_than_half(chain_a):
    m, _ = chain_a
    pairs = _lys_pairs(m, 15.0)[:3]
    ok = [_link("A", a, "A", b) for a, b in pairs]
    bad = [_link("A", a, "Q", b) for a, b in pairs]
    half = run_item(item, _ctx(m, ok[:2] + bad[:2]))
    assert half.metrics["satisfied_fraction"] == 0.5 and half.status == "warnings"
    more = run_item(item, _ctx(m, ok[:3] + bad[:2]))
    assert more.metrics["satisfied_fraction"] == 0.6 and more.status == "ok"
    # a maximum just below each link's SASD makes it violated (the same SASD), just above
    # satisfied
    sasd = more.data["sasd"][:3]
    for delta, word in ((-0.05, item.VIOLATED), (0.05, item.SATISFIED)):
        tight = run_item(item, _ctx(m, [_link("A", a, "A", b, mx=float(v + delta))
                                        for (a, b), v in zip(pairs, sasd)]))
        assert tight.data["status"] == [word] * 3
        np.testing.assert_allclose(tight.data["sasd"], sasd, rtol=1e-12)


def test_requires_crosslinks_and_model(chain_a):
    m, _ = chain_a
    res = run_item(item, types.SimpleNamespace(model=None, crosslinks=None))
    assert res.status == "not_applicable" and "cross-links" in res.reason


def test_a_link_measures_the_same_alone_or_in_a_list(chain_a):
    """The shared search (one per source residue, every partner's atoms let through) gives
    each link the SASD it has alone, whatever the other links of the list."""
    m, _ = chain_a
    links = [_link("A", a, "A", b) for a, b in _lys_pairs(m, 20.0)]
    assert len(links) == 25
    euclid, sasd, status = item.measure(m, links)
    alone = [item.measure(m, [ln]) for ln in links]
    np.testing.assert_allclose(sasd, [a[1][0] for a in alone], rtol=0, atol=1e-9)
    assert status == [a[2][0] for a in alone]
    np.testing.assert_allclose(euclid, [a[0][0] for a in alone], rtol=0, atol=1e-12)
    # the other way round (res2 to res1): the same (an undirected graph, both ends seeded
    # alike)
    back = item.measure(m, [_link("A", b, "A", a) for a, b in _lys_pairs(m, 20.0)])
    np.testing.assert_allclose(back[1], sasd, rtol=0, atol=1e-9)
    assert back[2] == status


def test_criteria_text_uses_the_constant():
    assert f"{100 * item.MIN_SATISFIED_FRACTION:.0f} %" in item.CRITERIA
    assert "more than" in item.CRITERIA


# --------------------------------------------------------------------------- figures
def test_figures(chain_a, monkeypatch):
    from figure_checks import FigureCapture

    _, m2 = chain_a
    pairs = _lys_pairs(m2, 15.0)[:5]
    links = ([_link("A", a, "A", b) for a, b in pairs] + [_link("A", pairs[0][0], "Z", 7)]
             + [_link("A", 1, "Q", 2)])
    res = run_item(item, _ctx(m2, links))
    cap = FigureCapture(monkeypatch, fig_mod)
    out = fig_mod.draw_crosslinks(res, None)
    names = [f.path for f in out.figures]
    assert names == ["figures/crosslinks_model.png", "figures/crosslinks_sasd.png"]
    assert all(a.png[:8] == b"\x89PNG\r\n\x1a\n" for a in out.artefacts)
    assert "5 satisfied" in out.figures[0].caption and "not drawn" in out.figures[0].caption
    cap.check_print_sizes()


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_cli_report_with_crosslinks(chain_a, tmp_path, capsys):
    """``cryovalid report MAP --model M --crosslinks F --levels O``: the item in report.json,
    its figures, and a bad line as a one-line error (exit 2)."""
    import json
    import sys

    sys.path.insert(0, HERE)
    from simulate import simulate, write_mrc

    from cryovalid import cli

    m, _ = chain_a
    vol, ts, origin = simulate(m.path, 2.0, bfactor=30.0, resolution=6.0, noise=0.05,
                               padding=6.0)
    mp = str(tmp_path / "map.mrc")
    write_mrc(mp, vol, ts, origin)
    (a, b), (c, d) = _lys_pairs(m, 15.0)[:2]
    xl = _write(tmp_path, f"res1,chain1,res2,chain2,linker\n{a},A,{b},A,DSS\n{c},A,{d},A,BS3\n"
                          f"{a},A,{b},Q,DSS\n")
    out = str(tmp_path / "out")
    code = cli.main(["report", mp, "--resolution", "6", "--model", m.path, "--crosslinks", xl,
                     "--levels", "O", "--formats", "json,html", "--out", out, "--quiet"])
    assert code == 0, capsys.readouterr().err
    rep = json.load(open(os.path.join(out, "report.json")))
    from schema_check import errors

    assert errors(rep) == []
    it = next(i for i in rep["items"] if i["id"] == "O.a")
    assert it["status"] == "ok" and it["metrics"]["links"] == 3
    assert it["metrics"]["links_satisfied"] == 2 and it["metrics"]["links_not_in_model"] == 1
    assert os.path.exists(os.path.join(out, "figures", "crosslinks_model.png"))
    bad = _write(tmp_path, "1,A,7,A\n1,A,7\n", "bad.csv")
    capsys.readouterr()
    code = cli.main(["report", mp, "--model", m.path, "--crosslinks", bad, "--out",
                     str(tmp_path / "o2"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "line 2" in err, err
