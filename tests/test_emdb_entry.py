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

from simulate import EXAMPLE_MAP, EXAMPLE_MODEL

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
    <pixel_spacing><x>1.05</x><y>1.05</y><z>1.05</z></pixel_spacing>
    <contour_list><contour primary="true"><level>0.07</level><source>AUTHOR</source>
    </contour></contour_list>
  </map>
  {halves}
</emd>
"""


def _mirror(tmp_path, halves=""):
    emdb = tmp_path / "emdb" / "structures" / "EMD-3488"
    (emdb / "header").mkdir(parents=True)
    (emdb / "map").mkdir()
    (emdb / "header" / "emd-3488-v30.xml").write_text(HEADER.format(halves=halves))
    shutil.copy(EXAMPLE_MAP, emdb / "map" / "emd_3488.map.gz")
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
                     "--cache", tmp_path / "cache", "--out", out, "--formats", "json,html")
    assert code == 0, err
    rep = json.loads((out / "report.json").read_text())
    inp = rep["inputs"]
    assert inp["threshold"] == pytest.approx(0.07) and inp["resolution_A"] == 3.2
    assert inp["threshold_method"] == "the recommended contour of the EMDB entry"
    en = inp["entry"]
    assert en["emdb_id"] == "EMD-3488" and en["pdb_ids"] == ["5me2"]
    assert en["authors"] == ["Khoshouei M", "Danev R"] and en["deposition_date"] == "2016-06-10"
    kinds = [s["kind"] for s in en["sources"]]
    assert kinds == ["header", "map", "model"]
    assert all(len(s["sha256"]) == 64 and s["url"] for s in en["sources"])
    assert any("no half maps" in n for n in en["notes"])
    assert rep["levels"] == ["0", "A"]
    items = {i["id"]: i for i in rep["items"]}
    assert items["A.a"]["metrics"]["cc_mask"] == pytest.approx(0.74, abs=0.01)
    html = (out / "report.html").read_text()
    assert "Public data-based report" in html and "EMD-3488" in html
    # a second run reuses the cache (no download) and gives the same numbers
    code, err = _run(capsys, "3488", "--mirror", emdb, "--pdb-mirror", pdb, "--cache",
                     tmp_path / "cache", "--out", tmp_path / "out2", "--formats", "json")
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
