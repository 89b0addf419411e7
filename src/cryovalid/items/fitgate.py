"""A.0 Fit gate: is the atomic model placed in the map?

CC_mask (cctbx's, :mod:`cryovalid.kernels.mapmodel_cc`) where the model was given, with the map's
own header conventions (ORIGIN, NSTART, axis order). Below 0.5 the reference's candidate
placements are tried (:mod:`cryovalid.kernels.placement`); Level A then runs on the best one,
with a warning, or, when none fits, every other Level A item says it does not apply. Unlike the
reference, the gate is always shown and its limit is 0.5, not 0.8 (which drops fitted models
such as EMD-3488 + 5ME2 at CC_mask 0.741).
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.items.base import Fact, Table, Text, new_result
from cryovalid.kernels.placement import MIN_CC_MASK

ID = "A.0"
LEVEL = "A"
REQUIRES = ("model", "resolution")
TITLE = "Map–model fit gate"
SECTION = "Level A analysis"
MOSTLY_OUTSIDE = 0.9  # fewer atoms than this fraction inside the box: said in a warning
MODEL_COPY = "model/model.cif"  # the model as Level A places it (for ChimeraX)

WARN_MOVED = ("The model does not fit the map where it was given (CC_mask {cc_input:.3f} < "
              "{limit:g}); moving its centre to {where} (a shift of {moved:.1f} Å) gives CC_mask "
              "{cc:.3f}, so Level A uses the moved model (written to {copy}).")
WARN_NOT_FITTED = ("The model does not fit the map: CC_mask is {cc_input:.3f} where it was given "
                   "and at most {best:.3f} at the candidate placements (limit {limit:g}); the "
                   "other Level A items do not apply. Check that the model was fitted to this "
                   "map and that the map's origin is right.")
WARN_OUTSIDE = ("Only {inside:.0%} of the model's atoms lie inside the map's box as the model "
                "was given.")

EXPLANATION = (
    "The map–model items of Level A compare the map with a map computed from the atomic model. "
    "They mean something only when the model is placed in the map's frame: a model fitted to "
    "another map, in a crystal frame, or read with a wrong map origin correlates with nothing. "
    "The gate measures CC_mask (the correlation of map and model map inside the model's "
    "envelope, as Phenix computes it) where the model was given, honouring the map header's "
    "ORIGIN, NSTART and axis order. When it is low, the model's centre is moved to the "
    "reference's candidate points (the header origin, its negative, the coordinate origin, the "
    "box centre and its negative) and the best placement is used.")

CRITERIA = (f"OK if CC_mask at the model's own placement is at least {MIN_CC_MASK:g} and at "
            f"least {MOSTLY_OUTSIDE:.0%} of its atoms lie inside the map's box.")


def placed_model_cif(model, shift) -> str:
    """The model moved by ``shift`` (Å, x, y, z) as mmCIF text (for ChimeraX)."""
    import gemmi

    st = model.structure.clone()
    if any(shift):
        st.setup_entities()
        tr = gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift))
        for m in st:
            m.transform_pos_and_adp(tr)
    return st.make_mmcif_document().as_string()


def _finite(v) -> float:
    """A CC for the metrics: −1 (no correlation measurable) instead of NaN, which would make
    the whole item 'could not be measured'."""
    return float(v) if np.isfinite(v) else -1.0


def run(ctx):
    res = new_result(sys.modules[__name__])
    md = ctx.model
    pl = md.placement
    inside = md.fraction_inside
    if not np.isfinite(pl.cc_mask_at_input):
        res.notes.append("No point of the model's envelope lies in the map's box where the model "
                         "was given, so CC_mask there cannot be computed (shown as −1).")
    res.metrics.update(cc_mask_at_input=_finite(pl.cc_mask_at_input), cc_mask=_finite(pl.cc_mask),
                       model_moved_A=pl.moved_A, fraction_atoms_inside=inside)
    res.facts += [
        Fact("CC_mask where the model was given", pl.cc_mask_at_input, "", "{:.3f}"),
        Fact("Atoms inside the map's box", 100.0 * inside, "%", "{:.1f}"),
        Fact("Placement used by Level A",
             "as given" if not pl.moved else
             "moved by ({:.1f}, {:.1f}, {:.1f}) Å".format(*pl.shift)
             if pl.fits else "none (the model does not fit)", "", "{}"),
    ]
    if pl.fits:
        res.facts.append(Fact("CC_mask at that placement", pl.cc_mask, "", "{:.3f}"))
    if pl.candidates:
        res.tables.append(Table(
            "Candidate placements (the model's centre moved to each point)",
            ["Point", "x (Å)", "y (Å)", "z (Å)", "CC_mask"],
            [[c.name, *c.point, c.cc_mask] for c in pl.candidates],
            ["{}", "{:.1f}", "{:.1f}", "{:.1f}", "{:.3f}"]))
    res.notes.append(f"CC_mask is computed at max(R, 3) Å = {md.cc_resolution:g} Å with the "
                     f"cctbx atom mask, as the reference runs Phenix.")
    res.notes += list(md.model.notes)
    if pl.fits and pl.moved:
        where = next(c.name for c in pl.candidates if c.shift == pl.shift)
        res.warn("moved", WARN_MOVED, cc_input=_finite(pl.cc_mask_at_input), limit=MIN_CC_MASK,
                 where=where, moved=pl.moved_A, cc=pl.cc_mask, copy=MODEL_COPY)
        res.summary = ("The model had to be moved to fit the map; Level A uses the moved model "
                       "(see A.0).")
    elif not pl.fits:
        ccs = [c.cc_mask for c in pl.candidates] + [pl.cc_mask_at_input]
        best = max([v for v in ccs if np.isfinite(v)], default=float("nan"))
        res.warn("not_fitted", WARN_NOT_FITTED, cc_input=_finite(pl.cc_mask_at_input), best=_finite(best),
                 limit=MIN_CC_MASK)
        res.summary = "The atomic model does not fit the map (see A.0)."
    if inside < MOSTLY_OUTSIDE:
        res.warn("outside", WARN_OUTSIDE, inside=inside)
    res.artefacts.append(Text(MODEL_COPY, placed_model_cif(md.model, tuple(
        float(v) for v in np.asarray(pl.shift)))))
    return res.finish()
