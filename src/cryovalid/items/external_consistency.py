"""3.c Classification external consistency: the particles classified again, without the user's
classes, and the new classes compared with the user's (vrs_level2_5.md §2.3; the reference
runs cryoSPARC's 2D classification, Punjani et al. 2017, Nat. Methods 14:290-296, and compares
with Xmipp's ``alignImagesConsideringMirrors``).

Classifier (kernels/classify2d.classify): multi-reference alignment with k-means assignment
(van Heel & Stöffler-Meilicke 1985; Penczek et al. 1992), seeded by k-means in a PCA space of
rotation- and translation-invariant features (Schatz & van Heel 1990), k = the number of user
classes, fixed seed, on a random subset of at most ``classify2d.CLASSIFY_PER_CLASS``·k of the
particles on the user classes' grid (binned to a pixel size of
``classify2d.SEARCH_PIXEL`` Å for the alignment rounds, Nyquist at cryoSPARC's default
maximum resolution of 6 Å; the final averages at full size).
Then for each user class (the original stack) the new class with the highest Pearson
correlation within the circle of radius box/2 after in-plane rotation, shift and mirror
(kernels/classify2d.correlation_after_alignment), and the same for each new class against the
user classes; Gaussian kernel density estimates of both lists (scipy ``gaussian_kde``,
bandwidth factor ``KDE_BANDWIDTH``, on ``KDE_POINTS`` points between the smallest and largest
correlation) and the two-sample Kolmogorov-Smirnov test (scipy ``ks_2samp``).

Metrics (correlations unitless):
  n_classes                       user classes = new classes
  cc_user_min, cc_user_mean       best correlation of each user class with the new classes
  cc_new_min, cc_new_mean         best correlation of each new class with the user classes
  fraction_user_below_cc          user classes below CC_LIMIT
  ks_statistic, ks_pvalue         the two-sample KS test of the two lists
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import CannotMeasure
from cryovalid.items.base import Fact, Table, new_result
from cryovalid.items.outliers import ctf_notes
from cryovalid.kernels import classify2d

ID = "3.c"
LEVEL = "3"
REQUIRES = ("particles", "classes")
TITLE = "Classification external consistency"
SECTION = "Level 3 analysis"

CC_LIMIT = 0.8  # every user class should correlate at least this well with a new class
P_LIMIT = 0.001  # warn when the KS test rejects equal distributions at this p-value
KDE_BANDWIDTH = 0.25  # scipy gaussian_kde bandwidth factor (bw_method)
KDE_POINTS = 200
SEED = 0  # the classifier's random seed

WARN_LOW = "Some user classes correlate less than {limit:g} with the newly calculated classes"
WARN_KS = ("The equality of the two correlation distributions (user vs new, new vs user) was "
           "rejected with a p-value of {p:f}")

EXPLANATION = (
    "The particles are classified again into as many 2D classes as the user gave, without "
    "using the user's classes (on a random subset of at most "
    f"{classify2d.CLASSIFY_PER_CLASS} particles per class), and "
    "the two sets of classes are compared: for each user class the new class that correlates "
    "best with it after in-plane rotation, shift and mirroring, and for each new class the "
    "best user class. If the user's classes are supported by the particles, every user class "
    "finds a close new class and the two lists of correlations have the same distribution "
    "(tested with the two-sample Kolmogorov-Smirnov test). The reference uses cryoSPARC's 2D "
    "classification; cryovalid uses its own classifier (multi-reference alignment with "
    "k-means assignment, seeded by k-means on rotation- and shift-invariant features, with a "
    "fixed seed), so the new classes, and therefore the correlations and the p-value, differ "
    "from cryoSPARC's.")
CRITERIA = (
    f"OK if 1) no class from the user correlates less than {CC_LIMIT:g} with the newly "
    "computed classes, and 2) the equality of the two correlation distributions (user vs new, "
    f"new vs user) cannot be rejected with a threshold for the p-value of {P_LIMIT:g}; one "
    "warning for each that fails.")


def run(ctx):
    from scipy.stats import gaussian_kde, ks_2samp

    res = new_result(sys.modules[__name__])
    res.notes += ctf_notes(ctx.particles)
    pd = ctx.particles
    kept = ctx.classes.require_classes()  # blank classes are left out (ClassesData.blank)
    user = pd.user_classes[kept]
    k = len(user)
    if k < 2:
        raise CannotMeasure("one user class: the two distributions of correlations cannot "
                            "be compared")
    if pd.n < k:
        raise CannotMeasure(f"{pd.n} particles for {k} classes")
    cl = classify2d.classify(pd.on_class_grid, k, small=pd.binned, seed=SEED)
    new = cl.classes
    cc = classify2d.correlation_after_alignment(user, new, mirrors=True)  # (user, new)
    best_new = cc.argmax(axis=1)
    corr_user = cc.max(axis=1)
    best_user = cc.argmax(axis=0)
    corr_new = cc.max(axis=0)
    ks = ks_2samp(corr_user, corr_new)
    allc = np.concatenate([corr_user, corr_new])
    grid = np.linspace(allc.min(), allc.max(), KDE_POINTS)
    kde = {}
    if allc.max() > allc.min():
        for name, v in (("user_vs_new", corr_user), ("new_vs_user", corr_new)):
            try:
                kde[name] = gaussian_kde(v, bw_method=KDE_BANDWIDTH)(grid)
            except (np.linalg.LinAlgError, ValueError):  # one value repeated: no density
                kde[name] = None
    low = int(np.count_nonzero(corr_user < CC_LIMIT))
    res.metrics.update({
        "n_classes": k,
        "cc_user_min": round(float(corr_user.min()), 4),
        "cc_user_mean": round(float(corr_user.mean()), 4),
        "cc_new_min": round(float(corr_new.min()), 4),
        "cc_new_mean": round(float(corr_new.mean()), 4),
        "fraction_user_below_cc": round(low / k, 4),
        "ks_statistic": round(float(ks.statistic), 4),
        "ks_pvalue": float(f"{ks.pvalue:.4g}")})
    res.facts += [
        Fact("Classes (user = new)", k, "", "{:d}"),
        Fact("Smallest correlation of a user class with the new classes",
             round(float(corr_user.min()), 3), "", "{:.3f}"),
        Fact(f"User classes below {CC_LIMIT:g}", f"{low} of {k}", "", "{}"),
        Fact("Mean correlation, user vs new / new vs user",
             f"{corr_user.mean():.3f} / {corr_new.mean():.3f}", "", "{}"),
        Fact("Kolmogorov-Smirnov statistic D", round(float(ks.statistic), 4), "", "{:.4f}"),
        Fact("Kolmogorov-Smirnov p-value", float(ks.pvalue), "", "{:.3g}")]
    order = np.argsort(corr_user, kind="stable")
    res.tables.append(Table(
        "Each user class and the new class that correlates best with it (after rotation, "
        "shift and mirror), worst first",
        ["User class", "New class", "Correlation"],
        [[int(kept[i]) + 1, int(best_new[i]) + 1, float(corr_user[i])] for i in order],
        ["{:d}", "{:d}", "{:.3f}"]))
    if low:
        res.warn("low_cc", WARN_LOW, limit=CC_LIMIT)
    if ks.pvalue < P_LIMIT:
        res.warn("distributions_differ", WARN_KS, p=float(ks.pvalue))
    if res.warnings:
        res.summary = ("It seems that the 2D classes provided by the user and calculated from "
                       "the particles do not match (see 3.c).")
    if note := ctx.classes.blank_note():
        res.notes.append(note + " The particles are classified into as "
                         "many new classes as there are classes left.")
    res.notes.append(
        "The new classes come from cryovalid's classifier, not cryoSPARC's: a different "
        "algorithm gives different classes, so the correlations and the p-value differ from "
        "the reference's. The new classes are computed with a fixed seed and are reproducible.")
    res.data.update({"new_classes": new, "user_classes": user, "cc": cc,
                     "corr_user": corr_user, "corr_new": corr_new, "best_new": best_new,
                     "best_user": best_user, "kde_grid": grid, "kde": kde,
                     "new_counts": np.bincount(cl.labels, minlength=k),
                     "n_classified": int(len(cl.members)), "cc_limit": CC_LIMIT,
                     "ks_statistic": float(ks.statistic), "ks_pvalue": float(ks.pvalue)})
    return res
