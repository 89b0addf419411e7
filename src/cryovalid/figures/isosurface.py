"""Off-screen isosurface views with VTK (no display needed), optionally coloured by a volume.

The reference renders three ChimeraX views with turns (x, y, z) = (0, -90, -90), (-90, 0, -90)
and (0, 0, 0) degrees. We apply the same turns to the surface, about the box centre, and look
down -z with x to the right and y up (ChimeraX's default camera). If VTK cannot render (no
OpenGL/EGL at all), a matplotlib rendering of the same marching-cubes surface is used instead.
Without a display VTK renders through EGL; neither path changes the process environment, the
matplotlib backend or VTK's logging (see ``_render_window``, ``_vtk_warnings_off``).

A coloured surface gets one colour bar, on the last view, with round ticks (``nice_ticks``) and
labels large enough to print at ≥ 7 pt once the three views are joined 17 cm wide.
"""
from __future__ import annotations

import os

import numpy as np

from cryovalid.scoped import ScopedOverride

VIEW_TURNS = ((0, -90, -90), (-90, 0, -90), (0, 0, 0))
WINDOW = (900, 650)
WINDOW_WITH_BAR = (1100, 650)  # room on the right for the colour bar and its title
BAR_FONT_PX = 32  # colour-bar font in window pixels: ≥ 7 pt when the montage is 17 cm wide
PRINT_WIDTH_IN = 6.7  # the montage's physical width, saved in its PNG (see figures/common.py)


def nice_ticks(vmin: float, vmax: float, n: int = 5) -> list:
    """Round tick values inside [vmin, vmax]: multiples of the smallest step 1, 2 or 5 × 10^k
    that gives at most ``n`` ticks; e.g. (1.76, 8.58) → [2, 4, 6, 8]."""
    if not (np.isfinite(vmin) and np.isfinite(vmax)) or vmax <= vmin:
        return [float(vmin)]
    span = vmax - vmin
    k = int(np.floor(np.log10(span / n)))
    for step in [m * 10.0 ** e for e in (k, k + 1, k + 2) for m in (1, 2, 5)]:
        first, last = np.ceil(vmin / step - 1e-9), np.floor(vmax / step + 1e-9)
        if last - first + 1 <= n:
            return [float(round(i * step, 12)) + 0.0 for i in np.arange(first, last + 1)]
    return [float(vmin), float(vmax)]


def _tick_format(ticks) -> str:
    """printf format with the decimals the ticks need (2, 4, 6 → %.0f; 0.25, 0.5 → %.2f)."""
    for decimals in range(0, 7):
        if all(abs(round(t, decimals) - t) < 1e-9 * max(1.0, abs(t)) for t in ticks):
            return f"%.{decimals}f"
    return "%.3g"


def view_caption(level: float) -> str:
    turns = ", ".join(f"View {i + 1} ({x},{y},{z})" for i, (x, y, z) in enumerate(VIEW_TURNS))
    return (f"Isosurface at threshold {level:.4g}. Turns about the X, Y and Z screen axes in "
            f"degrees: {turns}.")


def _surface(vol, level, voxel_size):
    from skimage import measure

    verts, faces, normals, _ = measure.marching_cubes(np.asarray(vol, np.float32), level,
                                                      spacing=(voxel_size,) * 3)
    return verts, faces, normals  # verts in (z, y, x) Å


def _colour_values(color, verts_zyx, voxel_size):
    from scipy import ndimage

    return ndimage.map_coordinates(np.asarray(color, np.float32), (verts_zyx / voxel_size).T,
                                   order=1, mode="nearest")


def _render_window(vtk):
    """An off-screen render window. Without a display (a server) it is made as
    ``vtkEGLRenderWindow`` directly, so VTK never tries (and warns about) an X connection; the
    process environment is not touched (VTK_DEFAULT_OPENGL_WINDOW is only read: a user's
    choice there, or a display, goes through VTK's own ``vtkRenderWindow`` factory)."""
    egl = getattr(vtk, "vtkEGLRenderWindow", None)
    if egl is not None and not os.environ.get("DISPLAY") \
            and not os.environ.get("VTK_DEFAULT_OPENGL_WINDOW"):
        win = egl()
    else:
        win = vtk.vtkRenderWindow()
    win.SetOffScreenRendering(1)
    return win


def _vtk_warnings_hide():
    import vtk

    shown = vtk.vtkObject.GetGlobalWarningDisplay()
    vtk.vtkObject.GlobalWarningDisplayOff()
    return shown


def _vtk_warnings_restore(shown):
    import vtk

    vtk.vtkObject.SetGlobalWarningDisplay(shown)


# VTK's warnings and errors off the user's terminal while we render, VTK's flag restored when
# the last overlapping rendering ends (also after an exception). VTK has no per-object switch
# for this (an observer on our own objects does not see the messages of the test contexts and
# helpers VTK creates inside), so the global flag is set for the duration of the call only.
_vtk_warnings_off = ScopedOverride(_vtk_warnings_hide, _vtk_warnings_restore)


def _render_vtk(verts, faces, normals, values, vmin, vmax, cmap, colorbar_label, centre,
                ticks=None, colorbar=True) -> list:
    import vtk

    with _vtk_warnings_off():
        return _draw_vtk(vtk, verts, faces, normals, values, vmin, vmax, cmap, colorbar_label,
                         centre, ticks, colorbar)


def grab_window(vtk, win):
    """The rendered window as a PIL RGB image (read back from VTK, no file)."""
    from PIL import Image
    from vtk.util import numpy_support as ns

    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(win)
    grab.ReadFrontBufferOff()
    grab.Update()
    out = grab.GetOutput()
    w, h, _ = out.GetDimensions()
    arr = ns.vtk_to_numpy(out.GetPointData().GetScalars())
    arr = arr.reshape(h, w, -1)[::-1, :, :3]  # VTK's rows run bottom-up
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), "RGB")


def surface_polydata(vtk, verts, faces, normals):
    """A marching-cubes surface (verts and normals (z, y, x) Å, triangle faces) as vtkPolyData
    in x, y, z."""
    from vtk.util import numpy_support as ns

    pts = vtk.vtkPoints()
    pts.SetData(ns.numpy_to_vtk(np.ascontiguousarray(verts[:, ::-1]), deep=True))  # x, y, z
    offsets = np.arange(0, 3 * len(faces) + 1, 3, dtype=np.int64)
    polys = vtk.vtkCellArray()
    polys.SetData(ns.numpy_to_vtkIdTypeArray(offsets, deep=True),
                  ns.numpy_to_vtkIdTypeArray(faces.astype(np.int64).ravel(), deep=True))
    poly = vtk.vtkPolyData()
    poly.SetPoints(pts)
    poly.SetPolys(polys)
    poly.GetPointData().SetNormals(
        ns.numpy_to_vtk(np.ascontiguousarray(normals[:, ::-1], dtype=np.float32), deep=True))
    return poly


def _draw_vtk(vtk, verts, faces, normals, values, vmin, vmax, cmap, colorbar_label, centre,
              ticks, colorbar) -> list:
    from matplotlib import colormaps
    from vtk.util import numpy_support as ns

    poly = surface_polydata(vtk, verts, faces, normals)
    mapper = vtk.vtkPolyDataMapper()
    mapper.SetInputData(poly)
    ren = vtk.vtkRenderer()
    ren.SetBackground(1, 1, 1)
    if values is not None:
        poly.GetPointData().SetScalars(ns.numpy_to_vtk(values.astype(np.float32), deep=True))
        lut = vtk.vtkLookupTable()
        lut.SetNumberOfTableValues(256)
        cm = colormaps[cmap]
        for i in range(256):
            r, g, b, _ = cm(i / 255.0)
            lut.SetTableValue(i, r, g, b, 1.0)
        lut.SetRange(vmin, vmax)
        lut.Build()
        mapper.SetLookupTable(lut)
        mapper.SetScalarRange(vmin, vmax)
        mapper.ScalarVisibilityOn()
        bar = vtk.vtkScalarBarActor()
        bar.SetLookupTable(lut)
        bar.SetTitle(colorbar_label or "")
        ticks = list(ticks) if ticks is not None else nice_ticks(vmin, vmax)
        labels = vtk.vtkDoubleArray()
        for t in ticks:
            labels.InsertNextValue(float(t))
        bar.SetUseCustomLabels(True)
        bar.SetCustomLabels(labels)
        bar.SetLabelFormat(_tick_format(ticks))
        bar.UnconstrainedFontSizeOn()
        bar.SetPosition(0.79, 0.08)
        bar.SetWidth(0.17)
        bar.SetHeight(0.84)
        bar.SetBarRatio(0.28)
        bar.SetVerticalTitleSeparation(12)
        for prop in (bar.GetTitleTextProperty(), bar.GetLabelTextProperty()):
            prop.SetColor(0, 0, 0)
            prop.ItalicOff()
            prop.ShadowOff()
            prop.BoldOff()
            prop.SetFontSize(BAR_FONT_PX)
        bar.VisibilityOff()  # shown on the last view only
        if colorbar:
            ren.AddViewProp(bar)
    else:
        mapper.ScalarVisibilityOff()
    actor = vtk.vtkActor()
    actor.SetMapper(mapper)
    if values is None:
        actor.GetProperty().SetColor(0.70, 0.75, 0.85)
    ren.AddActor(actor)
    win = _render_window(vtk)
    win.AddRenderer(ren)
    win.SetSize(*(WINDOW_WITH_BAR if values is not None and colorbar else WINDOW))
    cx, cy, cz = centre
    images = []
    for i, (tx, ty, tz) in enumerate(VIEW_TURNS):
        if values is not None:
            bar.SetVisibility(i == len(VIEW_TURNS) - 1)
        tr = vtk.vtkTransform()
        tr.PostMultiply()
        tr.Translate(-cx, -cy, -cz)
        tr.RotateX(tx)
        tr.RotateY(ty)
        tr.RotateZ(tz)
        tr.Translate(cx, cy, cz)
        actor.SetUserTransform(tr)
        ren.ResetCamera()
        ren.GetActiveCamera().Zoom(1.25)
        win.Render()
        images.append(grab_window(vtk, win))
    win.Finalize()
    return images


def _render_mpl(verts, faces, values, vmin, vmax, cmap, colorbar_label, centre,
                ticks=None, colorbar=True) -> list:
    import matplotlib.cm
    import matplotlib.colors
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    from PIL import Image
    from scipy.spatial.transform import Rotation

    from cryovalid.figures.common import new_figure

    xyz = verts[:, ::-1] - np.asarray(centre)
    images = []
    for i, (tx, ty, tz) in enumerate(VIEW_TURNS):
        rot = Rotation.from_euler("xyz", [tx, ty, tz], degrees=True)
        p = rot.apply(xyz)
        fig = new_figure(figsize=(WINDOW[0] / 100, WINDOW[1] / 100))
        ax = fig.add_subplot(projection="3d")
        tri = p[faces]
        coll = Poly3DCollection(tri, linewidth=0)
        if values is not None:
            fv = values[faces].mean(axis=1)
            norm = matplotlib.colors.Normalize(vmin, vmax)
            coll.set_facecolor(matplotlib.colormaps[cmap](norm(fv)))
            if colorbar and i == len(VIEW_TURNS) - 1:
                sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
                bar = fig.colorbar(sm, ax=ax, shrink=0.6,
                                   ticks=list(ticks) if ticks is not None
                                   else nice_ticks(vmin, vmax))
                bar.set_label(colorbar_label or "", fontsize=BAR_FONT_PX * 0.72)
                bar.ax.tick_params(labelsize=BAR_FONT_PX * 0.72)
        else:
            coll.set_facecolor((0.70, 0.75, 0.85))
        ax.add_collection3d(coll)
        lim = np.abs(p).max()
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_zlim(-lim, lim)
        ax.view_init(elev=90, azim=-90)
        ax.set_axis_off()
        fig.canvas.draw()
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy(),
                                      "RGB"))
    return images


def render_views(vol, voxel_size, level, color=None, vmin=None, vmax=None,
                 cmap="jet", colorbar_label=None, ticks=None, colorbar=True) -> list:
    """Render the isosurface of ``vol`` at ``level`` in the reference's three views.

    Parameters
    ----------
    vol : (z, y, x) array; voxel_size in Å; level: density threshold
    color : optional (z, y, x) volume on the same grid; the surface is coloured by its values
        (trilinear at each vertex) over [vmin, vmax] with ``cmap`` and a colour bar.
    ticks : the colour bar's tick values; default ``nice_ticks(vmin, vmax)`` (round numbers).
    colorbar : False draws no colour bar (for a caller that adds its own to the montage).

    Returns the three views as PIL RGB images (nothing is written). Raises ValueError if the
    level gives no surface.
    """
    vol = np.asarray(vol, dtype=np.float32)
    if not (vol.min() < level < vol.max()):
        raise ValueError(f"no isosurface at level {level:g} (map range {vol.min():g} to "
                         f"{vol.max():g})")
    verts, faces, normals = _surface(vol, level, voxel_size)
    values = None
    if color is not None:
        values = _colour_values(color, verts, voxel_size)
        if vmin is None or vmax is None:
            vmin, vmax = float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))
        if vmax <= vmin:
            vmax = vmin + 1e-6
    centre = tuple((np.array(vol.shape[::-1]) - 1) * voxel_size / 2)
    if os.environ.get("CRYOVALID_NO_VTK"):
        return _render_mpl(verts, faces, values, vmin, vmax, cmap, colorbar_label, centre, ticks,
                           colorbar)
    try:
        return _render_vtk(verts, faces, normals, values, vmin, vmax, cmap, colorbar_label,
                           centre, ticks, colorbar)
    except Exception:  # noqa: BLE001 - no OpenGL at all: draw the same surface with matplotlib
        return _render_mpl(verts, faces, values, vmin, vmax, cmap, colorbar_label, centre, ticks,
                           colorbar)


def montage(views, crop=True, width_in=PRINT_WIDTH_IN) -> bytes:
    """Join images (PIL) side by side (white margins cropped) into one PNG whose saved dpi
    makes it ``width_in`` inches wide on paper; returns the PNG bytes."""
    import io

    from PIL import Image, ImageChops

    images = []
    for im in views:
        im = im.convert("RGB")
        if crop:
            bbox = ImageChops.difference(im, Image.new("RGB", im.size, "white")).getbbox()
            if bbox:
                pad = 10
                im = im.crop((max(bbox[0] - pad, 0), max(bbox[1] - pad, 0),
                              min(bbox[2] + pad, im.width), min(bbox[3] + pad, im.height)))
        images.append(im)
    height = max(im.height for im in images)
    scaled = [im.resize((max(1, round(im.width * height / im.height)), height)) for im in images]
    out = Image.new("RGB", (sum(im.width for im in scaled) + 20 * (len(scaled) - 1), height),
                    "white")
    x = 0
    for im in scaled:
        out.paste(im, (x, 0))
        x += im.width + 20
    dpi = out.width / float(width_in)
    buf = io.BytesIO()
    out.save(buf, format="png", dpi=(dpi, dpi))
    return buf.getvalue()
