"""Correlation of a rod's cylinder with a template over twist-preserving shifts.

Part of :mod:`cryovalid.kernels.hand` (the method is described there)."""
from __future__ import annotations

import numpy as np


def _twisted(cyl, radii):
    """Remove the cylindrical average (Bessel order 0: the plain rod, the same for both hands)
    and weight by sqrt(r) (the area element r·dr·dφ·dz of a correlation). Works on (..., n_r,
    n_phi, n_z)."""
    out = cyl - cyl.mean(axis=-2, keepdims=True)
    return out * np.sqrt(np.asarray(radii, dtype=np.float32))[:, None, None]


def correlate(m_cyls, t_long, radii, max_shift: int = 2):
    """Best normalised correlation of map samplings with a long template sampling.

    ``m_cyls``: (n, n_r, n_phi, n_z) cylinders of one length; ``t_long``: (n_r, n_phi, n_zt)
    with n_zt ≥ n_z + 2·max_shift, centred. The twisted parts (see :func:`_twisted`) are
    correlated over every rotation about the axis (circular, by FFT along φ) and every axial
    shift of up to ``max_shift`` samples; each correlation is divided by both norms.
    Returns (cc (n,), rotation index (n,), shift (n,)); the template rolled by the rotation
    index and shifted by the shift is the best-aligned template."""
    m_cyls = np.asarray(m_cyls, dtype=np.float32)
    n, _, n_phi, nz = m_cyls.shape
    m = _twisted(m_cyls, radii)
    m_norm = np.sqrt((m * m).sum(axis=(1, 2, 3)))
    m_ft = np.fft.rfft(m, axis=2)
    start0 = t_long.shape[2] // 2 - nz // 2
    best_cc = np.full(n, -np.inf)
    best_k = np.zeros(n, dtype=int)
    best_s = np.zeros(n, dtype=int)
    for s in range(-max_shift, max_shift + 1):
        t = _twisted(t_long[:, :, start0 + s:start0 + s + nz], radii)
        t_norm = float(np.sqrt((t * t).sum()))
        cross = np.einsum("arfz,rfz->af", m_ft, np.conj(np.fft.rfft(t, axis=1)))
        with np.errstate(invalid="ignore", divide="ignore"):
            cc = np.fft.irfft(cross, n=n_phi, axis=1) / (m_norm[:, None] * t_norm)
        cc = np.nan_to_num(cc, nan=0.0, posinf=0.0, neginf=0.0)
        k = np.argmax(cc, axis=1)
        val = cc[np.arange(n), k]
        better = val > best_cc
        best_cc[better], best_k[better], best_s[better] = val[better], k[better], s
    return best_cc, best_k, best_s
