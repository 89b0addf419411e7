"""4.h SCF: the sampling compensation factor of the particles' projection directions
(vrs_level2_5.md §3.10; Baldwin & Lyumkis 2020, "Non-uniformity of projection distributions
attenuates resolution in Cryo-EM", Prog Biophys Mol Biol 150:160-183; SCF* as in Baldwin's
``SCFJan2022.py``, which the reference runs).

Directions from the particles' Euler angles (at most :data:`MAX_PARTICLES`, a seeded random
subsample), expanded by the point group; the sampling of Fourier space on a hemisphere
Fibonacci spiral at the Fourier radius ``FR = int(2·L/RESOLUTION_ANALYSIS_A)`` voxels (L = the
particle box in Å; the reference computes ``int((Ts/5)·2·box)`` on the particles resampled to
R/2, whose box keeps the same size in Å), and SCF and SCF* as in
:func:`cryovalid.kernels.orientation_sampling.scf`. Unitless.

Metrics: scf, scf_star, fraction_zeros, qk_over_pk, fourier_radius (voxels), n_points (spiral),
n_used (particles used), n_directions (after the symmetry expansion).
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import CannotMeasure
from cryovalid.items.base import Fact, new_result
from cryovalid.kernels import orientation_sampling as sampling

ID = "4.h"
LEVEL = "4"
REQUIRES = ("angles",)
TITLE = "SCF"
SECTION = "Level 4 analysis"

SCF_STAR_LIMIT = 0.5  # warn when SCF* is below this (strict)
RESOLUTION_ANALYSIS_A = 5.0  # the SCF script's default resolution of the analysis (Å)
MAX_PARTICLES = sampling.MAX_PARTICLES  # directions used at most (seeded subsample)
HEALTHY = 0.81  # SCF from here to 1: healthy (pure side views give 8/π² ≈ 0.81)

WARN_SCF = "SCF* is {scf_star:.3f}, smaller than {limit:g}"

EXPLANATION = (
    "The sampling compensation factor (SCF, Baldwin and Lyumkis) measures how evenly the "
    "particles' projection directions sample Fourier space. Each image fills a central plane of "
    "the map's Fourier transform; the number of planes passing near each point of a hemisphere "
    f"of radius int(2·box/{RESOLUTION_ANALYSIS_A:g} Å) voxels is counted (the directions "
    "expanded by the symmetry; at most "
    f"{MAX_PARTICLES} particles, a random subsample, are used). SCF is the inverse of the product "
    "of the mean of the inverse sampling and the mean sampling: 1 for a uniform distribution, "
    "smaller for uneven ones. SCF* also penalises the points that no plane reaches. SCF from "
    f"{HEALTHY:g} to 1 indicates a healthy distribution (pure side views give {HEALTHY:g}); from "
    f"about {SCF_STAR_LIMIT:g} to {HEALTHY:g}, small problems; below {SCF_STAR_LIMIT:g}, serious "
    f"ones. An SCF of {SCF_STAR_LIMIT:g} or 0.25 means that 2 or 4 times more particles are "
    "needed to reach the resolution of a uniform distribution.")
CRITERIA = f"OK if SCF* is at least {SCF_STAR_LIMIT:g}; one warning otherwise."


def run(ctx):
    res = new_result(sys.modules[__name__])
    parts = ctx.particles.particles
    e = np.asarray(parts.table[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]],
                   dtype=np.float64)
    if not np.all(np.isfinite(e)):
        raise CannotMeasure("some particles have angles that are not finite numbers")
    box_A = parts.box * parts.pixel_size
    fr = int(2.0 * box_A / RESOLUTION_ANALYSIS_A)
    if fr < 1:
        raise CannotMeasure(f"the particle box ({box_A:.1f} Å) is too small for an analysis "
                            f"at {RESOLUTION_ANALYSIS_A:g} Å")
    out = sampling.scf(e, ctx.symmetry, fr, max_particles=MAX_PARTICLES)
    m = res.metrics
    for k in ("scf", "scf_star", "fraction_zeros", "qk_over_pk", "fourier_radius", "n_points",
              "n_used", "n_directions"):
        m[k] = out[k]
    m["n_particles"] = len(parts)
    res.facts += [
        Fact("Symmetry", ctx.symmetry.upper(), "", "{}"),
        Fact("Particles used", f"{out['n_used']} of {len(parts)}", "", "{}"),
        Fact("Fourier radius", fr, "voxels", "{:d}"),
        Fact("Points on the spiral", out["n_points"], "", "{:d}"),
        Fact("Fraction of zeros", out["fraction_zeros"], "", "{:.4f}"),
        Fact("QkoverPk", out["qk_over_pk"], "", "{:.4f}"),
        Fact("SCF", out["scf"], "", "{:.4f}"),
        Fact("SCF*", out["scf_star"], "", "{:.4f}"),
    ]
    if out["n_used"] < len(parts):
        res.notes.append(f"A random subsample of {out['n_used']} of the {len(parts)} particles "
                         f"is used (the SCF script's limit).")
    if out["scf_star"] < SCF_STAR_LIMIT:
        res.warn("low_scf_star", WARN_SCF, scf_star=out["scf_star"], limit=SCF_STAR_LIMIT)
        res.summary = ("The particles' projection directions sample Fourier space too "
                       "unevenly (see 4.h).")
    res.data.update(points=out["points"], counts=out["counts"], scf=out["scf"],
                    scf_star=out["scf_star"], fourier_radius=fr, healthy=HEALTHY,
                    limit=SCF_STAR_LIMIT)
    return res.finish()
