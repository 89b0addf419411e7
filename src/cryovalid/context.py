"""What the items of one report see: one data object per input, and the options.

Every item receives the same :class:`Context`. It holds no cache of its own: the intermediates
live with the input they come from (:mod:`cryovalid.data`), so an item that needs the map's
Fourier transform asks ``ctx.map.ft`` and one that needs the half maps' asks
``ctx.half_maps.fts``. An input that was not given is None; items declare what they need
(``REQUIRES``) and are not run without it.
"""
from __future__ import annotations

from dataclasses import dataclass

from cryovalid.data import HalfMapsData, MapData
from cryovalid.io.maps import Map


@dataclass
class Context:
    map: MapData | None = None
    resolution: float | None = None  # reported resolution in Å (None = not reported)
    half_maps: HalfMapsData | None = None
    model: object | None = None  # Level A: the atomic model's data (None = not given)
    classes: object | None = None  # Level 2: the 2D class averages' data (None = not given)
    symmetry: str = "c1"  # the particle's point group (c1, cN, dN, t, o, i)
    particles: object | None = None  # Level 3: the particles' data (None = not given)
    angles_b: object | None = None  # Level 4 (4.d): a second angular assignment (io.angles)
    crosslinks: object | None = None  # Level O: cross-links (io.crosslinks.Crosslinks)
    saxs: object | None = None  # Level O: the experimental SAXS curve (io.saxs.SaxsCurve)
    workflow: object | None = None  # Level W: the processing workflow (io.workflow.Workflow)
    tilt_pairs: object | None = None  # Level O (O.c): paired particles (io.tiltpairs.TiltPairs)
    micrographs: object | None = None  # Level 5: the micrographs' data (data.MicrographsData)
    levels: tuple | None = None  # the level IDs asked for (None = every level whose input is given)

    @classmethod
    def of(cls, map: Map, threshold: float, resolution: float | None = None,
           half_maps=None, threshold_method: str = "given by the user",
           threshold_estimate: dict | None = None, **inputs) -> "Context":
        """A context from plain inputs: a :class:`Map`, its threshold, the resolution and
        optionally the two half maps ((Map, Map)) and other inputs' data objects."""
        halves = None if half_maps is None else HalfMapsData(*half_maps)
        return cls(map=MapData(map, threshold, threshold_method, threshold_estimate),
                   resolution=resolution, half_maps=halves, **inputs)
