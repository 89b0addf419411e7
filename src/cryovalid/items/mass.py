"""0.a Mass analysis: is the molecule centred, and is there room around it for the CTF?

Measured on the hard mask (reference recipe). For each axis: free space on the left = number of
empty planes before the mask × Ts, on the right = empty planes after it × Ts (the reference
counts one extra voxel on the right; we count empty planes on both sides alike). Decentering =
|right − left| / box length. Centre of mass of the molecule's positive density, offset from the
geometric box centre (N − 1)/2, in % of the box. The reference takes the centre of mass of the
raw map; a solvent with a non-zero mean (EMD-11007: −0.08) or an offset then drags it anywhere
(30 % off for a centred molecule), so we weight each voxel inside the hard mask by its density
above the background level (the median of the voxels outside the mask), and nothing outside.
"""
from __future__ import annotations

import sys

import numpy as np
from scipy import ndimage

from cryovalid.items.base import Fact, Table, new_result

ID = "0.a"
LEVEL = "0"
REQUIRES = ()  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "Mass analysis"
SECTION = "Level 0 analysis"
DECENTERING_MAX_PCT = 20.0
FREE_SPACE_MIN_A = 20.0
COM_OFFSET_MAX_PCT = 20.0

WARN_DECENTRED = ("The free space on the two sides differs by {pct:.1f}% of the box along "
                  "{axis}: the map may be decentred along {axis}.")
WARN_FREE_SPACE = ("Only {space:.1f} Å of free space on the {side} of {axis}: there may be too "
                   "little room to correct the CTF.")
WARN_COM = ("The centre of mass is {pct:.1f}% of the box away from the centre along {axis}. "
            "This is common when the refinement focused on one region of the molecule.")

EXPLANATION = (
    "A map should have its molecule near the centre of the box and leave empty space around it: "
    "the CTF spreads the signal of every particle over a region whose size grows with defocus, "
    "so a box that is cut tightly around the molecule loses part of that signal during "
    "reconstruction. We measure, along each axis, the free space between the mask of the "
    "molecule and the box edges, how unequal the two sides are, and how far the centre of mass "
    "of the molecule's density lies from the centre of the box. Local or focused refinements "
    "are expected to be off-centre.")

CRITERIA = (
    f"OK if, along X, Y and Z: the difference between the free space on the two sides is at most "
    f"{DECENTERING_MAX_PCT:g}% of the box; the free space on each side is at least "
    f"{FREE_SPACE_MIN_A:g} Å; and the centre of mass is at most {COM_OFFSET_MAX_PCT:g}% of the "
    f"box away from the box centre. Warnings are expected for local or focused refinements.")

AXES = ("x", "y", "z")


def centre_of_mass(vol, mask):
    """(z, y, x) centre of mass of max(V − b, 0) inside ``mask``, b = median of V outside it:
    invariant to an offset and a positive scale of the map."""
    outside = vol[~mask]
    base = float(np.median(outside)) if outside.size else float(vol.min())
    weights = np.where(mask, np.maximum(vol - np.float32(base), 0.0), 0.0)
    if not weights.any():
        weights = mask.astype(np.float32)
    return ndimage.center_of_mass(weights)


def run(ctx):
    res = new_result(sys.modules[__name__])
    mask = ctx.map.hard_mask
    vol = ctx.map.data
    ts = ctx.map.voxel_size
    if not mask.any():
        raise ValueError("the mask at this threshold is empty; lower the threshold")
    rows = []
    # numpy axis for x, y, z is 2, 1, 0
    com = centre_of_mass(vol, mask)  # (z, y, x) voxel indices
    for name, axis in zip(AXES, (2, 1, 0)):
        n = vol.shape[axis]
        others = tuple(a for a in range(3) if a != axis)
        occupied = np.flatnonzero(mask.any(axis=others))
        left = float(occupied[0]) * ts
        right = float(n - 1 - occupied[-1]) * ts
        decentering = abs(right - left) / (n * ts) * 100.0
        com_offset = abs(com[axis] - (n - 1) / 2.0) / n * 100.0
        res.metrics[f"decentering_pct_{name}"] = round(decentering, 4)
        res.metrics[f"space_left_A_{name}"] = round(left, 4)
        res.metrics[f"space_right_A_{name}"] = round(right, 4)
        res.metrics[f"com_offset_pct_{name}"] = round(com_offset, 4)
        rows.append([name.upper(), left, right, decentering, com[axis] * ts, com_offset])
    res.tables.append(Table(
        title="Free space and centring per axis",
        columns=["Axis", "Free space left (Å)", "Free space right (Å)", "Decentering (%)",
                 "Centre of mass (Å from first voxel)", "Centre-of-mass offset (%)"],
        rows=rows, formats=["{}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}"]))
    res.facts.append(Fact("Box size", " × ".join(str(n) for n in vol.shape[::-1]), "voxels", "{}"))

    m = res.metrics
    for a in AXES:
        if m[f"decentering_pct_{a}"] > DECENTERING_MAX_PCT:
            res.warn(f"decentred_{a}", WARN_DECENTRED, pct=m[f"decentering_pct_{a}"],
                     axis=a.upper())
    for side in ("left", "right"):
        for a in AXES:
            v = m[f"space_{side}_A_{a}"]
            if v < FREE_SPACE_MIN_A:
                res.warn(f"free_space_{side}_{a}", WARN_FREE_SPACE, space=float(v), side=side,
                         axis=a.upper())
    for a in AXES:
        if m[f"com_offset_pct_{a}"] > COM_OFFSET_MAX_PCT:
            res.warn(f"com_offset_{a}", WARN_COM, pct=m[f"com_offset_pct_{a}"], axis=a.upper())
    res.summary = ("The map appears well centred, with enough free space around the molecule."
                   if not res.warnings else
                   "The map may be off-centre or have too little free space around the molecule "
                   "(see 0.a).")
    return res.finish()
