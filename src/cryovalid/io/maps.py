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
import re
import stat
import warnings
import zlib
from dataclasses import dataclass, field

import mrcfile
import numpy as np

from cryovalid.errors import InputError

# Relative tolerance for calling a voxel isotropic.
ISOTROPY_RTOL = 1e-3
# Smallest box edge (voxels) any item can analyse.
MIN_BOX = 8


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


# Sensible voxel sizes (Å). Maps deposited in EMDB have voxels between about 0.3 Å
# (atomic-resolution single-particle maps, e.g. apoferritin at 1.2 Å, EMD-11668, 0.46 Å) and a
# few tens of Å (binned tomograms); the bounds lie well outside that range. Beyond them the
# numbers are a unit mistake (nm or m for Å, a header written in pixels), and the items'
# cost explodes (with 0.01 Å voxels, 0.h builds helix templates of 2.5 GB for a 64³ map).
VOXEL_MIN_A = 0.1
VOXEL_MAX_A = 100.0


def check_voxel_size(value, source: str, where: str = "") -> float:
    """Return ``value`` as a float, or raise InputError (one line, starting with ``source``,
    the file or option concerned; ``where`` e.g. " in the header") when it is not a number,
    not finite, not positive, or outside [VOXEL_MIN_A, VOXEL_MAX_A] Å."""
    what = f"{source}: voxel size{where}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None
    if v != v:
        raise InputError(f"{what} is not a number (NaN)")
    if v in (float("inf"), float("-inf")):
        raise InputError(f"{what} is infinite")
    if v <= 0:
        raise InputError(f"{what} must be positive, got {v:g} Å")
    if not VOXEL_MIN_A <= v <= VOXEL_MAX_A:
        raise InputError(f"{what}, {v:g} Å, is outside the sensible range "
                         f"{VOXEL_MIN_A:g}–{VOXEL_MAX_A:g} Å (a unit mistake?); give the right "
                         f"one with --voxel-size")
    return v


def _file_kind(mode: int) -> str:
    for test, word in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return word
    return "a special file"


def check_regular_file(path: str) -> os.stat_result:
    """Raise InputError unless ``path`` is an existing, non-empty regular file (a symbolic link
    to one is fine). A FIFO or a device is refused before it is opened: reading one would block
    or never end."""
    if not os.path.lexists(path):
        raise InputError(f"{path}: no such file")
    if not os.path.exists(path):
        raise InputError(f"{path}: a symbolic link to a missing file")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a directory, not a map file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: not a regular file but {_file_kind(st.st_mode)}")
    if st.st_size == 0:
        raise InputError(f"{path}: the file is empty")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: cannot be read (permission denied)")
    return st


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _open_mrc(path: str):
    """Open with mrcfile, turning its many failure modes into one-line InputErrors.

    Returns (mrc, warnings): the warnings mrcfile issued while reading, as strings; the caller
    decides what each means (none is silenced)."""
    check_regular_file(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # record every warning of this call, hide none
            mrc = mrcfile.open(path, mode="r", permissive=False)
    except (zlib.error, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: corrupt gzip compression ({_first_line(exc)})") from None
    except MemoryError:
        raise InputError(f"{path}: the header describes a map too large to read into "
                         f"memory") from None
    except PermissionError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    except Exception as exc:  # noqa: BLE001 - mrcfile raises many types on bad files
        msg = _first_line(exc)
        if "data block" in msg or "could only read" in msg:
            raise InputError(f"{path}: the file is truncated, or its header describes more data "
                             f"than it holds ({msg})") from None
        if "Compressed file ended" in msg:
            raise InputError(f"{path}: corrupt gzip compression (truncated: {msg})") from None
        raise InputError(f"{path}: not a readable MRC/CCP4 map ({msg})") from None
    return mrc, [str(w.message) for w in caught]


_LARGER = re.compile(r"MRC file is (\d+) bytes larger than expected")


def _check_warnings(path, mrc, messages, notes):
    """Turn mrcfile's warnings into an InputError (the header and the data disagree) or notes."""
    h = mrc.header
    for msg in messages:
        m = _LARGER.search(msg)
        if m:
            extra = int(m.group(1))
            itemsize = mrc.data.dtype.itemsize if mrc.data is not None else 4
            section = int(h.nx) * int(h.ny) * itemsize
            if extra >= section:
                expected = mrc.data.nbytes if mrc.data is not None else 0
                raise InputError(
                    f"{path}: the header and the data disagree: the file holds {extra} bytes "
                    f"more than the header describes (mode {int(h.mode)}, {int(h.nx)}x"
                    f"{int(h.ny)}x{int(h.nz)} voxels = {expected} bytes), so the values would be "
                    f"read wrongly; fix the header (mode or box size)")
            notes.append(f"{extra} bytes after the data block (less than one section) were "
                         f"ignored")
        else:
            notes.append(f"the MRC reader warned: {msg}")


def read_map(path: str, voxel_size: float | None = None) -> Map:
    """Read an MRC/CCP4 map (optionally gzipped) into a :class:`Map`.

    Parameters
    ----------
    path : file name (.mrc, .map, .ccp4, optionally .gz)
    voxel_size : Å per voxel; overrides the header when given

    Raises
    ------
    InputError
        with a one-line message for every problem a user can cause: missing, empty, special
        (FIFO, device), truncated, corrupt-gzip or non-MRC file; header and data that disagree
        in size; complex data; a 2-D image or an image stack; non-orthogonal or anisotropic
        cell; a voxel size that is not a number, not positive or outside
        [VOXEL_MIN_A, VOXEL_MAX_A]; NaN/Inf values; a constant or tiny map.
        The checks and messages are listed in docs/errors.md.
    """
    mrc, reader_warnings = _open_mrc(path)
    try:
        h = mrc.header
        notes = []
        mode = int(h.mode)
        if mode in (3, 4):
            raise InputError(f"{path}: complex-valued map (MRC mode {mode}) is not a density map")
        _check_warnings(path, mrc, reader_warnings, notes)
        raw = mrc.data
        nx, ny, nz, mz = int(h.nx), int(h.ny), int(h.nz), int(h.mz)
        if raw is None or raw.ndim < 3:
            raise InputError(f"{path}: a 2-D image ({nx}x{ny} pixels), not a volume")
        if int(h.ispg) == 0 and nz > 1 and mz == 1:
            raise InputError(f"{path}: a stack of {nz} 2-D images (space group 0, MZ = 1), not a "
                             f"volume; if it is a volume, set MZ = NZ = {nz} and ISPG = 1 in its "
                             f"header")
        if raw.ndim == 4:
            notes.append(f"the file is a stack of {raw.shape[0]} volumes; only the first is used")
            raw = raw[0]
        if 1 in raw.shape:
            raise InputError(f"{path}: a 2-D image ({raw.shape[2]}x{raw.shape[1]}x"
                             f"{raw.shape[0]} voxels), not a volume")
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
            if not all(np.isfinite(angles)):
                notes.append("a cell angle in the header is not a number "
                             f"({angles[0]:g}, {angles[1]:g}, {angles[2]:g}); assumed 90°")
            elif any(abs(a - 90.0) > 0.01 for a in angles if a != 0.0):
                raise InputError(
                    f"{path}: non-orthogonal unit cell (angles {angles[0]:g}, {angles[1]:g}, "
                    f"{angles[2]:g}); cryovalid needs an orthogonal grid")
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                vs = np.where(mxyz > 0, cell / np.where(mxyz > 0, mxyz, 1), 0.0)
            shown = f"({vs[0]:g}, {vs[1]:g}, {vs[2]:g} Å)"
            if np.any(np.isnan(vs)):
                raise InputError(f"{path}: voxel size in the header is not a number {shown}; "
                                 f"give it with --voxel-size")
            if np.any(np.isinf(vs)):
                raise InputError(f"{path}: voxel size in the header is infinite {shown}; "
                                 f"give it with --voxel-size")
            if np.any(vs <= 0):
                raise InputError(
                    f"{path}: voxel size in the header is zero or negative {shown}; "
                    f"give it with --voxel-size")
            if np.ptp(vs) > ISOTROPY_RTOL * vs.max():
                raise InputError(
                    f"{path}: anisotropic voxels ({vs[0]:.4f}, {vs[1]:.4f}, {vs[2]:.4f} Å); "
                    f"resample the map to a cubic grid first")
            voxel_size = check_voxel_size(float(vs.mean()), path, " in the header")
        else:
            voxel_size = check_voxel_size(voxel_size, path, " given with --voxel-size")
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
    if min(data.shape) < MIN_BOX:
        raise InputError(f"{path}: the map is too small ({data.shape[2]}x{data.shape[1]}x"
                         f"{data.shape[0]} voxels; at least {MIN_BOX} per axis) for any analysis")
    return Map(data=data, voxel_size=voxel_size, origin=origin, path=os.path.abspath(path),
               sha256=sha256_of(path), notes=notes)


def write_map(path: str, data: np.ndarray, voxel_size: float, origin=(0.0, 0.0, 0.0)) -> None:
    """Write a (z, y, x) array as an MRC2014 file that lands on the same grid: 8-bit (mode 0)
    for a boolean or int8 array (a mask: a quarter of the float32 size), float32 (mode 2)
    for anything else.

    The position is written into ORIGIN (with NSTART 0), which ChimeraX, Chimera and mrcfile
    read; cryovalid's reader reads it back to the same world coordinates.
    """
    data = np.asarray(data)
    dtype = np.int8 if data.dtype in (np.bool_, np.int8) else np.float32
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(data, dtype=dtype))
        mrc.voxel_size = float(voxel_size)
        mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = (float(v) for v in origin)
        mrc.update_header_stats()


def read_small_text(path: str, max_bytes: int, what: str) -> str:
    """The text of a small input file (a curve, a list, a workflow), or a one-line InputError:
    not a regular file, larger than ``max_bytes``, unreadable, or binary (a NUL byte). ``what``
    names what the file should be, e.g. "a SAXS curve (text with q I sigma)". Bytes that are not
    UTF-8 are replaced; a BOM is dropped."""
    st = check_regular_file(path)
    if st.st_size > max_bytes:
        raise InputError(f"{path}: {st.st_size} bytes is too large for {what.split(' (')[0]}")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    if b"\0" in raw:
        raise InputError(f"{path}: a binary file, not {what}")
    return raw.decode("utf-8", errors="replace").lstrip("\ufeff")
