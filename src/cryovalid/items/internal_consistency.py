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

Metrics (Å, digital frequencies in cycles per pixel):
  n_classes_evaluated         classes with a core of at least MIN_IMAGES images
  r05_median_A, r05_min_A, r05_max_A   of R05 over those classes
  fraction_at_nyquist         classes whose FRC never drops below FRC_LEVEL
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
    "the classes; a class much worse than others of the same size is suspect.")
CRITERIA = ""  # not evaluable, as the reference: no automatic limit; counted in no score
CRITERIA_NOTE = (
    "The reference defines no automatic criterion for this item, and none is proposed here: "
    "the resolution of a half-class average depends on the class size and the particles' "
    "signal-to-noise ratio, which the report does not know, so no fixed limit separates good "
    "from bad classes. Manual interpretation is needed; the item is not counted in the score.")


MIN_LABELLED = 0.9  # rlnClassNumber is used when this fraction of the labels name a class
MEMBERSHIP_NOTE = (
    "The agreement is the fraction of the particles that correlate best (after alignment) "
    "with the class the user's classification put them in (rlnClassNumber). It falls with "
    "the particles' SNR even for a right classification (simulated, 10 distinct views: 96 % "
    "at SNR 0.2, 84 % at 0.05, 70 % at 0.02) and with classes whose particles were "
    "assigned inconsistently (half of them moved to random classes: 56 %, 51 %, 49 %), so it "
    "is shown without a verdict.")


def membership(labels, best, k: int):
    """(fraction of the particles whose best class (our assignment, 0-based ``best``) is the
    class the user put them in (``labels``, RELION's rlnClassNumber, 1-based), number of
    particles with a usable label), or None when fewer than MIN_LABELLED of the labels name
    one of the ``k`` classes (the STAR is then not the classification of these classes)."""
    lab = np.asarray(labels, dtype=np.float64)
    ok = np.isfinite(lab) & (lab == np.round(lab)) & (lab >= 1) & (lab <= k)
    if ok.mean() < MIN_LABELLED:
        return None
    return float(np.mean(best[ok] == lab[ok].astype(int) - 1)), int(ok.sum())


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
    agree = (membership(table["rlnClassNumber"], best, k) if "rlnClassNumber" in table.columns
             else None)
    if agree is not None:
        res.metrics["membership_agreement"] = round(agree[0], 4)
        res.facts.append(Fact("Particles whose best class is their own (rlnClassNumber)",
                              f"{100 * agree[0]:.1f} % of {agree[1]}", "", "{}"))
        res.notes.append(MEMBERSHIP_NOTE)
    res.notes.append(CRITERIA_NOTE)
    res.notes.append(
        "This is the resolution of 2D class averages of the particles given, not of the map; "
        "it is not listed among the map's resolution estimates.")
    res.data.update({"r05": r05, "f05": f05, "size": size, "pixel_size": ts,
                     "curves": curves, "evaluated": done})
    return res
