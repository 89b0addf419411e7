"""2.a Reprojection consistency: each 2D class average against its best reprojection of the map
(vrs_level2_5.md §1.1; the reference runs Xmipp's projection matching and continuous
assignment, Sorzano et al. 2004, Ultramicroscopy 101:129-138, and Xmipp ``image_residuals``).

For each class (on the map's grid, cropped to the particle window: ``ctx.classes.in_window``,
the molecule's diameter plus a margin, data.ClassesData.window_box; the map cropped alike): a
gallery of projections of the map every ``ANGULAR_STEP`` degrees over the asymmetric unit of ``ctx.symmetry``
(kernels/projection.py, low-passed at digital frequency ``GALLERY_MAX_FREQ`` as the reference's
gallery, for the search only), a search over the gallery, in-plane angle and shift
(kernels/align2d.py: shifts within W/10 plus 0.05·W of local refinement, W the window; the best
``KEEP`` distinct candidates refined at full band to about 0.3°), the Pearson correlation within
the circle of radius W/2 between the class and its full-band reprojection after alignment,
the residual (class after the grey adjustment a·I + b (align2d.gray_residual) minus the reprojection,
inside the circle) and the residual's column-covariance image (Xmipp ``image_residuals``).

Metrics (correlations are unitless):
  cc_mean, cc_min, cc_max   the correlation of each class with its best reprojection
  fraction_below_cc         the fraction of classes with correlation < CC_LIMIT
  n_classes                 the number of classes compared (the stack's, less the blank ones)
  n_blank_classes           classes that are blank (constant images, ClassesData.blank), left out
  n_orientations            projection directions in the gallery
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import CannotMeasure
from cryovalid.items.base import Fact, Table, new_result
from cryovalid.kernels import align2d, projection

ID = "2.a"
LEVEL = "2"
REQUIRES = ("classes",)
TITLE = "Reprojection consistency"
SECTION = "Level 2 analysis"

CC_LIMIT = 0.7  # a class correlating less than this with its best reprojection is "low"
MAX_FRACTION = 0.20  # warn when more than this fraction of the classes is low (strict)
ANGULAR_STEP = 5.0  # degrees between gallery directions (the reference's sampling)
GALLERY_MAX_FREQ = 0.25  # digital frequency of the gallery (Xmipp angular_project_library)
REFINE_MAX_FREQ = 0.5  # the local refinement and the correlation use the full band
KEEP = 10  # gallery candidates per class (distinct local maxima) checked exactly
NEIGHBOUR_STEPS = 1.5  # a candidate is the best among the directions this many steps around

WARN_LOW = ("A large fraction of the 2D classes, {percent:.1f}%, correlate less than "
            "{limit:g} with reprojections of the input map")

EXPLANATION = (
    "Each 2D class average should look like a projection of the map. The classes are put on the "
    "map's grid (same pixel size and box) and cropped, with the map, to a window about the "
    "molecule (its diameter from the map's mask, plus a margin), and each is compared with "
    "projections of the map "
    f"computed every {ANGULAR_STEP:g}° over the orientations allowed by the symmetry (central "
    "sections of the map's Fourier transform, low-passed at "
    f"{GALLERY_MAX_FREQ:g} of the sampling frequency as the reference's gallery). For each class "
    "the best projection, in-plane rotation and shift are found (projection matching, then a "
    "local refinement of the angles and shift at full resolution), and the normalized "
    "cross-correlation of the class with that reprojection within the circle of radius half "
    "the window is reported. The residual is the class, after adjusting "
    "its grey levels (a·I + b), minus its reprojection; structure in the residual or in its "
    "column covariance shows what the map does not explain. Whether the classes and the map "
    "have the same resolution cannot, for the moment, be automatically assessed.")
CRITERIA = (
    f"OK if the proportion of classes whose correlation with their best reprojection is below "
    f"{CC_LIMIT:g} is at most {100 * MAX_FRACTION:g} %; one warning otherwise.")


def run(ctx):
    res = new_result(sys.modules[__name__])
    cl = ctx.classes
    kept = cl.require_classes()  # blank classes (constant images) are left out
    imgs = np.asarray(cl.in_window, dtype=np.float32)[kept]
    n, box = imgs.shape[0], imgs.shape[-1]
    mask = align2d.circular_mask(box)
    inside = imgs[:, mask]
    blank = kept[np.flatnonzero(inside.max(axis=1) == inside.min(axis=1))] + 1
    if blank.size:
        raise CannotMeasure(
            f"class{'es' if blank.size > 1 else ''} {', '.join(map(str, blank[:10]))} "
            f"{'are' if blank.size > 1 else 'is'} constant within the circle of radius half the "
            f"particle window once put on the map's grid ({box} px of {cl.pixel_size:.3g} Å): "
            f"nothing to "
            f"compare with the map's projections")
    eulers, note = projection.orientations(ctx.symmetry, ANGULAR_STEP)
    if note:
        res.notes.append(note[0].upper() + note[1:] + ".")
    pr = cl.window_projector
    gallery = pr.project(eulers, max_freq=GALLERY_MAX_FREQ)
    coarse = align2d.coarse_search(imgs, gallery)
    del gallery
    pick = coarse.candidates(projection.neighbours(eulers, NEIGHBOUR_STEPS * ANGULAR_STEP),
                             KEEP)
    cand = eulers[pick].copy()
    cand[..., 2] = np.take_along_axis(coarse.psi, pick, axis=1)
    cand_shift = np.take_along_axis(coarse.shift, pick[..., None], axis=1)

    def project(e):
        return pr.project(e, max_freq=REFINE_MAX_FREQ)

    al = align2d.refine(imgs, project, cand, cand_shift, step=ANGULAR_STEP / 2)
    cc = al.cc
    full = al.reference  # the reprojections at the refined angles and shifts (full band)
    residual, _ = align2d.gray_residual(imgs, full, mask)
    cov = align2d.column_covariance(residual)

    low = int(np.count_nonzero(cc < CC_LIMIT))
    fraction = low / n
    eul = np.column_stack([al.eulers[:, 0] % 360.0, al.eulers[:, 1], al.eulers[:, 2] % 360.0])
    res.metrics.update({
        "cc_mean": round(float(cc.mean()), 4), "cc_min": round(float(cc.min()), 4),
        "cc_max": round(float(cc.max()), 4), "fraction_below_cc": round(fraction, 4),
        "n_classes": n, "n_blank_classes": int(cl.n - n),
        "n_orientations": int(len(eulers))})
    res.facts += [
        Fact("Classes", n if n == cl.n else f"{n} ({cl.n - n} blank left out)", "", "{}"),
        Fact("Mean correlation with the best reprojection", round(float(cc.mean()), 3), "",
             "{:.3f}"),
        Fact("Range of the correlation", f"{cc.min():.3f} to {cc.max():.3f}", "", "{}"),
        Fact(f"Classes with correlation below {CC_LIMIT:g}", f"{low} ({100 * fraction:.1f} %)",
             "", "{}"),
        Fact("Gallery directions", int(len(eulers)), "", "{:d}"),
        Fact("Particle window (the molecule's diameter and a margin)",
             f"{box} of {cl.box} px", "", "{}")]
    order = np.argsort(cc, kind="stable")  # worst first
    rows = [[int(kept[i]) + 1, *(float(v) for v in eul[i]), float(al.shift[i, 0]),
             float(al.shift[i, 1]), float(cc[i])] for i in order]
    res.tables.append(Table(
        "Classes and their best reprojection, worst first (angles RELION/Xmipp ZYZ; shift of "
        "the class relative to the reprojection, in map pixels)",
        ["Class", "Rot (°)", "Tilt (°)", "Psi (°)", "Shift x (px)", "Shift y (px)",
         "Correlation"], rows,
        ["{:d}", "{:.1f}", "{:.1f}", "{:.1f}", "{:.1f}", "{:.1f}", "{:.2f}"]))
    if fraction > MAX_FRACTION:
        res.warn("low_cc", WARN_LOW, percent=100 * fraction, limit=CC_LIMIT)
        res.summary = ("The 2D classes provided by the user do not seem to correlate well with "
                       "the reprojections of the map (see 2.a).")
    res.notes.append(
        f"The gallery is low-passed at {GALLERY_MAX_FREQ:g} of the sampling frequency "
        f"({cl.pixel_size / GALLERY_MAX_FREQ:.1f} Å) for the search only; the correlation is "
        "Pearson's r within the circle of radius half the particle window "
        "between the class and its reprojection at full band after the local refinement of "
        "angles and shift (the reference reports the discrete maxCC against the low-passed "
        "gallery image). The class is not mirrored (as the reference); a map and its mirror "
        "image give the same correlations, since a projection cannot tell the hand. The "
        "images are shown in the class's frame: the reprojection is turned and shifted onto "
        "the class.")
    if note := cl.blank_note():
        res.notes.append(note)
    res.data.update({"cc": cc, "order": order, "classes": imgs, "numbers": kept + 1,
                     "reprojections": full,
                     "residuals": residual, "covariances": cov, "eulers": eul,
                     "shifts": al.shift, "cc_limit": CC_LIMIT})
    return res
