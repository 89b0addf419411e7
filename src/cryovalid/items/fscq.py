"""A.b FSC-Q: does the model agree with the map as well as the two half maps agree with each
other, region by region (Ramírez-Aportela et al. 2021, Nat Commun 12:42; Xmipp
``validate_fscq``)?

Two local FSC resolution maps are computed with the blocres kernel of 1.c
(:mod:`cryovalid.kernels.local_fsc`, box 20 voxels, shared box centres inside the soft mask):

* the map against the model map, cut-off 0.67 (the full map's equivalent of the half maps'
  0.5: 2·0.5/(1 + 0.5));
* half map 1 against half map 2, cut-off 0.5.

FSC-Q (Å) = the first minus the second; FSC-Qr = FSC-Q / the half-map local resolution
(dimensionless). Near 0 the model explains the map as far as the data go; FSC-Qr > 1.5 (the map
and model agree only to a resolution more than 2.5 times coarser than the data's) marks model
that is not supported by the density, FSC-Qr < −1.5 the opposite (the model agrees better than
the halves, over-fitting or a model map that mirrors noise).

The model map is ``ctx.model.model_map_all_hkl`` (every hkl of the box, each atom's own B,
as Xmipp's unfiltered ``volume_from_pdb`` map), at the fit gate's placement. Statistics are
over the voxels of the model's atom mask (``ctx.model.atom_mask``) that are inside the soft
mask; per residue, the mean FSC-Qr at its non-hydrogen atoms (trilinear).

Metrics: ``fscq_median`` and ``fscq_mean`` (Å), ``fscqr_mean``, ``fscqr_p2_5``, ``fscqr_p97_5``
(voxels), ``fscqr_above_15_pct`` (% of the residues with |mean FSC-Qr| > 1.5: what the
reference's criterion states), ``fscqr_above_15_voxels_pct`` (% of the voxels, what the
reference's code counts), ``residues_scored``.
"""
from __future__ import annotations

import sys

import numpy as np
from scipy import ndimage

from cryovalid.errors import CannotMeasure, NotApplicable
from cryovalid.items.base import Fact, Table, Volume, new_result
from cryovalid.items.percentiles import percentile_table
from cryovalid.kernels import local_fsc as LF
from cryovalid.kernels import localmaps

ID = "A.b"
LEVEL = "A"
REQUIRES = ("half_maps", "model", "resolution", "fitted_model")
TITLE = "FSC-Q"
SECTION = "Level A analysis"

BOX = LF.BOX
CUTOFF_MODEL = LF.CUTOFF_MODEL  # map vs model map
CUTOFF_HALVES = LF.CUTOFF_HALVES  # half vs half
QR_LIMIT = 1.5  # |FSC-Qr| beyond this: the region's model is not supported (the reference)
MAX_PCT = 10.0  # % of residues beyond QR_LIMIT allowed (the reference's criterion)
HOMOGENEITY_EPS = 0.1  # the reference's limit on P97.5 − P2.5 of FSC-Qr
WORST = 20  # residues listed, highest |FSC-Qr| first
VOLUME_Q = "maps/fscq.mrc"
VOLUME_QR = "maps/fscqr.mrc"

WARN_MANY = ("{pct:.1f} % of the residues have an FSC-Qr beyond {limit:g} in absolute value, "
             "more than {max_pct:g} %.")
WARN_HOMOGENEOUS = ("The FSC-Qr values are all practically the same (2.5 and 97.5 percentiles "
                    "within {eps:g}); the measurement may have gone wrong.")

EXPLANATION = (
    "FSC-Q compares, region by region, how far the atomic model agrees with the map and how "
    "far the map's own data go (Ramírez-Aportela et al. 2021, doi:10.1038/s41467-020-20295-w). "
    f"In a box of {BOX} voxels around each point, the local resolution of the map against a "
    f"map computed from the model (FSC cut-off {CUTOFF_MODEL:g}) and that of the two half maps "
    f"against each other (cut-off {CUTOFF_HALVES:g}, the equivalent for a half map) are "
    "measured as in 1.c. FSC-Q is the difference (Å) and FSC-Qr the difference divided by the "
    "half-map local resolution. Values near 0 mean the model explains the map as far as the "
    f"data allow; FSC-Qr above {QR_LIMIT:g} marks parts of the model that the map does not "
    f"support (wrongly placed or modelled beyond the data), below −{QR_LIMIT:g} parts that "
    "agree with the map better than the halves agree with each other (possible over-fitting).")

CRITERIA = (
    f"OK if at most {MAX_PCT:g} % of the residues have a mean FSC-Qr beyond {QR_LIMIT:g} in "
    f"absolute value, and the FSC-Qr values are not all the same (2.5 and 97.5 percentiles "
    f"more than {HOMOGENEITY_EPS:g} apart).")

DIFFERENCE_NOTE = (
    "The reference's criterion counts residues but its code counts voxels where the model map "
    "exceeds 0.97 (in Xmipp's units); here residues are counted as the criterion says (the "
    "voxel share is shown too), voxels are those of the model's atom mask, and the spread is "
    "measured on the values as they are (the reference clips them to ±1.5 first).")


def _per_residue(values, residue_index, n_residues):
    """Mean of the finite ``values`` per residue (NaN where none)."""
    ok = np.isfinite(values)
    s = np.bincount(residue_index[ok], weights=values[ok], minlength=n_residues)
    c = np.bincount(residue_index[ok], minlength=n_residues)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def run(ctx):
    res = new_result(sys.modules[__name__])
    h1, h2 = ctx.half_maps
    if h1.data is h2.data or np.array_equal(h1.data, h2.data):
        raise CannotMeasure("the two half maps are identical (the same numbers in every "
                            "voxel): their local FSC is 1 everywhere and says nothing about "
                            "the FSC-Q")
    md = ctx.model
    m = md.model
    for h, name in ((h1, "half map 1"), (h2, "half map 2"), (ctx.map, "the map")):
        localmaps.require_finite(h.data, name)
    if min(h1.shape) < BOX:
        raise NotApplicable(f"the box is smaller than the local FSC box ({BOX} voxels)")
    region = ctx.map.soft_mask > LF.REGION_MIN
    if not region.any():
        raise NotApplicable("the mask is empty at this threshold")
    model_map = md.model_map_all_hkl
    ts = ctx.map.voxel_size
    loc_model, loc_half = LF.local_resolutions(
        [(ctx.map.data, model_map), (h1.data, h2.data)], ts, region,
        [CUTOFF_MODEL, CUTOFF_HALVES], box=BOX)
    fscq = loc_model.values - loc_half.values
    fscqr = fscq / loc_half.values
    localmaps.require_finite(fscqr, "FSC-Qr")
    q_vol = np.zeros(ctx.map.shape, dtype=np.float32)
    q_vol.ravel()[loc_half.index] = fscq
    qr_vol = np.zeros(ctx.map.shape, dtype=np.float32)
    qr_vol.ravel()[loc_half.index] = fscqr
    res.artefacts += [Volume(VOLUME_Q, q_vol, ts, ctx.map.origin),
                      Volume(VOLUME_QR, qr_vol, ts, ctx.map.origin)]

    # voxels: the model's atom mask inside the soft mask
    in_model = md.atom_mask.ravel()[loc_half.index].astype(bool)
    if not in_model.any():
        raise CannotMeasure("no voxel of the model's atom mask lies inside the map's soft mask")
    q_s, qr_s = fscq[in_model], fscqr[in_model]
    qr_table, p = percentile_table("Percentiles of FSC-Qr (atom-mask voxels)", qr_s, "FSC-Qr",
                                   "{:.2f}")
    voxels_pct = 100.0 * float(np.mean(np.abs(qr_s) > QR_LIMIT))

    # residues: mean FSC-Qr at their non-hydrogen atoms inside the soft mask
    heavy = ~m.is_hydrogen
    zyx = (md.xyz_box / ts)[:, ::-1].T
    at_atoms = ndimage.map_coordinates(qr_vol, zyx, order=1, mode="nearest", prefilter=False)
    inside = ndimage.map_coordinates(region.astype(np.float32), zyx, order=0, mode="constant",
                                     cval=0.0, prefilter=False) > 0
    atom_vals = np.where(heavy & inside, at_atoms, np.nan)
    per_res = _per_residue(atom_vals, m.residue_index, m.n_residues)
    scored = np.isfinite(per_res)
    if not scored.any():
        raise CannotMeasure("no atom of the model lies inside the map's soft mask")
    res_pct = 100.0 * float(np.mean(np.abs(per_res[scored]) > QR_LIMIT))

    res.metrics.update(
        fscq_median=round(float(np.median(q_s)), 3), fscq_mean=round(float(np.mean(q_s)), 3),
        fscqr_mean=round(float(np.mean(qr_s)), 4), fscqr_p2_5=round(float(p[0]), 4),
        fscqr_p97_5=round(float(p[4]), 4), fscqr_above_15_pct=round(res_pct, 3),
        fscqr_above_15_voxels_pct=round(voxels_pct, 3), residues_scored=int(scored.sum()),
        voxels_scored=int(in_model.sum()))
    res.facts += [
        Fact("Median FSC-Q (atom-mask voxels)", float(np.median(q_s)), "Å", "{:.2f}"),
        Fact("Mean FSC-Qr, 95 % interval", f"{np.mean(qr_s):.2f} [{p[0]:.2f}, {p[4]:.2f}]", "",
             "{}"),
        Fact(f"Residues with |FSC-Qr| > {QR_LIMIT:g}", res_pct, "%", "{:.1f}"),
        Fact(f"Voxels with |FSC-Qr| > {QR_LIMIT:g}", voxels_pct, "%", "{:.1f}"),
        Fact("Residues scored (atoms inside the mask)", int(scored.sum()), "", "{:d}"),
    ]
    res.tables.append(qr_table)
    order = np.argsort(-np.abs(np.where(scored, per_res, 0.0)), kind="stable")
    order = [i for i in order if scored[i]][:WORST]
    res.tables.append(Table(f"The {WORST} residues with the largest |FSC-Qr|",
                            ["Chain", "Residue", "Name", "FSC-Qr"],
                            [[m.chain[i], f"{m.resseq[i]}{m.icode[i]}", m.resname[i],
                              float(per_res[i])] for i in order],
                            ["{}", "{}", "{}", "{:.2f}"]))
    res.notes.append(DIFFERENCE_NOTE)
    res.residue_columns.update(
        chain=m.chain.tolist(), number=m.resseq.tolist(), icode=m.icode.tolist(),
        name=m.resname.tolist(),
        fscqr=[None if not np.isfinite(v) else round(float(v), 4) for v in per_res])
    res.data.update(values=qr_s, volume=qr_vol, p2_5=float(p[0]), p97_5=float(p[4]),
                    residue_fscqr=per_res, fscq_values=q_s)

    if res_pct > MAX_PCT:
        res.warn("many_unsupported", WARN_MANY, pct=res_pct, limit=QR_LIMIT, max_pct=MAX_PCT)
    if abs(p[4] - p[0]) < HOMOGENEITY_EPS:
        res.warn("homogeneous", WARN_HOMOGENEOUS, eps=HOMOGENEITY_EPS)
    if res.warnings:
        res.summary = ("According to FSC-Q, the model and the map seem not to match everywhere "
                       "(see A.b).")
    return res.finish()
