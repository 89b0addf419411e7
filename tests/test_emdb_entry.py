"""cryovalid emdb: an entry fetched from a local mirror laid out like EMDB and the PDB (built
here from the shipped example, EMD-3488 + 5ME2), validated with the entry's contour and
resolution, with a front page naming the entry and every source."""
import gzip
import json
import os
import shutil

import gemmi
import pytest

from cryovalid import cli

from simulate import EXAMPLE_MAP, EXAMPLE_MODEL, small_example

HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<emd emdb_id="EMD-3488" version="3.0.9.1">
  <admin>
    <key_dates><deposition>2016-06-10</deposition></key_dates>
    <title>Human haemoglobin, Volta phase plate</title>
    <authors_list><author>Khoshouei M</author><author>Danev R</author></authors_list>
  </admin>
  <crossreferences><pdb_list><pdb_reference><pdb_id>5me2</pdb_id></pdb_reference>
  </pdb_list></crossreferences>
  <structure_determination_list><structure_determination>
    <method>singleParticle</method>
    <singleparticle_processing><final_reconstruction>
      <resolution res_type="BY AUTHOR">3.2</resolution>
      <resolution_method>FSC 0.143 CUT-OFF</resolution_method>
    </final_reconstruction></singleparticle_processing>
  </structure_determination></structure_determination_list>
  <map format="CCP4"><file>emd_3488.map.gz</file>
    <pixel_spacing><x>{pixel}</x><y>{pixel}</y><z>{pixel}</z></pixel_spacing>
    <contour_list><contour primary="true"><level>0.07</level><source>AUTHOR</source>
    </contour></contour_list>
  </map>
  {halves}
</emd>
"""


def _mirror(tmp_path, halves="", source=EXAMPLE_MAP, pixel=1.05):
    emdb = tmp_path / "emdb" / "structures" / "EMD-3488"
    (emdb / "header").mkdir(parents=True)
    (emdb / "map").mkdir()
    (emdb / "header" / "emd-3488-v30.xml").write_text(HEADER.format(halves=halves, pixel=pixel))
    if source.endswith(".gz"):
        shutil.copy(source, emdb / "map" / "emd_3488.map.gz")
    else:
        with open(source, "rb") as src, gzip.open(emdb / "map" / "emd_3488.map.gz", "wb") as fh:
            shutil.copyfileobj(src, fh)
    pdb = tmp_path / "pdb" / "data" / "structures" / "divided" / "mmCIF" / "me"
    pdb.mkdir(parents=True)
    st = gemmi.read_structure(EXAMPLE_MODEL)
    st.setup_entities()
    with gzip.open(pdb / "5me2.cif.gz", "wt") as fh:
        fh.write(st.make_mmcif_document().as_string())
    return str(tmp_path / "emdb"), "file://" + str(tmp_path / "pdb")


def _run(capsys, *argv):
    code = cli.main(["emdb", *map(str, argv), "--quiet"])
    return code, capsys.readouterr().err.strip()


@pytest.mark.slow
def test_an_entry_from_a_mirror_is_graded_with_its_contour_resolution_and_model(
        tmp_path, capsys):
    emdb, pdb = _mirror(tmp_path)
    out = tmp_path / "out"
    code, err = _run(capsys, "EMD-3488", "--mirror", emdb, "--pdb-mirror", pdb,
                     "--cache", tmp_path / "cache", "--out", out, "--formats", "json",
                     "--levels", "A")
    assert code == 0, err
    rep = json.loads((out / "report.json").read_text())
    inp = rep["inputs"]
    assert inp["threshold"] == pytest.approx(0.07) and inp["resolution_A"] == 3.2
    assert inp["threshold_method"] == "the recommended contour of the EMDB entry"
    en = inp["entry"]
    assert en["emdb_id"] == "EMD-3488" and en["pdb_ids"] == ["5me2"]
    assert en["authors"] == ["Khoshouei M", "Danev R"] and en["deposited"] == "2016-06-10"
    kinds = [s["kind"] for s in en["sources"]]
    assert kinds == ["header", "map", "model"]
    assert all(len(s["sha256"]) == 64 and s["url"] for s in en["sources"])
    assert any("no half maps" in n for n in en["notes"])
    assert rep["levels"] == ["A"]
    items = {i["id"]: i for i in rep["items"]}
    assert items["A.a"]["metrics"]["cc_mask"] == pytest.approx(0.74, abs=0.01)
    # a second run reuses the cache (no download) and gives the same numbers
    code, err = _run(capsys, "3488", "--mirror", emdb, "--pdb-mirror", pdb, "--cache",
                     tmp_path / "cache", "--out", tmp_path / "out2", "--formats", "json",
                     "--levels", "A")
    assert code == 0, err
    rep2 = json.loads((tmp_path / "out2" / "report.json").read_text())
    assert {i["id"]: i["metrics"] for i in rep2["items"]} == \
        {i["id"]: i["metrics"] for i in rep["items"]}


def test_a_listed_half_map_the_archive_lacks_lowers_the_level_with_a_note(tmp_path):
    from cryovalid.emdb.entry import prepare
    from cryovalid.emdb.fetch import Mirror

    halves = ("<interpretation><half_map_list><half_map><file>emd_3488_half_map_1.map.gz"
              "</file></half_map><half_map><file>emd_3488_half_map_2.map.gz</file></half_map>"
              "</half_map_list></interpretation>")
    emdb, pdb = _mirror(tmp_path, halves)
    entry = prepare("EMD-3488", cache=str(tmp_path / "cache"), mirror=Mirror(emdb=emdb, pdb=pdb))
    assert entry.inputs.half_maps is None and entry.inputs.model
    assert any("half map" in n and "Level 1 is not graded" in n for n in entry.notes)


def test_an_entry_that_does_not_exist_is_one_line(tmp_path, capsys):
    emdb, pdb = _mirror(tmp_path)
    code, err = _run(capsys, "EMD-99999", "--mirror", emdb, "--pdb-mirror", pdb, "--cache",
                     tmp_path / "cache", "--out", tmp_path / "out")
    assert code == 2 and len(err.splitlines()) == 1 and "EMD-99999" in err, err
    assert "no such entry" in err
    code, err = _run(capsys, "not-an-id", "--mirror", emdb, "--out", tmp_path / "out")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert not os.path.exists(tmp_path / "out" / "report.json")


HALVES = ("<interpretation><half_map_list><half_map><file>emd_3488_half_map_1.map.gz</file>"
          "</half_map><half_map><file>emd_3488_half_map_2.map.gz</file></half_map>"
          "</half_map_list></interpretation>")


def _synthetic_halves(tmp_path, source=EXAMPLE_MAP):
    """The map ``source`` plus independent white noise (half its standard deviation) twice,
    gzipped into the mirror's other/ folder; returns their paths."""
    import numpy as np

    from cryovalid.io.maps import read_map, write_map

    m = read_map(source)
    other = tmp_path / "emdb" / "structures" / "EMD-3488" / "other"
    other.mkdir()
    rng = np.random.default_rng(7)
    paths = []
    for i in (1, 2):
        noisy = m.data + rng.normal(0, 0.5 * float(m.data.std()), m.shape).astype(np.float32)
        raw = tmp_path / f"half{i}.mrc"
        write_map(str(raw), noisy, m.voxel_size, m.origin)
        dst = other / f"emd_3488_half_map_{i}.map.gz"
        with open(raw, "rb") as src, gzip.open(dst, "wb") as fh:
            shutil.copyfileobj(src, fh)
        paths.append(str(dst))
    return paths


@pytest.fixture
def http_root(tmp_path):
    """A loopback HTTP server on tmp_path (stopped at the end): its base URL."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.slow
def test_an_entry_over_http_equals_the_report_from_the_same_local_files(tmp_path, http_root):
    """EMD-3488 (cropped to 72³ in Fourier space, to save time) with a v3 header, synthetic
    halves and 5ME2 as mmCIF, served over loopback HTTP: the entry's report (Level A, which
    needs the halves for A.b) has the numbers of the report made from the same files given
    locally, and a front page with the metadata."""
    from cryovalid import Inputs, Options, validate
    from cryovalid.emdb.entry import prepare
    from cryovalid.emdb.fetch import Mirror

    small, voxel = small_example(tmp_path)
    _mirror(tmp_path, HALVES, source=small, pixel=voxel)
    halves = _synthetic_halves(tmp_path, source=small)
    entry = prepare("EMD-3488", cache=str(tmp_path / "cache"), levels=("A",),
                    formats=("json",),
                    mirror=Mirror(emdb=f"{http_root}/emdb", pdb=f"{http_root}/pdb"))
    assert [s["kind"] for s in entry.metadata["sources"]] == ["header", "map", "half map",
                                                              "half map", "model"]
    assert all(s["url"].startswith("http://127.0.0.1:") for s in entry.metadata["sources"])
    remote = validate(entry.inputs, entry.options, store=str(tmp_path / "remote"))
    model = str(tmp_path / "pdb" / "data" / "structures" / "divided" / "mmCIF" / "me" /
                "5me2.cif.gz")
    local = validate(Inputs(str(tmp_path / "emdb" / "structures" / "EMD-3488" / "map" /
                                "emd_3488.map.gz"), half_maps=tuple(halves), model=model),
                     Options(threshold=0.07, resolution=3.2, levels=("A",), formats=("json",)),
                     store=str(tmp_path / "local"))
    numbers = {i["id"]: (i["status"], i["metrics"]) for i in local["items"]}
    assert numbers["A.b"][0] in ("ok", "warnings") and numbers["A.a"][0] == "ok"
    assert {i["id"]: (i["status"], i["metrics"]) for i in remote["items"]} == numbers
    assert remote["inputs"]["sha256"] == local["inputs"]["sha256"]
    from cryovalid.report.render import to_html

    html = to_html(remote, str(tmp_path / "remote"))  # the front page (no figures: json run)
    for text in ("Public data-based report", "EMD-3488", "5me2", "Human haemoglobin, Volta phase plate", "Khoshouei M",
                 "2016-06-10", "FSC 0.143 CUT-OFF"):
        assert text in html, text


@pytest.mark.slow
def test_an_old_entry_with_a_v19_header_is_graded_from_it(shared_real, tmp_path, capsys):
    """EMD-1997's real v1.9 header (under its old name, header/emd-1997.xml): the contour
    (1.0, author), the resolution (7 Å), the PDB ID and the dates come from it."""
    src = os.path.join(shared_real, "EMD-1997")
    root = tmp_path / "emdb" / "structures" / "EMD-1997"
    (root / "header").mkdir(parents=True)
    (root / "map").mkdir()
    shutil.copy(os.path.join(src, "header_1997.xml"), root / "header" / "emd-1997.xml")
    with open(os.path.join(src, "emd_1997.map"), "rb") as s, \
            gzip.open(root / "map" / "emd_1997.map.gz", "wb") as d:
        shutil.copyfileobj(s, d)
    out = tmp_path / "out"
    code, err = _run(capsys, "EMD-1997", "--mirror", tmp_path / "emdb", "--pdb-mirror",
                     tmp_path / "pdb", "--cache", tmp_path / "cache", "--out", out,
                     "--levels", "0", "--formats", "json")
    assert code == 0, err
    rep = json.loads((out / "report.json").read_text())
    en = rep["inputs"]["entry"]
    assert en["header_schema"] == "1.9" and en["pdb_ids"] == ["1oel"]
    assert (en["contour"], en["resolution_A"]) == (1.0, 7.0)
    assert rep["inputs"]["threshold"] == 1.0 and rep["inputs"]["resolution_A"] == 7.0
    assert en["sources"][0]["file"] == "emd-1997.xml"
    assert any("not fetched: Level A is not asked for" in n for n in en["notes"])
    assert rep["levels"] == ["0"]
