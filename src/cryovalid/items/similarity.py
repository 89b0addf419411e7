"""4.a Similarity criteria: each particle against the map's projection at its assigned
orientation (vrs_level2_5.md §3.1; the reference runs Xmipp ``reconstruct_highres`` with nothing
refined, i.e. ``angular_continuous_assign2`` evaluating the user's angles and shifts, and reads
its ``corrIdx`` and ``imed``; IMED: Wang, Zhang & Feng 2005, IEEE TPAMI 27:1334).

Working grid (as the reference): target resolution T = max(0.8·Ts/0.45, max(10 Å, R)) (10 Å
when R is not reported), pixel max(Ts, T/3) Å (``ctx.particles.grid``: the map Fourier-cropped
and the particles resampled to it). For each particle: the projection at the user's angles,
multiplied by the particle's CTF (when the particles carry one), moved by the user's shift and
low-passed at T (raised cosine, kernels/similarity.raised_cosine_lowpass), against the particle
low-passed the same way:

* CC: Pearson's correlation within the circle of radius box/2 (unitless);
* IMED (kernels/similarity.imed) of the projection given the particle's grey scale (least
  squares a·P + c within the circle, as Xmipp's continuous assignment adjusts grey values)
  against the particle masked by that circle, in units of the particle's standard deviation
  (particles are normalised to zero mean and unit standard deviation on the working grid);
* defocus (U + V)/2 (Å).

Null (cryovalid's addition, informative): the same CC with the projection at a random
orientation (uniform on SO(3), seeded, same CTF and shift) tells what a wrong assignment of the
same particle reaches; ``fraction_below_null`` is the fraction of particles whose CC is at most
the ``NULL_QUANTILE`` quantile of those wrong-orientation CCs, and
``fraction_random_like_max`` = min(1, 2 × the fraction whose CC is at most the null's median),
an upper bound of the fraction of particles that are no better than a random orientation
(those fall below the null's median half of the time, the right ones less often).

Metrics: n_particles, cc_median, cc_mad (MAD × 1.4826), cc_p05, imed_median, imed_mad,
null_cc_median, null_cc_threshold, fraction_below_null, fraction_random_like_max,
target_resolution_A, pixel_size_A,
ctf_applied. ``similarity.csv``: one row per particle (CC, IMED, null CC, defocus).
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import CannotMeasure
from cryovalid.items.base import Curves, Fact, new_result
from cryovalid.kernels import similarity as sim
from cryovalid.kernels.align2d import circular_mask, pearson
from cryovalid.kernels.projection import matrix_euler

ID = "4.a"
LEVEL = "4"
REQUIRES = ("angles",)
TITLE = "Similarity criteria"
SECTION = "Level 4 analysis"

TARGET_MIN_A = 10.0  # the reference's max(10, R)
NYQUIST_FACTOR = 0.8 / 0.45  # target >= 0.8·Ts/0.45 (the reference's lower bound)
SAMPLES_PER_TARGET = 3.0  # working pixel = target / 3 (never finer than the map's voxel)
NULL_QUANTILE = 0.95  # CC at most this quantile of the wrong-orientation CCs = "below null"
NULL_SEED = 0
MAD_SCALE = 1.4826
CHUNK = 512  # particles projected and compared at once

EXPLANATION = (
    "Each particle is compared with the projection of the map at the orientation and shift the "
    "user assigned to it, multiplied by the particle's CTF, both low-pass filtered at the "
    "working resolution: the correlation (CC, 1 = identical up to grey scale) and the image "
    "Euclidean distance (IMED, a Euclidean distance that weighs nearby pixels together, in "
    "units of the particle's standard deviation; 0 = identical). A consistent data set gives "
    "a single peak in each histogram and a single cloud in the scatter plots; separate groups "
    "of particles with low CC or high IMED are particles that do not match the map at their "
    "orientation (wrong angles, junk, another conformation), although different defocus groups "
    "can also form separate clouds. As a reference, the same CC is computed with the "
    "projection at a random orientation: the particles whose CC is no better than what "
    f"{100 * NULL_QUANTILE:g} % of random orientations reach are counted as below the null.")
CRITERIA = ""  # not evaluable, as the reference (warnings None): counted in no score
CRITERIA_NOTE = (
    "The reference defines no automatic criterion for this item, and none is set here: the CC "
    "of a correct particle depends on its signal-to-noise ratio, which the report does not "
    "know, so no fixed limit on the CC or on the fraction below the null separates good from "
    "bad data sets. Manual interpretation is needed; the item is not counted in the score.")


def target_resolution(voxel_size: float, resolution) -> float:
    """The reference's working resolution T (Å) for map voxel Ts (Å) and reported R (Å, or
    None: then 10 Å)."""
    r = TARGET_MIN_A if resolution is None else max(TARGET_MIN_A, float(resolution))
    return max(NYQUIST_FACTOR * float(voxel_size), r)


def random_rotations(n: int, seed: int) -> np.ndarray:
    """(n, 3) ZYZ Euler angles (degrees) of rotations uniform on SO(3): normalised Gaussian
    quaternions (Shoemake 1992), converted by kernels/projection.matrix_euler."""
    q = np.random.default_rng(seed).standard_normal((n, 4))
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    r = np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)],
        axis=1)
    return matrix_euler(r)


def run(ctx):
    res = new_result(sys.modules[__name__])
    pd = ctx.particles
    eulers = pd.finite_eulers()
    ts = float(ctx.map.voxel_size)
    target = target_resolution(ts, ctx.resolution)
    grid = pd.grid(max(ts, target / SAMPLES_PER_TARGET))
    b, px = grid.box, grid.pixel_size
    cutoff = min(px / target, 0.5 - sim.RAISED_WIDTH)
    lowpass = sim.raised_cosine_lowpass(b, cutoff)
    mask = circular_mask(b)
    shifts = grid.shifts
    wrong = random_rotations(pd.n, NULL_SEED)
    has_ctf = pd.ctf_parameters is not None
    cc = np.empty(pd.n)
    dist = np.empty(pd.n)
    cc_null = np.empty(pd.n)
    for lo in range(0, pd.n, CHUNK):
        sl = slice(lo, min(pd.n, lo + CHUNK))
        ctf = grid.ctf(sl) if has_ctf else None
        img = sim.filtered(grid.images[sl], lowpass)
        ref = sim.reprojections(grid.projector.project(eulers[sl]), ctf, shifts[sl], lowpass)
        cc[sl] = pearson(ref, img, mask)
        dist[sl] = sim.imed(sim.grey_fit(ref, img, mask), img * mask)
        ref = sim.reprojections(grid.projector.project(wrong[sl]), ctf, shifts[sl], lowpass)
        cc_null[sl] = pearson(ref, img, mask)
    if not (np.all(np.isfinite(cc)) and np.all(np.isfinite(dist))):
        raise CannotMeasure("the correlation is not defined for some particles (an image or "
                            "its projection is constant within the circle)")
    threshold = float(np.quantile(cc_null, NULL_QUANTILE))
    below = float(np.mean(cc <= threshold))
    # particles at a wrong orientation fall below the null's median half of the time, the
    # others less often: twice the fraction below it bounds the wrong fraction from above
    random_like = min(1.0, 2.0 * float(np.mean(cc <= np.median(cc_null))))
    med = float(np.median(cc))
    m = res.metrics
    m.update({
        "n_particles": int(pd.n),
        "cc_median": round(med, 4),
        "cc_mad": round(float(MAD_SCALE * np.median(np.abs(cc - med))), 4),
        "cc_p05": round(float(np.quantile(cc, 0.05)), 4),
        "imed_median": round(float(np.median(dist)), 4),
        "imed_mad": round(float(MAD_SCALE * np.median(np.abs(dist - np.median(dist)))), 4),
        "null_cc_median": round(float(np.median(cc_null)), 4),
        "null_cc_threshold": round(threshold, 4),
        "fraction_below_null": round(below, 4),
        "fraction_random_like_max": round(random_like, 4),
        "target_resolution_A": round(target, 3),
        "pixel_size_A": round(px, 4),
        "ctf_applied": bool(has_ctf)})
    res.facts += [
        Fact("Particles", int(pd.n), "", "{}"),
        Fact("Working resolution", target, "Å", "{:.2f}"),
        Fact("Working grid", f"{b} px of {px:.3g} Å", "", "{}"),
        Fact("Median CC", med, "", "{:.3f}"),
        Fact("Median IMED", float(np.median(dist)), "", "{:.3f}"),
        Fact("Median CC at a random orientation", float(np.median(cc_null)), "", "{:.3f}"),
        Fact(f"Particles with CC ≤ the {100 * NULL_QUANTILE:g}th percentile of random "
             "orientations", 100.0 * below, "%", "{:.1f}"),
        Fact("Particles no better than a random orientation, at most", 100.0 * random_like,
             "%", "{:.1f}"),
    ]
    defocus = None
    if has_ctf:
        par = pd.ctf_parameters
        defocus = 0.5 * (np.broadcast_to(par["defocus_u"], (pd.n,))
                         + np.broadcast_to(par["defocus_v"], (pd.n,)))
    else:
        res.notes.append("The particles carry no CTF: the projections are compared without "
                         "CTF modulation, which lowers the CC of every particle.")
    res.notes.append(CRITERIA_NOTE)
    cols = [("particle", np.arange(1, pd.n + 1)), ("cc", cc), ("imed", dist),
            ("cc_random_orientation", cc_null)]
    if defocus is not None:
        cols.append(("defocus_A", defocus))
    res.artefacts.append(Curves("similarity.csv", cols))
    res.data.update(cc=cc, imed=dist, cc_null=cc_null, defocus=defocus, threshold=threshold,
                    null_quantile=NULL_QUANTILE)
    return res
