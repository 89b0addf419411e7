"""End to end: the command line writes report.json/html/pdf; bad input exits 2 in one line."""
import json
import re

import mrcfile
import numpy as np
import pytest

import simulate
from conftest import threshold_for
from cryovalid import cli
from cryovalid.items import mass
from cryovalid.report import render

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



def run_cli(capsys, *args):
    code = cli.main(["report", *map(str, args), "--quiet"])
    return code, capsys.readouterr()


@pytest.mark.slow
def test_full_report(tmp_path, sim_file, capsys):
    path, t = sim_file
    out = tmp_path / "rep"
    code, cap = run_cli(capsys, path, "--threshold", t, "--resolution", 4.0, "--out", out)
    assert code == 0, cap.err
    for f in ("report.json", "report.html", "report.pdf", "maps/mask_hard.mrc",
              "maps/mask_soft.mrc", "figures/input_isosurface.png"):
        assert (out / f).exists(), f
    with mrcfile.open(out / "maps" / "mask_hard.mrc") as mrc:  # 8-bit, a quarter of float32
        assert mrc.header.mode == 0 and set(np.unique(mrc.data)) <= {0, 1}
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
        if it["status"] != "not_run":  # the criterion shown is the one checked
            assert it["criteria"] in html.replace("&amp;", "&")
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
    with mrcfile.open(out / "maps" / "mask_hard.mrc") as mrc:  # a binary mask, 0 or 1
        assert set(np.unique(mrc.data).tolist()) <= {0, 1}
    check_navigation(rep, html)
    check_figure_print_sizes(rep, out)
    check_pdf_bookmarks(rep, out)


def check_navigation(rep, html):
    """Numbered sections and figures, each link of the HTML pointing at an existing id."""
    check_well_formed(html)
    ids = set(re.findall(r'id="([^"]+)"', html))
    links = set(re.findall(r'href="#([^"]+)"', html))
    assert links and links <= ids, links - ids
    for e in rep["toc"]:  # the table of contents links every section
        assert e["anchor"] in ids and f'href="#{e["anchor"]}"' in html
    titles = [e["title"] for e in rep["toc"] if e["depth"] == 1]
    assert titles[:3] == ["Summarized overall quality", "Context: the levels of a report",
                          "Input data"]
    assert titles[-1].startswith("Appendix")
    for it in rep["items"]:  # the status table names the section, with a link
        assert re.search(rf'<a href="#{it["anchor"]}">Sec\. {re.escape(it["number"])}</a>', html)
    numbers = [f["number"] for f in rep["input_figures"] + rep["half_map_figures"]
               + [f for it in rep["items"] for f in it["figures"]] if f["path"]]
    assert numbers == list(range(1, len(numbers) + 1))
    for n in numbers:
        assert f'id="fig-{n}"' in html and f"Fig. {n}." in html
    assert "Computed in" not in html  # timings are in the appendix only
    assert "Appendix: computing times" in html
    for lv in rep["context"]["levels"]:
        assert lv["name"] in html


def check_well_formed(html):
    """Every block element of the report is closed, in order (the nested table of contents
    once closed its items twice)."""
    from html.parser import HTMLParser

    blocks = {"ol", "li", "table", "thead", "tbody", "tr", "td", "th", "div", "figure", "nav",
              "h2", "h3", "h4"}

    class Checker(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.errors = [], []

        def handle_starttag(self, tag, attrs):
            if tag in blocks:
                self.stack.append(tag)

        def handle_endtag(self, tag):
            if tag in blocks:
                if self.stack and self.stack[-1] == tag:
                    self.stack.pop()
                else:
                    self.errors.append((tag, self.getpos(), self.stack[-3:]))

    c = Checker()
    c.feed(html)
    assert not c.errors and not c.stack, (c.errors[:3], c.stack[:3])


def check_figure_print_sizes(rep, out):
    """Every figure drawn by the report's figure modules prints at its own size (so its fonts,
    all ≥ 7 pt in the code, keep their size): a dpi saved in the PNG, no wider than the text
    and at most 120 mm tall. (figures/hand.py has its own test.)"""
    from PIL import Image

    figs = [f for f in rep["input_figures"] + [f for it in rep["items"] for f in it["figures"]]
            if f["path"] and not f["path"].startswith("figures/hand")]
    assert figs
    for f in figs:
        with Image.open(out / f["path"]) as im:
            dpi = im.info.get("dpi")
            assert dpi and dpi[0] >= 90, f["path"]
            w_mm, h_mm = 25.4 * im.width / dpi[0], 25.4 * im.height / dpi[1]
        assert w_mm <= render.TEXT_WIDTH_MM and h_mm <= 120.0, (f["path"], w_mm, h_mm)
        assert render._img_style(str(out), f["path"]) == f"width: {w_mm:.1f}mm"


def check_pdf_bookmarks(rep, out):
    """The PDF's outline: one bookmark per numbered section, items nested under their level."""
    import weasyprint

    doc = weasyprint.HTML(filename=str(out / "report.html")).render()
    tree = doc.make_bookmark_tree()
    top = [b[0] for b in tree]
    assert top == [f"{e['number']} {e['title']}" for e in rep["toc"] if e["depth"] == 1]
    level0 = [b for b in tree if b[0].startswith("4 ")][0]
    assert [c[0] for c in level0[2]] == [f"{it['number']} {it['id']} {it['title']}"
                                         for it in rep["items"] if it["number"].startswith("4.")]


def test_without_resolution_items_do_not_apply(tmp_path, sim_file, capsys):
    path, t = sim_file
    code, cap = run_cli(capsys, path, "--threshold", t, "--out", tmp_path, "--formats", "json")
    assert code == 0, cap.err
    rep = json.loads((tmp_path / "report.json").read_text())
    d = [i for i in rep["items"] if i["id"] == "0.d"][0]
    assert d["status"] == "not_applicable" and "resolution" in d["reason"]
    assert not (tmp_path / "report.pdf").exists()
    assert "did not report a resolution" in " ".join(rep["summary"]["resolution"])
    # json only: no figure is drawn
    assert not (tmp_path / "figures").exists() and rep["input_figures"] == []
    # Level 1 is listed, not run, and not scored
    by_id = {i["id"]: i for i in rep["items"]}
    assert by_id["1.a"]["status"] == by_id["1.b"]["status"] == "not_run"
    assert by_id["1.a"]["status_label"].startswith("Not run: needs two half maps")
    assert rep["score"]["evaluable"] == sum(i["status"] in ("ok", "warnings")
                                            for i in rep["items"])
    states = {lv["id"]: lv["state"] for lv in rep["context"]["levels"]}
    assert (states["0"], states["1"], states["5"]) == \
        ("graded", "not_given", "not_given")


def test_automatic_threshold_is_stated(tmp_path, sim_file, capsys):
    path, _ = sim_file
    code, cap = run_cli(capsys, path, "--out", tmp_path, "--formats", "json")
    assert code == 0, cap.err
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["inputs"]["threshold_method"].startswith("automatic")
    assert np.isfinite(rep["inputs"]["threshold"])


@pytest.mark.slow
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
    ran = [i for i in rep["items"] if i["status"] != "not_run"]
    assert rep["score"]["evaluable"] == len(ran) - 1
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
    assert all(i["status"] in ("ok", "warnings") for i in rep["items"]
               if i["status"] != "not_run"), rep["items"]
    assert rep["inputs"]["shape"] == list(vol.shape[::-1])


@pytest.mark.slow
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
    # every item of the graded levels ran; only the model's (Level A) are listed as not run
    assert not any(i["status"] == "not_run" for i in rep["items"] if i["id"][0] in "01")
    assert all(i["status"] == "not_run" for i in rep["items"] if i["id"][0] == "A")
    by_id = {i["id"]: i for i in rep["items"]}
    assert by_id["1.a"]["metrics"]["fsc_0143_A"] == pytest.approx(4.0, rel=0.03)
    assert by_id["1.b"]["status"] in ("ok", "warnings")
    assert isinstance(by_id["1.a"]["flags"]["identical_halves"], bool)  # flags, not metrics
    assert "identical_halves" not in by_id["1.a"]["metrics"]
    assert [h["name"] for h in rep["inputs"]["half_maps"]] == ["h1.mrc", "h2.mrc"]
    assert len(rep["half_map_figures"]) == 3
    assert {e["item"] for e in rep["resolution_estimates"]} >= {"1.a", "1.b"}
    assert rep["summary"]["resolution"][0].startswith("The ")
    assert (out / "fsc.csv").exists()
    html = (out / "report.html").read_text()
    assert 'id="sec-half-maps"' in html and "Level 1 analysis" in html
    assert len(re.findall(r'<figure id="fig-\d+"', html)) == sum(
        1 for f in rep["half_map_figures"] + rep["input_figures"]
        + [f for i in rep["items"] for f in i["figures"]] if f["path"])


@pytest.mark.parametrize("value, fmt, text", [
    (18432.79463, "{:.2f}", "18433"),      # no false precision
    (2.370680449, "{:.2f}", "2.37"),
    (97.62931955, "{:.2f}", "97.63"),
    (-9.21013430, "{:+.1f}", "-9.2"),
    (116947.8825, "{:.0f}", "116948"),     # the integer part is never rounded
    (2.5783e-128, "{:.3g}", "2.58 × 10⁻¹²⁸"),
    (5.7330e-05, "{:.3g}", "5.73 × 10⁻⁵"),
    (23411, "{:d}", "23411"),
    (None, "{:.2f}", "–"),
    (float("nan"), "{:.2f}", "–"),
    ("15 Å to 3.2 Å", "{}", "15 Å to 3.2 Å"),
])
def test_number_formats(value, fmt, text):
    assert render._fmt(value, fmt) == text


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


@pytest.mark.parametrize("vmin, vmax, ticks", [
    (1.76, 8.58, [2, 4, 6, 8]),          # the colour bar once read 1.76, 5.17, 8.58
    (-137.3, -22.75, [-120, -100, -80, -60, -40]),
    (0.189, 1.0, [0.2, 0.4, 0.6, 0.8, 1.0]),
    (3.0, 3.5, [3.0, 3.2, 3.4]),
])
def test_colour_bar_ticks_are_round(vmin, vmax, ticks):
    from cryovalid.figures.isosurface import _tick_format, nice_ticks

    got = nice_ticks(vmin, vmax)
    assert got == pytest.approx(ticks)
    assert all(vmin <= t <= vmax for t in got)
    labels = [_tick_format(got) % t for t in got]
    assert len(set(labels)) == len(labels) and all(len(x.lstrip("-")) <= 4 for x in labels)
