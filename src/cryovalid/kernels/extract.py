"""Cutting particle boxes out of a micrograph (the reference's extraction step before
e2tiltvalidate, vrs_level1_A_O_W.md §3 O.c: Scipion ``ProtExtractParticlesPairs``, the same box
on both micrographs of a pair, contrast inverted).

Convention: a coordinate (x, y) is in micrograph pixels (x along the columns, y along the rows,
pixel centres at integers, RELION's ``rlnCoordinateX/Y``); its box of ``box`` px is centred so
that pixel ``box//2`` of the box (the FFT centre every other kernel uses, kernels/resample2d.py)
is the micrograph pixel nearest (x, y). The fraction of a pixel is not interpolated (at most half
a pixel of shift, absorbed by the matching's shift search). Units: pixels.
"""
from __future__ import annotations

import numpy as np


def corners(xy: np.ndarray, box: int) -> np.ndarray:
    """(k, 2) int64 (column, row) of the first pixel of each box centred on ``xy`` (k, 2)."""
    return np.rint(np.asarray(xy, dtype=np.float64)).astype(np.int64) - box // 2


def inside(xy: np.ndarray, shape, box: int) -> np.ndarray:
    """(k,) bool: whether the box about each (x, y) lies wholly on a micrograph of ``shape``
    (ny, nx); for per-coordinate shapes pass ``shape`` as (k, 2)."""
    c = corners(xy, box)
    sh = np.asarray(shape, dtype=np.int64)
    ny, nx = (sh[..., 0], sh[..., 1])
    ok = np.isfinite(np.asarray(xy, dtype=np.float64)).all(axis=1)
    return ok & (c[:, 0] >= 0) & (c[:, 1] >= 0) & (c[:, 0] + box <= nx) & (c[:, 1] + box <= ny)


def extract(image: np.ndarray, xy: np.ndarray, box: int, invert: bool = True) -> np.ndarray:
    """(k, box, box) float32: the boxes about ``xy`` (k, 2) cut from ``image`` (ny, nx) in one
    fancy-indexing read of a sliding-window view (no loop), contrast inverted when ``invert``
    (micrographs show protein dark), each normalised to zero mean and unit standard deviation
    (a constant box stays constant: zero). Every box must lie inside (:func:`inside`)."""
    from numpy.lib.stride_tricks import sliding_window_view

    c = corners(xy, box)
    win = sliding_window_view(np.asarray(image, dtype=np.float32), (box, box))
    out = np.array(win[c[:, 1], c[:, 0]], dtype=np.float32)
    if invert:
        np.negative(out, out=out)
    out -= out.mean(axis=(1, 2), keepdims=True)
    sd = out.std(axis=(1, 2), keepdims=True)
    out /= np.where(sd > 0, sd, 1.0)
    return out
