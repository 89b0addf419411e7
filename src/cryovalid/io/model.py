"""Reading an atomic model (PDB or mmCIF, optionally gzipped) into plain arrays.

The file is read with ``gemmi.read_structure``, which detects the format from the contents and
never converts it (mmCIF has no 99 999-atom limit; a PDB file beyond it has overflowing serial
numbers and is refused). The arrays describe the **first model** of the file, and of each atom
its first conformer (altloc blank or the first letter met in its residue, gemmi's
``remove_alternative_conformations``); the whole structure, every model kept, stays in
``Model.structure`` for the items that need it (A.c Multimodel).

Hydrogens are kept: the model map includes them, as cctbx's does (level-a-methods.md: without
them CC_mask on EMD-2566 + 3J6B would be 0.733 instead of cctbx's 0.699). Elements are the
neutral element whatever the formal charge (``O1-``): the electron form factors of
International Tables C 4.3.2.2 are tabulated for neutral atoms only, and the notes say so.

Coordinates stay in the file's world frame (Å); the box frame of a map is ``xyz - map.origin``
(:class:`cryovalid.io.maps.Map` places the map by its header's ORIGIN, NSTART and axis order).
"""
from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass, field

import numpy as np

from cryovalid.errors import InputError
from cryovalid.io.maps import check_regular_file, sha256_of

# A PDB-format file numbers its atoms in 5 columns: beyond this the serials overflow.
PDB_MAX_ATOMS = 99_999
# Atom names cctbx's map_model_cc counts as main chain (level-a-methods.md, A.a).
MAIN_CHAIN_NAMES = ("N", "CA", "C", "O", "CB")


@dataclass
class Model:
    """The first model of a coordinate file as arrays (one row per atom, first conformer).

    Attributes
    ----------
    path, name, sha256 : the file (absolute path, base name, hex digest of its bytes as given)
    structure : the gemmi.Structure as read (all models, all conformers)
    xyz : (n, 3) float64, world x, y, z in Å
    element : (n,) str, neutral element symbol, upper case ('C', 'N', 'FE', 'D', ...)
    b_iso : (n,) float32 Å²
    occupancy : (n,) float32
    is_hydrogen : (n,) bool, H and D
    atom_name : (n,) str
    residue_index : (n,) int, the row of each atom's residue in the residue table below
    chain, resseq, icode, resname : per residue (chain name, sequence number, insertion code
        ('' when none), residue name), in file order
    notes : plain sentences about what was read (charged atoms, unknown elements, models ...)
    """

    path: str
    name: str
    sha256: str
    structure: object
    xyz: np.ndarray
    element: np.ndarray
    b_iso: np.ndarray
    occupancy: np.ndarray
    is_hydrogen: np.ndarray
    atom_name: np.ndarray
    residue_index: np.ndarray
    chain: np.ndarray
    resseq: np.ndarray
    icode: np.ndarray
    resname: np.ndarray
    notes: list = field(default_factory=list)

    @property
    def chains(self) -> list:
        """Chain names in file order, each once."""
        return list(dict.fromkeys(self.chain.tolist()))

    @property
    def n_residues(self) -> int:
        return int(len(self.resseq))

    @property
    def n_atoms(self) -> int:
        return int(len(self.xyz))

    @property
    def b_range(self) -> tuple:
        """(min, max) B of the non-hydrogen atoms, Å²."""
        b = self.b_iso[~self.is_hydrogen]
        return float(b.min()), float(b.max())

    def is_main_chain(self) -> np.ndarray:
        """(n,) bool: atoms named N, CA, C, O or CB (cctbx map_model_cc's main chain)."""
        return np.isin(self.atom_name, MAIN_CHAIN_NAMES)


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _count_atoms(st) -> int:
    return sum(res.__len__() for model in st for ch in model for res in ch)


def _check_gzip(path: str) -> None:
    """Decompress the whole file once (to nowhere): gemmi reads a corrupt or truncated gzip
    file as an empty model, which would hide the real problem."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 22):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: corrupt gzip compression ({_first_line(exc)})") from None


def read_model(path: str) -> Model:
    """Read a PDB or mmCIF file (``.gz`` too) into a :class:`Model`.

    Raises
    ------
    InputError
        one line naming the file: missing, empty, special or unreadable file; corrupt gzip;
        not a PDB/mmCIF model; no atoms; only hydrogens; a PDB-format file with more than
        99 999 atoms.
    """
    import gemmi

    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a model file")
    check_regular_file(path)
    if path.lower().endswith(".gz"):
        _check_gzip(path)
    try:
        st = gemmi.read_structure(path)
    except MemoryError:
        raise InputError(f"{path}: too large to read into memory") from None
    except Exception as exc:  # noqa: BLE001 - gemmi raises RuntimeError/ValueError/OSError
        raise InputError(f"{path}: not a readable PDB or mmCIF model file "
                         f"({_first_line(exc)})") from None
    if len(st) == 0 or _count_atoms(st) == 0:
        raise InputError(f"{path}: no atoms found (not a PDB or mmCIF model file?)")
    notes = []
    n_first = sum(len(res) for ch in st[0] for res in ch)
    if st.input_format == gemmi.CoorFormat.Pdb and n_first > PDB_MAX_ATOMS:
        raise InputError(f"{path}: a PDB-format file with {n_first} atoms, more than the "
                         f"format's {PDB_MAX_ATOMS} (its atom serial numbers overflow); give "
                         f"the model as mmCIF")
    if len(st) > 1:
        notes.append(f"the file holds {len(st)} models; the first is used (except for the "
                     f"multimodel check)")

    first = gemmi.Structure()
    first.cell = st.cell
    first.spacegroup_hm = st.spacegroup_hm
    first.add_model(st[0])
    n_alt = sum(1 for ch in first[0] for res in ch for a in res if a.altloc != "\0")
    first.remove_alternative_conformations()

    xyz, element, b, occ, name, res_of_atom, charge = [], [], [], [], [], [], []
    r_chain, r_seq, r_icode, r_name = [], [], [], []
    for ch in first[0]:
        for res in ch:
            if len(res) == 0:
                continue
            ri = len(r_chain)
            r_chain.append(ch.name)
            r_seq.append(res.seqid.num)
            r_icode.append(res.seqid.icode.strip())
            r_name.append(res.name)
            for a in res:
                p = a.pos
                xyz.append((p.x, p.y, p.z))
                element.append(a.element.name.upper())
                b.append(a.b_iso)
                occ.append(a.occ)
                name.append(a.name)
                res_of_atom.append(ri)
                charge.append(a.charge)
    element = np.array(element, dtype=str)
    is_h = np.isin(element, ("H", "D"))
    if not np.any(~is_h):
        raise InputError(f"{path}: the first model holds only hydrogen atoms")
    charge = np.array(charge)
    if np.any(charge != 0):
        k = int(np.count_nonzero(charge != 0))
        notes.append(f"{k} atom{'s' if k != 1 else ''} with a formal charge (e.g. "
                     f"{element[charge != 0][0]}{abs(int(charge[charge != 0][0]))}"
                     f"{'-' if charge[charge != 0][0] < 0 else '+'}) use the neutral element's "
                     f"electron form factors")
    unknown = np.array([gemmi.Element(e).atomic_number == 0 or gemmi.Element(e).c4322 is None
                        for e in np.unique(element)])
    if np.any(unknown):
        bad = set(np.unique(element)[unknown].tolist())
        k = int(np.count_nonzero(np.isin(element, list(bad))))
        notes.append(f"{k} atom{'s' if k != 1 else ''} of element {', '.join(sorted(bad))} "
                     f"(no electron form factors) are left out of the model map")
    if n_alt:
        notes.append("atoms with alternative conformations: the first conformer of each is "
                     "used")
    return Model(
        path=os.path.abspath(path), name=os.path.basename(path), sha256=sha256_of(path),
        structure=st, xyz=np.array(xyz, dtype=np.float64).reshape(-1, 3), element=element,
        b_iso=np.array(b, dtype=np.float32), occupancy=np.array(occ, dtype=np.float32),
        is_hydrogen=is_h, atom_name=np.array(name, dtype=str),
        residue_index=np.array(res_of_atom, dtype=np.int64), chain=np.array(r_chain, dtype=str),
        resseq=np.array(r_seq, dtype=np.int64), icode=np.array(r_icode, dtype=str),
        resname=np.array(r_name, dtype=str), notes=notes)


def fraction_inside(model: Model, map_) -> float:
    """Fraction of the model's non-hydrogen atoms whose nearest voxel lies in the map's box
    (placement by the map's header: ORIGIN, NSTART, axis order)."""
    xyz = model.xyz[~model.is_hydrogen]
    idx = np.rint(map_.xyz_to_index(xyz))
    ok = np.all((idx >= 0) & (idx <= np.array(map_.shape) - 1), axis=1)
    return float(np.count_nonzero(ok)) / max(len(xyz), 1)
