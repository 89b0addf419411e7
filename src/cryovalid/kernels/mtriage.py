"""Phenix mtriage's resolution numbers, computed with numpy/scipy: d99, d_model, d_model(B=0),
d_FSC_model at FSC = 0 / 0.143 / 0.5, the overall B, each on the map as it is ("unmasked")
and on the map multiplied by a smooth mask around the model ("masked"), plus the map–model FSC.

References
----------
* Afonine, Klaholz, Moriarty, Poon, Sobolev, Terwilliger, Adams & Urzhumtsev (2018) "New tools
  for the analysis and validation of cryo-EM maps and atomic models", Acta Cryst. D74:814
  (d99, d_model, d_FSC_model; cctbx ``mmtbx/maps/mtriage.py``,
  ``cctbx/maptbx/resolution_from_map_and_model.py``, ``cctbx/maptbx/resolution.h``).
* Jiang & Brünger (1994) J. Mol. Biol. 243:100 (the atom mask, via
  :func:`cryovalid.kernels.modelmap.atom_mask`).
* Savitzky & Golay (1964) Anal. Chem. 36:1627 (the smoothing of the FSC curve).

The exact recipe is level-a-methods.md, section "A.a"; cctbx-base 2025.11 is the oracle.

Conventions
-----------
* Fourier coefficients are those of the map's own box (cell = N·Ts per axis), real-to-complex
  (``scipy.fft.rfftn``, complex64) as in :mod:`cryovalid.kernels.fourier`. The "box hkl" set is
  cctbx's ``miller.structure_factor_box_from_map``: |h| ≤ (n − 1)//2 on each axis, F(000) left
  out, one coefficient per Friedel pair (on the rfft grid: kx > 0, plus the half of the kx = 0
  plane with ky > 0 or ky = 0, kz > 0). Sums over "coefficients" below run over that unique set,
  unweighted, as cctbx's do (d99 alone weighs them, see :func:`d99`).
* d (Å) of a coefficient = 1/|s|, s the physical frequency (1/Å); ss = s²/4 = 1/(4d²), so that a
  B factor (Å²) multiplies amplitudes by exp(−B·ss).
* The model map Fc comes from :func:`cryovalid.kernels.modelmap.model_map` (electron form
  factors, each atom's B; B = 0 for d_model) on ALL box hkl, no cut at the map's resolution
  (mtriage's f_calc is computed on the map's full box hkl set).

Resolution
----------
mtriage uses the resolution R it is given ONLY for the masked pass: the mask's atoms are
enlarged by, and the mask smoothed with, radius_smooth = 2·R (``radius_smooth_ratio`` = 2).
Every unmasked number, and the masked d99 / FSC / d_model apart from the mask, are
independent of R. The reference (VRS) runs Phenix with resolution max(R_reported, 3.0) Å; the
caller passes that value to reproduce it (level-a-methods.md "Resolution used").
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy.signal import savgol_filter

from cryovalid.kernels import fourier

# ---- constants of the method (cctbx values; level-a-methods.md "A.a") ------------------------
D99_CC = 0.99  # d99: the first d where CC(map, map truncated at d) < 0.99
D99_COARSE_STEP = 0.1  # Å, first scan
D99_FINE_STEP = 0.01  # Å, rescan
D99_FINE_BACK = 0.2  # Å, the rescan starts this far below the coarse answer
FSC_CUTOFFS = (0.0, 0.143, 0.5)
# Coefficients per FSC bin by the bin's d (Å): ≥ 500 for d ≤ 5, 250 for 5 < d ≤ 10, 100 beyond.
FSC_BIN_SIZES = ((5.0, 500), (10.0, 250), (math.inf, 100))
SG_WINDOW = 21  # Savitzky–Golay window (bins) and polynomial order, applied to bins with d ≤ 15
SG_ORDER = 2
SG_MAX_D = 15.0  # Å
CUTOFF_FIT_HALF_WIDTH = 5  # the quadratic through bins i−5 … i+5
CUTOFF_FIT_MAX_SHIFT = 0.25  # Å: a root farther than this from bin i's d is not trusted
B_TRIALS = np.arange(-500, 500, 5, dtype=np.float64)  # Å², cctbx find_b: range(-500, 500, 5)
RADIUS_SMOOTH_RATIO = 2.0  # masked pass: radius_smooth = 2·R
MASK_RPROBE = 1.11  # Å, solvent probe of the atom mask
MASK_RSHRINK = 0.9  # Å, shrink-truncation radius of the atom mask
MODEL_MAP_RATE = 1.5  # gemmi fine-grid points per half of the per-axis Nyquist d (2·Ts); 1.5 gives
# the same numbers as 2.5 on the three cctbx cases (to 0.001 Å) at a fifth of the grid points


# ---- the box hkl set --------------------------------------------------------------------------
class BoxHKL:
    """The unique box hkl set of a map of ``shape`` (z, y, x) and ``voxel_size`` (Å).

    Attributes
    ----------
    index : flat indices into the rfft grid (nz, ny, nx//2+1) of the unique coefficients,
        ordered by d ascending (highest resolution first)
    d : (m,) float64, d (Å) of each, ascending
    ss : (m,) float64, 1/(4 d²) (1/Å²)
    kz_zero : (m,) bool, the coefficient has kz = 0 (cctbx's l = 0, see :func:`d99`)
    d_min, d_max : Å, the box corner's d and the lowest-resolution coefficient's d
    """

    def __init__(self, shape, voxel_size: float):
        nz, ny, nx = (int(v) for v in shape)
        self.shape = (nz, ny, nx)
        self.voxel_size = float(voxel_size)
        ts = self.voxel_size
        kz = np.rint(np.fft.fftfreq(nz, 1.0 / nz)).astype(np.int64)
        ky = np.rint(np.fft.fftfreq(ny, 1.0 / ny)).astype(np.int64)
        kx = np.arange(nx // 2 + 1, dtype=np.int64)
        KZ, KY, KX = kz[:, None, None], ky[None, :, None], kx[None, None, :]
        keep = (np.abs(KZ) <= (nz - 1) // 2) & (np.abs(KY) <= (ny - 1) // 2) \
            & (KX <= (nx - 1) // 2)
        unique = (KX > 0) | ((KX == 0) & ((KY > 0) | ((KY == 0) & (KZ > 0))))
        flat = np.flatnonzero(keep & unique)
        iz, iy, ix = np.unravel_index(flat, (nz, ny, nx // 2 + 1))
        s2 = (kz[iz] / (nz * ts)) ** 2 + (ky[iy] / (ny * ts)) ** 2 + (kx[ix] / (nx * ts)) ** 2
        order = np.argsort(-s2, kind="stable")  # d ascending
        self.index = flat[order]
        s2 = s2[order]
        self.ss = s2 / 4.0
        self.d = 1.0 / np.sqrt(s2)
        self.kz_zero = kz[iz[order]] == 0
        self.d_min = float(self.d[0])
        self.d_max = float(self.d[-1])

    def take(self, ft: np.ndarray) -> np.ndarray:
        """The unique coefficients of an rfft (complex128, in this set's order)."""
        return ft.reshape(-1)[self.index].astype(np.complex128)

    @cached_property
    def model_map_resolution(self) -> float:
        """A resolution (Å) just below the box corner's d: passed to ``model_map`` it keeps
        every box hkl (no cut)."""
        return self.d_min * (1.0 - 1e-6)


# ---- d99 --------------------------------------------------------------------------------------
def d99(f: np.ndarray, hkl: BoxHKL, cc_cutoff: float = D99_CC):
    """d99 (Å) of a map from its unique box coefficients ``f`` (:meth:`BoxHKL.take`).

    CC(d) = sqrt(Σ_{d_hkl > d} w|F|² / Σ w|F|²): the correlation of the map with itself
    truncated at d, w = 1 for the l = 0 plane and 2 elsewhere (cctbx ``maptbx::d99``, l = the
    z axis). d runs up from the box corner's d in 0.1 Å steps to the first CC < 0.99; then again
    from that d − 0.2 Å in 0.01 Å steps; d99 is the first d of the rescan with CC < 0.99.
    None if CC never drops below the cutoff (a map with no power, or all at d_max).
    """
    w = np.where(hkl.kz_zero, 1.0, 2.0)
    p = w * (f.real ** 2 + f.imag ** 2)
    total = p.sum()
    if not total > 0:
        return None
    # power at d_hkl > d: coefficients are in d-ascending order, so a suffix sum
    suffix = np.concatenate([np.cumsum(p[::-1])[::-1], [0.0]])

    def cc_at(d):
        first_above = np.searchsorted(hkl.d, d, side="right")  # first index with d_hkl > d
        return np.sqrt(suffix[first_above] / total)

    def first_below(start, step):
        n = int(math.ceil((hkl.d_max - start) / step)) + 1
        ds = start + step * np.arange(1, n + 1)
        ds = ds[ds - step < hkl.d_max]  # cctbx: while d < d_max: d += step
        below = np.flatnonzero(cc_at(ds) < cc_cutoff)
        return float(ds[below[0]]) if below.size else None

    coarse = first_below(hkl.d_min, D99_COARSE_STEP)
    if coarse is None:
        return None
    fine = first_below(coarse - D99_FINE_BACK, D99_FINE_STEP)
    return fine if fine is not None else coarse


# ---- FSC curve --------------------------------------------------------------------------------
def fsc_bins(d: np.ndarray, sizes=FSC_BIN_SIZES) -> np.ndarray:
    """Start indices of the FSC bins over coefficients sorted by d ascending (high resolution
    first): from the high-resolution end, each bin takes the number of coefficients its first
    coefficient's d asks for (500 / 250 / 100 for d ≤ 5 / ≤ 10 / beyond); a short remainder at
    the low-resolution end joins the last full bin. Returns (n_bins,) int64."""
    starts = []
    i, n = 0, len(d)
    limits = np.array([s[0] for s in sizes])
    counts = [s[1] for s in sizes]
    while i < n:
        size = counts[int(np.searchsorted(limits, d[i], side="left"))]
        if starts and n - i < size:
            break  # remainder joins the previous bin
        starts.append(i)
        i += size
    return np.asarray(starts, dtype=np.int64)


@dataclass
class FSCCurve:
    """A map–model FSC curve, one value per bin, bins ordered by d ascending.

    d : (n,) Å, the mean d of the bin's coefficients (cctbx's bin d)
    fsc_raw : (n,) Re Σ Fo·Fc* / sqrt(Σ|Fo|² Σ|Fc|²) over the bin
    fsc : (n,) the curve used for the cutoffs: Savitzky–Golay smoothed where d ≤ 15 Å
    """

    d: np.ndarray
    fsc_raw: np.ndarray
    fsc: np.ndarray


def fsc_curve(f_map: np.ndarray, f_calc: np.ndarray, hkl: BoxHKL) -> FSCCurve:
    """Map–model FSC over :func:`fsc_bins` of the unique box coefficients (both in
    :meth:`BoxHKL.take` order), smoothed with :func:`smooth_fsc`."""
    starts = fsc_bins(hkl.d)
    counts = np.diff(np.append(starts, len(hkl.d)))
    cross = np.add.reduceat(f_map.real * f_calc.real + f_map.imag * f_calc.imag, starts)
    p1 = np.add.reduceat(f_map.real ** 2 + f_map.imag ** 2, starts)
    p2 = np.add.reduceat(f_calc.real ** 2 + f_calc.imag ** 2, starts)
    d = np.add.reduceat(hkl.d, starts) / counts
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = cross / np.sqrt(p1 * p2)
    raw = np.where(np.isfinite(raw), raw, 0.0)
    return FSCCurve(d=d, fsc_raw=raw, fsc=smooth_fsc(d, raw))


def smooth_fsc(d: np.ndarray, fsc: np.ndarray, window: int = SG_WINDOW, order: int = SG_ORDER,
               max_d: float = SG_MAX_D) -> np.ndarray:
    """Savitzky–Golay smoothing (``window`` bins, polynomial ``order``, mirrored edges) of the
    bins with d ≤ ``max_d`` Å, taken as one sequence; the other bins are left as they are. With
    fewer bins than the window, the largest odd window that fits (none below order + 2)."""
    out = np.array(fsc, dtype=np.float64)
    sel = np.flatnonzero(np.asarray(d) <= max_d)
    n = sel.size
    w = min(window, n if n % 2 else n - 1)
    if w >= order + 2:
        out[sel] = savgol_filter(out[sel], w, order, mode="mirror")
    return out


def d_at_cutoff(d: np.ndarray, fsc: np.ndarray, cutoff: float,
                half_width: int = CUTOFF_FIT_HALF_WIDTH,
                max_shift: float = CUTOFF_FIT_MAX_SHIFT):
    """d (Å) where an FSC curve (bins by d ascending) first falls below ``cutoff``, coming
    from low resolution: bin i is the first (largest d) below the cutoff; a quadratic in 1/d
    fitted to bins i−5 … i+5 gives the root nearest 1/d_i, used when within 0.25 Å of d_i,
    else d_i. If the curve never falls below the cutoff, the highest-resolution bin's d.
    None for an empty curve."""
    d = np.asarray(d, dtype=np.float64)
    fsc = np.asarray(fsc, dtype=np.float64)
    if d.size == 0:
        return None
    low_first = np.argsort(-d, kind="stable")
    dd, ff = d[low_first], fsc[low_first]
    below = np.flatnonzero(ff < cutoff)
    if below.size == 0:
        return float(dd[-1])
    i = int(below[0])
    lo, hi = max(0, i - half_width), min(dd.size, i + half_width + 1)
    x, y = 1.0 / dd[lo:hi], ff[lo:hi] - cutoff
    if x.size >= 3:
        roots = np.roots(np.polyfit(x, y, 2))
        roots = roots[np.isreal(roots)].real
        roots = roots[roots > 0]
        if roots.size:
            xi = 1.0 / dd[i]
            r = roots[np.argmin(np.abs(roots - xi))]
            if abs(1.0 / r - dd[i]) <= max_shift:
                return float(1.0 / r)
    return float(dd[i])


# ---- d_model, d_model(B=0), overall B -----------------------------------------------------------
def trial_resolutions(d_start: float) -> np.ndarray:
    """cctbx ``get_trial_resolutions``: 0.1 Å steps from d_start to 3 Å, 3.0–6.0 Å in 0.1,
    6.5–10.4 Å in 0.1, 11–99 Å in 1; kept between d_start and d_end (10 / 20 / 40 / 100 Å for
    d_start below 5 / 10 / 20 / beyond)."""
    d_end = 10.0 if d_start < 5 else 20.0 if d_start < 10 else 40.0 if d_start < 20 else 100.0
    grid = ([i / 10.0 for i in range(int(d_start * 10), 30)]
            + [i / 100.0 for i in range(300, 610, 10)]
            + [i / 10.0 for i in range(65, 105)]
            + [float(i) for i in range(11, 100)])
    g = np.asarray(grid)
    return g[(g >= d_start) & (g <= d_end)]


class _Shells:
    """Per-distinct-ss sums of Re(Fo·Fc*), |Fc|², |Fo|² (exact regrouping of the coefficients:
    every trial B and d treats coefficients of equal ss alike)."""

    def __init__(self, f_map, f_calc, ss, d):
        uniq, inv = np.unique(ss, return_inverse=True)  # ss ascending = d descending
        self.ss = uniq
        self.d = 1.0 / np.sqrt(4.0 * uniq)
        n = uniq.size
        self.oc = np.bincount(inv, f_map.real * f_calc.real + f_map.imag * f_calc.imag, n)
        self.cc = np.bincount(inv, f_calc.real ** 2 + f_calc.imag ** 2, n)
        self.oo_total = float(np.sum(f_map.real ** 2 + f_map.imag ** 2))
        self.d_min = float(d.min())

    def best_d(self, b: float):
        """(d, CC) maximising cctbx ``cc_complex_complex`` over the trial d grid at B = b:
        CC(d) = Σ_{d_hkl > d} Re(Fo·Fc*)·e^{−b·ss}
        / sqrt(Σ_all |Fo|² · Σ_{d_hkl > d} |Fc|²·e^{−2b·ss});
        the first maximum."""
        trials = trial_resolutions(self.d_min)
        x = -b * self.ss
        e = np.exp(x - x.max())  # a common factor cancels in CC; this one cannot overflow
        num = np.cumsum(self.oc * e)  # prefix over d descending
        den = np.cumsum(self.cc * e * e)
        # coefficients with d_hkl > trial d: prefix length = count of d > trial (d descending)
        k = np.searchsorted(-self.d, -trials, side="left")
        with np.errstate(invalid="ignore", divide="ignore"):
            cc = np.where(k > 0, num[np.maximum(k - 1, 0)]
                          / np.sqrt(self.oo_total * den[np.maximum(k - 1, 0)]), -np.inf)
        cc = np.where(np.isfinite(cc), cc, -np.inf)
        j = int(np.argmax(cc))
        return float(trials[j]), float(cc[j])

    def best_b(self, b_trials=B_TRIALS):
        """The first B (Å²) of ``b_trials`` maximising CC(Fo, Fc·e^{−B·ss}) over all the
        coefficients (cctbx ``find_b`` with ``map_correlation``)."""
        x = -np.outer(b_trials, self.ss)  # (n_b, n_ss)
        e = np.exp(x - x.max(axis=1, keepdims=True))  # per-B factor cancels in CC
        num = e @ self.oc
        den = (e * e) @ self.cc
        with np.errstate(invalid="ignore", divide="ignore"):
            cc = num / np.sqrt(self.oo_total * den)
        cc = np.where(np.isfinite(cc), cc, -np.inf)
        return float(b_trials[int(np.argmax(cc))])


@dataclass
class DModel:
    d_model: float  # Å
    b_iso: float  # Å², overall B (cctbx sign: the B that, applied to the B = 0 model, fits best)
    d_model_b0: float  # Å


def d_model(f_map: np.ndarray, f_calc_b0: np.ndarray, hkl: BoxHKL, d_fsc_model_0: float) -> DModel:
    """cctbx ``resolution_from_map_and_model.run``. ``f_calc_b0``: the model map with every
    B = 0 (unique box coefficients). d_model_b0 = the trial d maximising CC(Fo, Fc truncated at
    d) over all box hkl; then Fo and Fc are cut at d ≥ d_FSC_model(0), B is the first of
    −500, −495 … 495 Å² maximising CC(Fo, Fc·e^{−B·ss}), and d_model = the trial d (from the cut
    set's d_min) maximising CC at that B."""
    full = _Shells(f_map, f_calc_b0, hkl.ss, hkl.d)
    d_b0, _ = full.best_d(0.0)
    keep = hkl.d >= d_fsc_model_0
    cut = _Shells(f_map[keep], f_calc_b0[keep], hkl.ss[keep], hkl.d[keep])
    b = cut.best_b()
    d_best, _ = cut.best_d(b)
    return DModel(d_model=d_best, b_iso=b, d_model_b0=d_b0)


# ---- the masked pass's mask --------------------------------------------------------------------
def smooth_mask(mask: np.ndarray, voxel_size: float, radius_smooth: float) -> np.ndarray:
    """A 0/1 mask smoothed by exp(−B s²/4), B = 8π²·radius_smooth² (Å², a Gaussian of
    standard deviation radius_smooth Å per axis), periodic, clipped at ≥ 0 (float32)."""
    ft = fourier.rfft(mask.astype(np.float32))
    sz, sy, sx = fourier.frequency_components(mask.shape, voxel_size)
    b = 8.0 * math.pi ** 2 * float(radius_smooth) ** 2
    ft *= np.exp(-(b / 4.0) * (sz * sz + sy * sy + sx * sx)).astype(np.float32)
    return np.maximum(fourier.irfft(ft, mask.shape), 0.0)


def soft_atom_mask(xyz_box, element, shape, voxel_size: float, radius_smooth: float, *,
                   atom_mask_fn=None) -> np.ndarray:
    """mtriage's mask for the masked pass (cctbx ``masks.smooth_mask``): the Jiang–Brünger atom
    mask with every radius enlarged by ``radius_smooth`` (probe 1.11 Å, shrink 0.9 Å), then
    :func:`smooth_mask` with the same radius. float32 (z, y, x) in [0, ~1]."""
    if atom_mask_fn is None:
        from cryovalid.kernels.modelmap import atom_mask as atom_mask_fn
    binary = atom_mask_fn(xyz_box, element, shape, voxel_size, rprobe=MASK_RPROBE,
                          rshrink=MASK_RSHRINK, extra_radius=float(radius_smooth))
    return smooth_mask(binary, voxel_size, radius_smooth)


# ---- the whole of it ----------------------------------------------------------------------------
@dataclass
class PassResult:
    """One mtriage pass (unmasked or masked). Resolutions in Å, B in Å²; None where it could
    not be measured."""

    d99: float | None
    d_model: float | None
    d_model_b0: float | None
    d_fsc_model_0: float | None
    d_fsc_model_0143: float | None
    d_fsc_model_05: float | None
    b_iso: float | None
    fsc: FSCCurve


@dataclass
class MtriageResult:
    """mtriage's numbers unmasked and masked (Å; B in Å²), the map–model FSC curves (bins by d
    ascending; ``fsc_d`` the bin d in Å, the same bins for both; ``fsc_*`` smoothed as used for
    the cutoffs, ``fsc_*_raw`` before smoothing) and the mask radius (Å). ``seconds``: wall
    time per piece (hkl set, the two model maps, unmasked pass, mask, masked pass)."""

    d99: float | None
    d_model: float | None
    d_model_b0: float | None
    d_fsc_model_0: float | None
    d_fsc_model_0143: float | None
    d_fsc_model_05: float | None
    b_iso: float | None
    d99_masked: float | None
    d_model_masked: float | None
    d_model_b0_masked: float | None
    d_fsc_model_0_masked: float | None
    d_fsc_model_0143_masked: float | None
    d_fsc_model_05_masked: float | None
    b_iso_masked: float | None
    fsc_d: np.ndarray
    fsc_unmasked: np.ndarray
    fsc_masked: np.ndarray
    fsc_unmasked_raw: np.ndarray
    fsc_masked_raw: np.ndarray
    radius_smooth: float
    seconds: dict = field(default_factory=dict)


def _one_pass(vol, hkl, fc, fc_b0) -> PassResult:
    fo = hkl.take(fourier.rfft(vol))
    curve = fsc_curve(fo, fc, hkl)
    if not (np.any(fo != 0) and np.any(fc != 0) and np.any(fc_b0 != 0)):
        # a map or a model with no Fourier power: nothing can be measured
        return PassResult(None, None, None, None, None, None, None, curve)
    d0, d0143, d05 = (d_at_cutoff(curve.d, curve.fsc, c) for c in FSC_CUTOFFS)
    dm = d_model(fo, fc_b0, hkl, d0) if d0 is not None else None
    return PassResult(d99=d99(fo, hkl), d_model=None if dm is None else dm.d_model,
                      d_model_b0=None if dm is None else dm.d_model_b0, d_fsc_model_0=d0,
                      d_fsc_model_0143=d0143, d_fsc_model_05=d05,
                      b_iso=None if dm is None else dm.b_iso, fsc=curve)


def model_map_all_hkl(xyz_box, element, b_iso, occupancy, shape, voxel_size, *, b_zero=False,
                      model_map_fn=None) -> np.ndarray:
    """The model map on every box hkl (no resolution cut), through ``model_map_fn`` (default
    :func:`cryovalid.kernels.modelmap.model_map`): its resolution is set just below the box
    corner's d, and its fine-grid rate so that gemmi samples the per-axis Nyquist d (2·Ts) at
    ``MODEL_MAP_RATE`` points per half d, as a cut at 2·Ts would (the corners of the box then
    cost nothing extra; their Fc agrees with a rate-4 computation to < 1e-4)."""
    if model_map_fn is None:
        from cryovalid.kernels.modelmap import model_map as model_map_fn
    hkl = BoxHKL(shape, voxel_size)
    res = hkl.model_map_resolution
    rate = MODEL_MAP_RATE * res / (2.0 * float(voxel_size))
    return model_map_fn(xyz_box, element, b_iso, occupancy, shape, voxel_size, res,
                        b_zero=b_zero, rate=rate)


def mtriage(map_data: np.ndarray, voxel_size: float, resolution: float, xyz_box, element,
            b_iso, occupancy, *, model_map_fn=None, atom_mask_fn=None,
            model_maps=None) -> MtriageResult:
    """mtriage's resolution numbers for a map and a fitted model (see the module docstring).

    Parameters
    ----------
    map_data : (z, y, x) float32 map
    voxel_size : Å
    resolution : Å, used only for the masked pass's mask (radius_smooth = 2·resolution); the
        reference passes max(R, 3.0)
    xyz_box : (n, 3) Å, atoms in the box frame (``model.xyz − map.origin``; x, y, z)
    element, b_iso (Å²), occupancy : (n,) per atom; hydrogens are kept (cctbx keeps them)
    model_map_fn, atom_mask_fn : stand-ins for :mod:`cryovalid.kernels.modelmap`'s functions
    model_maps : (model map, model map with B = 0), both on every box hkl
        (:func:`model_map_all_hkl`), when the caller already has them
    """
    t = {}
    t0 = time.perf_counter()
    vol = np.asarray(map_data, dtype=np.float32)
    if vol.ndim != 3:
        raise ValueError(f"mtriage needs a 3-D map, not shape {vol.shape}")
    if not np.all(np.isfinite(vol)):
        raise ValueError("mtriage: the map has values that are not finite numbers")
    shape = vol.shape
    hkl = BoxHKL(shape, voxel_size)
    t["hkl"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if model_maps is None:
        kw = dict(model_map_fn=model_map_fn)
        model_maps = (model_map_all_hkl(xyz_box, element, b_iso, occupancy, shape, voxel_size,
                                        **kw),
                      model_map_all_hkl(xyz_box, element, b_iso, occupancy, shape, voxel_size,
                                        b_zero=True, **kw))
    fc, fc_b0 = (hkl.take(fourier.rfft(mm)) for mm in model_maps)
    t["model_maps"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    un = _one_pass(vol, hkl, fc, fc_b0)
    t["unmasked"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    radius = RADIUS_SMOOTH_RATIO * float(resolution)
    mask = soft_atom_mask(xyz_box, element, shape, voxel_size, radius, atom_mask_fn=atom_mask_fn)
    t["mask"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ma = _one_pass(vol * mask, hkl, fc, fc_b0)
    t["masked"] = time.perf_counter() - t0

    return MtriageResult(
        d99=un.d99, d_model=un.d_model, d_model_b0=un.d_model_b0,
        d_fsc_model_0=un.d_fsc_model_0, d_fsc_model_0143=un.d_fsc_model_0143,
        d_fsc_model_05=un.d_fsc_model_05, b_iso=un.b_iso,
        d99_masked=ma.d99, d_model_masked=ma.d_model, d_model_b0_masked=ma.d_model_b0,
        d_fsc_model_0_masked=ma.d_fsc_model_0, d_fsc_model_0143_masked=ma.d_fsc_model_0143,
        d_fsc_model_05_masked=ma.d_fsc_model_05, b_iso_masked=ma.b_iso,
        fsc_d=un.fsc.d, fsc_unmasked=un.fsc.fsc, fsc_masked=ma.fsc.fsc,
        fsc_unmasked_raw=un.fsc.fsc_raw, fsc_masked_raw=ma.fsc.fsc_raw,
        radius_smooth=radius, seconds=t)
