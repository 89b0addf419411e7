"""Read an EMDB entry's header XML (the current v3 schema and the old v1.9 schema).

The header is the entry's metadata file, ``structures/EMD-N/header/emd-N-v30.xml`` in the EMDB
archive (schema: EMDB ``emdb.xsd`` v3.0; older entries and older tools use the v1.9
``emdEntry`` schema). :func:`read_header` returns an :class:`EntryHeader` with the fields a
report needs. Parsing is namespace-agnostic (element local names only); a field the header
lacks is ``None`` (or an empty list), never an error. A file that is not XML, or whose root is
neither ``<emd>`` (v3) nor ``<emdEntry>`` (v1.9), raises a one-line
:class:`cryovalid.errors.InputError`.

Units: resolution, voxel size in Å; the contour level in the map's own density units.

Fields and where they come from (v3 path / v1.9 path, relative to the root):

* ``emdb_id``: ``@emdb_id`` / ``@accessCode`` (normalised to ``EMD-N``)
* ``title``: ``admin/title`` / ``deposition/title``
* ``authors``: ``admin/authors_list/author`` / ``deposition/authors`` (comma-separated)
* ``deposition_date``: ``admin/key_dates/deposition`` / ``deposition/depositionDate`` (ISO)
* ``method``: ``structure_determination_list/structure_determination/method`` /
  ``processing/method``
* ``resolution``: ``structure_determination_list/…/final_reconstruction/resolution`` /
  ``processing/reconstruction/resolutionByAuthor``
* ``contour``: ``map/contour_list/contour[@primary=true]/level`` (else the first contour) /
  ``map/contourLevel``
* ``voxel_size``: ``map/pixel_spacing/{x,y,z}`` / ``map/pixelSpacing/pixel{X,Y,Z}``; a float
  when isotropic, ``voxel_size_xyz`` always the triple
* ``box``: ``map/dimensions/{col,row,sec}`` / ``map/dimensions/num{Columns,Rows,Sections}``
* ``pdb_ids``: ``crossreferences/pdb_list/pdb_reference/pdb_id`` /
  ``deposition/fittedPDBEntryIdList/fittedPDBEntryId`` and
  ``experiment/fitting/pdbEntryIdList/pdbEntryId`` (lower case, unique, in header order)
* ``half_maps``: ``interpretation/half_map_list/half_map/file`` / (none in v1.9)
* ``map_file``: ``map/file``
"""
from __future__ import annotations

import gzip
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import List, Optional, Tuple, Union

from cryovalid.errors import InputError

__all__ = ["EntryHeader", "read_header", "normalise_emdb_id"]


@dataclass
class EntryHeader:
    """An EMDB entry's metadata, as read from its header XML. Missing fields are None/empty."""

    emdb_id: Optional[str] = None            # "EMD-1997"
    schema: Optional[str] = None             # "3" or "1.9" (family), see schema_version
    schema_version: Optional[str] = None     # the root's version attribute, e.g. "1.9.6"
    title: Optional[str] = None
    authors: List[str] = field(default_factory=list)
    deposition_date: Optional[str] = None    # ISO 8601 "YYYY-MM-DD"
    method: Optional[str] = None             # e.g. "singleParticle"
    resolution: Optional[float] = None       # reported resolution, Å
    resolution_method: Optional[str] = None  # e.g. "FSC 0.143 CUT-OFF"
    contour: Optional[float] = None          # recommended (primary) contour level, map units
    contour_source: Optional[str] = None     # e.g. "author"
    voxel_size: Optional[float] = None       # Å, when isotropic (else None)
    voxel_size_xyz: Optional[Tuple[float, float, float]] = None  # Å (x, y, z)
    box: Optional[Tuple[int, int, int]] = None  # (columns, rows, sections)
    pdb_ids: List[str] = field(default_factory=list)   # fitted models, lower case
    half_maps: List[str] = field(default_factory=list)  # half-map file names
    map_file: Optional[str] = None           # e.g. "emd_1997.map.gz"


def normalise_emdb_id(value: Union[str, int]) -> str:
    """``"EMD-5138"``, ``"emd_5138"``, ``"5138"`` or ``5138`` → ``"EMD-5138"``.

    Raises InputError (one line) for anything that is not an EMDB accession code."""
    m = re.fullmatch(r"\s*(?:emd[-_]?)?(\d{4,})\s*", str(value), flags=re.IGNORECASE)
    if not m:
        raise InputError(f"{value!r} is not an EMDB ID (expected e.g. EMD-5138)")
    return f"EMD-{m.group(1)}"


# --------------------------------------------------------------------------- helpers

def _local(tag) -> str:
    """Local name of an element tag, without its {namespace}."""
    if not isinstance(tag, str):      # comments / processing instructions
        return ""
    return tag.rsplit("}", 1)[-1]


def _child(el, name):
    if el is None:
        return None
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _children(el, name):
    if el is None:
        return []
    return [c for c in el if _local(c.tag) == name]


def _path(el, path: str):
    """First element at a '/'-separated path of local names (None when absent)."""
    for name in path.split("/"):
        el = _child(el, name)
        if el is None:
            return None
    return el


def _all(el, path: str):
    """All elements at a '/'-separated path of local names (every branch followed)."""
    nodes = [el] if el is not None else []
    for name in path.split("/"):
        nodes = [c for n in nodes for c in _children(n, name)]
    return nodes


def _iter(el, name):
    """All descendants with local name ``name``, document order."""
    if el is None:
        return []
    return [d for d in el.iter() if _local(d.tag) == name]


def _text(el) -> Optional[str]:
    if el is None or el.text is None:
        return None
    t = el.text.strip()
    return t or None


def _float(el) -> Optional[float]:
    t = _text(el)
    if t is None:
        return None
    try:
        return float(t)
    except ValueError:
        return None


def _int(el) -> Optional[int]:
    f = _float(el)
    return int(f) if f is not None and float(f).is_integer() else None


def _date(t: Optional[str]) -> Optional[str]:
    """ISO date 'YYYY-MM-DD' from '2011-12-01', '2011-12-01T00:00:00' or '01-DEC-2011'."""
    if not t:
        return None
    m = re.match(r"(\d{4})-(\d{2})-(\d{2})", t)
    if m:
        return "-".join(m.groups())
    m = re.fullmatch(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})", t)
    if m:
        months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
                  "NOV", "DEC"]
        mon = m.group(2).upper()
        if mon in months:
            return f"{m.group(3)}-{months.index(mon) + 1:02d}-{int(m.group(1)):02d}"
    return None


def _triple(vals) -> Optional[tuple]:
    return tuple(vals) if all(v is not None for v in vals) else None


def _isotropic(xyz) -> Optional[float]:
    if xyz is None:
        return None
    if max(xyz) - min(xyz) <= 1e-6 * max(abs(max(xyz)), 1.0):
        return float(xyz[0])
    return None


def _pdb_ids(elements) -> List[str]:
    out: List[str] = []
    for el in elements:
        t = _text(el)
        if t and re.fullmatch(r"[0-9][A-Za-z0-9]{3}", t) and t.lower() not in out:
            out.append(t.lower())
    return out


def _load_root(source, name: str):
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        try:
            with open(source, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            raise InputError(f"{name}: no such file") from None
        except OSError as e:
            raise InputError(f"{name}: cannot read ({e.strerror or e})") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            raise InputError(f"{name}: is not an EMDB header (corrupt gzip)") from None
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise InputError(f"{name}: is not an EMDB header (not XML: {e})") from None
    return root


# --------------------------------------------------------------------------- readers

def _entry_id(value):
    """The root's entry ID as "EMD-N" (as written when it is not one; None when absent)."""
    if not value:
        return None
    try:
        return normalise_emdb_id(value)
    except InputError:
        return value


def _read_v3(root) -> EntryHeader:
    h = EntryHeader(schema="3", schema_version=root.get("version"))
    h.emdb_id = _entry_id(root.get("emdb_id"))
    admin = _child(root, "admin")
    h.title = _text(_child(admin, "title"))
    h.authors = [a for a in (_text(e) for e in _all(admin, "authors_list/author")) if a]
    h.deposition_date = _date(_text(_path(admin, "key_dates/deposition")))

    sd = _path(root, "structure_determination_list/structure_determination")
    h.method = _text(_child(sd, "method"))
    # final_reconstruction sits under the method's own processing element
    # (singleparticle_processing, helical_processing, subtomogram_averaging_processing, …)
    for fr in _iter(_child(root, "structure_determination_list"), "final_reconstruction"):
        res = _float(_child(fr, "resolution"))
        if res is not None:
            h.resolution = res
            h.resolution_method = _text(_child(fr, "resolution_method"))
            break

    m = _child(root, "map")
    h.map_file = _text(_child(m, "file"))
    contours = _all(m, "contour_list/contour")
    primary = [c for c in contours if (c.get("primary") or "").strip().lower() in ("true", "1")]
    chosen = (primary or contours or [None])[0]
    if chosen is not None:
        h.contour = _float(_child(chosen, "level"))
        src = _text(_child(chosen, "source"))
        h.contour_source = src.lower() if src else None
    ps = _child(m, "pixel_spacing")
    h.voxel_size_xyz = _triple([_float(_child(ps, a)) for a in ("x", "y", "z")])
    h.voxel_size = _isotropic(h.voxel_size_xyz)
    if h.voxel_size is None and h.voxel_size_xyz is None:
        h.voxel_size = _float(_child(ps, "x"))
    dims = _child(m, "dimensions")
    h.box = _triple([_int(_child(dims, a)) for a in ("col", "row", "sec")])

    h.pdb_ids = _pdb_ids(_all(root, "crossreferences/pdb_list/pdb_reference/pdb_id"))
    h.half_maps = [f for f in (_text(e) for e in
                               _all(root, "interpretation/half_map_list/half_map/file")) if f]
    return h


def _read_v19(root) -> EntryHeader:
    h = EntryHeader(schema="1.9", schema_version=root.get("version"))
    h.emdb_id = _entry_id(root.get("accessCode"))
    dep = _child(root, "deposition")
    h.title = _text(_child(dep, "title"))
    authors = _text(_child(dep, "authors"))
    h.authors = [a.strip() for a in authors.split(",") if a.strip()] if authors else []
    h.deposition_date = _date(_text(_child(dep, "depositionDate")))

    proc = _child(root, "processing")
    h.method = _text(_child(proc, "method"))
    rec = _child(proc, "reconstruction")
    h.resolution = _float(_child(rec, "resolutionByAuthor"))
    h.resolution_method = _text(_child(rec, "resolutionMethod"))

    m = _child(root, "map")
    h.map_file = _text(_child(m, "file"))
    cl = _child(m, "contourLevel")
    h.contour = _float(cl)
    if cl is not None and cl.get("source"):
        h.contour_source = cl.get("source").strip().lower()
    ps = _child(m, "pixelSpacing")
    h.voxel_size_xyz = _triple([_float(_child(ps, a)) for a in ("pixelX", "pixelY", "pixelZ")])
    h.voxel_size = _isotropic(h.voxel_size_xyz)
    if h.voxel_size is None and h.voxel_size_xyz is None:
        h.voxel_size = _float(_child(ps, "pixelX"))
    dims = _child(m, "dimensions")
    h.box = _triple([_int(_child(dims, a)) for a in ("numColumns", "numRows", "numSections")])

    h.pdb_ids = _pdb_ids(_all(dep, "fittedPDBEntryIdList/fittedPDBEntryId")
                         + _all(root, "experiment/fitting/pdbEntryIdList/pdbEntryId"))
    return h


def read_header(path_or_bytes: Union[str, os.PathLike, bytes]) -> EntryHeader:
    """Read an EMDB header XML (v3 ``<emd>`` or v1.9 ``<emdEntry>``; plain or gzipped).

    ``path_or_bytes``: a file path or the file's bytes. Returns an :class:`EntryHeader`
    (fields absent from the header are None / empty). Raises
    :class:`~cryovalid.errors.InputError` with a one-line message when the input is not XML or
    not an EMDB header."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        name = "header"
    else:
        name = os.fspath(path_or_bytes)
    root = _load_root(path_or_bytes, name)
    tag = _local(root.tag)
    if tag == "emd":
        return _read_v3(root)
    if tag == "emdEntry":
        return _read_v19(root)
    raise InputError(f"{name}: is not an EMDB header (root element <{tag}>, expected <emd> "
                     "or <emdEntry>)")
