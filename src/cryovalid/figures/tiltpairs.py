"""O.c figures: the polar plot of the tilt pairs (tilt axis as the angle, measured tilt as the
radius: the reference's plot, Henderson et al. 2011 Fig. 6) and the histogram of the measured
tilts with the nominal one marked (the reference's histogram, labelled "Tilt angle", plots the
tilt axis: here it plots the tilts). Drawn from the item's ``res.data`` only."""
from __future__ import annotations

import numpy as np

from cryovalid.figures.common import MIN_FONT_PT, Drawing, histogram, png, subplots

FONT_PT = max(8.0, MIN_FONT_PT)


def _polar(d) -> bytes:
    fig, ax = subplots(figsize=(4.4, 4.0), subplot_kw={"projection": "polar"})
    tilt = np.asarray(d["tilt"], dtype=float)
    axis = np.radians(np.asarray(d["axis"], dtype=float))
    nominal = float(d["nominal"])
    top = float(np.ceil(tilt.max() / 10.0) * 10.0 + 10.0) if tilt.size else 0.0
    rmax = min(180.0, max(90.0, top))  # 0 to 90° at least, 180° at most
    ring = np.linspace(0, 2 * np.pi, 361)
    lo, hi = max(0.0, nominal - d["max_difference"]), nominal + d["max_difference"]
    ax.fill_between(ring, lo, hi, color="#2596be", alpha=0.12, lw=0,
                    label=f"Nominal ± {d['max_difference']:g}°")
    ax.plot(ring, np.full_like(ring, nominal), color="#b03030", ls="--", lw=1.0,
            label=f"Nominal tilt {nominal:g}°")
    ax.plot(axis, tilt, "o", ms=3.0, color="#333333", alpha=0.7, label="Pairs")
    ax.set_rlim(0, rmax)
    ax.set_rlabel_position(100)
    ax.tick_params(labelsize=FONT_PT - 1)
    ax.set_title("Tilt axis (angle) and tilt (radius), degrees", fontsize=FONT_PT)
    ax.legend(fontsize=FONT_PT - 1, loc="lower left", bbox_to_anchor=(-0.12, -0.14))
    fig.tight_layout()
    return png(fig)


def draw_tiltpairs(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "tilt" not in d:
        return out
    out.add("tiltpair_polar.png", _polar(d),
            "Each tilt pair as a point: the angle is the direction of its tilt axis in the image "
            "plane (from the image x axis towards y), the radius its measured tilt (the angle "
            "of the rotation from the untilted to the tilted orientation). For a correct map "
            "the points cluster at the nominal tilt (dashed) around one axis.")
    out.add("tiltpair_histogram.png",
            histogram(d["tilt"], "Measured tilt angle (°)", marker=d["nominal"],
                      marker_label=f"Nominal {d['nominal']:g}°"),
            "Histogram of the measured tilts of the pairs; dashed, the nominal tilt of the "
            "stage.")
    return out


DRAWS = {"O.c": draw_tiltpairs}
