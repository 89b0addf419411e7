"""The "Half maps" section: maximum-variance orthogonal slices of half 1, half 2 and of their
difference (which should show no structure, except sometimes patterns from symmetry)."""
from __future__ import annotations

from cryovalid.figures.common import Drawing
from cryovalid.figures.slices import max_variance_indices, orthogonal_slices


def draw_half_maps(ctx) -> Drawing:
    """Three figures of orthogonal slices, each axis at its slice of maximum variance (an empty
    drawing without half maps)."""
    out = Drawing()
    if not ctx.half_maps:
        return out
    h1, h2 = ctx.half_maps
    diff = h1.data - h2.data
    for name, vol, caption in (
            ("half1_slices.png", h1.data,
             "Half map 1: orthogonal slices at the slice of maximum variance of each axis."),
            ("half2_slices.png", h2.data,
             "Half map 2: orthogonal slices at the slice of maximum variance of each axis."),
            ("half_difference_slices.png", diff,
             "Difference half 1 − half 2: orthogonal slices at the slice of maximum variance of "
             "each axis. It should show no structure; symmetric maps sometimes show patterns.")):
        out.add(name, orthogonal_slices(vol, max_variance_indices(vol)), caption)
    return out
