"""A.f EMRinger: do the side chains sit where the density peaks? (Barad et al. 2015, Nature
Methods 12:943; as cctbx's phenix.emringer computes it, :mod:`cryovalid.kernels.emringer`.)

The map is sampled around each side chain's χ1 circle; at a scan of density thresholds the
peaks are counted in rotameric and non-rotameric χ1 bins, and the EMRinger score is the largest
Z-score of the rotameric excess over the thresholds, 10·Z/√L. The full map is used (with half
maps too), as the reference does.
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.items.base import Fact, Table, new_result
from cryovalid.kernels import emringer as E

ID = "A.f"
LEVEL = "A"
REQUIRES = ("model", "resolution", "fitted_model")
TITLE = "EMRinger"
SECTION = "Level A analysis"
MIN_SCORE = 1.0
MIN_Z = 1.0
# rotameric χ1 ranges (degrees, as the kernel's bins 0, 2, 4 label them): for the figure
ROTAMERIC_RANGES = [(E.SAMPLING_ANGLE * (E.FIRST_BIN_START + b * E.BIN_SIZE),
                     E.SAMPLING_ANGLE * (E.FIRST_BIN_START + (b + 1) * E.BIN_SIZE))
                    for b in E.ROTAMERIC_BINS]

WARN_SCORE = "The EMRinger score, {score:.3f}, is below {limit:g}."
WARN_Z = "The maximum Z-score, {z:.3f}, is below {limit:g}."

EXPLANATION = (
    "Side chains at high resolution sit in a few preferred (rotameric) χ1 angles, 60°, 180° and "
    "300°. EMRinger samples the density on the circle the side chain's γ atom can occupy and "
    "notes where it peaks; in a map that resolves side chains and a model that places them "
    "well, the peaks fall in rotameric positions much more often than chance. The score grows "
    "with that excess and with the number of residues; scores above 1 mean a map and model of "
    "reasonable quality at 3–4 Å, above 2 a good one.")

CRITERIA = (f"OK if the EMRinger score is at least {MIN_SCORE:g} and the maximum Z-score at "
            f"least {MIN_Z:g}.")


def run(ctx):
    res = new_result(sys.modules[__name__])
    md = ctx.model
    m = md.model
    out = E.emringer(ctx.map.data, ctx.map.voxel_size, md.origin_for_model_as_read, m)
    res.metrics.update(emringer_score=out.score, emringer_max_z=out.zscore_max,
                       emringer_rotamer_ratio=out.rotamer_ratio,
                       emringer_threshold=out.optimal_threshold,
                       emringer_residues=int(out.n_residues))
    res.facts += [Fact("EMRinger score", out.score, "", "{:.3f}"),
                  Fact("Optimal threshold", out.optimal_threshold, "", "{:.4g}"),
                  Fact("Rotamer ratio at it", out.rotamer_ratio, "", "{:.3f}"),
                  Fact("Maximum Z-score", out.zscore_max, "", "{:.2f}"),
                  Fact("Residues scored (model length)", int(out.n_residues), "", "{:d}")]
    scored = out.residue_scored
    per_chain = []
    for ch in m.chains:
        sel = (m.chain == ch) & scored
        if np.any(sel):
            per_chain.append([ch, int(np.count_nonzero(sel)),
                              int(np.count_nonzero(sel & out.residue_peak_above))])
    res.tables.append(Table("Residues scored per chain", ["Chain", "Scored",
                                                          "Peak above the optimal threshold"],
                            per_chain, ["{}", "{:d}", "{:d}"]))
    if out.score < MIN_SCORE:
        res.warn("low_score", WARN_SCORE, score=out.score, limit=MIN_SCORE)
    if out.zscore_max < MIN_Z:
        res.warn("low_z", WARN_Z, z=out.zscore_max, limit=MIN_Z)
    if res.warnings:
        res.summary = ("The EMRinger score is low: the model's side chains may not match the "
                       "map (see A.f).")
    res.residue_columns.update(
        chain=m.chain.tolist(), number=m.resseq.tolist(), icode=m.icode.tolist(),
        name=m.resname.tolist(),
        emringer_peak_chi1=[None if not np.isfinite(v) else float(v)
                            for v in out.residue_peak_chi])
    res.data.update(thresholds=out.thresholds, scores=out.scores,
                    rotamer_ratios=out.rotamer_ratios, optimal_threshold=out.optimal_threshold,
                    histogram=out.histogram, histogram_angles=out.histogram_angles,
                    rotameric_bins=ROTAMERIC_RANGES)
    return res.finish()
