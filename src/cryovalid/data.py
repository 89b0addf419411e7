"""Per-input data: each input of a report with the intermediates computed from it once.

:class:`MapData` is the map with its threshold and everything derived from them (Fourier
transform, shells, filter bank, masks, the resized map); :class:`HalfMapsData` the two half maps
with their transforms. A later input (the atomic model of Level A, particles, classes) adds its
own class here. Intermediates are ``cached_property`` values: the first item that asks computes
them, the others reuse them. Kernels never see these objects' owner (the
:class:`~cryovalid.context.Context`), only these objects or plain arrays.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.fft

from cryovalid.io.maps import Map
from cryovalid.kernels import fourier, masks
from cryovalid.kernels.filterbank import FilterBank
from cryovalid.kernels.resample import ResampledMap, resample_map


def _read_only_rfft(vol) -> np.ndarray:
    ft = fourier.rfft(vol)
    ft.flags.writeable = False
    return ft


class MapData:
    """The map, the threshold that defines its molecule, and what is computed from them.

    ``threshold_method`` says in words how the threshold was chosen; ``threshold_estimate`` is
    the automatic estimate (``kernels.threshold.estimate(...).to_dict()``) when it was used."""

    def __init__(self, map: Map, threshold: float, threshold_method: str = "given by the user",
                 threshold_estimate: dict | None = None):
        self.map = map
        self.threshold = float(threshold)
        self.threshold_method = threshold_method
        self.threshold_estimate = threshold_estimate

    # what does not depend on the threshold (``at_threshold`` shares it)
    _THRESHOLD_FREE = ("ft", "shells", "filter_bank", "auto_threshold", "constant_region")

    def at_threshold(self, threshold: float, threshold_method: str = "given by the user",
                     threshold_estimate: dict | None = None) -> "MapData":
        """The same map at another threshold, sharing what is already computed and does not
        depend on the threshold (the Fourier transform, shells, filter bank, automatic
        threshold, constant region); the masks are computed anew."""
        other = MapData(self.map, threshold, threshold_method,
                        threshold_estimate if threshold_estimate is not None
                        else self.threshold_estimate)
        for name in self._THRESHOLD_FREE:
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other

    # ---- the map itself -----------------------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        return self.map.data

    @property
    def voxel_size(self) -> float:
        return self.map.voxel_size

    @property
    def origin(self) -> tuple:
        return self.map.origin

    @property
    def shape(self) -> tuple:
        return self.map.shape

    @property
    def path(self) -> str:
        return self.map.path

    @property
    def sha256(self) -> str:
        return self.map.sha256

    @property
    def notes(self) -> list:
        return self.map.notes

    # ---- Fourier space --------------------------------------------------------------------
    @cached_property
    def ft(self) -> np.ndarray:
        """rfft of the map (complex64); read-only, shared."""
        return _read_only_rfft(self.map.data)

    @cached_property
    def shells(self) -> fourier.FourierShells:
        return fourier.FourierShells(self.map.shape, self.voxel_size)

    @cached_property
    def filter_bank(self) -> FilterBank:
        """Band-pass + Riesz filter bank on the map's own grid, built on ``ft`` (0.e, and
        Level 1's MonoRes/MonoDir)."""
        return FilterBank(self.ft, self.map.shape, [n * self.voxel_size for n in self.map.shape])

    # ---- masks --------------------------------------------------------------------------
    @cached_property
    def hard_mask(self) -> np.ndarray:
        """Boolean hard mask of the map (reference recipe, see kernels.masks)."""
        return masks.hard_mask(self.map.data, self.threshold, self.voxel_size)

    @cached_property
    def soft_mask(self) -> np.ndarray:
        return masks.soft_mask(self.hard_mask)

    @cached_property
    def raw_mask(self) -> np.ndarray:
        """V >= T, before keeping the largest component."""
        return self.map.data >= self.threshold

    @cached_property
    def auto_threshold(self) -> float:
        """The automatic threshold of the map (kernels.threshold), whatever the user gave."""
        if self.threshold_estimate is not None:
            return float(self.threshold_estimate["threshold"])
        from cryovalid.kernels.threshold import auto_threshold

        return float(auto_threshold(self.map.data, self.voxel_size))

    @cached_property
    def molecule_mask(self) -> np.ndarray:
        """Hard mask at the automatic threshold, whatever the user's threshold: where the
        molecule is, for choosing noise voxels (0.e), so that a low user threshold that lets
        noise blobs into the mask does not remove the solvent."""
        if self.auto_threshold == self.threshold:  # the user took the automatic threshold
            return self.hard_mask
        return masks.hard_mask(self.map.data, self.auto_threshold, self.voxel_size)

    @cached_property
    def constant_region(self) -> tuple:
        """(value, fraction of the box) of a masked-off constant region, or (None, 0.0)
        (:func:`cryovalid.kernels.threshold.constant_region`)."""
        from cryovalid.kernels.threshold import constant_region

        return constant_region(self.map.data)

    # ---- the resized map ------------------------------------------------------------------
    def resized(self, resolution: float) -> ResampledMap:
        """The reference's resized map for ``resolution`` (Å): Fourier-cropped to Ts' ≈ R/2
        (box 2·ceil(N·Ts/Ts'/2) per axis, never enlarged), with its own hard mask and filter
        bank (0.f, 0.g); computed once per resolution."""
        cache = self.__dict__.setdefault("_resized", {})
        if resolution not in cache:
            cache[resolution] = resample_map(self.map.data, self.ft, self.voxel_size,
                                             resolution / 2.0, self.threshold)
        return cache[resolution]


class HalfMapsData:
    """The two half maps (on the main map's grid, checked on input) and their transforms.
    Iterating gives the two :class:`~cryovalid.io.maps.Map` objects."""

    def __init__(self, half1: Map, half2: Map):
        self.maps = (half1, half2)

    def __iter__(self):
        return iter(self.maps)

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i) -> Map:
        return self.maps[i]

    @cached_property
    def fts(self) -> tuple:
        """(F1, F2): rfft of the two half maps (complex64, read-only), shared by the Level 1
        items. The halves have the main map's shape, so the map's ``shells`` apply."""
        return tuple(_read_only_rfft(h.data) for h in self.maps)


class ModelData:
    """The atomic model (Level A) in the map's box, and what is computed from the two.

    ``model`` is a :class:`cryovalid.io.model.Model` (world coordinates as read); ``map`` the
    :class:`MapData` it is compared with; ``resolution`` the reported resolution (Å). The fit
    gate (:attr:`placement`, :mod:`cryovalid.kernels.placement`) decides where Level A puts the
    model; every other intermediate uses that placement (:attr:`xyz`). The model map, the atom
    mask and the CCs are computed at max(R, 3) Å, as the reference runs Phenix."""

    def __init__(self, model, map: MapData, resolution: float | None):
        self.model = model
        self.map = map
        self.resolution = resolution

    @property
    def path(self) -> str:
        return self.model.path

    @property
    def cc_resolution(self) -> float:
        """max(R, 3) Å: the resolution of the model map and the CCs."""
        return self._need_resolution()

    def _need_resolution(self) -> float:
        if self.resolution is None:
            raise ValueError("the model map needs the reported resolution")
        from cryovalid.kernels.mapmodel_cc import resolution_used

        return resolution_used(self.resolution)

    def _box(self, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
        return self.model.xyz + np.asarray(shift) - np.asarray(self.map.origin, dtype=np.float64)

    def _model_map_at(self, shift, **kwargs) -> np.ndarray:
        from cryovalid.kernels.modelmap import model_map

        m = self.model
        return model_map(self._box(shift), m.element, m.b_iso, m.occupancy, self.map.shape,
                         self.map.voxel_size, kwargs.pop("resolution", None)
                         or self._need_resolution(), **kwargs)

    def _mask_at(self, shift) -> np.ndarray:
        from cryovalid.kernels.modelmap import atom_mask

        m = self.model
        return atom_mask(self._box(shift), m.element, self.map.shape, self.map.voxel_size,
                         occupancy=m.occupancy)

    @cached_property
    def fraction_inside(self) -> float:
        """Fraction of the non-hydrogen atoms inside the map's box, as the model was given."""
        from cryovalid.io.model import fraction_inside

        return fraction_inside(self.model, self.map.map)

    @cached_property
    def placement(self):
        """The fit gate: CC_mask where the model was given and, when it is below 0.5, at the
        reference's candidate placements (:func:`cryovalid.kernels.placement.find_placement`)."""
        from cryovalid.kernels import placement as pl
        from cryovalid.kernels.mapmodel_cc import five_cc

        self._need_resolution()
        cache = {}

        def cc_mask_at(shift):
            key = tuple(np.round(shift, 6))
            if key == (0.0, 0.0, 0.0):  # the model as given: keep its maps for the items
                cache[key] = (self.model_map_at_input, self.atom_mask_at_input)
            else:
                cache[key] = (self._model_map_at(shift), self._mask_at(shift))
            return five_cc(self.map.data, *cache[key])["cc_mask"]

        heavy = self.model.xyz[~self.model.is_hydrogen]
        centre = (heavy if len(heavy) else self.model.xyz).mean(axis=0)
        result = pl.find_placement(cc_mask_at, centre,
                                   pl.candidate_points(self.map.origin, self.map.shape,
                                                       self.map.voxel_size))
        key = tuple(np.round(result.shift, 6))
        if key in cache:
            self.__dict__["model_map"], self.__dict__["atom_mask"] = cache[key]
        return result

    @cached_property
    def model_map_at_input(self) -> np.ndarray:
        return self._model_map_at((0.0, 0.0, 0.0))

    @cached_property
    def atom_mask_at_input(self) -> np.ndarray:
        return self._mask_at((0.0, 0.0, 0.0))

    @property
    def shift(self) -> tuple:
        """The fit gate's translation (Å); none without a resolution (no gate is run)."""
        if self.resolution is None:
            return (0.0, 0.0, 0.0)
        return self.placement.shift

    @property
    def xyz(self) -> np.ndarray:
        """(n, 3) world x, y, z (Å) of every atom at the placement Level A uses."""
        return self.model.xyz + np.asarray(self.shift)

    @property
    def xyz_box(self) -> np.ndarray:
        """(n, 3) atoms in the box frame (Å; voxel (0, 0, 0) at 0) at the placement."""
        return self._box(self.shift)

    @cached_property
    def model_map(self) -> np.ndarray:
        """Model map at max(R, 3) Å on the map's grid, at the placement."""
        return self._model_map_at(self.shift)

    @cached_property
    def atom_mask(self) -> np.ndarray:
        """Jiang–Brünger atom mask (cctbx radii) at the placement."""
        return self._mask_at(self.shift)

    @cached_property
    def cc(self):
        """:class:`cryovalid.kernels.mapmodel_cc.MapModelCC` at the placement."""
        from cryovalid.kernels.mapmodel_cc import main_chain_atoms, map_model_cc

        m = self.model
        return map_model_cc(self.map.data, self.model_map, self.atom_mask, self.xyz_box,
                            self.map.voxel_size, m.residue_index, m.chain,
                            main_chain_atoms(m), self._need_resolution(),
                            float(np.mean(m.b_iso, dtype=np.float64)))

    @cached_property
    def mtriage(self):
        """:class:`cryovalid.kernels.mtriage.MtriageResult` at the placement."""
        from cryovalid.kernels.mtriage import mtriage

        m = self.model
        return mtriage(self.map.data, self.map.voxel_size, self._need_resolution(),
                       self.xyz_box, m.element, m.b_iso, m.occupancy,
                       model_maps=(self.model_map_all_hkl, self.model_map_b0))

    def _all_hkl(self, b_zero: bool) -> np.ndarray:
        from cryovalid.kernels.mtriage import model_map_all_hkl

        m = self.model
        return model_map_all_hkl(self.xyz_box, m.element, m.b_iso, m.occupancy, self.map.shape,
                                 self.map.voxel_size, b_zero=b_zero)

    @cached_property
    def model_map_all_hkl(self) -> np.ndarray:
        """Model map on every box hkl (no resolution cut: mtriage's FSC_model)."""
        return self._all_hkl(False)

    @cached_property
    def model_map_b0(self) -> np.ndarray:
        """Model map with every B = 0 on every box hkl (mtriage's d_model(B = 0), and A.d's
        Guinier profile)."""
        return self._all_hkl(True)

    @cached_property
    def qscores(self):
        """Per-atom MapQ Q-scores at the placement (:func:`cryovalid.kernels.qscore.qscores`)."""
        from cryovalid.kernels.qscore import qscores

        return qscores(self.map.data, self.map.voxel_size, self.map.origin, self.xyz,
                       self.model.is_hydrogen)

    @cached_property
    def residue_q(self):
        """:class:`cryovalid.kernels.qscore.ResidueQ` of :attr:`qscores` (expected Q at R)."""
        from cryovalid.kernels.qscore import residue_q

        m = self.model
        return residue_q(self.qscores.q, m.residue_index, m.atom_name, m.resname, m.chain,
                         m.is_hydrogen, resolution=self.resolution)

    @property
    def origin_for_model_as_read(self) -> tuple:
        """The map origin (Å) as seen from the model's own coordinates: sampling the map at
        ``model.xyz`` with this origin is sampling it at the placed atoms (xyz + shift)."""
        return tuple(float(o - s) for o, s in zip(self.map.origin, self.shift))


class ClassesData:
    """Level 2: the user's 2D class averages (:class:`cryovalid.io.stacks.Stack`) and their
    copies on the map's grid. The map's 2-D grid is the square of its largest edge (a
    non-cubic map is padded to a cube before it is projected, kernels/projection.py) with the
    map's voxel size."""

    def __init__(self, stack, map_data: MapData):
        self.stack = stack
        self.map = map_data

    @property
    def path(self) -> str:
        return self.stack.path

    @property
    def n(self) -> int:
        return int(self.stack.data.shape[0])

    @property
    def box(self) -> int:
        """Edge (px) of the images on the map grid."""
        return int(max(self.map.shape))

    @cached_property
    def blank(self) -> np.ndarray:
        """(n,) bool, read-only: the classes whose image is constant (RELION writes an image
        of zeros for a class that received no particle). They are not classes: Levels 2 and
        3 leave them out (each says so) and keep the stack's numbering for the others."""
        d = np.asarray(self.stack.data).reshape(self.n, -1)
        out = d.max(axis=1) == d.min(axis=1)
        out.flags.writeable = False
        return out

    @property
    def kept(self) -> np.ndarray:
        """0-based stack indices of the classes that are not blank."""
        return np.flatnonzero(~self.blank)

    def blank_note(self) -> str:
        """The sentence the items of Levels 2 and 3 add when blank classes were left out
        ('' when there are none)."""
        idx = np.flatnonzero(self.blank) + 1
        if not idx.size:
            return ""
        listed = ", ".join(map(str, idx[:20])) + (", …" if idx.size > 20 else "")
        return (f"{idx.size} of the {self.n} classes (number{'s' if idx.size > 1 else ''} "
                f"{listed}) {'are' if idx.size > 1 else 'is'} blank (a constant image, as "
                f"RELION writes a class that received no particle) and left out; the others "
                f"keep their numbers in the stack.")

    def require_classes(self) -> np.ndarray:
        """:attr:`kept`, or CannotMeasure when every class is blank."""
        if not self.kept.size:
            from cryovalid.errors import CannotMeasure

            raise CannotMeasure(f"every one of the {self.n} classes is blank (a constant "
                                f"image)")
        return self.kept

    @property
    def pixel_size(self) -> float:
        """Å per pixel on the map grid (the map's voxel size)."""
        return float(self.map.voxel_size)

    @cached_property
    def on_map_grid(self) -> np.ndarray:
        """(n, B, B) float32, read-only: the classes resampled to the map's box and voxel size
        by the reference's chain (kernels/resample2d.py, vrs_level2_5.md §0.2)."""
        from cryovalid.kernels.resample2d import to_grid

        out = to_grid(self.stack.data, self.stack.pixel_size, self.box, self.pixel_size)
        out.flags.writeable = False
        return out

    @cached_property
    def projector(self):
        """The map's central-section projector (padded ×2; kernels/projection.py)."""
        from cryovalid.kernels.projection import Projector

        return Projector(self.map.data)

    # the particle window: what 2.a compares, the molecule and a margin rather than the box
    WINDOW_MARGIN = 0.1  # × the molecule's radius, added to it
    WINDOW_PAD_PX = 4  # px added to the radius beyond that
    MIN_WINDOW = 32  # px: a window is never smaller (nor larger than the box)

    @cached_property
    def window_box(self) -> int:
        """Edge (px, even) of the particle window on the map's grid: the diameter of the
        sphere about the box centre that holds every voxel of the map's hard mask, enlarged
        by ``WINDOW_MARGIN`` and ``WINDOW_PAD_PX``, between ``MIN_WINDOW`` and the box. A
        small molecule in a large box is then searched and correlated on its own scale: the
        search's shift steps and the correlation's circle are fractions of the window, not
        of the box (on a 144-px box of noise around a 48-px class, 35 % of the classes found
        their orientation within 5° on the whole box)."""
        from cryovalid.kernels.projection import cube

        mask = cube(self.map.hard_mask.astype(np.float32)) > 0.5
        b = mask.shape[0]
        c = b // 2
        r2 = 0.0
        for z in np.flatnonzero(mask.any(axis=(1, 2))):  # one plane at a time (bounded memory)
            yx = np.argwhere(mask[z])
            r2 = max(r2, float(((yx - c) ** 2).sum(axis=1).max() + (z - c) ** 2))
        r = np.sqrt(r2) * (1.0 + self.WINDOW_MARGIN) + self.WINDOW_PAD_PX
        w = 2 * int(np.ceil(r))
        return int(min(b - b % 2, max(self.MIN_WINDOW, w))) if b >= self.MIN_WINDOW else b

    @cached_property
    def in_window(self) -> np.ndarray:
        """(n, W, W) float32, read-only: :attr:`on_map_grid` cropped about its centre to the
        particle window (kernels/resample2d.window: pixel B//2 on W//2)."""
        from cryovalid.kernels.resample2d import window

        if self.window_box == self.box:
            return self.on_map_grid
        out = window(self.on_map_grid, self.window_box)
        out.flags.writeable = False
        return out

    @cached_property
    def window_projector(self):
        """The projector of the map made cubic and cropped about voxel B//2 to the particle
        window (W³; voxel B//2 on W//2, as :attr:`in_window`)."""
        from cryovalid.kernels.projection import Projector, cube

        vol = cube(self.map.data)
        b, w = vol.shape[0], self.window_box
        if w == b:
            return self.projector
        lo = b // 2 - w // 2
        return Projector(np.ascontiguousarray(vol[lo:lo + w, lo:lo + w, lo:lo + w]))


def _normalised_on_grid(particles, box: int, pixel_size: float, chunk: int,
                        ctf=None) -> np.ndarray:
    """(n, box, box) float32, read-only: the images of ``particles`` (io.particles.Particles)
    brought to ``box`` px of ``pixel_size`` Å by kernels/resample2d.to_grid, ``chunk`` at a
    time, each normalised to zero mean and unit standard deviation. ``ctf(indices)``, when
    given, returns their CTF on this grid's rfft2 grid (or None): the images are then phase-
    flipped (multiplied by the sign of their CTF in Fourier space) before the normalisation."""
    from cryovalid.kernels.resample2d import to_grid

    n = len(particles)
    out = np.empty((n, box, box), dtype=np.float32)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        g = to_grid(particles.images(np.arange(lo, hi)), particles.pixel_size, box, pixel_size)
        c = None if ctf is None else ctf(np.arange(lo, hi))
        if c is not None:
            g = scipy.fft.irfft2(scipy.fft.rfft2(g, workers=fourier.workers()) * np.sign(c),
                                 s=(box, box), workers=fourier.workers()).astype(np.float32)
        g -= g.mean(axis=(1, 2), keepdims=True)
        g /= np.maximum(g.std(axis=(1, 2), keepdims=True), 1e-30)
        out[lo:hi] = g
    out.flags.writeable = False
    return out


class ParticlesData:
    """Level 3: the user's particles (:class:`cryovalid.io.particles.Particles`) and what
    Levels 3's items share: the particles on the user classes' grid (the reference's
    ``protResizeAvgs``: box and pixel size of the *original* class stack, vrs_level2_5.md §0.2,
    kernels/resample2d.py, read and resampled ``CHUNK`` images at a time into one float32
    array, each image then normalised to zero mean and unit standard deviation), and the
    assignment of every particle to its best user class with its 2-D alignment
    (kernels/classify2d.assign; 3.a and 3.b). ``classes`` is the :class:`ClassesData` (None
    when no classes were given: Level 3 is then not run)."""

    CHUNK = 1024  # particles read and resampled at once

    def __init__(self, particles, map_data: MapData, classes=None):
        self.particles = particles
        self.map = map_data
        self.classes = classes

    @property
    def path(self) -> str:
        return self.particles.path

    @property
    def n(self) -> int:
        return len(self.particles)

    @property
    def box(self) -> int:
        """Edge (px) of the particles on the class grid (the user classes' box)."""
        if self.classes is None:
            raise ValueError("the particles have no class grid: no 2D classes were given")
        return int(self.classes.stack.data.shape[-1])

    @property
    def pixel_size(self) -> float:
        """Å per pixel on the class grid (the user classes' pixel size)."""
        if self.classes is None:
            raise ValueError("the particles have no class grid: no 2D classes were given")
        return float(self.classes.stack.pixel_size)

    # ---- Level 4: the particles with their angular assignment --------------------------------
    @property
    def eulers(self) -> np.ndarray:
        """(n, 3) float64 the user's (rot, tilt, psi) in degrees (RELION ZYZ)."""
        t = self.particles.table
        return np.asarray(t[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]], dtype=np.float64)

    def finite_eulers(self) -> np.ndarray:
        """:attr:`eulers`, after checking that there are particles and that every angle is a
        finite number (else CannotMeasure: the item says why)."""
        from cryovalid.errors import CannotMeasure

        e = self.eulers
        if len(e) == 0:
            raise CannotMeasure("the particle file lists no particles")
        if not np.all(np.isfinite(e)):
            bad = int(np.flatnonzero(~np.all(np.isfinite(e), axis=1))[0])
            raise CannotMeasure(f"some particles have angles that are not finite numbers "
                                f"(the first is particle {bad + 1})")
        return e

    @property
    def origins_A(self) -> np.ndarray:
        """(n, 2) float64 the user's (rlnOriginXAngst, rlnOriginYAngst) in Å (0 when absent):
        the translation that re-centres each image, i.e. minus the shift of its content."""
        t = self.particles.table
        out = np.zeros((self.n, 2))
        for j, col in enumerate(("rlnOriginXAngst", "rlnOriginYAngst")):
            if col in t.columns:
                out[:, j] = np.asarray(t[col], dtype=np.float64)
        return out

    @cached_property
    def ctf_parameters(self):
        """The CTF keywords of kernels/ctf.ctf_2d per particle (defocus U/V in Å, angle, phase
        shift, B, scale) plus ``voltage_kv``, ``cs_mm`` and ``q0``; None when the STAR file
        has no rlnDefocusU or the acquisition (kV, Cs, Q0) is unknown."""
        from cryovalid.kernels.ctf import particle_parameters

        pt = self.particles
        par = particle_parameters(pt.table, self.n)
        if par is None or None in (pt.voltage_kv, pt.cs_mm, pt.q0):
            return None
        par.update(voltage_kv=float(pt.voltage_kv), cs_mm=float(pt.cs_mm), q0=float(pt.q0))
        return par

    def ctf(self, which, grid) -> np.ndarray:
        """(k, b, b//2+1) float32 the CTF of the particles ``which`` on the rfft2 grid of
        ``grid`` (a :class:`ParticleGrid`), or None without CTF parameters."""
        from cryovalid.kernels.ctf import ctf_2d

        par = self.ctf_parameters
        if par is None:
            return None
        idx = np.arange(self.n)[which]
        keys = ("defocus_u", "defocus_v", "angle_deg", "phase_shift_deg", "bfactor", "scale")
        per = {k: np.broadcast_to(np.asarray(par[k], dtype=np.float64), (self.n,))[idx]
               for k in keys}
        return ctf_2d(grid.box, grid.pixel_size, voltage_kv=par["voltage_kv"],
                      cs_mm=par["cs_mm"], q0=par["q0"], **per)

    def grid(self, pixel_size: float) -> "ParticleGrid":
        """The particles and the map on one working grid of ``pixel_size`` Å (never finer than
        the map's voxel): computed once per pixel size (Levels 4's items share it)."""
        cache = self.__dict__.setdefault("_grids", {})
        px = max(float(pixel_size), float(self.map.voxel_size))
        key = round(px, 6)
        if key not in cache:
            cache[key] = ParticleGrid(self, px)
        return cache[key]

    @property
    def user_classes(self) -> np.ndarray:
        """(k, box, box) the original user classes (not the map-grid copies)."""
        return np.asarray(self.classes.stack.data, dtype=np.float32)

    @cached_property
    def on_class_grid(self) -> np.ndarray:
        """(n, box, box) float32, read-only: the particles on the class grid, normalised, and
        phase-flipped by their CTF when they carry one (:attr:`ctf_parameters`): 2D class
        averages are CTF-corrected, raw particles are not, and a CTF's contrast reversals
        between its zeros would otherwise decorrelate a particle from its own class."""
        flip = None if self.ctf_parameters is None else (lambda idx: self.ctf(idx, self))
        return _normalised_on_grid(self.particles, self.box, self.pixel_size, self.CHUNK,
                                   ctf=flip)

    @property
    def phase_flipped(self) -> bool:
        """Whether :attr:`on_class_grid` is phase-flipped (the particles carry a CTF)."""
        return self.ctf_parameters is not None

    @cached_property
    def assignment(self):
        """kernels/classify2d.Assignment of every particle to its best user class (blank
        classes, ClassesData.blank, are never candidates: their scores are −inf; indices are
        the stack's)."""
        from cryovalid.kernels.classify2d import assign

        kept = self.classes.require_classes()
        a = assign(self.on_class_grid, self.user_classes[kept], small=self.binned)
        if len(kept) < len(self.user_classes):  # back to the stack's numbering
            scores = np.full((self.n, len(self.user_classes)), -np.inf, dtype=np.float32)
            scores[:, kept] = a.scores
            a = type(a)(kept[a.best], a.psi, a.shift, a.cc, scores)
        return a

    @cached_property
    def binned(self) -> np.ndarray:
        """The particles on the class grid binned for the coarse searches (kernels/
        classify2d.search_box: pixel size raised to 3 Å; the same array when already
        coarser)."""
        from cryovalid.kernels.classify2d import binned, search_box

        return binned(self.on_class_grid, search_box(self.box, self.pixel_size))

    @cached_property
    def core(self):
        """(outlier (n,) bool, Mahalanobis distance (n,)) of the core analysis of every class
        with more than ``classify2d.MIN_CORE_IMAGES`` assigned particles (kernels/
        classify2d.core_distances; 3.a and 3.b); particles of smaller classes are core, at
        distance 0."""
        from cryovalid.kernels import classify2d

        best = self.assignment.best
        outlier = np.zeros(self.n, dtype=bool)
        distance = np.zeros(self.n)
        for c in range(len(self.user_classes)):
            idx = np.flatnonzero(best == c)
            if len(idx) <= classify2d.MIN_CORE_IMAGES:
                continue
            d = classify2d.core_distances(self.aligned(idx), classify2d.PCA_COMPONENTS)
            distance[idx] = d
            outlier[idx] = d >= classify2d.CORE_ZSCORE
        outlier.flags.writeable = False
        distance.flags.writeable = False
        return outlier, distance

    @cached_property
    def null_cc(self) -> np.ndarray:
        """Correlations with their best user class of phase-randomised copies of (a seeded
        subset of at most ``classify2d.NULL_SAMPLE``) particles on the class grid, after the
        same search as :attr:`assignment` (kernels/classify2d.phase_randomised): what images
        with the particles' power spectrum and no structure reach (3.a's null)."""
        from cryovalid.kernels import classify2d

        idx = np.arange(self.n)
        if self.n > classify2d.NULL_SAMPLE:
            idx = np.sort(np.random.default_rng(0).choice(self.n, classify2d.NULL_SAMPLE,
                                                          replace=False))
        fake = classify2d.phase_randomised(self.on_class_grid[idx], seed=0)
        small = classify2d.binned(fake, self.binned.shape[-1])
        return classify2d.assign(fake, self.user_classes[self.classes.kept], small=small).cc

    @cached_property
    def outliers(self):
        """kernels/classify2d.OutlierTest of every particle's best correlation (3.a)."""
        from cryovalid.kernels import classify2d

        a = self.assignment
        return classify2d.outlier_test(a.cc, a.best, self.null_cc)

    def aligned(self, which) -> np.ndarray:
        """The particles ``which`` (indices) on the class grid, turned and shifted into the
        frame of their assigned class."""
        from cryovalid.kernels.classify2d import aligned

        a = self.assignment
        idx = np.asarray(which)
        return aligned(self.on_class_grid[idx], a.psi[idx], a.shift[idx])


class ParticleGrid:
    """The particles and the map on a common working grid (vrs_level2_5.md §0.2: the
    reference's ``protResizeMap`` and ``resizeProject`` copies): the map made cubic
    (kernels/projection.cube) and Fourier-cropped to ``box`` = 2·round(B·Ts/pixel/2) voxels of
    ``pixel_size`` Å (the same physical box), the particles brought to that box and pixel size
    by kernels/resample2d.to_grid (read ``CHUNK`` at a time), each normalised to zero mean and
    unit standard deviation. ``shifts`` (n, 2) px on this grid is where each image's content
    sits, (dx, dy) = −origin/pixel (kernels/align2d's convention: ``image ≈ shift(projection,
    t)``)."""

    CHUNK = 1024

    def __init__(self, particles: ParticlesData, pixel_size: float):
        from cryovalid.kernels.projection import cube

        self.particles = particles
        m = particles.map
        vol = cube(m.data)
        big = vol.shape[0]
        box = 2 * int(round(big * float(m.voxel_size) / pixel_size / 2.0))
        self.box = int(min(big, max(box, 16)))
        self.pixel_size = big * float(m.voxel_size) / self.box
        self._cube = vol

    @cached_property
    def volume(self) -> np.ndarray:
        """(box, box, box) float32: the (cubic) map on this grid."""
        from cryovalid.kernels.filterbank import fourier_resample

        vol = self._cube
        if vol.shape[0] == self.box:
            return np.ascontiguousarray(vol, dtype=np.float32)
        m = self.particles.map
        # a cubic map's transform is the map's own (cached, shared with the other items)
        ft = (m.ft if vol.shape == tuple(m.shape)
              else scipy.fft.rfftn(vol, workers=fourier.workers()))
        return fourier_resample(ft, vol.shape, (self.box,) * 3)

    @cached_property
    def images(self) -> np.ndarray:
        """(n, box, box) float32, read-only: the particles on this grid, normalised."""
        return _normalised_on_grid(self.particles.particles, self.box, self.pixel_size,
                                   self.CHUNK)

    @property
    def shifts(self) -> np.ndarray:
        """(n, 2) px on this grid: the content shift (dx, dy) of each image."""
        return -self.particles.origins_A / self.pixel_size

    @property
    def eulers(self) -> np.ndarray:
        return self.particles.eulers

    def ctf(self, which=slice(None)) -> np.ndarray:
        """(k, box, box//2+1) float32 CTF of the particles ``which`` on this grid, or None."""
        return self.particles.ctf(which, self)

    @cached_property
    def projector(self):
        """kernels/projection.Projector of :attr:`volume`."""
        from cryovalid.kernels.projection import Projector

        return Projector(self.volume)

    def landscape(self, symmetry: str, step: float, cutoff_A=None, reference: bool = False):
        """kernels/landscape.Landscape of the particles on this grid (with ``reference``: of
        their noise-free references) over the gallery of ``step``° directions of
        ``symmetry``, low-passed at ``cutoff_A`` Å (None: none); computed once per arguments
        (4.b and 4.c share it)."""
        from cryovalid.kernels.landscape import compute

        cache = self.__dict__.setdefault("_landscapes", {})
        key = (str(symmetry).lower(), round(float(step), 6),
               None if cutoff_A is None else round(float(cutoff_A), 6), bool(reference))
        if key not in cache:
            cache[key] = compute(self, symmetry, step, cutoff_A, reference)
        return cache[key]


class MicrographsData:
    """Level 5: the user's micrographs (:class:`cryovalid.io.micrographs.Micrographs`), the
    particles' coordinates on them and each micrograph's bad regions (kernels/
    micrograph_quality.assess, computed once per micrograph and cached).

    Coordinates (vrs_level2_5.md §4.0): each particle's ``rlnMicrographName`` is matched to a
    micrograph by basename, else by basename without its extension (io.micrographs.Micrographs.
    index, which the tilt pairs of O.c use too); particles whose micrograph
    is not among those given are counted (:attr:`Coordinates.n_unmatched`; the reference skips
    them silently). ``rlnCoordinateX/Y`` are read in micrograph pixels when the STAR file has
    ``rlnMicrographPixelSize`` (scaled by it / the micrographs' pixel size); otherwise two
    conventions are tried: RELION's (the micrograph's own pixels, scale 1) and the reference's
    (pwem ``ProtExtractCoords``: particle pixels, scale s = Ts_particles / Ts_micrographs). Of
    those under which at most ``OUTSIDE_TOLERANCE`` of the coordinates fall off their
    micrograph, the one of the largest scale is used (coordinates that all lie in the first 1/s
    of the micrographs are in particle pixels); when neither fits, the one with fewer off;
    :attr:`Coordinates.convention` says which. The particle box on the micrographs is the
    particles' box × Ts_particles / Ts_micrographs (the same physical size). ``particles`` is
    the :class:`ParticlesData` (None: no coordinates)."""

    OUTSIDE_TOLERANCE = 0.01

    def __init__(self, micrographs, particles=None):
        self.micrographs = micrographs
        self.particles = particles
        self._quality = {}
        self.quality_errors = {}  # micrograph index -> why its bad regions were not computed

    @property
    def n(self) -> int:
        return len(self.micrographs)

    @property
    def pattern(self) -> str:
        return self.micrographs.pattern

    @property
    def pixel_size(self) -> float:
        return float(self.micrographs.pixel_size)

    @cached_property
    def coordinates(self) -> "Coordinates":
        return _coordinates(self.micrographs, self.particles, self.OUTSIDE_TOLERANCE)

    def quality(self, i: int):
        """kernels/micrograph_quality.Quality of micrograph ``i`` (cached), or None when it
        cannot be computed (no particle box; a micrograph with NaN or constant values:
        :attr:`quality_errors` says why)."""
        from cryovalid.kernels.micrograph_quality import assess

        if i not in self._quality and i not in self.quality_errors:
            c = self.coordinates
            if not c.available:
                self.quality_errors[i] = c.reason
            else:
                try:
                    self._quality[i] = assess(self.micrographs.image(i), c.box_px)
                except ValueError as exc:
                    self.quality_errors[i] = str(exc)
        return self._quality.get(i)


class Coordinates:
    """The particles' coordinates on the micrographs (see :class:`MicrographsData`).

    ``available`` / ``reason``: whether there are any ('' or why not); ``mic`` (k,) int the
    micrograph of each matched particle, ``xy`` (k, 2) float (x, y) in micrograph pixels,
    ``particle`` (k,) int its row in the particles' table; ``n_unmatched`` particles whose
    micrograph was not given (``unmatched_names``: the first few names); ``n_outside`` matched
    coordinates off their micrograph (kept, their box partly outside); ``box_px`` the particle
    box in micrograph pixels; ``convention`` the unit of rlnCoordinateX/Y used, in words."""

    def __init__(self, reason="", mic=None, xy=None, particle=None, n_unmatched=0,
                 unmatched_names=(), n_outside=0, box_px=0.0, convention="", n_particles=0):
        self.reason = reason
        self.available = not reason
        self.mic = np.zeros(0, dtype=np.int64) if mic is None else mic
        self.xy = np.zeros((0, 2)) if xy is None else xy
        self.particle = np.zeros(0, dtype=np.int64) if particle is None else particle
        self.n_unmatched = int(n_unmatched)
        self.unmatched_names = list(unmatched_names)
        self.n_outside = int(n_outside)
        self.box_px = float(box_px)
        self.convention = convention
        self.n_particles = int(n_particles)

    def on(self, i: int) -> np.ndarray:
        """The indices (into ``mic``/``xy``) of the coordinates on micrograph ``i``."""
        return np.flatnonzero(self.mic == i)


def _coordinates(mics, particles, tolerance) -> Coordinates:
    import os

    if particles is None:
        return Coordinates("no particles were given (give them with --particles FILE.star, "
                           "with rlnMicrographName and rlnCoordinateX/Y)")
    pt = particles.particles
    lacking = pt.missing("rlnMicrographName", "rlnCoordinateX", "rlnCoordinateY")
    if lacking:
        return Coordinates(f"the particles' file has no {', '.join(lacking)} column"
                           f"{'s' if len(lacking) > 1 else ''}, so the particles cannot be "
                           f"placed on the micrographs")
    t = pt.table
    names = [os.path.basename(str(v).strip()) for v in t["rlnMicrographName"]]
    index = mics.index(names)
    xy_raw = np.stack([np.asarray(t["rlnCoordinateX"], dtype=np.float64),
                       np.asarray(t["rlnCoordinateY"], dtype=np.float64)], axis=1)
    matched = (index >= 0) & np.isfinite(xy_raw).all(axis=1)
    unmatched = sorted({names[i] for i in np.flatnonzero(index < 0)})
    ts_m, ts_p = float(mics.pixel_size), float(pt.pixel_size)
    box_px = pt.box * ts_p / ts_m
    if not matched.any():
        return Coordinates(f"none of the {len(pt)} particles' micrographs (rlnMicrographName, "
                           f"e.g. {names[0]!r}) is among the {mics.n} micrographs given "
                           f"(e.g. {mics.names[0]!r})", n_unmatched=int(np.count_nonzero(~matched)),
                           unmatched_names=unmatched[:5], n_particles=len(pt))
    mic = index[matched]
    raw = xy_raw[matched]
    shapes = np.asarray(mics.shapes, dtype=np.float64)  # (ny, nx)
    limit = shapes[mic][:, ::-1]  # (nx, ny) of each coordinate's micrograph

    def outside(scale):
        xy = raw * scale
        return int(np.count_nonzero(((xy < 0) | (xy >= limit)).any(axis=1)))

    if "rlnMicrographPixelSize" in t.columns:
        tsc = float(np.median(np.asarray(t["rlnMicrographPixelSize"], dtype=np.float64)))
        options = [(tsc / ts_m, f"micrograph pixels of {tsc:g} Å (rlnMicrographPixelSize)")]
    else:
        options = [(1.0, "pixels of the micrographs given (RELION's convention)"),
                   (ts_p / ts_m, f"pixels of the particles, {ts_p:g} Å (the reference's "
                                 f"convention), scaled by {ts_p / ts_m:.4g}")]
    counts = [outside(s) for s, _ in options]
    fits = [j for j, c in enumerate(counts) if c <= tolerance * len(raw)]
    # the largest scale that fits: coordinates that fill only the first 1/s of the
    # micrographs are in pixels s times larger
    pick = max(fits, key=lambda j: options[j][0]) if fits else int(np.argmin(counts))
    scale, convention = options[pick]
    return Coordinates(mic=mic, xy=raw * scale, particle=np.flatnonzero(matched),
                       n_unmatched=int(np.count_nonzero(~matched)),
                       unmatched_names=unmatched[:5], n_outside=counts[pick], box_px=box_px,
                       convention=convention, n_particles=len(pt))
