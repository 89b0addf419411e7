"""Off-screen isosurface views with VTK (no display needed), optionally coloured by a volume.

The reference renders three ChimeraX views with turns (x, y, z) = (0, -90, -90), (-90, 0, -90)
and (0, 0, 0) degrees. We apply the same turns to the surface, about the box centre, and look
down -z with x to the right and y up (ChimeraX's default camera). If VTK cannot render (no
OpenGL/EGL at all), a matplotlib rendering of the same marching-cubes surface is used instead.
"""
from __future__ import annotations

import os

import numpy as np

VIEW_TURNS = ((0, -90, -90), (-90, 0, -90), (0, 0, 0))
WINDOW = (900, 650)


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


def _quiet_vtk(vtk):
    """No display on a server: go straight to EGL and keep VTK's log off the user's terminal."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    vtk.vtkObject.GlobalWarningDisplayOff()
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_OFF)


def _render_vtk(verts, faces, normals, values, vmin, vmax, cmap, colorbar_label, centre, paths):
    import vtk
    from matplotlib import colormaps
    from vtk.util import numpy_support as ns

    _quiet_vtk(vtk)
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
        bar.SetNumberOfLabels(5)
        bar.SetMaximumWidthInPixels(80)
        bar.SetMaximumHeightInPixels(420)
        bar.SetLabelFormat("%.3g")
        for prop in (bar.GetTitleTextProperty(), bar.GetLabelTextProperty()):
            prop.SetColor(0, 0, 0)
            prop.ItalicOff()
            prop.ShadowOff()
        ren.AddViewProp(bar)
    else:
        mapper.ScalarVisibilityOff()
    actor = vtk.vtkActor()
    actor.SetMapper(mapper)
    if values is None:
        actor.GetProperty().SetColor(0.70, 0.75, 0.85)
    ren.AddActor(actor)
    win = vtk.vtkRenderWindow()
    win.SetOffScreenRendering(1)
    win.AddRenderer(ren)
    win.SetSize(*WINDOW)
    cx, cy, cz = centre
    for (tx, ty, tz), path in zip(VIEW_TURNS, paths):
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
        grab = vtk.vtkWindowToImageFilter()
        grab.SetInput(win)
        grab.ReadFrontBufferOff()
        grab.Update()
        writer = vtk.vtkPNGWriter()
        writer.SetFileName(path)
        writer.SetInputConnection(grab.GetOutputPort())
        writer.Write()
    win.Finalize()


def _render_mpl(verts, faces, values, vmin, vmax, cmap, colorbar_label, centre, paths):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection
    from scipy.spatial.transform import Rotation

    xyz = verts[:, ::-1] - np.asarray(centre)
    for (tx, ty, tz), path in zip(VIEW_TURNS, paths):
        rot = Rotation.from_euler("xyz", [tx, ty, tz], degrees=True)
        p = rot.apply(xyz)
        fig = plt.figure(figsize=(WINDOW[0] / 100, WINDOW[1] / 100))
        ax = fig.add_subplot(projection="3d")
        tri = p[faces]
        coll = Poly3DCollection(tri, linewidth=0)
        if values is not None:
            fv = values[faces].mean(axis=1)
            norm = matplotlib.colors.Normalize(vmin, vmax)
            coll.set_facecolor(matplotlib.colormaps[cmap](norm(fv)))
            sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
            fig.colorbar(sm, ax=ax, shrink=0.6, label=colorbar_label or "")
        else:
            coll.set_facecolor((0.70, 0.75, 0.85))
        ax.add_collection3d(coll)
        lim = np.abs(p).max()
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_zlim(-lim, lim)
        ax.view_init(elev=90, azim=-90)
        ax.set_axis_off()
        fig.savefig(path, dpi=100)
        plt.close(fig)


def render_views(vol, voxel_size, level, path_prefix, color=None, vmin=None, vmax=None,
                 cmap="jet", colorbar_label=None) -> list:
    """Render the isosurface of ``vol`` at ``level`` in the reference's three views.

    Parameters
    ----------
    vol : (z, y, x) array; voxel_size in Å; level: density threshold
    path_prefix : files are written as ``<prefix>_view1.png`` … ``_view3.png``
    color : optional (z, y, x) volume on the same grid; the surface is coloured by its values
        (trilinear at each vertex) over [vmin, vmax] with ``cmap`` and a colour bar.

    Returns the list of PNG paths. Raises ValueError if the level gives no surface.
    """
    vol = np.asarray(vol, dtype=np.float32)
    if not (vol.min() < level < vol.max()):
        raise ValueError(f"no isosurface at level {level:g} (map range {vol.min():g} to "
                         f"{vol.max():g})")
    os.makedirs(os.path.dirname(os.path.abspath(path_prefix)), exist_ok=True)
    verts, faces, normals = _surface(vol, level, voxel_size)
    values = None
    if color is not None:
        values = _colour_values(color, verts, voxel_size)
        if vmin is None or vmax is None:
            vmin, vmax = float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))
        if vmax <= vmin:
            vmax = vmin + 1e-6
    centre = tuple((np.array(vol.shape[::-1]) - 1) * voxel_size / 2)
    paths = [f"{path_prefix}_view{i + 1}.png" for i in range(3)]
    if os.environ.get("CRYOVALID_NO_VTK"):
        _render_mpl(verts, faces, values, vmin, vmax, cmap, colorbar_label, centre, paths)
        return paths
    try:
        _render_vtk(verts, faces, normals, values, vmin, vmax, cmap, colorbar_label, centre,
                    paths)
    except Exception:  # noqa: BLE001 - no OpenGL at all: draw the same surface with matplotlib
        _render_mpl(verts, faces, values, vmin, vmax, cmap, colorbar_label, centre, paths)
    return paths


def montage(paths, out_path, crop=True) -> str:
    """Join PNG images side by side (white margins cropped) into one PNG; returns out_path."""
    from PIL import Image, ImageChops

    images = []
    for p in paths:
        im = Image.open(p).convert("RGB")
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
    out.save(out_path)
    return out_path
