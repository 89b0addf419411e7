"""The "Half maps" section: maximum-variance orthogonal slices of half 1, half 2 and of their
difference (which should show no structure, except sometimes patterns from symmetry)."""
from __future__ import annotations

import os

from cryovalid.results import Figure


def draw_half_maps(ctx) -> list:
    """Three figures of orthogonal slices, each axis at its slice of maximum variance.

    Uses ``cryovalid.figures.slices`` (max_variance_indices, orthogonal_slices). Returns the
    list of Figure objects (paths relative to the report directory); [] without half maps.
    """
    from cryovalid.figures.slices import max_variance_indices, orthogonal_slices

    if not ctx.half_maps:
        return []
    h1, h2 = ctx.half_maps
    os.makedirs(ctx.figure_dir, exist_ok=True)
    figures = []
    diff = h1.data - h2.data
    for name, vol, caption in (
            ("half1_slices.png", h1.data,
             "Half map 1: orthogonal slices at the slice of maximum variance of each axis."),
            ("half2_slices.png", h2.data,
             "Half map 2: orthogonal slices at the slice of maximum variance of each axis."),
            ("half_difference_slices.png", diff,
             "Difference half 1 − half 2: orthogonal slices at the slice of maximum variance of "
             "each axis. It should show no structure; symmetric maps sometimes show patterns.")):
        path = os.path.join(ctx.figure_dir, name)
        orthogonal_slices(vol, max_variance_indices(vol), path)
        figures.append(Figure(os.path.relpath(path, ctx.out_dir), caption))
    return figures
