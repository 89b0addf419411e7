"""Figures of Level 5 (micrographs): the input section's first micrographs with the particles'
coordinates (vrs_level2_5.md §4.1), and 5.a's micrographs with their bad regions and flagged
coordinates. Previews are block averages of about ``PREVIEW_PX`` pixels a side, smoothed by a
Gaussian of σ = 1 preview pixel, in gray; a coordinate is a circle of radius box/2 (the
reference draws a radius of box·Ts/Xdim·Xdim_preview, a bug: the extra Ts factor and the full
box as radius). The masks and scores are the item's and MicrographsData's (cached); nothing is
measured here.
"""
from __future__ import annotations

import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.patches import Circle
from scipy import ndimage

from cryovalid.figures.common import Drawing, histogram, png, subplots
from cryovalid.kernels.micrograph_quality import GOOD_LIMIT, block_mean

PREVIEW_PX = 800  # preview pixels along the longer side (about)
SHOWN = 2  # micrographs in the input section and in 5.a
KEPT_COLOUR, FLAGGED_COLOUR, BAD_COLOUR = "#2ca02c", "#d62728", (0.85, 0.1, 0.1, 0.35)


def preview(img: np.ndarray):
    """(preview float32, factor): the micrograph block-averaged to about PREVIEW_PX pixels
    along its longer side and smoothed (σ 1 preview pixel)."""
    f = max(1, int(np.ceil(max(img.shape) / PREVIEW_PX)))
    return ndimage.gaussian_filter(block_mean(img, f), 1.0), f


def _panel(ax, img, title, xy=(), box_px=0.0, colours=None, mask=None, mask_factor=1):
    small, f = preview(img)
    lo, hi = np.percentile(small, [1, 99])
    ax.imshow(small, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    if mask is not None and mask.any():
        over = np.zeros((*mask.shape, 4), dtype=np.float32)
        over[mask] = BAD_COLOUR
        h, w = mask.shape
        s = mask_factor / f  # working pixels -> preview pixels
        ax.imshow(over, extent=(-0.5, w * s - 0.5, h * s - 0.5, -0.5), interpolation="nearest")
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if len(xy):
        r = 0.5 * box_px / f
        cols = colours if colours is not None else [KEPT_COLOUR] * len(xy)
        circles = [Circle((x / f, y / f), r) for x, y in xy]
        ax.add_collection(PatchCollection(circles, facecolor="none", edgecolor=cols,
                                          linewidth=0.6))
    ax.set_xlim(-0.5, small.shape[1] - 0.5)
    ax.set_ylim(small.shape[0] - 0.5, -0.5)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _figure(k):
    fig, axes = subplots(1, k, figsize=(3.3 * k, 3.5), squeeze=False)
    return fig, axes[0]


def draw_micrographs_section(ctx) -> Drawing:
    """The input section: the first SHOWN micrographs with the particles' coordinates as green
    circles of radius box/2 (none where the particles carry no coordinates)."""
    out = Drawing()
    md = ctx.micrographs
    c = md.coordinates
    k = min(SHOWN, md.n)
    fig, axes = _figure(k)
    for i in range(k):
        on = c.on(i) if c.available else []
        _panel(axes[i], md.micrographs.image(i), md.micrographs.names[i],
               c.xy[on] if len(on) else (), c.box_px)
    fig.tight_layout()
    what = ("with their coordinates (green circles of the particle box's diameter)"
            if c.available else f"(no coordinates: {c.reason})")
    out.add("micrographs_input.png", png(fig),
            f"{'Two example micrographs' if k == 2 else 'Example micrograph'} {what}.")
    return out


def draw_cleaner(res, ctx) -> Drawing:
    """5.a: the SHOWN micrographs with the largest bad area, the bad regions in translucent
    red, kept coordinates green and flagged ones red; the histogram of the bad area per
    micrograph when there are more than SHOWN."""
    out = Drawing()
    d = res.data
    if "bad_fraction" not in d:
        return out
    md = ctx.micrographs
    c = md.coordinates
    bad = np.asarray(d["bad_fraction"], dtype=np.float64)
    flagged = np.asarray(d["flagged"], dtype=bool)
    order = [int(i) for i in np.argsort(-np.nan_to_num(bad, nan=-1.0), kind="stable")
             if np.isfinite(bad[i])][:SHOWN]
    if order:
        fig, axes = _figure(len(order))
        for ax, i in zip(axes, order):
            q = md.quality(i)
            on = c.on(i)
            cols = [FLAGGED_COLOUR if flagged[j] else KEPT_COLOUR for j in on]
            _panel(ax, md.micrographs.image(i),
                   f"{md.micrographs.names[i]}: {100 * bad[i]:.1f}% bad", c.xy[on], c.box_px,
                   cols, q.mask, q.factor)
        fig.tight_layout()
        out.add("micrograph_cleaner.png", png(fig),
                "The micrographs with the largest bad area: bad regions in red, coordinates "
                "kept in green, flagged coordinates (less than "
                f"{100 * GOOD_LIMIT:g}% of "
                "the box good) in red.")
    finite = bad[np.isfinite(bad)]
    if len(finite) > SHOWN:
        out.add("micrograph_bad_area_histogram.png",
                histogram(100 * finite, "Bad area of the micrograph (%)"),
                "Histogram of the bad area of the micrographs.")
    return out


DRAWS = {"5.a": draw_cleaner}
