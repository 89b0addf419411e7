"""A.a Map–model fit: the numbers Phenix gives the reference (``validation_cryoem``: cctbx's
map_model_cc and mtriage), computed by cryovalid itself.

CC_mask, CC_box, CC_volume, CC_peaks, main chain / side chain, per chain and per residue
(:mod:`cryovalid.kernels.mapmodel_cc`; Afonine et al. 2018, Acta Cryst. D74:814) and d99,
d_model, d_model(B = 0), d_FSC_model at 0 / 0.143 / 0.5 and the overall B, unmasked and masked
(:mod:`cryovalid.kernels.mtriage`; Afonine et al. 2018, Acta Cryst. D74:531). Every number is
measured with the model where the fit gate (A.0) placed it, at max(R, 3) Å.
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.criteria import OVERESTIMATE_FACTOR
from cryovalid.items.base import Curves, Fact, Table, Volume, new_result
from cryovalid.kernels.mapmodel_cc import LOW_RESIDUE_CC

ID = "A.a"
LEVEL = "A"
REQUIRES = ("model", "resolution", "fitted_model")
TITLE = "Map–model fit (Phenix numbers)"
SECTION = "Level A analysis"
MAX_LOW_RESIDUES_PCT = 10.0  # % of residues with CC below LOW_RESIDUE_CC
RESOLUTIONS = (("d99", "d99"), ("d_model", "d_model"), ("d_model_b0", "d_model (B = 0)"),
               ("d_fsc_model_0", "d_FSC_model (FSC = 0)"),
               ("d_fsc_model_0143", "d_FSC_model (FSC = 0.143)"),
               ("d_fsc_model_05", "d_FSC_model (FSC = 0.5)"))

WARN_LOW_RESIDUES = ("The percentage of residues whose cross-correlation is below {low:g} is "
                     "{pct:.1f} %, larger than {limit:g} %.")
WARN_OPTIMISTIC = ("The reported resolution, {r:.2f} Å, is much better than the resolution at "
                   "which map and model agree (masked FSC_model = 0.5), {d:.2f} Å: it should not "
                   "be below {factor:g} × {d:.2f} = {limit:.2f} Å.")

EXPLANATION = (
    "A map computed from the atomic model (electron scattering factors, each atom's B-factor) is "
    "compared with the map. CC_mask correlates them inside the model's envelope, CC_box over the "
    "whole box, CC_volume and CC_peaks over the strongest points of the model map (and of both "
    "maps); the per-residue CC, over the points near each residue, shows which parts of the "
    "model the density supports. d99 is the resolution to which the map's Fourier coefficients "
    "carry 99 % of its power; d_FSC_model is where the map–model FSC falls to 0, 0.143 or 0.5; "
    "d_model is the resolution (with the best overall B) at which the model map resembles the "
    "map most. Each is given for the whole box and for the map masked around the model.")

CRITERIA = (f"OK if 1) fewer than {MAX_LOW_RESIDUES_PCT:g} % of the residues have a "
            f"cross-correlation below {LOW_RESIDUE_CC:g}, and 2) the reported resolution is not "
            f"below {OVERESTIMATE_FACTOR:g} × the resolution at which the masked map–model FSC "
            f"is 0.5.")


def _value(v):
    return None if v is None or not np.isfinite(v) else float(v)


def run(ctx):
    res = new_result(sys.modules[__name__])
    md = ctx.model
    cc = md.cc
    mt = md.mtriage
    m = md.model
    low_pct = 100.0 * cc.fraction_below(LOW_RESIDUE_CC)
    res.metrics.update(cc_mask=cc.cc_mask, cc_box=cc.cc_box, cc_volume=cc.cc_volume,
                       cc_peaks=cc.cc_peaks, cc_main_chain=cc.cc_main_chain,
                       cc_side_chain=cc.cc_side_chain, residues_cc_below_05_pct=low_pct)
    for key, _ in RESOLUTIONS:
        res.metrics[f"{key}_A"] = _value(getattr(mt, key))
        res.metrics[f"{key}_masked_A"] = _value(getattr(mt, f"{key}_masked"))
    res.metrics["b_iso_A2"] = _value(mt.b_iso)
    res.metrics["b_iso_masked_A2"] = _value(mt.b_iso_masked)

    res.facts += [Fact("CC_mask", cc.cc_mask, "", "{:.3f}"),
                  Fact("CC_box", cc.cc_box, "", "{:.3f}"),
                  Fact("CC_volume", cc.cc_volume, "", "{:.3f}"),
                  Fact("CC_peaks", cc.cc_peaks, "", "{:.3f}"),
                  Fact("CC main chain / side chain",
                       f"{cc.cc_main_chain:.3f} / {cc.cc_side_chain:.3f}", "", "{}"),
                  Fact(f"Residues with CC below {LOW_RESIDUE_CC:g}", low_pct, "%", "{:.1f}")]
    rows = []
    for key, label in RESOLUTIONS:
        rows.append([label, getattr(mt, key), getattr(mt, f"{key}_masked")])
    rows.append(["Overall B (Å²)", mt.b_iso, mt.b_iso_masked])
    res.tables.append(Table("Resolution estimates from map and model (Å)",
                            ["Estimate", "Unmasked", "Masked"], rows,
                            ["{}", "{:.2f}", "{:.2f}"]))
    res.tables.append(Table("Map–model CC per chain", ["Chain", "Residues", "CC"],
                            [[ch, int(np.count_nonzero(m.chain == ch)), v]
                             for ch, v in cc.chain_cc.items()], ["{}", "{:d}", "{:.3f}"]))
    res.notes.append(f"Computed at max(R, 3) Å = {cc.resolution:g} Å (as the reference runs "
                     f"Phenix); per-residue CCs over the grid points within {cc.atom_radius:.2f} "
                     f"Å of the residue's atoms (cctbx's radius rule).")
    for key, label in RESOLUTIONS:
        v = _value(getattr(mt, f"{key}_masked"))
        if v is not None:
            res.resolution_estimates.append({"method": f"{label}, masked (A.a)",
                                             "resolution_A": v})

    d05 = _value(mt.d_fsc_model_05_masked)
    if low_pct > MAX_LOW_RESIDUES_PCT:
        res.warn("low_residue_cc", WARN_LOW_RESIDUES, low=LOW_RESIDUE_CC, pct=low_pct,
                 limit=MAX_LOW_RESIDUES_PCT)
    if d05 is not None and ctx.resolution < OVERESTIMATE_FACTOR * d05:
        res.warn("optimistic", WARN_OPTIMISTIC, r=float(ctx.resolution), d=d05,
                 factor=OVERESTIMATE_FACTOR, limit=OVERESTIMATE_FACTOR * d05)
    if res.warnings:
        res.summary = ("According to the map–model correlations, there might be some mismatch "
                       "between the map and its model (see A.a).")

    # per residue (report.json "residues" and residues.csv), maps and curves for the user
    res.residue_columns.update(chain=m.chain.tolist(), number=m.resseq.tolist(),
                               icode=m.icode.tolist(), name=m.resname.tolist(),
                               cc=[_value(v) for v in cc.residue_cc])
    res.artefacts += [
        Volume("maps/model_map.mrc", md.model_map, ctx.map.voxel_size, ctx.map.origin),
        Curves("fsc_model.csv", [("d_A", mt.fsc_d), ("fsc_unmasked", mt.fsc_unmasked),
                                 ("fsc_masked", mt.fsc_masked),
                                 ("fsc_unmasked_raw", mt.fsc_unmasked_raw),
                                 ("fsc_masked_raw", mt.fsc_masked_raw)])]
    res.data.update(residue_cc=cc.residue_cc, residue_chain=m.chain, residue_number=m.resseq,
                    residue_icode=m.icode,
                    low_cc=LOW_RESIDUE_CC, fsc_d=mt.fsc_d, fsc_unmasked=mt.fsc_unmasked,
                    fsc_masked=mt.fsc_masked,
                    d_fsc_model={0.0: mt.d_fsc_model_0_masked,
                                 0.143: mt.d_fsc_model_0143_masked,
                                 0.5: mt.d_fsc_model_05_masked})
    return res.finish()
