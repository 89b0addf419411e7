"""Figures of 4.e (classification without alignment: slices of the two class maps and of their
difference) and 4.f (overfitting detection: the inverse resolution against the number of
particles, for the particles and for noise), vrs_level2_5.md §3.7–3.8. They draw the arrays of
``res.data``; nothing is computed here beyond the slice positions (figures/slices)."""
from __future__ import annotations

import numpy as np
from matplotlib.ticker import NullFormatter

from cryovalid.figures.common import Drawing, png, subplots
from cryovalid.figures.slices import max_variance_indices, orthogonal_slices

FONT = 8


def _inverse_resolution_plot(sizes, exp_inverse, noise_inverse) -> bytes:
    fig, ax = subplots(figsize=(4.6, 2.8))
    n = np.asarray(sizes, dtype=np.float64)
    for inv, label, colour in ((exp_inverse, "Experimental particles", "#2596be"),
                               (noise_inverse, "Noise particles", "#b03030")):
        ax.plot(n, np.asarray(inv, dtype=np.float64), "o-", color=colour, lw=1.2, ms=3.5,
                label=label)
    ax.set_xscale("log")
    ax.set_xticks(n, [str(int(v)) for v in n])  # the subset sizes, no minor labels
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelsize=FONT)
    ax.set_xlabel("No. Particles")
    ax.set_ylabel("Resolution Freq. (1/Å)")
    ax.legend(fontsize=FONT)
    ax.grid(True, alpha=0.4, which="both")
    fig.tight_layout()
    return png(fig)


def draw_overfitting(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "sizes" not in d:
        return out
    sizes = [int(v) for v in d["sizes"]]
    out.add("overfitting.png",
            _inverse_resolution_plot(sizes, d["inverse"], d["noise_inverse"]),
            "Inverse of the resolution (mean over the repetitions) as a function of the number "
            "of particles. We tested with subsets of "
            + ", ".join(str(v) for v in sizes) + " particles.")
    return out


def draw_classes(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "class_maps" not in d:
        return out
    maps = list(d["class_maps"]) + [d["difference"]]
    names = ("class_3d_1.png", "class_3d_2.png", "class_3d_difference.png")
    captions = ("Slices of maximum variation in Class 1.", "Slices of maximum variation in "
                "Class 2.", "Slices of maximum variation in Class 1-Class 2.")
    for vol, name, caption in zip(maps, names, captions):
        vol = np.asarray(vol, dtype=np.float32)
        out.add(name, orthogonal_slices(vol, max_variance_indices(vol)), caption)
    return out


DRAWS = {"4.e": draw_classes, "4.f": draw_overfitting}
