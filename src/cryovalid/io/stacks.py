"""Reading a stack of 2-D images (Level 2: the user's 2D class averages).

An MRC stack (``.mrcs``, ``.mrc``, ``.st``, ``.stk`` when it is MRC, optionally gzipped) holds
``n`` square images of ``b × b`` pixels; we hand on float32 ``(n, y, x)`` and the pixel size in
Å. The file checks (missing, empty, special file, truncated, corrupt gzip, not MRC, header and
data that disagree) are those of :mod:`cryovalid.io.maps`, reused here.

Pixel size: ``--classes-pixel`` when given (a note when it disagrees by more than
``PIXEL_RTOL`` with a header value that is neither 0 nor 1 Å); else the header's
CELLA.X / MX. A header without one (0, or MX = 0) is refused: the reader asks for
``--classes-pixel``. A header of exactly 1 Å (the value many writers leave) is used with a note.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from cryovalid.errors import InputError
from cryovalid.io.maps import _check_warnings, _open_mrc, check_voxel_size, sha256_of

PIXEL_RTOL = 0.01  # a given pixel size further than 1 % from the header's gets a note
MIN_IMAGE = 8  # pixels per side


@dataclass
class Stack:
    """A stack of 2-D images in memory.

    Attributes
    ----------
    data : float32 array (n, y, x), square images
    pixel_size : Å per pixel
    path : the file it came from
    sha256 : hex digest of the file's bytes as given
    notes : facts about the header worth reporting
    """

    data: np.ndarray
    pixel_size: float
    path: str = ""
    sha256: str = ""
    notes: list = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.data.shape[0])

    @property
    def box(self) -> int:
        return int(self.data.shape[-1])


def _header_pixel(h) -> float:
    """CELLA.X / MX (0 when either is missing or not a number)."""
    mx = int(h.mx)
    cx = float(h.cella.x)
    if mx <= 0 or not np.isfinite(cx) or cx <= 0:
        return 0.0
    return cx / mx


def read_classes(path: str, pixel_size: float | None = None) -> Stack:
    """Read an MRC stack of 2-D class averages into a :class:`Stack`.

    Parameters
    ----------
    path : file name (.mrcs, .mrc, .st, .stk; optionally .gz)
    pixel_size : Å per pixel (``--classes-pixel``); overrides the header when given

    Raises
    ------
    InputError
        one line naming the file: missing, empty, special, truncated or not MRC (from
        :mod:`cryovalid.io.maps`); complex data; a 3-D volume (ISPG 1 and MZ = NZ > 1);
        images that are not square or smaller than ``MIN_IMAGE`` pixels; NaN/inf values; every
        image constant; no pixel size in the header and none given. A constant image (RELION's
        image of a class that received no particle) is kept, with a note: a blank class
        (data.ClassesData.blank), left out of Levels 2 and 3.
    """
    mrc, reader_warnings = _open_mrc(path)
    try:
        h = mrc.header
        notes = []
        mode = int(h.mode)
        if mode in (3, 4):
            raise InputError(f"{path}: complex-valued images (MRC mode {mode}) are not class "
                             f"averages")
        _check_warnings(path, mrc, reader_warnings, notes)
        raw = mrc.data
        nx, ny, nz, mz, ispg = int(h.nx), int(h.ny), int(h.nz), int(h.mz), int(h.ispg)
        if raw is None:
            raise InputError(f"{path}: the file holds no image data")
        if raw.ndim == 4:
            raise InputError(f"{path}: a stack of {raw.shape[0]} volumes, not a stack of 2-D "
                             f"images")
        if raw.ndim == 3 and nz > 1 and ispg == 1 and mz == nz:
            raise InputError(f"{path}: a volume, not a stack of 2-D images ({nx}x{ny}x{nz} "
                             f"voxels, ISPG 1, MZ = NZ); if it is a stack, set ISPG = 0 and "
                             f"MZ = 1 in its header")
        data = np.array(raw, dtype=np.float32, order="C", ndmin=3)  # own, writable (n, y, x)
        header_px = _header_pixel(h)
    finally:
        mrc.close()

    n, by, bx = data.shape
    if by != bx:
        raise InputError(f"{path}: the images are not square ({bx}x{by} pixels)")
    if bx < MIN_IMAGE:
        raise InputError(f"{path}: the images are too small ({bx}x{by} pixels; at least "
                         f"{MIN_IMAGE})")
    finite = np.isfinite(data)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=(1, 2))) + 1
        raise InputError(f"{path}: {int(np.size(data) - np.count_nonzero(finite))} NaN or "
                         f"infinite values (in image{'s' if bad.size > 1 else ''} "
                         f"{_index_list(bad)})")
    constant = np.flatnonzero(data.max(axis=(1, 2)) == data.min(axis=(1, 2))) + 1
    if constant.size == len(data):
        raise InputError(f"{path}: every image is constant (no class holds anything)")
    if constant.size:  # RELION writes a class that received no particle as zeros
        notes.append(f"Image{'s' if constant.size > 1 else ''} {_index_list(constant)} "
                     f"(counted from 1) {'are' if constant.size > 1 else 'is'} constant: "
                     f"blank class{'es' if constant.size > 1 else ''}, left out of Levels 2 "
                     f"and 3.")

    if pixel_size is None:
        if header_px <= 0:
            raise InputError(f"{path}: no pixel size in the header (CELLA.X = 0 or MX = 0); "
                             f"give it with --classes-pixel")
        ts = _check_pixel(header_px, path, " (pixel size) in the header")
        if abs(ts - 1.0) < 1e-6:
            notes.append("pixel size 1 Å from the header, the value many programs write when "
                         "they do not know it; give --classes-pixel if it is not right")
    else:
        ts = _check_pixel(pixel_size, path, " (pixel size) given with --classes-pixel")
        if header_px > 0 and abs(header_px - 1.0) > 1e-6 and \
                abs(ts - header_px) > PIXEL_RTOL * header_px:
            notes.append(f"pixel size {ts:g} Å given with --classes-pixel is used; the header "
                         f"says {header_px:.4g} Å")
    return Stack(data=data, pixel_size=float(ts), path=os.path.abspath(path),
                 sha256=sha256_of(path), notes=notes)


def _check_pixel(value, path, where) -> float:
    """:func:`cryovalid.io.maps.check_voxel_size`, naming this input's option."""
    try:
        return check_voxel_size(value, path, where)
    except InputError as exc:
        raise InputError(str(exc).replace("--voxel-size", "--classes-pixel")) from None


def _index_list(idx, most=10) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:most])
    return shown + (f" and {idx.size - most} more" if idx.size > most else "")
