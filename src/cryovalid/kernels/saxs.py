"""SAXS profile of a map, Guinier fit and the fit of a profile to an experimental curve (O.b).

The scatterers are the map's voxels inside the molecule's mask, each a point of weight
ρ_i·a³ at its voxel centre (a = voxel size, Å). The Debye formula (Debye 1915)

    I(q) = Σ_i Σ_j ρ_i ρ_j sin(q r_ij) / (q r_ij)

is evaluated exactly for this set of points through the density's autocorrelation
A(l) = Σ_x ρ(x) ρ(x + l): every pair distance is |l|·a for an integer lag vector l, so the
pair-distance distribution is the histogram of A over the integer squared lag lengths
k = |l|², P_k = Σ_{|l|² = k} A(l), and I(q) = Σ_k P_k sinc(q a √k). A is one zero-padded
rfftn (padding to twice the density's extent: no circular wrap), P one ``bincount``; no pair
list, no binning error. With q in 1/Å the profile is in (map units · Å³)².

Contrast: a cryo-EM map is already a contrast map (the solvent's level is the density of the
box outside the molecule); we subtract that level (the median outside the mask), so the
excluded volume of the solvent is accounted for by the map itself and no separate
excluded-volume term is added. The ratio of the map's Coulomb-potential contrast to the X-ray
electron-density contrast is taken as uniform over the molecule (only the scale is fitted).
Hydration layer (as CRYSOL, Svergun, Barberato & Koch 1995, J. Appl. Cryst. 28:768): a shell of
``shell_A`` Å around the mask with density ``shell_contrast`` × the molecule's mean density
(the mean of ρ over the mask: the mask is the molecule as modelled here; the mean over
the voxels above the threshold alone depends on the threshold, and for EMD-3488 at its
automatic threshold, which keeps 2 % of the box against the mask's 9.6 %, is several times
higher).

Guinier (Guinier 1939): ln I(q) = ln I(0) − q² Rg²/3 for q·Rg ≤ 1.3, the range found
automatically (:func:`guinier`). Real-space Rg: Rg² = Σ ρ_i |x_i − c|² / Σ ρ_i, c the density's
centre (equal to Σ_k P_k r_k² / (2 Σ_k P_k), which the tests check).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.fft
from scipy import ndimage

GUINIER_QRG_MAX = 1.3  # upper end of the Guinier range, q·Rg (globular particles)
GUINIER_MIN_POINTS = 5
GUINIER_ITERATIONS = 30
SIGMA_WINDOW = 31  # points of the running RMS of the second differences (sigma estimate)
MAX_PADDED_EDGE = 320  # the padded autocorrelation box; a larger density is binned first
SINC_CHUNK = 4_000_000  # q × distance values evaluated at once


def _workers() -> int:
    from cryovalid.kernels import fourier

    return fourier.workers()


def _bbox(mask: np.ndarray) -> tuple:
    idx = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
           for ax in range(3)]
    return tuple(slice(int(i[0]), int(i[-1]) + 1) for i in idx)


@dataclass
class ScatteringDensity:
    """The contrast density of the scatterers on a (possibly binned) grid (z, y, x).

    ``rho`` float32; ``voxel_size`` Å of that grid; ``bin_factor`` voxels of the map per grid
    voxel along each axis; ``level`` the solvent level subtracted; ``molecule_density`` the
    mean of (map − level) over the mask; ``shell_voxels`` voxels in the hydration layer;
    ``rho_dry`` the same density without the hydration layer."""
    rho: np.ndarray
    rho_dry: np.ndarray
    voxel_size: float
    bin_factor: int
    level: float
    molecule_density: float
    shell_voxels: int
    shell_A: float
    shell_contrast: float


def _bin(vol: np.ndarray, b: int) -> np.ndarray:
    if b == 1:
        return vol
    nz, ny, nx = (-(-n // b) * b for n in vol.shape)
    pad = np.zeros((nz, ny, nx), dtype=np.float32)
    pad[:vol.shape[0], :vol.shape[1], :vol.shape[2]] = vol
    return pad.reshape(nz // b, b, ny // b, b, nx // b, b).sum(axis=(1, 3, 5), dtype=np.float32)


def scattering_density(vol, mask, voxel_size: float, shell_A: float = 3.0,
                       shell_contrast: float = 0.10,
                       max_padded_edge: int = MAX_PADDED_EDGE) -> ScatteringDensity:
    """The scatterers' contrast density: (map − solvent level) inside ``mask``, plus the
    hydration layer (the voxels outside the mask within ``shell_A`` Å, Euclidean, of a mask
    voxel, at ``shell_contrast`` × the molecule's mean density), cropped to the bounding box
    (with the shell; a shell beyond the map's box is lost) and binned by an integer factor when its
    padded box would exceed ``max_padded_edge`` voxels (block sums: weights ρ·a³ add up)."""
    vol = np.asarray(vol, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("the mask is empty")
    outside = vol[~mask]
    level = float(np.median(outside)) if outside.size else 0.0
    rho0 = vol - np.float32(level)
    mol = float(rho0[mask].mean())
    margin = int(np.ceil(max(shell_A, 0.0) / voxel_size)) + 1
    box = tuple(slice(max(0, s.start - margin), min(n, s.stop + margin))
                for s, n in zip(_bbox(mask), mask.shape))
    m = mask[box]
    dry = np.where(m, rho0[box], np.float32(0)).astype(np.float32)
    if shell_A > 0:
        # the voxels outside the mask whose centre lies within shell_A of a mask voxel's centre
        dist = ndimage.distance_transform_edt(~m, sampling=voxel_size)
        shell = (dist > 0) & (dist <= shell_A)
    else:
        shell = np.zeros_like(m)
    wet = dry + np.where(shell, np.float32(shell_contrast * mol), np.float32(0))
    extent = max(dry.shape)
    b = max(1, int(np.ceil(2 * extent / max_padded_edge)))
    return ScatteringDensity(rho=_bin(wet.astype(np.float32), b), rho_dry=_bin(dry, b),
                             voxel_size=float(voxel_size) * b, bin_factor=b, level=level,
                             molecule_density=mol, shell_voxels=int(shell.sum()),
                             shell_A=float(max(shell_A, 0.0)),
                             shell_contrast=float(shell_contrast))


def distance_distribution(rho: np.ndarray, voxel_size: float):
    """(r (Å), P) of the point scatterers ρ on the grid: P_k = Σ over the lags l with |l|² = k
    of the autocorrelation A(l), r = a√k, for every k where some lag exists (P may be signed
    for a signed density). Σ P = (Σ ρ)²."""
    rho = np.asarray(rho, dtype=np.float32)
    shape = tuple(int(scipy.fft.next_fast_len(2 * n, real=True)) for n in rho.shape)
    ft = scipy.fft.rfftn(rho, s=shape, workers=_workers())
    np.multiply(ft, ft.conj(), out=ft)
    acf = scipy.fft.irfftn(ft, s=shape, workers=_workers()).astype(np.float32)
    del ft
    lag2 = []
    for n in shape:
        i = np.arange(n, dtype=np.int64)
        lag = np.where(i <= n // 2, i, i - n)
        lag2.append(lag * lag)
    kmax = int(sum(int(v.max()) for v in lag2))
    plane = (lag2[1][:, None] + lag2[2][None, :]).ravel()  # y, x part of |l|², one z-plane
    p = np.zeros(kmax + 1, dtype=np.float64)
    present = np.zeros(kmax + 1, dtype=bool)
    for z in range(shape[0]):  # plane by plane: no full-size index array
        k = plane + lag2[0][z]
        p += np.bincount(k, weights=acf[z].ravel().astype(np.float64), minlength=kmax + 1)
        present[k] = True
    kk = np.flatnonzero(present)
    return voxel_size * np.sqrt(kk.astype(np.float64)), p[kk]


def profile(r: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """I(q) = Σ_k P_k sin(q r_k)/(q r_k) (Debye), q in 1/Å, r in Å; float64."""
    q = np.asarray(q, dtype=np.float64)
    out = np.empty(q.size, dtype=np.float64)
    step = max(1, SINC_CHUNK // max(1, r.size))
    for i in range(0, q.size, step):
        qs = q[i:i + step]
        out[i:i + step] = np.sinc(np.outer(qs, r) / np.pi) @ p
    return out


def rg_real_space(rho: np.ndarray, voxel_size: float) -> Optional[float]:
    """Radius of gyration (Å) of the density ρ (weights may be signed; None if Σρ ≤ 0)."""
    rho = np.asarray(rho, dtype=np.float64)
    total = rho.sum()
    if not total > 0:
        return None
    v = 0.0
    for axis in range(3):  # Σ ρ |x − c|² = Σ over the axes of the marginals' second moments
        marg = rho.sum(axis=tuple(a for a in range(3) if a != axis))
        i = np.arange(marg.size, dtype=np.float64)
        c = (marg * i).sum() / total
        v += float((marg * (i - c) ** 2).sum()) / total
    return float(np.sqrt(v)) * voxel_size if v > 0 else None


def rg_from_distribution(r: np.ndarray, p: np.ndarray) -> Optional[float]:
    """Rg (Å) from the pair-distance distribution: Rg² = Σ P r² / (2 Σ P)."""
    s = float(p.sum())
    v = float((p * r * r).sum()) / (2 * s) if s > 0 else -1.0
    return float(np.sqrt(v)) if v > 0 else None


@dataclass
class Guinier:
    rg: float  # Å
    i0: float
    q_min: float  # 1/Å, the range used
    q_max: float
    n_points: int
    first: int  # index range [first, last) of the points used
    last: int


def guinier(q, intensity, sigma=None, qrg_max: float = GUINIER_QRG_MAX,
            min_points: int = GUINIER_MIN_POINTS) -> Optional[Guinier]:
    """Guinier fit with an automatic range: from the first point with I > 0, the points with
    q ≤ qrg_max/Rg, Rg refitted until the range no longer changes (weighted by I/σ when σ is
    given: the error of ln I). The first range is the first ``min_points`` points. None when
    fewer than ``min_points`` points qualify or the slope is not negative."""
    q = np.asarray(q, dtype=np.float64)
    y = np.asarray(intensity, dtype=np.float64)
    pos = np.flatnonzero(y > 0)
    if pos.size < min_points:
        return None
    first = int(pos[0])
    last = first + min_points
    fit = None
    for _ in range(GUINIER_ITERATIONS):
        sel = slice(first, last)
        qq, yy = q[sel], y[sel]
        if (yy <= 0).any() or yy.size < min_points:
            return fit
        w = (yy / np.asarray(sigma, dtype=np.float64)[sel]) if sigma is not None else None
        slope, icpt = np.polyfit(qq * qq, np.log(yy), 1, w=w)
        if not slope < 0:
            return fit
        rg = float(np.sqrt(-3.0 * slope))
        fit = Guinier(rg, float(np.exp(icpt)), float(qq[0]), float(qq[-1]), int(yy.size),
                      first, last)
        new_last = int(np.searchsorted(q, qrg_max / rg, side="right"))
        if new_last - first < min_points:
            return None
        if new_last == last:
            break
        last = new_last
    return fit


def estimate_sigma(intensity, window: int = SIGMA_WINDOW) -> np.ndarray:
    """Standard error per point of a curve given without one: the point-to-point scatter,
    the running root-mean-square (``window`` points) of (I_{i-1} − 2 I_i + I_{i+1}) / √6 (the
    second difference of independent noise of sd σ has sd √6 σ; the curve's own curvature is
    negligible between neighbouring points of a finely sampled curve). A mean of squares, not
    a median: the estimate's scatter is ~18 % for 31 points, and χ² weights 1/σ², so a
    noisier estimate would inflate it (measured on the 5ME2 test curve: E[σ²/σ̂²] = 1.15 for
    31 points, 1.37 for a 15-point running median). Floored at 10⁻⁶ of max |I|."""
    y = np.asarray(intensity, dtype=np.float64)
    d = (y[:-2] - 2 * y[1:-1] + y[2:]) / np.sqrt(6.0)
    d = np.concatenate([d[:1], d, d[-1:]])
    ms = ndimage.uniform_filter1d(d * d, size=min(window, d.size), mode="nearest")
    return np.maximum(np.sqrt(ms), 1e-6 * float(np.abs(y).max()))


@dataclass
class ProfileFit:
    scale: float
    background: float
    chi2: float  # reduced: Σ((I − fit)/σ)² / (N − 2)
    fitted: np.ndarray  # scale·model + background
    residuals: np.ndarray  # (I − fit)/σ


def fit_profile(model, intensity, sigma) -> ProfileFit:
    """Weighted least squares of I ≈ scale·model + background (weights 1/σ²)."""
    m = np.asarray(model, dtype=np.float64)
    y = np.asarray(intensity, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    a = np.stack([m / s, 1.0 / s], axis=1)
    (scale, bg), *_ = np.linalg.lstsq(a, y / s, rcond=None)
    fitted = scale * m + bg
    resid = (y - fitted) / s
    chi2 = float((resid ** 2).sum() / max(1, y.size - 2))
    return ProfileFit(float(scale), float(bg), chi2, fitted, resid)
