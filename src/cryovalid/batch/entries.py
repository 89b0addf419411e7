"""What a batch grades: the entries named on the command line.

``cryovalid batch`` takes any mix of:

* a text file (any name but ``*.csv``): one entry per line, an EMDB ID (``EMD-5138`` or
  ``5138``) or the path of a map file (relative to the text file's folder); ``#`` starts a
  comment;
* a CSV file (``*.csv``) with a header row: a ``map`` or an ``emdb_id`` column (one per row),
  and optionally ``name``, ``half_map_1``, ``half_map_2``, ``model``, ``threshold``,
  ``resolution``, ``voxel_size``, ``levels`` (e.g. ``0,1``), ``classes``, ``particles``,
  ``angles_b``, ``micrographs`` (a glob pattern, e.g. ``mics/*.mrc``), ``symmetry``,
  ``crosslinks``, ``saxs`` and ``workflow``; paths relative to the CSV's folder; an empty cell
  means "not given";
* a folder: every map file in it (``.mrc``, ``.map``, ``.ccp4``, optionally ``.gz``; not
  recursive; image stacks, .mrcs, are not maps), each with an automatic threshold.

Each entry gets a name (the EMDB ID, the map's file name without its suffixes, or the CSV's
``name``) that is also the folder of its report under ``--out``; two entries with one name are
refused. Everything is checked here, before any work, with one line naming the file, its line
and the problem.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from typing import Optional

from cryovalid.errors import InputError

MAP_SUFFIXES = (".mrc", ".map", ".ccp4")  # .mrcs are image stacks (classes, particles)
CSV_COLUMNS = ("name", "map", "emdb_id", "half_map_1", "half_map_2", "model", "threshold",
               "resolution", "voxel_size", "levels", "classes", "particles", "angles_b",
               "micrographs", "symmetry", "crosslinks", "saxs", "workflow")
# optional inputs, by path (the names of api.Inputs' fields)
OTHER_FILES = ("classes", "particles", "angles_b", "crosslinks", "saxs", "workflow")
_EMDB = re.compile(r"^(?:EMD[-_]?)?(\d{4,6})$", re.IGNORECASE)


@dataclass(frozen=True)
class BatchEntry:
    """One report of a batch: an EMDB entry (``emdb_id``) or local files (``map`` …)."""

    name: str  # the report's folder under --out
    emdb_id: Optional[str] = None
    map: Optional[str] = None
    half_maps: Optional[tuple] = None
    model: Optional[str] = None
    threshold: Optional[float] = None
    resolution: Optional[float] = None
    voxel_size: Optional[float] = None
    levels: Optional[tuple] = None
    symmetry: Optional[str] = None
    others: tuple = ()  # ((input name, path), …) of the OTHER_FILES given
    where: str = field(default="", compare=False)  # "FILE:LINE", for messages

    @property
    def source(self) -> str:
        return self.emdb_id or self.map


def _map_stem(path: str) -> str:
    base = os.path.basename(path)
    if base.lower().endswith(".gz"):
        base = base[:-3]
    stem, ext = os.path.splitext(base)
    return stem if ext.lower() in MAP_SUFFIXES else base


def safe_name(text: str) -> str:
    """A folder name from an entry's name: letters, digits, '.', '_' and '-' only."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip()).strip("._") or "entry"
    return name[:120]


def _emdb_id(text: str) -> Optional[str]:
    m = _EMDB.match(text.strip())
    return f"EMD-{m.group(1)}" if m else None


def _is_map(path: str) -> bool:
    low = path.lower()
    if low.endswith(".gz"):
        low = low[:-3]
    return low.endswith(MAP_SUFFIXES)


def _number(text: str, column: str, where: str, positive: bool) -> Optional[float]:
    if text is None or not text.strip():
        return None
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"{where}: {column} must be a number, got {text!r}") from None
    if v != v or v in (float("inf"), float("-inf")) or (positive and v <= 0):
        raise InputError(f"{where}: {column} must be {'positive and ' if positive else ''}"
                         f"finite, got {text}")
    return v


def _symmetry(text: Optional[str], where: str) -> Optional[str]:
    from cryovalid.api import check_symmetry

    if not text:
        return None
    try:
        return check_symmetry(text)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def _path(text: str, folder: str, column: str, where: str) -> Optional[str]:
    if text is None or not text.strip():
        return None
    p = os.path.join(folder, text.strip())
    if not os.path.isfile(p):
        raise InputError(f"{where}: {column} {text.strip()!r}: no such file ({p})")
    return p


def _pattern(text: str, folder: str, column: str, where: str) -> Optional[str]:
    """A glob pattern relative to ``folder`` that matches at least one file."""
    import glob

    if text is None or not text.strip():
        return None
    p = os.path.join(folder, text.strip())
    if not any(os.path.isfile(f) for f in glob.glob(p)):
        raise InputError(f"{where}: {column} {text.strip()!r}: no file matches ({p})")
    return p


def _from_text(path: str) -> list:
    folder = os.path.dirname(os.path.abspath(path))
    out = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            where = f"{path}:{i}"
            eid = _emdb_id(text)
            if eid:
                out.append(BatchEntry(eid, emdb_id=eid, where=where))
            else:
                p = _path(text, folder, "map", where)
                out.append(BatchEntry(safe_name(_map_stem(p)), map=p, where=where))
    return out


def _from_csv(path: str) -> list:
    folder = os.path.dirname(os.path.abspath(path))
    out = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        unknown = [c for c in cols if c not in CSV_COLUMNS]
        if unknown:
            raise InputError(f"{path}: unknown column(s) {', '.join(unknown)}; the columns are "
                             f"{', '.join(CSV_COLUMNS)}")
        if "map" not in cols and "emdb_id" not in cols:
            raise InputError(f"{path}: needs a 'map' or an 'emdb_id' column")
        for i, raw in enumerate(reader, 2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            where = f"{path}:{i}"
            if not any(row.values()):
                continue
            eid_text, map_text = row.get("emdb_id", ""), row.get("map", "")
            if bool(eid_text) == bool(map_text):
                raise InputError(f"{where}: give either a map or an emdb_id, not "
                                 f"{'both' if eid_text else 'neither'}")
            h1 = _path(row.get("half_map_1"), folder, "half_map_1", where)
            h2 = _path(row.get("half_map_2"), folder, "half_map_2", where)
            if bool(h1) != bool(h2):
                raise InputError(f"{where}: give both half maps or neither")
            levels = tuple(v for v in re.split(r"[,\s;]+", row.get("levels", "")) if v) or None
            others = tuple((k, _path(row.get(k), folder, k, where)) for k in OTHER_FILES
                           if row.get(k))
            if row.get("micrographs"):
                others += (("micrographs", _pattern(row["micrographs"], folder, "micrographs",
                                                    where)),)
            common = dict(
                threshold=_number(row.get("threshold"), "threshold", where, positive=False),
                resolution=_number(row.get("resolution"), "resolution", where, positive=True),
                voxel_size=_number(row.get("voxel_size"), "voxel_size", where, positive=True),
                levels=levels, symmetry=_symmetry(row.get("symmetry"), where), others=others,
                where=where)
            if eid_text:
                eid = _emdb_id(eid_text)
                if eid is None:
                    raise InputError(f"{where}: {eid_text!r} is not an EMDB ID (EMD-N)")
                if h1 or row.get("model"):
                    raise InputError(f"{where}: an EMDB entry's half maps and model come from "
                                     f"the archive; leave half_map_1/2 and model empty")
                out.append(BatchEntry(safe_name(row.get("name") or eid), emdb_id=eid,
                                      **common))
            else:
                p = _path(map_text, folder, "map", where)
                out.append(BatchEntry(
                    safe_name(row.get("name") or _map_stem(p)), map=p,
                    half_maps=(h1, h2) if h1 else None,
                    model=_path(row.get("model"), folder, "model", where), **common))
    return out


def _from_folder(path: str) -> list:
    maps = sorted(os.path.join(path, n) for n in os.listdir(path)
                  if _is_map(n) and os.path.isfile(os.path.join(path, n)))
    return [BatchEntry(safe_name(_map_stem(p)), map=p, where=p) for p in maps]


def read_entries(sources) -> list:
    """Every :class:`BatchEntry` named by ``sources`` (text files, CSV files, folders), in
    order; raises InputError (one line) for a missing source, a bad line or two entries that
    would share a report folder."""
    entries = []
    for src in sources:
        src = os.fspath(src)
        try:
            if os.path.isdir(src):
                entries += _from_folder(src)
            elif not os.path.isfile(src):
                raise InputError(f"{src}: no such file or folder")
            elif src.lower().endswith(".csv"):
                entries += _from_csv(src)
            else:
                entries += _from_text(src)
        except UnicodeDecodeError:
            raise InputError(f"{src}: not a text file (a list of EMDB IDs or map paths, or a "
                             f"CSV)") from None
        except OSError as exc:
            raise InputError(f"{src}: cannot be read ({exc.strerror})") from None
    if not entries:
        raise InputError(f"{', '.join(map(str, sources))}: no entries found")
    seen = {}
    for e in entries:
        if e.name in seen and seen[e.name].source != e.source:
            raise InputError(f"{e.where}: the entry name {e.name!r} is also used at "
                             f"{seen[e.name].where}; give each a 'name' in a CSV")
        seen.setdefault(e.name, e)
    # the same entry twice (same name and source) is graded once
    return list(seen.values())
