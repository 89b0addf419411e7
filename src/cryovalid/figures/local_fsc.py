"""Figures of 1.c (local FSC resolution) and A.b (FSC-Q): a histogram of the values inside the
mask, three surface views coloured by the local volume and a ChimeraX script
(:func:`cryovalid.figures.localmaps._draw`)."""
from __future__ import annotations

from cryovalid.figures.common import Drawing
from cryovalid.figures.localmaps import _draw


def draw_local_fsc(res, ctx) -> Drawing:
    return _draw(res, ctx, "local_resolution_fsc", "Local resolution, local FSC 0.5 (Å)",
                 "Resolution (Å)", "local resolution from the local FSC (Å)",
                 marker=ctx.resolution, marker_label="reported resolution")


def draw_fscq(res, ctx) -> Drawing:
    return _draw(res, ctx, "fscqr", "FSC-Qr (voxels of the atom mask)", "FSC-Qr", "FSC-Qr")


DRAWS = {"1.c": draw_local_fsc, "A.b": draw_fscq}
