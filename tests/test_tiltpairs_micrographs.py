"""O.c from micrograph pairs and paired coordinates (``--tilt-micrographs GLOB``, as the
reference: io/tiltpairs.read_tilt_pairs_from_micrographs, kernels/extract.py).

Known answers. The map is the 48³ αβ-dimer map of 5ME2 at 2.5 Å (6 Å resolution, as
tests/test_tiltpairs.py); the micrographs are at 2.0 Å/px, so the reference's box is
int(48·2.5/2.0) = 60 px. Two micrograph pairs of 512² px: on each untilted micrograph 16
particles at known positions, each the projection (of the same atoms simulated at 2.0 Å) at a
random orientation A_u; on its tilted partner the projection at R_tilt·A_u (30° about the
in-plane axis at 20° from x) at the position foreshortened by the tilt (the component normal to
the axis times cos 30°, about the micrograph's centre). Protein is dark (subtracted) on white
noise at SNR 1 (the particles' signal variance within the circle). One more pair lies 20 px from
an untilted micrograph's corner: its box falls off and it must be dropped and counted.
* O.c on the 32 pairs: mean tilt 30 ± 3°, axis 20 ± 5°, passes; declared 60°, it warns;
* the boxes cut are the simulated projections (correlation > 0.6 at SNR 1, before inversion
  negative): the contrast is inverted and each box centred on its coordinate;
* errors, one line each: a STAR without rlnCoordinateX, a micrograph the glob does not match,
  unequal row counts (also through the CLI, exit 2: tests/test_bad_inputs.py).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import starfile

from simulate import simulate, write_mrc
from simulate_particles import random_eulers, reprojection_atoms
from test_tiltpairs import stage_tilt
from cryovalid.context import Context
from cryovalid.errors import InputError
from cryovalid.io.maps import Map
from cryovalid.io.tiltpairs import read_tilt_pairs_from_micrographs, tilt_box
from cryovalid.items import tiltpairs as item
from cryovalid.items.base import run_item
from cryovalid.kernels import align2d, extract, projection

TS, BOX = 2.5, 48  # the map
TM = 2.0  # the micrographs, Å/px
MIC = 512  # micrograph edge, px
TILT, AXIS = 30.0, 20.0
GRID = 4  # particles per micrograph: GRID × GRID
N_MIC_PAIRS = 2


def foreshorten(xy, tilt=TILT, axis=AXIS, centre=(MIC / 2, MIC / 2)):
    """Positions after a stage tilt: the component normal to the in-plane axis × cos(tilt)."""
    a = np.radians(axis)
    u = np.array([np.cos(a), np.sin(a)])
    nrm = np.array([-np.sin(a), np.cos(a)])
    d = np.asarray(xy, dtype=np.float64) - centre
    return centre + np.outer(d @ u, u) + np.outer((d @ nrm) * np.cos(np.radians(tilt)), nrm)


def simulate_micrograph_pairs(folder, tilt=TILT, snr=1.0, seed=0):
    """Write the micrograph pairs (MRC, TM Å/px) and the two coordinate STAR files into
    ``folder``; return (untilted.star, tilted.star, glob, truth dict)."""
    rng = np.random.default_rng(seed)
    b = tilt_box(BOX, TS, TM)
    vol, _, _ = simulate(voxel_size=TM, resolution=6.0, shape=(b,) * 3,
                         atoms=reprojection_atoms())
    pr = projection.Projector(vol)
    mask = align2d.circular_mask(b)
    step = (MIC - 2 * 70) / (GRID - 1)
    g = 70 + step * np.arange(GRID)
    xy = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2).round()
    rows_u, rows_t, truth = [], [], {"clean_u": [], "xy_u": [], "mic_u": []}
    for k in range(N_MIC_PAIRS):
        e_u = random_eulers(len(xy), rng)
        e_t = projection.matrix_euler(stage_tilt(tilt) @ projection.euler_matrix(e_u))
        xy_t = foreshorten(xy, tilt).round()
        for side, e, pos, rows in (("u", e_u, xy, rows_u), ("t", e_t, xy_t, rows_t)):
            clean = pr.project(e)
            sd = np.sqrt(clean[:, mask].var(axis=1).mean() / snr)
            mic = rng.normal(0.0, sd, (MIC, MIC)).astype(np.float32)
            c = extract.corners(pos, b)
            for (x0, y0), img in zip(c, clean):
                mic[y0:y0 + b, x0:x0 + b] -= img  # protein dark
            name = f"mic{k + 1}_{side}.mrc"
            write_mrc(os.path.join(folder, name), mic, TM)
            rows += [(f"Micrographs/{name}", float(x), float(y)) for x, y in pos]
            if side == "u":
                truth["clean_u"].append(clean)
                truth["xy_u"].append(pos)
        if k == 0:  # a pair whose untilted box falls off the micrograph's corner
            rows_u.append(("Micrographs/mic1_u.mrc", 20.0, 20.0))
            rows_t.append(("Micrographs/mic1_t.mrc", 256.0, 256.0))
    paths = []
    for side, rows in (("untilted", rows_u), ("tilted", rows_t)):
        df = pd.DataFrame(rows, columns=["rlnMicrographName", "rlnCoordinateX",
                                         "rlnCoordinateY"])
        p = os.path.join(folder, f"{side}.star")
        starfile.write({"particles": df}, p, overwrite=True)
        paths.append(p)
    truth["clean_u"] = np.concatenate(truth["clean_u"])
    return paths[0], paths[1], os.path.join(folder, "mic*.mrc"), truth


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiltmics")
    return simulate_micrograph_pairs(str(d))


@pytest.fixture(scope="module")
def dimer():
    vol, _, _ = simulate(voxel_size=TS, resolution=6.0, shape=(BOX,) * 3,
                         atoms=reprojection_atoms())
    return vol


def read(sim, tilt=TILT, **kw):
    u, t, pattern, _ = sim
    import glob

    return read_tilt_pairs_from_micrographs(u, t, pattern, sorted(glob.glob(pattern)),
                                            map_box=BOX, map_voxel=TS, tilt_angle=tilt, **kw)


def context(vol, tp):
    ctx = Context.of(map=Map(data=vol, voxel_size=TS, path="sim.mrc"),
                     threshold=float(np.quantile(vol, 0.97)))
    ctx.tilt_pairs = tp
    ctx.symmetry = "c1"
    return ctx


# ---- the reader and the extraction ---------------------------------------------------------
def test_box_is_the_reference_rule_made_even():
    assert tilt_box(48, 2.5, 2.0) == 60  # int(60.0)
    assert tilt_box(48, 2.5, 1.9) == 64  # int(63.16) = 63, made even
    assert tilt_box(100, 1.0, 3.0) == 34  # int(33.3) = 33 -> 34


def test_extract_cuts_centred_boxes_inverted_and_normalised():
    """A dark dot at (x, y) = (40, 25) lands on pixel box//2 of its box, bright."""
    img = np.zeros((64, 80), dtype=np.float32)
    img[25, 40] = -5.0  # dark: the protein of a micrograph
    img[10, 70] = -3.0
    xy = np.array([[40.2, 24.7], [70.0, 10.0]])
    box = 16
    assert extract.inside(xy, img.shape, box).all()
    assert not extract.inside(np.array([[3.0, 30.0], [40.0, 60.0]]), img.shape, box).any()
    out = extract.extract(img, xy, box)
    assert out.shape == (2, box, box) and out.dtype == np.float32
    for o in out:
        assert np.unravel_index(np.argmax(o), o.shape) == (box // 2, box // 2)
        assert abs(float(o.mean())) < 1e-6 and abs(float(o.std()) - 1.0) < 1e-5


def test_reader_pairs_rows_drops_the_box_off_the_edge_and_counts_it(sim):
    tp = read(sim)
    n = N_MIC_PAIRS * GRID * GRID
    assert tp.n == n and tp.box == 60 and tp.pixel_size == pytest.approx(TM)
    assert tp.tilt_angle == TILT
    assert tp.micrographs["n_rows"] == n + 1 and tp.micrographs["n_dropped_off_edge"] == 1
    assert tp.micrographs["n_untilted"] == N_MIC_PAIRS == tp.micrographs["n_tilted"]
    assert tp.micrographs["n_micrographs"] == 2 * N_MIC_PAIRS
    assert any("1 of the 33 pairs dropped" in s for s in tp.notes), tp.notes
    u, t = tp.images(np.arange(5))
    assert u.shape == t.shape == (5, 60, 60) and u.dtype == np.float32
    # the untilted boxes are the simulated projections, contrast inverted back to bright
    clean = sim[3]["clean_u"]
    u_all, _ = tp.images()
    cc = np.array([np.corrcoef(a.ravel(), c.ravel())[0, 1] for a, c in zip(u_all, clean)])
    assert cc.min() > 0.6, cc.min()
    # lazily cut: the same boxes however they are asked for
    assert np.array_equal(tp.images([3, 20])[1], tp.images()[1][[3, 20]])


def test_reader_refuses_a_star_without_coordinates(sim, tmp_path):
    u, t, pattern, _ = sim
    df = starfile.read(u, always_dict=True)["particles"].drop(columns=["rlnCoordinateX"])
    bad = str(tmp_path / "nox.star")
    starfile.write({"particles": df}, bad, overwrite=True)
    with pytest.raises(InputError, match="no rlnCoordinateX column") as exc:
        read((bad, t, pattern, None))
    assert "\n" not in str(exc.value) and "nox.star" in str(exc.value)


def test_reader_refuses_a_micrograph_the_glob_does_not_match(sim):
    u, t, _, _ = sim
    pattern = os.path.join(os.path.dirname(u), "mic1_*.mrc")  # misses mic2_u, mic2_t
    with pytest.raises(InputError, match="'mic2_u.mrc' .row 18. is not among the 2 files") \
            as exc:
        read((u, t, pattern, None))
    assert "\n" not in str(exc.value) and "--tilt-micrographs" in str(exc.value)


def test_reader_refuses_unequal_row_counts(sim, tmp_path):
    u, t, pattern, _ = sim
    df = starfile.read(t, always_dict=True)["particles"].iloc[:-3]
    short = str(tmp_path / "short.star")
    starfile.write({"particles": df}, short, overwrite=True)
    with pytest.raises(InputError, match="30 tilted coordinates, but .* holds 33") as exc:
        read((u, short, pattern, None))
    assert "\n" not in str(exc.value)


def test_reader_pixel_override_changes_the_box(sim):
    """--tilt-pixel 2.5 (wrong, but given) gives the box int(48·2.5/2.5) = 48 and a note."""
    tp = read(sim, pixel_size=2.5)
    assert tp.box == 48 and tp.pixel_size == 2.5
    assert any("--tilt-pixel" in s for s in tp.notes), tp.notes


# ---- the item's known answers on pairs cut from micrographs --------------------------------
@pytest.mark.slow
def test_pairs_cut_from_micrographs_measure_thirty_degrees(sim, dimer):
    res = run_item(item, context(dimer, read(sim)))
    m = res.metrics
    assert res.status == "ok", (res.status, res.reason)
    assert m["n_pairs"] == N_MIC_PAIRS * GRID * GRID
    assert abs(m["mean_tilt_deg"] - TILT) < 3.0, m
    assert abs(m["mean_tilt_axis_deg"] - AXIS) < 5.0, m
    assert m["fraction_within_10deg"] >= 0.9, m
    assert not res.warnings


@pytest.mark.slow
def test_declared_sixty_degrees_warns(sim, dimer):
    res = run_item(item, context(dimer, read(sim, tilt=60.0)))
    assert [w.code for w in res.warnings] == ["tilt_difference"], res.warnings
    assert abs(res.metrics["mean_tilt_deg"] - TILT) < 3.0


@pytest.mark.slow
def test_command_line_from_micrographs(sim, dimer, tmp_path, capsys):
    from cryovalid import cli

    u, t, pattern, _ = sim
    m = write_mrc(tmp_path / "map.mrc", dimer, TS)
    out = tmp_path / "rep"
    code = cli.main(["report", m, "--tilt-pairs", u, t, "--tilt-micrographs", pattern,
                     "--tilt-angle", "30", "--threshold", repr(float(np.quantile(dimer, 0.97))),
                     "--levels", "O", "--out", str(out), "--formats", "json,html", "--quiet"])
    assert code == 0, capsys.readouterr().err
    rep = json.loads((out / "report.json").read_text())
    tp = rep["inputs"]["tilt_pairs"]
    assert tp["n_pairs"] == 32 and tp["box_px"] == 60
    assert tp["micrographs"]["pattern"] == pattern and tp["micrographs"]["n_dropped_off_edge"] == 1
    oc = next(i for i in rep["items"] if i["id"] == "O.c")
    assert oc["status"] == "ok" and abs(oc["metrics"]["mean_tilt_deg"] - TILT) < 3.0
    html = (out / "report.html").read_text()
    assert "Tilt-pair micrographs" in html and "1 dropped" in html
    # without --tilt-pairs the glob alone is refused in one line
    code = cli.main(["report", m, "--tilt-micrographs", pattern, "--tilt-angle", "30",
                     "--out", str(tmp_path / "rep2"), "--formats", "json", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--tilt-micrographs needs --tilt-pairs" in err and "\n" not in err


def test_coordinate_stars_without_micrographs_say_what_to_give(sim):
    """Coordinate files given as --tilt-pairs alone (no --tilt-micrographs): the particle
    reader refuses them, and the message says which option they need."""
    from cryovalid.io.tiltpairs import read_tilt_pairs

    u, t, _, _ = sim
    with pytest.raises(InputError, match="no rlnImageName column.*--tilt-micrographs GLOB") \
            as exc:
        read_tilt_pairs(u, t, tilt_angle=TILT)
    assert "\n" not in str(exc.value)


def _cut_as_the_star_rows(sim, paths):
    """The pair of coordinate files ``paths`` (micrograph pair 1) cuts the boxes the STAR rows
    of mic1 cut."""
    tp = read((paths[0], paths[1], sim[2], None))
    star = read(sim)
    assert tp.n == GRID * GRID and tp.micrographs["n_untilted"] == 1
    a, b = tp.images(), star.images(np.arange(GRID * GRID))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_eman2_info_json_pair_reads_the_same_boxes(sim, tmp_path):
    """EMAN2 info JSONs (info/mic1_u_info.json with "boxes_rct" [x, y, "untilted"], and the
    tilted one with "boxes"), one micrograph pair: the same pairs as the STAR rows of mic1."""
    u, t, pattern, _ = sim
    rows = {s: starfile.read(p, always_dict=True)["particles"] for s, p in (("u", u), ("t", t))}
    paths = []
    for side, key, label in (("u", "boxes_rct", "untilted"), ("t", "boxes", "tilted")):
        df = rows[side].iloc[:GRID * GRID]  # micrograph pair 1 (the 17th row is off the edge)
        assert set(df["rlnMicrographName"]) == {f"Micrographs/mic1_{side}.mrc"}
        p = tmp_path / f"mic1_{side}_info.json"
        p.write_text(json.dumps({key: [[x, y, label] for x, y in zip(df["rlnCoordinateX"],
                                                                      df["rlnCoordinateY"])],
                                 "tiltparams_micrographs/mic1": [30.0, 20.0, 20.0]}))
        paths.append(str(p))
    _cut_as_the_star_rows(sim, paths)
    (tmp_path / "bad_info.json").write_text(json.dumps({"boxes": [[1.0]]}))
    with pytest.raises(InputError, match="not .x, y, ....* numbers"):
        read((str(tmp_path / "bad_info.json"), paths[1], pattern, None))


def test_xmipp_pos_pair_reads_the_same_boxes(sim, tmp_path):
    """Xmipp .pos files (XMIPP_STAR_1: data_header, then data_particles with _xcoor, _ycoor
    box centres), one per side of micrograph pair 1, named after its micrographs: the same
    pairs as the STAR rows of mic1. A .pos without the coordinates is a one-line error."""
    u, t, pattern, _ = sim
    rows = {s: starfile.read(p, always_dict=True)["particles"] for s, p in (("u", u), ("t", t))}
    paths = []
    for side in ("u", "t"):
        df = rows[side].iloc[:GRID * GRID]
        lines = ["# XMIPP_STAR_1 *", "#", "data_header", "loop_", " _pickingMicrographState",
                 "Manual", "data_particles", "loop_", " _xcoor", " _ycoor"]
        lines += [f" {x:g} {y:g}" for x, y in zip(df["rlnCoordinateX"], df["rlnCoordinateY"])]
        p = tmp_path / f"mic1_{side}.pos"
        p.write_text("\n".join(lines) + "\n")
        paths.append(str(p))
    _cut_as_the_star_rows(sim, paths)
    (tmp_path / "bad.pos").write_text("data_particles\nloop_\n _xcoor\n 1\n")
    with pytest.raises(InputError, match=r"bad.pos: no data_particles table with _xcoor and "
                                         r"_ycoor"):
        read((str(tmp_path / "bad.pos"), paths[1], pattern, None))
