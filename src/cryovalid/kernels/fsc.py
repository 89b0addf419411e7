"""Half-map resolution kernels: FSC, DPR, SSNR, threshold curves, crossings, phase
randomisation (masked FSC correction) and the FDR-FSC permutation test.

All functions take the rfft of the two half maps (complex64, see :mod:`cryovalid.kernels.fourier`)
and a :class:`~cryovalid.kernels.fourier.FourierShells`; curves are arrays with one value per
shell, shell r having the physical frequency r/(N·Ts) in 1/Å (N = largest box side). Sums over
the half-space rfft grid use the Hermitian weights of ``FourierShells.sum`` and therefore equal
sums over the full transform.

References
----------
* FSC: Harauz & van Heel (1986) Optik 73:146; 0.143 threshold: Rosenthal & Henderson (2003)
  J Mol Biol 333:721.
* DPR: Frank, Verschoor & Boublik (1981) Science 214:1353, resolution where the DPR reaches 45°.
  (The reference's 103.9° is the rms of a phase difference uniform in [-180°, 180°], 180/√3: the
  random-phase limit itself, which the curve approaches but never meaningfully crosses.)
* Half-bit, one-bit and 3σ curves: van Heel & Schatz (2005) J Struct Biol 151:250, with the
  effective number of voxels used by EMDB Validation Analysis (Wang et al. 2022, Acta D 78:542).
* Masked FSC corrected by phase randomisation: Chen et al. (2013) Ultramicroscopy 135:24; the
  details (randomise beyond the first shell where the unmasked FSC < 0.8, correct from two shells
  further on, clip at 0) follow RELION's postprocessing.
* FDR-FSC: Beckers & Sachse (2020) IUCrJ 7:1196 (permutation test per shell, Benjamini–Yekutieli
  false-discovery-rate control).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

from cryovalid.kernels import fourier

FSC_GOLD = 0.143
FSC_HALF = 0.5
DPR_THRESHOLD_DEG = 45.0  # Frank et al. 1981 (the reference's 103.9° = 180/√3 is the random limit)
DPR_RANDOM_DEG = 180.0 / math.sqrt(3.0)  # rms of uniformly random phase differences, 103.92°
SSNR_THRESHOLD = 1.0
RANDOMISE_AT_FSC = 0.8  # RELION: phase-randomise beyond the first shell with unmasked FSC < 0.8
EMDB_VA_SAMPLING = (1.5 * 0.66) ** 2  # EMDB VA's reduction of the shell voxel count (n_eff)


# ---- basic curves -----------------------------------------------------------------------
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


# ---- threshold curves -------------------------------------------------------------------
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


# ---- crossings --------------------------------------------------------------------------
CROSSES, NEVER, AT_START = "crosses", "never", "at_start"


@dataclass
class Crossing:
    """Where a curve first passes a threshold.

    frequency : 1/Å at the crossing (linear interpolation), None unless status == "crosses"
    index : index of the first sample past the threshold (None when it never passes)
    status : "crosses"; "never" (the curve never passes the threshold); "at_start" (it is
        already past the threshold at the first sample considered, so no crossing is reported)
    """

    frequency: float | None
    index: int | None
    status: str

    @property
    def resolution(self) -> float | None:
        """Resolution in Å (1/frequency), None when there is no crossing."""
        if self.frequency is None or self.frequency <= 0:
            return None
        return 1.0 / self.frequency


def first_crossing(x, y, threshold, mode: str = "below", start: int = 1) -> Crossing:
    """First crossing of ``y`` (sampled at ``x``) past ``threshold`` (a number or a curve).

    This is the reference's ``findFirstCross`` with its rules written down:

    * the search starts at sample ``start`` (default 1: the DC term, whose FSC is ±1 and whose
      phase difference is 0° or 180° depending only on the signs of the map means, is ignored);
    * the first index i0 ≥ start where y < threshold (``mode="below"``) or y > threshold
      (``mode="above"``) is the crossing; NaN never counts as past the threshold;
    * if i0 == start the curve is past the threshold from the beginning and, as in the reference
      (which ignores crossings at the first two samples), no crossing is reported
      (status "at_start");
    * otherwise x is interpolated linearly between samples i0-1 and i0 at the threshold
      (for a threshold curve, at the zero of y - threshold).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    t = np.broadcast_to(np.asarray(threshold, dtype=np.float64), y.shape)
    d = y - t
    with np.errstate(invalid="ignore"):
        past = d < 0 if mode == "below" else d > 0
    past[:start] = False
    hits = np.flatnonzero(past)
    if hits.size == 0:
        return Crossing(None, None, NEVER)
    i0 = int(hits[0])
    if i0 <= start:
        return Crossing(None, i0, AT_START)
    d0, d1 = d[i0 - 1], d[i0]
    if not np.isfinite(d0) or not np.isfinite(d1) or d1 == d0:
        f = x[i0] if not np.isfinite(d0) else x[i0 - 1]
    else:
        f = x[i0 - 1] + (x[i0] - x[i0 - 1]) * (0.0 - d0) / (d1 - d0)
    return Crossing(float(f), i0, CROSSES)


# ---- masked FSC with phase-randomisation correction ---------------------------------------
def randomise_phases(F: np.ndarray, shells: fourier.FourierShells, beyond_shell: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Copy of F whose coefficients in shells > ``beyond_shell`` (including the corners beyond
    Nyquist) get uniformly random phases; amplitudes are kept (Chen et al. 2013)."""
    out = F.copy()
    sel = shells.index > beyond_shell
    n = int(np.count_nonzero(sel))
    phase = rng.uniform(0.0, 2.0 * np.pi, size=n).astype(np.float32)
    amp = np.abs(out[sel])
    out[sel] = amp * (np.cos(phase) + 1j * np.sin(phase)).astype(np.complex64)
    return out


@dataclass
class MaskedFSC:
    masked: np.ndarray  # FSC of the masked halves
    random_masked: np.ndarray | None  # FSC of the masked phase-randomised halves
    corrected: np.ndarray  # FSC_true of Chen et al. (2013)
    randomised_beyond: int | None  # shell index beyond which the phases were randomised


def background_level(data: np.ndarray, mask: np.ndarray) -> np.float32:
    """Mean of ``data`` outside a soft ``mask`` (weights 1 − mask); the whole box's mean when the
    mask fills the box. Subtracted before masking, so that masked FSCs do not depend on an
    offset of the map."""
    outside = 1.0 - mask
    w = float(outside.sum(dtype=np.float64))
    if w < 1.0:
        return np.float32(data.mean(dtype=np.float64))
    return np.float32(np.vdot(data.ravel().astype(np.float64), outside.ravel()) / w)


def masked_fsc(h1: np.ndarray, h2: np.ndarray, F1: np.ndarray, F2: np.ndarray,
               mask: np.ndarray, shells: fourier.FourierShells, fsc_unmasked: np.ndarray,
               seed: int = 0) -> MaskedFSC:
    """FSC of the halves multiplied by ``mask``, and its phase-randomisation-corrected version.

    The phases of both halves are randomised beyond r_rand, the first shell (after the DC term)
    where the unmasked FSC drops below 0.8 (RELION's choice). With FSC_n the FSC of the masked
    randomised halves and FSC_t the masked FSC, the corrected curve is FSC_t for shells
    < r_rand + 2 and (FSC_t - FSC_n)/(1 - FSC_n) beyond (0 when FSC_n > FSC_t), as in RELION.
    If the unmasked FSC never drops below 0.8 (identical halves), no correction is applied.
    """
    mask = mask.astype(np.float32, copy=False)
    # each half's solvent level is removed before masking: an offset c would enter both halves
    # as the same c·mask and correlate them at every frequency
    b1, b2 = background_level(h1, mask), background_level(h2, mask)
    m1 = fourier.rfft((h1 - b1) * mask)
    m2 = fourier.rfft((h2 - b2) * mask)
    fsc_t = fsc(m1, m2, shells)
    del m1, m2
    cross = first_crossing(shells.frequency, fsc_unmasked, RANDOMISE_AT_FSC, "below")
    if cross.index is None:
        return MaskedFSC(fsc_t, None, fsc_t.copy(), None)
    r_rand = max(int(cross.index), 1)
    rng = np.random.default_rng(seed)
    r1 = fourier.irfft(randomise_phases(F1, shells, r_rand, rng), h1.shape)
    r1 -= b1  # the DC term is kept by the randomisation, so is the offset
    r1 *= mask
    R1 = fourier.rfft(r1)
    del r1
    r2 = fourier.irfft(randomise_phases(F2, shells, r_rand, rng), h2.shape)
    r2 -= b2
    r2 *= mask
    R2 = fourier.rfft(r2)
    del r2
    fsc_n = fsc(R1, R2, shells)
    del R1, R2
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(fsc_n > fsc_t, 0.0, (fsc_t - fsc_n) / (1.0 - fsc_n))
    i = np.arange(shells.n_shells)
    corrected = np.where(i < r_rand + 2, fsc_t, corr)
    return MaskedFSC(fsc_t, fsc_n, corrected, r_rand)


# ---- FDR-FSC ----------------------------------------------------------------------------
def benjamini_yekutieli(p: np.ndarray) -> np.ndarray:
    """Benjamini–Yekutieli adjusted p-values (q-values), valid under any dependence:
    q_(i) = min_{j ≥ i} min(1, p_(j) · m · c(m) / j), c(m) = Σ_{k=1..m} 1/k."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    c = np.sum(1.0 / np.arange(1, m + 1))
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m * c / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


def unique_half_space(shape) -> np.ndarray:
    """Boolean mask on the rfft grid keeping each Hermitian pair once.

    Columns 0 < kx < nx/2 hold one member of every pair; in the planes kx = 0 and (even nx)
    kx = nx/2 the point (kz, ky) and its mate (-kz, -ky) both appear, and we keep the one with
    the smaller linear index (self-conjugate points, which are real, are kept once).
    """
    nz, ny, nx = shape
    nxh = nx // 2 + 1
    keep = np.ones((nz, ny, nxh), dtype=bool)
    iz = np.arange(nz)[:, None]
    iy = np.arange(ny)[None, :]
    lin = iz * ny + iy
    mate = ((-iz) % nz) * ny + ((-iy) % ny)
    plane_keep = lin <= mate
    keep[:, :, 0] = plane_keep
    if nx % 2 == 0:
        keep[:, :, nxh - 1] = plane_keep
    return keep


@dataclass
class FdrFscResult:
    fsc: np.ndarray  # per shell, from the unique coefficients of the (masked) halves
    p_values: np.ndarray
    q_values: np.ndarray
    n_draws: np.ndarray  # permutation draws used per shell (0: rule without permutations)
    significant: np.ndarray  # q <= alpha
    last_shell: int | None  # last significant shell before the first non-significant one
    all_significant: bool
    resolution: float | None  # Å; None when no shell after the DC term is significant


def fdr_fsc(F1: np.ndarray, F2: np.ndarray, shells: fourier.FourierShells,
            alpha: float = 0.01, mask_coefficient: float = 0.7, n_asym: int = 1,
            min_draws: int | None = None, max_samples: int = 200_000,
            seed: int = 3) -> FdrFscResult:
    """FSC permutation test with false-discovery-rate control (Beckers & Sachse 2020).

    For every shell the observed FSC of the two halves is compared with its distribution when
    the pairing of the coefficients of half 1 and half 2 is random:

    * coefficients: the shell's independent rfft coefficients (one per Hermitian pair);
    * effective sample size: the null distribution is built from a random subset of
      m = min(mask_coefficient·n/n_asym, max_samples) coefficients (0.7 as SPOC's global mode),
      which widens it to account for the correlation between neighbouring coefficients that a
      real-space mask introduces; shells with m < 10 use SPOC's fixed rule (significant when
      FSC ≥ 0.75) and the DC term is always significant;
    * draws: for a random ordering of the subset, the correlation of half 1 with half 2 shifted
      cyclically by k = 1..m-1 positions; all m-1 shifts come from one FFT-based circular
      cross-correlation. Each shift pairs the coefficients by a random permutation (a
      randomisation test over the cyclic group). Orderings are repeated until at least
      ``min_draws`` draws are made; by default min_draws = ⌈n_shells·c(n_shells)/alpha⌉, so that
      the smallest attainable p-value can pass the Benjamini–Yekutieli step;
    * p = (1 + #{draws ≥ observed}) / (1 + #draws);
    * q-values by Benjamini–Yekutieli over all shells; a shell is significant when q ≤ alpha.

    The resolution is 1/frequency of the last shell before the first non-significant one (no
    interpolation, as SPOC); 2·Ts when every shell is significant; None when already shell 1
    is not significant.
    """
    n_shells = shells.n_shells
    keep = unique_half_space(shells.shape) & (shells.index < n_shells)
    idx = shells.index[keep]
    a = F1[keep]
    b = F2[keep]
    order = np.argsort(idx, kind="stable")
    idx = idx[order]
    a = a[order]
    b = b[order]
    counts = np.bincount(idx, minlength=n_shells)[:n_shells]
    starts = np.concatenate(([0], np.cumsum(counts)))

    with np.errstate(invalid="ignore", divide="ignore"):
        num = np.bincount(idx, weights=_re_cross(a, b), minlength=n_shells)[:n_shells]
        pa = np.bincount(idx, weights=_power(a), minlength=n_shells)[:n_shells]
        pb = np.bincount(idx, weights=_power(b), minlength=n_shells)[:n_shells]
        obs = num / np.sqrt(pa * pb)

    if min_draws is None:
        c = float(np.sum(1.0 / np.arange(1, n_shells + 1)))
        min_draws = int(math.ceil(n_shells * c / alpha))
    rng = np.random.default_rng(seed)
    p = np.ones(n_shells)
    draws = np.zeros(n_shells, dtype=np.int64)
    p[0] = 0.0
    for r in range(1, n_shells):
        n = int(counts[r])
        m = int(max(min(mask_coefficient * n / n_asym, max_samples), 1.0))
        if m < 10 or not np.isfinite(obs[r]):
            p[r] = 0.0 if (np.isfinite(obs[r]) and obs[r] >= 0.75) else 1.0
            continue
        sa = a[starts[r]:starts[r + 1]]
        sb = b[starts[r]:starts[r + 1]]
        reps = int(math.ceil(min_draws / (m - 1)))
        n_ge = 0
        done = 0
        # batches of orderings keep the temporary arrays to a few MB
        per_batch = max(1, 2_000_000 // max(n, 1))
        while done < reps:
            nb = min(per_batch, reps - done)
            perm = rng.permuted(np.broadcast_to(np.arange(n), (nb, n)), axis=1)[:, :m]
            xa = sa[perm]
            xb = sb[perm]
            A = scipy.fft.fft(xa, axis=1)
            B = scipy.fft.fft(xb, axis=1)
            cc = scipy.fft.ifft(np.conj(A) * B, axis=1).real[:, 1:]
            norm = np.sqrt(_power(xa).sum(axis=1) * _power(xb).sum(axis=1))
            with np.errstate(invalid="ignore", divide="ignore"):
                null = cc / norm[:, None]
            n_ge += int(np.count_nonzero(null >= obs[r]))
            done += nb
        draws[r] = reps * (m - 1)
        p[r] = (1.0 + n_ge) / (1.0 + draws[r])

    q = benjamini_yekutieli(p)
    significant = q <= alpha
    not_sig = np.flatnonzero(~significant)
    ts = shells.voxel_size
    if not_sig.size == 0:
        return FdrFscResult(obs, p, q, draws, significant, n_shells - 1, True, 2.0 * ts)
    last = int(not_sig[0]) - 1
    if last <= 0:
        return FdrFscResult(obs, p, q, draws, significant, None, False, None)
    return FdrFscResult(obs, p, q, draws, significant, last, False,
                        float(1.0 / shells.frequency[last]))
