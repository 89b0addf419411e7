"""Figure of 4.a (similarity criteria, vrs_level2_5.md §3.1): the reference's four panels in one
figure: histograms of the CC and of IMED (25 bins), IMED against CC, and defocus against CC
(left out when the particles carry no CTF; the reference crashes there). Draws ``res.data``
only."""
from __future__ import annotations

import numpy as np

from cryovalid.figures.common import Drawing, png, subplots

FONT = 8
BINS = 25


def draw_similarity(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "cc" not in d:
        return out
    cc, dist, defocus = d["cc"], d["imed"], d.get("defocus")
    fig, axes = subplots(2, 2, figsize=(6.4, 4.6))
    (a, b), (c, e) = axes
    a.hist(cc, bins=BINS, color="#2596be", edgecolor="white")
    pct = f"{100 * d['null_quantile']:g}th percentile"
    a.axvline(d["threshold"], color="#b03030", ls="--", lw=1,
              label=f"random orientations, {pct}")
    a.legend(fontsize=FONT - 1)
    a.set_xlabel("Cross-correlation", fontsize=FONT)
    a.set_ylabel("Count", fontsize=FONT)
    b.hist(dist, bins=BINS, color="#2596be", edgecolor="white")
    b.set_xlabel("IMED", fontsize=FONT)
    b.set_ylabel("Count", fontsize=FONT)
    c.scatter(dist, cc, s=4, color="#2596be", linewidths=0, rasterized=True)
    c.set_xlabel("IMED", fontsize=FONT)
    c.set_ylabel("Cross-correlation", fontsize=FONT)
    if defocus is not None:
        e.scatter(np.asarray(defocus), cc, s=4, color="#2596be", linewidths=0, rasterized=True)
        e.set_xlabel("Defocus (Å)", fontsize=FONT)
        e.set_ylabel("Cross-correlation", fontsize=FONT)
    else:
        e.set_axis_off()
        e.text(0.5, 0.5, "No CTF: no defocus", ha="center", va="center", fontsize=FONT,
               transform=e.transAxes)
    for ax in (a, b, c, e):
        ax.tick_params(labelsize=FONT - 1)
        ax.grid(True, alpha=0.4)
    fig.tight_layout()
    caption = ("Top: histograms of the cross-correlation (CC) and IMED between the particles "
               f"and their projections at the assigned orientations (dashed: the {pct} of the "
               "CC at random orientations). Bottom: IMED against CC")
    caption += (", and defocus against CC." if defocus is not None
                else " (the particles carry no CTF, so there is no defocus panel).")
    out.add("similarity.png", png(fig), caption)
    return out


DRAWS = {"4.a": draw_similarity}
