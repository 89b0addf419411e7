"""ResMap: local resolution by a likelihood-ratio test of local steerable sinusoids
(Kucukelbir, Sigworth & Tagare 2014, Nat Methods 11:63, doi:10.1038/nmeth.2727), split-volume
mode: the test runs on the mean of the two half maps and the noise is taken from their
difference.

The local model (per voxel, for a trial resolution r in Å)
-------------------------------------------------------------
In a cube of 2·ceil(r / (2·h)) + 1 voxels around the voxel (h: the grid spacing), with
coordinates u = a·d (d in Å from the centre, a = (2π/r)·sqrt(2/5)), the map is fitted by weighted
least squares (weights w(u) = exp(-WEIGHT_EXPONENT·|u|²)) with 17 functions: a constant, the
second-order terms 4(n·u)² − 2 along 6 directions (normals of the dodecahedron's faces) and the
third-order terms (n·u)³ − 2.254 (n·u) along 10 directions (normals of the icosahedron's faces;
the 2-D forms are the G2/H2 steerable quadrature pair of Freeman & Adelson 1991, IEEE PAMI
13:891, in 3-D as Derpanis & Gryn 2005). The null hypothesis is the constant alone. The
statistic is the drop of the weighted residual sum of squares, yᵀ(Λ_c − Λ)y with
Λ = W − W·A(√W·A)⁺√W (ResMap's matrices), written as T = Σ_k (f_k ⋆ y)², with f_k = √W·q_k
and q_1..q_16 an orthonormal basis of span(√W·A) ⊖ span(√W·1), so T is 16 correlations of the
whole volume with small filters, done with FFTs (no loop over voxels; checked against the
matrix form in tests/test_resmap.py).

Noise and the null distribution
-------------------------------
Under the null hypothesis the window holds a constant plus noise, and the 16 filter outputs
g_k = f_k ⋆ y are Gaussian with the covariance C of f_k ⋆ noise, measured on the noise map
(half-map difference / 2, which has the noise covariance of the half-map mean) over the mask
voxels (:func:`trial_statistic`). ResMap's statistic T = Σ g_k² then follows Σ_j λ_j χ²_1,
λ = eig(C) (for white noise of variance σ², C = σ²·FᵀF: ResMap's Λ_c − Λ times σ², its split-mode
variance coming from blocks of the difference map inside the mask); the whitened statistic
gᵀC⁻¹g follows χ²_16. Optionally each voxel is divided by the local noise level ℓ(v) (geometric
mean, over the mask voxels nearby, of Σ_k (f_k ⋆ noise)²) and C is measured on the noise outputs
divided by √ℓ, so that a region with more noise is tested against its own noise. Tail
probabilities: saddlepoint approximation (:class:`WeightedChi2`).

Multiple testing, scan and output
---------------------------------
Trial resolutions run from fine to coarse; at each one the voxels not yet assigned are tested
together with the Benjamini–Yekutieli (2001) false-discovery-rate procedure at level ``alpha``
(ResMap's choice, valid under the strong dependence of neighbouring voxels), and a voxel gets the
first (finest) trial resolution at which its null hypothesis is rejected. Voxels never rejected
are "unresolved" (ResMap writes 100 Å there).

Band: with ``band`` the two maps are band-passed around 1/r before each trial (see the item's
METHOD_NOTE for why). Speed: each trial runs on the maps Fourier-cropped to a voxel of about
r / ``samples`` Å (never finer than the input's), cropped to the mask's bounding box; the statistic is
interpolated (trilinear) back to the input grid's mask voxels, where the test is done.
All lengths in Å, frequencies in 1/Å; float32/complex64 volumes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from scipy import ndimage, special

from cryovalid.kernels import fourier
from cryovalid.kernels.filterbank import crop_spectrum
from cryovalid.kernels.resample import resized_shape

PHI = (1.0 + math.sqrt(5.0)) / 2.0
A_SCALE = math.sqrt(2.0 / 5.0)  # a = (2π/r)·sqrt(2/5) (ResMap)
H2_LINEAR = 2.254  # (n·u)³ − 2.254 (n·u): Freeman & Adelson's H2 polynomial
WEIGHT_EXPONENT = 0.5  # w(u) = exp(-|u|²/2) as written in ResMap (its Python 2 computes exp(-|u|²))
SAMPLES_PER_RESOLUTION = 4.0  # working grid spacing ≈ r / 4 Å
MIN_RES_FACTOR = 2.2  # ResMap: the finest trial is 2.2 voxels (rounded to 0.1 Å)
MIN_WHITEN_VOXELS = 1000  # fewer mask voxels on a working grid: no whitening (see trial_statistic)
EIG_FLOOR = 1e-6  # eigenvalues of C below this × the largest are dropped (negligible)


def steerable_directions():
    """(6, 3) and (10, 3) unit vectors (x, y, z): the 6 normals of the dodecahedron's faces
    (cyclic permutations of (1, 0, ±φ)) for the second-order terms and the 10 normals of the
    icosahedron's faces (cyclic permutations of (1, ±φ, 1/φ) and four cube diagonals) for the
    third-order terms (Derpanis & Gryn 2005)."""
    def cyc(v):
        return [v, (v[1], v[2], v[0]), (v[2], v[0], v[1])]

    g2 = cyc((1.0, 0.0, PHI)) + cyc((1.0, 0.0, -PHI))
    h2 = (cyc((1.0, PHI, 1.0 / PHI)) + cyc((1.0, -PHI, 1.0 / PHI))
          + [(1.0, 1.0, 1.0), (-1.0, 1.0, 1.0), (1.0, -1.0, 1.0), (-1.0, -1.0, 1.0)])
    g2, h2 = np.array(g2), np.array(h2)
    return (g2 / np.linalg.norm(g2, axis=1, keepdims=True),
            h2 / np.linalg.norm(h2, axis=1, keepdims=True))


@dataclass
class LocalModel:
    """The local model of one trial resolution on a grid.

    offsets : (n_pts, 3) integer window offsets (z, y, x) in voxels
    filters : (n_pts, k) the filters f_k = √W·q_k (T = Σ_k (f_k ⋆ y)²)
    basis, weights : the 17 model functions (n_pts, 17) and the weights w (n_pts,)
    half_width : window half-width in voxels
    """
    offsets: np.ndarray
    filters: np.ndarray
    basis: np.ndarray
    weights: np.ndarray
    half_width: int


def local_model(resolution: float, spacing, weight_exponent: float = WEIGHT_EXPONENT):
    """:class:`LocalModel` for trial ``resolution`` (Å) on a grid of ``spacing`` Å (one number or
    (z, y, x)). Window half-width ceil(r / (2·h)) voxels (h the smallest spacing), as ResMap."""
    sp = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    half = int(math.ceil(0.5 * resolution / float(sp.min()) - 1e-9))
    half = max(half, 1)
    r = np.arange(-half, half + 1)
    oz, oy, ox = np.meshgrid(r, r, r, indexing="ij")
    offsets = np.stack([oz.ravel(), oy.ravel(), ox.ravel()], axis=1)
    a = 2.0 * math.pi / resolution * A_SCALE
    u = a * offsets[:, ::-1] * sp[::-1]  # (x, y, z) in units of 1/a
    w = np.exp(-weight_exponent * np.sum(u * u, axis=1))
    g2, h2 = steerable_directions()
    p2 = u @ g2.T
    p3 = u @ h2.T
    basis = np.concatenate([np.ones((u.shape[0], 1)), 4.0 * p2 ** 2 - 2.0,
                            p3 ** 3 - H2_LINEAR * p3], axis=1)
    sw = np.sqrt(w)
    b = basis * sw[:, None]
    e0 = sw / np.linalg.norm(sw)
    rest = b[:, 1:] - np.outer(e0, e0 @ b[:, 1:])
    U, S, _ = np.linalg.svd(rest, full_matrices=False)
    keep = S > 1e-9 * S[0]
    q = U[:, keep]
    return LocalModel(offsets=offsets, filters=q * sw[:, None], basis=basis, weights=w,
                      half_width=half)


def wrss_drop(model: LocalModel, cube: np.ndarray) -> float:
    """The statistic of one window the direct way (ResMap's matrices): weighted residual sum of
    squares of the constant fit minus that of the full fit. ``cube`` is (n_pts,) in the order
    of ``model.offsets``. For tests; the volume version is :func:`statistic_volume`."""
    W = model.weights
    sw = np.sqrt(W)

    def wrss(A):
        beta, *_ = np.linalg.lstsq(A * sw[:, None], cube * sw, rcond=None)
        res = cube - A @ beta
        return float(np.sum(W * res * res))

    return wrss(model.basis[:, :1]) - wrss(model.basis)


# ---- FFT correlation with small filters --------------------------------------------------
def _conj_transfer(kernel_flat, offsets, half, shape):
    """conj(DFT) of a small kernel given at ``offsets`` on the rfft grid of ``shape`` (so that
    irfft(Y · this) is the correlation Σ_i f(i) y(v + i)), built separably (complex64)."""
    w = 2 * half + 1
    f = np.zeros((w, w, w))
    f[offsets[:, 0] + half, offsets[:, 1] + half, offsets[:, 2] + half] = kernel_flat
    o = np.arange(-half, half + 1)
    nz, ny, nx = shape
    ez = np.exp(2j * np.pi * np.outer(np.fft.fftfreq(nz) * 1.0, o))  # (nz, w)
    ey = np.exp(2j * np.pi * np.outer(np.fft.fftfreq(ny) * 1.0, o))
    ex = np.exp(2j * np.pi * np.outer(np.fft.rfftfreq(nx) * 1.0, o))
    t = np.einsum("abc,xc->abx", f, ex)
    t = np.einsum("abx,yb->ayx", t, ey)
    out = (ez.astype(np.complex64) @ t.reshape(w, -1).astype(np.complex64))
    return out.reshape(nz, ny, nx // 2 + 1)


def statistic_volume(vol: np.ndarray, model: LocalModel) -> np.ndarray:
    """T(v) = Σ_k (f_k ⋆ vol)(v)² at every voxel (periodic), float32 (without the noise
    normalisation of :func:`trial_statistic`)."""
    shape = vol.shape
    Y = scipy.fft.rfftn(np.asarray(vol, np.float32), workers=fourier.workers())
    T = np.zeros(shape, dtype=np.float32)
    for k in range(model.filters.shape[1]):
        G = _conj_transfer(model.filters[:, k], model.offsets, model.half_width, shape)
        G *= Y
        g = scipy.fft.irfftn(G, s=shape, workers=fourier.workers())
        del G
        T += (g * g).astype(np.float32, copy=False)
    return T


def trial_statistic(mean, noise, mask, model: LocalModel, local_noise_voxels=None,
                    whiten=False):
    """The test of one trial on one grid: (T, null, C).

    C (k×k, k = 16) is the covariance of the noise's filter outputs (f_k ⋆ noise)/√ℓ over the
    ``mask`` voxels, where ℓ(v) is the local noise level: the geometric mean over the mask
    voxels near v (Gaussian of ``local_noise_voxels`` voxels; ℓ = 1 when None) of
    Σ_k (f_k ⋆ noise)². Normalising each voxel by ℓ before averaging makes C the noise's
    *shape*, every mask voxel weighing the same, so a much noisier region does not set the null
    distribution of a quieter one.

    ``whiten`` False (ResMap's statistic): T(v) = Σ_k (f_k ⋆ mean)(v)² / ℓ(v); under the null
    hypothesis T ~ Σ_j λ_j χ²_1 with λ = eig(C) (``null``, a :class:`WeightedChi2`). For white
    noise of variance σ² and ℓ = 1, C = σ²·FᵀF and λ/σ² are the eigenvalues of ResMap's
    Λ_c − Λ. ``whiten`` True: the filter outputs are decorrelated and scaled by the noise,
    T(v) = g(v)ᵀ C⁻¹ g(v) / ℓ(v) with g = (f_k ⋆ mean)_k (the directions of C below
    EIG_FLOOR × its largest eigenvalue left out; only with at least MIN_WHITEN_VOXELS mask
    voxels), so T ~ χ²_k' under the null hypothesis: the
    likelihood-ratio statistic of the 16 terms when the noise is correlated, as after the
    band-pass it is.

    T is returned at every voxel (float32); ``mean``/``noise`` hold the mask with a margin of at
    least the window's half-width (the correlations are periodic)."""
    shape = mean.shape
    Ym = scipy.fft.rfftn(np.asarray(mean, np.float32), workers=fourier.workers())
    Yn = scipy.fft.rfftn(np.asarray(noise, np.float32), workers=fourier.workers())
    mflat = np.flatnonzero(mask)
    # C⁻¹ needs C's small eigenvalues well measured: with few mask voxels (a coarse trial on a
    # small grid) fall back to ResMap's unweighted statistic
    whiten = bool(whiten) and mflat.size >= MIN_WHITEN_VOXELS
    k_n = model.filters.shape[1]
    T = None if whiten else np.zeros(shape, dtype=np.float32)
    Gn = np.empty((k_n, mflat.size), dtype=np.float32)
    for k in range(k_n):
        G = _conj_transfer(model.filters[:, k], model.offsets, model.half_width, shape)
        g = scipy.fft.irfftn(Yn * G, s=shape, workers=fourier.workers())
        Gn[k] = g.ravel()[mflat]
        if not whiten:
            g = scipy.fft.irfftn(Ym * G, s=shape, workers=fourier.workers())
            T += (g * g).astype(np.float32, copy=False)
        del G, g
    del Yn
    level = None
    if local_noise_voxels and mflat.size:
        tn = np.einsum("ki,ki->i", Gn, Gn)
        floor = np.float32(1e-30 * max(float(tn.max()), 1e-30))
        lt = np.zeros(shape, dtype=np.float32)
        lt.ravel()[mflat] = np.log(np.maximum(tn, floor))
        mwf = mask.astype(np.float32)
        num = ndimage.gaussian_filter(lt, local_noise_voxels, mode="constant")
        den = ndimage.gaussian_filter(mwf, local_noise_voxels, mode="constant")
        del lt, mwf
        fallback = np.float32(np.mean(np.log(np.maximum(tn, floor))))
        with np.errstate(invalid="ignore", divide="ignore"):
            level = np.exp(np.where(den > 1e-3, num / np.maximum(den, 1e-3), fallback))
        del num, den
        level = level.astype(np.float32)
        Gn /= np.sqrt(level.ravel()[mflat])[None, :]
    C = (Gn.astype(np.float64) @ Gn.T.astype(np.float64)) / max(mflat.size, 1)
    C = 0.5 * (C + C.T)
    del Gn
    lam, U = np.linalg.eigh(C)
    lam = np.clip(lam, 0.0, None)
    if whiten:
        keep = lam > EIG_FLOOR * lam.max()
        filt = model.filters @ (U[:, keep] / np.sqrt(lam[keep])[None, :])  # (n_pts, k')
        T = np.zeros(shape, dtype=np.float32)
        for k in range(filt.shape[1]):
            G = _conj_transfer(filt[:, k], model.offsets, model.half_width, shape)
            g = scipy.fft.irfftn(Ym * G, s=shape, workers=fourier.workers())
            T += (g * g).astype(np.float32, copy=False)
            del G, g
        null = WeightedChi2(np.ones(int(keep.sum())))
    else:
        null = WeightedChi2(lam)
    del Ym
    if level is not None:
        T /= level
    return T, null, C


# ---- null distribution: weighted sum of χ²_1 ----------------------------------------------
class WeightedChi2:
    """Q = Σ_j λ_j χ²_1 (λ_j > 0). ``log_sf(x)``: log P(Q > x) by the Lugannani–Rice saddlepoint
    approximation (Lugannani & Rice 1980; Kuonen 1999, Biometrika 86:929 for quadratic forms),
    whose relative error stays small far into the tail, where the FDR thresholds lie, and which
    does not slow down when the λ_j spread widely (ResMap uses Ruben's series, AS 204, to an
    absolute accuracy of 1e-5, on the λ_j above 0.1 × the largest only). Computed on a grid of
    x and interpolated (log P is smooth in x)."""

    def __init__(self, eigenvalues, grid_points: int = 600, log_p_min: float = -80.0):
        lam = np.sort(np.asarray(eigenvalues, dtype=np.float64))[::-1]
        if lam.size == 0 or lam[0] <= 0:
            raise ValueError("the noise covariance has no positive eigenvalue")
        lam = lam[lam > EIG_FLOOR * lam[0]]
        self.eigenvalues = lam
        self.mean = float(lam.sum())
        hi = self.mean
        while self._log_sf_exact(np.array([hi]))[0] > log_p_min:
            hi *= 1.5
        self.x = np.linspace(0.0, hi, grid_points)
        self.y = self._log_sf_exact(self.x)

    def _saddle(self, x):
        lam = self.eigenvalues
        t_hi = 0.5 / lam[0]
        # K'(t) = Σ λ/(1-2λt) is increasing on (-inf, 1/(2 λmax)); bisection in a safe bracket
        lo = np.full(x.shape, -1e6 / lam[-1])
        hi = np.full(x.shape, t_hi * (1 - 1e-12))
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            d1 = np.sum(lam[:, None] / (1 - 2 * lam[:, None] * mid[None, :]), axis=0)
            big = d1 > x
            hi = np.where(big, mid, hi)
            lo = np.where(big, lo, mid)
        return 0.5 * (lo + hi)

    def _log_sf_exact(self, x):
        x = np.asarray(x, dtype=np.float64)
        out = np.zeros(x.shape)
        pos = x > 0
        if not pos.any():
            return out
        xp = x[pos]
        lam = self.eigenvalues[:, None]
        t = self._saddle(xp)
        one = 1 - 2 * lam * t[None, :]
        K = -0.5 * np.sum(np.log(one), axis=0)
        K2 = np.sum(2 * lam ** 2 / one ** 2, axis=0)
        w2 = np.maximum(2 * (t * xp - K), 0.0)
        w = np.sign(t) * np.sqrt(w2)
        u = t * np.sqrt(K2)
        res = np.empty(xp.shape)
        near = np.abs(w) < 1e-2  # at the mean: normal approximation with the skewness term
        var = 2 * float(np.sum(self.eigenvalues ** 2))
        z = (xp - self.mean) / math.sqrt(var)
        res[near] = special.log_ndtr(-z[near])
        far = ~near
        wf, uf = w[far], u[far]
        logphi = -0.5 * wf * wf - 0.5 * math.log(2 * math.pi)
        mills = np.exp(special.log_ndtr(-wf) - logphi)
        inner = mills + 1.0 / uf - 1.0 / wf
        res[far] = logphi + np.log(np.maximum(inner, 1e-300))
        out[pos] = np.minimum(res, 0.0)
        return out

    def log_sf(self, x):
        """log P(Q > x), interpolated (linear extrapolation beyond the grid's end)."""
        x = np.asarray(x, dtype=np.float64)
        out = np.interp(x, self.x, self.y)
        beyond = x > self.x[-1]
        if np.any(beyond):
            slope = (self.y[-1] - self.y[-2]) / (self.x[-1] - self.x[-2])
            out[beyond] = self.y[-1] + slope * (x[beyond] - self.x[-1])
        return out


def by_reject(log_p: np.ndarray, alpha: float) -> np.ndarray:
    """Benjamini–Yekutieli (2001) step-up at FDR level ``alpha`` on log p-values: boolean of the
    rejected tests (largest j with p_(j) <= j·alpha/(m·H_m), H_m = Σ_{i<=m} 1/i)."""
    m = log_p.size
    if m == 0:
        return np.zeros(0, dtype=bool)
    h = float(np.sum(1.0 / np.arange(1, m + 1))) if m < 10 ** 6 else \
        math.log(m) + 0.5772156649 + 0.5 / m
    order = np.argsort(log_p)
    j = np.arange(1, m + 1)
    crit = np.log(alpha * j / (m * h))
    ok = np.nonzero(log_p[order] <= crit)[0]
    out = np.zeros(m, dtype=bool)
    if ok.size:
        out[order[: ok[-1] + 1]] = True
    return out


def band_transfer(res, band):
    """Radial band-pass for trial ``res`` (Å): raised-cosine rise over [b0, b1]/res and fall over
    [b2, b3]/res, ``band`` = (b0, b1, b2, b3) (dimensionless)."""
    b0, b1, b2, b3 = (b / res for b in band)

    def transfer(s):
        s = np.asarray(s, dtype=np.float32)
        up = np.clip((s - b0) / (b1 - b0), 0.0, 1.0)
        down = np.clip((s - b2) / (b3 - b2), 0.0, 1.0)
        return (0.5 * (1 - np.cos(np.pi * up)) * 0.5 * (1 + np.cos(np.pi * down))).astype(
            np.float32)

    return transfer


# ---- the scan ------------------------------------------------------------------------------
@dataclass
class ResMapResult:
    values: np.ndarray  # (n_mask,) local resolution (Å) at the mask voxels, 0 = unresolved
    resolutions: list = field(default_factory=list)  # trial resolutions tested (Å)
    assigned: list = field(default_factory=list)  # voxels assigned at each trial
    thresholds: list = field(default_factory=list)  # BY-adjusted threshold on T/λ̄ per trial
    noise_eigenvalues: list = field(default_factory=list)
    stop_reason: str = ""


def trial_resolutions(voxel_size, max_res, step):
    """ResMap's trial grid: from round(2.2·Ts, 0.1 Å) in steps of ``step`` Å to ``max_res``."""
    r0 = round(MIN_RES_FACTOR * voxel_size / 0.1) * 0.1
    if r0 < MIN_RES_FACTOR * voxel_size - 1e-9:
        r0 += 0.1
    n = int(math.floor((max_res - r0) / step + 1e-9)) + 1
    return [round(r0 + i * step, 4) for i in range(max(n, 1))]


def resmap_local_resolution(mean, noise, mask, voxel_size, resolutions, alpha=0.05,
                            samples=SAMPLES_PER_RESOLUTION,
                            weight_exponent=WEIGHT_EXPONENT, band=None,
                            local_noise_voxels=None, whiten=False):
    """Local resolution (Å) at the voxels of ``mask`` (bool, input grid) of the map ``mean``,
    with noise ``noise`` (same grid; both float32 (z, y, x)), by ResMap's test at each of
    ``resolutions`` (Å, fine to coarse), FDR level ``alpha``. ``band``: see
    :func:`band_transfer` (None: no band-pass); ``samples``: working grid ≈ r/samples Å;
    ``local_noise_voxels``: see :func:`trial_statistic`. Returns :class:`ResMapResult`."""
    shape = tuple(mean.shape)
    Ts = float(voxel_size)
    lengths = np.array([n * Ts for n in shape])
    FM = fourier.rfft(mean)
    FN = fourier.rfft(noise)
    idx = np.flatnonzero(mask)
    zyx = np.array(np.unravel_index(idx, shape))  # (3, n)
    lo = zyx.min(axis=1)
    hi = zyx.max(axis=1)
    values = np.zeros(idx.size, dtype=np.float32)
    remaining = np.ones(idx.size, dtype=bool)
    out = ResMapResult(values=values)
    for res in resolutions:
        new_shape = resized_shape(shape, Ts, res / samples)
        spacing = lengths / np.array(new_shape)
        scale = np.float32(float(np.prod(new_shape)) / float(np.prod(shape)))
        if band is None:
            tr = None
        else:
            tr = band_transfer(res, band)(fourier.frequency_magnitude(new_shape, tuple(spacing)))
        cm = crop_spectrum(FM, shape, new_shape) if new_shape != shape else FM.copy()
        cn = crop_spectrum(FN, shape, new_shape) if new_shape != shape else FN.copy()
        if tr is not None:
            cm *= tr
            cn *= tr
        mw = fourier.irfft(cm, new_shape) * scale
        nw = fourier.irfft(cn, new_shape) * scale
        del cm, cn
        model = local_model(res, spacing, weight_exponent)
        hw = model.half_width
        ratio = np.array(new_shape) / np.array(shape)
        margin = 2 * hw + 2
        c_lo = np.maximum(np.floor(lo * ratio).astype(int) - margin, 0)
        c_hi = np.minimum(np.ceil(hi * ratio).astype(int) + margin + 1, np.array(new_shape))
        sl = tuple(slice(a, b) for a, b in zip(c_lo, c_hi))
        mc = np.ascontiguousarray(mw[sl])
        nc = np.ascontiguousarray(nw[sl])
        # the mask on the working grid (nearest input voxel)
        axes = [np.minimum(np.rint(np.arange(a, b) / r).astype(int), n - 1)
                for a, b, r, n in zip(c_lo, c_hi, ratio, shape)]
        mask_w = mask[np.ix_(*axes)]
        T, null, _ = trial_statistic(mc, nc, mask_w, model, local_noise_voxels, whiten)
        left = np.flatnonzero(remaining)
        coords = zyx[:, left] * ratio[:, None] - c_lo[:, None]
        t = ndimage.map_coordinates(T, coords, order=1, mode="nearest")
        log_p = null.log_sf(t)
        rej = by_reject(log_p, alpha)
        hit = left[rej]
        values[hit] = res
        remaining[hit] = False
        out.resolutions.append(float(res))
        out.assigned.append(int(hit.size))
        out.noise_eigenvalues.append(null.eigenvalues.tolist())
        thr = float(t[rej].min()) / null.mean if rej.any() else float("inf")
        out.thresholds.append(thr)
        n_left = int(remaining.sum())
        if n_left == 0:
            out.stop_reason = "every mask voxel was assigned"
            break
    else:
        out.stop_reason = f"the coarsest trial resolution ({resolutions[-1]:g} Å) was reached"
    return out
