"""1.f Local and directional resolution with MonoDir (Vilas et al. 2020, Nat Commun 11:55).

For each of N_DIRECTIONS directions spread evenly over the half sphere, the MonoRes sweep of
1.e is repeated with every band restricted to a cone of half-angle CONE_DEG around that
direction (:func:`cryovalid.kernels.monodir.directional_local_resolution`): signal the halves'
mean, noise their half difference inside the mask. Per voxel this gives one resolution per
direction; the best and worst directional resolution are the 5 % and 95 % percentiles over the
directions (as Xmipp's highest/lowest resolution maps), the mean their mean, and the best
direction the one ranked at the best percentile. The voxels are those of the hard mask on a
lattice of every ``stride``-th voxel (spacing about R/2, as the resized map of 0.f/0.g); the
volumes are interpolated back to the input grid.

Uniformity: the best directions of voxels at least UNIFORMITY_SPACING × the median mean
directional resolution apart (nearly independent: the amplitudes are smoothed over about one
resolution length) are counted per direction and compared with equal counts by a chi-square
test (deterministic; the reference draws 50 000 random samples for a Kolmogorov–Smirnov test
of the direction index, which is not reproducible and treats the index as an ordered number).
The test sees every directional difference, also one that comes from the structure itself (a
map whose helices share an orientation holds more high-resolution signal along some
directions); ``anisotropy_ratio`` says how large the difference is.

Metrics: ``directional_mean_A`` (the mean over radii of the radial curve of the mean
directional resolution, the reference's estimate), ``uniformity_pvalue``, ``uniformity_chi2``,
``uniformity_samples``, ``best_median_A``, ``worst_median_A``, ``mean_median_A`` (medians over
voxels, Å), ``worst_direction_A`` / ``best_direction_A`` (mean over voxels of the coarsest /
finest direction, Å), ``anisotropy_ratio`` (their ratio), ``worst_direction_tilt_deg`` /
``best_direction_tilt_deg`` (angle from the z axis), ``not_significant_fraction`` (voxel and
direction pairs never significant: given the coarsest step's value). Volumes ``maps/monodir_best.mrc``, ``maps/monodir_worst.mrc``,
``maps/monodir_mean.mrc`` (Å, 0 outside the hard mask).
"""
from __future__ import annotations

import sys

import numpy as np
from scipy import stats

from cryovalid import criteria
from cryovalid.errors import NotApplicable
from cryovalid.items.base import Curves, Fact, Table, Volume, new_result
from cryovalid.kernels import localmaps, monodir as K
from cryovalid.kernels.filterbank import FilterBank

ID = "1.f"
LEVEL = "1"
REQUIRES = ("half_maps", "resolution")  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "Local and directional resolution (MonoDir)"
SECTION = "Level 1 analysis"

MAX_R_A = 10.0  # not applied to maps with a reported resolution worse than this (reference)
LOW_RES_MIN_A, LOW_RES_MAX_A, LOW_RES_FACTOR = 10.0, 18.0, 3.0  # the sweep starts at
#   min(18, max(10, 3·R)) Å (Xmipp MonoDir: 18 Å)
N_DIRECTIONS = K.N_DIRECTIONS
CONE_DEG = K.CONE_DEG
SIGNIFICANCE = 0.95
P_LIMIT = 0.001  # uniformity rejected below this p-value (reference)
# ... and the anisotropy must matter: the worst direction's average resolution at least this
# many times the best's. With hundreds of voxels the test alone rejects a 6-7 % difference
# (EMD-11007 with isotropic noise: p = 1e-11), which no user would call anisotropic.
MIN_ANISOTROPY_RATIO = 1.1
OVERESTIMATE_FACTOR = criteria.OVERESTIMATE_FACTOR  # R < 0.8 × the mean directional resolution
UNIFORMITY_SPACING = 3.0  # voxels counted for the test are >= 3 × the median resolution apart
MIN_PER_DIRECTION = 5  # at least this many samples per direction expected for the test
MIN_POINTS = 100

WARN_NOT_UNIFORM = ("The distribution of best resolution is not uniform in all directions "
                    "(chi-square test over {n:d} voxels: p = {p:.2g}, below {limit:g}), and the "
                    "worst direction is {ratio:.2f} times coarser than the best (at least "
                    "{min_ratio:g}): the map is better resolved in some directions than in "
                    "others.")
WARN_OVERESTIMATED = ("The reported resolution, {r:.2f} Å, is much better than the average "
                      "directional resolution, {est:.2f} Å: it should not be below "
                      "{factor:g} × {est:.2f} = {limit:.2f} Å.")

EXPLANATION = (
    "MonoDir (Vilas et al. 2020, Nat Commun 11:55, doi:10.1038/s41467-019-13742-w) measures "
    "the local resolution separately along many directions. As in MonoRes (1.e), the mean of "
    "the half maps is band-pass filtered at a series of frequencies and its local amplitude is "
    "compared with that of the half maps' difference; here each band is restricted to a cone "
    f"of directions (half-angle {CONE_DEG:g}°, {N_DIRECTIONS} directions over the half "
    "sphere), so that every voxel gets one resolution per direction. Per voxel the best, worst "
    "and mean directional resolution summarise them, and the direction in which each voxel is "
    "best resolved is counted: for a map without preferred directions these counts are the "
    "same for every direction. Unequal counts (directional anisotropy) usually come from a "
    "preferred orientation of the particles.")

CRITERIA = (
    f"OK if 1) the best directions are uniformly distributed (the chi-square test of equal "
    f"counts per direction is not rejected at p < {P_LIMIT:g}) or the worst direction's average "
    f"resolution is less than {MIN_ANISOTROPY_RATIO:g} times the best's, and 2) the reported "
    f"resolution "
    f"is at least {OVERESTIMATE_FACTOR:g} times the average directional resolution. Not "
    f"applied to maps with a reported resolution worse than {MAX_R_A:g} Å.")

METHOD_NOTE = (
    "The reference runs Xmipp MonoDir on the full map, with noise from the solvent around it, "
    "and tests uniformity with a random Kolmogorov–Smirnov test. Here the half maps give the "
    "noise (their half difference inside the mask, as in 1.e, with a threshold that follows "
    "the local noise level), the amplitude in each cone is that of the analytic signal along "
    "the cone's axis, a voxel's sweep in a direction ends at its first failure and a "
    f"direction's sweep where the mask holds less than {K.DIR_MIN_SIGNAL_RATIO:g} times the "
    "noise's band power, the voxels are taken on a lattice of about half the resolution, and "
    "the uniformity test is a deterministic chi-square test over voxels far enough apart to be "
    "nearly independent.")


def _lattice_stride(voxel_size, r):
    return max(1, int(round(0.5 * r / voxel_size)))


def run(ctx):
    res = new_result(sys.modules[__name__])
    r = float(ctx.resolution)
    if r > MAX_R_A:
        raise NotApplicable(f"this method cannot be applied to maps with a resolution worse "
                            f"than {MAX_R_A:g} Å (reported {r:g} Å)")
    hard = ctx.map.hard_mask
    if not hard.any():
        raise NotApplicable("the mask is empty at this threshold")
    h1, h2 = ctx.half_maps
    for h, name in ((h1, "half map 1"), (h2, "half map 2")):
        localmaps.require_finite(h.data, name)
    if np.array_equal(h1.data, h2.data):
        raise NotApplicable("the two half maps are identical: their difference holds no noise "
                            "to compare the signal with")
    ts = ctx.map.voxel_size
    shape = ctx.map.shape
    stride = _lattice_stride(ts, r)
    flat = K.lattice_points(hard, stride)
    if flat.size < MIN_POINTS:
        stride = 1
        flat = np.flatnonzero(hard)
    if flat.size < MIN_POINTS:
        raise NotApplicable(f"the mask holds fewer than {MIN_POINTS} voxels")
    zyx = np.stack(np.unravel_index(flat, shape)).astype(np.float32)

    F1, F2 = ctx.half_maps.fts
    mean_ft = ((F1 + F2) * np.complex64(0.5)).astype(np.complex64, copy=False)
    diff_ft = ((F1 - F2) * np.complex64(0.5)).astype(np.complex64, copy=False)
    _, scale = localmaps.robust_centre_scale((h1.data + h2.data) * np.float32(0.5))
    lengths = [n * ts for n in shape]
    bank = K.DirectionalBank([mean_ft, diff_ft], shape, lengths, gain=1.0 / scale)
    low_res = min(LOW_RES_MAX_A, max(LOW_RES_MIN_A, LOW_RES_FACTOR * r))
    steps, freqs = K.directional_steps(FilterBank(mean_ft, shape, lengths), low_res)
    del mean_ft, diff_ft
    out = K.directional_local_resolution(bank, zyx, steps, freqs, significance=SIGNIFICANCE)
    values = out.values
    never = values <= 0  # not significant even at the coarsest step: coarser than it
    values[never] = np.float32(steps[0])
    localmaps.require_finite(values, "directional resolution")
    best, worst, mean, best_dir = K.summarise_directions(values)
    dirs = out.directions
    tilt, rot = K.direction_angles(dirs)
    n_dir = len(dirs)

    # ---- per direction ---------------------------------------------------------------------
    per_dir = values.mean(axis=1)
    i_worst, i_best = int(np.argmax(per_dir)), int(np.argmin(per_dir))
    counts = np.bincount(best_dir, minlength=n_dir)

    # ---- uniformity test on nearly independent voxels ------------------------------------------
    med_mean = float(np.median(mean))
    lat = zyx / stride  # lattice coordinates (integers)
    k = max(1, int(round(UNIFORMITY_SPACING * med_mean / (stride * ts))))
    while True:
        sel = np.all(np.mod(np.rint(lat).astype(np.int64), k) == 0, axis=0)
        if k == 1 or sel.sum() >= MIN_PER_DIRECTION * n_dir:
            break
        k -= 1
    test_counts = np.bincount(best_dir[sel], minlength=n_dir)
    n_test = int(test_counts.sum())
    if n_test >= MIN_PER_DIRECTION * n_dir:
        chi2, pval = stats.chisquare(test_counts)
        chi2, pval = float(chi2), float(pval)
    else:
        chi2 = pval = None
        res.notes.append(f"Only {n_test} voxels are far enough apart for the uniformity test "
                         f"(at least {MIN_PER_DIRECTION * n_dir} are needed): not tested.")

    # ---- radial curves ----------------------------------------------------------------------
    prof = K.radial_profiles(zyx, best, worst, mean, shape, (ts, ts, ts), stride * ts)
    directional_mean = float(np.mean(prof["mean"]))

    # ---- volumes ----------------------------------------------------------------------------
    vols = {}
    for key, v in (("best", best), ("worst", worst), ("mean", mean)):
        vols[key] = K.lattice_to_volume(v, flat, shape, stride, hard)
        res.artefacts.append(Volume(f"maps/monodir_{key}.mrc", vols[key], ts, ctx.map.origin))
    res.artefacts.append(Curves("monodir_radial.csv", [
        ("radius_A", prof["radius_A"]), ("voxels", prof["count"].astype(np.int64)),
        ("best_resolution_A", prof["best"]), ("worst_resolution_A", prof["worst"]),
        ("mean_resolution_A", prof["mean"])]))
    res.artefacts.append(Curves("monodir_directions.csv", [
        ("direction", np.arange(n_dir)), ("tilt_deg", tilt), ("rot_deg", rot),
        ("z", dirs[:, 0]), ("y", dirs[:, 1]), ("x", dirs[:, 2]),
        ("best_direction_voxels", counts), ("test_voxels", test_counts),
        ("mean_resolution_A", per_dir)]))

    # ---- metrics, facts ---------------------------------------------------------------------
    m = res.metrics
    m["directional_mean_A"] = round(directional_mean, 3)
    m["uniformity_pvalue"] = None if pval is None else float(f"{pval:.6g}")
    m["uniformity_chi2"] = None if chi2 is None else round(chi2, 3)
    m["uniformity_samples"] = n_test
    m["best_median_A"] = round(float(np.median(best)), 3)
    m["worst_median_A"] = round(float(np.median(worst)), 3)
    m["mean_median_A"] = round(med_mean, 3)
    m["worst_direction_A"] = round(float(per_dir[i_worst]), 3)
    m["best_direction_A"] = round(float(per_dir[i_best]), 3)
    m["anisotropy_ratio"] = round(float(per_dir[i_worst] / per_dir[i_best]), 4)
    m["worst_direction_tilt_deg"] = round(float(tilt[i_worst]), 1)
    m["best_direction_tilt_deg"] = round(float(tilt[i_best]), 1)
    m["not_significant_fraction"] = round(float(never.mean()), 4)
    res.facts += [
        Fact("Average directional resolution (mean over radii)", directional_mean, "Å"),
        Fact("Median best / worst / mean directional resolution",
             f"{m['best_median_A']:.2f} / {m['worst_median_A']:.2f} / {med_mean:.2f}", "Å",
             "{}"),
        Fact("Worst direction (tilt from z, azimuth from x)",
             f"{tilt[i_worst]:.0f}°, {rot[i_worst]:.0f}°: {per_dir[i_worst]:.2f} Å on "
             f"average", "", "{}"),
        Fact("Best direction (tilt from z, azimuth from x)",
             f"{tilt[i_best]:.0f}°, {rot[i_best]:.0f}°: {per_dir[i_best]:.2f} Å on average",
             "", "{}"),
        Fact("Worst / best direction's average resolution", m["anisotropy_ratio"], "",
             "{:.3f}"),
        Fact("Uniformity of the best directions (chi-square p-value)",
             "not tested" if pval is None else f"{pval:.3g} ({n_test} voxels, "
             f"{k * stride * ts:.1f} Å apart, χ² = {chi2:.1f}, {n_dir - 1} degrees of "
             f"freedom)", "", "{}"),
        Fact("Directions and cone", f"{n_dir} over the half sphere, cone half-angle "
             f"{CONE_DEG:g}°", "", "{}"),
        Fact("Resolutions scanned", f"{steps[0]:.2f} Å to {steps[-1]:.2f} Å, "
             f"{len(steps)} steps", "", "{}"),
        Fact("Voxels measured", f"{flat.size} (hard mask on a lattice of {stride * ts:.2f} Å)",
             "", "{}"),
    ]
    res.tables.append(Table("Directional resolution percentiles over the voxels",
                            ["Percentile", "Best (Å)", "Mean (Å)", "Worst (Å)"],
                            [[f"{q:g} %", float(np.percentile(best, q)),
                              float(np.percentile(mean, q)), float(np.percentile(worst, q))]
                             for q in (2.5, 25.0, 50.0, 75.0, 97.5)],
                            ["{}", "{:.2f}", "{:.2f}", "{:.2f}"]))
    res.notes.append(METHOD_NOTE)
    res.resolution_estimates.append({"method": "MonoDir average directional resolution (1.f)",
                                     "resolution_A": round(directional_mean, 3)})
    pm = np.percentile(mean, [2.5, 97.5])
    res.data.update(values=mean, volume=vols["mean"], p2_5=float(pm[0]), p97_5=float(pm[1]),
                    counts=counts, test_counts=test_counts, tilt=tilt, rot=rot,
                    per_direction=per_dir, radial=prof, pvalue=pval)

    # ---- criteria ---------------------------------------------------------------------------
    ratio = m["anisotropy_ratio"]
    if pval is not None and pval < P_LIMIT and ratio >= MIN_ANISOTROPY_RATIO:
        res.warn("not_uniform", WARN_NOT_UNIFORM, n=n_test, p=pval, limit=P_LIMIT, ratio=ratio,
                 min_ratio=MIN_ANISOTROPY_RATIO)
        res.summary = "The resolution does not seem to be uniform in all directions (see 1.f)."
    if r < OVERESTIMATE_FACTOR * directional_mean:
        res.warn("overestimated", WARN_OVERESTIMATED, r=r, est=directional_mean,
                 factor=OVERESTIMATE_FACTOR, limit=OVERESTIMATE_FACTOR * directional_mean)
    return res.finish()
