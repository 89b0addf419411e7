"""Figures of 1.d (ResMap local resolution): the histogram of the local resolutions inside the
mask and the surface views coloured by them (jet over [P2.5, P97.5]) with their ChimeraX
script, drawn by :func:`cryovalid.figures.localmaps._draw` from ``res.data``."""
from __future__ import annotations

from cryovalid.figures.common import Drawing
from cryovalid.figures.localmaps import _draw


def draw_resmap(res, ctx) -> Drawing:
    return _draw(res, ctx, "local_resolution_resmap", "Local resolution (Å)", "Resolution (Å)",
                 "local resolution according to ResMap (Å)", marker=ctx.resolution,
                 marker_label="reported resolution")


DRAWS = {"1.d": draw_resmap}
