"""A.g Per-residue fit: SMOC, the segment Manders' overlap coefficient (Joseph et al. 2016,
Methods 100:42; TEMPy's SMOC), instead of the reference's DAQ.

The reference's A.g runs DAQ (Terashi et al. 2022), a neural network whose weights are not
available here. SMOC answers the same question — is each residue supported by the density
around it? — without learning: the overlap Σ map·model / √(Σ map² Σ model²) of the map with
TEMPy's Gaussian model map over the voxels near the residue (:mod:`cryovalid.kernels.smoc`).
It is computed twice: over the residue alone (window 1), which is what the residues are flagged
on, and over TEMPy's default sliding window of 11 residues, whose mean is the number TEMPy (and
EMDB's validation analysis) report.
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.items.base import Fact, Table, new_result
from cryovalid.items.qscore import worst_residues
from cryovalid.kernels import smoc as S

ID = "A.g"
LEVEL = "A"
REQUIRES = ("model", "resolution", "fitted_model")
TITLE = "Per-residue fit (SMOC)"
SECTION = "Level A analysis"
# A residue is flagged when its own SMOC is below RELATIVE_LIMIT × the median over the model's
# residues (worse than the model's typical fit at this map's resolution and noise: SMOC's scale
# depends on both, e.g. medians 0.66 on EMD-3488 and 0.85 on EMD-30342), or below ABSOLUTE_LIMIT
# (no density at all, whatever the rest does).
RELATIVE_LIMIT = 0.75
ABSOLUTE_LIMIT = 0.3
MAX_FLAGGED_PCT = 10.0
RESIDUE_WINDOW = 1
WORST_PER_CHAIN = 20

WARN_FLAGGED = ("{pct:.1f} % of the residues have a SMOC below {low:.3f} ({rel:g} × the "
                "median {median:.3f}, or below {abs:g}; limit {limit:g} %): their local density "
                "does not support them as well as it supports the rest of the model.")

EXPLANATION = (
    "For each residue, the map around it is compared with a map simulated from the model (atoms "
    "blurred by a Gaussian matched to the resolution) by their overlap: 1 when the two have the "
    "same shape there, near 0 when the residue sits in empty or unrelated density. Residues "
    "that are poorly supported by the map stand out along the chain. This replaces the "
    "reference's DAQ, a neural-network score whose trained weights are not available: SMOC "
    "measures how well the density fits the model, not how amino-acid-like the density is, so "
    "it does not tell which residue type the density would prefer.")

CRITERIA = (f"OK if at most {MAX_FLAGGED_PCT:g} % of the residues are flagged: a residue is "
            f"flagged when its SMOC (over the residue itself) is below {RELATIVE_LIMIT:g} × the "
            f"median SMOC of the model's residues, or below {ABSOLUTE_LIMIT:g}.")


def _column(values):
    return [None if not np.isfinite(v) else float(v) for v in values]


def run(ctx):
    res = new_result(sys.modules[__name__])
    md = ctx.model
    m = md.model
    args = (ctx.map.data, ctx.map.voxel_size, ctx.map.origin, md.xyz, m, ctx.resolution)
    sim = S.simulated_map(ctx.map.shape, *args[1:])  # one model map for both windows
    own = S.smoc(*args, window=RESIDUE_WINDOW, model_map=sim)
    tempy = S.smoc(*args, model_map=sim)  # TEMPy's default window
    v = own.per_residue
    ok = np.isfinite(v)
    if not np.any(ok):
        from cryovalid.errors import CannotMeasure

        raise CannotMeasure("no residue has density points inside the map's box")
    median = float(np.median(v[ok]))
    low = max(RELATIVE_LIMIT * median, ABSOLUTE_LIMIT)
    flagged = ok & (v < low)
    pct = 100.0 * np.count_nonzero(flagged) / np.count_nonzero(ok)
    res.metrics.update(residues_flagged_pct=pct, smoc_residue_mean=own.mean,
                       smoc_mean=tempy.mean, smoc_residue_median=median, smoc_flag_limit=low,
                       residues_scored=int(np.count_nonzero(ok)))
    res.facts += [Fact(f"Residues flagged (SMOC below {low:.3f})", pct, "%", "{:.1f}"),
                  Fact("Mean SMOC per residue (window 1)", own.mean, "", "{:.3f}"),
                  Fact(f"Mean SMOC, TEMPy's window of {tempy.window} residues", tempy.mean, "",
                       "{:.3f}"),
                  Fact("Residues scored", int(np.count_nonzero(ok)), "", "{:d}")]
    res.tables.append(Table("Mean SMOC per chain (window 1)", ["Chain", "SMOC"],
                            [[ch, val] for ch, val in own.chain_means.items()],
                            ["{}", "{:.3f}"]))
    res.tables.append(Table(f"The {WORST_PER_CHAIN} residues with the lowest SMOC per chain",
                            ["Chain", "Residue", "Name", "SMOC"],
                            worst_residues(v, m, WORST_PER_CHAIN), ["{}", "{}", "{}", "{:.3f}"]))
    res.notes.append(f"Model map: TEMPy's Gaussian blur (σ = {tempy.sigma_coeff:g} × R); "
                     f"voxels within {own.radius:.2f} Å of the residue's atoms. Ligands and "
                     f"waters are not scored (as TEMPy).")
    if pct > MAX_FLAGGED_PCT:
        res.warn("flagged", WARN_FLAGGED, pct=pct, low=low, rel=RELATIVE_LIMIT, median=median,
                 abs=ABSOLUTE_LIMIT, limit=MAX_FLAGGED_PCT)
        res.summary = "SMOC finds residues the map does not support (see A.g)."
    res.residue_columns.update(chain=m.chain.tolist(), number=m.resseq.tolist(),
                               icode=m.icode.tolist(), name=m.resname.tolist(),
                               smoc=_column(v), smoc_window11=_column(tempy.per_residue),
                               smoc_flagged=[bool(f) if k else None
                                             for f, k in zip(flagged, ok)])
    res.data.update(residue_score=v, residue_chain=m.chain, residue_number=m.resseq,
                    residue_icode=m.icode, limit=low, flagged=flagged)
    return res.finish()
