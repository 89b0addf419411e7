"""Is the model placed in the map? The fit gate of Level A and the reference's candidate
placements.

The reference (I2PC VRS, ``vrs_level1_A_O_W.md`` §2.1) runs Phenix on the model where it is and,
when CC_mask is low, moves the model's geometric centre to a few candidate points — the map
header's origin, its negative, (0, 0, 0), the box centre and its negative — and keeps the best.
We do the same, in world coordinates (x, y, z, Å): the box centre is that of the map's box as it
lies in space (origin + N·Ts/2), and the reference's literal N·Ts/2 (the centre of a box whose
origin is zero) is tried too. A placement is accepted when its CC_mask reaches ``MIN_CC_MASK``
(0.5: the value the reference's own source comment names; its code uses 0.8, which drops
properly fitted models such as EMD-3488 + 5ME2 at 0.741).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

MIN_CC_MASK = 0.5  # a model whose best CC_mask is below this is not fitted to the map


@dataclass
class Candidate:
    name: str  # how the point was chosen
    point: tuple  # world x, y, z (Å) the model's centre is moved to
    shift: tuple  # the translation applied to every atom (Å)
    cc_mask: float  # NaN when no atom mask point lies in the box there


@dataclass
class Placement:
    """Where Level A puts the model: ``shift`` (Å, x, y, z) added to every atom (0 when the
    model is used as given), the CC_mask there, and what was tried."""
    cc_mask_at_input: float
    shift: tuple
    cc_mask: float
    fits: bool  # cc_mask ≥ MIN_CC_MASK
    candidates: list = field(default_factory=list)  # Candidate, when the input was below

    @property
    def moved_A(self) -> float:
        return float(np.linalg.norm(self.shift))

    @property
    def moved(self) -> bool:
        return self.moved_A > 0.0


def candidate_points(origin, shape, voxel_size) -> list:
    """The reference's candidate points as (name, (x, y, z) Å), deduplicated (0.01 Å)."""
    origin = np.asarray(origin, dtype=np.float64)
    half_box = np.array(shape[::-1], dtype=np.float64) * float(voxel_size) / 2.0  # x, y, z
    points = [("the map header's origin", origin), ("minus the header's origin", -origin),
              ("the coordinate origin (0, 0, 0)", np.zeros(3)),
              ("the centre of the map's box", origin + half_box),
              ("minus the centre of the map's box", -(origin + half_box)),
              ("N·voxel/2 (the box centre for a zero origin)", half_box),
              ("minus N·voxel/2", -half_box)]
    out, seen = [], []
    for name, p in points:
        if any(np.allclose(p, q, atol=0.01) for q in seen):
            continue
        seen.append(p)
        out.append((name, tuple(float(v) for v in p)))
    return out


def find_placement(cc_mask_at: Callable, centre, points, min_cc: float = MIN_CC_MASK
                   ) -> Placement:
    """The model's placement for Level A.

    ``cc_mask_at(shift)`` gives CC_mask with every atom moved by ``shift`` (Å, x, y, z);
    ``centre`` is the model's geometric centre (x, y, z Å); ``points`` the candidates
    (:func:`candidate_points`). The model stays where it is when CC_mask there reaches
    ``min_cc``; otherwise the candidate with the largest CC_mask is taken if it is better than
    the input and reaches ``min_cc``. A CC that is not finite (no mask point in the box) is
    kept as NaN and ranks below every number."""
    def cc(shift):
        return float(cc_mask_at(np.asarray(shift, dtype=np.float64)))

    def rank(v):
        return v if np.isfinite(v) else -np.inf

    at_input = cc((0.0, 0.0, 0.0))
    zero = (0.0, 0.0, 0.0)
    if rank(at_input) >= min_cc:
        return Placement(at_input, zero, at_input, True)
    centre = np.asarray(centre, dtype=np.float64)
    tried = []
    for name, p in points:
        shift = tuple(float(v) for v in np.asarray(p) - centre)
        tried.append(Candidate(name, tuple(p), shift, cc(shift)))
    best = max(tried, key=lambda c: rank(c.cc_mask), default=None)
    if best is not None and rank(best.cc_mask) > rank(at_input) and rank(best.cc_mask) >= min_cc:
        return Placement(at_input, best.shift, best.cc_mask, True, tried)
    return Placement(at_input, zero, at_input, False, tried)
