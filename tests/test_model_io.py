"""Reading atomic models (cryovalid.io.model): arrays, conventions and one-line errors."""
import gzip
import os

import gemmi
import numpy as np
import pytest

import simulate
from cryovalid.errors import InputError
from cryovalid.io.maps import Map, sha256_of
from cryovalid.io.model import PDB_MAX_ATOMS, fraction_inside, read_model
from cryovalid.kernels.modelmap import model_map


def _pdb_line(serial, name, resname, chain, resseq, x, y, z, occ=1.0, b=20.0, element="C",
              charge="", altloc=" ", record="ATOM"):
    return (f"{record:<6}{serial % 100000:>5} {name:<4}{altloc}{resname:>3} {chain}{resseq:>4}    "
            f"{x:8.3f}{y:8.3f}{z:8.3f}{occ:6.2f}{b:6.2f}          {element:>2}{charge:<2}\n")


def _write(path, lines):
    path.write_text("".join(lines) + "END\n")
    return str(path)


def test_reads_the_example_model():
    m = read_model(simulate.EXAMPLE_MODEL)
    assert (m.n_atoms, m.n_residues, m.chains) == (4468, 570, ["A", "B", "C", "D"])
    assert m.name == "5me2.pdb.gz" and m.sha256 == sha256_of(simulate.EXAMPLE_MODEL)
    assert m.xyz.shape == (4468, 3) and m.xyz.dtype == np.float64
    assert m.b_iso.dtype == np.float32 and m.occupancy.dtype == np.float32
    assert set(m.element) == {"C", "N", "O", "S", "FE"} and not m.is_hydrogen.any()
    assert m.b_range == pytest.approx((23.13, 43.13), abs=1e-3)
    # the same coordinates as gemmi and the test simulator read (no water in this file)
    xyz, _ = simulate.load_atoms()
    assert np.allclose(m.xyz, xyz)
    # residue table and atom -> residue map
    assert len(m.chain) == len(m.resseq) == len(m.icode) == len(m.resname) == 570
    assert m.residue_index.min() == 0 and m.residue_index.max() == 569
    assert np.all(np.diff(m.residue_index) >= 0)
    assert (m.resname == "HEM").sum() == 4
    assert list(m.chain[m.residue_index[:2]]) == ["A", "A"]
    mc = m.is_main_chain()
    assert mc.sum() == 2790 and set(m.atom_name[mc]) == {"N", "CA", "C", "O", "CB"}


def test_mmcif_gives_the_same_arrays(tmp_path):
    st = gemmi.read_structure(simulate.EXAMPLE_MODEL)
    st.setup_entities()
    path = tmp_path / "m.cif"
    st.make_mmcif_document().write_file(str(path))
    a, b = read_model(simulate.EXAMPLE_MODEL), read_model(str(path))
    for f in ("xyz", "element", "b_iso", "occupancy", "atom_name", "residue_index", "chain",
              "resseq", "resname"):
        assert np.array_equal(getattr(a, f), getattr(b, f)) or np.allclose(getattr(a, f),
                                                                            getattr(b, f)), f
    gz = tmp_path / "m.cif.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert np.allclose(read_model(str(gz)).xyz, a.xyz)


def test_first_model_first_conformer_hydrogens_and_charges(tmp_path):
    lines = ["MODEL        1\n",
             _pdb_line(1, "N", "SER", "A", 1, 0, 0, 0, element="N"),
             _pdb_line(2, "CA", "SER", "A", 1, 1.4, 0, 0),
             _pdb_line(3, "OG", "SER", "A", 1, 2.0, 1.0, 0, occ=0.6, element="O", altloc="A"),
             _pdb_line(4, "OG", "SER", "A", 1, 2.0, -1.0, 0, occ=0.4, element="O", altloc="B"),
             _pdb_line(5, "H", "SER", "A", 1, -0.5, 0.8, 0, element="H"),
             _pdb_line(6, "D2", "SER", "A", 1, -0.5, -0.8, 0, element="D"),
             _pdb_line(7, "O1", "ACT", "B", 2, 5, 5, 5, element="O", charge="1-",
                       record="HETATM"),
             _pdb_line(8, "ZN", "ZN", "C", 3, 8, 8, 8, element="ZN", charge="2+",
                       record="HETATM"),
             "ENDMDL\n", "MODEL        2\n",
             _pdb_line(1, "N", "SER", "A", 1, 10, 0, 0, element="N"),
             "ENDMDL\n"]
    m = read_model(_write(tmp_path / "alt.pdb", lines))
    assert len(m.structure) == 2  # every model kept in the structure
    assert m.n_atoms == 7 and m.xyz[0, 0] == 0.0  # first model only
    og = m.atom_name == "OG"
    assert og.sum() == 1 and m.xyz[og][0, 1] == pytest.approx(1.0)  # conformer A
    assert list(m.is_hydrogen) == [False, False, False, True, True, False, False]
    assert list(m.element) == ["N", "C", "O", "H", "D", "O", "ZN"]
    assert m.chains == ["A", "B", "C"] and m.n_residues == 3
    text = " ".join(m.notes)
    assert "2 models" in text and "first conformer" in text
    assert "2 atoms with a formal charge" in text and "neutral" in text
    # the charged atoms get the neutral element's form factors: the model map is finite
    mm = model_map(m.xyz + 5, m.element, m.b_iso, m.occupancy, (24, 24, 24), 1.0, 3.0)
    assert np.isfinite(mm).all() and mm.max() > 0


def test_unknown_element_is_noted_not_fatal(tmp_path):
    lines = [_pdb_line(1, "CA", "ALA", "A", 1, 0, 0, 0),
             _pdb_line(2, "XX", "UNL", "A", 2, 3, 0, 0, element="X", record="HETATM")]
    m = read_model(_write(tmp_path / "x.pdb", lines))
    assert m.n_atoms == 2
    assert any("no electron form factors" in n for n in m.notes)


def test_fraction_inside():
    m = read_model(simulate.EXAMPLE_MODEL)
    shape, origin = simulate.box_around(m.xyz, 1.0, padding=5.0)
    mp = Map(data=np.zeros(shape, np.float32), voxel_size=1.0, origin=origin)
    assert fraction_inside(m, mp) == 1.0
    far = Map(data=mp.data, voxel_size=1.0, origin=tuple(np.array(origin) + 1000.0))
    assert fraction_inside(m, far) == 0.0
    half = Map(data=mp.data, voxel_size=1.0,
               origin=(origin[0] + (m.xyz[:, 0].max() - m.xyz[:, 0].min()) / 2 + 5.0,
                       origin[1], origin[2]))
    assert 0.3 < fraction_inside(m, half) < 0.7


def _one_line(exc, path):
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    return msg


@pytest.mark.parametrize("kind, expect", [
    ("missing", "no such file"), ("directory", "is a directory, not a model file"),
    ("empty", "the file is empty"), ("text", "no atoms"), ("binary", ""),
    ("badgz", "corrupt gzip"), ("truncgz", "corrupt gzip"), ("only_h", "only hydrogen")])
def test_bad_files_give_one_line_errors(tmp_path, kind, expect):
    p = tmp_path / ("m.pdb.gz" if kind.endswith("gz") else "m.pdb")
    if kind == "directory":
        p.mkdir()
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("this is not\na coordinate file\n")
    elif kind == "binary":
        p.write_bytes(os.urandom(4096))
    elif kind == "badgz":
        p.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(200))
    elif kind == "truncgz":
        with open(simulate.EXAMPLE_MODEL, "rb") as f:  # a gzipped PDB, cut short
            p.write_bytes(f.read()[:5000])
    elif kind == "only_h":
        _write(p, [_pdb_line(1, "H1", "HOH", "A", 1, 0, 0, 0, element="H"),
                   _pdb_line(2, "H2", "HOH", "A", 1, 1, 0, 0, element="H")])
    with pytest.raises(InputError) as exc:
        read_model(str(p))
    assert expect in _one_line(exc, p)


def test_a_real_map_given_as_model_is_refused():
    path = simulate.EXAMPLE_MAP
    with pytest.raises(InputError) as exc:
        read_model(path)
    _one_line(exc, path)


def test_pdb_format_beyond_99999_atoms_asks_for_mmcif(tmp_path):
    n = PDB_MAX_ATOMS + 1
    lines = [_pdb_line(i + 1, "CA", "ALA", chr(65 + (i // 9999) % 26), i % 9999 + 1,
                       (i % 100) * 1.0, (i // 100 % 100) * 1.0, (i // 10000) * 1.0)
             for i in range(n)]
    p = _write(tmp_path / "big.pdb", lines)
    with pytest.raises(InputError) as exc:
        read_model(p)
    msg = _one_line(exc, p)
    assert "mmCIF" in msg and str(n) in msg
