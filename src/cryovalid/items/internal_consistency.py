"""3.b Classification internal consistency: for each core class, the Fourier ring correlation
of the averages of two random halves of its aligned particles (vrs_level2_5.md §2.2; the
reference runs Xmipp ``classify_evaluate_classes`` on the core classes of 3.a; the FRC as in
Saxton & Baumeister 1982, J. Microsc. 127:127-138, and van Heel 1987, Ultramicroscopy
21:95-100).

For each user class whose core (``ctx.particles.core``, 3.a) has at least ``MIN_IMAGES``
images: the core is shuffled (seeded, ``SEED``), split in two halves, each half's aligned
images averaged, the FRC of the two averages computed on rings one Fourier pixel wide
(kernels/classify2d.frc), and f05, the first digital frequency (cycles per pixel) where the FRC
drops below ``FRC_LEVEL`` (the last frequency if it never does), read; its resolution is
``R05 = Ts / f05`` Å with Ts the pixel size of the class grid.

The reference has no criterion for this item. When the STAR file carries the user's
classification (rlnClassNumber naming one of the classes for at least ``MIN_LABELLED`` of the
particles) cryovalid adds one, the label test: each particle's class is ranked among all the
classes by the coarse search's correlation after alignment (kernels/classify2d.label_ranks),
the fraction of the particles labelled no better than at random is estimated from the bottom
ranks (kernels/classify2d.random_label_fraction) and the item warns above
``RANDOM_LABEL_LIMIT``. Without labels the item is not evaluable, as the reference's.

Metrics (Å, digital frequencies in cycles per pixel):
  n_classes_evaluated         classes with a core of at least MIN_IMAGES images
  r05_median_A, r05_min_A, r05_max_A   of R05 over those classes
  fraction_at_nyquist         classes whose FRC never drops below FRC_LEVEL
  membership_agreement        particles whose best class is their rlnClassNumber (labels)
  random_label_fraction       estimated fraction labelled no better than at random (labels,
                              at least MIN_LABEL_CLASSES classes)
  labels_renumbered           (flag) another numbering of the classes fits the labels better
                              than the stack's by RENUMBERED_MARGIN: no label test
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import CannotMeasure
from cryovalid.items.base import Fact, Table, new_result
from cryovalid.items.outliers import ctf_notes
from cryovalid.kernels import classify2d

ID = "3.b"
LEVEL = "3"
REQUIRES = ("particles", "classes")
TITLE = "Classification internal consistency"
SECTION = "Level 3 analysis"

MIN_IMAGES = 10  # classes with a smaller core are not evaluated (f05 = 0 in the reference)
FRC_LEVEL = 0.5  # the FRC threshold
SEED = 0  # the random split into halves

EXPLANATION = (
    "A 2D class is internally consistent when any half of its particles gives the same average "
    f"as the other half. For each class whose core (see 3.a) has at least {MIN_IMAGES} "
    "particles, the core is split at random into two halves, the aligned particles of each "
    "half are averaged, and the Fourier ring correlation (FRC) of the two averages is "
    f"computed; the resolution of the class is where the FRC first drops below {FRC_LEVEL:g}. "
    "It depends on the number of particles in the class and on their signal-to-noise ratio, "
    "and this analysis only sees the particles given, often a small part of those used to make "
    "the classes; a class much worse than others of the same size is suspect. When the "
    "particles carry the class the user's classification put them in (rlnClassNumber), the "
    "item also tests that each particle fits its own class better than it would fit a class "
    "drawn at random.")
CRITERIA = ""  # without labels: not evaluable, as the reference (run() sets CRITERIA_LABELS)
CRITERIA_NOTE = (
    "The reference defines no automatic criterion for this item, and none is proposed for "
    "the resolutions: that of a half-class average depends on the class size and the "
    "particles' signal-to-noise ratio, which the report does not know, so no fixed limit "
    "separates good from bad classes. Manual interpretation is needed; the item is not "
    "counted in the score.")
CRITERIA_NOTE_NO_LABELS = CRITERIA_NOTE + (
    " With the particles' class labels (rlnClassNumber in the STAR file) the item would test "
    "whether the classes fit the particles put in them, and be graded.")


MIN_LABELLED = 0.9  # rlnClassNumber is used when this fraction of the labels name a class
MIN_LABEL_CLASSES = 3  # the label test needs at least this many classes
RANDOM_LABEL_LIMIT = 0.25  # warn when more of the particles seem labelled at random
# the labels are taken to number the classes otherwise than the stack when another numbering
# of the classes agrees with the particles' best classes by this much more than the stack's
RENUMBERED_MARGIN = 0.2
# the labels are taken to be the classification of this stack when they name at least this
# fraction of its (non-blank) classes: a 3D classification's numbers, or the particles of a
# few selected classes, do not, and random labels among a few classes are not uniform over all
MIN_LABEL_COVERAGE = 0.5

CRITERIA_LABELS = (
    "OK if at most {limit:.0f} % of the particles are estimated to be in a class "
    "(rlnClassNumber) that fits them no better than a class drawn at random. Only this is "
    "graded; the resolutions of the half-class averages are shown without a verdict.").format(
        limit=100 * RANDOM_LABEL_LIMIT)
WARN_LABELS = (
    "An estimated {percent:.0f} % of the particles are in classes that fit them no better "
    "than a class drawn at random (limit {limit:.0f} %): the classes are not the averages of "
    "the particles the classification put in them")
LABELS_NOTE = (
    "The label test: each particle's own class (rlnClassNumber) is ranked among all the "
    "classes by the correlation after alignment. A right label ranks at or near the top (the "
    "particle's own view or one that looks like it); a label given at random ranks anywhere. "
    "The share of the particles whose class ranks in the bottom {tail:.0f} % of the classes, "
    "divided by {tail_fraction:g}, estimates the fraction labelled at random (as the "
    "proportion of true null hypotheses is estimated from the flat part of a p-value "
    "histogram, Storey 2002). Measured on simulated particles (10 or 40 classes, SNR 0.2 to "
    "0.01): right classifications 0 to 11 %; half of every class's particles moved to random "
    "classes 27 to 51 %. Particles too noisy for any class to stand out raise the estimate "
    "(a right classification at SNR 0.005: 19 %). A particle is part of its own class's "
    "average, which lifts its own class's rank: with few particles per class at low SNR the "
    "test misses a random classification rather than flagging a right one.").format(
        tail=100 * classify2d.RANDOM_LABEL_TAIL, tail_fraction=classify2d.RANDOM_LABEL_TAIL)
MEMBERSHIP_NOTE = (
    "The agreement is the fraction of the particles that correlate best (after alignment) "
    "with the class the user's classification put them in (rlnClassNumber). It falls with "
    "the particles' SNR even for a right classification (simulated, 10 distinct views: 96 % "
    "at SNR 0.2, 84 % at 0.05, 70 % at 0.02) and with classes that look alike, so it is shown "
    "without a verdict; the label test is graded instead.")


def usable_labels(labels, k: int):
    """(mask (n,) of the particles whose ``labels`` (RELION's rlnClassNumber, 1-based) name
    one of the ``k`` classes, their 0-based labels), or None when fewer than MIN_LABELLED of
    the labels do (the STAR is then not the classification of these classes)."""
    import pandas as pd

    lab = pd.to_numeric(pd.Series(np.asarray(labels).ravel()), errors="coerce").to_numpy(
        dtype=np.float64)  # a label that is not a number names no class
    ok = np.isfinite(lab) & (lab == np.round(lab)) & (lab >= 1) & (lab <= k)
    if ok.mean() < MIN_LABELLED:
        return None
    return ok, lab[ok].astype(int) - 1


UNCOVERED_NOTE = (
    "The particles' class numbers (rlnClassNumber) name only {named} of the {k} classes of the "
    "stack (fewer than {limit:.0f} %): they do not seem to be the classification that made these "
    "classes (a 3D classification's numbers, or the particles of a few selected classes). The "
    "label test is therefore not applied, and the item is not graded.")
RENUMBERED_NOTE = (
    "The class numbers of the STAR file (rlnClassNumber) do not seem to follow the order of "
    "the class stack: the particles' best classes agree with their labels for {same:.0f} % "
    "of them, and with another numbering of the classes for {other:.0f} % (for example a "
    "stack of selected classes with the particles' numbers from the whole classification). "
    "The label test is therefore not applied, and the item is not graded.")


def best_numbering(labels, best, k: int) -> float:
    """The largest agreement between the 0-based ``labels`` and ``best`` over all numberings
    of the ``k`` classes (one-to-one; the assignment problem on their contingency table,
    scipy.optimize.linear_sum_assignment)."""
    from scipy.optimize import linear_sum_assignment

    table = np.zeros((k, k))
    np.add.at(table, (np.asarray(labels), np.asarray(best)), 1.0)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / max(len(labels), 1))


def membership(labels, best, k: int):
    """(fraction of the particles whose best class (our assignment, 0-based ``best``) is the
    class the user put them in (``labels``, 1-based), number of particles with a usable
    label), or None when the labels are not usable (:func:`usable_labels`)."""
    use = usable_labels(labels, k)
    if use is None:
        return None
    ok, lab = use
    return float(np.mean(np.asarray(best)[ok] == lab)), int(ok.sum())


def run(ctx):
    res = new_result(sys.modules[__name__])
    res.notes += ctf_notes(ctx.particles)
    pd = ctx.particles
    k = len(pd.user_classes)
    best = pd.assignment.best
    outlier, _ = pd.core
    ts = pd.pixel_size
    rng = np.random.default_rng(SEED)
    f05 = np.zeros(k)
    size = np.zeros(k, dtype=int)
    curves = {}
    for c in range(k):
        idx = np.flatnonzero((best == c) & ~outlier)
        size[c] = len(idx)
        if len(idx) < MIN_IMAGES:
            continue
        idx = rng.permutation(idx)
        h = len(idx) // 2
        a = pd.aligned(idx[:h]).mean(axis=0)
        b = pd.aligned(idx[h:]).mean(axis=0)
        freq, curve = classify2d.frc(a, b)
        f05[c] = classify2d.frc_threshold_frequency(freq, curve, FRC_LEVEL)
        curves[c] = curve
    done = np.flatnonzero(f05 > 0)
    if not done.size:
        raise CannotMeasure(f"no class has a core of at least {MIN_IMAGES} particles")
    r05 = np.where(f05 > 0, ts / np.where(f05 > 0, f05, 1.0), np.nan)
    nyquist = (pd.box // 2) / pd.box  # the last ring's frequency
    at_end = float(np.mean(f05[done] >= nyquist - 1e-9))
    res.metrics.update({
        "n_classes_evaluated": int(done.size),
        "r05_median_A": round(float(np.median(r05[done])), 3),
        "r05_min_A": round(float(r05[done].min()), 3),
        "r05_max_A": round(float(r05[done].max()), 3),
        "fraction_at_nyquist": round(at_end, 4)})
    res.facts += [
        Fact("Classes evaluated", f"{done.size} of {k}", "", "{}"),
        Fact(f"Median resolution at FRC = {FRC_LEVEL:g}", round(float(np.median(r05[done])), 2),
             "Å", "{:.2f}"),
        Fact("Range", f"{r05[done].min():.2f} to {r05[done].max():.2f}", "Å", "{}"),
        Fact("Pixel size of the class grid", round(ts, 4), "Å", "{:.4g}")]
    order = done[np.argsort(-r05[done], kind="stable")]  # worst first
    res.tables.append(Table(
        f"Classes evaluated, worst resolution at FRC = {FRC_LEVEL:g} first (core: particles "
        "of the class's core, 3.a)",
        ["Class", "Core", "Frequency (1/Å)", "Resolution (Å)"],
        [[int(c) + 1, int(size[c]), float(f05[c] / ts), float(r05[c])] for c in order],
        ["{:d}", "{:d}", "{:.4f}", "{:.2f}"]))
    table = pd.particles.table
    use = (usable_labels(table["rlnClassNumber"], k) if "rlnClassNumber" in table.columns
           else None)
    renumbered = False
    if use is not None:
        ok, lab = use
        agree = float(np.mean(best[ok] == lab))
        res.metrics["membership_agreement"] = round(agree, 4)
        res.facts.append(Fact("Particles whose best class is their own (rlnClassNumber)",
                              f"{100 * agree:.1f} % of {int(ok.sum())}", "", "{}"))
        other = best_numbering(lab, best[ok], k)
        renumbered = other > agree + RENUMBERED_MARGIN
        if renumbered:
            res.notes.append(RENUMBERED_NOTE.format(same=100 * agree, other=100 * other))
        res.metrics["labels_renumbered"] = bool(renumbered)  # a flag in report.json
    kept = ctx.classes.kept  # blank classes (constant images) are never ranked
    uncovered = False
    if use is not None:
        named = int(np.count_nonzero(np.isin(kept, lab)))
        uncovered = named < MIN_LABEL_COVERAGE * len(kept)
        if uncovered and not renumbered:
            res.notes.append(UNCOVERED_NOTE.format(named=named, k=len(kept),
                                                   limit=100 * MIN_LABEL_COVERAGE))
    if use is not None and len(kept) >= MIN_LABEL_CLASSES and not (renumbered or uncovered):
        real = ~ctx.classes.blank[lab]  # a label naming a blank class is not ranked
        ranks = classify2d.label_ranks(pd.assignment.scores[ok][real], lab[real])
        f = classify2d.random_label_fraction(ranks, len(kept))
        res.criteria = CRITERIA_LABELS
        res.metrics["random_label_fraction"] = round(f, 4)
        res.facts.append(Fact("Particles estimated to be in a class no better than a random "
                              "one", round(100 * f, 1), "%", "{:.1f}"))
        res.data.update({"label_ranks": ranks, "random_label_fraction": f,
                         "n_classes": len(kept),
                         "random_label_limit": RANDOM_LABEL_LIMIT,
                         "label_tail": classify2d.RANDOM_LABEL_TAIL})
        if f > RANDOM_LABEL_LIMIT:
            res.warn("random_labels", WARN_LABELS, percent=100 * f,
                     limit=100 * RANDOM_LABEL_LIMIT)
            res.summary = ("It seems that many particles are not in the 2D class that fits "
                           "them (see 3.b).")
        res.notes.append(LABELS_NOTE)
    if use is not None:
        res.notes.append(MEMBERSHIP_NOTE)
    if not res.criteria:
        res.notes.append(CRITERIA_NOTE_NO_LABELS
                         if use is None and len(kept) >= MIN_LABEL_CLASSES else CRITERIA_NOTE)
    if note := ctx.classes.blank_note():
        res.notes.append(note)
    res.notes.append(
        "This is the resolution of 2D class averages of the particles given, not of the map; "
        "it is not listed among the map's resolution estimates.")
    res.data.update({"r05": r05, "f05": f05, "size": size, "pixel_size": ts,
                     "curves": curves, "evaluated": done})
    return res
