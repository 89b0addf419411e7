"""FDR-FSC: the permutation test of Beckers & Sachse (2020) with Benjamini–Yekutieli control.

Part of :mod:`cryovalid.kernels.fsc` (the methods are described there)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

from cryovalid.kernels import fourier
from cryovalid.kernels.fsc.curves import _power, _re_cross


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
