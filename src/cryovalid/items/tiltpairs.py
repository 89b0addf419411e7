"""O.c Tilt-pair validation: the orientations of the two images of each tilt pair, found against
the map, must differ by the stage tilt (Rosenthal & Henderson 2003, J Mol Biol 333:721-745;
Henderson et al. 2011, J Mol Biol 413:1028-1046; the reference runs EMAN2 ``e2tiltvalidate``,
vrs_level1_A_O_W.md §3 O.c).

Method. Both images of every pair (``ctx.tilt_pairs``, io/tiltpairs.py) are put on the map's grid
(kernels/resample2d.to_grid: the map's voxel size and largest edge), then the map (padded to a
cube) and the images are cropped about their centre to the *matching box*, ``CROP_FACTOR`` times
the particle's diameter (the smallest sphere about the map's centre holding the map's hard
mask, plus ``RADIUS_MARGIN_PX``; never more than the map's edge): the coarse search's shifts are
fractions of the box, and in a box much larger than the particle they are too coarse for single
noisy particles (the 5ME2 αβ dimer, about 60 Å across, in an 80-px box at 2.5 Å and SNR 1:
72 % of 100 pairs came out within 10° of the tilt uncropped, 98 % of 60 pairs cropped to 40 px). Each image's orientation is then found by
projection matching against the map, as 2.a does and batched over all images
(kernels/projection.py: a gallery every ``ANGULAR_STEP`` degrees over the asymmetric unit of
``ctx.symmetry``, low-passed at ``GALLERY_MAX_FREQ``; kernels/align2d.py: coarse search over the
gallery, in-plane angle and shift, then the ``KEEP`` best distinct candidates refined locally at
full band). With ``A_u`` and ``A_t`` the rotation matrices of the untilted and tilted images
(RELION ZYZ, ``x_image = A·x_map``), the stage tilt is the rotation ``R = A_t·S·A_uᵀ`` (S in the
point group; the S giving the smallest rotation angle is taken). Convention: the **tilt** is
R's rotation angle in [0°, 180°]; the **tilt axis** is R's axis, signed so that the rotation is
right-handed by the positive tilt, given as the angle of its projection on the image plane, from
the image x axis (columns) towards y (rows), in [0°, 360°); the axis's angle out of the image
plane is reported too (0° for a true stage tilt). EMAN2 chooses among the symmetry equivalents
the one whose axis is closest to the image plane (older versions) or whose in-plane part is
smallest; for C1 all agree.

Hand: with the mirror image of the map, both images are matched at the mirrored orientations
``N·A·M`` (M the map's reflection, N = diag(1, 1, −1) in the image frame), so the measured
rotation is ``N·R·N``: the same tilt about the opposite in-plane axis (+180°). The tilt's
magnitude cannot tell the hand; the axis's sense could, were the stage's tilt axis and sense
given (they are not; the nominal tilt is used by its magnitude).

Metrics (angles in degrees):
  n_pairs                     pairs measured
  mean_tilt_deg, median_tilt_deg, std_tilt_deg   of the measured tilts (all pairs)
  tilt_angle_nominal_deg      the nominal tilt given (--tilt-angle, its magnitude)
  tilt_difference_deg         |mean tilt − nominal| (the criterion)
  fraction_within_10deg       fraction of the pairs with |tilt − nominal| ≤ WITHIN_DEG
  mean_tilt_axis_deg          circular mean of the tilt-axis angles
  median_axis_out_of_plane_deg  median angle of the axis out of the image plane
  mean_tilt_below_max_deg, n_pairs_below_max  the mean over the pairs with tilt < REFERENCE_MAX_TILT_DEG
                              only (the reference's selection: e2tiltvalidate keeps a pair only
                              when its tilt is below maxtilt = 60°)
  cc_untilted_mean, cc_tilted_mean  the images' mean correlation with their best projection
                              (Pearson's r within the circle of the matching box)
  matching_box_px             edge of the matching box (map voxels)
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import CannotMeasure
from cryovalid.items.base import Fact, Table, new_result
from cryovalid.kernels import align2d, projection
from cryovalid.kernels.resample2d import to_grid, window

ID = "O.c"
LEVEL = "O"
REQUIRES = ("tilt_pairs",)
TITLE = "Tilt pair"
SECTION = "Level O analysis"

MAX_DIFFERENCE_DEG = 15.0  # warn when |mean tilt − nominal| is larger (the reference's limit)
WITHIN_DEG = 10.0  # a pair "agrees" when its tilt is this close to the nominal one
REFERENCE_MAX_TILT_DEG = 60.0  # e2tiltvalidate's maxtilt: pairs measured above it are dropped there
ANGULAR_STEP = 5.0  # gallery sampling, degrees (e2tiltvalidate's delta)
GALLERY_MAX_FREQ = 0.25  # digital frequency of the gallery (as 2.a)
REFINE_MAX_FREQ = 0.5
KEEP = 10  # gallery candidates per image checked exactly
STARTS = 2  # of which the best this many are refined locally
NEIGHBOUR_STEPS = 1.5
RADIUS_MARGIN_PX = 3.0  # the particle's radius beyond the map's mask
CROP_FACTOR = 1.15  # the matching box: this times the particle's diameter (at most the map's)
MIN_MATCHING_BOX = 24  # px: never smaller (the polar search needs rings)
MAX_PAIRS = 2000  # more pairs are subsampled evenly (with a note)
TABLE_ROWS = 20

WARN_DIFF = ("The difference between the estimated mean tilt angle ({mean:.1f}°) and the "
             "experimental one ({nominal:.1f}°) is {diff:.1f}°, larger than {limit:g} degrees")

EXPLANATION = (
    "A tilt pair is two images of the same particle, taken before and after tilting the "
    "specimen stage by a known angle. If the map is right, the orientations of the two images "
    "found by comparing them with projections of the map must differ by a rotation about an "
    "axis in the image plane by the stage tilt (Rosenthal & Henderson 2003; Henderson et al. "
    "2011). Both images of every pair are put on the map's grid, cropped to a box a little "
    "larger than the particle, and matched against projections "
    f"of the map every {ANGULAR_STEP:g}° over the orientations allowed by the symmetry, then "
    "refined locally; the rotation taking the untilted orientation to the tilted one (the "
    "smallest among the symmetry-equivalent ones) gives the measured tilt (its angle) and the "
    "tilt axis (the direction of its axis in the image plane). A map with the wrong structure "
    "gives tilts scattered far from the nominal one. The measured tilt does not tell the hand: "
    "the mirror image of the map gives the same tilt about the opposite axis (the hand would "
    "follow from the sense of the stage tilt about a known axis, which is not given).")
CRITERIA = (
    f"OK if the mean measured tilt differs from the experimental (nominal) tilt angle by at "
    f"most {MAX_DIFFERENCE_DEG:g} degrees; one warning otherwise.")


def group_matrices(symmetry: str):
    """((k, 3, 3) rotations of the point group, note) (kernels/symmetry.py; every group)."""
    from cryovalid.kernels.symmetry import matrices

    return matrices(symmetry), ""


def relative_rotations(eulers_untilted, eulers_tilted, symmetry: str = "c1") -> dict:
    """Per pair, the rotation ``R = A_t·S·A_uᵀ`` of smallest angle over the point group
    (module docstring): ``tilt`` (n,) degrees in [0, 180], ``axis`` (n,) the in-plane angle
    of its (right-handed) axis in [0, 360), ``out_of_plane`` (n,) the axis's angle out of the
    image plane in [0, 90], ``vector`` (n, 3) the unit axis (image x, y, z)."""
    from scipy.spatial.transform import Rotation

    a_u = projection.euler_matrix(eulers_untilted)
    a_t = projection.euler_matrix(eulers_tilted)
    mats, _ = group_matrices(symmetry)
    best_r, best_tr = None, None
    for s in mats:
        r = a_t @ s @ np.swapaxes(a_u, -1, -2)
        tr = np.trace(r, axis1=-2, axis2=-1)
        if best_r is None:
            best_r, best_tr = r, tr
        else:
            take = tr > best_tr + 1e-12  # larger trace = smaller angle
            best_r = np.where(take[:, None, None], r, best_r)
            best_tr = np.where(take, tr, best_tr)
    rv = Rotation.from_matrix(best_r).as_rotvec()  # angle·axis, angle in [0, π]
    ang = np.linalg.norm(rv, axis=1)
    n = rv / np.maximum(ang, 1e-12)[:, None]
    return {"tilt": np.degrees(ang),
            "axis": np.degrees(np.arctan2(n[:, 1], n[:, 0])) % 360.0,
            "out_of_plane": np.degrees(np.arcsin(np.clip(np.abs(n[:, 2]), 0.0, 1.0))),
            "vector": n}


def particle_radius_px(mask: np.ndarray) -> float:
    """Radius (voxels) of the smallest sphere about the map's centre (voxel n//2 of each axis,
    the projector's rotation centre) holding every voxel of ``mask``, plus
    ``RADIUS_MARGIN_PX``; half the largest edge when the mask is empty."""
    b = max(mask.shape)
    idx = np.argwhere(mask)
    if idx.size == 0:
        return b / 2.0
    d = idx - np.array([n // 2 for n in mask.shape])
    return float(min(b / 2.0, np.sqrt((d * d).sum(axis=1).max()) + RADIUS_MARGIN_PX))


def matching_box(mask: np.ndarray) -> int:
    """Edge (px, even) of the centred box the matching works in: ``CROP_FACTOR`` times the
    particle's diameter (:func:`particle_radius_px`), at least ``MIN_MATCHING_BOX``, at most
    the map's largest edge. The
    coarse search's shift step and range are fractions of the box (kernels/align2d.py), so a
    box much larger than the particle makes them coarse (and every step slower)."""
    b = int(max(mask.shape))
    crop = max(MIN_MATCHING_BOX, int(np.ceil(2 * CROP_FACTOR * particle_radius_px(mask))))
    return min(b, crop + crop % 2)


def _align(images, vol, ctx, res):
    """Orientations (n, 3) and correlations (n,) of the images (on the grid of ``vol``, a
    cube) by projection matching against ``vol`` (the 2.a search, kernels/align2d.py)."""
    eulers, note = projection.orientations(ctx.symmetry, ANGULAR_STEP)
    if note:
        res.notes.append(note[0].upper() + note[1:] + ".")
    pr = projection.Projector(vol)
    gallery = pr.project(eulers, max_freq=GALLERY_MAX_FREQ)
    coarse = align2d.coarse_search(images, gallery)
    del gallery
    pick = coarse.candidates(projection.neighbours(eulers, NEIGHBOUR_STEPS * ANGULAR_STEP), KEEP)
    cand = eulers[pick].copy()
    cand[..., 2] = np.take_along_axis(coarse.psi, pick, axis=1)
    cand_shift = np.take_along_axis(coarse.shift, pick[..., None], axis=1)
    al = align2d.refine(images, lambda e: pr.project(e, max_freq=REFINE_MAX_FREQ), cand,
                        cand_shift, step=ANGULAR_STEP / 2, starts=STARTS)
    return al.eulers, al.cc, len(eulers)


def run(ctx):
    res = new_result(sys.modules[__name__])
    tp = ctx.tilt_pairs
    res.notes += [n[0].upper() + n[1:] + "." for n in tp.notes]
    sel = np.arange(tp.n)
    if tp.n > MAX_PAIRS:
        sel = np.unique(np.linspace(0, tp.n - 1, MAX_PAIRS).round().astype(np.int64))
        res.notes.append(f"{len(sel)} of the {tp.n} pairs, evenly spaced in the files, are "
                         f"measured.")
    u, t = tp.images(sel)
    box = int(max(ctx.map.shape))
    both = np.concatenate([u, t])
    finite = np.isfinite(both).all(axis=(1, 2))
    flat = both.max(axis=(1, 2)) == both.min(axis=(1, 2))
    bad = np.flatnonzero(~finite | flat)
    if bad.size:
        pairs = np.unique(sel[bad % len(sel)]) + 1
        raise CannotMeasure(
            f"pair{'s' if pairs.size > 1 else ''} {', '.join(map(str, pairs[:10]))} "
            f"{'have' if pairs.size > 1 else 'has'} a constant image or NaN/infinite values: "
            f"their orientations cannot be found")
    imgs = to_grid(both, tp.pixel_size, box, ctx.map.voxel_size)
    mask = align2d.circular_mask(box)
    inside = imgs[:, mask]
    blank = np.flatnonzero(inside.max(axis=1) == inside.min(axis=1))
    if blank.size:
        pairs = np.unique(sel[blank % len(sel)]) + 1
        raise CannotMeasure(
            f"pair{'s' if pairs.size > 1 else ''} {', '.join(map(str, pairs[:10]))} "
            f"{'are' if pairs.size > 1 else 'is'} constant within the circle of radius half the "
            f"box once put on the map's grid ({box} px of {ctx.map.voxel_size:.3g} Å)")
    crop = matching_box(np.asarray(ctx.map.hard_mask))
    lo = box // 2 - crop // 2  # voxel box//2 of the cube on crop//2, as window() does
    vol = projection.cube(ctx.map.data)[lo:lo + crop, lo:lo + crop, lo:lo + crop]
    eulers, cc, n_gallery = _align(window(imgs, crop), np.ascontiguousarray(vol), ctx, res)
    n = len(sel)
    e_u, e_t = eulers[:n], eulers[n:]
    cc_u, cc_t = cc[:n], cc[n:]
    rel = relative_rotations(e_u, e_t, ctx.symmetry)
    _, sym_note = group_matrices(ctx.symmetry)
    if sym_note:
        res.notes.append(sym_note[0].upper() + sym_note[1:] + ".")
    tilt, axis, oop = rel["tilt"], rel["axis"], rel["out_of_plane"]
    nominal = float(tp.tilt_angle)
    mean = float(tilt.mean())
    diff = abs(mean - nominal)
    within = float(np.mean(np.abs(tilt - nominal) <= WITHIN_DEG))
    ax = np.radians(axis)
    axis_mean = float(np.degrees(np.arctan2(np.sin(ax).mean(), np.cos(ax).mean())) % 360.0)
    axis_r = float(np.hypot(np.sin(ax).mean(), np.cos(ax).mean()))  # 1 = all the same axis
    below = tilt < REFERENCE_MAX_TILT_DEG
    res.metrics.update({
        "n_pairs": int(n),
        "mean_tilt_deg": round(mean, 3),
        "median_tilt_deg": round(float(np.median(tilt)), 3),
        "std_tilt_deg": round(float(tilt.std()), 3),
        "tilt_angle_nominal_deg": round(nominal, 3),
        "tilt_difference_deg": round(diff, 3),
        "fraction_within_10deg": round(within, 4),
        "mean_tilt_axis_deg": round(axis_mean, 2),
        "tilt_axis_concentration": round(axis_r, 4),
        "median_axis_out_of_plane_deg": round(float(np.median(oop)), 3),
        "mean_tilt_below_max_deg": (round(float(tilt[below].mean()), 3) if below.any()
                                    else None),
        "n_pairs_below_max": int(below.sum()),
        "cc_untilted_mean": round(float(cc_u.mean()), 4),
        "cc_tilted_mean": round(float(cc_t.mean()), 4),
        "n_orientations": int(n_gallery), "matching_box_px": int(crop)})
    res.facts += [
        Fact("Tilt pairs measured", int(n), "", "{:d}"),
        Fact("Mean measured tilt", round(mean, 1), "°", "{:.1f}"),
        Fact("Median measured tilt", round(float(np.median(tilt)), 1), "°", "{:.1f}"),
        Fact("Experimental (nominal) tilt angle", round(nominal, 1), "°", "{:.1f}"),
        Fact("Difference |mean − nominal|", round(diff, 1), "°", "{:.1f}"),
        Fact(f"Pairs within {WITHIN_DEG:g}° of the nominal tilt",
             f"{int(round(within * n))} ({100 * within:.1f} %)", "", "{}"),
        Fact("Mean tilt axis (in the image plane, from x towards y)", round(axis_mean, 1), "°",
             "{:.1f}"),
        Fact("Median angle of the tilt axis out of the image plane",
             round(float(np.median(oop)), 1), "°", "{:.1f}"),
        Fact(f"Mean tilt of the pairs below {REFERENCE_MAX_TILT_DEG:g}° (the reference's "
             f"selection)", (f"{tilt[below].mean():.1f} ({int(below.sum())} pairs)"
                             if below.any() else "none"), "", "{}"),
        Fact("Mean correlation with the best projection (untilted, tilted)",
             f"{cc_u.mean():.3f}, {cc_t.mean():.3f}", "", "{}")]
    rows = [[int(sel[i]) + 1, float(tilt[i]), float(axis[i]), float(oop[i]), float(cc_u[i]),
             float(cc_t[i])] for i in range(min(n, TABLE_ROWS))]
    res.tables.append(Table(
        f"The first {len(rows)} pairs: measured tilt, tilt axis (in-plane angle from the image "
        f"x axis towards y), the axis's angle out of the image plane, and each image's "
        f"correlation with its best projection",
        ["Pair", "Tilt (°)", "Axis (°)", "Out of plane (°)", "CC untilted", "CC tilted"], rows,
        ["{:d}", "{:.1f}", "{:.1f}", "{:.1f}", "{:.2f}", "{:.2f}"]))
    if diff > MAX_DIFFERENCE_DEG:
        res.warn("tilt_difference", WARN_DIFF, mean=mean, nominal=nominal, diff=diff,
                 limit=MAX_DIFFERENCE_DEG)
        res.summary = ("It seems that the map does not fulfill the tilt pair validation "
                       "(see O.c).")
    res.notes.append(
        "The mean is over all pairs; the reference (EMAN2 e2tiltvalidate, maxtilt 60°) keeps a "
        f"pair only when its tilt is below {REFERENCE_MAX_TILT_DEG:g}°, which hides pairs that "
        "disagree (that mean is shown separately). The images are taken with the map's "
        "contrast (protein bright, as extracted particles with inverted contrast). The "
        "reference's histogram plots the tilt axis under the label \"Tilt angle\"; here it "
        "shows the tilts.")
    res.data.update({"tilt": tilt, "axis": axis, "out_of_plane": oop, "nominal": nominal,
                     "max_difference": MAX_DIFFERENCE_DEG, "within": WITHIN_DEG,
                     "mean_tilt": mean, "pair": sel + 1})
    return res
