"""Reading tilt pairs (O.c): the particles of an untilted and a tilted micrograph, paired.

Two inputs, each an MRC particle stack (``.mrcs``, paired by image index) or a RELION STAR file
(paired by row; its images are read lazily from their stacks), both read with
:func:`cryovalid.io.particles.read_particles`. Image ``i`` of the tilted input is the same
particle as image ``i`` of the untilted one, seen after the stage was tilted by the nominal
``tilt_angle``. cryovalid takes the pairs already extracted; the reference (Scipion + EMAN2
``e2tiltvalidate``, vrs_level1_A_O_W.md §3 O.c) extracts them from the micrograph pairs and
their paired coordinates, which :func:`read_tilt_pairs_from_micrographs` does (``--tilt-micrographs
GLOB``; see below).

Checks (each a one-line :class:`~cryovalid.errors.InputError` naming the file): those of
``read_particles`` (missing, not MRC/STAR, non-square images, …), the nominal tilt given
(``--tilt-angle``), finite, 0 < |tilt| ≤ ``MAX_TILT_DEG``; both inputs hold the same number of
images (at least ``MIN_PAIRS``) of the same box (at least ``MIN_BOX`` px) and pixel size
(within ``PIXEL_RTOL``). Pixel size: ``--tilt-pixel`` when given, else each file's (STAR, else
the stack header). A negative nominal tilt is used by its magnitude (the measured tilt is the
angle of a rotation, never negative), with a note.

From micrographs (``--tilt-micrographs GLOB``, :func:`read_tilt_pairs_from_micrographs`): the
two inputs are then *coordinate* files, RELION-style STAR files with one row per particle,
``rlnMicrographName``, ``rlnCoordinateX``, ``rlnCoordinateY`` (pixels of the micrographs, the
box centre, RELION's convention); row ``i`` of the tilted file is paired with row ``i`` of the
untilted one. The micrographs are those the glob matches (io/micrographs.py: memory-mapped MRC,
pixel size from the headers or ``--tilt-pixel``), matched to each row's ``rlnMicrographName``
by basename, else by basename without its extension (Micrographs.index, as Level 5 matches).
The box is the reference's, ``int(N·Ts_map/Ts_mic)`` (N the map's largest edge, Ts_map its
voxel size, Ts_mic the micrographs' pixel size: the map's physical box), made even by adding a
pixel when odd. Each box is cut with kernels/extract.py, contrast inverted (micrographs show
protein dark; the reference extracts with inverted contrast) and normalised. A pair is dropped
when either box falls partly off its micrograph (the count is a note; the reference's
extraction drops them too); every row must name a micrograph the glob matches (one-line error
naming it otherwise: a missing micrograph is a wrong glob, not a smaller data set). The boxes
are cut when the item asks (:meth:`TiltPairs.images`), each micrograph read once per request,
so 10 000 pairs are never held in memory (the item measures at most its ``MAX_PAIRS``).
An EMAN2 info JSON (``info/<micrograph>_info.json`` of e2boxer / e2RCTboxer, its ``boxes`` or
``boxes_rct`` [x, y, …] centres) is read too, as Scipion's EMAN2 import reads it (y as is): one
JSON per side holds one micrograph pair, named by the file. So is an Xmipp ``.pos`` file (the
XMIPP_STAR_1 layout Xmipp's pickers write: ``data_particles`` with ``_xcoor``, ``_ycoor``, the box
centres; its micrograph is the file's name less ``.pos``; the tilt-pair picker writes the two
files of a pair with their rows paired). Xmipp's tilt-pair metadata (``.xmd`` naming the pairs)
is not read: give the two .pos files of a pair.

Units: pixel size Å, angles degrees, coordinates micrograph pixels.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from cryovalid.errors import InputError

MAX_TILT_DEG = 90.0  # a stage tilt beyond this is not a tilt pair
MIN_PAIRS = 2
MIN_BOX = 16  # pixels per side
PIXEL_RTOL = 0.01  # the two inputs' pixel sizes must agree within this


@dataclass
class TiltPairs:
    """Paired particles: ``n`` pairs of square ``box``-pixel images at ``pixel_size`` Å, the
    nominal tilt ``tilt_angle`` (degrees, ≥ 0). ``untilted``/``tilted`` are the two
    :class:`~cryovalid.io.particles.Particles` (lazy images); :meth:`images` reads pairs."""

    path: str
    path_tilted: str
    sha256: str
    sha256_tilted: str
    n: int
    box: int
    pixel_size: float
    tilt_angle: float
    untilted: object = field(repr=False, default=None)
    tilted: object = field(repr=False, default=None)
    notes: list = field(default_factory=list)
    # pairs cut from micrographs (--tilt-micrographs): the glob and counts, for the report
    micrographs: Optional[dict] = None

    def __len__(self) -> int:
        return self.n

    def images(self, which=slice(None)) -> tuple:
        """(untilted, tilted): float32 (k, box, box) images of the pairs ``which``."""
        return self.untilted.images(which), self.tilted.images(which)


def _read(path, pixel_size):
    from cryovalid.io.particles import read_particles

    try:
        return read_particles(path, pixel_size=pixel_size)
    except InputError as exc:
        text = str(exc).replace("--particles-pixel", "--tilt-pixel")
        if "no rlnImageName column" in text:  # coordinates, given without their micrographs
            text += " (for coordinates on micrograph pairs give --tilt-micrographs GLOB)"
        raise InputError(text) from None


def _check_tilt(untilted, tilt_angle) -> float:
    if tilt_angle is None:
        raise InputError(f"{untilted}: tilt pairs need the nominal tilt of the stage; give "
                         f"--tilt-angle")
    t = float(tilt_angle)
    if not math.isfinite(t) or t == 0 or abs(t) > MAX_TILT_DEG:
        raise InputError(f"{untilted}: the nominal tilt angle {tilt_angle:g}° must be non-zero "
                         f"and at most {MAX_TILT_DEG:g}° in magnitude (--tilt-angle)")
    return t


def _sign_note(t) -> list:
    if t < 0:
        return [f"the nominal tilt {t:g}° is used by its magnitude, {abs(t):g}° (the "
                f"measured tilt is the angle of a rotation, never negative)"]
    return []


def read_tilt_pairs(untilted: str, tilted: str, tilt_angle: Optional[float] = None,
                    pixel_size: Optional[float] = None) -> TiltPairs:
    """Read and check two paired particle inputs (module docstring)."""
    t = _check_tilt(untilted, tilt_angle)
    u = _read(untilted, pixel_size)
    v = _read(tilted, pixel_size)
    if len(u) != len(v):
        raise InputError(f"{tilted}: {len(v)} tilted images, but {untilted} holds {len(u)} "
                         f"untilted ones; the pairs are matched by index and must be as many")
    if len(u) < MIN_PAIRS:
        raise InputError(f"{untilted}: {len(u)} tilt pair(s); at least {MIN_PAIRS} are needed")
    if u.box != v.box:
        raise InputError(f"{tilted}: images of {v.box} px, but those of {untilted} are {u.box} "
                         f"px; the two images of a pair must have the same box")
    if u.box < MIN_BOX:
        raise InputError(f"{untilted}: images of {u.box} px are too small (at least {MIN_BOX})")
    if abs(u.pixel_size - v.pixel_size) > PIXEL_RTOL * u.pixel_size:
        raise InputError(f"{tilted}: pixel size {v.pixel_size:g} Å, but {untilted} has "
                         f"{u.pixel_size:g} Å; give both at one pixel size, or --tilt-pixel")
    notes = [f"untilted images: {n}" for n in u.notes] + [f"tilted images: {n}" for n in v.notes]
    notes += _sign_note(t)
    return TiltPairs(path=u.path, path_tilted=v.path, sha256=u.sha256, sha256_tilted=v.sha256,
                     n=len(u), box=int(u.box), pixel_size=float(u.pixel_size),
                     tilt_angle=abs(t), untilted=u, tilted=v, notes=notes)



# ---- pairs cut from micrograph pairs (--tilt-micrographs) ----------------------------------
COORDINATE_COLUMNS = ("rlnMicrographName", "rlnCoordinateX", "rlnCoordinateY")


class MicrographBoxes:
    """The boxes of one side of the pairs, cut from the micrographs when asked.

    ``micrographs`` (io.micrographs.Micrographs), ``mic`` (n,) the micrograph of each box,
    ``xy`` (n, 2) its centre (x, y) in micrograph pixels, ``box`` px; the interface of
    io.particles.Particles that the tilt pairs use (``path``, ``sha256``, ``box``,
    ``pixel_size``, ``notes``, ``len``, :meth:`images`)."""

    def __init__(self, path, sha256, micrographs, mic, xy, box):
        self.path, self.sha256 = path, sha256
        self.micrographs = micrographs
        self.mic = np.asarray(mic, dtype=np.int64)
        self.xy = np.asarray(xy, dtype=np.float64)
        self.box = int(box)
        self.pixel_size = float(micrographs.pixel_size)
        self.notes = []

    def __len__(self) -> int:
        return int(len(self.mic))

    def images(self, which=slice(None)) -> np.ndarray:
        """float32 (k, box, box): the boxes ``which`` (indices, a slice or a boolean mask),
        contrast inverted and normalised (kernels/extract.py), each micrograph read once."""
        from cryovalid.kernels.extract import extract

        sel = np.arange(len(self))[which]
        out = np.empty((len(sel), self.box, self.box), dtype=np.float32)
        mic = self.mic[sel]
        for i in np.unique(mic):
            rows = np.flatnonzero(mic == i)
            out[rows] = extract(self.micrographs.image(int(i)), self.xy[sel[rows]], self.box)
        return out


def _read_eman2_json(path):
    """(names, (n, 2) x, y) of an EMAN2 info JSON (e2boxer / e2RCTboxer: ``boxes`` or
    ``boxes_rct``, lists [x, y, ...] of box centres in micrograph pixels, read as Scipion's
    EMAN2 import reads them, without flipping y); its micrograph is the file's name less
    ``_info.json`` (EMAN2's info/<micrograph>_info.json)."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        text = str(exc).strip().splitlines()
        raise InputError(f"{path}: not a readable EMAN2 JSON file "
                         f"({text[0] if text else type(exc).__name__})") from None
    boxes = data.get("boxes") or data.get("boxes_rct") if isinstance(data, dict) else None
    if not boxes or not isinstance(boxes, list):
        raise InputError(f"{path}: no \"boxes\" or \"boxes_rct\" list (EMAN2's coordinates of "
                         f"the particles)")
    try:
        xy = np.array([[float(b[0]), float(b[1])] for b in boxes], dtype=np.float64)
    except (TypeError, ValueError, IndexError, KeyError):
        raise InputError(f"{path}: a box of \"boxes\" is not [x, y, ...] numbers") from None
    stem = os.path.basename(path)[:-len(".json")]
    stem = stem[:-len("_info")] if stem.endswith("_info") else stem
    return [stem] * len(xy), xy


def _read_coordinates(path):
    """(micrograph basenames, (n, 2) float64 x, y, SHA-256) of a coordinate STAR file, an
    Xmipp .pos file or an EMAN2 info JSON (:func:`_read_eman2_json`), checked."""
    import starfile

    from cryovalid.io.maps import check_regular_file, sha256_of

    check_regular_file(path)
    if path.lower().endswith(".json"):
        names, xy = _read_eman2_json(path)
        bad = np.flatnonzero(~np.isfinite(xy).all(axis=1))
        if bad.size:
            raise InputError(f"{path}: box {bad[0] + 1} has a coordinate that is not a finite "
                             f"number")
        return names, xy, sha256_of(path)
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # noqa: BLE001 - starfile/pandas raise many types
        text = str(exc).strip().splitlines()
        raise InputError(f"{path}: not a readable STAR file "
                         f"({text[0] if text else type(exc).__name__})") from None
    tables = {k: v for k, v in blocks.items() if hasattr(v, "columns")}
    if not tables:
        raise InputError(f"{path}: no data table in the STAR file (the tilt pairs' "
                         f"coordinates need {', '.join(COORDINATE_COLUMNS)})")
    xmipp = path.lower().endswith(".pos")
    if xmipp:
        # Xmipp (the XMIPP_STAR_1 layout of its pickers): data_particles with _xcoor, _ycoor,
        # the box centres in micrograph pixels, as Scipion's Xmipp import reads them; one
        # .pos per micrograph, named by the file (the tilt-pair picker writes the untilted and
        # tilted files of a pair with their rows paired)
        table = tables.get("particles")
        if table is None or not {"xcoor", "ycoor"} <= set(table.columns):
            raise InputError(f"{path}: no data_particles table with _xcoor and _ycoor "
                             f"(Xmipp's coordinates)")
        columns = ("xcoor", "ycoor")
    else:
        table = tables.get("particles", next(iter(tables.values())))
        lacking = [c for c in COORDINATE_COLUMNS if c not in table.columns]
        if lacking:
            raise InputError(f"{path}: no {', '.join(lacking)} "
                             f"column{'s' if len(lacking) > 1 else ''}; with --tilt-micrographs "
                             f"the tilt pairs are coordinate files "
                             f"({', '.join(COORDINATE_COLUMNS)})")
        columns = COORDINATE_COLUMNS[1:]
    if len(table) == 0:
        raise InputError(f"{path}: the coordinate table is empty")
    import pandas as pd

    xy = np.stack([pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=np.float64)
                   for c in columns], axis=1)
    bad = np.flatnonzero(~np.isfinite(xy).all(axis=1))
    if bad.size:
        raise InputError(f"{path}: row {bad[0] + 1} has a coordinate that is not a finite "
                         f"number ({bad.size} such row{'s' if bad.size > 1 else ''})")
    if xmipp:
        names = [os.path.basename(path)[:-len(".pos")]] * len(xy)
    else:
        names = [os.path.basename(str(v).strip()) for v in table["rlnMicrographName"]]
    return names, xy, sha256_of(path)


def _match(names, mics, path):
    """(n,) int64: the micrograph (index into ``mics``) of each row, by basename, else by
    basename without extension; InputError naming the first name the glob does not match."""
    index = mics.index(names)
    missing = np.flatnonzero(index < 0)
    if missing.size:
        k = len({names[i] for i in missing})
        raise InputError(f"{path}: micrograph {names[missing[0]]!r} (row {missing[0] + 1}) is "
                         f"not among the {mics.n} files {mics.pattern!r} matches"
                         f"{f' ({k} micrographs missing)' if k > 1 else ''}; give "
                         f"--tilt-micrographs a pattern that matches both micrographs of "
                         f"every pair")
    return index


def _read_tilt_micrographs(pattern, paths, pixel_size):
    """io.micrographs.read_micrographs, naming this input's options in its messages."""
    from cryovalid.io.micrographs import read_micrographs

    def ours(text):
        return (text.replace("--micrographs-pixel", "--tilt-pixel")
                .replace("--micrographs '", "--tilt-micrographs '"))

    try:
        mics = read_micrographs(pattern, paths, pixel_size=pixel_size)
    except InputError as exc:
        raise InputError(ours(str(exc))) from None
    mics.notes = [ours(n) for n in mics.notes]
    return mics


def tilt_box(map_box: int, map_voxel: float, mic_pixel: float) -> int:
    """The reference's box on the micrographs, int(N·Ts_map/Ts_mic), made even (+1 px when
    odd): the map's physical box (pixels)."""
    b = int(map_box * map_voxel / mic_pixel)
    return b + b % 2


def read_tilt_pairs_from_micrographs(untilted: str, tilted: str, pattern: str, paths,
                                     map_box: int, map_voxel: float,
                                     tilt_angle: Optional[float] = None,
                                     pixel_size: Optional[float] = None) -> TiltPairs:
    """Tilt pairs cut from micrograph pairs (module docstring).

    Parameters
    ----------
    untilted, tilted : the coordinate STAR files (rlnMicrographName, rlnCoordinateX/Y), paired
        by row
    pattern, paths : the micrographs' glob (``--tilt-micrographs``) and the files it matches
    map_box, map_voxel : the map's largest edge (voxels) and voxel size (Å), for the box
    tilt_angle : nominal stage tilt, degrees; pixel_size : Å (``--tilt-pixel``), else headers

    Raises
    ------
    InputError
        one line naming the file: as :func:`read_tilt_pairs`, plus a coordinate file without
        the columns or with non-numeric coordinates, unequal row counts, a micrograph the glob
        does not match, a box larger than the micrographs, fewer than ``MIN_PAIRS`` pairs left
        once those off a micrograph are dropped.
    """
    t = _check_tilt(untilted, tilt_angle)
    names_u, xy_u, sha_u = _read_coordinates(untilted)
    names_t, xy_t, sha_t = _read_coordinates(tilted)
    if len(names_u) != len(names_t):
        raise InputError(f"{tilted}: {len(names_t)} tilted coordinates, but {untilted} holds "
                         f"{len(names_u)} untilted ones; the pairs are matched by row and must "
                         f"be as many")
    mics = _read_tilt_micrographs(pattern, paths, pixel_size)
    mic_u, mic_t = _match(names_u, mics, untilted), _match(names_t, mics, tilted)
    box = tilt_box(map_box, map_voxel, mics.pixel_size)
    if box < MIN_BOX:
        raise InputError(f"{pattern}: the box on the micrographs, {box} px (the map's "
                         f"{map_box} × {map_voxel:g} Å at {mics.pixel_size:g} Å/px), is too small "
                         f"(at least {MIN_BOX}); check --tilt-pixel")
    shapes = np.asarray(mics.shapes, dtype=np.int64)  # (ny, nx) per micrograph
    if box > shapes.min():
        raise InputError(f"{pattern}: the box on the micrographs, {box} px (the map's "
                         f"{map_box} × {map_voxel:g} Å at {mics.pixel_size:g} Å/px), is larger "
                         f"than a micrograph ({shapes[:, 1].min()} × {shapes[:, 0].min()} px); "
                         f"check --tilt-pixel")
    from cryovalid.kernels.extract import inside

    ok = inside(xy_u, shapes[mic_u], box) & inside(xy_t, shapes[mic_t], box)
    n_rows, n_off = len(ok), int(np.count_nonzero(~ok))
    if int(ok.sum()) < MIN_PAIRS:
        raise InputError(f"{untilted}: {int(ok.sum())} of the {n_rows} tilt pairs have both "
                         f"{box}-px boxes on their micrographs; at least {MIN_PAIRS} are needed "
                         f"(are rlnCoordinateX/Y in pixels of these micrographs?)")
    keep = np.flatnonzero(ok)
    u = MicrographBoxes(os.path.abspath(untilted), sha_u, mics, mic_u[keep], xy_u[keep], box)
    v = MicrographBoxes(os.path.abspath(tilted), sha_t, mics, mic_t[keep], xy_t[keep], box)
    notes = [f"micrographs: {n}" for n in mics.notes]
    notes.append(f"{len(keep)} pairs cut from {len(np.unique(mic_u))} untilted and "
                 f"{len(np.unique(mic_t))} tilted micrographs ({mics.pattern}), boxes of "
                 f"{box} px at {mics.pixel_size:g} Å/px (the map's box, as the reference), "
                 f"contrast inverted")
    if n_off:
        notes.append(f"{n_off} of the {n_rows} pairs dropped: a box falls partly off its "
                     f"micrograph")
    notes += _sign_note(t)
    summary = {"pattern": mics.pattern, "n_micrographs": int(mics.n),
               "n_untilted": int(len(np.unique(mic_u))), "n_tilted": int(len(np.unique(mic_t))),
               "n_rows": int(n_rows), "n_dropped_off_edge": n_off, "box_px": int(box),
               "pixel_size_A": float(mics.pixel_size)}
    return TiltPairs(path=u.path, path_tilted=v.path, sha256=sha_u, sha256_tilted=sha_t,
                     n=len(keep), box=box, pixel_size=float(mics.pixel_size),
                     tilt_angle=abs(t), untilted=u, tilted=v, notes=notes, micrographs=summary)
