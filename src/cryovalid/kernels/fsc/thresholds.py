"""Threshold curves (half-bit, 3σ) from the number of independent voxels per shell.

Part of :mod:`cryovalid.kernels.fsc` (the methods are described there)."""
from __future__ import annotations

import numpy as np

from cryovalid.kernels import fourier
from cryovalid.kernels.fsc.constants import EMDB_VA_SAMPLING, FSC_GOLD, FSC_HALF


def effective_voxels(shells: fourier.FourierShells, n_asym: int = 1) -> np.ndarray:
    """Effective number of independent voxels per shell, as EMDB Validation Analysis computes it.

    n_eff(i) = (4/3)·π·(i³ - (i-1)³) · (1.5·0.66)² / (2·n_asym) for shell i ≥ 1 (at least 1),
    i.e. VA's shell volume in voxels with its index convention (its curve value for shell i uses
    the volume between radii i-1 and i). For a non-cubic box the count is scaled by
    nx·ny·nz / N³, the density of Fourier samples relative to a cube of side N.
    Shell 0 gets 1.
    """
    i = np.arange(shells.n_shells, dtype=np.float64)
    vol = (4.0 / 3.0) * np.pi * (i ** 3 - np.maximum(i - 1.0, 0.0) ** 3)
    density = float(np.prod(shells.shape)) / float(shells.n) ** 3
    n_eff = vol * EMDB_VA_SAMPLING / (2.0 * n_asym) * density
    return np.maximum(n_eff, 1.0)


def threshold_curves(shells: fourier.FourierShells, n_asym: int = 1) -> dict:
    """Threshold curves per shell (van Heel & Schatz 2005, as EMDB VA):

    * ``half_bit``: (0.2071 + 1.9102/√n) / (1.2071 + 0.9102/√n)
    * ``one_bit``: (0.5 + 2.4142/√n) / (1.5 + 1.4142/√n)
    * ``three_sigma``: 3 / (√n + 2)
    * ``0.143`` and ``0.5``: constants.

    n = :func:`effective_voxels`; the information curves are 1 at shell 0 as in VA.
    """
    sq = np.sqrt(effective_voxels(shells, n_asym))
    half_bit = (0.2071 + 1.9102 / sq) / (1.2071 + 0.9102 / sq)
    one_bit = (0.5 + 2.4142 / sq) / (1.5 + 1.4142 / sq)
    three_sigma = 3.0 / (sq + 2.0)
    for c in (half_bit, one_bit, three_sigma):
        c[0] = 1.0
    n = shells.n_shells
    return {"0.143": np.full(n, FSC_GOLD), "0.5": np.full(n, FSC_HALF),
            "half_bit": half_bit, "one_bit": one_bit, "three_sigma": three_sigma}
