"""Figures of the per-residue model scores (Level A, part 2): A.c multimodel stability (per-residue
Cα RMSD between the models), A.e Q-score (Pintilie et al. 2020, Nat. Methods 17:328; MapQ),
A.f EMRinger (Barad et al. 2015, Nat. Methods 12:943; drawn as ``phenix.emringer`` draws it) and
A.g the per-residue SMOC score (Joseph et al. 2016, Methods 100:42; TEMPy).

Per-residue plots: one panel per chain, chains packed into rows as A.a's per-residue CC
(``model._rows``), four rows a figure (``residue_x.png``, ``residue_x_2.png``, …), a dashed
line at the item's limit (the expected Q at the resolution for A.e) and the residues beyond it
marked in red. ChimeraX scripts (``chimerax/model_q.cxc``, ``chimerax/model_smoc.cxc``) open
the report's copies of the input map (``maps/input_map.mrc``, handed to the store as a
:class:`~cryovalid.results.Volume` here, as A.a does) and of the placed model
(``model/model.cif``, written by A.0), set one residue attribute per finite value, colour the
cartoon by it with a key and save the reference's three views.

Units: RMSD in Å, map thresholds in the map's raw units, angles in degrees; Q and SMOC have
none. Print sizes as the other figures (``PRINT_WIDTH_IN`` wide at most, ≤ 120 mm tall, fonts
≥ ``MIN_FONT_PT``). Nothing here opens a file or computes a metric: every number drawn comes
from the item's ``res.data``.
"""
from __future__ import annotations

import numpy as np
from matplotlib.transforms import blended_transform_factory

from cryovalid.figures import common
from cryovalid.figures.common import PRINT_WIDTH_IN, Drawing, new_figure, png, subplots
from cryovalid.figures.localmaps import INPUT_COPY
from cryovalid.figures.model import (FONT_PT, ROW_HEIGHT_IN, ROWS_PER_FIGURE, TICK_PT,
                                     _chain_list, _rows, colour_script)
from cryovalid.results import Volume

LINE_COLOUR = "#2596be"
MARK_COLOUR = "#b03030"
Q_COLOURS = ((-1.0, "red"), (0.0, "white"), (1.0, "blue"))  # the reference's bluered, [−1, 1]
SMOC_COLOURS = ("red", "white", "blue")  # at 0, the flag limit, 1
ROTAMERIC_COLOUR = "#5DA5DA"  # phenix.emringer's histogram: rotameric blue ...
NON_ROTAMERIC_COLOUR = "#F15854"  # ... the others red
DEFAULT_RMSD_LIMIT = 2.0  # Å, the reference's criterion for A.c
DEFAULT_SMOC_LIMIT = 0.5


# --------------------------------------------------------------------------- shared pieces
def _residue_arrays(d, key):
    """``(values float, chain str, number int, icode str)`` of a per-residue key, or None when
    the key or its companions are absent or the lengths disagree."""
    if d.get(key) is None or d.get("residue_chain") is None or d.get("residue_number") is None:
        return None
    v = np.asarray(d[key], dtype=float).ravel()
    chain = np.asarray(d["residue_chain"]).astype(str).ravel()
    number = np.asarray(d["residue_number"]).ravel()
    icode = d.get("residue_icode")
    icode = (np.asarray(icode).astype(str).ravel() if icode is not None
             else np.full(len(v), ""))
    if not (len(v) == len(chain) == len(number) == len(icode)):
        return None
    return v, chain, number.astype(np.int64), icode


def _finite(x) -> bool:
    return x is not None and np.isfinite(float(x))


def _panel_figure(rows, width, per_chain, ylabel, ylim, line, line_label, mark_label,
                  label_top=False):
    """One page of per-chain panels: value against residue number, a dashed line at ``line``
    (labelled on the first panel of each row), marked residues as red dots."""
    height = ROW_HEIGHT_IN * len(rows) + 0.45
    fig = new_figure(figsize=(PRINT_WIDTH_IN, height))
    grid = fig.add_gridspec(len(rows), 1)
    for r, row in enumerate(rows):
        sub = grid[r].subgridspec(1, len(row), width_ratios=[width[c] for c in row],
                                  wspace=0.08)
        for k, c in enumerate(row):
            ax = fig.add_subplot(sub[k])
            num, y, marked = per_chain[c]
            x = num.astype(float)
            gap = np.nonzero(np.diff(num) != 1)[0] + 1  # numbering gaps: no line across them
            ax.plot(np.insert(x, gap, np.nan), np.insert(y, gap, np.nan), color=LINE_COLOUR,
                    lw=0.9)
            alone = np.isfinite(y)  # a value between two gaps or NaNs shows as a dot
            prev = np.concatenate([[False], np.isfinite(y[:-1]) & (np.diff(num) == 1)])
            nxt = np.concatenate([np.isfinite(y[1:]) & (np.diff(num) == 1), [False]])
            alone &= ~prev & ~nxt
            if np.any(alone):
                ax.plot(x[alone], y[alone], ".", color=LINE_COLOUR, ms=2.5)
            if np.any(marked):
                ax.plot(x[marked], y[marked], "o", color=MARK_COLOUR, ms=3, label=mark_label)
            if line is not None:
                ax.axhline(line, color=MARK_COLOUR, ls="--", lw=0.8)
                if k == 0 and line_label:
                    tr = blended_transform_factory(ax.transAxes, ax.transData)
                    ax.text(0.99, line, line_label, transform=tr, fontsize=TICK_PT,
                            ha="right", va="bottom", color=MARK_COLOUR)
            ax.set_ylim(*ylim)
            fx = x[np.isfinite(y)]  # the residues with a value set the range
            lo, hi = float(np.min(fx)), float(np.max(fx))
            pad = max(1.0, 0.01 * (hi - lo))
            ax.set_xlim(lo - pad, hi + pad)
            ax.text(0.01, 0.96 if label_top else 0.04, f"chain {c}", transform=ax.transAxes,
                    fontsize=FONT_PT, ha="left", va="top" if label_top else "bottom",
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.7", alpha=0.9))
            ax.tick_params(labelsize=TICK_PT)
            ax.grid(True, alpha=0.3)
            if k == 0:
                ax.set_ylabel(ylabel, fontsize=FONT_PT)
            else:
                ax.tick_params(labelleft=False)
            if r == len(rows) - 1 and k == 0:
                ax.set_xlabel("Residue number", fontsize=FONT_PT)
    fig.subplots_adjust(left=0.09, right=0.99, top=0.97,
                        bottom=0.45 / height + 0.02, hspace=0.35)
    return fig


def _residue_pages(out, stem, values, chain, number, marked, *, ylabel, ylim, line=None,
                   line_label=None, mark_label=None, label_top=False, caption):
    """Add ``<stem>.png`` (``<stem>_2.png`` … past four chain rows): the per-chain panels of
    the residues with a finite value; ``caption(shown, part)`` writes each caption."""
    fin = np.isfinite(values)
    chains = [c for c in dict.fromkeys(chain.tolist()) if np.any(fin[chain == c])]
    per_chain = {}
    for c in chains:
        sel = chain == c
        per_chain[c] = (number[sel], values[sel], marked[sel] & fin[sel])
    spans = {c: float(np.ptp(per_chain[c][0][np.isfinite(per_chain[c][1])]) + 1)
             for c in chains}
    rows, width = _rows(chains, spans)
    pages = [rows[i:i + ROWS_PER_FIGURE] for i in range(0, len(rows), ROWS_PER_FIGURE)]
    for k, page in enumerate(pages):
        fig = _panel_figure(page, width, per_chain, ylabel, ylim, line, line_label, mark_label,
                            label_top)
        name = f"{stem}.png" if k == 0 else f"{stem}_{k + 1}.png"
        shown = [c for row in page for c in row]
        part = f" (part {k + 1} of {len(pages)})" if len(pages) > 1 else ""
        out.add(name, png(fig), caption(_chain_list(shown), part))
    return chains


def _without(chain, values) -> str:
    """' Chains without a value: X, Y.' for the chains left out, else ''."""
    fin = np.isfinite(values)
    gone = [c for c in dict.fromkeys(chain.tolist()) if not np.any(fin[chain == c])]
    if not gone:
        return ""
    return f" No panel for {_chain_list(gone)} (no value)."


def _input_copy(ctx) -> Volume:
    return Volume(INPUT_COPY, ctx.map.data, ctx.map.voxel_size, ctx.map.origin)


# --------------------------------------------------------------------------- A.c
def draw_multimodel(res, ctx) -> Drawing:
    """A.c: ``multimodel_rmsd.png`` (per-residue Cα RMSD between the models along each chain,
    the limit dashed, residues above it red) and ``multimodel_histogram.png``."""
    out = Drawing()
    d = res.data
    arr = _residue_arrays(d, "residue_rmsd")
    if arr is None or not np.any(np.isfinite(arr[0])):
        out.missing("No per-residue RMSD between the models could be drawn: no residue has "
                    "an RMSD.")
        return out
    rmsd, chain, number, _ = arr
    limit = float(d.get("limit", DEFAULT_RMSD_LIMIT))
    fin = np.isfinite(rmsd)
    above = fin & (rmsd > limit)
    top = max(1.25 * limit, 1.05 * float(np.max(rmsd[fin])))
    n_fin, n_above = int(fin.sum()), int(above.sum())
    tail = _without(chain, rmsd)
    _residue_pages(
        out, "multimodel_rmsd", rmsd, chain, number, above, ylabel="Cα RMSD (Å)",
        ylim=(0.0, top), line=limit, line_label=f"{limit:g} Å", mark_label=f"> {limit:g} Å",
        label_top=True,  # small RMSDs fill the bottom of the panel
        caption=lambda shown, part: (
            f"Per-residue Cα RMSD between the models after superposition against residue "
            f"number, one panel per chain{part}: {shown}. The dashed line is {limit:g} Å; "
            f"{n_above} of the {n_fin} residues with an RMSD lie above it (red).{tail}"))
    out.add("multimodel_histogram.png",
            common.histogram(rmsd[fin], "Per-residue Cα RMSD (Å)", marker=limit,
                             marker_label=f"{limit:g} Å"),
            f"Histogram of the per-residue Cα RMSD between the models ({n_fin} residues); "
            f"the dashed line is {limit:g} Å, {n_above} residues lie above it.")
    return out


# --------------------------------------------------------------------------- A.e
def draw_qscore(res, ctx) -> Drawing:
    """A.e: ``qscore_residues.png`` (residue Q per chain with MapQ's expected Q at the
    resolution), ``qscore_histogram.png`` (per-atom Q) and ``chimerax/model_q.cxc``
    (residues coloured by Q, red −1, white 0, blue 1, with the input map copy it opens)."""
    out = Drawing()
    d = res.data
    expected = d.get("expected_q")
    expected = float(expected) if _finite(expected) else None
    resolution = d.get("resolution", getattr(ctx, "resolution", None))
    resolution = float(resolution) if _finite(resolution) else None
    exp_text = ""
    if expected is not None:
        at = f" at {resolution:g} Å" if resolution is not None else ""
        exp_text = f"the dashed line is the Q expected{at} (MapQ), {expected:.3f}"
    arr = _residue_arrays(d, "residue_q")
    if arr is None or not np.any(np.isfinite(arr[0])):
        out.missing("No per-residue Q-score could be drawn: no residue has a Q-score.")
    else:
        q, chain, number, icode = arr
        fin = np.isfinite(q)
        ymin = min(0.0, float(np.min(q[fin])) - 0.05,
                   expected - 0.05 if expected is not None else 0.0)
        tail = _without(chain, q)
        label = None
        if expected is not None:
            label = (f"expected at {resolution:g} Å" if resolution is not None
                     else "expected")
        _residue_pages(
            out, "qscore_residues", q, chain, number, np.zeros(len(q), dtype=bool),
            ylabel="Residue Q", ylim=(max(-1.02, ymin), 1.02), line=expected, line_label=label,
            caption=lambda shown, part: (
                f"Per-residue Q-score (mean Q of the residue's atoms) against residue number, "
                f"one panel per chain{part}: {shown}; {int(fin.sum())} residues with a Q"
                + (f"; {exp_text}." if exp_text else ".") + tail))
        out.artefacts += [
            colour_script(ctx, "model_q", "A.e", "q", q, chain, number, icode, Q_COLOURS,
                          "Residue Q", "per-residue Q-score"),
            _input_copy(ctx)]
    atom_q = d.get("atom_q")
    atom_q = (np.asarray(atom_q, dtype=float).ravel() if atom_q is not None
              else np.zeros(0))
    atom_q = atom_q[np.isfinite(atom_q)]
    if atom_q.size == 0:
        out.missing("No histogram of the per-atom Q-score could be drawn: no atom has a "
                    "Q-score.")
    else:
        mlabel = None
        if expected is not None:
            mlabel = (f"expected at {resolution:g} Å" if resolution is not None
                      else "expected")
        out.add("qscore_histogram.png",
                common.histogram(atom_q, "Per-atom Q-score", marker=expected,
                                 marker_label=mlabel),
                f"Histogram of the per-atom Q-score ({atom_q.size} atoms)"
                + (f"; {exp_text}." if exp_text else "."))
    return out


# --------------------------------------------------------------------------- A.f
def rotameric(angles, ranges) -> np.ndarray:
    """(n,) bool: each angle (degrees) in one of the half-open ``[lo, hi)`` ranges (a range
    with lo > hi wraps through 360°)."""
    a = np.mod(np.asarray(angles, dtype=float), 360.0)
    out = np.zeros(a.shape, dtype=bool)
    for lo, hi in ranges:
        lo, hi = float(lo) % 360.0, float(hi) % 360.0
        out |= ((a >= lo) & (a < hi)) if lo < hi else ((a >= lo) | (a < hi))
    return out


def _threshold_scan_figure(t, score, ratio, best):
    fig, ax = subplots(figsize=(5.2, 3.1))
    ax.plot(t, score, "o-", color="tab:blue", ms=3.5, lw=1.2, label="EMRinger score")
    ax.set_xlabel("Map threshold (map units)", fontsize=FONT_PT)
    ax.set_ylabel("EMRinger score", fontsize=FONT_PT, color="tab:blue")
    ax.tick_params(labelsize=TICK_PT)
    ax.grid(True, alpha=0.3)
    handles = list(ax.get_lines())
    if ratio is not None:
        right = ax.twinx()
        handles += right.plot(t, ratio, "s--", color="tab:red", ms=3, lw=1.0,
                              label="Rotamer ratio")
        right.set_ylabel("Rotamer ratio", fontsize=FONT_PT, color="tab:red")
        right.tick_params(labelsize=TICK_PT)
        right.set_ylim(0.0, 1.02)
    if best is not None:
        handles.append(ax.axvline(best, color="0.3", ls=":", lw=1.0,
                                  label=f"optimal threshold {best:.4g}"))
    ax.legend(handles, [h.get_label() for h in handles], fontsize=TICK_PT, loc="best")
    fig.tight_layout()
    return fig


def _peak_histogram_figure(angles, counts, rot):
    from matplotlib.patches import Patch

    fig, ax = subplots(figsize=(5.2, 3.0))
    colours = np.where(rot, ROTAMERIC_COLOUR, NON_ROTAMERIC_COLOUR)
    step = float(np.median(np.diff(angles))) if len(angles) > 1 else 5.0
    ax.bar(angles, counts, width=step, align="edge", color=colours, edgecolor="white", lw=0.3)
    ax.set_xlim(0, 360)
    ax.set_xticks(np.arange(0, 361, 60))
    ax.set_xlabel("χ1 angle (°)", fontsize=FONT_PT)
    ax.set_ylabel("Peak count", fontsize=FONT_PT)
    ax.tick_params(labelsize=TICK_PT)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_ylim(0, 1.3 * float(np.max(counts)))  # room for the legend above the bars
    ax.legend([Patch(color=ROTAMERIC_COLOUR), Patch(color=NON_ROTAMERIC_COLOUR)],
              ["Rotameric", "Non-rotameric"], fontsize=TICK_PT, loc="upper center", ncol=2)
    fig.tight_layout()
    return fig


def draw_emringer(res, ctx) -> Drawing:
    """A.f: ``emringer_threshold_scan.png`` (EMRinger score and rotamer ratio against the map
    threshold, the optimal threshold marked) and ``emringer_histogram.png`` (side-chain density
    peaks per χ1 label at the optimal threshold, rotameric bins blue, the others red)."""
    out = Drawing()
    d = res.data
    best = d.get("optimal_threshold")
    best = float(best) if _finite(best) else None
    t = np.asarray(d.get("thresholds") if d.get("thresholds") is not None else [],
                   dtype=float).ravel()
    score = np.asarray(d.get("scores") if d.get("scores") is not None else [],
                       dtype=float).ravel()
    ratio = d.get("rotamer_ratios")
    ratio = np.asarray(ratio, dtype=float).ravel() if ratio is not None else None
    if ratio is not None and len(ratio) != len(t):
        ratio = None
    if len(t) == 0 or len(score) != len(t) or not np.any(np.isfinite(score) & np.isfinite(t)):
        out.missing("No EMRinger threshold scan could be drawn: no threshold was scanned.")
    else:
        fig = _threshold_scan_figure(t, score, ratio, best)
        at = ""
        if best is not None:
            i = int(np.argmin(np.abs(t - best)))
            at = (f" The dotted line marks the optimal threshold {best:.4g}, where the score is "
                  f"highest ({score[i]:.3f}"
                  + (f", rotamer ratio {ratio[i]:.3f}" if ratio is not None else "") + ").")
        out.add("emringer_threshold_scan.png", png(fig),
                "EMRinger score" + (" (left) and rotamer ratio (right, the fraction of "
                                     "side-chain density peaks in rotameric χ1 bins)"
                                     if ratio is not None else "")
                + f" against the map threshold (map units) over the {len(t)} thresholds "
                  f"scanned (Barad et al. 2015).{at}")
    hist = d.get("histogram")
    angles = d.get("histogram_angles")
    ranges = d.get("rotameric_bins")
    if hist is None or angles is None or len(hist) == 0 or len(hist) != len(angles):
        out.missing("No EMRinger peak histogram could be drawn: no peaks at the optimal "
                    "threshold.")
        return out
    counts = np.asarray(hist, dtype=float).ravel()
    angles = np.asarray(angles, dtype=float).ravel()
    if not np.all(np.isfinite(counts)) or counts.sum() <= 0 or not ranges:
        out.missing("No EMRinger peak histogram could be drawn: no peaks at the optimal "
                    "threshold." if ranges else
                    "No EMRinger peak histogram could be drawn: the rotameric bins are not "
                    "given.")
        return out
    rot = rotameric(angles, ranges)
    fig = _peak_histogram_figure(angles, counts, rot)
    n, n_rot = int(round(counts.sum())), int(round(counts[rot].sum()))
    bins = ", ".join(f"{float(lo):g}–{float(hi):g}°" for lo, hi in ranges)
    at = f" at the optimal threshold {best:.4g}" if best is not None else ""
    out.add("emringer_histogram.png", png(fig),
            f"Side-chain density peaks (the χ1 angle of each scored residue's density maximum "
            f"around its Cβ–Cγ bond){at}, per 5° χ1 label: {n} peaks, {n_rot} in the "
            f"rotameric bins {bins} (blue), {n - n_rot} in the others (red).")
    return out


# --------------------------------------------------------------------------- A.g
def draw_smoc(res, ctx) -> Drawing:
    """A.g: ``smoc_residues.png`` (per-residue SMOC per chain, the flag limit dashed, flagged
    residues red), ``smoc_histogram.png`` and ``chimerax/model_smoc.cxc`` (residues coloured
    red at 0, white at the limit, blue at 1, with the input map copy it opens)."""
    out = Drawing()
    d = res.data
    arr = _residue_arrays(d, "residue_score")
    if arr is None or not np.any(np.isfinite(arr[0])):
        out.missing("No per-residue SMOC score could be drawn: no residue has a score.")
        return out
    s, chain, number, icode = arr
    limit = float(d.get("limit", DEFAULT_SMOC_LIMIT))
    fin = np.isfinite(s)
    flagged = d.get("flagged")
    flagged = (np.asarray(flagged, dtype=bool).ravel() if flagged is not None
               and len(flagged) == len(s) else fin & (s < limit))
    flagged = flagged & fin
    n_fin, n_flag = int(fin.sum()), int(flagged.sum())
    ymin = min(0.0, float(np.min(s[fin])) - 0.05)
    tail = _without(chain, s)
    _residue_pages(
        out, "smoc_residues", s, chain, number, flagged, ylabel="SMOC", ylim=(ymin, 1.02),
        line=limit, line_label=f"{limit:g}", mark_label="flagged",
        caption=lambda shown, part: (
            f"Per-residue SMOC score (Manders' overlap of the map and the model map around "
            f"the residue) against residue number, one panel per chain{part}: {shown}. The "
            f"dashed line is the flag limit {limit:g}; {n_flag} of the {n_fin} residues with "
            f"a score are flagged (red).{tail}"))
    out.add("smoc_histogram.png",
            common.histogram(s[fin], "Per-residue SMOC", marker=limit,
                             marker_label=f"limit {limit:g}"),
            f"Histogram of the per-residue SMOC scores ({n_fin} residues); the dashed line is "
            f"the flag limit {limit:g}.")
    stops = ((0.0, SMOC_COLOURS[0]), (limit, SMOC_COLOURS[1]), (1.0, SMOC_COLOURS[2]))
    if not 0.0 < limit < 1.0:  # a palette's values must increase: no white stop then
        stops = (stops[0], stops[2])
    out.artefacts += [colour_script(ctx, "model_smoc", "A.g", "smoc", s, chain, number, icode,
                                    stops, "Residue SMOC", "per-residue SMOC score"),
                      _input_copy(ctx)]
    return out


DRAWS = {"A.c": draw_multimodel, "A.e": draw_qscore, "A.f": draw_emringer, "A.g": draw_smoc}
