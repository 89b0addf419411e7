"""4.g Angular distribution efficiency (vrs_level2_5.md §3.9; cryoEF, Naydenova & Russo 2017,
"Measuring the effects of particle orientation to improve the efficiency of electron
cryomicroscopy", Nat Commun 8:629).

The reference runs the cryoEF binary on the particles' angles (particle diameter 0.9 of the
box in Å, angular accuracy 10°, the Level 0 B-factor, the reported resolution R) and reads its
per-direction resolutions. Here the cryoEF model is re-coded in numpy
(:func:`cryovalid.kernels.orientation_sampling.directional_resolution`, whose docstring states
the model): the Fourier-space transfer function implied by the projection directions (expanded
by the point group) gives a resolution for each of :data:`N_DIRECTIONS` directions on a
hemisphere, calibrated so that a uniform distribution of the same particles has resolution R in
every direction; the efficiency is the fraction of the particles that, uniformly distributed,
would give the same mean directional resolution. Resolutions in Å; efficiency unitless.
The numbers are the model's; cryoEF's binary (its own efficiency definition, sampling grid and
B-factor) will differ in detail.

Metrics: efficiency, directional_resolution_mean_A, directional_resolution_min_A,
directional_resolution_max_A, n_directions (hemisphere directions), n_used (particles used).
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import CannotMeasure
from cryovalid.items.base import Fact, new_result
from cryovalid.kernels import orientation_sampling as sampling

ID = "4.g"
LEVEL = "4"
REQUIRES = ("angles", "resolution")
TITLE = "Angular distribution efficiency"
SECTION = "Level 4 analysis"

RATIO_LIMIT = 0.8  # warn when R < RATIO_LIMIT · mean directional resolution (strict)
DIAMETER_FRACTION = 0.9  # particle diameter = this fraction of the box edge (the reference)
ACCURACY_DEG = 10.0  # angular accuracy of the assignment (the reference's angAcc)
B_FACTOR_A2 = 100.0  # B-factor of the images' signal (Å²; the reference passes Level 0's)
N_DIRECTIONS = 500  # hemisphere directions where the resolution is computed

WARN_RATIO = ("The resolution reported by the user, {resolution:.2f} Å, is smaller than "
              "{ratio:g} times the average directional resolution, {mean:.2f} Å")

EXPLANATION = (
    "The angular distribution efficiency (cryoEF, Naydenova and Russo 2017) estimates what "
    "resolution the orientation distribution of the particles allows in each direction. Each "
    "image fills a central plane of the map's Fourier transform, thickened by the particle size "
    f"({DIAMETER_FRACTION:g} of the box) and by an angular accuracy of {ACCURACY_DEG:g}°; the "
    "number of images that cover each point of Fourier space, weighted by the decay of the "
    f"signal (B-factor {B_FACTOR_A2:g} Å²), gives the signal-to-noise ratio there. In each "
    "direction, the resolution is where this falls to the value that a uniform distribution of "
    "the same particles reaches at the reported resolution: with uniform directions every "
    "direction has the reported resolution; uneven distributions are worse in the directions "
    "they miss. The efficiency is the fraction of the particles that, uniformly distributed, "
    "would give the same mean directional resolution (1 = no loss).")
CRITERIA = (
    f"OK if the resolution reported by the user is at least {RATIO_LIMIT:g} times the average "
    "directional resolution; one warning otherwise.")


def run(ctx):
    res = new_result(sys.modules[__name__])
    parts = ctx.particles.particles
    e = np.asarray(parts.table[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]],
                   dtype=np.float64)
    if not np.all(np.isfinite(e)):
        raise CannotMeasure("some particles have angles that are not finite numbers")
    r = float(ctx.resolution)
    px = float(parts.pixel_size)
    box_A = parts.box * px
    if r <= 2.0 * px:
        raise CannotMeasure(f"the reported resolution, {r:g} Å, is not coarser than the "
                            f"particles' Nyquist limit ({2 * px:g} Å)")
    if r >= box_A:
        raise CannotMeasure(f"the reported resolution, {r:g} Å, is not finer than the particle "
                            f"box ({box_A:g} Å)")
    out = sampling.directional_resolution(
        e, ctx.symmetry, r, diameter=DIAMETER_FRACTION * box_A, box_A=box_A, pixel_size=px,
        b_factor=B_FACTOR_A2, accuracy_deg=ACCURACY_DEG, n_points=N_DIRECTIONS)
    m = res.metrics
    m["efficiency"] = out["efficiency"]
    m["directional_resolution_mean_A"] = out["mean"]
    m["directional_resolution_min_A"] = out["min"]
    m["directional_resolution_max_A"] = out["max"]
    m["n_directions"] = int(len(out["resolution"]))
    m["n_used"] = out["n_used"]
    m["n_particles"] = len(parts)
    res.facts += [
        Fact("Symmetry", ctx.symmetry.upper(), "", "{}"),
        Fact("Particles used", f"{out['n_used']} of {len(parts)}", "", "{}"),
        Fact("Particle diameter", DIAMETER_FRACTION * box_A, "Å", "{:.0f}"),
        Fact("Efficiency", out["efficiency"], "", "{:.2f}"),
        Fact("Mean directional resolution", out["mean"], "Å", "{:.2f}"),
        Fact("Best directional resolution", out["min"], "Å", "{:.2f}"),
        Fact("Worst directional resolution", out["max"], "Å", "{:.2f}"),
    ]
    n_nyq = int(np.count_nonzero(out["at_nyquist"]))
    if n_nyq:
        res.notes.append(f"In {n_nyq} of the {len(out['resolution'])} directions the model "
                         f"reaches the particles' Nyquist limit ({2 * px:g} Å), which is given "
                         f"as their resolution.")
    if out["n_used"] < len(parts):
        res.notes.append(f"A random subsample of {out['n_used']} of the {len(parts)} particles "
                         f"is used.")
    if r < RATIO_LIMIT * out["mean"]:
        res.warn("resolution_vs_directional", WARN_RATIO, resolution=r, ratio=RATIO_LIMIT,
                 mean=out["mean"])
    res.data.update(points=out["points"], values=out["resolution"], mean=out["mean"],
                    resolution=r)
    return res.finish()
