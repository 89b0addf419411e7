"""Figures of 1.a (FSC with thresholds and crossings, DPR, SSNR) and 1.b (FDR-FSC)."""
from __future__ import annotations

import numpy as np

from cryovalid.figures.common import Drawing, png, subplots
from cryovalid.kernels.fsc import DPR_RANDOM_DEG, DPR_THRESHOLD_DEG, FSC_GOLD

# Printed at their size (≤ 16.5 cm wide, see figures/common.py): every font is ≥ 7 pt.


def _resolution_axis(ax):
    """Add a top axis labelled with the resolution (Å) at the frequency ticks."""
    top = ax.twiny()
    top.set_xlim(ax.get_xlim())
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    top.set_xticks(ticks)
    top.set_xticklabels(["∞" if t <= 0 else f"{1.0 / t:.1f}" for t in ticks])
    top.set_xlabel("Resolution (Å)")
    return top


def _png(fig) -> bytes:
    return png(fig, bbox_inches="tight")


def draw_global_resolution(result, ctx):
    """fsc.png (every FSC curve, thresholds and crossings), dpr.png, ssnr.png."""
    out = Drawing()
    d = result.data
    if "frequency" not in d:
        return out
    f = d["frequency"]
    thr = d["thresholds"]
    cr = d["crossings"]

    fig, ax = subplots(figsize=(6.3, 3.9))
    # The masked and the corrected curves coincide below the randomisation frequency: the
    # corrected one is drawn first, wide and pale, the masked one over it dashed with open
    # markers, so that each stays visible where they overlap.
    every = max(1, len(f) // 20)
    ax.plot(f[1:], d["fsc"][1:], color="black", lw=1.3, label="FSC, unmasked", zorder=4)
    if d.get("fsc_masked") is not None:
        ax.plot(f[1:], d["fsc_corrected"][1:], color="tab:green", lw=3.2, alpha=0.55,
                solid_capstyle="round", label="FSC, masked, corrected", zorder=2)
        if d.get("fsc_random_masked") is not None:
            ax.plot(f[1:], d["fsc_random_masked"][1:], color="tab:red", lw=1.1, ls="-.",
                    label="FSC, masked, phases randomised", zorder=3)
        ax.plot(f[1:], d["fsc_masked"][1:], color="tab:blue", lw=1.1, ls=(0, (4, 2)),
                marker="o", ms=3.2, mfc="white", markevery=(every // 2 + 1, every),
                label="FSC, masked", zorder=5)
    ax.axhline(FSC_GOLD, color="grey", ls="--", lw=0.8, label=f"{FSC_GOLD:g}")
    ax.axhline(0.5, color="grey", ls=":", lw=0.8, label="0.5")
    ax.plot(f[1:], thr["half_bit"][1:], color="tab:purple", ls="--", lw=0.8, label="half-bit")
    ax.plot(f[1:], thr["three_sigma"][1:], color="tab:orange", ls="--", lw=0.8, label="3σ")
    # crossings: markers on the curves, values listed in a box (labels at the points collide)
    lines = []
    for key, label, level, color, marker in (
            ("fsc", f"unmasked, {FSC_GOLD:g}", FSC_GOLD, "black", "o"),
            ("fsc05", "unmasked, 0.5", 0.5, "black", "o"),
            ("halfbit", "unmasked, half-bit", "half_bit", "tab:purple", "s"),
            ("3sigma", "unmasked, 3σ", "three_sigma", "tab:orange", "s"),
            ("masked", f"masked corrected, {FSC_GOLD:g}", FSC_GOLD, "tab:green", "o")):
        if key not in cr:
            continue
        y = level if not isinstance(level, str) else float(np.interp(cr[key], f, thr[level]))
        ax.plot([cr[key]], [y], marker, color=color, ms=5)
        lines.append(f"{label}: {1.0 / cr[key]:.2f} Å")
    if lines:
        ax.text(0.08, 0.38, "\n".join(lines), transform=ax.transAxes, fontsize=7.5, zorder=6,
                va="bottom", ha="left", bbox=dict(boxstyle="round", fc="white", ec="0.7"))
    ax.set_xlim(0, f[-1])
    ax.set_ylim(-0.1, 1.05)
    ax.set_xlabel("Spatial frequency (1/Å)")
    ax.set_ylabel("Correlation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    _resolution_axis(ax)
    out.add("fsc.png", _png(fig),
                                 "Fourier Shell Correlation between the two half maps: unmasked, "
                                 "with the soft mask, with the soft mask after phase "
                                 "randomisation, and corrected; threshold curves and crossings.")

    fig, ax = subplots(figsize=(6.3, 2.9))
    n = max(len(f) - 2, 2)  # as the reference, the last two shells are not drawn
    ax.plot(f[1:n], d["dpr"][1:n], color="black", lw=1.4, label="DPR")
    ax.axhline(DPR_THRESHOLD_DEG, color="grey", ls="--", lw=0.8,
               label=f"{DPR_THRESHOLD_DEG:g}° (criterion)")
    ax.axhline(DPR_RANDOM_DEG, color="grey", ls=":", lw=0.8,
               label=f"{DPR_RANDOM_DEG:.1f}° (random phases)")
    if "dpr" in cr:
        ax.plot([cr["dpr"]], [DPR_THRESHOLD_DEG], "o", color="black", ms=5)
        ax.annotate(f"{1.0 / cr['dpr']:.2f} Å", (cr["dpr"], DPR_THRESHOLD_DEG),
                    textcoords="offset points",
                    xytext=(4, -12), fontsize=8)
    ax.set_xlim(0, f[-1])
    ax.set_xlabel("Spatial frequency (1/Å)")
    ax.set_ylabel("Phase residual (°)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _resolution_axis(ax)
    out.add("dpr.png", _png(fig),
                                 "Differential Phase Residual between the two half maps.")

    fig, ax = subplots(figsize=(6.3, 2.9))
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log10(np.where(d["ssnr"] > 0, d["ssnr"], np.nan))
    y[~np.isfinite(y)] = np.nan
    ax.plot(f[1:], y[1:], color="black", lw=1.4, label="log10 SSNR")
    ax.axhline(0.0, color="grey", ls="--", lw=0.8, label="SSNR = 1")
    if "ssnr" in cr:
        ax.plot([cr["ssnr"]], [0.0], "o", color="black", ms=5)
        ax.annotate(f"{1.0 / cr['ssnr']:.2f} Å", (cr["ssnr"], 0.0), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xlim(0, f[-1])
    ax.set_xlabel("Spatial frequency (1/Å)")
    ax.set_ylabel("log10 SSNR")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    _resolution_axis(ax)
    out.add("ssnr.png", _png(fig),
                                 "Spectral Signal-to-Noise Ratio estimated from the two half "
                                 "maps.")
    return out


def draw_fdr_fsc(result, ctx):
    """fdr_fsc.png: FSC of the spherically masked halves, significant shells, resolution."""
    out = Drawing()
    d = result.data
    if "frequency" not in d:
        return out
    f = d["frequency"]
    fig, ax = subplots(figsize=(6.3, 3.3))
    ax.plot(f[1:], d["fsc"][1:], color="black", lw=1.4, label="FSC (spherical mask)")
    sig = np.asarray(d["significant"], dtype=bool).copy()
    sig[0] = False
    ax.plot(f[sig], np.full(int(sig.sum()), -0.05), "x", color="tab:red", ms=4,
            label=f"significant at {100 * d['alpha']:.0f} % FDR")
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.axhline(FSC_GOLD, color="grey", ls="--", lw=0.8, label=f"{FSC_GOLD:g}")
    if d.get("resolution"):
        ax.axvline(1.0 / d["resolution"], color="tab:blue", lw=0.9,
                   label=f"1 % FDR-FSC: {d['resolution']:.2f} Å")
    ax.set_xlim(0, f[-1])
    ax.set_ylim(-0.12, 1.05)
    ax.set_xlabel("Spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    _resolution_axis(ax)
    out.add("fdr_fsc.png", _png(fig),
                                 "FSC and resolution estimated by a permutation test: shells "
                                 "where the FSC is significant at 1 % false discovery rate are "
                                 "marked.")
    return out


DRAWS = {"1.a": draw_global_resolution, "1.b": draw_fdr_fsc}
