"""End to end: the command line writes report.json/html/pdf; bad input exits 2 in one line."""
import json

import numpy as np
import pytest

import simulate
from conftest import threshold_for
from cryovalid import cli
from cryovalid.items import mass

JSON_TOP = {"cryovalid_version", "inputs", "levels", "items", "score", "resolution_estimates",
            "summary"}
ITEM_KEYS = {"id", "title", "status", "warnings", "metrics", "criteria", "seconds"}
METRICS = {
    "0.a": {f"{k}_{a}" for k in ("decentering_pct", "com_offset_pct", "space_left_A",
                                 "space_right_A") for a in "xyz"},
    "0.b": {"n_components", "n_components_95", "outside_largest_fraction", "mask_overlap"},
    "0.c": {"background_mean", "background_std", "background_t_pvalue", "outlier_ratio_5sigma"},
    "0.d": {"bfactor_A2"},
}


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory, clean_map):
    vol, ts, origin = clean_map
    p = tmp_path_factory.mktemp("in") / "sim.mrc"
    simulate.write_mrc(p, vol, ts, origin)
    return str(p), threshold_for(vol)


def run_cli(capsys, *args):
    code = cli.main(["report", *map(str, args), "--quiet"])
    return code, capsys.readouterr()


def test_full_report(tmp_path, sim_file, capsys):
    path, t = sim_file
    out = tmp_path / "rep"
    code, cap = run_cli(capsys, path, "--threshold", t, "--resolution", 4.0, "--out", out)
    assert code == 0, cap.err
    for f in ("report.json", "report.html", "report.pdf", "maps/mask_hard.mrc",
              "maps/mask_soft.mrc", "figures/input_isosurface.png"):
        assert (out / f).exists(), f
    rep = json.loads((out / "report.json").read_text())
    assert JSON_TOP <= set(rep)
    assert rep["inputs"]["threshold"] == pytest.approx(t)
    assert rep["inputs"]["resolution_A"] == 4.0
    assert len(rep["inputs"]["sha256"]) == 64
    by_id = {it["id"]: it for it in rep["items"]}
    for item_id, names in METRICS.items():
        it = by_id[item_id]
        assert ITEM_KEYS <= set(it)
        assert it["status"] in ("ok", "warnings")
        assert names <= set(it["metrics"]), item_id
        assert it["criteria"]
        assert (it["status"] == "ok") == (not it["warnings"])
    sc = rep["score"]
    assert sc["evaluable"] == len([i for i in rep["items"] if i["status"] in ("ok", "warnings")])
    assert sc["passed"] == len([i for i in rep["items"] if i["status"] == "ok"])
    assert f"{sc['passed']} out of {sc['evaluable']}" in rep["summary"]["score"]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "Summarized overall quality" in html
    for it in rep["items"]:
        assert it["criteria"] in html.replace("&amp;", "&")  # the criterion shown is the one checked
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"


def test_without_resolution_items_do_not_apply(tmp_path, sim_file, capsys):
    path, t = sim_file
    code, cap = run_cli(capsys, path, "--threshold", t, "--out", tmp_path, "--formats", "json")
    assert code == 0, cap.err
    rep = json.loads((tmp_path / "report.json").read_text())
    d = [i for i in rep["items"] if i["id"] == "0.d"][0]
    assert d["status"] == "not_applicable" and "resolution" in d["reason"]
    assert not (tmp_path / "report.pdf").exists()
    assert "did not report a resolution" in " ".join(rep["summary"]["resolution"])


def test_automatic_threshold_is_stated(tmp_path, sim_file, capsys):
    path, _ = sim_file
    code, cap = run_cli(capsys, path, "--out", tmp_path, "--formats", "json")
    assert code == 0, cap.err
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["inputs"]["threshold_method"].startswith("automatic")
    assert np.isfinite(rep["inputs"]["threshold"])


def test_failing_item_becomes_could_not_be_measured(tmp_path, sim_file, capsys, monkeypatch):
    path, t = sim_file

    def boom(ctx):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(mass, "run", boom)
    code, cap = run_cli(capsys, path, "--threshold", t, "--resolution", 4, "--out", tmp_path,
                        "--formats", "json,html")
    assert code == 0, cap.err
    rep = json.loads((tmp_path / "report.json").read_text())
    a = rep["items"][0]
    assert a["status"] == "failed" and "simulated failure" in a["reason"]
    assert all(i["status"] != "failed" for i in rep["items"][1:])
    assert rep["score"]["evaluable"] == len(rep["items"]) - 1
    assert "Could not be measured" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize("make, args, message", [
    (None, ["nonexistent.mrc"], "no such file"),
    ("truncated", [], "truncated"),
    ("ok", ["--threshold", "1e9"], "above the map maximum"),
    ("ok", ["--resolution", "-3"], "resolution must be positive"),
    ("ok", ["--formats", "docx"], "unknown format"),
    ("ok", ["--voxel-size", "0"], "voxel size must be positive"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, sim_file, capsys, make, args, message):
    path, _ = sim_file
    if make == "truncated":
        data = open(path, "rb").read()
        path = tmp_path / "cut.mrc"
        path.write_bytes(data[: len(data) // 2])
    argv = (args if make is None else [str(path), *args]) + ["--out", str(tmp_path / "o")]
    code = cli.main(["report", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1, err


def test_help_lists_options(capsys):
    assert cli.main(["report", "--help"]) == 0
    text = capsys.readouterr().out
    for opt in ("--threshold", "--resolution", "--out", "--voxel-size", "--formats", "--quiet",
                "--half-maps"):
        assert opt in text


def test_non_cubic_box(tmp_path, atoms, capsys):
    vol, ts, origin = simulate.simulate(atoms=atoms, voxel_size=1.4, resolution=4.5,
                                        bfactor=30, noise=0.02, padding=22.0, cubic=False)
    assert len(set(vol.shape)) > 1
    p = simulate.write_mrc(tmp_path / "nc.mrc", vol, ts, origin)
    code, cap = run_cli(capsys, p, "--threshold", threshold_for(vol), "--resolution", 4.5,
                        "--out", tmp_path / "o", "--formats", "json")
    assert code == 0, cap.err
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert all(i["status"] in ("ok", "warnings") for i in rep["items"]), rep["items"]
    assert rep["inputs"]["shape"] == list(vol.shape[::-1])


def test_level1_report_with_half_maps(tmp_path, atoms, capsys):
    h1, h2, signal, ts, origin = simulate.simulate_half_maps(4.0, voxel_size=1.2, atoms=atoms,
                                                             padding=22.0)
    full = (h1 + h2) / 2
    paths = [simulate.write_mrc(tmp_path / n, v, ts, origin)
             for n, v in (("full.mrc", full), ("h1.mrc", h1), ("h2.mrc", h2))]
    out = tmp_path / "rep"
    code, cap = run_cli(capsys, paths[0], "--half-maps", paths[1], paths[2], "--threshold",
                        threshold_for(full), "--resolution", 4.0, "--out", out,
                        "--formats", "json,html")
    assert code == 0, cap.err
    rep = json.loads((out / "report.json").read_text())
    assert rep["levels"] == ["0", "1"]
    by_id = {i["id"]: i for i in rep["items"]}
    assert by_id["1.a"]["metrics"]["fsc_0143_A"] == pytest.approx(4.0, rel=0.03)
    assert by_id["1.b"]["status"] in ("ok", "warnings")
    assert [h["name"] for h in rep["inputs"]["half_maps"]] == ["h1.mrc", "h2.mrc"]
    assert len(rep["half_map_figures"]) == 3
    assert {e["item"] for e in rep["resolution_estimates"]} >= {"1.a", "1.b"}
    assert rep["summary"]["resolution"][0].startswith("The ")
    assert (out / "fsc.csv").exists()
    html = (out / "report.html").read_text()
    assert "<h2>Half maps</h2>" in html and "Level 1 analysis" in html


def test_mismatched_half_maps_exit_2(tmp_path, sim_file, capsys):
    path, t = sim_file
    from cryovalid.io.maps import read_map

    m = read_map(path)
    bad = simulate.write_mrc(tmp_path / "small.mrc", m.data[:-2], m.voxel_size, m.origin)
    code, cap = run_cli(capsys, path, "--half-maps", path, bad, "--threshold", t,
                        "--out", tmp_path / "o")
    assert code == 2
    err = cap.err.strip()
    assert "small.mrc" in err and "box" in err and len(err.splitlines()) == 1
