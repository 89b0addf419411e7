"""Figures of O.a cross-linking mass spectrometry: the model's Cα trace seen along two of its
principal axes with every cross-link drawn between its two Cα atoms (satisfied green, not
satisfied red; links naming residues the model lacks cannot be drawn), and the SASD of every
link against its Cα–Cα distance with the linker maxima.

Units: Å. Nothing here opens a file or computes a metric: every number drawn comes from the
item's ``res.data`` (the projection onto the principal axes of the Cα atoms is a view).
"""
from __future__ import annotations

import numpy as np

from cryovalid.figures.common import PRINT_WIDTH_IN, Drawing, png, subplots
from cryovalid.figures.model import FONT_PT, TICK_PT

OK_COLOUR = "#1a9850"  # green
BAD_COLOUR = "#d73027"  # red
TRACE_COLOUR = "#b0b0b0"
TRACE_BREAK_A = 4.2  # consecutive Cα farther apart than this are not joined (a chain break)


def _view_axes(xyz):
    """The centre and the principal axes (rows, largest spread first) of the Cα atoms."""
    c = xyz.mean(axis=0)
    _, _, vt = np.linalg.svd(xyz - c, full_matrices=False)
    return c, vt


def _trace_figure(ca, chain, ends, ok, drawn):
    c, axes = _view_axes(ca)
    fig, panels = subplots(1, 2, figsize=(PRINT_WIDTH_IN, 3.4))
    for ax, (i, j) in zip(panels, ((0, 1), (0, 2))):
        p = (ca - c) @ axes.T
        for ch in dict.fromkeys(chain.tolist()):
            q = p[chain == ch]
            gap = np.linalg.norm(np.diff(ca[chain == ch], axis=0), axis=1) > TRACE_BREAK_A
            segs = np.split(np.arange(len(q)), np.flatnonzero(gap) + 1)
            for s in segs:
                ax.plot(q[s, i], q[s, j], color=TRACE_COLOUR, lw=0.6, zorder=1)
        e = (ends - c) @ axes.T
        for k in np.flatnonzero(drawn):
            ax.plot(e[k, :, i], e[k, :, j], color=OK_COLOUR if ok[k] else BAD_COLOUR,
                    lw=1.2, zorder=3 if not ok[k] else 2)
            ax.plot(e[k, :, i], e[k, :, j], "o", ms=2.5,
                    color=OK_COLOUR if ok[k] else BAD_COLOUR, zorder=4)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel(f"principal axis {i + 1} (Å)", fontsize=FONT_PT)
        ax.set_ylabel(f"principal axis {j + 1} (Å)", fontsize=FONT_PT)
        ax.tick_params(labelsize=TICK_PT)
    handles = [panels[0].plot([], [], color=OK_COLOUR, lw=1.2)[0],
               panels[0].plot([], [], color=BAD_COLOUR, lw=1.2)[0]]
    fig.legend(handles, ["satisfied", "not satisfied"], loc="upper center", ncol=2,
               fontsize=FONT_PT, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return png(fig)


def _scatter_figure(euclid, sasd, maxima, ok, shown):
    fig, ax = subplots(figsize=(PRINT_WIDTH_IN * 0.6, 3.2))
    top = max(float(np.max(sasd[shown])), float(np.max(maxima))) * 1.1
    ax.plot([0, top], [0, top], color="#808080", lw=0.8, ls=":", label="SASD = Euclidean")
    for mx in sorted(set(np.round(maxima, 3).tolist())):
        ax.axhline(mx, color="#404040", lw=0.8, ls="--")
        ax.text(0.01, mx, f" {mx:g} Å", va="bottom", ha="left", fontsize=TICK_PT,
                transform=ax.get_yaxis_transform())
    ax.scatter(euclid[shown & ok], sasd[shown & ok], s=10, color=OK_COLOUR, label="satisfied")
    ax.scatter(euclid[shown & ~ok], sasd[shown & ~ok], s=10, color=BAD_COLOUR,
               label="not satisfied")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("Cα–Cα Euclidean distance (Å)", fontsize=FONT_PT)
    ax.set_ylabel("SASD (Å)", fontsize=FONT_PT)
    ax.tick_params(labelsize=TICK_PT)
    ax.legend(fontsize=TICK_PT, frameon=False, loc="lower right")
    fig.tight_layout()
    return png(fig)


def draw_crosslinks(res, ctx) -> Drawing:
    """O.a: ``crosslinks_model.png`` (the Cα trace with the links) and
    ``crosslinks_sasd.png`` (SASD against the Euclidean distance)."""
    out = Drawing()
    d = res.data
    if "status" not in d:
        return out
    status = np.array(d["status"])
    ok = status == "satisfied"
    ends = np.asarray(d["ends"], dtype=np.float64)
    drawn = np.all(np.isfinite(ends), axis=(1, 2))
    ca = np.asarray(d["ca_xyz"], dtype=np.float64)
    n, n_ok = len(status), int(ok.sum())
    if len(ca) >= 3:
        out.add("crosslinks_model.png",
                _trace_figure(ca, np.asarray(d["ca_chain"]), ends, ok, drawn),
                f"The model's Cα trace (grey) seen along its principal axes with the "
                f"cross-links between their Cα atoms: {n_ok} satisfied (green), "
                f"{int(np.count_nonzero(drawn & ~ok))} not satisfied (red)"
                + (f"; {int(np.count_nonzero(~drawn))} link(s) name residues the model lacks "
                   f"and are not drawn" if np.any(~drawn) else "") + ".")
    else:
        out.missing("The model has fewer than three Cα atoms: no trace could be drawn.")
    sasd = np.asarray(d["sasd"], dtype=np.float64)
    euclid = np.asarray(d["euclidean"], dtype=np.float64)
    maxima = np.array([ln.max_A for ln in d["links"]], dtype=np.float64)
    shown = np.isfinite(sasd) & np.isfinite(euclid)
    if np.any(shown):
        out.add("crosslinks_sasd.png", _scatter_figure(euclid, sasd, maxima, ok, shown),
                f"Solvent-accessible surface distance (SASD) of each cross-link against its "
                f"Cα–Cα distance ({int(shown.sum())} of {n} links with a SASD); dashed: the "
                f"linkers' maxima, dotted: SASD = Euclidean distance (a SASD is never "
                f"shorter).")
    else:
        out.missing("No cross-link has a SASD (residues missing, buried or too far apart): "
                    "no SASD plot could be drawn.")
    return out


DRAWS = {"O.a": draw_crosslinks}
