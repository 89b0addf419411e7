"""Reading the two half maps and checking that they belong to the main map.

The two halves must have the main map's grid: the same box (nx, ny, nz), voxel size and origin.
Anything else is a user error (InputError) with a one-line message that names the file and what
differs, for example::

    half2.mrc: box 96x96x96 voxels differs from the main map's 100x100x100
"""
from __future__ import annotations


import numpy as np

from cryovalid.errors import InputError
from cryovalid.io.maps import Map, read_map

# Two voxel sizes are the same when they differ by less than this fraction.
VOXEL_RTOL = 1e-3
# Two origins are the same when every coordinate differs by less than this fraction of a voxel.
ORIGIN_TOL_VOXELS = 0.05


def _box(shape) -> str:
    nz, ny, nx = shape
    return f"{nx}x{ny}x{nz}"


def _name(m: Map, fallback: str) -> str:
    return m.path or fallback


def check_half_maps(main: Map, h1: Map, h2: Map) -> None:
    """Raise InputError (one line) unless both halves share the main map's grid.

    Checked in this order for half 1 then half 2: box size (voxels), voxel size (relative
    tolerance 1e-3), origin (within 0.05 voxel on each axis). Identical halves are accepted
    here; the Level 1 items report them.
    """
    for label, h in (("half map 1", h1), ("half map 2", h2)):
        name = _name(h, label)
        if tuple(h.shape) != tuple(main.shape):
            raise InputError(f"{name}: box {_box(h.shape)} voxels differs from the main map's "
                             f"{_box(main.shape)}")
        if abs(h.voxel_size - main.voxel_size) > VOXEL_RTOL * main.voxel_size:
            raise InputError(f"{name}: voxel size {h.voxel_size:.4f} Å differs from the main "
                             f"map's {main.voxel_size:.4f} Å")
        d = np.abs(np.asarray(h.origin, dtype=float) - np.asarray(main.origin, dtype=float))
        if np.any(d > ORIGIN_TOL_VOXELS * main.voxel_size):
            o = ", ".join(f"{v:.2f}" for v in h.origin)
            mo = ", ".join(f"{v:.2f}" for v in main.origin)
            raise InputError(f"{name}: origin ({o}) Å differs from the main map's ({mo}) Å")


def read_half_maps(p1: str, p2: str, main_map: Map, voxel_size: float | None = None):
    """Read the two half maps (``voxel_size`` overrides their headers, as for the main map) and
    check them against ``main_map``. Returns (Map, Map); raises InputError."""
    h1 = read_map(p1, voxel_size=voxel_size)
    h2 = read_map(p2, voxel_size=voxel_size)
    check_half_maps(main_map, h1, h2)
    return h1, h2
