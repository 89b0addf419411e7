"""Figures of the atomic model (Level A): the "Atomic model" input section (three views of the
model's Cα trace, coloured by chain, alone and inside the map's isosurface), A.a (per-residue
CC per chain, its histogram, the map–model FSC, a ChimeraX script colouring the model by its
per-residue CC) and A.d (the map–model Guinier match).

Views: the reference's three view turns (``isosurface.VIEW_TURNS``) about the map box's centre,
as the map's own isosurface views, so the model views line up with them. The model is placed in
the map's box frame as ``xyz - map.origin`` (Å), which is the frame of the marching-cubes
vertices. The trace joins consecutive Cα atoms (P atoms for nucleic acids) of a chain and breaks
where two are further apart than ``MAX_GAP_A`` (a chain break or a missing stretch). VTK renders
off-screen as for the map; where it cannot, a matplotlib rendering of the same scene is used.

Print size: the plots are at most ``PRINT_WIDTH_IN`` wide and ≤ 120 mm tall, fonts ≥
``MIN_FONT_PT``; the view montages are ``PRINT_WIDTH_IN`` wide with a chain legend drawn at the
montage's own dpi, so its 8 pt text prints at 8 pt. Nothing here opens a file.
"""
from __future__ import annotations

import io
import math
import os

import numpy as np

from cryovalid.figures import common, isosurface
from cryovalid.figures.common import (MIN_FONT_PT, PRINT_WIDTH_IN, Drawing, histogram, new_figure,
                                      png, subplots)
from cryovalid.figures.fsc import _resolution_axis
from cryovalid.figures.localmaps import CHIMERAX_WINDOW, INPUT_COPY
from cryovalid.results import Text, Volume

# Trace atoms: name -> element, and the longest distance (Å) between consecutive trace atoms
# of one chain that is still drawn as a bond (Cα–Cα is 3.8 Å; P–P 5.5–7.5 Å).
TRACE_ATOMS = {"CA": "C", "P": "P"}
MAX_GAP_A = {"CA": 4.5, "P": 8.0}
TUBE_FRACTION = 1.0 / 150  # tube radius as a fraction of the model's largest extent ...
TUBE_MIN_A = 0.5  # ... but at least this (Å)
SURFACE_GREY = (0.78, 0.78, 0.78)
SURFACE_OPACITY = 0.30
MODEL_COPY = "model/model.cif"  # the placed model, written by A.a for the script to open
FONT_PT = max(8.0, MIN_FONT_PT)  # axis labels, legends, titles
TICK_PT = max(7.0, MIN_FONT_PT)
ROWS_PER_FIGURE = 4  # chain rows per residue-CC figure: 4 rows keep it under 120 mm tall
ROW_HEIGHT_IN = 1.05
MIN_PANEL_FRACTION = 1.0 / 6  # a short chain's panel is at least this much of a row
MAX_LEGEND_CHAINS = 36
CC_COLOURS = ("red", "white", "blue")  # per-residue CC colouring at 0, the low-CC limit, 1


# --------------------------------------------------------------------------- the Cα/P trace
def trace(model, xyz):
    """The model's trace: ``(points (m, 3) world Å, chain (m,) str, segment (m,) int)`` with
    one point per residue (its Cα, or P for a nucleotide, in file order); ``segment`` numbers
    the unbroken stretches (a new one at every chain change and every gap > ``MAX_GAP_A``)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    name = np.asarray(model.atom_name)
    element = np.asarray(model.element)
    sel = np.zeros(len(name), dtype=bool)
    for atom, el in TRACE_ATOMS.items():
        sel |= (name == atom) & (element == el)
    idx = np.nonzero(sel)[0]
    res = np.asarray(model.residue_index)[idx]
    _, first = np.unique(res, return_index=True)  # one trace atom per residue
    idx = idx[np.sort(first)]
    pts = xyz[idx]
    chain = np.asarray(model.chain)[np.asarray(model.residue_index)[idx]]
    kind = name[idx]
    if len(idx) == 0:
        return pts, chain, np.zeros(0, dtype=np.int64)
    gap = np.where(kind[1:] == "P", MAX_GAP_A["P"], MAX_GAP_A["CA"])
    dist = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    new = (chain[1:] != chain[:-1]) | (kind[1:] != kind[:-1]) | (dist > gap)
    segment = np.concatenate([[0], np.cumsum(new)]).astype(np.int64)
    return pts, chain, segment


def chain_colours(chains) -> dict:
    """Chain name -> RGB (0–1): matplotlib's tab10 (tab20 beyond ten chains), cycled."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(chains) <= 10 else "tab20"]
    return {c: tuple(cmap(i % cmap.N)[:3]) for i, c in enumerate(chains)}


def _segments(pts, segment):
    """The stretches of at least two points, as a list of (k, 3) arrays and their start rows."""
    out = []
    if len(pts) == 0:
        return out
    cuts = np.nonzero(np.diff(segment))[0] + 1
    starts = np.concatenate([[0], cuts])
    for s, part in zip(starts, np.split(np.arange(len(pts)), cuts)):
        if len(part) >= 2:
            out.append((int(s), part))
    return out


# --------------------------------------------------------------------------- VTK rendering
def _trace_poly(vtk, pts, rgb, segments):
    from vtk.util import numpy_support as ns

    points = vtk.vtkPoints()
    points.SetData(ns.numpy_to_vtk(np.ascontiguousarray(pts, dtype=np.float64), deep=True))
    lines = vtk.vtkCellArray()  # one polyline per stretch: offsets into the point ids
    conn = np.concatenate([part for _, part in segments]).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(part) for _, part in segments])])
    lines.SetData(ns.numpy_to_vtkIdTypeArray(offsets.astype(np.int64), deep=True),
                  ns.numpy_to_vtkIdTypeArray(conn, deep=True))
    poly = vtk.vtkPolyData()
    poly.SetPoints(points)
    poly.SetLines(lines)
    colours = ns.numpy_to_vtk(np.ascontiguousarray(np.round(255 * rgb), dtype=np.uint8),
                              deep=True)
    colours.SetName("chain_colour")
    poly.GetPointData().SetScalars(colours)
    return poly


def _render_vtk(pts, rgb, segments, radius, surface, centre) -> list:
    import vtk

    with isosurface._vtk_warnings_off():
        return _draw_vtk(vtk, pts, rgb, segments, radius, surface, centre)


def _draw_vtk(vtk, pts, rgb, segments, radius, surface, centre) -> list:
    tube = vtk.vtkTubeFilter()
    tube.SetInputData(_trace_poly(vtk, pts, rgb, segments))
    tube.SetRadius(radius)
    tube.SetNumberOfSides(12)
    tube.CappingOn()
    mapper = vtk.vtkPolyDataMapper()
    mapper.SetInputConnection(tube.GetOutputPort())
    mapper.SetScalarModeToUsePointData()
    mapper.SetColorModeToDirectScalars()
    mapper.ScalarVisibilityOn()
    actors = [vtk.vtkActor()]
    actors[0].SetMapper(mapper)
    ren = vtk.vtkRenderer()
    ren.SetBackground(1, 1, 1)
    ren.AddActor(actors[0])
    if surface is not None:
        smapper = vtk.vtkPolyDataMapper()
        smapper.SetInputData(isosurface.surface_polydata(vtk, *surface))
        smapper.ScalarVisibilityOff()
        sactor = vtk.vtkActor()
        sactor.SetMapper(smapper)
        sactor.GetProperty().SetColor(*SURFACE_GREY)
        sactor.GetProperty().SetOpacity(SURFACE_OPACITY)
        ren.AddActor(sactor)
        actors.append(sactor)
        ren.SetUseDepthPeeling(1)
        ren.SetMaximumNumberOfPeels(8)
    win = isosurface._render_window(vtk)
    if surface is not None:
        win.SetAlphaBitPlanes(1)
        win.SetMultiSamples(0)
    win.AddRenderer(ren)
    win.SetSize(*isosurface.WINDOW)
    cx, cy, cz = centre
    images = []
    for tx, ty, tz in isosurface.VIEW_TURNS:
        tr = vtk.vtkTransform()
        tr.PostMultiply()
        tr.Translate(-cx, -cy, -cz)
        tr.RotateX(tx)
        tr.RotateY(ty)
        tr.RotateZ(tz)
        tr.Translate(cx, cy, cz)
        for a in actors:
            a.SetUserTransform(tr)
        ren.ResetCamera()
        ren.GetActiveCamera().Zoom(1.25)
        win.Render()
        images.append(isosurface.grab_window(vtk, win))
    win.Finalize()
    return images


# --------------------------------------------------------------------------- matplotlib fallback
def _render_mpl(pts, rgb, segments, radius, surface, centre) -> list:
    from mpl_toolkits.mplot3d.art3d import Line3DCollection, Poly3DCollection
    from PIL import Image
    from scipy.spatial.transform import Rotation

    c = np.asarray(centre, dtype=np.float64)
    lw = 2.5 if radius <= 1.0 else 1.8
    images = []
    for tx, ty, tz in isosurface.VIEW_TURNS:
        rot = Rotation.from_euler("xyz", [tx, ty, tz], degrees=True)
        p = rot.apply(pts - c)
        fig = common.new_figure(figsize=(isosurface.WINDOW[0] / 100,
                                         isosurface.WINDOW[1] / 100))
        ax = fig.add_subplot(projection="3d")
        ax.computed_zorder = False  # the trace first, the translucent surface over it
        lines = [p[part] for _, part in segments]
        colours = [tuple(rgb[s]) for s, _ in segments]
        ax.add_collection3d(Line3DCollection(lines, colors=colours, linewidths=lw, zorder=1))
        extent = p
        if surface is not None:
            verts, faces, _ = surface
            q = rot.apply(verts[:, ::-1] - c)
            coll = Poly3DCollection(q[faces], linewidth=0, zorder=2)
            coll.set_facecolor(SURFACE_GREY + (SURFACE_OPACITY,))
            ax.add_collection3d(coll)
            extent = q
        lim = float(np.abs(extent).max()) if len(extent) else 1.0
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_zlim(-lim, lim)
        ax.view_init(elev=90, azim=-90)
        ax.set_axis_off()
        fig.canvas.draw()
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy(),
                                      "RGB"))
    return images


def render_trace_views(pts_box, rgb, segments, centre, surface=None) -> list:
    """The three views (PIL images) of the trace (box-frame Å) as tubes, inside the
    translucent ``surface`` (verts (z, y, x) Å, faces, normals) when given."""
    extent = float(np.ptp(pts_box, axis=0).max()) if len(pts_box) else 0.0
    radius = max(TUBE_MIN_A, extent * TUBE_FRACTION)
    if os.environ.get("CRYOVALID_NO_VTK"):
        return _render_mpl(pts_box, rgb, segments, radius, surface, centre)
    try:
        return _render_vtk(pts_box, rgb, segments, radius, surface, centre)
    except Exception:  # noqa: BLE001 - no OpenGL at all: draw the same scene with matplotlib
        return _render_mpl(pts_box, rgb, segments, radius, surface, centre)


def _legend_strip(chains, colours, width_px) -> "object":
    """A PIL image ``width_px`` wide: the chain legend drawn at the dpi that makes it
    ``PRINT_WIDTH_IN`` wide, so that its fonts print at their size beside the montage."""
    from matplotlib.lines import Line2D
    from PIL import Image

    shown = list(chains)[:MAX_LEGEND_CHAINS]
    handles = [Line2D([0], [0], color=colours[c], lw=4) for c in shown]
    labels = [str(c) for c in shown]
    if len(chains) > len(shown):
        handles.append(Line2D([0], [0], color="white", lw=0))
        labels.append(f"… {len(chains) - len(shown)} more")
    ncol = min(len(handles), 12)
    nrow = math.ceil(len(handles) / ncol)
    fig = new_figure(figsize=(PRINT_WIDTH_IN, 0.22 * nrow + 0.32))
    fig.legend(handles, labels, loc="center", ncol=ncol, fontsize=FONT_PT, frameon=False,
               title="Chain", title_fontsize=FONT_PT, handlelength=1.6, columnspacing=1.2)
    im = Image.open(io.BytesIO(png(fig, dpi=width_px / PRINT_WIDTH_IN))).convert("RGB")
    if im.width != width_px:
        im = im.resize((width_px, im.height))
    return im


def _with_legend(views, chains, colours) -> bytes:
    """The views side by side (``isosurface.montage``) over the chain legend, as PNG bytes
    ``PRINT_WIDTH_IN`` wide on paper."""
    from PIL import Image

    top = Image.open(io.BytesIO(isosurface.montage(views))).convert("RGB")
    strip = _legend_strip(chains, colours, top.width)
    out = Image.new("RGB", (top.width, top.height + strip.height), "white")
    out.paste(top, (0, 0))
    out.paste(strip, (0, top.height))
    dpi = out.width / float(PRINT_WIDTH_IN)
    buf = io.BytesIO()
    out.save(buf, format="png", dpi=(dpi, dpi))
    return buf.getvalue()


def _chain_list(chains) -> str:
    chains = [str(c) for c in chains]
    if len(chains) > 12:
        return f"{len(chains)} chains ({', '.join(chains[:6])}, …, {chains[-1]})"
    word = "chain" if len(chains) == 1 else "chains"
    return f"{word} {', '.join(chains)}"


def scene(ctx):
    """What the views show: ``(points (m, 3) in the map's box frame (x, y, z Å from voxel 0),
    rgb (m, 3), segments, chains drawn, chain -> colour, rotation centre (the box centre,
    as the map's own views))``, the model at its Level A placement ``ctx.model.xyz``."""
    m = ctx.map
    pts, chain, segment = trace(ctx.model.model, ctx.model.xyz)
    segments = _segments(pts, segment)
    drawn = sorted({int(i) for _, part in segments for i in part})
    chains = list(dict.fromkeys(chain[drawn].tolist()))
    colours = chain_colours(chains)
    rgb = np.array([colours.get(c, (0.5, 0.5, 0.5)) for c in chain], dtype=np.float64)
    pts_box = pts - np.asarray(m.origin, dtype=np.float64)
    centre = tuple((np.array(np.shape(m.data)[::-1]) - 1) * m.voxel_size / 2)
    return pts_box, rgb.reshape(-1, 3), segments, chains, colours, centre


def draw_model_section(ctx) -> Drawing:
    """The "Atomic model" section: ``model_views.png`` (the Cα/P trace in the reference's three
    views, coloured by chain) and ``model_in_map.png`` (the same views of the map's isosurface
    at the threshold, translucent grey, with the trace inside)."""
    out = Drawing()
    if getattr(ctx, "model", None) is None:
        return out
    m = ctx.map
    pts_box, rgb, segments, chains, colours, centre = scene(ctx)
    if not segments:
        out.missing("No model trace could be drawn: the model has no two consecutive Cα (or P) "
                    "atoms within bonding distance.")
        return out
    vol = np.asarray(m.data, dtype=np.float32)
    turns = isosurface.view_caption(m.threshold).split(". ", 1)[1]
    what = (f"Cα trace of the atomic model ({_chain_list(chains)}; P atoms for nucleic acids), "
            f"coloured by chain, broken where consecutive Cα atoms are more than "
            f"{MAX_GAP_A['CA']:g} Å apart ({MAX_GAP_A['P']:g} Å for P)")
    views = render_trace_views(pts_box, rgb, segments, centre)
    out.add("model_views.png", _with_legend(views, chains, colours),
            f"{what}, at the placement used for Level A, viewed as the map. {turns}")
    level = float(m.threshold)
    if not (float(vol.min()) < level < float(vol.max())):
        out.missing(f"The model in the map could not be drawn: no isosurface at threshold "
                    f"{level:.4g} (map range {float(vol.min()):.4g} to {float(vol.max()):.4g}).")
        return out
    try:
        surface = isosurface._surface(vol, level, m.voxel_size)
    except (ValueError, RuntimeError) as exc:
        out.missing(f"The model in the map could not be drawn: {exc}.")
        return out
    views = render_trace_views(pts_box, rgb, segments, centre, surface=surface)
    out.add("model_in_map.png", _with_legend(views, chains, colours),
            f"The map's isosurface at threshold {level:.4g} (translucent grey) with the {what} "
            f"inside. {turns}")
    return out


# --------------------------------------------------------------------------- A.a
def _rows(chains, spans):
    """Chains packed into rows: a row holds consecutive chains whose panel widths (residue
    span, at least ``MIN_PANEL_FRACTION`` of the longest) add up to at most the longest."""
    cap = max(spans.values())
    width = {c: max(spans[c], cap * MIN_PANEL_FRACTION) for c in chains}
    rows, cur, used = [], [], 0.0
    for c in chains:
        if cur and used + width[c] > cap * (1 + 1e-9):
            rows.append(cur)
            cur, used = [], 0.0
        cur.append(c)
        used += width[c]
    if cur:
        rows.append(cur)
    return rows, width


def _residue_cc_figure(rows, width, per_chain, low, ylim):
    fig = new_figure(figsize=(PRINT_WIDTH_IN, ROW_HEIGHT_IN * len(rows) + 0.45))
    grid = fig.add_gridspec(len(rows), 1)
    for r, row in enumerate(rows):
        sub = grid[r].subgridspec(1, len(row), width_ratios=[width[c] for c in row],
                                  wspace=0.08)
        for k, c in enumerate(row):
            ax = fig.add_subplot(sub[k])
            num, cc = per_chain[c]
            x = num.astype(float)
            y = cc.astype(float)
            gap = np.nonzero(np.diff(num) != 1)[0] + 1  # numbering gaps: no line across them
            xs, ys = np.insert(x, gap, np.nan), np.insert(y, gap, np.nan)
            ax.plot(xs, ys, color="#2596be", lw=0.9)
            bad = np.isfinite(y) & (y < low)
            if np.any(bad):
                ax.plot(x[bad], y[bad], "o", color="#b03030", ms=3,
                        label=f"CC < {low:g}")
            ax.axhline(low, color="#b03030", ls="--", lw=0.8)
            ax.set_ylim(*ylim)
            ok = np.isfinite(x)
            lo, hi = float(np.nanmin(x[ok])), float(np.nanmax(x[ok]))
            pad = max(1.0, 0.01 * (hi - lo))
            ax.set_xlim(lo - pad, hi + pad)
            ax.text(0.01, 0.04, f"chain {c}", transform=ax.transAxes, fontsize=FONT_PT,
                    ha="left", va="bottom",
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.7", alpha=0.9))
            ax.tick_params(labelsize=TICK_PT)
            ax.grid(True, alpha=0.3)
            if k == 0:
                ax.set_ylabel("CC", fontsize=FONT_PT)
            else:
                ax.tick_params(labelleft=False)
            if r == len(rows) - 1 and k == 0:
                ax.set_xlabel("Residue number", fontsize=FONT_PT)
    fig.subplots_adjust(left=0.08, right=0.99, top=0.97,
                        bottom=0.45 / (ROW_HEIGHT_IN * len(rows) + 0.45) + 0.02, hspace=0.35)
    return fig


def _fmt(v: float) -> str:
    return f"{v:g}"


def colour_script(ctx, name, item, attr, values, chain, number, icode, stops, title,
                  meaning) -> Text:
    """``chimerax/<name>.cxc``: the map's surface at the threshold (transparent) and the placed
    model, residues coloured by ``attr`` through ``stops`` ((value, colour) pairs) with a key;
    one ``setattr`` per finite value (the others take grey) and the reference's three views
    saved next to the script as ``<name>_view<k>.png``."""
    q = lambda rel: f'"../{rel}"'  # noqa: E731 - from chimerax/ to the report folder
    thr = float(ctx.map.threshold)
    scale = ", ".join(f"{c} at {_fmt(v)}" for v, c in stops)
    lines = [f"# cryovalid {item}: the model coloured by its {meaning} ({scale}; residues "
             f"without a value grey),",
             f"# inside the map's surface at threshold {thr:.6g}.",
             "# Open this file in ChimeraX (File > Open, or: open <path to this file>).",
             f"windowsize {CHIMERAX_WINDOW[0]} {CHIMERAX_WINDOW[1]}",
             "set bgColor white",
             f"open {q(INPUT_COPY)}",
             f"volume #1 level {thr:.6g} style surface color #c8c8c8 transparency 0.7",
             f"open {q(MODEL_COPY)}",
             "hide #2 atoms",
             "cartoon #2",
             "show #2 & ligand atoms"]
    for c, n, i, v in zip(chain, number, icode, values):
        if np.isfinite(v):
            lines.append(f"setattr #2/{c}:{n}{i.strip()} residues {attr} {v:.4f} create true "
                         f"type float")
    palette = ":".join(f"{_fmt(v)},{c}" for v, c in stops)
    key = " ".join(f"{c}:{_fmt(v)}" for v, c in stops)
    lines += [f"color byattribute r:{attr} #2 palette {palette} noValueColor #a0a0a0",
              f"key {key} pos 0.90,0.10 size 0.03,0.40 fontSize 20",
              f'2dlabels text "{title}" xpos 0.84 ypos 0.54 size 20 color black',
              "lighting soft"]
    for k, (tx, ty, tz) in enumerate(isosurface.VIEW_TURNS):
        turns = [f"turn {ax} {a:g}" for ax, a in zip("xyz", (tx, ty, tz)) if a]
        undo = [f"turn {ax} {-a:g}" for ax, a in reversed(list(zip("xyz", (tx, ty, tz)))) if a]
        lines += turns + ["view",
                          f"save {name}_view{k + 1}.png width {CHIMERAX_WINDOW[0]} "
                          f"height {CHIMERAX_WINDOW[1]} supersample 3"] + undo
    return Text(f"chimerax/{name}.cxc", "\n".join(lines) + "\n")


def _mapmodel_script(ctx, d, low) -> Text:
    """``chimerax/model_cc.cxc``: the map's surface at the threshold (transparent) and the
    placed model, its residues coloured by their CC (red 0, white at the low-CC limit, blue 1)
    with a key."""
    cc = np.asarray(d["residue_cc"], dtype=float)
    icode = d.get("residue_icode")
    icode = np.asarray(icode).astype(str) if icode is not None else np.full(len(cc), "")
    stops = tuple(zip((0.0, low, 1.0), CC_COLOURS))
    return colour_script(ctx, "model_cc", "A.a", "cc", cc, np.asarray(d["residue_chain"]).astype(str),
                         np.asarray(d["residue_number"]).astype(np.int64), icode, stops,
                         "Residue CC", "per-residue map-model CC")


def _fsc_model_figure(d, resolution):
    dd = np.asarray(d["fsc_d"], dtype=float)
    ok = np.isfinite(dd) & (dd > 0)
    x = 1.0 / dd[ok]
    order = np.argsort(x)
    x = x[order]
    fig, ax = subplots(figsize=(6.3, 3.4))
    curves = [("fsc_unmasked", "FSC, unmasked", "black", "-"),
              ("fsc_masked", "FSC, masked", "tab:blue", (0, (4, 2)))]
    for key, label, colour, ls in curves:
        if d.get(key) is None:
            continue
        y = np.asarray(d[key], dtype=float)[ok][order]
        ax.plot(x, y, color=colour, ls=ls, lw=1.3, label=label)
    ax.axhline(0.0, color="grey", lw=0.7)
    ax.axhline(0.143, color="grey", ls="--", lw=0.8, label="0.143")
    ax.axhline(0.5, color="grey", ls=":", lw=0.8, label="0.5")
    if resolution:
        ax.axvline(1.0 / resolution, color="tab:orange", lw=0.9,
                   label=f"reported resolution {resolution:.2f} Å")
    text = []
    for cutoff, dval in sorted((d.get("d_fsc_model") or {}).items()):
        if dval is None or not np.isfinite(dval) or dval <= 0:
            text.append(f"masked, FSC = {cutoff:g}: –")
            continue
        ax.plot([1.0 / dval], [cutoff], "o", color="tab:blue", ms=5, mfc="white", mew=1.4)
        text.append(f"masked, FSC = {cutoff:g}: {dval:.2f} Å")
    if text:
        ax.text(0.03, 0.05, "\n".join(text), transform=ax.transAxes, fontsize=TICK_PT + 0.5,
                va="bottom", ha="left", bbox=dict(boxstyle="round", fc="white", ec="0.7"))
    ax.set_xlim(0, float(x[-1]))
    ax.set_ylim(-0.15, 1.05)
    ax.set_xlabel("Spatial frequency (1/Å)", fontsize=FONT_PT)
    ax.set_ylabel("Map–model FSC", fontsize=FONT_PT)
    ax.tick_params(labelsize=TICK_PT)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=TICK_PT, loc="upper right")
    top = _resolution_axis(ax)
    top.tick_params(labelsize=TICK_PT)
    top.xaxis.label.set_fontsize(FONT_PT)
    fig.tight_layout()
    return fig


def draw_mapmodel(res, ctx) -> Drawing:
    """A.a: ``residue_cc.png`` (``residue_cc_2.png`` … for more chain rows), the histogram
    ``residue_cc_histogram.png``, ``fsc_model.png`` and the ChimeraX script
    ``chimerax/model_cc.cxc`` (with the input map copy it opens)."""
    out = Drawing()
    d = res.data
    low = float(d.get("low_cc", 0.5))
    if "residue_cc" in d:
        cc = np.asarray(d["residue_cc"], dtype=float)
        chain = np.asarray(d["residue_chain"]).astype(str)
        number = np.asarray(d["residue_number"]).astype(np.int64)
        fin = np.isfinite(cc)
        if not np.any(fin):
            out.missing("No per-residue CC could be drawn: no residue has a CC.")
        else:
            chains = [c for c in dict.fromkeys(chain.tolist()) if np.any(fin[chain == c])]
            per_chain = {c: (number[chain == c], cc[chain == c]) for c in chains}
            spans = {c: float(np.ptp(per_chain[c][0]) + 1) for c in chains}
            rows, width = _rows(chains, spans)
            ymin = min(0.0, float(np.nanmin(cc[fin])) - 0.05)
            ylim = (ymin, 1.02)
            pages = [rows[i:i + ROWS_PER_FIGURE] for i in range(0, len(rows), ROWS_PER_FIGURE)]
            for k, page in enumerate(pages):
                fig = _residue_cc_figure(page, width, per_chain, low, ylim)
                name = "residue_cc.png" if k == 0 else f"residue_cc_{k + 1}.png"
                shown = [c for row in page for c in row]
                part = f" (part {k + 1} of {len(pages)})" if len(pages) > 1 else ""
                out.add(name, png(fig),
                        f"Per-residue map–model correlation coefficient against residue "
                        f"number, one panel per chain{part}: {_chain_list(shown)}. The dashed "
                        f"line is CC = {low:g}; residues below it are marked in red. Residues "
                        f"without a CC are left out.")
            out.add("residue_cc_histogram.png",
                    histogram(cc[fin], "Per-residue CC", marker=low,
                              marker_label=f"CC = {low:g}"),
                    f"Histogram of the per-residue map–model correlation coefficients; the "
                    f"dashed line is CC = {low:g}.")
            out.artefacts += [_mapmodel_script(ctx, d, low),
                              Volume(INPUT_COPY, ctx.map.data, ctx.map.voxel_size,
                                     ctx.map.origin)]
    if d.get("fsc_d") is not None and len(d["fsc_d"]):
        fig = _fsc_model_figure(d, getattr(ctx, "resolution", None))
        out.add("fsc_model.png", png(fig),
                "Fourier Shell Correlation between the map and the model map, without and with "
                "the mask around the model, against spatial frequency; lines at 0, 0.143 and "
                "0.5 and the resolutions where the masked curve crosses them.")
    return out


# --------------------------------------------------------------------------- A.d
def draw_guinier_match(res, ctx) -> Drawing:
    """A.d: ``guinier_match.png``, ln mean |F| of the map (shifted to the model's mean) and of
    the B = 0 model map against s² (1/Å²), with a top axis in Å and the Pearson R."""
    out = Drawing()
    d = res.data
    if "s2" not in d:
        return out
    s2 = np.asarray(d["s2"], dtype=float)
    fig, ax = subplots(figsize=(5.0, 3.1))
    r = d.get("correlation")
    ax.plot(s2, np.asarray(d["map_profile"], dtype=float), color="#333333", lw=1.3,
            label="Map (shifted to the model's mean)")
    ax.plot(s2, np.asarray(d["model_profile"], dtype=float), color="#2596be", lw=1.3,
            ls=(0, (4, 2)), label="Model map, B = 0")
    title = f"Pearson R = {r:.3f}" if r is not None and np.isfinite(r) else None
    ax.legend(fontsize=FONT_PT, title=title, title_fontsize=FONT_PT)
    ax.set_xlabel("s² = 1/d² (1/Å²)", fontsize=FONT_PT)
    ax.set_ylabel("ln mean |F|", fontsize=FONT_PT)
    ax.tick_params(labelsize=TICK_PT)
    ax.grid(True, alpha=0.4)
    lo, hi = float(np.nanmin(s2)), float(np.nanmax(s2))
    ax.set_xlim(lo, hi)
    top = ax.twiny()
    top.set_xlim(ax.get_xlim())
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    top.set_xticks(ticks)
    top.set_xticklabels(["∞" if t <= 0 else f"{1.0 / math.sqrt(t):.1f}" for t in ticks])
    top.set_xlabel("Resolution (Å)", fontsize=FONT_PT)
    top.tick_params(labelsize=TICK_PT)
    fig.tight_layout()
    rtext = f" (Pearson R = {r:.3f})" if title else ""
    out.add("guinier_match.png", png(fig),
            f"Guinier plots of the map and of the model map computed with B = 0: log of the "
            f"mean Fourier amplitude per shell against s² = 1/d², the map's curve shifted to "
            f"the model's mean{rtext}. The two shapes should agree.")
    return out


DRAWS = {"A.a": draw_mapmodel, "A.d": draw_guinier_match}  # item ID -> figure
