"""Reading the micrographs of Level 5: the MRC files a glob pattern matches (vrs_level2_5.md §0.1,
§4.0; the reference imports them with Scipion's ``ProtImportMicrographs``).

Each file is one 2-D image (or a 3-D file of one section, NZ = 1) in MRC mode 0, 1, 2, 6 or 12;
its header is read and checked here, its data stay memory-mapped with ``mrcfile.mmap`` and are
read, one micrograph at a time, only when an item or figure asks (:meth:`Micrographs.image`).

Pixel size (Å): ``--micrographs-pixel`` when given (a note where a header disagrees by more than
``PIXEL_RTOL``); else the headers' (voxel_size.x), which must be set and agree within
``PIXEL_RTOL``. Sizes may differ between files (a note says so). Each file is hashed (SHA-256):
20 micrographs of 4096² float32 (1.3 GB) take about 3 s, which we accept so that the report
identifies its inputs as it does the map's.

Every check raises a one-line :class:`~cryovalid.errors.InputError` naming the pattern or the
file: no file matches; a file missing, empty, special, unreadable, truncated or not MRC; complex
data; a stack or a volume (more than one section); a micrograph smaller than ``MIN_SIZE`` px;
no pixel size in a header and none given; pixel sizes that differ without an override; a pixel
size that is not a positive number in the sensible range. Gzipped files are refused (they
cannot be memory-mapped; 20 of them would have to be decompressed into memory).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from cryovalid.errors import InputError
from cryovalid.io.maps import check_regular_file, check_voxel_size, sha256_of

PIXEL_RTOL = 0.01  # pixel sizes further apart than 1 % are different
MIN_SIZE = 64  # pixels per side: a smaller image is not a micrograph
REAL_MODES = (0, 1, 2, 6, 12)  # int8, int16, float32, uint16, float16


@dataclass
class Micrographs:
    """The micrographs' headers and lazy access to their data.

    Attributes
    ----------
    pattern : the glob pattern given; paths : the files it matched (absolute, sorted)
    pixel_size : Å per pixel (one for all); shapes : (ny, nx) of each micrograph
    sha256 : hex digest of each file; notes : facts worth reporting
    """

    pattern: str
    paths: list
    pixel_size: float
    shapes: list
    sha256: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def n(self) -> int:
        return len(self.paths)

    @property
    def names(self) -> list:
        """The files' basenames (what particles' rlnMicrographName is matched against)."""
        return [os.path.basename(p) for p in self.paths]

    def index(self, names) -> np.ndarray:
        """(n,) int64: the micrograph of each name in ``names`` (basenames, as a STAR's
        rlnMicrographName after os.path.basename), −1 where none: the file of that basename,
        else the file whose basename without extension is the name itself, else the one whose
        basename without extension is the name's (``mic_001.tif`` finds ``mic_001.mrc``)."""
        by_name = {n: i for i, n in enumerate(self.names)}
        by_stem = {os.path.splitext(n)[0]: i for i, n in enumerate(self.names)}
        return np.array([by_name.get(n, by_stem.get(n, by_stem.get(os.path.splitext(n)[0], -1)))
                         for n in names], dtype=np.int64)

    def image(self, i: int) -> np.ndarray:
        """Micrograph ``i`` as a float32 (ny, nx) array (a copy read from the mapped file)."""
        import mrcfile

        path = self.paths[i]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the header was checked at reading
                with mrcfile.mmap(path, mode="r", permissive=True) as mrc:
                    data = np.asarray(mrc.data)
                    data = data.reshape(data.shape[-2:])
                    return np.array(data, dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - mrcfile raises many types
            raise InputError(f"{path}: the micrograph cannot be read any more "
                             f"({_first_line(exc)})") from None


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _header(path: str):
    """(ny, nx, header pixel size or None) of one micrograph, checked."""
    import mrcfile

    check_regular_file(path)
    if path.lower().endswith(".gz"):
        raise InputError(f"{path}: gzipped micrographs cannot be memory-mapped; decompress them")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mrc = mrcfile.mmap(path, mode="r", permissive=False)
    except Exception as exc:  # noqa: BLE001 - mrcfile raises many types on bad files
        msg = _first_line(exc)
        if "data block" in msg or "could only read" in msg or "smaller than" in msg:
            raise InputError(f"{path}: the file is truncated, or its header describes more data "
                             f"than it holds ({msg})") from None
        raise InputError(f"{path}: not a readable MRC micrograph ({msg})") from None
    try:
        for w in caught:
            if "larger than expected" not in str(w.message):
                continue
            raise InputError(f"{path}: the header and the data disagree ({w.message}); fix the "
                             f"header")
        h = mrc.header
        mode = int(h.mode)
        if mode not in REAL_MODES:
            raise InputError(f"{path}: MRC mode {mode} is not a real-valued image (modes "
                             f"{', '.join(map(str, REAL_MODES))})")
        shape = tuple(int(v) for v in mrc.data.shape)
        vs = float(mrc.voxel_size.x)
    finally:
        mrc.close()
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2:
        raise InputError(f"{path}: {shape[0]} sections ({'×'.join(map(str, shape[::-1]))} "
                         f"voxels): a micrograph is one 2-D image (sum the movie frames first)")
    ny, nx = shape
    if min(ny, nx) < MIN_SIZE:
        raise InputError(f"{path}: {nx}×{ny} px is too small for a micrograph (at least "
                         f"{MIN_SIZE} px a side)")
    return ny, nx, (vs if np.isfinite(vs) and vs > 0 else None)


def read_micrographs(pattern: str, paths, pixel_size: float | None = None) -> Micrographs:
    """Read the headers of the micrographs ``paths`` that ``pattern`` matched.

    Parameters
    ----------
    pattern : the glob pattern the user gave (named in the messages)
    paths : the files it matches (``Inputs.micrograph_paths()``: sorted)
    pixel_size : Å per pixel (``--micrographs-pixel``); overrides the headers

    Raises
    ------
    InputError
        one line naming the pattern or file (see the module docstring and docs/errors.md).
    """
    paths = [os.path.abspath(p) for p in paths]
    if not paths:
        raise InputError(f"{pattern}: no file matches the micrographs' pattern (quote it, e.g. "
                         f"--micrographs 'mics/*.mrc')")
    dirs = [p for p in paths if os.path.isdir(p)]
    if dirs:
        raise InputError(f"{dirs[0]}: the micrographs' pattern {pattern!r} matches a folder; "
                         f"match the files, e.g. '{os.path.join(dirs[0], '*.mrc')}'")
    names = [os.path.basename(p) for p in paths]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"{pattern}: two micrographs have the same name {dup[0]!r} (they are "
                         f"matched to the particles by name)")
    shapes, header_px = [], []
    for p in paths:
        ny, nx, vs = _header(p)
        shapes.append((ny, nx))
        header_px.append(vs)
    notes = []
    known = [v for v in header_px if v is not None]
    if pixel_size is not None:
        px = _check_pixel(pixel_size, pattern, " given with --micrographs-pixel")
        off = [v for v in known if abs(v - px) > PIXEL_RTOL * px and abs(v - 1.0) > 1e-6]
        if off:
            notes.append(f"pixel size {px:g} Å given with --micrographs-pixel is used; the "
                         f"header{'s say' if len(off) > 1 else ' says'} "
                         f"{', '.join(sorted({f'{v:.4g}' for v in off}))} Å")
    else:
        missing = [p for p, v in zip(paths, header_px) if v is None]
        if missing:
            raise InputError(f"{missing[0]}: no pixel size in the header; give it with "
                             f"--micrographs-pixel")
        lo, hi = min(known), max(known)
        if hi - lo > PIXEL_RTOL * lo:
            i, j = header_px.index(lo), header_px.index(hi)
            raise InputError(f"{pattern}: the micrographs have different pixel sizes "
                             f"({names[i]}: {lo:g} Å, {names[j]}: {hi:g} Å); give one with "
                             f"--micrographs-pixel")
        px = _check_pixel(float(np.median(known)), paths[0], " in the header")
        if abs(px - 1.0) < 1e-6:
            notes.append("pixel size 1 Å from the headers, the value many programs write when "
                         "they do not know it; give --micrographs-pixel if it is not right")
    if len(set(shapes)) > 1:
        sizes = sorted({f"{nx}×{ny}" for ny, nx in shapes})
        notes.append(f"the micrographs have {len(sizes)} different sizes "
                     f"({', '.join(sizes[:4])}{' …' if len(sizes) > 4 else ''} px)")
    return Micrographs(pattern=pattern, paths=paths, pixel_size=float(px), shapes=shapes,
                       sha256=[sha256_of(p) for p in paths], notes=notes)


def _check_pixel(value, source, where) -> float:
    """:func:`cryovalid.io.maps.check_voxel_size`, naming this input's option."""
    try:
        return check_voxel_size(value, source, where)
    except InputError as exc:
        raise InputError(str(exc).replace("voxel size", "pixel size")
                         .replace("--voxel-size", "--micrographs-pixel")) from None
