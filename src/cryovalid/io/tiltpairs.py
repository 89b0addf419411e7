"""Reading tilt pairs (O.c): the particles of an untilted and a tilted micrograph, paired.

Two inputs, each an MRC particle stack (``.mrcs``, paired by image index) or a RELION STAR file
(paired by row; its images are read lazily from their stacks), both read with
:func:`cryovalid.io.particles.read_particles`. Image ``i`` of the tilted input is the same
particle as image ``i`` of the untilted one, seen after the stage was tilted by the nominal
``tilt_angle``. cryovalid takes the pairs already extracted; the reference (Scipion + EMAN2
``e2tiltvalidate``, vrs_level1_A_O_W.md §3 O.c) extracts them from the micrograph pairs and
their paired coordinates, which cryovalid does not do yet.

Checks (each a one-line :class:`~cryovalid.errors.InputError` naming the file): those of
``read_particles`` (missing, not MRC/STAR, non-square images, …), the nominal tilt given
(``--tilt-angle``), finite, 0 < |tilt| ≤ ``MAX_TILT_DEG``; both inputs hold the same number of
images (at least ``MIN_PAIRS``) of the same box (at least ``MIN_BOX`` px) and pixel size
(within ``PIXEL_RTOL``). Pixel size: ``--tilt-pixel`` when given, else each file's (STAR, else
the stack header). A negative nominal tilt is used by its magnitude (the measured tilt is the
angle of a rotation, never negative), with a note.

Units: pixel size Å, angles degrees.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

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
        raise InputError(str(exc).replace("--particles-pixel", "--tilt-pixel")) from None


def read_tilt_pairs(untilted: str, tilted: str, tilt_angle: Optional[float] = None,
                    pixel_size: Optional[float] = None) -> TiltPairs:
    """Read and check two paired particle inputs (module docstring)."""
    if tilt_angle is None:
        raise InputError(f"{untilted}: tilt pairs need the nominal tilt of the stage; give "
                         f"--tilt-angle")
    t = float(tilt_angle)
    if not math.isfinite(t) or t == 0 or abs(t) > MAX_TILT_DEG:
        raise InputError(f"{untilted}: the nominal tilt angle {tilt_angle:g}° must be non-zero "
                         f"and at most {MAX_TILT_DEG:g}° in magnitude (--tilt-angle)")
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
    if t < 0:
        notes.append(f"the nominal tilt {t:g}° is used by its magnitude, {abs(t):g}° (the "
                     f"measured tilt is the angle of a rotation, never negative)")
    return TiltPairs(path=u.path, path_tilted=v.path, sha256=u.sha256, sha256_tilted=v.sha256,
                     n=len(u), box=int(u.box), pixel_size=float(u.pixel_size),
                     tilt_angle=abs(t), untilted=u, tilted=v, notes=notes)

