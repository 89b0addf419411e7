"""Figures of 4.b (alignability smoothness: the histogram of the angular distance to the smoothed
maximum) and 4.c (alignability: histograms of precision and accuracy and their scatter plot),
vrs_level2_5.md §3.2, §3.3 (histograms of 25 bins, as the reference). They draw the arrays of
``res.data``; nothing is computed here."""
from __future__ import annotations

import numpy as np

from cryovalid.figures.common import Drawing, histogram, png, subplots


def draw_smoothness(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "distance" not in d:
        return out
    lim = d["limit"]
    out.add("alignability_smoothness_hist.png",
            histogram(d["distance"], "Angular distance to maximum (°)", lim, f"{lim:g}°"),
            "Histogram of the angular distance between the angular assignment given by the "
            "user and the maximum of the smoothed landscape of cross-correlation (dashed: "
            f"{lim:g}°).")
    return out


def _scatter(precision, accuracy, limit) -> bytes:
    fig, ax = subplots(figsize=(4.0, 3.4))
    ax.scatter(np.asarray(precision), np.asarray(accuracy), s=4, color="#2596be", alpha=0.5,
               linewidths=0, rasterized=True)
    ax.axvline(limit, color="#b03030", ls="--", lw=1)
    ax.axhline(limit, color="#b03030", ls="--", lw=1)
    ax.set_xlabel("Precision")
    ax.set_ylabel("Accuracy")
    ax.grid(True, alpha=0.4)
    fig.tight_layout()
    return png(fig)


def draw_precision(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "precision" not in d:
        return out
    lim = d["limit"]
    out.add("alignability_precision_hist.png",
            histogram(d["precision"], "Precision", lim, f"{lim:g}"),
            f"Histogram of the alignability precision (dashed: {lim:g}).")
    out.add("alignability_accuracy_hist.png",
            histogram(d["accuracy"], "Accuracy", lim, f"{lim:g}"),
            f"Histogram of the alignability accuracy (dashed: {lim:g}).")
    out.add("alignability_accuracy_precision.png", _scatter(d["precision"], d["accuracy"], lim),
            "Scatter plot of the accuracy against the precision of each particle.")
    return out


DRAWS = {"4.b": draw_smoothness, "4.c": draw_precision}
