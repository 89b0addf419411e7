"""3.a Outlier detection: each particle assigned to its best user 2D class, then the core of
each class by a PCA/Mahalanobis test (vrs_level2_5.md §2.1; the reference runs Xmipp's GL2D
static assignment ``xmipp_cuda_align_significant --keepBestN 1`` and
``xmipp_classify_CL2D_core_analysis --computeCore 3 3``; Sorzano et al. 2010, J. Struct. Biol.
171:197-206 for CL2D and its core analysis).

Steps (kernels/classify2d.py): the particles on the user classes' grid
(``ctx.particles.on_class_grid``, the reference's ``protResizeAvgs``) are aligned against
every class (polar search over in-plane angle and shift, shift refined to sub-pixel) and each
goes to its best-correlating class. For each class with more than ``MIN_IMAGES`` images: the
aligned images inside the circle of radius box/2, minus the class mean, projected on the first
``PCA_COMPONENTS`` principal axes; the Mahalanobis distance with the 3×3 covariance of the
projections (divided by n); images at distance ≥ ``ZSCORE`` are outliers, the rest the core.
Classes with at most ``MIN_IMAGES`` images keep all of them.

That core analysis cannot find outliers spread over the classes: the covariance is the class's
own, so the mean squared distance is 3 whatever the class holds and about 3 % of any class is
at distance ≥ 3 (10 % pure-noise particles at SNR 0.3: precision/recall 0.29/0.30). The
outliers (``fraction_outliers``) are therefore found by a test on each particle's best
correlation after alignment, cc (kernels/classify2d.outlier_test), and the reference's core is
kept for the core fractions and the criterion (``fraction_outliers_core``). A particle is an
outlier when any of:

* noise: cc ≤ the ``NULL_QUANTILE`` quantile of a per-dataset null, the cc that
  phase-randomised copies of the particles (same power spectrum, random phases: no structure)
  reach against the same classes after the same search (a one-sided test: at most 1 % of
  images without signal pass as particles; cf. the phase-randomisation test of Chen et al.
  2013, Ultramicroscopy 135:24, applied here to 2-D correlations);
* off its class: cc / (median cc of its class) below median − ``MADS``·1.4826·MAD of that
  ratio over all particles (Hampel's robust outlier rule; the ratio removes the view-dependent
  signal-to-noise ratio of each class);
* off all: cc below median − ``MADS``·1.4826·MAD of the cc of all particles (catches a class
  filled mostly by particles of another molecule, whose own median is low).

Measured (tests/test_level3.py; one αβ dimer of 5ME2, 48 px at 2.5 Å, 6 Å, 10 classes × 60,
SNR 0.3, 10 % replaced): pure noise precision/recall 0.97/1.00, a torus 0.98/0.93, a rod
0.98/1.00; particles too like the dimer at 6 Å are not separated (two balls 36 Å apart
0.83/0.08, chain A alone 0.89/0.13; chains C/D are the same molecule by the tetramer's 2-fold
axis). Right particles at SNR 0.2: 0.7 % flagged.

Metrics (fractions unitless):
  n_particles                the particles given
  n_classes                  the user classes that are not blank (ClassesData.blank)
  fraction_outliers          outliers of the correlation test / particles
  fraction_outliers_noise    of which not above the null (as a fraction of all particles)
  null_cc_limit              the null's NULL_QUANTILE quantile (Pearson r)
  fraction_outliers_core     outliers of the reference's core analysis / particles
  core_fraction_mean         mean over the classes of core / assigned (0 for a class with none)
  core_fraction_min          its minimum
  fraction_unstable_classes  classes with core fraction < CORE_LIMIT / classes
  n_unstable_classes         their number
  n_empty_classes            classes that no particle chose
  n_blank_classes            classes of the stack that are blank (constant images), left out
  assignment_cc_mean         mean correlation of a particle with its class after alignment

Note on the limit: the covariance is that of the class's own projections, so the mean squared
distance is exactly the number of components (3) and at most 3/9 of a class can lie at
distance ≥ 3: the core of a class with more than ``MIN_IMAGES`` images is never below 2/3 of
it. A core fraction under 0.7 therefore in practice means a class that attracted (almost) no
particles.
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.items.base import Fact, Table, new_result
from cryovalid.kernels import classify2d

ID = "3.a"
LEVEL = "3"
REQUIRES = ("particles", "classes")
TITLE = "Outlier detection"
SECTION = "Level 3 analysis"

CORE_LIMIT = 0.7  # a class whose core is smaller than this fraction of its images is unstable
MAX_FRACTION = 0.2  # warn when more than this fraction of the classes is unstable (strict)
ZSCORE = classify2d.CORE_ZSCORE  # Mahalanobis distance of an outlier (>=)
PCA_COMPONENTS = classify2d.PCA_COMPONENTS
MIN_IMAGES = classify2d.MIN_CORE_IMAGES  # classes with at most this many images are kept whole
NULL_QUANTILE = classify2d.NULL_QUANTILE  # a cc at most this quantile of the null is noise
MADS = classify2d.OUTLIER_MADS  # robust z-score of an outlier correlation

WARN_UNSTABLE = ("A large fraction of the 2D classes are rather unstable. In particular, "
                 "{count:d} classes have a core that is smaller than {percent:g}% of the "
                 "images assigned")

EXPLANATION = (
    "Each particle is assigned to the user 2D class it correlates best with after a 2-D "
    "alignment (in-plane rotation and shift; the particles are first put on the classes' grid). "
    f"Then, for each class with more than {MIN_IMAGES} images, the aligned images inside the "
    "circle of radius half the box, minus the class mean, are projected on the first "
    f"{PCA_COMPONENTS} principal components of the class, and each image's Mahalanobis distance "
    f"in that space is computed; images at a distance of {ZSCORE:g} or more are outliers, the "
    "others form the core of the class. A class whose core is a small part of the images "
    "assigned to it is unstable: its images do not share one view. The principal axes are "
    "computed exactly (SVD); the reference learns them by EM-PCA, which converges to the same "
    "subspace. A class that received no particle counts as a core fraction of 0 (the reference "
    "silently leaves such classes out). Because the covariance is that of the class's own "
    f"images, at most a third of a class can be at distance {ZSCORE:g} or more; the criterion "
    "mostly reacts to classes that the particles do not support at all. The outliers "
    "counted are therefore found by a second test, on each particle's correlation with its "
    "class after alignment: a particle is an outlier if its correlation is not above the "
    f"{100 * NULL_QUANTILE:g}th percentile of the correlations that phase-randomised copies "
    "of the particles (the same power spectrum, no structure) reach against the same classes "
    "after the same search (an image without signal), or if it lies more than "
    f"{MADS:g} robust standard deviations (1.4826 times the median absolute deviation) below "
    "the median, either relative to the median correlation of its class or among all "
    "particles (Hampel's rule). The reference's core analysis gives the core fractions and the "
    "criterion.")
CRITERIA = (
    f"OK if the number of classes whose core is smaller than {100 * CORE_LIMIT:g}% of the "
    f"images assigned to them is at most {100 * MAX_FRACTION:g}% of the classes; one warning "
    "otherwise.")


def ctf_notes(pd) -> list:
    """What Level 3's items say about the particles' CTF (data.ParticlesData.on_class_grid)."""
    if pd.phase_flipped:
        return ["The particles were phase-flipped by their CTF (rlnDefocusU/V/Angle and the "
                "acquisition) before they were compared with the classes, which are "
                "CTF-corrected averages."]
    return ["The particles carry no CTF (no rlnDefocusU, or no voltage, Cs or amplitude "
            "contrast), so they were compared with the classes as they are; particles with a "
            "CTF would be phase-flipped first."]


def run(ctx):
    res = new_result(sys.modules[__name__])
    pd = ctx.particles
    res.notes += ctf_notes(pd)
    kept = ctx.classes.require_classes()  # blank classes are left out (ClassesData.blank)
    k = len(kept)
    asg = pd.assignment
    n = pd.n
    total = len(pd.user_classes)
    assigned = np.bincount(asg.best, minlength=total)[kept]
    core_out, distance = pd.core
    test = pd.outliers
    outlier = test.outlier
    core = assigned - np.bincount(asg.best[core_out], minlength=total)[kept]
    frac = np.where(assigned > 0, core / np.maximum(assigned, 1), 0.0)
    unstable = int(np.count_nonzero(frac < CORE_LIMIT))
    share = unstable / k
    res.metrics.update({
        "n_particles": n, "n_classes": k,
        "fraction_outliers": round(float(outlier.mean()), 4),
        "fraction_outliers_noise": round(float(test.noise.mean()), 4),
        "null_cc_limit": round(test.null_limit, 4),
        "fraction_outliers_core": round(float(core_out.mean()), 4),
        "core_fraction_mean": round(float(frac.mean()), 4),
        "core_fraction_min": round(float(frac.min()), 4),
        "fraction_unstable_classes": round(share, 4),
        "n_unstable_classes": unstable,
        "n_empty_classes": int(np.count_nonzero(assigned == 0)),
        "n_blank_classes": int(total - k),
        "assignment_cc_mean": round(float(asg.cc.mean()), 4)})
    res.facts += [
        Fact("Particles", n, "", "{:d}"),
        Fact("User classes", k if k == total else f"{k} ({total - k} blank left out)", "",
             "{}"),
        Fact("Outliers (correlation test)",
             f"{int(outlier.sum())} ({100 * outlier.mean():.1f} %)", "", "{}"),
        Fact("Of which not above images without signal",
             f"{int(test.noise.sum())} ({100 * test.noise.mean():.1f} %)", "", "{}"),
        Fact(f"Null correlation ({100 * NULL_QUANTILE:g}th percentile)",
             round(test.null_limit, 3), "", "{:.3f}"),
        Fact(f"Outside the cores (Mahalanobis distance ≥ {ZSCORE:g})",
             f"{int(core_out.sum())} ({100 * core_out.mean():.1f} %)", "", "{}"),
        Fact("Mean core fraction", round(float(frac.mean()), 3), "", "{:.3f}"),
        Fact(f"Classes with a core below {100 * CORE_LIMIT:g}%",
             f"{unstable} ({100 * share:.1f} %)", "", "{}"),
        Fact("Classes that received no particle", int(np.count_nonzero(assigned == 0)), "",
             "{:d}"),
        Fact("Mean correlation of a particle with its class",
             round(float(asg.cc.mean()), 3), "", "{:.3f}")]
    order = np.argsort(frac, kind="stable")
    res.tables.append(Table(
        "Classes sorted by core fraction, smallest first (assigned: particles whose best class "
        "it is; core: those at a Mahalanobis distance below "
        f"{ZSCORE:g})",
        ["Class", "Assigned", "Core", "Core fraction"],
        [[int(kept[c]) + 1, int(assigned[c]), int(core[c]), float(frac[c])] for c in order],
        ["{:d}", "{:d}", "{:d}", "{:.3f}"]))
    if share > MAX_FRACTION:
        res.warn("unstable_classes", WARN_UNSTABLE, count=unstable, percent=100 * CORE_LIMIT)
        res.summary = ("It seems that many of the particles supplied by the user are outliers "
                       "in their 2D classes (see 3.a).")
    if note := ctx.classes.blank_note():
        res.notes.append(note)
    res.notes.append(
        "The reference's table and image-count histogram show the core sizes under the caption "
        "'assigned'; here the table gives both and the histogram shows the assigned counts. "
        "Particles are aligned as given (no CTF correction, as the reference); mirrors are not "
        "searched.")
    res.data.update({"core_fraction": frac, "assigned": assigned, "core": core,
                     "order": order, "classes": pd.user_classes[kept],
                     "numbers": kept + 1, "distance": distance,
                     "outlier": outlier, "core_outlier": core_out, "noise": test.noise,
                     "null_cc_limit": test.null_limit, "core_limit": CORE_LIMIT})
    return res
