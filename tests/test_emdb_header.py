"""EMDB header XML reader (cryovalid.emdb.header): the real v1.9 header of EMD-1997, a v3
header written here after EMDB's v3.0 schema (emdb.xsd), missing fields, and non-headers."""
import gzip
import os

import pytest

from cryovalid.emdb import header as hdr
from cryovalid.emdb import normalise_emdb_id, read_header
from cryovalid.errors import InputError

# A v3.0 header in the layout of EMDB's emd-NNNN-v30.xml files (element names from emdb.xsd:
# admin/key_dates, admin/authors_list, crossreferences/pdb_list, structure_determination_list
# /structure_determination/singleparticle_processing/final_reconstruction, map/contour_list,
# map/pixel_spacing, interpretation/half_map_list). Values are made up for the test.
V3 = b"""<?xml version="1.0" encoding="UTF-8"?>
<emd emdb_id="EMD-5138" version="3.0.9.1">
  <admin>
    <current_status><code>REL</code></current_status>
    <sites><deposition>RCSB</deposition><last_processing>RCSB</last_processing></sites>
    <key_dates>
      <deposition>2009-09-14</deposition>
      <header_release>2009-10-01</header_release>
      <map_release>2010-01-12</map_release>
      <update>2020-03-11</update>
    </key_dates>
    <title>Test capsid at near-atomic resolution</title>
    <authors_list>
      <author>Zhang X</author>
      <author ORCID="0000-0002-1825-0097">Jin L</author>
      <author>Zhou ZH</author>
    </authors_list>
  </admin>
  <crossreferences>
    <citation_list><primary_citation><journal_citation published="true">
      <author order="1">Zhang X</author><title>A title</title>
    </journal_citation></primary_citation></citation_list>
    <pdb_list>
      <pdb_reference><pdb_id>3j03</pdb_id>
        <relationship><in_frame>FULLOVERLAP</in_frame></relationship></pdb_reference>
      <pdb_reference><pdb_id>3IYL</pdb_id></pdb_reference>
    </pdb_list>
  </crossreferences>
  <sample><name>capsid</name></sample>
  <structure_determination_list>
    <structure_determination structure_determination_id="1">
      <method>singleParticle</method>
      <aggregation_state>particle</aggregation_state>
      <singleparticle_processing processing_id="1">
        <final_reconstruction>
          <applied_symmetry><point_group>I</point_group></applied_symmetry>
          <resolution res_type="BY AUTHOR" units="\xc3\x85">3.88</resolution>
          <resolution_method>FSC 0.143 CUT-OFF</resolution_method>
          <number_images_used>10000</number_images_used>
        </final_reconstruction>
      </singleparticle_processing>
    </structure_determination>
  </structure_determination_list>
  <map format="CCP4" size_kbytes="32001">
    <file>emd_5138.map.gz</file>
    <symmetry><space_group>1</space_group></symmetry>
    <data_type>IMAGE STORED AS FLOATING POINT NUMBER (4 BYTES)</data_type>
    <dimensions><col>200</col><row>210</row><sec>220</sec></dimensions>
    <origin><col>0</col><row>0</row><sec>0</sec></origin>
    <spacing><x>200</x><y>210</y><z>220</z></spacing>
    <cell><a units="\xc3\x85">240.0</a><b units="\xc3\x85">252.0</b><c units="\xc3\x85">264.0</c>
      <alpha units="deg">90.0</alpha><beta units="deg">90.0</beta><gamma units="deg">90.0</gamma>
    </cell>
    <axis_order><fast>X</fast><medium>Y</medium><slow>Z</slow></axis_order>
    <statistics><minimum>-1.0</minimum><maximum>5.0</maximum><average>0.01</average>
      <std>0.2</std></statistics>
    <pixel_spacing><x units="\xc3\x85">1.2</x><y units="\xc3\x85">1.2</y><z units="\xc3\x85">1.2</z>
    </pixel_spacing>
    <contour_list>
      <contour primary="false"><level>0.5</level><source>EMDB</source></contour>
      <contour primary="true"><level>0.875</level><source>AUTHOR</source></contour>
    </contour_list>
    <label>::::EMDATABANK.org::::EMD-5138::::</label>
  </map>
  <interpretation>
    <half_map_list>
      <half_map format="CCP4" size_kbytes="32001"><file>emd_5138_half_map_1.map.gz</file>
        <pixel_spacing><x>1.2</x><y>1.2</y><z>1.2</z></pixel_spacing></half_map>
      <half_map format="CCP4" size_kbytes="32001"><file>emd_5138_half_map_2.map.gz</file>
      </half_map>
    </half_map_list>
  </interpretation>
</emd>
"""


def test_v3_header_fields():
    h = read_header(V3)
    assert h.schema == "3" and h.schema_version == "3.0.9.1"
    assert h.emdb_id == "EMD-5138"
    assert h.title == "Test capsid at near-atomic resolution"
    assert h.authors == ["Zhang X", "Jin L", "Zhou ZH"]      # not the citation's author list
    assert h.deposition_date == "2009-09-14"
    assert h.method == "singleParticle"
    assert h.resolution == 3.88 and h.resolution_method == "FSC 0.143 CUT-OFF"
    assert h.contour == 0.875 and h.contour_source == "author"   # the primary one, not first
    assert h.voxel_size == 1.2 and h.voxel_size_xyz == (1.2, 1.2, 1.2)
    assert h.box == (200, 210, 220)
    assert h.pdb_ids == ["3j03", "3iyl"]
    assert h.half_maps == ["emd_5138_half_map_1.map.gz", "emd_5138_half_map_2.map.gz"]
    assert h.map_file == "emd_5138.map.gz"


def test_v3_header_namespaced_and_gzipped_file(tmp_path):
    """Element names are matched without their namespace; a .xml.gz file reads the same."""
    ns = V3.replace(b'<emd emdb_id', b'<emd xmlns="http://pdbe.org/empiar" emdb_id')
    p = tmp_path / "emd-5138-v30.xml.gz"
    p.write_bytes(gzip.compress(ns))
    assert read_header(p) == read_header(V3)


def test_v3_contour_without_primary_takes_first():
    xml = V3.replace(b'primary="true"', b'primary="false"')
    assert read_header(xml).contour == 0.5


def test_v3_missing_fields_are_none():
    h = read_header(b'<emd emdb_id="EMD-1"><admin><title>t</title></admin><map/></emd>')
    assert h.emdb_id == "EMD-1" and h.title == "t"
    for name in ("resolution", "contour", "voxel_size", "voxel_size_xyz", "box", "method",
                 "deposition_date", "map_file"):
        assert getattr(h, name) is None, name
    assert h.authors == [] and h.pdb_ids == [] and h.half_maps == []
    h = read_header(b"<emd/>")
    assert h.emdb_id is None and h.title is None


def test_v3_unparseable_numbers_are_none():
    xml = V3.replace(b">3.88<", b">n/a<").replace(b"<level>0.875</level>", b"<level/>")
    h = read_header(xml)
    assert h.resolution is None and h.contour is None


def test_anisotropic_voxel():
    xml = V3.replace(b'<y units="\xc3\x85">1.2</y>', b'<y units="\xc3\x85">1.3</y>')
    h = read_header(xml)
    assert h.voxel_size is None and h.voxel_size_xyz == (1.2, 1.3, 1.2)


def test_v19_header_emd1997(shared_real):
    """The real v1.9 header of EMD-1997 (values checked against the file and SOURCE.md:
    7 Å FSC 0.5, author contour 1.0, 2.02 Å, 100³, fitting lists 1OEL)."""
    h = read_header(os.path.join(shared_real, "EMD-1997", "header_1997.xml"))
    assert h.schema == "1.9" and h.schema_version == "1.9.6"
    assert h.emdb_id == "EMD-1997"
    assert h.title == "ATP-triggered molecular mechanics of the chaperonin GroEL"
    assert h.authors[0] == "Clare DK" and h.authors[-1] == "Saibil HR" and len(h.authors) == 8
    assert h.deposition_date == "2011-12-01"
    assert h.method == "singleParticle"
    assert h.resolution == 7.0 and h.resolution_method == "FSC 0.5"
    assert h.contour == 1.0 and h.contour_source == "author"
    assert h.voxel_size == 2.02
    assert h.box == (100, 100, 100)
    assert h.pdb_ids == ["1oel"]
    assert h.half_maps == []
    assert h.map_file == "emd_1997.map.gz"


def test_v19_fitted_list_and_missing_fields():
    xml = (b'<emdEntry accessCode="1234" version="1.9.6"><deposition>'
           b'<fittedPDBEntryIdList><fittedPDBEntryId>2ABC</fittedPDBEntryId>'
           b'<fittedPDBEntryId>2abc</fittedPDBEntryId></fittedPDBEntryIdList>'
           b'</deposition></emdEntry>')
    h = read_header(xml)
    assert h.emdb_id == "EMD-1234" and h.pdb_ids == ["2abc"]
    assert h.resolution is None and h.contour is None and h.authors == [] and h.box is None


@pytest.mark.parametrize("content, words", [
    (b"\x00\x01 not xml at all", "not XML"),
    (b"", "not XML"),
    (b"<html><body>404</body></html>", "root element <html>"),
    (b"\x1f\x8b\x08garbage", "corrupt gzip"),
])
def test_not_a_header_is_one_line_input_error(tmp_path, content, words):
    p = tmp_path / "thing.xml"
    p.write_bytes(content)
    with pytest.raises(InputError) as e:
        read_header(p)
    msg = str(e.value)
    assert "\n" not in msg and words in msg and str(p) in msg and "not an EMDB header" in msg


def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_header(tmp_path / "absent.xml")


def test_normalise_emdb_id():
    assert normalise_emdb_id("EMD-5138") == normalise_emdb_id("emd_5138") == "EMD-5138"
    assert normalise_emdb_id(5138) == normalise_emdb_id(" 5138 ") == "EMD-5138"
    with pytest.raises(InputError):
        normalise_emdb_id("PDB-5138")
    with pytest.raises(InputError):
        normalise_emdb_id("EMD-51")


def test_date_forms():
    assert hdr._date("2011-12-01T00:00:00") == "2011-12-01"
    assert hdr._date("01-DEC-2011") == "2011-12-01"
    assert hdr._date("soon") is None
