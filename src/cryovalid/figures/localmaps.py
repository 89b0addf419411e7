"""Figures of 0.e, 0.f and 0.g: a histogram of the local values, three surface views coloured by
the local volume (the reference's view turns, jet over [P2.5, P97.5]) and a ChimeraX script that
reproduces the coloured views from the files in the report directory.

As in the reference, the surface is that of the soft-masked map at the threshold (so noise blobs
outside the mask are not drawn), coloured by sampling the local volume; voxels without a value
(0: outside the mask, or nothing significant) take the median for colouring only.
"""
from __future__ import annotations


import matplotlib
import numpy as np

from cryovalid.figures import isosurface
from cryovalid.figures.common import Drawing, histogram
from cryovalid.results import Text, Volume

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


INPUT_COPY = "maps/input_map.mrc"  # the input map as the scripts open it (written once)


def chimerax_script(ctx, name, vmin, vmax, title):
    """The text of ``chimerax/<name>.cxc`` (a :class:`Text` artefact for the store): open the
    map × the soft mask, show it at the threshold, colour it by ``maps/<name>.mrc`` over
    [vmin, vmax] with jet, and save the reference's three views next to the script. Every file
    is named relative to the script's folder (ChimeraX changes to a .cxc's folder while it runs
    it — scripting module, ``open_command_script``), so the report folder can be moved whole:
    the input map is opened from the copy ``maps/input_map.mrc`` written with the figures."""
    q = lambda rel: f'"../{rel}"'  # noqa: E731 - from chimerax/ to the report folder
    lines = [f"# cryovalid {title}: the map's surface at threshold {ctx.map.threshold:.6g},",
             f"# coloured by {name}.mrc (jet, {vmin:.4g} to {vmax:.4g}).",
             "# Open this file in ChimeraX (File > Open, or: open <path to this file>).",
             f"windowsize {CHIMERAX_WINDOW[0]} {CHIMERAX_WINDOW[1]}",
             "set bgColor white",
             f"open {q(INPUT_COPY)}",
             f"open {q('maps/mask_soft.mrc')}",
             "volume multiply #1,2 modelId 3",
             "volume #1,2 hide"]
    surf, local = "#3", "#4"
    lines += [f"open {q(f'maps/{name}.mrc')}",
              f"volume {local} hide",
              f"volume {surf} level {ctx.map.threshold:.6g} style surface",
              f"color sample {surf} map {local} palette {jet_palette()} "
              f"range {vmin:.6g},{vmax:.6g}",
              "lighting soft"]
    for i, (tx, ty, tz) in enumerate(isosurface.VIEW_TURNS):
        turns = [f"turn {ax} {a:g}" for ax, a in zip("xyz", (tx, ty, tz)) if a]
        undo = [f"turn {ax} {-a:g}" for ax, a in reversed(list(zip("xyz", (tx, ty, tz)))) if a]
        lines += turns + ["view",
                          f"save {name}_view{i + 1}.png width {CHIMERAX_WINDOW[0]} "
                          f"height {CHIMERAX_WINDOW[1]} supersample 3"] + undo
    return Text(f"chimerax/{name}.cxc", "\n".join(lines) + "\n")


def _draw(res, ctx, name, xlabel, colorbar_label, caption, marker=None,
          marker_label=None) -> Drawing:
    out = Drawing()
    d = res.data
    if "values" not in d:
        return out
    vals = d["values"]
    out.add(f"{name}_histogram.png", histogram(vals, xlabel, marker, marker_label),
            f"Histogram of the {caption} inside the mask.")
    vmin, vmax = d["p2_5"], d["p97_5"]
    if vmax <= vmin:
        vmax = vmin + max(abs(vmin) * 1e-3, 1e-3)
    script = chimerax_script(ctx, name, vmin, vmax, f"{res.id} {res.title}")
    out.artefacts += [script,
                      Volume(INPUT_COPY, ctx.map.data, ctx.map.voxel_size, ctx.map.origin)]
    colour = d["volume"]
    if np.any(colour == 0):
        colour = np.where(colour == 0, np.float32(np.median(vals)), colour)
    try:
        views = isosurface.render_views(ctx.map.data * ctx.map.soft_mask, ctx.map.voxel_size,
                                        ctx.map.threshold, color=colour, vmin=vmin, vmax=vmax,
                                        colorbar_label=colorbar_label)
    except ValueError as exc:
        out.missing(f"No coloured surface could be drawn: {exc}.")
        return out
    out.add(f"{name}_views.png", isosurface.montage(views), (
        f"Surface of the masked map at threshold {ctx.map.threshold:.4g}, coloured by the {caption} "
        f"from {vmin:.3g} to {vmax:.3g} (2.5 and 97.5 percentiles). "
        f"{isosurface.view_caption(ctx.map.threshold)} The ChimeraX script {script.name} "
        f"reproduces these views."))
    return out


def draw_localres(res, ctx) -> Drawing:
    return _draw(res, ctx, "local_resolution", "Local resolution (Å)", "Resolution (Å)",
                 "local resolution (Å)", marker=ctx.resolution, marker_label="reported resolution")


def draw_locbfactor(res, ctx) -> Drawing:
    return _draw(res, ctx, "local_bfactor", "Local B-factor (Å², reference sign)", "B (Å²)",
                 "local B-factor (Å²)")


def draw_lococcupancy(res, ctx) -> Drawing:
    return _draw(res, ctx, "local_occupancy", "Local occupancy (0 to 1)", "Occupancy",
                 "local occupancy")


DRAWS = {"0.e": draw_localres, "0.f": draw_locbfactor, "0.g": draw_lococcupancy}
