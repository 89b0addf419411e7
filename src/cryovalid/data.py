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
