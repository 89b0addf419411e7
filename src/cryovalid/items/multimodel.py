"""A.c Multimodel: how much do the models of an ensemble disagree, residue by residue?

When the model file holds several models (an ensemble refined into the map, or models built
independently), every model is superposed on the first over their common Cα atoms (Kabsch) and
each residue's Cα RMSD over the models is reported. The reference's A.c never runs (its flag is
never parsed) and would build its ensemble with Rosetta; here the user's own ensemble is used.
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import NotApplicable
from cryovalid.items.base import Fact, Table, new_result
from cryovalid.kernels.superpose import ensemble_deviation

ID = "A.c"
LEVEL = "A"
REQUIRES = ("model",)
TITLE = "Multimodel stability"
SECTION = "Level A analysis"
MAX_MEAN_RMSD_A = 2.0
TRACE_ATOMS = ("CA", "P")  # Cα for amino acids, P for nucleotides
WORST = 20

WARN_RMSD = ("The mean per-residue Cα RMSD between the models, {rmsd:.2f} Å, is above "
             "{limit:g} Å: the model is ambiguous where the models disagree.")

EXPLANATION = (
    "Several models fitted to the same map tell how well the map determines the atomic "
    "positions: where the density is clear they agree, where it is weak or ambiguous they "
    "differ. Every model is superposed on the first over their common Cα atoms and the "
    "root-mean-square deviation of each residue's Cα over the models is shown along the chain.")

CRITERIA = f"OK if the mean per-residue Cα RMSD between the models is at most {MAX_MEAN_RMSD_A:g} Å."


def trace_positions(structure, model_table) -> np.ndarray:
    """(k, n_residues, 3) Å: the Cα (or P) of each residue of the model table in each model of
    ``structure`` (NaN where a model lacks it); first conformer."""
    keys = {(c, int(n), i): r for r, (c, n, i) in enumerate(zip(
        model_table.chain.tolist(), model_table.resseq.tolist(), model_table.icode.tolist()))}
    out = np.full((len(structure), len(keys), 3), np.nan)
    for k, mdl in enumerate(structure):
        for ch in mdl:
            for res in ch:
                r = keys.get((ch.name, res.seqid.num, res.seqid.icode.strip()))
                if r is None:
                    continue
                for name in TRACE_ATOMS:
                    at = res.find_atom(name, "*")
                    if at is not None:
                        out[k, r] = at.pos.tolist()
                        break
    return out


def run(ctx):
    res = new_result(sys.modules[__name__])
    m = ctx.model.model
    n_models = len(m.structure)
    if n_models < 2:
        raise NotApplicable("the model file holds one model; an ensemble (a file with two or "
                            "more models) is needed")
    pos = trace_positions(m.structure, m)
    rmsd, per_model = ensemble_deviation(pos)
    ok = np.isfinite(rmsd)
    if not np.any(ok):
        raise NotApplicable("the models share no Cα (or P) atoms")
    mean, mx = float(np.mean(rmsd[ok])), float(np.max(rmsd[ok]))
    res.metrics.update(models=int(n_models), rmsd_mean_A=mean, rmsd_max_A=mx,
                       residues_compared=int(np.count_nonzero(ok)))
    res.facts += [Fact("Models", int(n_models), "", "{:d}"),
                  Fact("Mean per-residue Cα RMSD", mean, "Å", "{:.2f}"),
                  Fact("Largest per-residue Cα RMSD", mx, "Å", "{:.2f}")]
    res.tables.append(Table("RMSD of each model to the first (Cα, after superposition)",
                            ["Model", "RMSD (Å)"],
                            [[k + 2, v] for k, v in enumerate(per_model)], ["{:d}", "{:.2f}"]))
    order = np.argsort(np.where(ok, -rmsd, np.inf), kind="stable")[:WORST]
    res.tables.append(Table(f"The {WORST} residues whose models disagree most",
                            ["Chain", "Residue", "Name", "Cα RMSD (Å)"],
                            [[m.chain[i], f"{m.resseq[i]}{m.icode[i]}", m.resname[i],
                              float(rmsd[i])] for i in order if ok[i]],
                            ["{}", "{}", "{}", "{:.2f}"]))
    if mean > MAX_MEAN_RMSD_A:
        res.warn("ambiguous", WARN_RMSD, rmsd=mean, limit=MAX_MEAN_RMSD_A)
        res.summary = "The models of the ensemble disagree: the model seems ambiguous (see A.c)."
    res.residue_columns.update(chain=m.chain.tolist(), number=m.resseq.tolist(),
                               icode=m.icode.tolist(), name=m.resname.tolist(),
                               multimodel_rmsd=[float(v) if np.isfinite(v) else None
                                                for v in rmsd])
    res.data.update(residue_rmsd=rmsd, residue_chain=m.chain, residue_number=m.resseq,
                    limit=MAX_MEAN_RMSD_A)
    return res.finish()
