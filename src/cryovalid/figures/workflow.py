"""W.a figure: the workflow's jobs as boxes in layers (top to bottom, the item's topological
generations and in-layer order) with an arrow for each input (``workflow.png``). Drawn from
the item's ``res.data`` only."""
from __future__ import annotations

import textwrap

from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from cryovalid.figures.common import MIN_FONT_PT, PRINT_WIDTH_IN, Drawing, png, subplots

BOX_W, BOX_H = 0.84, 0.56  # in layout units (one column × one layer)
ROW_IN = 0.62  # inches per layer
MAX_HEIGHT_IN = 9.0
WRAP = 18  # characters per label line
MIN_COLUMNS = 4


def _label(text: str, width: int) -> str:
    lines = textwrap.wrap(text, width=width, break_long_words=True) or [text]
    if len(lines) > 3:
        lines = lines[:3]
        lines[-1] = lines[-1][:max(1, width - 1)] + "…"
    return "\n".join(lines)


def draw_workflow(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if not d.get("ids"):
        return out
    ids, layer, position = d["ids"], d["layer"], d["position"]
    n_layers = max(layer) + 1
    widths = [sum(1 for lv in layer if lv == k) for k in range(n_layers)]
    cols = max(widths)
    span = max(cols, MIN_COLUMNS)  # a narrow workflow keeps boxes of a reasonable width
    xy = {}
    for i, lv, p in zip(ids, layer, position):
        xy[i] = (p + (span - widths[lv]) / 2.0, float(n_layers - 1 - lv))
    height = min(MAX_HEIGHT_IN, max(1.6, ROW_IN * n_layers + 0.4))
    fig, ax = subplots(figsize=(PRINT_WIDTH_IN, height))
    col_in = PRINT_WIDTH_IN / span
    wrap = max(6, min(WRAP, int(col_in * 13)))
    font = max(MIN_FONT_PT, min(8.0, col_in * 7))
    kinds = d.get("kinds") or [""] * len(ids)
    for i, text, kind in zip(ids, d["labels"], kinds):
        x, y = xy[i]
        ax.add_patch(FancyBboxPatch((x - BOX_W / 2, y - BOX_H / 2), BOX_W, BOX_H,
                                    boxstyle="round,pad=0.02", fc="#e8f2f8", ec="#2596be",
                                    lw=0.9, zorder=2))  # boxes above the arrows
        ax.text(x, y, _label(text, wrap), ha="center", va="center", fontsize=font, zorder=3)
    for a, b in d["edges"]:
        (xa, ya), (xb, yb) = xy[a], xy[b]
        if ya - yb == 1:  # to the next layer: straight down
            start, end, style = (xa, ya - BOX_H / 2), (xb, yb + BOX_H / 2), "arc3,rad=0.0"
        elif ya > yb:  # over layers: from the right side round to the right side
            start, end = (xa + BOX_W / 2, ya), (xb + BOX_W / 2, yb)
            # arc3's bulge is about rad/2 of the chord: about half a column at most
            style = f"arc3,rad={-min(0.35, 1.0 / (ya - yb)):.3f}"
        else:  # within a layer or back up (a cycle): from the left side round
            start, end, style = (xa - BOX_W / 2, ya), (xb - BOX_W / 2, yb), "arc3,rad=0.5"
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=8,
                                     color="#555555", lw=0.8, connectionstyle=style,
                                     zorder=1))
    ax.set_xlim(-0.7, span - 0.3)
    ax.set_ylim(-0.5, n_layers - 0.5)
    ax.axis("off")
    fig.tight_layout(pad=0.2)
    out.add("workflow.png", png(fig),
            f"The image-processing workflow ({d.get('format', '')}) that produced the map: each "
            f"box a job, each arrow an input it takes from another job; first jobs at the top.")
    return out


DRAWS = {"W.a": draw_workflow}
