"""Figures of the Input data section and of items 0.b–0.d. They draw what the checks computed."""
from __future__ import annotations


import numpy as np

from cryovalid.figures import isosurface, slices
from cryovalid.figures.common import DPI, figure_path, relative, subplots
from cryovalid.results import Figure
from cryovalid.kernels import masks


def draw_input_data(ctx) -> list:
    """Figures of the Input data section (the reference's six figures)."""
    vol = ctx.map.data
    figs = []
    p = slices.orthogonal_slices(vol, slices.central_indices(vol), figure_path(ctx, "input_central.png"))
    figs.append(Figure(relative(ctx, p), "Central slices of the input map along X, Y and Z. Outside "
                       "the molecule there should be featureless noise: no stripes, blobs or "
                       "extreme values."))
    p = slices.orthogonal_slices(vol, slices.max_variance_indices(vol),
                                 figure_path(ctx, "input_maxvar.png"))
    figs.append(Figure(relative(ctx, p), "Slices of maximum variance of the input map along X, Y "
                       "and Z."))
    p = slices.projections(vol, figure_path(ctx, "input_projections.png"))
    figs.append(Figure(relative(ctx, p), "Sum projections of the input map along X, Y and Z. "
                       "Stripes suggest preferred orientations or angular attraction; a dark halo "
                       "around or inside the molecule suggests a CTF or reconstruction problem."))
    try:
        paths = isosurface.render_views(vol, ctx.voxel_size, ctx.threshold,
                                        figure_path(ctx, "input_isosurface"))
        p = isosurface.montage(paths, figure_path(ctx, "input_isosurface.png"))
        figs.append(Figure(relative(ctx, p), isosurface.view_caption(ctx.threshold) +
                           " There should be few noise blobs or artefacts around the molecule."))
    except ValueError as exc:
        figs.append(Figure("", f"No isosurface could be drawn: {exc}."))
    hard = ctx.hard_mask.astype(np.float32)
    p = slices.orthogonal_slices(hard, slices.max_variance_indices(hard),
                                 figure_path(ctx, "mask_hard_maxvar.png"))
    figs.append(Figure(relative(ctx, p), "Slices of maximum variance of the hard mask: the map "
                       f"thresholded at {ctx.threshold:.4g}, largest connected component kept, "
                       f"dilated by {masks.DILATION_A:g} Å."))
    soft = ctx.soft_mask
    p = slices.orthogonal_slices(soft, slices.max_variance_indices(soft),
                                 figure_path(ctx, "mask_soft_maxvar.png"))
    figs.append(Figure(relative(ctx, p), "Slices of maximum variance of the soft mask: the hard mask "
                       f"smoothed by a Gaussian of σ = {masks.SOFT_SIGMA_VOXELS:.2f} voxels."))
    return figs


def draw_mask(res, ctx):
    raw = ctx.raw_mask.astype(np.float32)
    p = slices.orthogonal_slices(raw, slices.max_variance_indices(raw),
                                 figure_path(ctx, "mask_raw_maxvar.png"))
    res.figures.append(Figure(relative(ctx, p), "Slices of maximum variance of the raw mask (map at "
                              "or above the threshold)."))
    if "mass_curve" in res.data:
        thr, counts = res.data["mass_curve"]
        fig, ax = subplots(figsize=(4.6, 2.7))
        ok = counts > 0
        ax.semilogy(thr[ok], counts[ok], "o-", color="#2596be")
        ax.axvline(ctx.threshold, color="#b03030", ls="--", label="threshold")
        ax.set_xlabel("Threshold (grey level)")
        ax.set_ylabel("Voxels above the threshold")
        ax.grid(True, which="both", alpha=0.4)
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = figure_path(ctx, "mask_mass_curve.png")
        fig.savefig(p, dpi=DPI)
        res.figures.append(Figure(relative(ctx, p), "Voxel mass as a function of the threshold "
                                  "(logarithmic scale)."))


def draw_background(res, ctx):
    out = res.data.get("outliers")
    if out is None:
        return
    p = slices.orthogonal_slices(out, slices.max_variance_indices(out),
                                 figure_path(ctx, "background_outliers.png"))
    res.figures.append(Figure(relative(ctx, p), "Slices of maximum variance of the background voxels "
                              "beyond 5σ (zero elsewhere)."))


def draw_bfactor(res, ctx):
    d = res.data
    if "s2" not in d:
        return
    fig, ax = subplots(figsize=(5.0, 2.9))
    ax.plot(d["s2"], d["lnf"], color="#333333", label="Map")
    sel = d["selection"]
    xs = d["s2"][sel]
    ax.plot(xs, d["slope"] * xs + d["intercept"], color="#b03030", lw=2,
            label=f"Fit (B = {res.metrics['bfactor_A2']:.0f} Å²)")
    ax.plot(d["s2"], d["corrected_lnf"], color="#2596be", alpha=0.8, label="Corrected")
    ax.axvspan(xs.min(), xs.max(), color="#f3d9a4", alpha=0.35, label="Fit window")
    ax.set_xlabel("1/d² (1/Å²)")
    ax.set_ylabel("ln mean |F|")
    ax.grid(True, alpha=0.4)
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = figure_path(ctx, "bfactor_guinier.png")
    fig.savefig(p, dpi=DPI)
    res.figures.append(Figure(relative(ctx, p), "Guinier plot: log of the mean Fourier amplitude per "
                              "shell against 1/d², the fitted line and the corrected curve."))
    cm = d["corrected_map"]
    p = slices.orthogonal_slices(cm, slices.max_variance_indices(cm),
                                 figure_path(ctx, "bfactor_corrected_maxvar.png"))
    res.figures.append(Figure(relative(ctx, p), "Slices of maximum variance of the B-factor "
                              "corrected map (written to maps/bfactor_corrected.mrc)."))


DRAWS = {"0.b": draw_mask, "0.c": draw_background, "0.d": draw_bfactor}  # item ID -> figure
