"""Reading a second angular assignment of the particles (item 4.d, ``--angles-b FILE.star``).

Only the metadata is read (``starfile``; no image stack is opened): a RELION STAR file, 3.0
(one table) or 3.1+ (``data_optics`` + ``data_particles``, merged as
:mod:`cryovalid.io.particles` does). Required columns: ``rlnImageName`` (to match the
particles of ``--particles``) and ``rlnAngleRot``, ``rlnAngleTilt``, ``rlnAnglePsi`` (degrees).
Origins are kept in Å (``rlnOriginXAngst``, ``rlnOriginYAngst``); RELION 3.0's ``rlnOriginX``/``Y``
(pixels) are converted with the file's pixel size (``rlnImagePixelSize``, or
``rlnDetectorPixelSize``·10⁴/``rlnMagnification``); pixel origins without a pixel size are an
error. A file without origins is accepted with a note (4.d then compares the angles only).
Every problem is a one-line :class:`~cryovalid.errors.InputError` naming the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from cryovalid.errors import InputError
from cryovalid.io.maps import check_regular_file, sha256_of
from cryovalid.io.particles import _pixel_from_star, _read_star

ANGLES = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
ORIGINS = ("rlnOriginXAngst", "rlnOriginYAngst")


@dataclass
class Angles:
    """A second angular assignment: ``table`` (pandas) with ``rlnImageName``, the three angles
    (degrees) and, when the file has them, the origins in Å."""

    path: str
    table: object
    sha256: str = ""
    notes: list = field(default_factory=list)

    def __len__(self) -> int:
        return int(len(self.table))

    @property
    def has_origins(self) -> bool:
        return all(c in self.table.columns for c in ORIGINS)


def read_angles(path: str) -> Angles:
    """Read and check a STAR file of angles (module docstring)."""
    check_regular_file(path)
    parts = _read_star(path)  # one-line InputErrors: unreadable, no table, no rlnImageName
    missing = [c for c in ANGLES if c not in parts.columns]
    if missing:
        raise InputError(f"{path}: no {', '.join(missing)} column(s): not an angular "
                         f"assignment")
    table = parts.copy()
    names = table["rlnImageName"].astype(str).str.strip()
    if names.duplicated().any():
        dup = names[names.duplicated()].iloc[0]
        raise InputError(f"{path}: rlnImageName {dup!r} appears more than once")
    table["rlnImageName"] = names
    for col in ANGLES:
        try:
            v = np.asarray(table[col], dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{path}: column {col} is not numeric") from None
        if not np.all(np.isfinite(v)):
            i = int(np.nonzero(~np.isfinite(v))[0][0])
            raise InputError(f"{path}: {col} of particle {i + 1} is not a finite number")
        table[col] = v
    notes = []
    for axis in ("X", "Y"):
        old, new = f"rlnOrigin{axis}", f"rlnOrigin{axis}Angst"
        if old in table.columns and new not in table.columns:
            px = _pixel_from_star(table, path)
            if px is None:
                raise InputError(f"{path}: origins in pixels (rlnOrigin{axis}) but no pixel "
                                 f"size (rlnImagePixelSize or rlnDetectorPixelSize and "
                                 f"rlnMagnification)")
            table[new] = np.asarray(table[old], dtype=np.float64) * px
    if not all(c in table.columns for c in ORIGINS):
        notes.append("the file has no origins (rlnOriginXAngst/YAngst): shifts are not compared")
    return Angles(path=os.path.abspath(path), table=table, sha256=sha256_of(path), notes=notes)
