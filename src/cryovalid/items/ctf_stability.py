"""4.i CTF stability: the particles' CTF refined against the map at their assigned orientations,
compared with the CTF they carry (vrs_level2_5.md §3.11; the reference runs RELION's post-process
and ``ctf_refine`` per particle, Zivanov, Nakane & Scheres 2018, eLife 7:e42166).

Here cryovalid's own refinement (kernels/ctf_refine.py) runs on the grid of Ts = R/2 Å (the
reference's particles at R/2; ``ctx.particles.grid``) over the band from ``KMIN_A`` Å (the
reference's ``--kmin_defocus 30``) to R: per particle the mean defocus d, the astigmatism
|U − V| (both components), a relative B-factor and the amplitude; the phase shift is refined
too when the STAR carries one (rlnPhaseShift: phase-plate data, as RELION's ``--fit_phase``),
else kept as given (0). Derived as the reference: d_after, a_after = |U − V|, ddiff = d_before − d_after,
adiff = a_before − a_after (Å); the B-factor relative to the particles' median (Å²; the map's
own B is unknown) and the scale factor, the amplitude over the particles' median (the grey
scale between the map and the particles is unknown); their 2.5th, 50th and 97.5th
percentiles.

Criteria (decisions, docs/level4.md): the reference's bands on the 95 % intervals of the
astigmatism, ddiff and adiff (± ``LIMIT_A`` Å); "not centred" for ddiff and adiff means that
the bootstrap 95 % interval of the *median* excludes 0 **and** the median is further from 0
than the error that moves the CTF phase at R by a quarter period (R²/(2λ) for the defocus,
R²/λ for |U − V|, which changes the defocus by half of it at the worst azimuth): the interval
of a per-particle estimate is dominated by the estimator's noise, the median's is not. B and
the scale factor are relative, centred by construction, and are reported but not checked
(the reference's ±5 Å² and ±0.1 bands on a per-particle quantity centred on 1 warn for any data
set).

Metrics: n_particles, pixel_size_A, kmin_A, kmax_A, cc_before_median, cc_after_median,
phase_refined (a flag), and
for each of defocus_A, astigmatism_A, ddiff_A, adiff_A, phase_deg, bfactor_A2, scale: _p025,
_median, _p975; ddiff_median_ci_lo_A / _hi_A and adiff_… (the bootstrap interval of the
median), defocus_tolerance_A,
astigmatism_tolerance_A. ``ctf_refinement.csv`` per particle.
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import CannotMeasure
from cryovalid.items.base import Curves, Fact, Table, new_result
from cryovalid.kernels import ctf_refine
from cryovalid.kernels.ctf import wavelength

ID = "4.i"
LEVEL = "4"
REQUIRES = ("angles", "ctf", "resolution")
TITLE = "CTF stability"
SECTION = "Level 4 analysis"

KMIN_A = 30.0  # Å: lowest resolution used (the reference's --kmin_defocus 30)
LIMIT_A = 5000.0  # Å: bands on the 95 % intervals of astigmatism, ddiff and adiff
QUARTER_PERIOD = np.pi / 2  # CTF phase error at R that makes a median shift significant
N_BOOTSTRAP = 500
BOOTSTRAP_SEED = 0
CHUNK = 512  # particles projected at once

# quantity key -> (words, unit) for the texts
QUANTITIES = {"astigmatism": ("astigmatism", "Å"), "ddiff": ("defocus difference", "Å"),
              "adiff": ("astigmatism difference", "Å")}
WARN_LOWER = ("The lower limit of the 95% interval of the {quantity}, {value:.0f} {unit}, is "
              "below the accepted lower bound, {limit:g} {unit}.")
WARN_UPPER = ("The upper limit of the 95% interval of the {quantity}, {value:.0f} {unit}, is "
              "above the accepted upper bound, {limit:g} {unit}.")
WARN_CENTRED = ("The {quantity} is not centred on 0: its median, {median:.0f} Å (95% "
                "confidence interval {lo:.0f} to {hi:.0f} Å), is further from 0 than "
                "{tolerance:.0f} Å, the error that moves the CTF phase at the reported "
                "resolution by a quarter of a period.")
SUMMARY = "It seems that there is some problem with the CTF (see 4.i)."

EXPLANATION = (
    "The CTF of each particle is refined against the map: the particle is compared with the "
    "map's projection at the particle's orientation and shift, multiplied by a CTF whose mean "
    "defocus, astigmatism, B-factor and amplitude are fitted (by least squares in Fourier "
    f"space, from {KMIN_A:g} Å to the reported resolution, on a grid of half the reported "
    "resolution). If the particles' CTF is right, the refined defocus and astigmatism differ "
    "from the given ones only by the noise of a single-particle estimate, scattered around 0; "
    "a systematic shift means that the CTF given with the particles (or the map's "
    "magnification) is off. The B-factor and the scale factor are relative to the particles' "
    "median: their spread shows how much the particles differ in contrast and in high-"
    "resolution signal, plus the noise of the estimate.")
CRITERIA = (
    f"OK if 1) the 95% interval of the refined astigmatism |U − V| is within ±{LIMIT_A:g} Å; "
    f"2) that of the defocus difference is within ±{LIMIT_A:g} Å; 3) that of the astigmatism "
    f"difference is within ±{LIMIT_A:g} Å; 4) neither difference is off-centre: the 95% "
    "confidence interval of its median (bootstrap) includes 0, or the median is within the "
    "error that moves the CTF phase at the reported resolution by a quarter of a period "
    "(R²/(2λ) for the defocus, R²/λ for the astigmatism). The B-factor and the scale factor "
    "are relative to the particles' median and are not checked.")


def tolerances(resolution: float, voltage_kv: float) -> tuple:
    """(defocus, astigmatism) tolerances in Å: the error that moves the CTF phase
    π λ Δf s² at s = 1/R by QUARTER_PERIOD, for the mean defocus and for |U − V| (half of
    which is the defocus error at the worst azimuth)."""
    d = QUARTER_PERIOD * resolution ** 2 / (np.pi * wavelength(voltage_kv))
    return float(d), float(2.0 * d)


def median_ci(values, seed=BOOTSTRAP_SEED, n_boot=N_BOOTSTRAP) -> tuple:
    """(lo, hi): the 95 % bootstrap interval (percentile method) of the median of ``values``."""
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    meds = np.empty(n_boot)
    for lo in range(0, n_boot, 50):  # bounded memory (50 × n indices at once)
        k = min(n_boot, lo + 50) - lo
        meds[lo:lo + k] = np.median(v[rng.integers(0, len(v), (k, len(v)))], axis=1)
    return float(np.quantile(meds, 0.025)), float(np.quantile(meds, 0.975))


def _percentiles(v) -> tuple:
    return tuple(float(x) for x in np.percentile(v, [2.5, 50.0, 97.5]))


def run(ctx):
    res = new_result(sys.modules[__name__])
    pd = ctx.particles
    r = float(ctx.resolution)
    ts = float(ctx.map.voxel_size)
    if r <= 2.0 * ts:
        raise CannotMeasure(f"the reported resolution, {r:g} Å, is not coarser than the map's "
                            f"Nyquist limit ({2 * ts:g} Å)")
    if r >= KMIN_A:
        raise CannotMeasure(f"the reported resolution, {r:g} Å, leaves no band between "
                            f"{KMIN_A:g} Å and it to refine the CTF")
    eulers = pd.finite_eulers()
    par = pd.ctf_parameters
    n = pd.n
    col = lambda k: np.broadcast_to(np.asarray(par[k], dtype=np.float64), (n,))  # noqa: E731
    u, v, ang, phase = col("defocus_u"), col("defocus_v"), col("angle_deg"), col("phase_shift_deg")
    if not all(np.all(np.isfinite(x)) for x in (u, v, ang, phase)):
        raise CannotMeasure("some particles have CTF parameters that are not finite numbers")
    fit_phase = "rlnPhaseShift" in pd.particles.table.columns  # phase-plate data
    grid = pd.grid(r / 2.0)
    shifts = grid.shifts
    fits = []
    for lo in range(0, n, CHUNK):
        sl = slice(lo, min(n, lo + CHUNK))
        fits.append(ctf_refine.refine(
            grid.images[sl], grid.projector.project(eulers[sl]), shifts[sl], grid.pixel_size,
            u[sl], v[sl], ang[sl], phase[sl], par["voltage_kv"], par["cs_mm"], par["q0"],
            1.0 / KMIN_A, 1.0 / r, fit_phase=fit_phase))
    cat = lambda name: np.concatenate([getattr(f, name) for f in fits])  # noqa: E731
    d_after, a_after = cat("defocus"), cat("astigmatism")
    amp, bfac = cat("amplitude"), cat("bfactor")
    cc0, cc1 = cat("cc_before"), cat("cc_after")
    phase_after = cat("phase")
    amp_med = float(np.median(amp))
    if not amp_med > 0:
        raise CannotMeasure("the particles do not correlate positively with the CTF-modulated "
                            "projections of the map (median amplitude ≤ 0): the CTF cannot be "
                            "refined")
    d_before, a_before = 0.5 * (u + v), np.abs(u - v)
    q = {"defocus": d_after, "astigmatism": a_after, "ddiff": d_before - d_after,
         "adiff": a_before - a_after, "phase": phase_after, "bfactor": bfac - np.median(bfac),
         "scale": amp / amp_med}
    pct = {k: _percentiles(x) for k, x in q.items()}
    tol_d, tol_a = tolerances(r, par["voltage_kv"])
    ci = {"ddiff": median_ci(q["ddiff"]), "adiff": median_ci(q["adiff"], seed=BOOTSTRAP_SEED + 1)}
    m = res.metrics
    m.update({"n_particles": int(n), "pixel_size_A": round(grid.pixel_size, 4),
              "kmin_A": KMIN_A, "kmax_A": r,
              "cc_before_median": round(float(np.median(cc0)), 4),
              "cc_after_median": round(float(np.median(cc1)), 4),
              "defocus_tolerance_A": round(tol_d, 1), "astigmatism_tolerance_A": round(tol_a, 1),
              "phase_refined": bool(fit_phase)})
    names = {"defocus": "defocus_A", "astigmatism": "astigmatism_A", "ddiff": "ddiff_A",
             "adiff": "adiff_A", "phase": "phase_deg", "bfactor": "bfactor_A2", "scale": "scale"}
    for k, name in names.items():
        lo, med, hi = pct[k]
        nd = 4 if k == "scale" else 2
        m[f"{name}_p025"], m[f"{name}_median"], m[f"{name}_p975"] = (
            round(lo, nd), round(med, nd), round(hi, nd))
    for k in ("ddiff", "adiff"):
        m[f"{k}_median_ci_lo_A"], m[f"{k}_median_ci_hi_A"] = (round(x, 1) for x in ci[k])
    # ---- criteria
    for k in ("astigmatism", "ddiff", "adiff"):
        words, unit = QUANTITIES[k]
        lo, med, hi = pct[k]
        if lo < -LIMIT_A:
            res.warn(f"{k}_lower", WARN_LOWER, quantity=words, value=lo, unit=unit,
                     limit=-LIMIT_A)
        if hi > LIMIT_A:
            res.warn(f"{k}_upper", WARN_UPPER, quantity=words, value=hi, unit=unit,
                     limit=LIMIT_A)
    for k, tol in (("ddiff", tol_d), ("adiff", tol_a)):
        lo, hi = ci[k]
        med = pct[k][1]
        if (lo > 0 or hi < 0) and abs(med) > tol:
            res.warn(f"{k}_not_centred", WARN_CENTRED, quantity=QUANTITIES[k][0], median=med,
                     lo=lo, hi=hi, tolerance=tol)
    if res.warnings:
        res.summary = SUMMARY
    # ---- what the report shows
    rows = [("Defocus (Å)", "defocus", "{:.2f}"), ("Astigmatism (Å)", "astigmatism", "{:.2f}"),
            ("Defocus difference (Å)", "ddiff", "{:.2f}"),
            ("Astigmatism difference (Å)", "adiff", "{:.2f}"),
            (f"Phase shift (degrees; {'refined' if fit_phase else 'as given, not refined'})",
             "phase", "{:.2f}"),
            ("B-factor (Å², relative to the median)", "bfactor", "{:.2f}"),
            ("Scale factor (relative to the median)", "scale", "{:.3f}")]
    res.tables.append(Table(
        "CTF after the local refinement: median and 95% interval (2.5th to 97.5th percentile) "
        "over the particles",
        ["Parameter", "Median", "95% interval"],
        [[label, pct[k][1], f"[{fmt.format(pct[k][0])}, {fmt.format(pct[k][2])}]"]
         for label, k, fmt in rows],
        ["{}", "{:.3f}", "{}"]))
    res.facts += [
        Fact("Particles", int(n), "", "{}"),
        Fact("Refinement grid", f"{grid.box} px of {grid.pixel_size:.3g} Å", "", "{}"),
        Fact("Band", f"{KMIN_A:g} to {r:g} Å", "", "{}"),
        Fact("Median defocus difference", pct["ddiff"][1], "Å", "{:.0f}"),
        Fact("Median astigmatism difference", pct["adiff"][1], "Å", "{:.0f}"),
        Fact("Defocus tolerance (quarter period at R)", tol_d, "Å", "{:.0f}"),
        Fact("Median correlation in the band, given CTF", float(np.median(cc0)), "", "{:.3f}"),
        Fact("Median correlation in the band, refined CTF", float(np.median(cc1)), "",
             "{:.3f}"),
    ]
    res.notes.append("The CTF is refined by cryovalid's own per-particle fit (not RELION's "
                     "ctf_refine); " + (
                         "the phase shift is refined (the STAR carries rlnPhaseShift: "
                         "phase-plate data) but not checked, as the reference; Cs, voltage and "
                         "amplitude contrast are kept as given." if fit_phase else
                         "the phase shift (none in the STAR), Cs, voltage and amplitude "
                         "contrast are kept as given."))
    res.artefacts.append(Curves("ctf_refinement.csv", [
        ("particle", np.arange(1, n + 1)), ("defocus_before_A", d_before),
        ("defocus_after_A", d_after), ("astigmatism_before_A", a_before),
        ("astigmatism_after_A", a_after), ("bfactor_relative_A2", q["bfactor"]),
        ("scale_relative", q["scale"]), ("phase_before_deg", phase),
        ("phase_after_deg", phase_after), ("cc_before", cc0), ("cc_after", cc1)]))
    res.data.update(values=q, limit=LIMIT_A, phase_refined=bool(fit_phase))
    return res.finish()
