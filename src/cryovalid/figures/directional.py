"""Figures of 1.g (FSO curve with its occupancy band; polar map of the directional resolution)
and 1.h (FSC along x, y, z with the global FSC; histogram of the directional resolutions).
Everything drawn comes from ``result.data``; nothing is computed here beyond plotting."""
from __future__ import annotations

import numpy as np

from cryovalid.figures.common import Drawing, subplots
from cryovalid.figures.fsc import _png, _resolution_axis

def draw_fso(result, ctx):
    """fso.png (FSO, global FSC, range of the directional FSCs, 0.5 line, 90–10 % band) and
    fso_directional.png (directional resolution on the half sphere, polar: azimuth = rot,
    radius = tilt)."""
    out = Drawing()
    d = result.data
    if "frequency" not in d:
        return out
    f = d["frequency"]
    cr = d["crossings"]
    fig, ax = subplots(figsize=(6.3, 3.6))
    if d.get("dfsc_min") is not None:
        ax.fill_between(f[1:], d["dfsc_min"][1:], d["dfsc_max"][1:], color="0.85",
                        label="range of the directional FSCs", zorder=1)
    if cr.get("fso09") and cr.get("fso01"):
        ax.axvspan(cr["fso09"], cr["fso01"], color="tab:green", alpha=0.3, zorder=0,
                   label=f"FSO {d['band'][0]:g}–{d['band'][1]:g}")
    ax.plot(f[1:], d["global_fsc"][1:], color="tab:blue", lw=1.1, ls="--",
            label="global FSC (masked)", zorder=3)
    ax.plot(f[1:], d["fso"][1:], color="black", lw=1.6, label="FSO", zorder=4)
    ax.axhline(d["fso_level"], color="grey", ls=":", lw=0.8, label=f"{d['fso_level']:g}")
    if cr.get("fso05"):
        ax.plot([cr["fso05"]], [d["fso_level"]], "o", color="black", ms=5, zorder=5)
        ax.annotate(f"{1.0 / cr['fso05']:.2f} Å", (cr["fso05"], d["fso_level"]),
                    textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlim(0, f[-1])
    ax.set_ylim(-0.1, 1.05)
    ax.set_xlabel("Spatial frequency (1/Å)")
    ax.set_ylabel("FSO / FSC")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    _resolution_axis(ax)
    out.add("fso.png", _png(fig),
            "Fourier Shell Occupancy: the fraction of directions whose FSC is above 0.143, per "
            "shell, with the global FSC of the masked halves and the range of the directional "
            "FSCs; shaded, the frequencies where 90 % to 10 % of the directions are resolved.")

    m = d.get("polar_map")
    if m is not None and np.isfinite(m).any():
        fig = subplots(figsize=(4.6, 3.9), subplot_kw={"projection": "polar"})[0]
        ax = fig.axes[0]
        rot = np.radians(np.append(d["polar_rot"], 360.0))
        tilt = d["polar_tilt"]
        vals = np.concatenate([m, m[:, :1]], axis=1)
        finite = vals[np.isfinite(vals)]
        lo, hi = float(finite.min()), float(finite.max())
        if hi - lo < 0.1:
            levels = np.linspace(lo - 0.05, hi + 0.05, 3)
        else:
            levels = np.arange(np.floor(lo * 10) / 10, hi + 0.1, 0.1)
            if levels.size > 40:
                levels = np.linspace(lo, hi, 40)
        cs = ax.contourf(rot, tilt, vals, levels=levels, cmap="jet")
        w = d.get("worst_direction")
        if w is not None:
            wt = np.degrees(np.arccos(min(1.0, abs(w[2]))))
            s = 1.0 if w[2] >= 0 else -1.0
            wr = np.arctan2(s * w[1], s * w[0]) % (2 * np.pi)
            ax.plot([wr], [wt], "x", color="white", ms=8, mew=2)
        ax.set_ylim(0, 90)
        ax.set_yticks([30, 60, 90])
        ax.set_yticklabels(["30°", "60°", "90°"], fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        cb = fig.colorbar(cs, ax=ax, pad=0.1, shrink=0.85)
        cb.set_label("Directional resolution (Å)", fontsize=8)
        cb.ax.tick_params(labelsize=7)
        out.add("fso_directional.png", _png(fig),
                "Directional resolution on the half sphere (azimuth: rot from x towards y; "
                "radius: tilt from z, 0° at the centre = the z axis); × marks the worst "
                "direction.")
    else:
        out.missing("Directional resolution map: no direction has a resolution.")
    return out


def draw_fsc3d(result, ctx):
    """fsc3d.png (FSC along x, y, z, global FSC, 0.143) and fsc3d_histogram.png (histogram of
    the directional resolutions as frequencies, with the global FSC and the mean ± 1 SD of the
    directional FSCs, as 3DFSC's histogram)."""
    out = Drawing()
    d = result.data
    if "frequency" not in d:
        return out
    f = d["frequency"]
    r = d["resolutions"]
    fig, ax = subplots(figsize=(6.3, 3.6))
    for key, color, label in (("fsc_x", "tab:red", "x"), ("fsc_y", "tab:green", "y"),
                              ("fsc_z", "tab:blue", "z")):
        v = r.get(key[-1])
        ax.plot(f[1:], d[key][1:], color=color, lw=1.2,
                label=f"along {label}" + (f": {v:.2f} Å" if v else ""))
    g = r.get("global")
    ax.plot(f[1:], d["fsc_global"][1:], color="black", lw=1.6,
            label="global" + (f": {g:.2f} Å" if g else ""))
    ax.axhline(d["cutoff"], color="grey", ls="--", lw=0.8, label=f"{d['cutoff']:g}")
    ax.set_xlim(0, f[-1])
    ax.set_ylim(-0.1, 1.05)
    ax.set_xlabel("Spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    _resolution_axis(ax)
    out.add("fsc3d.png", _png(fig),
            "Conical FSC (20° cones) along the x, y and z axes and the global FSC of the "
            "masked half maps.")

    df = np.asarray(d["directional_frequency"], dtype=float)
    df = df[np.isfinite(df)]
    if df.size:
        fig, ax = subplots(figsize=(6.3, 3.6))
        weights = np.full(df.size, 100.0 / df.size)
        ax.hist(df, bins=20, range=(0, f[-1]), weights=weights, color="tab:blue", alpha=0.6,
                label="directions (FSC 0.143)")
        ax.set_ylabel("Directions (%)")
        ax.set_xlabel("Spatial frequency (1/Å)")
        ax.set_xlim(0, f[-1])
        ax2 = ax.twinx()
        ax2.plot(f[1:], d["fsc_global"][1:], color="tab:red", lw=1.6, label="global FSC")
        m, s = d["directional_mean"], d["directional_sd"]
        ax2.plot(f[1:], (m + s)[1:], color="tab:green", lw=0.9, ls="--",
                 label="±1 SD of the directional FSCs")
        ax2.plot(f[1:], (m - s)[1:], color="tab:green", lw=0.9, ls="--")
        ax2.axhline(d["cutoff"], color="grey", ls=":", lw=0.8)
        ax2.set_ylim(0, 1.05)
        ax2.set_ylabel("FSC")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax2.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
        sph = d.get("sphericity")
        if sph is not None:
            ax.set_title(f"Sphericity {sph:.3f}", fontsize=8)
        out.add("fsc3d_histogram.png", _png(fig),
                "Histogram of the directional resolutions (the frequency where each "
                "direction's conical FSC falls below 0.143), with the global FSC and the mean "
                "± 1 SD of the directional FSCs.")
    else:
        out.missing("Histogram of the directional resolutions: no direction has one.")
    return out


DRAWS = {"1.g": draw_fso, "1.h": draw_fsc3d}
