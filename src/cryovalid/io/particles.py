"""Reading particles: a RELION STAR file (3.0, or 3.1+ with an optics table) or a plain stack.

The metadata is read with ``starfile`` (one table per data block); the images stay in their
stacks, memory-mapped with ``mrcfile.mmap`` and read only when an item asks for them
(:meth:`Particles.images`), never all at once.

* **RELION 3.1+**: ``data_optics`` (``rlnOpticsGroup``, ``rlnImagePixelSize``, ``rlnVoltage``,
  ``rlnSphericalAberration``, ``rlnAmplitudeContrast``) and ``data_particles``; each particle
  takes its optics group's values.
* **RELION 3.0**: one table; the pixel size is ``rlnDetectorPixelSize`` (µm) × 10⁴ /
  ``rlnMagnification``, and voltage, Cs and Q0 are per particle.
* **A plain stack** (``.mrcs``): images without metadata (no CTF, no angles); the pixel size is
  the header's.

``rlnImageName`` is ``INDEX@STACK`` (INDEX from 1). A relative STACK is looked up, as RELION
writes them relative to its project folder, in the STAR file's folder and in up to
:data:`PROJECT_LEVELS` folders above it. Acquisition values given by the user (``--kv``,
``--cs``, ``--q0``) take precedence over the file's. Every check raises a one-line
:class:`~cryovalid.errors.InputError` naming the file (and the column or stack at fault); a
column only some item needs is checked by that item (:meth:`Particles.missing`).

Units: pixel size Å, voltage kV, Cs mm, Q0 (amplitude contrast) a fraction, defocus Å,
angles degrees, origins Å (``rlnOriginXAngst``; RELION 3.0's ``rlnOriginX`` pixels are
converted).
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from cryovalid.errors import InputError
from cryovalid.io.maps import check_regular_file, check_voxel_size, sha256_of

PROJECT_LEVELS = 3  # folders above the STAR file searched for relative stack paths
OPEN_STACKS = 32  # memory-mapped stacks kept open at once (least recently used closed)
SUBSET_SEED = 0  # Particles.subset: the random subset beyond the cap (api.MAX_PARTICLES)
PIXEL_RTOL = 0.01  # a STAR pixel size this far from the stack header's gets a note
_NAME = re.compile(r"^\s*(\d+)@(.+?)\s*$")

# acquisition columns: the report's name -> RELION's
ACQUISITION = {"voltage_kv": "rlnVoltage", "cs_mm": "rlnSphericalAberration",
               "q0": "rlnAmplitudeContrast"}


@dataclass
class Particles:
    """The particles' metadata and lazy access to their images.

    Attributes
    ----------
    path : the STAR file or stack given
    table : pandas DataFrame, one row per particle (RELION column names; optics merged in)
    stacks : the stack file of each particle (absolute paths), ``index`` its 0-based image
    box : image edge in pixels; pixel_size : Å
    voltage_kv, cs_mm, q0 : acquisition (None where neither the file nor the user gave it)
    """

    path: str
    table: object
    stacks: np.ndarray  # object array of absolute stack paths, one per particle
    index: np.ndarray  # int64, 0-based image index in its stack
    box: int
    pixel_size: float
    voltage_kv: Optional[float] = None
    cs_mm: Optional[float] = None
    q0: Optional[float] = None
    sha256: str = ""
    notes: list = field(default_factory=list)
    _open: OrderedDict = field(default_factory=OrderedDict, repr=False)
    n_given: Optional[int] = None  # particles in the file when this is a subset of them

    def __len__(self) -> int:
        return int(len(self.index))

    def subset(self, max_n: Optional[int], seed: int = SUBSET_SEED) -> "Particles":
        """At most ``max_n`` of the particles (None or 0: all): self when there are no more,
        else a seeded random subset in the file's order (the first rows of a STAR file are
        those of its first micrographs, not a sample), with a note and ``n_given``."""
        n = len(self)
        if not max_n or n <= max_n:
            return self
        sel = np.sort(np.random.default_rng(seed).choice(n, int(max_n), replace=False))
        note = (f"{int(max_n)} of the {n} particles, a random subset (seed {seed}), are "
                f"analysed (--max-particles; 0 analyses all)")
        return Particles(self.path, self.table.iloc[sel].reset_index(drop=True),
                         self.stacks[sel], self.index[sel], self.box, self.pixel_size,
                         self.voltage_kv, self.cs_mm, self.q0, self.sha256,
                         [*self.notes, note], n_given=n)

    @property
    def columns(self) -> tuple:
        return tuple(self.table.columns)

    def missing(self, *columns) -> list:
        """The RELION columns among ``columns`` that the file does not have."""
        return [c for c in columns if c not in self.table.columns]

    def _stack(self, path):
        import mrcfile

        mrc = self._open.pop(path, None)
        if mrc is None:
            try:
                mrc = mrcfile.mmap(path, mode="r", permissive=False)
            except Exception as exc:  # noqa: BLE001 - mrcfile raises many types
                raise InputError(f"{path}: not a readable MRC stack "
                                 f"({str(exc).splitlines()[0] if str(exc) else exc})") from None
            while len(self._open) >= OPEN_STACKS:
                self._open.popitem(last=False)[1].close()
        self._open[path] = mrc
        return mrc

    def images(self, which) -> np.ndarray:
        """The images of the particles ``which`` (indices or a boolean mask) as float32
        (k, box, box), read from their memory-mapped stacks (one read per stack)."""
        sel = np.arange(len(self))[which]
        out = np.empty((len(sel), self.box, self.box), dtype=np.float32)
        stacks = self.stacks[sel]
        for path in dict.fromkeys(stacks):  # each stack once, in order of first use
            rows = np.nonzero(stacks == path)[0]
            data = self._stack(path).data
            data = data[None] if data.ndim == 2 else data
            out[rows] = data[self.index[sel[rows]]]
        return out

    def close(self):
        while self._open:
            self._open.popitem()[1].close()


def _header_pixel(mrc) -> Optional[float]:
    vs = float(mrc.voxel_size.x)
    return vs if vs > 0 and np.isfinite(vs) else None


def _find_stack(name: str, star_dir: str) -> Optional[str]:
    if os.path.isabs(name):
        return name if os.path.isfile(name) else None
    folder = star_dir
    for _ in range(PROJECT_LEVELS + 1):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            return os.path.abspath(p)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return None


def _read_star(path: str):
    import starfile

    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # noqa: BLE001 - starfile/pandas raise many types
        raise InputError(f"{path}: not a readable STAR file ({str(exc).splitlines()[0]})") \
            from None
    tables = {k: v for k, v in blocks.items() if hasattr(v, "columns")}
    if not tables:
        raise InputError(f"{path}: no data table in the STAR file")
    if "particles" in tables:
        parts = tables["particles"]
        optics = tables.get("optics")
    else:  # RELION 3.0: the one table (data_ or data_images)
        parts, optics = next(iter(tables.values())), None
    if "rlnImageName" not in parts.columns:
        raise InputError(f"{path}: no rlnImageName column (the particles' images); columns: "
                         f"{', '.join(list(parts.columns)[:8])}")
    if len(parts) == 0:
        raise InputError(f"{path}: the particle table is empty")
    if optics is not None and "rlnOpticsGroup" in parts.columns:
        if "rlnOpticsGroup" not in optics.columns:
            raise InputError(f"{path}: the optics table has no rlnOpticsGroup column")
        unknown = set(parts["rlnOpticsGroup"]) - set(optics["rlnOpticsGroup"])
        if unknown:
            raise InputError(f"{path}: particles refer to optics group(s) "
                             f"{', '.join(map(str, sorted(unknown)))} that data_optics lacks")
        extra = [c for c in optics.columns if c not in parts.columns or c == "rlnOpticsGroup"]
        parts = parts.merge(optics[extra], on="rlnOpticsGroup", how="left")
    return parts


def _first_value(table, column) -> Optional[float]:
    """A column's first value (per-particle values stay in the table), or None."""
    if column not in table.columns:
        return None
    return float(np.asarray(table[column], dtype=np.float64)[0])


def _pixel_from_star(parts, path) -> Optional[float]:
    for col in ("rlnImagePixelSize", "rlnPixelSize"):
        if col in parts.columns:
            v = np.unique(np.asarray(parts[col], dtype=np.float64))
            if len(v) > 1 and np.ptp(v) > PIXEL_RTOL * v.mean():
                raise InputError(f"{path}: the optics groups have different pixel sizes "
                                 f"({', '.join(f'{x:g}' for x in v[:4])} Å); give the particles "
                                 f"of one pixel size")
            return float(v[0])
    if {"rlnDetectorPixelSize", "rlnMagnification"} <= set(parts.columns):
        det = np.asarray(parts["rlnDetectorPixelSize"], dtype=np.float64)
        mag = np.asarray(parts["rlnMagnification"], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            px = det * 1e4 / mag
        if np.all(np.isfinite(px)) and px.size:
            return float(np.median(px))
    return None


def read_particles(path: str, pixel_size: Optional[float] = None,
                   voltage_kv: Optional[float] = None, cs_mm: Optional[float] = None,
                   q0: Optional[float] = None, stack: Optional[str] = None) -> Particles:
    """Read a STAR file or an MRC stack of particles (see the module docstring).

    ``stack``: with a STAR file, the one MRC stack every particle is in, whatever name the
    STAR gives it (the web service stores an uploaded stack under a fixed name); the STAR
    must then name a single stack (as ``relion_stack_create`` writes it)."""
    check_regular_file(path)
    if stack is not None:
        check_regular_file(stack)
        if not path.lower().endswith(".star"):
            raise InputError(f"{path}: a separate particle stack goes with a STAR file, not "
                             f"with a stack")
    notes = []
    low = path.lower()
    if low.endswith(".star"):
        parts = _read_star(path)
        star_dir = os.path.dirname(os.path.abspath(path))
        names = parts["rlnImageName"].astype(str)
        parsed = names.str.extract(_NAME.pattern)
        bad = parsed[0].isna()
        if bad.any():
            i = int(np.nonzero(bad.to_numpy())[0][0])
            raise InputError(f"{path}: rlnImageName {names.iloc[i]!r} (particle {i + 1}) is not "
                             f"INDEX@STACK")
        index = parsed[0].astype(np.int64).to_numpy() - 1
        if (index < 0).any():
            raise InputError(f"{path}: an rlnImageName index is 0 (RELION counts from 1)")
        where = {}
        named = list(dict.fromkeys(parsed[1]))
        if stack is not None and len(named) > 1:
            raise InputError(f"{path}: the particles are in {len(named)} stacks ({named[0]!r}, "
                             f"{named[1]!r}, ...), but one stack was given; give a STAR whose "
                             f"particles are all in that stack (relion_stack_create)")
        for name in named:
            found = os.path.abspath(stack) if stack is not None else _find_stack(name, star_dir)
            if found is None:
                n = int((parsed[1] == name).sum())
                raise InputError(f"{path}: {n} particle(s) point to the stack {name!r}, which "
                                 f"is not in {star_dir} or the {PROJECT_LEVELS} folders above it")
            where[name] = found
        stacks = parsed[1].map(where).to_numpy(dtype=object)
        star_pixel = _pixel_from_star(parts, path)
    else:
        parts = stacks = index = star_pixel = None
    table = parts
    # the stacks' headers: box, number of images, pixel size (each stack opened once)
    import mrcfile

    box, header_pixel = None, None
    for stack in (dict.fromkeys(stacks) if stacks is not None else [path]):
        try:
            with mrcfile.mmap(stack, mode="r", permissive=False) as mrc:
                shape = mrc.data.shape
                hp = _header_pixel(mrc)
        except Exception as exc:  # noqa: BLE001 - mrcfile raises many types
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"{stack}: not a readable MRC stack ({msg})") from None
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3 or shape[1] != shape[2]:
            raise InputError(f"{stack}: the particle images are {shape[-1]}×{shape[-2]} px; "
                             f"they must be square")
        if box is None:
            box, header_pixel = int(shape[1]), hp
        elif int(shape[1]) != box:
            raise InputError(f"{stack}: images of {shape[1]} px, but the other stacks' are "
                             f"{box} px")
        if stacks is not None:
            mine = index[stacks == stack]
            if mine.max() >= shape[0]:
                raise InputError(f"{path}: a particle is image {int(mine.max()) + 1} of {stack}, "
                                 f"which holds {shape[0]}")
        else:
            n = shape[0]
    if stacks is None:
        import pandas as pd

        table = pd.DataFrame({"rlnImageName": [f"{i + 1:06d}@{os.path.basename(path)}"
                                               for i in range(n)]})
        stacks = np.array([os.path.abspath(path)] * n, dtype=object)
        index = np.arange(n, dtype=np.int64)
    # pixel size: the user's, else the STAR's, else the stack header's
    if pixel_size is not None:
        px = check_voxel_size(pixel_size, path, " given with --particles-pixel")
        source = star_pixel or header_pixel
        if source and abs(source - px) > PIXEL_RTOL * px:
            notes.append(f"the file gives a pixel size of {source:g} Å; {px:g} Å as given is "
                         f"used")
    elif star_pixel is not None:
        px = check_voxel_size(star_pixel, path, " in the STAR file")
        if header_pixel and abs(header_pixel - px) > PIXEL_RTOL * px:
            notes.append(f"the stacks' header gives {header_pixel:g} Å per pixel, the STAR file "
                         f"{px:g} Å; the STAR file's is used")
    elif header_pixel is not None:
        px = check_voxel_size(header_pixel, path, " in the stack's header")
    else:
        raise InputError(f"{path}: no pixel size in the file; give it with --particles-pixel")
    # RELION 3.0 origins in pixels -> Å, as 3.1 writes them
    for axis in ("X", "Y"):
        old, new = f"rlnOrigin{axis}", f"rlnOrigin{axis}Angst"
        if old in table.columns and new not in table.columns:
            table[new] = np.asarray(table[old], dtype=np.float64) * px
    acq = {}
    for key, col in ACQUISITION.items():
        given = {"voltage_kv": voltage_kv, "cs_mm": cs_mm, "q0": q0}[key]
        acq[key] = float(given) if given is not None else _first_value(table, col)
    for key, lo, hi in (("voltage_kv", 20.0, 1000.0), ("cs_mm", 0.0, 20.0), ("q0", 0.0, 1.0)):
        v = acq[key]
        if v is not None and not (np.isfinite(v) and lo <= v <= hi):
            raise InputError(f"{path}: {key.replace('_', ' ')} {v:g} is outside {lo:g}–{hi:g}")
    return Particles(path=os.path.abspath(path), table=table, stacks=stacks, index=index,
                     box=box, pixel_size=px, sha256=sha256_of(path), notes=notes, **acq)
