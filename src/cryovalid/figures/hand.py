"""Figures of item 0.h (hand): the strongest helices unrolled next to the ideal templates, and
the evidence of every rod against the scatter at random places.

Print size: both figures are drawn at most ``PRINT_WIDTH_IN`` (17 cm) wide and shown at their
physical size, so their fonts print at the sizes set here, none under ``MIN_FONT_PT`` (7 pt)."""
from __future__ import annotations


import numpy as np

from cryovalid.figures.common import MIN_FONT_PT, PRINT_WIDTH_IN, Drawing, png, subplots
from cryovalid.kernels import hand as hx

FONT_PT = max(8.0, MIN_FONT_PT)  # titles, axis labels, legends
TICK_PT = max(7.0, MIN_FONT_PT)  # tick labels
ROW_HEIGHT_IN = 1.35  # one helix (three panels) of the unrolled-helix figure
MAX_SHOWN = 3  # helices shown: the figure stays under 120 mm tall, like the report's others


def _panel(ax, img, length, title):
    lim = float(np.abs(img).max()) or 1.0
    ax.imshow(img, origin="lower", cmap="gray", vmin=-lim, vmax=lim, aspect="auto",
              interpolation="bicubic", extent=(0, 360, -length / 2, length / 2))
    ax.set_title(title, fontsize=FONT_PT)
    ax.set_xticks([0, 180, 360])
    ax.tick_params(labelsize=TICK_PT)


def draw_helices(res, ctx, out: Drawing):
    shown = [h for h in res.data.get("helices", []) if h.unrolled is not None][:MAX_SHOWN]
    if not shown:
        return
    fig, axes = subplots(len(shown), 3,
                         figsize=(PRINT_WIDTH_IN, ROW_HEIGHT_IN * len(shown) + 0.4),
                         squeeze=False)
    for i, h in enumerate(shown):
        _panel(axes[i, 0], h.unrolled, h.length,
               f"helix {i + 1}: map (evidence {h.z:+.1f})")
        _panel(axes[i, 1], h.unrolled_right, h.length, f"right-handed, CC {h.cc_right:.2f}")
        _panel(axes[i, 2], h.unrolled_left, h.length, f"left-handed, CC {h.cc_left:.2f}")
        axes[i, 0].set_ylabel("along axis (Å)", fontsize=FONT_PT)
    for ax in axes[-1]:
        ax.set_xlabel("angle about axis (°)", fontsize=FONT_PT)
    fig.tight_layout()
    lo, hi = hx.UNROLL_RADII
    out.add(
        "hand_helices.png", png(fig),
        f"The helix candidates with the strongest evidence. Each row shows the density on a "
        f"cylinder of radius {lo:g}–{hi:g} Å around the helix axis, unrolled (horizontal: angle "
        f"about the axis; vertical: position along it; the rod's average removed; white = more "
        f"density), next to the best-aligned ideal right- and left-handed α-helix templates at "
        f"the same resolution. A right-handed helix shows bands rising to the right (/), a "
        f"left-handed one bands rising to the left (\\); a correctly handed map looks like the "
        f"middle column.")


def draw_evidence(res, ctx, out: Drawing):
    ev = np.asarray(res.data.get("evidence", []), dtype=float)
    dec = np.asarray(res.data.get("decoy_differences", []), dtype=float)
    spread = res.data.get("null_spread", float("nan"))
    if ev.size == 0 or dec.size == 0 or not np.isfinite(spread) or spread <= 0:
        return
    zv = res.data.get("z_vote", hx.Z_VOTE)
    dz = dec / spread
    fig, ax = subplots(figsize=(min(6.0, PRINT_WIDTH_IN), 3.2))
    lim = max(zv + 1, float(np.abs(ev).max()) + 1, float(np.abs(dz).max()) + 1)
    bins = np.linspace(-lim, lim, 41)
    ax.hist(dz, bins=bins, color="#bbbbbb", density=True, label="random places (scatter)")
    ax.hist(ev, bins=bins, color="#2596be", alpha=0.75, density=True, label="helix candidates")
    for x in (-zv, zv):
        ax.axvline(x, color="#b03030", ls="--", lw=1)
    ax.set_xlabel("evidence = (CC left − CC right) / scatter   (< 0: right-handed)",
                  fontsize=FONT_PT)
    ax.set_ylabel("density", fontsize=FONT_PT)
    ax.tick_params(labelsize=TICK_PT)
    ax.legend(fontsize=FONT_PT)
    fig.tight_layout()
    out.add(
        "hand_evidence.png", png(fig),
        f"Evidence of each helix candidate (blue) against the same measurement at random "
        f"places and directions in the map (grey). Candidates beyond the dashed lines "
        f"(±{zv:g}) vote: left of −{zv:g} for a right-handed helix (correct hand), right of "
        f"+{zv:g} for a left-handed one (mirrored map).")


def draw(res, ctx) -> Drawing:
    out = Drawing()
    draw_helices(res, ctx, out)
    draw_evidence(res, ctx, out)
    return out


DRAWS = {"0.h": draw}
