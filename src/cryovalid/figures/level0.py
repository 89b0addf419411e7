"""Figures of the Input data section and of items 0.b–0.d. They draw what the checks computed."""
from __future__ import annotations


import numpy as np

from cryovalid.figures import isosurface, slices
from cryovalid.figures.common import Drawing, png, subplots
from cryovalid.kernels import masks


def draw_input_data(ctx) -> Drawing:
    """Figures of the Input data section (the reference's six figures)."""
    vol = ctx.map.data
    out = Drawing()
    out.add("input_central.png", slices.orthogonal_slices(vol, slices.central_indices(vol)),
            "Central slices of the input map along X, Y and Z. Outside the molecule there should "
            "be featureless noise: no stripes, blobs or extreme values.")
    out.add("input_maxvar.png", slices.orthogonal_slices(vol, slices.max_variance_indices(vol)),
            "Slices of maximum variance of the input map along X, Y and Z.")
    out.add("input_projections.png", slices.projections(vol),
            "Sum projections of the input map along X, Y and Z. Stripes suggest preferred "
            "orientations or angular attraction; a dark halo around or inside the molecule "
            "suggests a CTF or reconstruction problem.")
    try:
        views = isosurface.render_views(vol, ctx.map.voxel_size, ctx.map.threshold)
        out.add("input_isosurface.png", isosurface.montage(views),
                isosurface.view_caption(ctx.map.threshold) +
                " There should be few noise blobs or artefacts around the molecule.")
    except ValueError as exc:
        out.missing(f"No isosurface could be drawn: {exc}.")
    hard = ctx.map.hard_mask.astype(np.float32)
    out.add("mask_hard_maxvar.png",
            slices.orthogonal_slices(hard, slices.max_variance_indices(hard)),
            f"Slices of maximum variance of the hard mask: the map thresholded at "
            f"{ctx.map.threshold:.4g}, largest connected component kept, dilated by "
            f"{masks.DILATION_A:g} Å.")
    soft = ctx.map.soft_mask
    out.add("mask_soft_maxvar.png",
            slices.orthogonal_slices(soft, slices.max_variance_indices(soft)),
            f"Slices of maximum variance of the soft mask: the hard mask smoothed by a Gaussian "
            f"of σ = {masks.SOFT_SIGMA_VOXELS:.2f} voxels.")
    return out


def draw_mask(res, ctx) -> Drawing:
    out = Drawing()
    raw = ctx.map.raw_mask.astype(np.float32)
    out.add("mask_raw_maxvar.png", slices.orthogonal_slices(raw, slices.max_variance_indices(raw)),
            "Slices of maximum variance of the raw mask (map at or above the threshold).")
    if "mass_curve" in res.data:
        thr, counts = res.data["mass_curve"]
        fig, ax = subplots(figsize=(4.6, 2.7))
        ok = counts > 0
        ax.semilogy(thr[ok], counts[ok], "o-", color="#2596be")
        ax.axvline(ctx.map.threshold, color="#b03030", ls="--", label="threshold")
        ax.set_xlabel("Threshold (grey level)")
        ax.set_ylabel("Voxels above the threshold")
        ax.grid(True, which="both", alpha=0.4)
        ax.legend(fontsize=8)
        fig.tight_layout()
        out.add("mask_mass_curve.png", png(fig),
                "Voxel mass as a function of the threshold (logarithmic scale).")
    return out


def draw_background(res, ctx) -> Drawing:
    out = Drawing()
    bg = res.data.get("outliers")
    if bg is not None:
        out.add("background_outliers.png",
                slices.orthogonal_slices(bg, slices.max_variance_indices(bg)),
                "Slices of maximum variance of the background voxels beyond 5σ (zero "
                "elsewhere).")
    return out


def draw_bfactor(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "s2" not in d:
        return out
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
    out.add("bfactor_guinier.png", png(fig),
            "Guinier plot: log of the mean Fourier amplitude per shell against 1/d², the fitted "
            "line and the corrected curve.")
    cm = d["corrected_map"]
    out.add("bfactor_corrected_maxvar.png",
            slices.orthogonal_slices(cm, slices.max_variance_indices(cm)),
            "Slices of maximum variance of the B-factor corrected map (written to "
            "maps/bfactor_corrected.mrc).")
    return out


DRAWS = {"0.b": draw_mask, "0.c": draw_background, "0.d": draw_bfactor}  # item ID -> figure
