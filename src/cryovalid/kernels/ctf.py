"""The contrast transfer function of the electron microscope (weak-phase approximation), on the
``rfft2`` grid of square images, batched over particles.

RELION's convention (Scheres 2012, J Struct Biol 180:519; the same as CTFFIND4, Rohou &
Grigorieff 2015, J Struct Biol 192:216): for a spatial frequency s (1/Å) at azimuth α,

    Δf(α) = ½(U + V) + ½(U − V)·cos(2(α − θ))      (U, V: defocus in Å, underfocus positive;
                                                     θ: rlnDefocusAngle, degrees)
    χ(s)  = π λ Δf s² − ½ π Cs λ³ s⁴ + φ            (φ: rlnPhaseShift, degrees)
    CTF   = −(√(1 − Q0²)·sin χ + Q0·cos χ) · exp(−B s²/4) · scale

with λ the relativistic electron wavelength (Å) at the accelerating voltage, Cs in mm
(× 10⁷ Å), Q0 the amplitude contrast and B (Å², rlnCtfBfactor) the envelope RELION applies as
exp(−B s²/4). Images are (y, x) with pixel b//2 the centre; the grid is that of
``scipy.fft.rfft2`` (rows ``fftfreq(b)``, columns ``rfftfreq(b)``).
"""
from __future__ import annotations

import numpy as np

# RELION column -> keyword of :func:`ctf_2d`
COLUMNS = {"rlnDefocusU": "defocus_u", "rlnDefocusV": "defocus_v",
           "rlnDefocusAngle": "angle_deg", "rlnPhaseShift": "phase_shift_deg",
           "rlnCtfBfactor": "bfactor", "rlnCtfScalefactor": "scale"}


def wavelength(kv: float) -> float:
    """Relativistic electron wavelength in Å for an accelerating voltage in kV."""
    v = float(kv) * 1e3
    return 12.2643247 / np.sqrt(v * (1 + 0.978466e-6 * v))


def frequencies(box: int, pixel_size: float):
    """(s² (b, b//2+1), azimuth α (b, b//2+1) radians) of the rfft2 grid, s in 1/Å."""
    ky = np.fft.fftfreq(box, pixel_size)[:, None]
    kx = np.fft.rfftfreq(box, pixel_size)[None, :]
    return kx * kx + ky * ky, np.arctan2(ky, kx) + 0.0 * kx


def _column(v, n):
    return np.broadcast_to(np.asarray(v, dtype=np.float64).reshape(-1), (n,))


def ctf_2d(box: int, pixel_size: float, defocus_u, defocus_v=None, angle_deg=0.0,
           voltage_kv: float = 300.0, cs_mm: float = 2.7, q0: float = 0.1,
           phase_shift_deg=0.0, bfactor=0.0, scale=1.0) -> np.ndarray:
    """(k, b, b//2+1) float32: the CTF (module docstring) of each of k particles, whose
    ``defocus_u``, ``defocus_v`` (Å; V = U when None), ``angle_deg``, ``phase_shift_deg``,
    ``bfactor`` (Å²) and ``scale`` are scalars or (k,) arrays."""
    u = np.atleast_1d(np.asarray(defocus_u, dtype=np.float64))
    n = u.size
    v = u if defocus_v is None else _column(defocus_v, n)
    th = np.radians(_column(angle_deg, n))
    ph = np.radians(_column(phase_shift_deg, n))
    b = _column(bfactor, n)
    sc = _column(scale, n)
    s2, alpha = frequencies(box, pixel_size)
    lam = wavelength(voltage_kv)
    cs = float(cs_mm) * 1e7
    out = np.empty((n, box, box // 2 + 1), dtype=np.float32)
    w = np.sqrt(max(0.0, 1.0 - q0 * q0))
    for lo in range(0, n, 256):  # bounded temporaries (256 × grid float64)
        sl = slice(lo, min(n, lo + 256))
        df = (0.5 * (u[sl] + v[sl])[:, None, None]
              + 0.5 * (u[sl] - v[sl])[:, None, None]
              * np.cos(2.0 * (alpha[None] - th[sl, None, None])))
        chi = (np.pi * lam * df * s2 - 0.5 * np.pi * cs * lam ** 3 * s2 * s2
               + ph[sl, None, None])
        env = np.exp(-b[sl, None, None] * s2 / 4.0) * sc[sl, None, None]
        out[sl] = -(w * np.sin(chi) + q0 * np.cos(chi)) * env
    return out


def particle_parameters(table, n: int):
    """The CTF keywords of :func:`ctf_2d` for every particle from a RELION table (pandas
    DataFrame), or None when it has no ``rlnDefocusU``. Missing optional columns take their
    neutral value (V = U, angle 0, phase 0, B 0, scale 1)."""
    if "rlnDefocusU" not in table.columns:
        return None
    out = {}
    defaults = {"defocus_v": None, "angle_deg": 0.0, "phase_shift_deg": 0.0, "bfactor": 0.0,
                "scale": 1.0}
    for col, key in COLUMNS.items():
        if col in table.columns:
            out[key] = np.asarray(table[col], dtype=np.float64).reshape(n)
        else:
            out[key] = defaults[key]
    if out["defocus_v"] is None:
        out["defocus_v"] = out["defocus_u"]
    return out
