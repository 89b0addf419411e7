"""0.b Mask analysis: is the threshold sensible?

The raw mask is V >= T; its 26-connected components are counted and ranked. Three checks:
how many of the largest components hold 95 % of the thresholded mass; what fraction of that mass
lies outside the largest component (the reference's explanation says noise blobs should not
exceed 10 % of it, but its code tests Ts³ > 5 instead; we check the stated 10 %); and the overlap
between the raw mask and the constructed (largest component, dilated) mask.

Also the threshold–mass table: thresholds k·max/25 for k = 1..24, voxels with V > g, and the
molecular mass they imply at 1.207 Å³ per Dalton and 110 Da per residue.
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.items.base import Fact, Table, new_result
from cryovalid.kernels import masks

ID = "0.b"
LEVEL = "0"
REQUIRES = ()  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "Mask analysis"
SECTION = "Level 0 analysis"
MAX_COMPONENTS_95 = masks.MAX_COMPONENTS_95  # shared with the automatic threshold's check
MAX_OUTSIDE_FRACTION = masks.MAX_OUTSIDE_FRACTION
MIN_OVERLAP = 0.75
A3_PER_DALTON = 1.207
DALTON_PER_RESIDUE = 110.0
N_TABLE_STEPS = 25

# warning sentences (ItemResult.warn fills them from the measured values and the limits above)
WARN_FRAGMENTED = ("{n95} connected components are needed to hold 95% of the mass at this "
                   "threshold (more than {limit}): the map may be fragmented at this level; a "
                   "lower threshold may join them.")
WARN_OUTSIDE = ("{outside:.1%} of the thresholded mass lies outside the largest component (more "
                "than {limit:.0%}): the threshold may let noise or artefacts through.")
WARN_OVERLAP = ("Only {overlap:.2f} of the raw mask lies inside the constructed mask (less than "
                "{limit:g}); the threshold probably leaves too many disconnected pieces.")

EXPLANATION = (
    "A good visualisation threshold shows the molecule as one connected body with little noise "
    "around it. We threshold the map at the given level, label the connected pieces "
    "(26-connectivity) and ask how many of the largest pieces are needed to hold 95% of the "
    "thresholded mass, and how much of that mass lies in small blobs outside the main body. "
    "We also compare the raw thresholded region with the mask used by the other analyses "
    f"(largest piece, dilated by {masks.DILATION_A:g} Å). The table shows how the enclosed "
    "mass changes with the threshold, converted to molecular mass with a protein density of 1/1.207 Da/Å³ and "
    "110 Da per residue.")

CRITERIA = (
    f"OK if 1) at most {MAX_COMPONENTS_95} connected components hold 95% of the thresholded "
    f"mass; 2) at most {MAX_OUTSIDE_FRACTION:.0%} of the thresholded mass lies outside the largest "
    f"component; and 3) the overlap between the raw mask and the constructed mask (fraction of "
    f"the raw mask inside it) is at least {MIN_OVERLAP:g}.")


def threshold_mass_table(vol, voxel_size):
    """(thresholds, voxel counts V > g) for g = k·max/25, k = 1..24; empty if max <= 0."""
    vmax = float(vol.max())
    if vmax <= 0:
        return np.array([]), np.array([], dtype=np.int64)
    thresholds = vmax * np.arange(1, N_TABLE_STEPS) / N_TABLE_STEPS
    # one sort instead of 24 passes over the volume
    flat = np.sort(vol, axis=None)
    counts = flat.size - np.searchsorted(flat, thresholds, side="right")
    return thresholds, counts.astype(np.int64)


def run(ctx):
    res = new_result(sys.modules[__name__])
    ts3 = ctx.map.voxel_size ** 3
    raw = ctx.map.raw_mask
    st = masks.component_stats(raw)
    if st is None:
        raise ValueError("no voxel reaches the threshold; lower it")
    n_raw = int(raw.sum())
    comp = st["sizes"]
    n_comp, n95, outside = st["n_components"], st["n_components_95"], \
        st["outside_largest_fraction"]
    cum = np.cumsum(comp) / n_raw
    hard = ctx.map.hard_mask
    overlap = float(np.logical_and(hard, raw).sum() / n_raw)
    remaining = comp[n95:]

    res.metrics.update(n_components=n_comp, n_components_95=n95,
                       outside_largest_fraction=round(float(outside), 6),
                       mask_overlap=round(overlap, 6))
    res.facts += [
        Fact("Threshold", ctx.map.threshold, "", "{:.5g}"),
        Fact("Voxels at or above the threshold", n_raw, "voxels", "{:d}"),
        Fact("Volume at or above the threshold", n_raw * ts3, "Å³", "{:.0f}"),
        Fact("Connected components (26-connectivity)", n_comp, "", "{:d}"),
        Fact("Components needed for 95% of the mass", n95, "", "{:d}"),
        Fact("Mass outside the largest component", 100 * outside, "%", "{:.2f}"),
    ]
    if remaining.size:
        res.facts += [
            Fact("Components beyond the 95% set", int(remaining.size), "", "{:d}"),
            Fact("Their average size", float(remaining.mean()) * ts3, "Å³", "{:.1f}"),
            Fact("Their size range",
                 f"{remaining.min() * ts3:.1f} to {remaining.max() * ts3:.1f}", "Å³", "{}"),
        ]
    res.facts += [
        Fact(f"Constructed mask (largest component dilated by {masks.DILATION_A:g} Å)",
             int(hard.sum()), "voxels", "{:d}"),
        Fact("Constructed mask volume", float(hard.sum()) * ts3, "Å³", "{:.0f}"),
        Fact("Overlap of the raw mask with the constructed mask", overlap, "", "{:.3f}"),
    ]
    top = comp[: min(10, n_comp)]
    res.tables.append(Table(
        title="Largest connected components",
        columns=["Rank", "Voxels", "Volume (Å³)", "Mass (%)", "Cumulative (%)"],
        rows=[[i + 1, int(c), c * ts3, 100 * c / n_raw, 100 * cum[i]] for i, c in enumerate(top)],
        formats=["{}", "{}", "{:.1f}", "{:.2f}", "{:.2f}"]))

    thr, counts = threshold_mass_table(ctx.map.data, ctx.map.voxel_size)
    if thr.size:
        kda = counts * ts3 / (A3_PER_DALTON * 1000.0)
        residues = counts * ts3 / (A3_PER_DALTON * DALTON_PER_RESIDUE)
        res.tables.append(Table(
            title="Mass enclosed at different thresholds (voxels with density above the level)",
            columns=["Threshold", "Voxel mass", "Molecular mass (kDa)", "Residues"],
            rows=[[float(g), int(c), float(k), float(r)]
                  for g, c, k, r in zip(thr, counts, kda, residues)],
            formats=["{:.4g}", "{}", "{:.1f}", "{:.0f}"]))
        res.data["mass_curve"] = (thr, counts)
    else:
        res.notes.append("The map has no positive values, so the threshold–mass table is empty.")

    if n95 > MAX_COMPONENTS_95:
        res.warn("fragmented", WARN_FRAGMENTED, n95=int(n95), limit=MAX_COMPONENTS_95)
    if outside > MAX_OUTSIDE_FRACTION:
        res.warn("mass_outside", WARN_OUTSIDE, outside=float(outside),
                 limit=MAX_OUTSIDE_FRACTION)
    if overlap < MIN_OVERLAP:
        res.warn("low_overlap", WARN_OVERLAP, overlap=float(overlap), limit=MIN_OVERLAP)
    res.summary = ("The suggested threshold gives one well-connected body."
                   if not res.warnings else
                   "The suggested threshold may be unsuitable (see 0.b).")
    return res.finish()
