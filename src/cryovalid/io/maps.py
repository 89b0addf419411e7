"""Reading and writing cryo-EM maps (MRC2014 / CCP4), honouring every header convention.

The array we hand to the rest of cryovalid is always float32 in (z, y, x) order, whatever the
file's MAPC/MAPR/MAPS axis order. The position of the map in space is carried as ``origin``: the
world (x, y, z) coordinate in Å of voxel (0, 0, 0). In MRC files that position is spread over two
fields, and programs disagree on which one to use:

* NSTART (nxstart, nystart, nzstart): index of the first column/row/section, in voxels.
  Original EMDB entries use it (EMD-1997: -50, -50, -50).
* ORIGIN (origin.x/y/z): a shift in Å. Chimera-written crops store their position only here
  (EMD-2566, EMD-30342).

We follow the rule verified on the real data shipped with the spec::

    voxel index = (xyz - ORIGIN) / voxel_size - NSTART

so ``origin = ORIGIN + NSTART * voxel_size`` (NSTART permuted from column/row/section order to
x/y/z through MAPC/MAPR/MAPS).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import warnings
from dataclasses import dataclass, field

import mrcfile
import numpy as np

from cryovalid.errors import InputError

# Relative tolerance for calling a voxel isotropic.
ISOTROPY_RTOL = 1e-3


@dataclass
class Map:
    """A 3-D map in memory.

    Attributes
    ----------
    data : float32 array (z, y, x)
    voxel_size : float, Å per voxel (isotropic)
    origin : (x, y, z) world coordinate in Å of voxel (0, 0, 0)
    path : the file it came from ('' for a derived map)
    sha256 : hex digest of the file's bytes as given (compressed bytes for .gz)
    notes : facts about the header worth reporting (for example an override)
    """

    data: np.ndarray
    voxel_size: float
    origin: tuple = (0.0, 0.0, 0.0)
    path: str = ""
    sha256: str = ""
    notes: list = field(default_factory=list)

    @property
    def shape(self):
        return self.data.shape

    def index_to_xyz(self, zyx):
        """World (x, y, z) in Å of voxel index (z, y, x); accepts (..., 3) arrays."""
        zyx = np.asarray(zyx, dtype=np.float64)
        xyz = zyx[..., ::-1] * self.voxel_size + np.asarray(self.origin)
        return xyz

    def xyz_to_index(self, xyz):
        """Fractional voxel index (z, y, x) of world (x, y, z) in Å; accepts (..., 3) arrays."""
        xyz = np.asarray(xyz, dtype=np.float64)
        ijk = (xyz - np.asarray(self.origin)) / self.voxel_size
        return ijk[..., ::-1]


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _open_mrc(path: str):
    """Open with mrcfile, turning its many failure modes into one-line InputErrors."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a map file")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mrcfile.open(path, mode="r", permissive=False)
    except (ValueError, OSError, EOFError, gzip.BadGzipFile) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "data block" in msg or "could only read" in msg or "Compressed file ended" in msg:
            raise InputError(f"{path}: the file is truncated ({msg})") from None
        raise InputError(f"{path}: not a readable MRC/CCP4 map ({msg})") from None


def read_map(path: str, voxel_size: float | None = None) -> Map:
    """Read an MRC/CCP4 map (optionally gzipped) into a :class:`Map`.

    Parameters
    ----------
    path : file name (.mrc, .map, .ccp4, optionally .gz)
    voxel_size : Å per voxel; overrides the header when given

    Raises
    ------
    InputError
        with a one-line message for every problem a user can cause: missing, empty, truncated or
        non-MRC file, complex or 2-D data, non-orthogonal or anisotropic cell, zero or negative
        voxel size, NaN/Inf values, constant map.
    """
    mrc = _open_mrc(path)
    try:
        h = mrc.header
        mode = int(h.mode)
        if mode in (3, 4):
            raise InputError(f"{path}: complex-valued map (MRC mode {mode}) is not a density map")
        raw = mrc.data
        if raw is None or raw.ndim < 3:
            raise InputError(f"{path}: holds a 2-D image, not a 3-D map")
        notes = []
        if raw.ndim == 4:
            notes.append(f"the file is a stack of {raw.shape[0]} volumes; only the first is used")
            raw = raw[0]
        mapcrs = (int(h.mapc), int(h.mapr), int(h.maps))
        if sorted(mapcrs) != [1, 2, 3]:
            # Some writers leave these zero; MRC2014 says 1,2,3 is the default.
            notes.append(f"invalid axis order MAPC/MAPR/MAPS={mapcrs}; assumed 1,2,3")
            mapcrs = (1, 2, 3)
        # The data array is (section, row, column) = axes (maps, mapr, mapc).
        file_axes = (mapcrs[2], mapcrs[1], mapcrs[0])
        perm = [file_axes.index(a) for a in (3, 2, 1)]
        data = np.array(np.transpose(raw, perm), dtype=np.float32, order="C")  # own, writable copy

        angles = (float(h.cellb.alpha), float(h.cellb.beta), float(h.cellb.gamma))
        cell = np.array([float(h.cella.x), float(h.cella.y), float(h.cella.z)])
        mxyz = np.array([int(h.mx), int(h.my), int(h.mz)], dtype=float)
        if voxel_size is None:
            if any(abs(a - 90.0) > 0.01 for a in angles if a != 0.0):
                raise InputError(
                    f"{path}: non-orthogonal unit cell (angles {angles[0]:g}, {angles[1]:g}, "
                    f"{angles[2]:g}); cryovalid needs an orthogonal grid")
            with np.errstate(divide="ignore", invalid="ignore"):
                vs = np.where(mxyz > 0, cell / np.where(mxyz > 0, mxyz, 1), 0.0)
            if np.any(vs <= 0) or not np.all(np.isfinite(vs)):
                raise InputError(
                    f"{path}: voxel size in the header is zero or negative "
                    f"({vs[0]:g}, {vs[1]:g}, {vs[2]:g} Å); give it with --voxel-size")
            if np.ptp(vs) > ISOTROPY_RTOL * vs.max():
                raise InputError(
                    f"{path}: anisotropic voxels ({vs[0]:.4f}, {vs[1]:.4f}, {vs[2]:.4f} Å); "
                    f"resample the map to a cubic grid first")
            voxel_size = float(vs.mean())
        else:
            voxel_size = float(voxel_size)
            if not np.isfinite(voxel_size) or voxel_size <= 0:
                raise InputError(f"{path}: voxel size must be positive, got {voxel_size:g}")
            notes.append(f"voxel size {voxel_size:g} Å given on the command line "
                         f"(overrides the header)")

        # NSTART is stored in column/row/section order; permute it to x, y, z.
        crs_start = (int(h.nxstart), int(h.nystart), int(h.nzstart))
        start_xyz = [0, 0, 0]
        for k, axis in enumerate(mapcrs):
            start_xyz[axis - 1] = crs_start[k]
        orig = np.array([float(h.origin.x), float(h.origin.y), float(h.origin.z)])
        if not np.all(np.isfinite(orig)):
            notes.append("ORIGIN in the header is not finite; ignored")
            orig = np.zeros(3)
        origin = tuple(float(v) for v in orig + np.array(start_xyz) * voxel_size)
    finally:
        mrc.close()

    if not np.all(np.isfinite(data)):
        n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise InputError(f"{path}: the map contains {n_bad} NaN or infinite values")
    if float(data.max()) == float(data.min()):
        raise InputError(f"{path}: the map is constant (every voxel is {float(data.min()):g})")
    if min(data.shape) < 8:
        raise InputError(f"{path}: the map is too small ({data.shape[2]}x{data.shape[1]}x"
                         f"{data.shape[0]} voxels) for any analysis")
    return Map(data=data, voxel_size=voxel_size, origin=origin, path=os.path.abspath(path),
               sha256=sha256_of(path), notes=notes)


def write_map(path: str, data: np.ndarray, voxel_size: float, origin=(0.0, 0.0, 0.0)) -> None:
    """Write a (z, y, x) array as a float32 MRC2014 file that lands on the same grid.

    The position is written into ORIGIN (with NSTART 0), which ChimeraX, Chimera and mrcfile
    read; cryovalid's reader reads it back to the same world coordinates.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(data, dtype=np.float32))
        mrc.voxel_size = float(voxel_size)
        mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = (float(v) for v in origin)
        mrc.update_header_stats()
