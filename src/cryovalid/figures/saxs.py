"""O.b figures: the SAXS curve with the map's fitted profile and the normalised residuals
(``saxs_fit.png``), and the Guinier plot of the curve (``saxs_guinier.png``). Drawn from the
item's ``res.data`` only."""
from __future__ import annotations

import numpy as np

from cryovalid.figures.common import MIN_FONT_PT, Drawing, png, subplots
from cryovalid.kernels.saxs import GUINIER_QRG_MAX

FONT_PT = max(8.0, MIN_FONT_PT)
TICK_PT = max(7.0, MIN_FONT_PT)


def _fit_figure(d) -> bytes:
    fig, (ax, axr) = subplots(2, 1, figsize=(5.2, 4.2), sharex=True,
                              gridspec_kw={"height_ratios": [3, 1]})
    q_all = np.asarray(d["q_all"], dtype=float)
    i_all = np.asarray(d["I_all"], dtype=float)
    pos = i_all > 0
    sig_all = d.get("sigma_all")
    if sig_all is not None:
        s = np.asarray(sig_all, dtype=float)
        lower = np.minimum(s, i_all * 0.999)  # a log axis cannot show a bar below zero
        ax.errorbar(q_all[pos], i_all[pos], yerr=[lower[pos], s[pos]], fmt="o", ms=2.0,
                    color="#555555", ecolor="#aaaaaa", elinewidth=0.6, label="Experimental")
    else:
        ax.plot(q_all[pos], i_all[pos], "o", ms=2.0, color="#555555", label="Experimental")
    q = np.asarray(d["q"], dtype=float)
    fit = np.asarray(d["fit"], dtype=float)
    ok = fit > 0
    ax.plot(q[ok], fit[ok], color="#b03030", lw=1.4,
            label=f"Map, fitted (χ² = {d['chi2']:.2f})")
    if d["q_limit"] < float(q_all.max()):  # points beyond it were not fitted
        ax.axvline(d["q_limit"], color="#2596be", ls=":", lw=1.0,
                   label="End of the fitted range")
    ax.set_yscale("log")
    ax.set_ylabel("I(q)", fontsize=FONT_PT)
    ax.legend(fontsize=FONT_PT)
    ax.grid(True, alpha=0.4)
    ax.tick_params(labelsize=TICK_PT)
    axr.plot(q, np.asarray(d["residuals"], dtype=float), ".", ms=2.5, color="#333333")
    axr.axhline(0.0, color="#b03030", lw=0.8)
    axr.set_xlabel("q (1/Å)", fontsize=FONT_PT)
    axr.set_ylabel("ΔI/σ", fontsize=FONT_PT)
    axr.grid(True, alpha=0.4)
    axr.tick_params(labelsize=TICK_PT)
    fig.tight_layout()
    return png(fig)


def _guinier_figure(d) -> bytes:
    g = d["guinier"]
    q_all = np.asarray(d["q_all"], dtype=float)
    i_all = np.asarray(d["I_all"], dtype=float)
    first, last = g["first"], g["last"]
    span = slice(first, min(q_all.size, last + max(10, (last - first) // 2)))
    qq, ii = q_all[span], i_all[span]
    pos = ii > 0
    fig, ax = subplots(figsize=(4.6, 3.0))
    ax.plot(qq[pos] ** 2, np.log(ii[pos]), "o", ms=2.5, color="#555555", label="Experimental")
    used = q_all[first:last]
    ax.plot(used ** 2, np.log(g["i0"]) - used ** 2 * g["rg"] ** 2 / 3.0, color="#b03030",
            lw=1.4, label=f"Guinier fit, Rg = {g['rg']:.1f} Å")
    ax.axvspan(float(used[0] ** 2), float(used[-1] ** 2), color="#2596be", alpha=0.12)
    ax.set_xlabel("q² (1/Å²)", fontsize=FONT_PT)
    ax.set_ylabel("ln I(q)", fontsize=FONT_PT)
    ax.legend(fontsize=FONT_PT)
    ax.grid(True, alpha=0.4)
    ax.tick_params(labelsize=TICK_PT)
    fig.tight_layout()
    return png(fig)


def draw_saxs(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "fit" not in d:
        return out
    out.add("saxs_fit.png", _fit_figure(d),
            "The experimental SAXS curve (grey, with its errors where the file gives them) and "
            "the profile computed from the map inside its mask with the hydration layer, scale "
            "and background fitted (red), up to the end of the fitted range (dotted, where "
            "points lie beyond it); below, the residuals in units of sigma.")
    if d.get("guinier"):
        out.add("saxs_guinier.png", _guinier_figure(d),
                "Guinier plot of the experimental curve: ln I against q², with the straight "
                f"line fitted in the shaded range (q·Rg ≤ {GUINIER_QRG_MAX:g}, chosen "
                f"automatically).")
    else:
        out.missing("No Guinier plot: no Guinier range was found in the curve.")
    return out


DRAWS = {"O.b": draw_saxs}
