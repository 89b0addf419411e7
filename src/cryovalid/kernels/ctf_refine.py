"""Per-particle CTF refinement against the map's projections at the particles' assigned
orientations (item 4.i; in the place of RELION's ``ctf_refine --fit_defocus``, Zivanov, Nakane
& Scheres 2018, eLife 7:e42166, which the reference runs).

Model, in Fourier space over the band ``kmin`` ≤ s ≤ ``kmax`` (1/Å) of the rfft2 grid: the
particle I(k) ≈ a·E_B(k)·C(k)·P(k) + noise, P the projection of the map at the particle's
angles moved by its shift, C the CTF of kernels/ctf.py with the mean defocus d and the
astigmatism written linearly (Δf(α) = d + a₁·cos 2α + a₂·sin 2α, i.e. a₁ = ½(U − V)·cos 2θ,
a₂ = ½(U − V)·sin 2θ), E_B = exp(−B s²/4) and a the amplitude. With X = Re(I·P̄) and
Y = |P|², the least-squares amplitude of a CTF shape W = E_B·C is a = ΣXW / ΣYW², and the
fit is best where the normalised score ΣXW / √(ΣYW²) is largest (noise taken as white: the
particles are compared as they are).

Search, per particle and vectorised over particles × candidate values × frequencies (the sums
over frequencies are matrix products, see :func:`_search`):
1. mean defocus: a grid over d₀ ± ``DEFOCUS_RANGE`` (the astigmatism as given), with steps
   that change the CTF phase at ``kmax`` by π/4 (step = 1/(4 λ kmax²) Å), the best point
   refined on a grid ``FINE`` times finer over ± one step and a parabola through its
   neighbours;
2. a₁, then a₂: the same over [−``ASTIG_RANGE``, ``ASTIG_RANGE``] (absolute, so a wrong
   astigmatism is found wherever it is); steps 1–2 are repeated ``ROUNDS`` times, the later
   rounds within ± ``NARROW`` coarse steps of the current values; then the mean defocus once
   more on the fine grid;
3. B (relative: the map's own B-factor is unknown): a grid over ±``B_RANGE`` Å² with a
   parabola; then the amplitude a.
With ``fit_phase`` (phase-plate data: RELION's ``--fit_phase``), each round also searches the
phase shift after a₂, over ±``PHASE_RANGE_DEG`` of the given value in the first round (steps
of ``PHASE_STEP_DEG``, then the fine grid and a parabola) and ± ``NARROW`` steps later; a
constant CTF phase is told apart from a defocus change by its flat dependence on s² across the
band, but the two are correlated, so the final fine search of the mean defocus is then a joint
one over defocus × phase: once on the coarse grids (± ``NARROW`` defocus steps × ±
``PHASE_RANGE_DEG``), then ``JOINT_ROUNDS`` times on the fine grids (± 2 coarse steps of
each), re-centred each time. Otherwise the phase shift is kept as given, and so are Cs, voltage and Q0 always. Defocus and astigmatism in Å, B in Å²,
the amplitude in the particles' units per unit of the projection.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from cryovalid.kernels import fourier
from cryovalid.kernels.ctf import wavelength
from cryovalid.kernels.similarity import shift_phases

DEFOCUS_RANGE = 6000.0  # Å: mean defocus searched within ± this of the given value
ASTIG_RANGE = 5000.0  # Å: |a₁|, |a₂| ≤ this (|U − V| up to 2·√2 times it)
B_RANGE = 300.0  # Å²: relative B searched within ± this
B_STEP = 20.0  # Å²
FINE = 4  # the fine grid's step is the coarse step / FINE
PHASE_STEP = np.pi / 4  # CTF phase change at kmax between coarse grid points
ROUNDS = 3  # rounds of the search of d, a₁, a₂ in turn
NARROW = 3  # rounds after the first search ± this many coarse steps around the result
CHUNK = 256  # particles searched at once
PHASE_RANGE_DEG = 90.0  # fit_phase: the phase shift searched within ± this of the given value
PHASE_STEP_DEG = 15.0  # fit_phase: the coarse step of that search
JOINT_ROUNDS = 3  # fit_phase: final joint searches of defocus × phase on the fine grids


@dataclass
class CtfFit:
    """Per particle (n,): the refined mean defocus, astigmatism components a₁, a₂ (Å),
    relative B (Å²), amplitude, and the normalised correlation (in the band) of the particle
    with the CTF-modulated projection with the given and with the refined parameters; the
    phase shift (degrees, in [0, 360)): refined with ``fit_phase``, else as given."""
    defocus: np.ndarray
    a1: np.ndarray
    a2: np.ndarray
    bfactor: np.ndarray
    amplitude: np.ndarray
    cc_before: np.ndarray
    cc_after: np.ndarray
    phase: np.ndarray | None = None

    @property
    def defocus_u(self) -> np.ndarray:
        return self.defocus + np.hypot(self.a1, self.a2)

    @property
    def defocus_v(self) -> np.ndarray:
        return self.defocus - np.hypot(self.a1, self.a2)

    @property
    def astigmatism(self) -> np.ndarray:
        """|U − V| = 2·√(a₁² + a₂²) (Å)."""
        return 2.0 * np.hypot(self.a1, self.a2)


def defocus_step(kmax: float, voltage_kv: float) -> float:
    """Å: the defocus change that moves the CTF phase at ``kmax`` (1/Å) by PHASE_STEP."""
    return PHASE_STEP / (np.pi * wavelength(voltage_kv) * kmax * kmax)


def astigmatism_components(defocus_u, defocus_v, angle_deg):
    """(d, a₁, a₂) Å from RELION's U, V (Å) and angle θ (degrees)."""
    u = np.asarray(defocus_u, dtype=np.float64)
    v = np.asarray(defocus_v, dtype=np.float64)
    th = np.radians(np.asarray(angle_deg, dtype=np.float64))
    h = 0.5 * (u - v)
    return 0.5 * (u + v), h * np.cos(2 * th), h * np.sin(2 * th)


class _Band:
    """The rfft2 frequencies of the band and the CTF's fixed parts there."""

    def __init__(self, box, pixel_size, kmin, kmax, voltage_kv, cs_mm, q0):
        ky = np.fft.fftfreq(box, pixel_size)[:, None]
        kx = np.fft.rfftfreq(box, pixel_size)[None, :]
        s2 = (kx * kx + ky * ky) + 0.0 * kx
        s = np.sqrt(s2)
        self.inside = (s >= kmin) & (s <= kmax)
        # the rfft2 half plane: columns other than 0 and Nyquist stand for two coefficients
        w = np.full(s2.shape, 2.0)
        w[:, 0] = 1.0
        if box % 2 == 0:
            w[:, -1] = 1.0
        self.weight = w[self.inside].astype(np.float32)
        alpha = np.arctan2(ky + 0.0 * kx, kx + 0.0 * ky)[self.inside]
        self.s2 = s2[self.inside]
        self.cos2 = np.cos(2 * alpha).astype(np.float32)
        self.sin2 = np.sin(2 * alpha).astype(np.float32)
        lam = wavelength(voltage_kv)
        self.a = (np.pi * lam * self.s2).astype(np.float32)  # phase per Å of defocus
        self.c = (-0.5 * np.pi * cs_mm * 1e7 * lam ** 3 * self.s2 ** 2).astype(np.float32)
        self.psi = float(np.arcsin(np.clip(q0, 0.0, 1.0)))  # √(1−Q0²)·sin χ + Q0·cos χ
        self.s2 = self.s2.astype(np.float32)

    def ctf(self, df, phase):
        """−sin(χ + ψ) for defocus ``df`` (..., q) Å and phase shift (radians, broadcast)."""
        return -np.sin(self.a * df + self.c + phase + self.psi)


def _score(x, y, w):
    return (x * w).sum(-1) / np.sqrt(np.maximum((y * w * w).sum(-1), 1e-30))


def _search(band, x, y, base, direction, centre, offsets, phase):
    """Best value (c,) of the parameter p = centre + offset (offsets (g,)) where the defocus is
    base + direction·p, by the score (module docstring), refined by a parabola through the
    best grid point and its neighbours; also the best score (c,).

    With φ the CTF phase at p = centre and δ_g = λπs²·direction·offset_g (the same for every
    particle), CTF_g = −(sin φ·cos δ_g + cos φ·sin δ_g): the sums over frequencies of
    X·CTF_g and Y·CTF_g² (with sin² = (1 − cos 2·)/2) are matrix products of (particles, q)
    by (q, g) arrays."""
    ph = (band.a * (base + direction * centre[:, None]) + band.c + phase[:, None]
          + band.psi).astype(np.float32)
    inc = (band.a * direction)[:, None] * np.asarray(offsets, dtype=np.float32)[None, :]
    off, s0 = _search_values(_scores(x, y, ph, inc), np.asarray(offsets, dtype=np.float64))
    return centre + off, s0


def _scores(x, y, ph, inc):
    """Scores (c, g) of the CTF shapes −sin(φ + δ_g): φ (c, q) per particle, δ (q, g) the
    same for every particle; sums over frequencies as matrix products."""
    num = -((x * np.sin(ph)) @ np.cos(inc) + (x * np.cos(ph)) @ np.sin(inc))
    # sin²(φ + δ) = (1 − cos(2φ + 2δ))/2
    den = 0.5 * (y.sum(-1, keepdims=True) - (y * np.cos(2 * ph)) @ np.cos(2 * inc)
                 + (y * np.sin(2 * ph)) @ np.sin(2 * inc))
    return num / np.sqrt(np.maximum(den, 1e-30))


def _joint_defocus_phase(band, x, y, defocus, phase, d_offsets, p_offsets):
    """The mean defocus and the phase shift searched together (they are correlated over a
    band: both move the CTF phase), on the grid ``d_offsets`` (Å) × ``p_offsets`` (radians)
    around ``defocus`` (c, q; the astigmatism included) and ``phase`` (c,); each refined by a
    parabola through the best grid point along its axis. Returns (defocus offset, phase)
    (c,) each."""
    dd = np.asarray(d_offsets, dtype=np.float64)
    dp = np.asarray(p_offsets, dtype=np.float64)
    ph = (band.a * defocus + band.c + phase[:, None] + band.psi).astype(np.float32)
    inc = (band.a.astype(np.float64)[:, None, None] * dd[None, :, None]
           + dp[None, None, :]).reshape(len(band.a), -1).astype(np.float32)
    sc = _scores(x, y, ph, inc).reshape(len(x), len(dd), len(dp))
    rows = np.arange(len(x))
    j = sc.reshape(len(x), -1).argmax(axis=1)
    jd, jp = np.unravel_index(j, (len(dd), len(dp)))
    off_d, _ = _search_values(sc[rows, :, jp], dd)
    off_p, _ = _search_values(sc[rows, jd, :], dp)
    return off_d, phase + off_p


def _two_stage(band, x, y, base, direction, centre, half_range, step, phase):
    n = int(np.ceil(half_range / step))
    coarse = step * np.arange(-n, n + 1)
    best, _ = _search(band, x, y, base, direction, centre, coarse, phase)
    fine = (step / FINE) * np.arange(-FINE, FINE + 1)
    return _search(band, x, y, base, direction, best, fine, phase)


def refine(images, projections, shifts, pixel_size, defocus_u, defocus_v, angle_deg,
           phase_shift_deg, voltage_kv, cs_mm, q0, kmin, kmax, fit_phase=False) -> CtfFit:
    """Refine the CTF of each particle (module docstring). ``images`` and ``projections``
    (n, b, b) on the same grid of ``pixel_size`` Å; ``shifts`` (n, 2) px the content shift of
    each image (``image ≈ shift(CTF·projection, t)``); the CTF parameters per particle
    (RELION's, Å and degrees; scalars broadcast), the acquisition; the band ``kmin``–``kmax``
    (1/Å); ``fit_phase``: refine the phase shift too."""
    n, b = images.shape[0], images.shape[-1]
    band = _Band(b, pixel_size, kmin, kmax, voltage_kv, cs_mm, q0)
    if not band.inside.any():
        raise ValueError("no frequency of the grid lies in the band")
    col = lambda v: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,))  # noqa: E731
    d0, a1_0, a2_0 = astigmatism_components(col(defocus_u), col(defocus_v), col(angle_deg))
    phase = np.radians(col(phase_shift_deg)).astype(np.float32)
    step = defocus_step(kmax, voltage_kv)
    out = {k: np.empty(n) for k in ("d", "a1", "a2", "b", "amp", "cc0", "cc1", "phase")}
    p_step = np.radians(PHASE_STEP_DEG)
    per_phase = (1.0 / band.a).astype(np.float32)  # defocus (Å) per radian of CTF phase
    b_grid = B_STEP * np.arange(-int(B_RANGE / B_STEP), int(B_RANGE / B_STEP) + 1)
    for lo in range(0, n, CHUNK):
        sl = slice(lo, min(n, lo + CHUNK))
        fi = scipy.fft.rfft2(images[sl], workers=fourier.workers())[:, band.inside]
        fp = (scipy.fft.rfft2(projections[sl], workers=fourier.workers())
              * shift_phases(b, shifts[sl]))[:, band.inside]
        x = (fi.real * fp.real + fi.imag * fp.imag) * band.weight
        y = (fp.real ** 2 + fp.imag ** 2) * band.weight
        ii = (fi.real ** 2 + fi.imag ** 2) * band.weight
        norm_i = np.sqrt(np.maximum(ii.sum(-1), 1e-30))
        ph = phase[sl]
        d, a1, a2 = d0[sl], a1_0[sl], a2_0[sl]
        astig = lambda a1, a2: (a1[:, None] * band.cos2 + a2[:, None] * band.sin2)  # noqa: E731
        zero = np.zeros_like(d)
        ones = np.ones_like(band.a)
        cc0 = _score(x, y, band.ctf((d[:, None] + astig(a1, a2)).astype(np.float32),
                                    ph[:, None])) / norm_i
        for rnd in range(ROUNDS):  # the first over the whole ranges, then around the result
            rd, ra = (DEFOCUS_RANGE, ASTIG_RANGE) if rnd == 0 else (NARROW * step,) * 2
            c1, c2 = (zero, zero) if rnd == 0 else (a1, a2)
            d, _ = _two_stage(band, x, y, astig(a1, a2).astype(np.float32), ones, d,
                              rd, step, ph)
            a1, _ = _two_stage(band, x, y, (d[:, None] + astig(zero, a2)).astype(np.float32),
                               band.cos2, c1, ra, step, ph)
            a2, _ = _two_stage(band, x, y, (d[:, None] + astig(a1, zero)).astype(np.float32),
                               band.sin2, c2, ra, step, ph)
            if fit_phase:  # a constant phase: the "defocus" direction 1/(λπs²) per radian
                rp = np.radians(PHASE_RANGE_DEG) if rnd == 0 else NARROW * p_step
                dp, _ = _two_stage(band, x, y, (d[:, None] + astig(a1, a2)).astype(np.float32),
                                   per_phase, zero, rp, p_step, ph)
                ph = (ph + dp).astype(np.float32)
        fine = (step / FINE) * np.arange(-2 * FINE, 2 * FINE + 1)
        if fit_phase:  # defocus and phase together: alone, each absorbs part of the other
            kp = int(round(PHASE_RANGE_DEG / PHASE_STEP_DEG))
            coarse = (step * np.arange(-NARROW, NARROW + 1), p_step * np.arange(-kp, kp + 1))
            fine_p = (p_step / FINE) * np.arange(-2 * FINE, 2 * FINE + 1)
            for d_grid, p_grid in [coarse] + [(fine, fine_p)] * JOINT_ROUNDS:
                dd, ph = _joint_defocus_phase(
                    band, x, y, (d[:, None] + astig(a1, a2)).astype(np.float32), ph, d_grid,
                    p_grid)
                d, ph = d + dd, ph.astype(np.float32)
        else:
            d, _ = _search(band, x, y, astig(a1, a2).astype(np.float32), ones, d, fine, ph)
        c = band.ctf((d[:, None] + astig(a1, a2)).astype(np.float32), ph[:, None])
        env = np.exp(-b_grid[None, :] * band.s2.astype(np.float64)[:, None] / 4.0)  # (q, g)
        cd = c.astype(np.float64)
        sc = ((x * cd) @ env) / np.sqrt(np.maximum((y * cd * cd) @ (env * env), 1e-30))
        bb, _ = _search_values(sc, b_grid)
        w = c * np.exp(-bb[:, None] * band.s2[None, :] / 4.0).astype(np.float32)
        out["d"][sl], out["a1"][sl], out["a2"][sl], out["b"][sl] = d, a1, a2, bb
        out["amp"][sl] = (x * w).sum(-1) / np.maximum((y * w * w).sum(-1), 1e-30)
        out["cc0"][sl] = cc0
        out["cc1"][sl] = _score(x, y, w) / norm_i
        out["phase"][sl] = np.degrees(ph) % 360.0
    return CtfFit(out["d"], out["a1"], out["a2"], out["b"], out["amp"], out["cc0"],
                  out["cc1"], out["phase"])


def _search_values(sc, grid):
    """Best grid value (c,) of scores (c, g) refined by a parabola, and its score."""
    j = np.argmax(sc, axis=1)
    rows = np.arange(len(sc))
    jm, jp = np.clip(j - 1, 0, len(grid) - 1), np.clip(j + 1, 0, len(grid) - 1)
    s0, sm, sp = sc[rows, j], sc[rows, jm], sc[rows, jp]
    den = sm - 2 * s0 + sp
    inner = (j > 0) & (j < len(grid) - 1) & (den < 0)
    frac = np.where(inner, 0.5 * (sm - sp) / np.where(inner, den, -1.0), 0.0)
    return grid[j] + np.clip(frac, -0.5, 0.5) * (grid[1] - grid[0]), s0
