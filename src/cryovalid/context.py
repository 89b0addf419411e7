"""The analysis context: inputs plus the expensive intermediates, computed once and shared.

Every check receives the same :class:`Context`. Masks, Fourier transforms and shells are
``cached_property`` values: the first check that asks computes them, the others reuse them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from cryovalid.errors import InputError
from cryovalid.io.maps import Map
from cryovalid.kernels import fourier, masks
from cryovalid.kernels.filterbank import FilterBank
from cryovalid.kernels.resample import ResampledMap, resample_map


@dataclass
class Context:
    map: Map
    threshold: float
    resolution: float | None = None  # reported resolution in Å (None = not reported)
    out_dir: str = "."
    threshold_method: str = "given by the user"
    half_maps: tuple | None = None  # (Map, Map) for Level 1
    threshold_estimate: dict | None = None  # kernels.threshold.estimate(...).to_dict() if automatic
    timings: dict = field(default_factory=dict)

    # ---- paths -------------------------------------------------------------------------
    def path(self, *parts) -> str:
        """The path of an output file under ``out_dir``, its folder created. An input file is
        never written over: InputError if the path is (a link to) the map or a half map. (The
        command line writes into a fresh staging folder, so this is a second line of defence
        for programs that give their own ``out_dir``.)"""
        p = os.path.join(self.out_dir, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if os.path.exists(p):
            for m in (self.map, *(self.half_maps or ())):
                if m.path and os.path.exists(m.path) and os.path.samefile(p, m.path):
                    raise InputError(f"{m.path}: this input lies where the report writes "
                                     f"({p}); it would be replaced: choose another output "
                                     f"folder")
        return p

    @property
    def figure_dir(self) -> str:
        return os.path.join(self.out_dir, "figures")

    # ---- shared intermediates ----------------------------------------------------------
    @property
    def voxel_size(self) -> float:
        return self.map.voxel_size

    @cached_property
    def hard_mask(self) -> np.ndarray:
        """Boolean hard mask of the map (reference recipe, see kernels.masks)."""
        return masks.hard_mask(self.map.data, self.threshold, self.voxel_size)

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
    def soft_mask(self) -> np.ndarray:
        return masks.soft_mask(self.hard_mask)

    @cached_property
    def raw_mask(self) -> np.ndarray:
        """V >= T, before keeping the largest component."""
        return self.map.data >= self.threshold

    @cached_property
    def map_ft(self) -> np.ndarray:
        """rfft of the map (complex64); read-only, shared."""
        ft = fourier.rfft(self.map.data)
        ft.flags.writeable = False
        return ft

    @cached_property
    def shells(self) -> fourier.FourierShells:
        return fourier.FourierShells(self.map.shape, self.voxel_size)

    @cached_property
    def half_fts(self) -> tuple:
        """(F1, F2): rfft of the two half maps (complex64, read-only), shared by the Level 1
        items. The halves have the main map's shape (checked on input), so ``shells`` applies."""
        if self.half_maps is None:
            raise ValueError("no half maps")
        out = []
        for h in self.half_maps:
            ft = fourier.rfft(h.data)
            ft.flags.writeable = False
            out.append(ft)
        return tuple(out)

    @cached_property
    def filter_bank(self) -> FilterBank:
        """Band-pass + Riesz filter bank on the map's own grid, built on ``map_ft`` (0.e, and
        Level 1's MonoRes/MonoDir)."""
        return FilterBank(self.map_ft, self.map.shape,
                          [n * self.voxel_size for n in self.map.shape])

    @cached_property
    def resized(self) -> ResampledMap:
        """The reference's resized map: Fourier-cropped to Ts' ≈ R/2 (box 2·ceil(N·Ts/Ts'/2)
        per axis, never enlarged), with its own hard mask and filter bank (0.f, 0.g).
        Requires a reported resolution."""
        if self.resolution is None:
            raise ValueError("the resized map needs the reported resolution")
        return resample_map(self.map.data, self.map_ft, self.voxel_size, self.resolution / 2.0,
                            self.threshold)
