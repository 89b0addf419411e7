"""Figures of Level 2 (2D classes): the input section's gallery of classes and item 2.a's
histogram of correlations and gallery of class / reprojection / residual / covariance
(vrs_level2_5.md §1.0, §1.1). They draw the arrays of ``res.data`` and
``ctx.classes.on_map_grid``; nothing is computed here.
"""
from __future__ import annotations

import os

import numpy as np

from cryovalid.figures.common import PRINT_WIDTH_IN, Drawing, histogram, png, subplots

PER_ROW = 8  # images per row of the galleries (as the reference)
ROWS_PER_FIGURE = 5  # rows of the input gallery per figure
MAX_SHOWN = 24  # classes shown in 2.a's gallery (worst first)
PER_PAGE = 10  # classes per gallery figure (5 rows of two blocks: under 12 cm tall)
FONT = 7


def _show(ax, img, title=None):
    img = np.asarray(img, dtype=np.float32)
    lo, hi = np.percentile(img, [1, 99]) if img.size else (0, 1)
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, origin="lower",
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=FONT, pad=2)


def gallery(imgs, labels) -> bytes:
    """PNG of images in rows of PER_ROW at print width, each titled by its label (the class
    and particle galleries of Levels 2 and 3)."""
    n = len(imgs)
    rows = max(1, int(np.ceil(n / PER_ROW)))
    cell = PRINT_WIDTH_IN / PER_ROW
    height = rows * cell * 1.12 + 0.1
    fig, axes = subplots(rows, PER_ROW, figsize=(PRINT_WIDTH_IN, height), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i < n:
            _show(ax, imgs[i], labels[i])
        else:
            ax.axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.16 / height,
                        wspace=0.05, hspace=0.25)
    return png(fig)


def draw_classes_section(ctx) -> Drawing:
    """The input section: every class on the map grid, 8 per row (pages of
    ``ROWS_PER_FIGURE`` rows)."""
    out = Drawing()
    imgs = ctx.classes.on_map_grid
    n = len(imgs)
    name = os.path.basename(ctx.classes.path) or "the class stack"
    per_fig = PER_ROW * ROWS_PER_FIGURE
    for page, lo in enumerate(range(0, n, per_fig)):
        hi = min(n, lo + per_fig)
        page_png = gallery(imgs[lo:hi], [f"{i + 1}" for i in range(lo, hi)])
        part = f" Classes {lo + 1}–{hi} of {n}." if n > per_fig else ""
        out.add(f"classes_input_{page + 1}.png" if n > per_fig else "classes_input.png",
                page_png, f"Set of 2D classes provided by the user ({name}), on the map's "
                          f"grid ({ctx.classes.box} px of {ctx.classes.pixel_size:.3g} Å).{part}")
    return out


def draw_reprojection(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "cc" not in d:
        return out
    cc = np.asarray(d["cc"])
    out.add("reprojection_cc_histogram.png",
            histogram(cc, "Cross-correlation", d.get("cc_limit"), "limit"),
            "Histogram of the correlation coefficient between the 2D classes provided by the "
            "user and the corresponding reprojections.")
    order = np.asarray(d["order"])[:MAX_SHOWN]
    pages = [order[lo:lo + PER_PAGE] for lo in range(0, len(order), PER_PAGE)]
    for p, page in enumerate(pages):
        first = p * PER_PAGE
        more = (f" Classes {first + 1}–{first + len(page)} of the {len(order)} worst"
                f"{f' of {len(cc)}' if len(cc) > len(order) else ''} shown."
                if len(pages) > 1 or len(cc) > len(order) else "")
        out.add(f"reprojection_gallery_{p + 1}.png", _gallery_page(d, cc, page),
                "Each class (left, labelled 'class number: correlation'), its best "
                "reprojection of the map, the residual (the class after grey-level adjustment "
                "minus the reprojection, inside the circle of radius half the particle window) and the "
                f"residual's column covariance, sorted by correlation, worst first.{more}")
    return out


def _gallery_page(d, cc, page) -> bytes:
    k = len(page)
    blocks = 2 if k > PER_PAGE // 2 else 1  # two blocks of 4 columns side by side
    rows = int(np.ceil(k / blocks))
    cell = PRINT_WIDTH_IN / (4.4 * 2)
    height = rows * cell * 1.12 + 0.25
    width = PRINT_WIDTH_IN if blocks == 2 else PRINT_WIDTH_IN / 2
    ratios = [1, 1, 1, 1] + ([0.3, 1, 1, 1, 1] if blocks == 2 else [])
    fig, axes = subplots(rows, len(ratios), figsize=(width, height), squeeze=False,
                         gridspec_kw={"width_ratios": ratios})
    if blocks == 2:
        for ax in axes[:, 4]:
            ax.axis("off")  # the gap between the blocks
    heads = ("Class", "Reprojection", "Residual", "Covariance")
    for j in range(rows * blocks):
        r, b = j % rows, j // rows
        axs = axes[r, 5 * b:5 * b + 4]
        if j >= k:
            for ax in axs:
                ax.axis("off")
            continue
        i = page[j]
        for c, (ax, img) in enumerate(zip(axs, (d["classes"][i], d["reprojections"][i],
                                                 d["residuals"][i], d["covariances"][i]))):
            _show(ax, img, heads[c] if r == 0 else None)
        number = int(d["numbers"][i]) if "numbers" in d else i + 1  # the stack's number
        axs[0].text(-0.08, 0.5, f"{number}: {cc[i]:.2f}", transform=axs[0].transAxes,
                    rotation=90, va="center", ha="right", fontsize=FONT)
    fig.subplots_adjust(left=0.06 if blocks == 2 else 0.1, right=0.99, bottom=0.01,
                        top=1 - 0.25 / height, wspace=0.08, hspace=0.08)
    return png(fig)


DRAWS = {"2.a": draw_reprojection}
