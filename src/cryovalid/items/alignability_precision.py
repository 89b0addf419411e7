"""4.c Alignability precision and accuracy (vrs_level2_5.md §3.3; the reference runs
XmippProtMultiRefAlignability: ``xmipp_reconstruct_significant --useForValidation`` on the
particles and on noise-free reference particles, then ``xmipp_multireference_aligneability
--check_mirrors``; Vargas, Melero, Gómez-Blanco, Carazo & Sorzano 2016, "Quantitative analysis
of 3D alignment quality: its impact on soft-validation, particle pruning and homogenisation
processes in cryo-electron microscopy", J Struct Biol 195:11-19).

For each particle, the K best orientations of its correlation landscape
(:mod:`cryovalid.kernels.landscape`: gallery of projection directions every STEP° with the
in-plane angle of the best match) and of the landscape of its noise-free reference (the map
projected at the user's orientation, times the particle's |CTF|) give

* spread (degrees): the mean angle between the pairs of the K orientations, each pair
  weighted by the product of its two correlations;
* accuracy distance (degrees): the mean angle between the user's orientation and the K
  orientations, weighted by their correlations;

angles being those between the projection axes (a direction and its opposite are one axis),
the smallest over the point group: Xmipp's computeDistance(projdir_mode, check_mirrors), which
the reference calls (the spec's "full rotation" is not what its code computes). With ``noise``
the mean pairwise angle of K distinct random gallery orientations (NOISE_TRIALS sets):
precision = (spread_exp − noise)/(spread_ref − noise), accuracy = (accuracy_exp −
noise)/(accuracy_ref − noise): about 1 when the particle behaves like a
noise-free projection at the user's orientation, about 0 like random directions.

Metrics: mean_accuracy, mean_precision, percent_accuracy_low, percent_precision_low (% of the
particles used below LOW_LIMIT), noise_deg, n_particles, n_measured (at most
landscape.MAX_PARTICLES, a seeded random subset), n_used, n_dropped, n_clipped,
n_directions, pixel_size_A, box, step_deg, top_k.
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import CannotMeasure
from cryovalid.items.base import Curves, Fact, new_result
from cryovalid.kernels import landscape as land
from cryovalid.kernels import projection

ID = "4.c"
LEVEL = "4"
REQUIRES = ("angles",)
TITLE = "Alignability precision and accuracy"
SECTION = "Level 4 analysis"

TOP_K = 6  # best orientations kept per particle (the reference's --useForValidation 6)
NOISE_TRIALS = 500  # random sets for the noise level
LOW_LIMIT = 0.5  # a particle has low accuracy / precision below this (strict)
PERCENT_LIMIT = 30.0  # warn when more than this % of the particles are low (strict)
VALID_RANGE = (-1.0, 1.0)  # precision and accuracy are clipped to this range (see run)
REFERENCE_FRACTION = 0.5  # a particle is scored when its reference's distances are below this
#                           fraction of the noise level (its reference clearly not random)

WARN_ACCURACY = ("The percentage of images with low alignability accuracy is too high, "
                 "{percent:.1f}%")
WARN_PRECISION = ("The percentage of images with low alignability precision is too high, "
                  "{percent:.1f}%")

EXPLANATION = (
    "Each particle is compared with projections of the map from a gallery of directions every "
    f"{land.STEP_DEG:g}° (with the best in-plane rotation, after centring the particle with "
    "the user's shift and correcting the sign of its CTF), and its "
    f"{TOP_K} best orientations are kept; the same is done for a noise-free reference "
    "particle, the map projected at the user's orientation with the particle's CTF. The "
    "precision compares how scattered the best orientations of the particle are with how "
    "scattered those of its reference are, and the accuracy how far they are from the user's "
    "orientation, both relative to random orientations: (particle − random)/(reference − "
    "random). Values close to 1 mean that the particle behaves like a noise-free projection "
    "at its assigned orientation; values close to 0 (or below), like random orientations. "
    f"Below {LOW_LIMIT:g} the best directions tend to be scattered (precision) or away from "
    "the assigned one (accuracy).")
CRITERIA = (
    f"OK if at most {PERCENT_LIMIT:g}% of the particles have an accuracy smaller than "
    f"{LOW_LIMIT:g} and at most {PERCENT_LIMIT:g}% a precision smaller than {LOW_LIMIT:g}; one "
    "warning for each.")


def run(ctx):
    res = new_result(sys.modules[__name__])
    pd = ctx.particles
    user = pd.finite_eulers()
    r = None if ctx.resolution is None else float(ctx.resolution)
    grid = pd.grid(land.working_pixel(ctx.map.voxel_size, r))
    sym = ctx.symmetry
    exp = grid.landscape(sym, land.STEP_DEG, cutoff_A=r)
    ref = grid.landscape(sym, land.STEP_DEG, cutoff_A=r, reference=True)
    n_all, user = len(user), user[exp.rows]
    a = land.alignability(exp, ref, user, TOP_K, sym, NOISE_TRIALS)
    prec, acc = a["precision"], a["accuracy"]
    lo, hi = VALID_RANGE
    # the ratios mean something only where the noise-free reference is clearly better than
    # random (its distances below REFERENCE_FRACTION of the noise): those particles are
    # scored, the others dropped (the reference drops the values outside [-1, 1], which
    # removes these but also every particle just better than its reference: on clean data
    # half of them, the better half). Scored values are clipped to [-1, 1].
    limit = REFERENCE_FRACTION * a["noise"]
    keep = (np.isfinite(prec) & np.isfinite(acc) & (a["spread_ref"] < limit)
            & (a["accuracy_ref"] < limit))
    n_used = int(keep.sum())
    if n_used == 0:
        raise CannotMeasure("no particle can be scored: the noise-free references of all "
                            "the particles are aligned almost as badly as random "
                            "orientations")
    outside = keep & ((prec < lo) | (prec > hi) | (acc < lo) | (acc > hi))
    p, q = np.clip(prec[keep], lo, hi), np.clip(acc[keep], lo, hi)
    pct_acc = 100.0 * float((q < LOW_LIMIT).mean())
    pct_prec = 100.0 * float((p < LOW_LIMIT).mean())
    m = res.metrics
    m["mean_accuracy"] = float(q.mean())
    m["mean_precision"] = float(p.mean())
    m["percent_accuracy_low"] = pct_acc
    m["percent_precision_low"] = pct_prec
    m["noise_deg"] = float(a["noise"])
    m["n_particles"] = int(n_all)
    m["n_measured"] = int(len(user))
    m["n_used"] = n_used
    m["n_dropped"] = int(len(user) - n_used)
    m["n_clipped"] = int(outside.sum())
    m["n_directions"] = int(len(exp.gallery))
    m["pixel_size_A"] = float(grid.pixel_size)
    m["box"] = int(grid.box)
    m["step_deg"] = float(land.STEP_DEG)
    m["top_k"] = TOP_K
    res.facts += [
        Fact("Symmetry", sym.upper(), "", "{}"),
        Fact("Particles used", f"{n_used} of {n_all}", "", "{}"),
        Fact("Working grid", f"{grid.box} px of {grid.pixel_size:.2f} Å", "", "{}"),
        Fact("Gallery directions", f"{len(exp.gallery)} (every {land.STEP_DEG:g}°)", "", "{}"),
        Fact("Mean angle between random orientations", float(a["noise"]), "°", "{:.1f}"),
        Fact("Average accuracy", float(q.mean()), "", "{:.3f}"),
        Fact("Average precision", float(p.mean()), "", "{:.3f}"),
        Fact(f"Particles with accuracy < {LOW_LIMIT:g}", pct_acc, "%", "{:.1f}"),
        Fact(f"Particles with precision < {LOW_LIMIT:g}", pct_prec, "%", "{:.1f}"),
    ]
    if len(user) < n_all:
        res.notes.append(f"A random subset of {len(user)} of the {n_all} particles is "
                         "measured.")
    if n_used < len(user):
        res.notes.append(f"{len(user) - n_used} of the {len(user)} particles are left out: "
                         "the best orientations of their noise-free reference are scattered "
                         f"(by more than {REFERENCE_FRACTION:g} of the angle between random "
                         "orientations), so their precision and accuracy are not defined.")
    if m["n_clipped"]:
        res.notes.append(f"{m['n_clipped']} particles have a precision or accuracy outside "
                         "[-1, 1] (mostly just above 1: at least as good as their noise-free "
                         "reference): counted as -1 or 1.")
    note = projection.asymmetric_unit(sym)[2]
    if note:
        res.notes.append(f"The gallery of directions: {note}.")
    if pd.ctf_parameters is None:
        res.notes.append("The particles carry no CTF: the images and the gallery are compared "
                         "without CTF correction.")
    if pct_acc > PERCENT_LIMIT:
        res.warn("low_accuracy", WARN_ACCURACY, percent=pct_acc, limit=PERCENT_LIMIT,
                 low=LOW_LIMIT)
    if pct_prec > PERCENT_LIMIT:
        res.warn("low_precision", WARN_PRECISION, percent=pct_prec, limit=PERCENT_LIMIT,
                 low=LOW_LIMIT)
    if res.warnings:
        res.summary = "It seems that the input particles cannot be easily aligned (see 4.c)."
    res.data.update(precision=p, accuracy=q, limit=LOW_LIMIT)
    res.artefacts.append(Curves("alignability_precision.csv", [
        ("particle", exp.rows + 1),
        ("precision", np.where(np.isfinite(prec), prec, np.nan)),
        ("accuracy", np.where(np.isfinite(acc), acc, np.nan)),
        ("used", keep.astype(int)),
        ("spread_exp_deg", a["spread_exp"]), ("spread_ref_deg", a["spread_ref"]),
        ("accuracy_exp_deg", a["accuracy_exp"]), ("accuracy_ref_deg", a["accuracy_ref"])]))
    return res.finish()
