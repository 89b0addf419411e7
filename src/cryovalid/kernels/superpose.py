"""Rigid superposition of point sets (Kabsch 1976, Acta Cryst. A32:922) and per-residue
deviations between the models of an ensemble (Level A's multimodel item, A.c)."""
from __future__ import annotations

import numpy as np


def kabsch(mobile: np.ndarray, target: np.ndarray):
    """(R, t) minimising Σ |R·mobile_i + t − target_i|² over rotations R (no reflection).
    ``mobile``, ``target``: (n, 3) Å, n ≥ 3. Apply as ``mobile @ R.T + t``."""
    pm, pt = mobile.mean(axis=0), target.mean(axis=0)
    h = (mobile - pm).T @ (target - pt)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return r, pt - pm @ r.T


def ensemble_deviation(models: np.ndarray) -> tuple:
    """Per-point RMSD of an ensemble after superposing every model on the first.

    ``models``: (k, n, 3) Å, k ≥ 2 models of the same n points (e.g. Cα atoms), NaN where a
    model lacks the point. Each model is superposed on model 0 over the points both hold.
    Returns (rmsd per point (n,) Å — the root mean square over models 1…k−1 of the distance
    to model 0 — NaN where no other model holds it; overall RMSD per model (k−1,) Å)."""
    models = np.asarray(models, dtype=np.float64)
    ref = models[0]
    d2 = np.full(models.shape[:2], np.nan)
    per_model = []
    for k in range(1, len(models)):
        both = np.all(np.isfinite(ref), axis=1) & np.all(np.isfinite(models[k]), axis=1)
        if np.count_nonzero(both) < 3:
            per_model.append(float("nan"))
            continue
        r, t = kabsch(models[k][both], ref[both])
        moved = models[k] @ r.T + t
        d2[k] = np.sum((moved - ref) ** 2, axis=1)
        per_model.append(float(np.sqrt(np.nanmean(d2[k][both]))))
    with np.errstate(invalid="ignore"):
        counts = np.sum(np.isfinite(d2[1:]), axis=0)
        rmsd = np.where(counts > 0, np.sqrt(np.nansum(d2[1:], axis=0) / np.maximum(counts, 1)),
                        np.nan)
    return rmsd, np.array(per_model)
