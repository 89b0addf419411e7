"""Figures of 1.e (MonoRes with half maps) and 1.f (MonoDir).

1.e: the histogram and coloured surface views of :func:`cryovalid.figures.localmaps._draw`.
1.f: the same for the mean directional resolution, plus the best-direction counts as bars
(directions ordered by their tilt from z), a polar plot of the best directions (azimuth = rot,
radius = tilt, marker area ∝ count, as the reference's 2-D plot) and the radial curves of the
best, worst and mean directional resolution. Everything drawn was computed by the items.
"""
from __future__ import annotations

import numpy as np

from cryovalid.figures.common import Drawing, new_figure, png, subplots
from cryovalid.figures.localmaps import _draw


def draw_monores(res, ctx) -> Drawing:
    return _draw(res, ctx, "local_resolution_monores", "Local resolution (Å)",
                 "Resolution (Å)", "local resolution by MonoRes from the half maps (Å)",
                 marker=ctx.resolution, marker_label="reported resolution")


def _bars(d) -> bytes:
    tilt, counts = np.asarray(d["tilt"]), np.asarray(d["counts"])
    order = np.argsort(tilt, kind="stable")
    fig, ax = subplots(figsize=(6.3, 2.6))
    ax.bar(np.arange(order.size), counts[order], color="#2596be", width=0.85)
    expected = counts.sum() / max(counts.size, 1)
    ax.axhline(expected, color="#b03030", ls="--", lw=0.9, label="equal counts")
    step = max(1, order.size // 12)
    ax.set_xticks(np.arange(0, order.size, step))
    ax.set_xticklabels([f"{tilt[i]:.0f}" for i in order[::step]])
    ax.set_xlabel("Direction (tilt from the z axis, degrees)")
    ax.set_ylabel("Voxels best resolved")
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.4)
    fig.tight_layout()
    return png(fig)


def _polar(d) -> bytes:
    tilt, rot, counts = (np.asarray(d[k], dtype=float) for k in ("tilt", "rot", "counts"))
    fig = new_figure((3.6, 3.6))
    ax = fig.add_subplot(projection="polar")
    c = counts / max(counts.max(), 1.0)
    ax.scatter(np.radians(rot), tilt, s=5 + 35 * c, c=c, cmap="viridis", vmin=0, vmax=1)
    ax.set_ylim(0, 90)
    ax.set_yticks([30, 60, 90])
    ax.set_yticklabels(["30°", "60°", "90°"], fontsize=7)
    ax.set_title("Best directions (radius: tilt from z)", fontsize=8)
    fig.tight_layout()
    return png(fig)


def _radial(d) -> bytes:
    prof = d["radial"]
    fig, ax = subplots(figsize=(5.0, 2.8))
    for key, colour, label in (("best", "tab:blue", "best"), ("mean", "black", "mean"),
                               ("worst", "tab:red", "worst")):
        ax.plot(prof["radius_A"], prof[key], color=colour, lw=1.2, label=label)
    ax.set_xlabel("Distance from the box centre (Å)")
    ax.set_ylabel("Directional resolution (Å)")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.4)
    fig.tight_layout()
    return png(fig)


def draw_monodir(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "counts" not in d:
        return out
    p = d.get("pvalue")
    ptext = "not tested" if p is None else f"chi-square p = {p:.3g}"
    out.add("monodir_best_directions.png", _bars(d),
            f"Number of voxels best resolved in each of the {len(d['counts'])} directions, "
            f"ordered by their tilt from the z axis; a map without preferred directions has "
            f"about equal counts (dashed line; {ptext}).")
    out.add("monodir_best_directions_polar.png", _polar(d),
            "Best directions on the half sphere: azimuth (rot) around, tilt from the z axis as "
            "radius; marker size and colour ∝ the number of voxels best resolved there.")
    out.add("monodir_radial.png", _radial(d),
            "Best, mean and worst directional resolution averaged over shells of distance "
            "from the box centre.")
    out.extend(_draw(res, ctx, "monodir_mean", "Mean directional resolution (Å)",
                     "Resolution (Å)", "mean directional resolution (Å)",
                     marker=ctx.resolution, marker_label="reported resolution"))
    return out


DRAWS = {"1.e": draw_monores, "1.f": draw_monodir}
