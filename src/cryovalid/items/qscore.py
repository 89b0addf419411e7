"""A.e Q-score: how well each atom's density looks like a well-resolved atom (MapQ).

Per atom, the correlation of the map around it with a Gaussian of σ = 0.6 Å, sampled on shells
0–2 Å as MapQ does (Pintilie et al. 2020, Nature Methods 17:328; gregdp/mapq;
:mod:`cryovalid.kernels.qscore`); means per residue, backbone / side chain, chain and overall,
and the Q expected at the reported resolution from MapQ's fit to EMDB entries
(Q = −0.1775·R + 1.1192 for proteins).
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.items.base import Fact, Table, new_result
from cryovalid.items.percentiles import percentile_table
from cryovalid.kernels import qscore as Q

ID = "A.e"
LEVEL = "A"
REQUIRES = ("model", "resolution", "fitted_model")
TITLE = "Q-score (MapQ)"
SECTION = "Level A analysis"
MIN_MEDIAN_Q = 0.1  # the reference's limit on the median Q
HOMOGENEITY_EPS = 0.1  # the reference's limit on P97.5 − P2.5 of the per-atom Q
WORST_PER_CHAIN = 20  # residues listed per chain, lowest Q first

WARN_LOW_MEDIAN = "The median Q-score, {median:.3f}, is below {limit:g}."
WARN_HOMOGENEOUS = ("The per-atom Q-scores are all practically the same (2.5 and 97.5 "
                    "percentiles within {eps:g}); the measurement may have gone wrong.")

EXPLANATION = (
    "The Q-score measures how much the density around each atom looks like that of an isolated, "
    "well-resolved atom: the map values on spheres of radius 0 to 2 Å around the atom are "
    "correlated with a Gaussian of width 0.6 Å (1 for a perfect atom, 0 for no resemblance). "
    "Points closer to another atom are left out. Q falls with resolution; MapQ's fit over EMDB "
    "entries gives the value expected at the reported resolution, shown beside the measured "
    "one. Residues with a Q far below the expected value are poorly supported by the map.")

CRITERIA = (f"OK if the median per-atom Q-score is at least {MIN_MEDIAN_Q:g} and the per-atom "
            f"Q-scores are not all the same (2.5 and 97.5 percentiles more than "
            f"{HOMOGENEITY_EPS:g} apart). σ = {Q.SIGMA:g} Å.")


def worst_residues(values, model, n=WORST_PER_CHAIN):
    """Rows [chain, number+icode, name, value] of the ``n`` lowest finite values per chain."""
    rows = []
    vals = np.asarray(values, dtype=float)
    for ch in model.chains:
        idx = np.nonzero((model.chain == ch) & np.isfinite(vals))[0]
        for i in idx[np.argsort(vals[idx], kind="stable")][:n]:
            rows.append([ch, f"{model.resseq[i]}{model.icode[i]}", model.resname[i],
                         float(vals[i])])
    return rows


def run(ctx):
    res = new_result(sys.modules[__name__])
    md = ctx.model
    m = md.model
    qs = md.qscores
    rq = md.residue_q
    atom_q = qs.q[np.isfinite(qs.q)]
    if atom_q.size == 0:
        from cryovalid.errors import CannotMeasure

        raise CannotMeasure("no atom could be scored (every atom's shells leave the map)")
    bb = Q.backbone_mask(m.atom_name, m.resname[m.residue_index]) & ~m.is_hydrogen
    finite = np.isfinite(qs.q)
    q_bb = float(np.mean(qs.q[bb & finite])) if np.any(bb & finite) else float("nan")
    sc = ~bb & ~m.is_hydrogen & finite
    q_sc = float(np.mean(qs.q[sc])) if np.any(sc) else float("nan")
    median_res = float(np.nanmedian(rq.q_residue)) if np.any(np.isfinite(rq.q_residue)) \
        else float("nan")
    median_atom = float(np.median(atom_q))
    expected = rq.expected
    q_table, p = percentile_table("Percentiles of the per-atom Q-score", atom_q, "Q-score",
                                  "{:.3f}")
    res.metrics.update(qscore_mean=rq.overall, qscore_backbone=q_bb, qscore_sidechain=q_sc,
                       qscore_median_residue=median_res, qscore_median_atom=median_atom,
                       qscore_expected=expected,
                       qscore_estimated_resolution_A=Q.estimated_resolution(rq.overall),
                       atoms_scored=int(atom_q.size), atoms_at_box_edge=int(qs.n_edge))
    res.facts += [
        Fact("Q-score, all scored atoms (mean)", rq.overall, "", "{:.3f}"),
        Fact(f"Q expected at {ctx.resolution:g} Å (MapQ's fit)", expected, "", "{:.3f}"),
        Fact("Q-score, backbone / side chains", f"{q_bb:.3f} / {q_sc:.3f}", "", "{}"),
        Fact("Median Q-score, per atom / per residue", f"{median_atom:.3f} / {median_res:.3f}",
             "", "{}"),
        Fact("Resolution the mean Q corresponds to (MapQ's fit)",
             Q.estimated_resolution(rq.overall), "Å", "{:.2f}"),
    ]
    res.tables.append(q_table)
    res.tables.append(Table("Q-score per chain", ["Chain", "Q-score", "Estimated resolution (Å)"],
                            [[ch, v, Q.estimated_resolution(v)] for ch, v in rq.chain_q.items()],
                            ["{}", "{:.3f}", "{:.2f}"]))
    res.tables.append(Table(f"The {WORST_PER_CHAIN} residues with the lowest Q-score per chain",
                            ["Chain", "Residue", "Name", "Q-score"],
                            worst_residues(rq.q_residue, m), ["{}", "{}", "{}", "{:.3f}"]))
    comparison = ("above" if rq.overall > expected + 0.05 else
                  "below" if rq.overall < expected - 0.05 else "close to")
    res.notes.append(f"The mean Q-score, {rq.overall:.3f}, is {comparison} the {expected:.3f} "
                     f"expected at {ctx.resolution:g} Å (MapQ's line fitted to EMDB entries; a "
                     f"model refined into its own map usually scores above it).")
    res.notes += list(qs.notes)
    if median_atom < MIN_MEDIAN_Q:
        res.warn("low_median", WARN_LOW_MEDIAN, median=median_atom, limit=MIN_MEDIAN_Q)
    if abs(p[-1] - p[0]) < HOMOGENEITY_EPS:
        res.warn("homogeneous", WARN_HOMOGENEOUS, eps=HOMOGENEITY_EPS)
    if res.warnings:
        res.summary = "There seems to be a problem with the model's Q-scores (see A.e)."
    res.resolution_estimates.append({"method": "Q-score, MapQ's fit (A.e)",
                                     "resolution_A": Q.estimated_resolution(rq.overall)})
    res.residue_columns.update(chain=m.chain.tolist(), number=m.resseq.tolist(),
                               icode=m.icode.tolist(), name=m.resname.tolist(),
                               q=[None if not np.isfinite(v) else float(v) for v in rq.q_residue],
                               q_backbone=[None if not np.isfinite(v) else float(v)
                                           for v in rq.q_backbone],
                               q_sidechain=[None if not np.isfinite(v) else float(v)
                                            for v in rq.q_sidechain])
    res.data.update(residue_q=rq.q_residue, residue_chain=m.chain, residue_number=m.resseq,
                    residue_icode=m.icode,
                    atom_q=atom_q, expected_q=expected, resolution=ctx.resolution)
    return res.finish()
