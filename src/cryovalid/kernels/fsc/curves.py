"""FSC, DPR and SSNR of two half maps, per Fourier shell, from their transforms.

Part of :mod:`cryovalid.kernels.fsc` (the methods are described there)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryovalid.kernels import fourier



def fsc(F1: np.ndarray, F2: np.ndarray, shells: fourier.FourierShells) -> np.ndarray:
    """FSC per shell: Re Σ F1·F2* / sqrt(Σ|F1|² Σ|F2|²) (dimensionless, NaN for a shell with
    no power)."""
    cross = shells.sum(_re_cross(F1, F2))
    p1 = shells.sum(_power(F1))
    p2 = shells.sum(_power(F2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return cross / np.sqrt(p1 * p2)


def _power(F):
    return F.real * F.real + F.imag * F.imag


def _re_cross(F1, F2):
    return F1.real * F2.real + F1.imag * F2.imag


@dataclass
class HalfMapCurves:
    """Per-shell curves of two half maps (all shape (n_shells,))."""

    fsc: np.ndarray
    dpr: np.ndarray  # degrees
    ssnr: np.ndarray  # mean amplitude ratio |F1+F2|/|F1-F2| minus 1 (the reference's SSNR)


def half_map_curves(F1: np.ndarray, F2: np.ndarray,
                    shells: fourier.FourierShells) -> HalfMapCurves:
    """FSC, DPR and SSNR of two half maps in one pass over the transforms.

    DPR (degrees): sqrt(Σ (|F1|+|F2|)·Δφ² / Σ (|F1|+|F2|)), Δφ = arg(F1·F2*) in [-180°, 180°]
    (Xmipp's amplitude-weighted definition).

    SSNR: the reference's estimate. With S = (h1+h2)/2 and N = (h1-h2)/2 it is the shell mean of
    the amplitude ratio |FT(S)|/|FT(N)| = |F1+F2|/|F1-F2|, minus 1. A coefficient where the two
    halves agree exactly contributes +inf (identical halves give an infinite SSNR). Under Wilson
    statistics the mean ratio is (π/2)·sqrt(1 + 2·S/N), so SSNR = 1 (ratio 2) corresponds to an FSC
    of about 0.237.
    """
    re_cross = _re_cross(F1, F2)
    a1 = np.abs(F1)
    a2 = np.abs(F2)
    p1 = shells.sum(a1 * a1)
    p2 = shells.sum(a2 * a2)
    with np.errstate(invalid="ignore", divide="ignore"):
        fsc_curve = shells.sum(re_cross) / np.sqrt(p1 * p2)

    # DPR
    im_cross = F1.imag * F2.real - F1.real * F2.imag
    dphi = np.degrees(np.arctan2(im_cross, re_cross))
    del im_cross, re_cross
    w = a1 + a2
    with np.errstate(invalid="ignore", divide="ignore"):
        dpr_curve = np.sqrt(shells.sum(w * dphi * dphi) / shells.sum(w))
    del dphi, w, a1, a2

    # SSNR (amplitude ratio of sum and difference)
    num = np.abs(F1 + F2)
    den = np.abs(F1 - F2)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = num / den
    ratio[den == 0] = np.inf
    del num, den
    with np.errstate(invalid="ignore"):
        ssnr_curve = shells.mean(ratio) - 1.0
    return HalfMapCurves(fsc=fsc_curve, dpr=dpr_curve, ssnr=ssnr_curve)
