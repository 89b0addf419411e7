"""Orthogonal slices and projections of a volume, as 1x3 grey-scale panels.

Layout as the reference: X slice V[:, :, i] (rows z, columns y), Y slice V[:, j, :] (rows z,
columns x; the reference rotates it by 90°, we keep z vertical in every panel so the three read
alike), Z slice V[k, :, :] (rows y, columns x). Row 0 is drawn at the bottom (origin lower-left).
A constant image is drawn mid-grey instead of the reference's NaN garbage.
"""
from __future__ import annotations

import numpy as np

from cryovalid.figures.common import png, subplots


def max_variance_indices(vol: np.ndarray):
    """(iz, iy, ix): for each axis, the index of the 2-D slice with the largest population
    variance (first index wins ties, as numpy.argmax)."""
    v = np.asarray(vol, dtype=np.float32)
    out = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        out.append(int(np.argmax(v.var(axis=others, dtype=np.float64))))
    return tuple(out)


def central_indices(vol: np.ndarray):
    return tuple(int(n // 2) for n in vol.shape)


def _panel(ax, img, title, cmap):
    img = np.asarray(img, dtype=np.float32)
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    ax.imshow(img, origin="lower", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_title(title, fontsize=8.5)
    ax.set_xticks([])
    ax.set_yticks([])


def _three_panels(images, titles, cmap="gray", suptitle=None) -> bytes:
    # printed at this size (12.7 cm wide): 8.5 pt titles (see figures/common.py)
    fig, axes = subplots(1, 3, figsize=(5.0, 1.88 if not suptitle else 2.15))
    for ax, img, t in zip(axes, images, titles):
        _panel(ax, img, t, cmap)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout(pad=0.4, w_pad=0.6)
    return png(fig)


def orthogonal_slices(vol: np.ndarray, indices, cmap="gray", suptitle=None) -> bytes:
    """The X, Y and Z slices at ``indices`` = (iz, iy, ix) as one PNG (bytes)."""
    iz, iy, ix = indices
    images = [vol[:, :, ix], vol[:, iy, :], vol[iz, :, :]]
    titles = [f"X slice {ix}", f"Y slice {iy}", f"Z slice {iz}"]
    return _three_panels(images, titles, cmap, suptitle)


def projections(vol: np.ndarray, cmap="gray") -> bytes:
    """The sums along X, Y and Z as one PNG (bytes)."""
    v = np.asarray(vol, dtype=np.float32)
    images = [v.sum(axis=2), v.sum(axis=1), v.sum(axis=0)]
    titles = ["Projection along X", "Projection along Y", "Projection along Z"]
    return _three_panels(images, titles, cmap)
