"""4.b Alignability smoothness (vrs_level2_5.md §3.2; the reference runs Xmipp's
``angular_assignment_mag --useForValidation`` of XmippProtAngularGraphConsistency and reads
``graphDistance2MaxPrevious``).

Each particle's correlation landscape over a gallery of projection directions
(:mod:`cryovalid.kernels.landscape`: the particle centred by the user's shift and phase-flipped
by its CTF, the map's projections filtered by the particles' mean |CTF|, best correlation over
the in-plane angle) is low-passed on the graph of the gallery directions (the first
eigenvectors of its Laplacian); the distance (degrees) is the angle between the user's
projection direction and the direction of the smoothed landscape's maximum, the smallest over
the point group (projection directions only, spec §6.7). A particle whose assignment is right
has its maximum near its direction; a wrong one, or an image with too little signal to be
aligned, is anywhere.

Metrics: mean_distance_deg, median_distance_deg, percent_above (% of the particles farther than
DISTANCE_LIMIT_DEG), n_particles, n_used (at most landscape.MAX_PARTICLES, a seeded random
subset), n_directions (gallery), n_eigenvectors, pixel_size_A, box, step_deg.
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.items.base import Curves, Fact, new_result
from cryovalid.kernels import landscape as land
from cryovalid.kernels import projection

ID = "4.b"
LEVEL = "4"
REQUIRES = ("angles", "resolution")
TITLE = "Alignability smoothness"
SECTION = "Level 4 analysis"

DISTANCE_LIMIT_DEG = 10.0  # a particle is away from the smoothed maximum beyond this (strict)
PERCENT_LIMIT = 30.0  # warn when more than this % of the particles are away (strict)

WARN_AWAY = ("The percentage of images whose angular assignment is significantly away from "
             "the smoothed maximum is too high, {percent:.1f}%")

EXPLANATION = (
    "Each particle is compared with projections of the map from a gallery of directions every "
    f"{land.STEP_DEG:g}° (the best correlation over the in-plane rotation, after centring the "
    "particle with the user's shift and correcting the sign of its CTF), which gives a "
    "landscape of correlation over the directions. The landscape is smoothed on the graph of "
    f"neighbouring directions (within {land.GRAPH_RADIUS:g} steps; the low-frequency "
    "eigenvectors of the graph Laplacian), so that an isolated spike does not count. The "
    "distance is the angle between the direction the user assigned and the maximum of the "
    "smoothed landscape (the smallest over the symmetry). A particle whose assignment is "
    "right has a smooth landscape peaking near its direction; a wrong assignment, or an image "
    "with too little signal to be aligned, peaks anywhere.")
CRITERIA = (
    f"OK if at most {PERCENT_LIMIT:g}% of the particles have their angular assignment further "
    f"than {DISTANCE_LIMIT_DEG:g}° from the maximum of their smoothed correlation landscape; "
    "one warning otherwise.")


def run(ctx):
    res = new_result(sys.modules[__name__])
    pd = ctx.particles
    user = pd.finite_eulers()
    r = float(ctx.resolution)
    grid = pd.grid(land.working_pixel(ctx.map.voxel_size, r))
    sym = ctx.symmetry
    ls = grid.landscape(sym, land.STEP_DEG, cutoff_A=r)
    n_all, user = len(user), user[ls.rows]
    basis = land.gallery_basis(sym.lower(), land.STEP_DEG)
    best = land.smoothed_maximum(ls.score, basis)
    dist = land.direction_distance(user, ls.gallery[best], sym)
    away = dist > DISTANCE_LIMIT_DEG
    pct = 100.0 * float(away.mean())
    m = res.metrics
    m["mean_distance_deg"] = float(dist.mean())
    m["median_distance_deg"] = float(np.median(dist))
    m["percent_above"] = pct
    m["n_particles"] = int(n_all)
    m["n_used"] = int(len(user))
    m["n_directions"] = int(len(ls.gallery))
    m["n_eigenvectors"] = int(basis.shape[1])
    m["pixel_size_A"] = float(grid.pixel_size)
    m["box"] = int(grid.box)
    m["step_deg"] = float(land.STEP_DEG)
    res.facts += [
        Fact("Symmetry", sym.upper(), "", "{}"),
        Fact("Particles used", f"{len(user)} of {n_all}", "", "{}"),
        Fact("Working grid", f"{grid.box} px of {grid.pixel_size:.2f} Å", "", "{}"),
        Fact("Gallery directions", f"{len(ls.gallery)} (every {land.STEP_DEG:g}°)", "", "{}"),
        Fact("Eigenvectors kept", int(basis.shape[1]), "", "{}"),
        Fact("Average angular distance", float(dist.mean()), "°", "{:.3f}"),
        Fact("Median angular distance", float(np.median(dist)), "°", "{:.2f}"),
        Fact(f"Particles further than {DISTANCE_LIMIT_DEG:g}°", pct, "%", "{:.1f}"),
    ]
    note = projection.asymmetric_unit(sym)[2]
    if note:
        res.notes.append(f"The gallery of directions: {note}.")
    if len(user) < n_all:
        res.notes.append(f"A random subset of {len(user)} of the {n_all} particles is used.")
    if pd.ctf_parameters is None:
        res.notes.append("The particles carry no CTF: the images and the gallery are compared "
                         "without CTF correction.")
    if pct > PERCENT_LIMIT:
        res.warn("away_from_maximum", WARN_AWAY, percent=pct, limit=PERCENT_LIMIT,
                 distance=DISTANCE_LIMIT_DEG)
        res.summary = "It seems that the input particles cannot be easily aligned (see 4.b)."
    res.data.update(distance=dist, limit=DISTANCE_LIMIT_DEG)
    res.artefacts.append(Curves("alignability_smoothness.csv", [
        ("particle", ls.rows + 1), ("distance_deg", dist)]))
    return res.finish()
