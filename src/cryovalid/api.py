"""The one entry point: ``validate(inputs, options, store=..., progress=...) -> report``.

Every front end calls it: the command line today, the EMDB entry mode, the batch runner and the
web service later. It reads and checks the inputs, chooses the threshold when none is given,
runs every item, builds the report and writes it through the store. It prints nothing, never
exits, and returns the report (the dict written as report.json); bad input raises
:class:`cryovalid.errors.InputError` with a one-line message naming the file and the problem.

Example::

    from cryovalid import Inputs, Options, validate

    report = validate(Inputs("emd_3488.map.gz"), Options(resolution=3.2), store="out/emd_3488")
    print(report["score"])
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from cryovalid.errors import InputError

# particles analysed by default (Levels 3 and 4; their benchmarks' size: Level 3 in about 4 min,
# Level 4 in about 2.5 min on 2 cores, and the particles on their grids within a few GB)
MAX_PARTICLES = 10000

FORMATS = ("json", "html", "pdf")
NYQUIST_VOXELS = 2.0  # the finest resolution a grid holds is 2 voxels (Nyquist)


@dataclass(frozen=True)
class Inputs:
    """What the user gives, as file paths; each is optional but the map. Every later input
    (mask, atomic model, particles, classes, micrographs, cross-links, SAXS curve, workflow)
    is added here, and checked where it is read."""

    map: str
    half_maps: Optional[tuple] = None  # (H1, H2)
    model: Optional[str] = None  # atomic model, PDB or mmCIF (.gz too): Level A
    classes: Optional[str] = None  # 2D class averages, an MRC stack (.mrcs): Level 2
    particles: Optional[str] = None  # RELION STAR (or a stack) of the particles: Level 3
    # the one stack all the STAR's particles are in, whatever the STAR names it (the service
    # stores an uploaded stack under a fixed name); None: the stacks the STAR names
    particles_stack: Optional[str] = None
    angles_b: Optional[str] = None  # a second angular assignment of the particles (STAR): 4.d
    crosslinks: Optional[str] = None  # XL-MS cross-links (Jwalk or CSV): Level O (O.a)
    saxs: Optional[str] = None  # an experimental SAXS curve (.dat): Level O (O.b)
    workflow: Optional[str] = None  # Scipion workflow JSON or RELION pipeline STAR: Level W
    tilt_pairs: Optional[tuple] = None  # (untilted, tilted) particle stacks or STARs: O.c
    micrographs: Optional[str] = None  # a glob pattern of the micrographs (MRC): Level 5
    # a glob of the tilt pairs' micrographs (O.c): tilt_pairs are then coordinate STAR files
    tilt_micrographs: Optional[str] = None
    # an archive entry's metadata and sources for the front page (cryovalid.emdb.entry)
    entry: Optional[dict] = field(default=None, compare=False)
    # the names the report shows for the inputs, by key ("map", "half_map_1", "half_map_2",
    # "model", "classes"), where they differ from the files' own (the service stores uploads
    # under fixed names and shows the names they were uploaded with)
    names: Optional[dict] = field(default=None, compare=False)

    def paths(self) -> list:
        """Every input file (the store never writes over one of them)."""
        return [self.map, *(self.half_maps or ()),
                *(p for p in (self.model, self.classes, self.particles,
                              self.particles_stack, self.angles_b,
                              self.crosslinks, self.saxs, self.workflow) if p),
                *(self.tilt_pairs or ()), *self.micrograph_paths(),
                *(self.micrograph_paths(self.tilt_micrographs) if self.tilt_micrographs else ())]

    def micrograph_paths(self, pattern: Optional[str] = None) -> list:
        """The files the micrographs' glob pattern (or ``pattern``, e.g. the tilt pairs')
        matches, sorted ([] without one)."""
        pattern = self.micrographs if pattern is None else pattern
        if not pattern:
            return []
        import glob

        return sorted(glob.glob(os.path.expanduser(pattern)))


@dataclass(frozen=True)
class Options:
    """How to grade: numbers in Å or map units as stated."""

    threshold: Optional[float] = None  # visualisation contour (map units); None: automatic
    resolution: Optional[float] = None  # reported resolution (Å); None: items needing it say so
    voxel_size: Optional[float] = None  # Å, overriding the map header(s)
    formats: tuple = field(default=FORMATS)  # report.json is always written
    workers: Optional[int] = None  # FFT threads (None: CRYOVALID_WORKERS, else every CPU)
    levels: Optional[tuple] = None  # level IDs to grade, e.g. ("0", "1"); None: every level
    classes_pixel: Optional[float] = None  # Å, overriding the class stack's header
    symmetry: str = "c1"  # point group of the particle: c1, cN, dN, t, o, i
    particles_pixel: Optional[float] = None  # Å, overriding the particles' STAR / header
    # particles analysed at most (a seeded random subset beyond; 0: all); Level 5 uses every
    # particle's coordinates
    max_particles: Optional[int] = None  # None: MAX_PARTICLES
    voltage_kv: Optional[float] = None  # acquisition, overriding the STAR file's
    cs_mm: Optional[float] = None
    q0: Optional[float] = None  # amplitude contrast (fraction)
    crosslink_max_A: Optional[float] = None  # O.a: the linker's longest SASD (None: by linker)
    tilt_angle: Optional[float] = None  # O.c: the nominal tilt of the pairs, degrees
    tilt_pixel: Optional[float] = None  # O.c: Å per pixel of the pair images (else the header)
    micrographs_pixel: Optional[float] = None  # Level 5: Å per pixel of the micrographs


def check_resolution(resolution, m) -> None:
    """Raise InputError unless the reported resolution lies between the map's Nyquist limit
    (2 voxels) and its box (the shortest edge in Å): outside, no Fourier shell can hold it."""
    if resolution is None:
        return
    nyquist = NYQUIST_VOXELS * m.voxel_size
    if resolution < nyquist * (1.0 - 1e-6):
        raise InputError(f"{m.path}: resolution {resolution:g} Å is finer than the map's Nyquist "
                         f"limit, {NYQUIST_VOXELS:g} × {m.voxel_size:g} Å = {nyquist:g} Å, which "
                         f"no map can reach; check --resolution and the voxel size")
    box = min(m.shape) * m.voxel_size
    if resolution > box:
        raise InputError(f"{m.path}: resolution {resolution:g} Å is larger than the map's box "
                         f"({box:g} Å along its shortest edge); check --resolution and the "
                         f"voxel size")


def check_levels(levels) -> Optional[tuple]:
    """The asked level IDs, upper-cased and in report order, or None for every level; raise
    InputError for a level that does not exist or has no items in this version."""
    if levels is None:
        return None
    from cryovalid.pipeline import LEVELS

    if isinstance(levels, str):
        levels = levels.split(",")
    wanted = {str(v).strip().upper() for v in levels if str(v).strip()}
    known = {lv.id: lv for lv in LEVELS}
    unknown = sorted(v for v in wanted if v not in known)
    if unknown or not wanted:
        raise InputError(f"unknown level(s) {', '.join(unknown) or '(none)'}; choose from "
                         f"{', '.join(lv.id for lv in LEVELS if lv.available)}")
    missing = [v for v in wanted if not known[v].available]
    if missing:
        raise InputError(f"level(s) {', '.join(sorted(missing))} have no items in this version; "
                         f"choose from {', '.join(lv.id for lv in LEVELS if lv.available)}")
    return tuple(lv.id for lv in LEVELS if lv.id in wanted)


def check_symmetry(text) -> str:
    """The point group in lower case (c1, cN, dN, t, o, i); InputError otherwise."""
    import re

    sym = str(text or "c1").strip().lower()
    if not re.fullmatch(r"[cd][1-9]\d*|t|o|i", sym):
        raise InputError(f"symmetry {text!r} is not a point group: give c1, cN, dN, t, o or i")
    return sym


def _check_something_is_graded(ctx) -> None:
    """Raise InputError when --levels leaves no level to grade (each asked level lacks its
    input): a report that grades nothing is a mistake, not a result."""
    from cryovalid.pipeline import LEVELS, level_state

    if ctx.levels is None:
        return
    states = {lv.id: level_state(lv, ctx) for lv in LEVELS}
    if not any(states[v] == "graded" for v in ctx.levels):
        lacking = "; ".join(f"level {lv.id} needs {lv.needs} ({lv.option})" for lv in LEVELS
                            if lv.id in ctx.levels)
        raise InputError(f"{ctx.map.path}: nothing to grade with --levels "
                         f"{','.join(ctx.levels)}: {lacking}")


def _check_formats(formats) -> tuple:
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputError(f"unknown format(s) {', '.join(bad) or '(none)'}; choose from "
                         f"{', '.join(FORMATS)}")
    return tuple(formats)


def validate(inputs: Inputs, options: Options = Options(), store=None,
             progress: Optional[Callable] = None) -> dict:
    """Validate ``inputs`` and write the report through ``store``; return the report dict.

    ``store``: an :class:`cryovalid.io.output.OutputFolder` the caller owns (and releases), or a
    folder path, for which one is made (refusing a folder that holds another report) and
    released here. ``progress(label, seconds, status)`` is called after each step."""
    from cryovalid.io.output import OutputFolder
    from cryovalid.kernels import fourier

    formats = _check_formats(options.formats)
    check_levels(options.levels)
    check_symmetry(options.symmetry)
    if store is None:
        raise ValueError("validate() needs a store: an OutputFolder or a folder path")
    own = not isinstance(store, OutputFolder)
    if own:
        store = OutputFolder(str(store), inputs=inputs.paths())
    try:
        with fourier.using_workers(options.workers):  # this call only, not the process
            return _run(inputs, options, formats, store, progress)
    except InputError:
        if own:
            store.abandon(keep=False)
        raise
    except BaseException:  # work already done stays in the staging folder
        if own:
            store.abandon(keep=True)
        raise
    finally:
        if own:
            store.release()


def _run(inputs, options, formats, store, progress) -> dict:
    from cryovalid.context import Context
    from cryovalid.io.maps import read_map
    from cryovalid.kernels import threshold as thr
    from cryovalid.pipeline import run_analyses
    from cryovalid.report import model, render
    from cryovalid.store import FolderStore

    t_start = time.perf_counter()
    m = read_map(inputs.map, voxel_size=options.voxel_size)
    check_resolution(options.resolution, m)
    halves = None
    if inputs.half_maps:
        from cryovalid.io.halfmaps import read_half_maps

        h1, h2 = inputs.half_maps
        halves = read_half_maps(h1, h2, m, voxel_size=options.voxel_size)
    classes = None
    if inputs.classes:
        from cryovalid.io.stacks import read_classes

        classes = read_classes(inputs.classes, pixel_size=options.classes_pixel)
    particles = None
    if inputs.particles:
        from cryovalid.io.particles import read_particles

        particles = read_particles(inputs.particles, pixel_size=options.particles_pixel,
                                   voltage_kv=options.voltage_kv, cs_mm=options.cs_mm,
                                   q0=options.q0, stack=inputs.particles_stack)
    other = {}  # Level 4's second assignment and the Level O and W inputs, each read and checked
    if inputs.angles_b:
        from cryovalid.io.angles import read_angles

        other["angles_b"] = read_angles(inputs.angles_b)
    if inputs.crosslinks:
        from cryovalid.io.crosslinks import read_crosslinks

        other["crosslinks"] = read_crosslinks(inputs.crosslinks,
                                              max_distance_A=options.crosslink_max_A)
    if inputs.saxs:
        from cryovalid.io.saxs import read_saxs

        other["saxs"] = read_saxs(inputs.saxs)
    if inputs.workflow:
        from cryovalid.io.workflow import read_workflow

        other["workflow"] = read_workflow(inputs.workflow)
    if inputs.tilt_micrographs and not inputs.tilt_pairs:
        raise InputError(f"{inputs.tilt_micrographs}: --tilt-micrographs needs --tilt-pairs "
                         f"UNTILTED.star TILTED.star, the paired coordinates on them")
    if inputs.tilt_pairs and inputs.tilt_micrographs:  # coordinates on micrograph pairs
        from cryovalid.io.tiltpairs import read_tilt_pairs_from_micrographs

        untilted, tilted = inputs.tilt_pairs
        other["tilt_pairs"] = read_tilt_pairs_from_micrographs(
            untilted, tilted, inputs.tilt_micrographs,
            inputs.micrograph_paths(inputs.tilt_micrographs), map_box=int(max(m.shape)),
            map_voxel=m.voxel_size, tilt_angle=options.tilt_angle, pixel_size=options.tilt_pixel)
    elif inputs.tilt_pairs:
        from cryovalid.io.tiltpairs import read_tilt_pairs

        untilted, tilted = inputs.tilt_pairs
        other["tilt_pairs"] = read_tilt_pairs(untilted, tilted, tilt_angle=options.tilt_angle,
                                              pixel_size=options.tilt_pixel)
    micrographs = None
    if inputs.micrographs:
        from cryovalid.io.micrographs import read_micrographs

        micrographs = read_micrographs(inputs.micrographs, inputs.micrograph_paths(),
                                       pixel_size=options.micrographs_pixel)
    atomic_model = None
    if inputs.model:
        from cryovalid.io.model import read_model

        atomic_model = read_model(inputs.model)
    t_read = time.perf_counter() - t_start
    estimate, t_thr = None, 0.0
    if options.threshold is None:
        try:
            t0 = time.perf_counter()
            est = thr.estimate(m.data, m.voxel_size)
            t_thr = time.perf_counter() - t0
        except ValueError as exc:
            raise InputError(f"{inputs.map}: no threshold can be chosen automatically "
                             f"({exc}); give one with --threshold") from None
        threshold, method, estimate = est.threshold, est.method, est.to_dict()
    else:
        threshold = float(options.threshold)
        method = ("the recommended contour of the EMDB entry" if inputs.entry
                  else "given by the user")
    vmin, vmax = float(m.data.min()), float(m.data.max())
    if threshold >= vmax:
        raise InputError(f"{inputs.map}: threshold {threshold:g} is at or above the map "
                         f"maximum ({vmax:g}); the mask would be empty, lower the threshold")
    if threshold <= vmin:
        raise InputError(f"{inputs.map}: threshold {threshold:g} is at or below the map "
                         f"minimum ({vmin:g}); the whole box would be masked, raise the "
                         f"threshold")
    ctx = Context.of(m, float(threshold), resolution=options.resolution, half_maps=halves,
                     threshold_method=method, threshold_estimate=estimate,
                     levels=check_levels(options.levels), **other)
    if atomic_model is not None:
        from cryovalid.data import ModelData

        ctx.model = ModelData(atomic_model, ctx.map, options.resolution)
    if classes is not None:
        from cryovalid.data import ClassesData

        ctx.classes = ClassesData(classes, ctx.map)
    if particles is not None:
        from cryovalid.data import ParticlesData

        used = particles.subset(MAX_PARTICLES if options.max_particles is None
                                else options.max_particles)
        ctx.particles = ParticlesData(used, ctx.map, ctx.classes)
    if micrographs is not None:
        from cryovalid.data import MicrographsData, ParticlesData

        every = ctx.particles  # Level 5 reads coordinates only: every particle's
        if particles is not None and every.particles is not particles:
            every = ParticlesData(particles, ctx.map, ctx.classes)
        ctx.micrographs = MicrographsData(micrographs, every)
    ctx.symmetry = check_symmetry(options.symmetry)
    _check_something_is_graded(ctx)
    # everything is written into the store's staging folder (locked, checked against the
    # inputs) and moved into place at the end: see io/output.py
    staging = store.prepare()
    timings = {"read": t_read}
    if estimate is not None:
        timings["automatic threshold"] = t_thr
    # figures only for the formats that show them (json alone draws none)
    sections, results = run_analyses(ctx, progress=progress,
                                     figures=bool({"html", "pdf"} & set(formats)),
                                     store=FolderStore(staging), timings=timings)
    rep = model.build(ctx, sections, results, timings, entry=inputs.entry, names=inputs.names)
    # report.json is always written (it is the machine-readable truth), last, so that it
    # holds the timings of the other writers too
    for fmt in [f for f in formats if f != "json"]:
        t0 = time.perf_counter()
        render.WRITERS[fmt](rep, staging)
        timings[f"write {fmt}"] = time.perf_counter() - t0
    rep["timings_s"] = {k: round(float(v), 3) for k, v in timings.items()}
    render.write_json(rep, staging)
    store.commit()
    return rep
