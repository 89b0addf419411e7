"""Figures of Level 3 (particles against the user's 2D classes): the input section's first
particles, 3.a's histograms of core fraction and assigned counts, 3.b's histogram of the
resolution at FRC = 0.5 and its scatter against the class size, 3.c's gallery of the new
classes and the densities of the two lists of correlations (vrs_level2_5.md §2). They draw the
arrays of ``res.data`` and of ``ctx.particles``; nothing is computed here beyond layout.
"""
from __future__ import annotations

import os

import numpy as np

from cryovalid.figures.common import Drawing, histogram, png, subplots
from cryovalid.figures.level2 import gallery

FIRST = 32  # particles shown in the input section


def draw_particles_section(ctx) -> Drawing:
    """The input section: the first 32 particles as given (original grid), 8 per row."""
    out = Drawing()
    pt = ctx.particles.particles
    k = min(FIRST, len(pt))
    imgs = pt.images(np.arange(k))
    name = os.path.basename(pt.path) or "the particles"
    out.add("particles_input.png", gallery(imgs, [str(i + 1) for i in range(k)]),
            f"First particles of the set of particles provided by the user ({name}).")
    if not pt.missing("rlnAngleRot", "rlnAngleTilt"):
        from cryovalid.figures.level4 import angular_distribution

        out.add("angular_distribution.png", angular_distribution(ctx.particles.eulers),
                f"Angular distribution of the {len(pt)} particles: their projection directions "
                f"(longitude rot, latitude 90° − tilt) on a Hammer equal-area map, as counts "
                f"per 5° × 5° cell (the user's assignment, not expanded by the symmetry).")
    return out


def draw_outliers(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "core_fraction" not in d:
        return out
    out.add("outliers_core_fraction_histogram.png",
            histogram(d["core_fraction"], "Core fraction", d.get("core_limit"), "limit"),
            "Histogram of the core fraction of the 2D classes.")
    out.add("outliers_assigned_histogram.png", histogram(d["assigned"], "Image count"),
            "Histogram of the number of particles assigned to the 2D classes.")
    return out


def draw_internal(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "r05" not in d:
        return out
    done = np.asarray(d["evaluated"])
    out.add("internal_frc05_histogram.png",
            histogram(np.asarray(d["r05"])[done], "Resolution at FRC=0.5 (Å)"),
            "Histogram of the resolution at FRC=0.5 of the different classes.")
    fig, ax = subplots(figsize=(4.6, 2.8))
    ax.scatter(d["size"], np.asarray(d["f05"]) / d["pixel_size"], s=12, color="#2596be")
    ax.set_xlabel("No. images in the class (core)")
    ax.set_ylabel("Freq. at which FRC=0.5 (1/Å)")
    ax.grid(True, alpha=0.4)
    fig.tight_layout()
    out.add("internal_frc05_vs_size.png", png(fig),
            "Frequency at which the FRC of the two half-class averages drops below 0.5 "
            "against the number of particles in the class's core (0 for classes not "
            "evaluated).")
    if "label_ranks" in d:
        out.add("internal_label_ranks.png", _label_ranks(d),
                "Rank of each particle's own class (rlnClassNumber) among all the classes, "
                "by the correlation after alignment (1: the class that fits the particle "
                "best). Right labels pile up at the left; labels given at random spread "
                "evenly, at the level of the dashed line when all of them are random. The "
                "shaded ranks give the estimate of the fraction labelled at random; the red "
                "line is the level that estimate spreads over all ranks.")
    return out


def _label_ranks(d) -> bytes:
    k = int(d["n_classes"])
    ranks = np.asarray(d["label_ranks"]) + 1
    m = max(1, int(round(d["label_tail"] * k)))
    fig, ax = subplots(figsize=(4.6, 2.8))
    counts = np.bincount(ranks, minlength=k + 1)[1:] / max(len(ranks), 1)
    ax.bar(np.arange(1, k + 1), counts, width=1.0, color="#2596be", edgecolor="white", lw=0.3)
    ax.axvspan(k - m + 0.5, k + 0.5, color="#b03030", alpha=0.12, lw=0)
    ax.axhline(1.0 / k, color="#555555", ls="--", lw=1)
    f = d["random_label_fraction"]
    ax.axhline(f / k, color="#b03030", lw=1)
    ax.set_xlabel("Rank of the particle's own class")
    ax.set_ylabel("Fraction of the particles")
    ax.set_title(f"estimated random labels {100 * f:.0f} % "
                 f"(limit {100 * d['random_label_limit']:.0f} %)", fontsize=9)
    ax.set_xlim(0.5, k + 0.5)
    ax.grid(True, axis="y", alpha=0.4)
    fig.tight_layout()
    return png(fig)


def draw_external(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "new_classes" not in d:
        return out
    new = d["new_classes"]
    counts = d["new_counts"]
    out.add("external_new_classes.png",
            gallery(new, [f"{i + 1} ({int(counts[i])})" for i in range(len(new))]),
            "Set of 2D classes calculated by cryovalid's classifier from the particles "
            "(number of particles in brackets). These should be compared to the 2D classes "
            "provided by the user.")
    kde = d.get("kde") or {}
    if any(v is not None for v in kde.values()):
        fig, ax = subplots(figsize=(4.6, 2.8))
        for key, label in (("user_vs_new", "User vs New"), ("new_vs_user", "New vs User")):
            if kde.get(key) is not None:
                ax.plot(d["kde_grid"], kde[key], label=label)
        ax.axvline(d["cc_limit"], color="#b03030", ls="--", lw=1)
        ax.set_xlabel("Correlation")
        ax.set_ylabel("Prob. Density Function")
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.4)
        fig.tight_layout()
        out.add("external_correlation_density.png", png(fig),
                "Densities (Gaussian kernels, bandwidth factor 0.25) of the best correlation "
                "of each user class with the new classes and of each new class with the user "
                f"classes. The Kolmogorov-Smirnov statistic is {d['ks_statistic']:.4f} and "
                f"the p-value {d['ks_pvalue']:.4g}.")
    else:
        out.missing("The densities of the correlations cannot be drawn: all correlations "
                    "are equal.")
    return out


DRAWS = {"3.a": draw_outliers, "3.b": draw_internal, "3.c": draw_external}
