"""Figures of 0.e, 0.f and 0.g: a histogram of the local values, three surface views coloured by
the local volume (the reference's view turns, jet over [P2.5, P97.5]) and a ChimeraX script that
reproduces the coloured views from the files in the report directory.

As in the reference, the surface is that of the soft-masked map at the threshold (so noise blobs
outside the mask are not drawn), coloured by sampling the local volume; voxels without a value
(0: outside the mask, or nothing significant) take the median for colouring only.
"""
from __future__ import annotations

import os

import matplotlib
import numpy as np

from cryovalid.figures import isosurface
from cryovalid.figures.common import figure_path, histogram, relative
from cryovalid.io.maps import write_map
from cryovalid.items.base import Figure

PALETTE_COLOURS = 11  # the reference's colour count over [P2.5, P97.5]
CHIMERAX_WINDOW = (1300, 700)


def jet_palette(n=PALETTE_COLOURS) -> str:
    """ChimeraX palette string: ``n`` colours of matplotlib's jet, colon-separated hex."""
    cmap = matplotlib.colormaps["jet"]
    cols = []
    for i in range(n):
        r, g, b, _ = cmap(i / (n - 1))
        cols.append(f"#{int(round(255 * r)):02x}{int(round(255 * g)):02x}"
                    f"{int(round(255 * b)):02x}")
    return ":".join(cols)


def _input_map_path(ctx) -> str:
    """Path of a copy of the input map inside the report directory, so that the ChimeraX
    scripts name it relative to themselves and the report can be moved or sent as a whole:
    the input file itself when it already lies inside the report directory, else
    ``maps/input_map.mrc`` (written once, shared by the three scripts; MRC, so that a gzipped
    input opens too)."""
    path = ctx.map.path
    root = os.path.abspath(ctx.out_dir)
    if path and os.path.isfile(path) and not path.endswith(".gz"):
        path = os.path.abspath(path)
        if os.path.commonpath([path, root]) == root:
            return path
    out = ctx.path("maps", "input_map.mrc")
    if not os.path.isfile(out):
        write_map(out, ctx.map.data, ctx.voxel_size, ctx.map.origin)
    return os.path.abspath(out)


def _cxc_path(out_dir, script_dir, path) -> str:
    """A path as the script should name it: relative to the script when the file lies inside
    the report directory (ChimeraX changes to a .cxc's folder while it runs it — scripting
    module, ``open_command_script`` — so the report directory can be moved as a whole),
    absolute otherwise (never the case for the files the scripts open: see
    :func:`_input_map_path`)."""
    path = os.path.abspath(path)
    root = os.path.abspath(out_dir)
    if os.path.commonpath([path, root]) == root:
        return os.path.relpath(path, script_dir).replace(os.sep, "/")
    return path.replace(os.sep, "/")


def write_chimerax_script(ctx, name, volume_file, vmin, vmax, title) -> str:
    """Write ``chimerax/<name>.cxc``: open the map (× the soft mask when maps/mask_soft.mrc is
    there), show it at the threshold, colour it by ``volume_file`` over [vmin, vmax] with jet,
    and save the reference's three views next to the script. Returns the script path."""
    script = ctx.path("chimerax", f"{name}.cxc")
    sdir = os.path.dirname(script)
    q = lambda p: '"' + _cxc_path(ctx.out_dir, sdir, p) + '"'  # noqa: E731
    mask_file = os.path.join(ctx.out_dir, "maps", "mask_soft.mrc")
    lines = [f"# cryovalid {title}: the map's surface at threshold {ctx.threshold:.6g},",
             f"# coloured by {os.path.basename(volume_file)} (jet, {vmin:.4g} to {vmax:.4g}).",
             "# Open this file in ChimeraX (File > Open, or: open <path to this file>).",
             f"windowsize {CHIMERAX_WINDOW[0]} {CHIMERAX_WINDOW[1]}",
             "set bgColor white",
             f"open {q(_input_map_path(ctx))}"]
    if os.path.isfile(mask_file):
        lines += [f"open {q(mask_file)}",
                  "volume multiply #1,2 modelId 3",
                  "volume #1,2 hide"]
        surf, local = "#3", "#4"
    else:
        surf, local = "#1", "#2"
    lines += [f"open {q(volume_file)}",
              f"volume {local} hide",
              f"volume {surf} level {ctx.threshold:.6g} style surface",
              f"color sample {surf} map {local} palette {jet_palette()} "
              f"range {vmin:.6g},{vmax:.6g}",
              "lighting soft"]
    for i, (tx, ty, tz) in enumerate(isosurface.VIEW_TURNS):
        turns = [f"turn {ax} {a:g}" for ax, a in zip("xyz", (tx, ty, tz)) if a]
        undo = [f"turn {ax} {-a:g}" for ax, a in reversed(list(zip("xyz", (tx, ty, tz)))) if a]
        lines += turns + ["view",
                          f"save {name}_view{i + 1}.png width {CHIMERAX_WINDOW[0]} "
                          f"height {CHIMERAX_WINDOW[1]} supersample 3"] + undo
    with open(script, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return script


def _draw(res, ctx, name, xlabel, colorbar_label, caption, marker=None, marker_label=None):
    d = res.data
    if "values" not in d:
        return
    vals = d["values"]
    p = histogram(vals, figure_path(ctx, f"{name}_histogram.png"), xlabel, marker, marker_label)
    res.figures.append(Figure(relative(ctx, p), f"Histogram of the {caption} inside the mask."))
    vmin, vmax = d["p2_5"], d["p97_5"]
    if vmax <= vmin:
        vmax = vmin + max(abs(vmin) * 1e-3, 1e-3)
    volume_file = os.path.join(ctx.out_dir, "maps", f"{name}.mrc")
    script = write_chimerax_script(ctx, name, volume_file, vmin, vmax, f"{res.id} {res.title}")
    colour = d["volume"]
    if np.any(colour == 0):
        colour = np.where(colour == 0, np.float32(np.median(vals)), colour)
    try:
        paths = isosurface.render_views(ctx.map.data * ctx.soft_mask, ctx.voxel_size,
                                        ctx.threshold, figure_path(ctx, f"{name}_views"),
                                        color=colour, vmin=vmin, vmax=vmax,
                                        colorbar_label=colorbar_label)
        p = isosurface.montage(paths, figure_path(ctx, f"{name}_views.png"))
    except ValueError as exc:
        res.figures.append(Figure("", f"No coloured surface could be drawn: {exc}."))
        return
    res.figures.append(Figure(relative(ctx, p), (
        f"Surface of the masked map at threshold {ctx.threshold:.4g}, coloured by the {caption} "
        f"from {vmin:.3g} to {vmax:.3g} (2.5 and 97.5 percentiles). "
        f"{isosurface.view_caption(ctx.threshold)} The ChimeraX script {relative(ctx, script)} "
        f"reproduces these views.")))


def draw_localres(res, ctx):
    _draw(res, ctx, "local_resolution", "Local resolution (Å)", "Resolution (Å)",
          "local resolution (Å)", marker=ctx.resolution, marker_label="reported resolution")


def draw_locbfactor(res, ctx):
    _draw(res, ctx, "local_bfactor", "Local B-factor (Å², reference sign)", "B (Å²)",
          "local B-factor (Å²)")


def draw_lococcupancy(res, ctx):
    _draw(res, ctx, "local_occupancy", "Local occupancy (0 to 1)", "Occupancy",
          "local occupancy")
