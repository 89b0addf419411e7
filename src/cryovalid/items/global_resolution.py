"""1.a Global resolution from the two half maps: FSC, DPR and SSNR (as the reference), plus the
masked FSC with its phase-randomisation correction and the half-bit / 3σ criteria.

Metrics (Å; when a curve never crosses, the Nyquist resolution 2·Ts with the flag
``<metric>_finer_than_nyquist``; None when it is past the threshold from the first shell):
  fsc_0143_A                     unmasked FSC = 0.143 (the reference's FSC estimate)
  fsc_0143_masked_A              masked FSC corrected by phase randomisation = 0.143
  fsc_0143_masked_uncorrected_A  masked FSC (no correction) = 0.143
  fsc_05_A                       unmasked FSC = 0.5
  halfbit_A                      unmasked FSC meets the half-bit curve
  fsc_3sigma_A                   unmasked FSC meets the 3σ curve
  fsc_09_A                       unmasked FSC = 0.9 ("information well preserved up to")
  dpr_A                          DPR rises above 45° (Frank et al. 1981)
  ssnr_A                         SSNR falls below 1 (frequency r/(N·Ts), see notes)
  randomised_beyond_A            resolution beyond which phases were randomised (masked FSC)
  mask_fraction                  fraction of the box inside the soft mask (mean of the mask)
  identical_halves               True when the two half maps hold the same numbers
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid import criteria
from cryovalid.items.base import Curves, Fact, Table, new_result
from cryovalid.kernels import fsc as K

ID = "1.a"
LEVEL = "1"
REQUIRES = ("half_maps",)  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "Global resolution"
SECTION = "Level 1 analysis"
WARN_IDENTICAL = ("The two half maps are identical. They are not independent reconstructions, so "
                  "their FSC is 1 at every frequency and tells nothing about the resolution.")
WARN_NO_SIGNAL = ("The FSC between the half maps is below {gold:g} already at the first "
                  "frequency after the origin ({d:.1f} Å): the two halves share no measurable "
                  "signal.")

EXPLANATION = (
    "The two half maps are reconstructed from independent halves of the data, so what they "
    "have in common is signal and what differs is noise. Their agreement is measured shell by "
    "shell in Fourier space in three ways: the Fourier Shell Correlation (FSC; Harauz & van "
    "Heel 1986), whose resolution is read where it drops below 0.143 (Rosenthal & Henderson "
    "2003, doi:10.1016/j.jmb.2003.07.013); the Differential Phase Residual (DPR; Frank et al. "
    "1981), the amplitude-weighted rms phase difference between the halves, which reaches "
    f"{K.DPR_RANDOM_DEG:.1f}° when the phases are unrelated, and resolution is read where it "
    f"reaches {K.DPR_THRESHOLD_DEG:g}° (Frank et al. 1981); and the Spectral Signal-to-Noise Ratio (SSNR), "
    "estimated from the amplitudes of the sum and the difference of the halves, read where it "
    "drops below 1. The FSC is also compared with the information-based half-bit and 3σ curves "
    "(van Heel & Schatz 2005, doi:10.1016/j.jsb.2005.05.009) and computed with a soft mask "
    "around the molecule; the mask itself adds correlation, which is measured by randomising "
    "the phases of the halves beyond the frequency where the unmasked FSC falls below 0.8 and "
    "removed from the masked FSC (Chen et al. 2013, doi:10.1016/j.ultramic.2013.06.004). "
    "A reported resolution much better than these estimates suggests it is too optimistic.")
OVERESTIMATE_FACTOR = criteria.OVERESTIMATE_FACTOR
COMPARED = ("fsc", "ssnr")  # the estimates the reported resolution is compared with
DPR_FSC_EQUIVALENT = 0.77  # FSC of Wilson-statistics halves whose DPR is 45° (test_level1.py)

CRITERIA = (
    f"OK when the reported resolution is at least {OVERESTIMATE_FACTOR:g} times each resolution "
    f"estimated from the two half maps by 1) the unmasked FSC at {K.FSC_GOLD:g} and 2) the SSNR "
    f"at {K.SSNR_THRESHOLD:g}: one warning for each estimate E with reported resolution "
    f"< {OVERESTIMATE_FACTOR:g}·E (an estimate that does not exist is not compared). The DPR "
    f"({K.DPR_THRESHOLD_DEG:g}°) is met where the FSC is about {DPR_FSC_EQUIVALENT:g}, a much "
    f"stricter level, so it is shown but not compared. A warning is also given when the two half maps are identical, "
    "and when the FSC is already below 0.143 at the first frequency after the origin.")
CRITERIA_NO_RESOLUTION = (
    "No resolution was reported, so only the half maps themselves are checked: a warning when "
    "they are identical, and when their FSC is already below 0.143 at the first frequency after "
    "the origin.")

METHOD_NAMES = {"fsc": f"FSC ({K.FSC_GOLD:g})", "dpr": f"DPR ({K.DPR_THRESHOLD_DEG:g}°)",
                "ssnr": f"SSNR ({K.SSNR_THRESHOLD:g})"}
METRIC_NAMES = {"fsc": "fsc_0143_A", "masked": "fsc_0143_masked_A",
                "masked_raw": "fsc_0143_masked_uncorrected_A", "fsc05": "fsc_05_A",
                "halfbit": "halfbit_A", "3sigma": "fsc_3sigma_A", "fsc09": "fsc_09_A",
                "dpr": "dpr_A", "ssnr": "ssnr_A"}
RANDOM_SEED = 0  # phase randomisation is deterministic


def _fmt_res(c: K.Crossing, what: str, nyquist_A: float) -> Fact:
    if c.status == K.CROSSES:
        return Fact(what, round(c.resolution, 2), "Å", "{:.2f}")
    if c.status == K.NEVER:  # the curve stays on the signal side up to Nyquist
        return Fact(what, f"finer than Nyquist ({nyquist_A:.2f} Å)", "", "{}")
    return Fact(what, "past the threshold from the first shell", "", "{}")


def run(ctx):
    res = new_result(sys.modules[__name__])
    h1, h2 = ctx.half_maps
    shells = ctx.map.shells
    freq = shells.frequency
    nyquist = 2.0 * ctx.map.voxel_size
    F1, F2 = ctx.half_maps.fts

    identical = bool(np.array_equal(h1.data, h2.data))
    curves = K.half_map_curves(F1, F2, shells)
    thr = K.threshold_curves(shells)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ssnr = np.log10(np.maximum(curves.ssnr, 1e-6))

    cross = {
        "fsc": K.first_crossing(freq, curves.fsc, K.FSC_GOLD, "below"),
        "fsc05": K.first_crossing(freq, curves.fsc, K.FSC_HALF, "below"),
        "fsc09": K.first_crossing(freq, curves.fsc, 0.9, "below"),
        "halfbit": K.first_crossing(freq, curves.fsc, thr["half_bit"], "below"),
        "3sigma": K.first_crossing(freq, curves.fsc, thr["three_sigma"], "below"),
        "dpr": K.first_crossing(freq, curves.dpr, K.DPR_THRESHOLD_DEG, "above"),
        "ssnr": K.first_crossing(freq, log_ssnr, np.log10(K.SSNR_THRESHOLD), "below"),
    }

    # masked FSC and its correction
    masked = None
    if ctx.map.hard_mask.any():
        soft = ctx.map.soft_mask
        masked = K.masked_fsc(h1.data, h2.data, F1, F2, soft, shells, curves.fsc,
                              seed=RANDOM_SEED)
        cross["masked"] = K.first_crossing(freq, masked.corrected, K.FSC_GOLD, "below")
        cross["masked_raw"] = K.first_crossing(freq, masked.masked, K.FSC_GOLD, "below")
        res.metrics["mask_fraction"] = round(float(soft.mean()), 4)
    else:
        res.notes.append("No masked FSC: the map threshold leaves no voxel inside the mask.")

    def r(key):
        """The crossing in Å; Nyquist (with a flag) when the curve never crosses, None when it
        is past the threshold from the start."""
        c = cross.get(key)
        if c is None or identical:  # identical halves measure nothing
            return None
        if c.status == K.NEVER:
            res.metrics[f"{METRIC_NAMES[key]}_finer_than_nyquist"] = True
            return round(nyquist, 3)
        return None if c.resolution is None else round(float(c.resolution), 3)

    res.metrics.update({name: r(key) for key, name in METRIC_NAMES.items()})
    res.metrics["identical_halves"] = identical
    rb = masked.randomised_beyond if masked is not None else None
    res.metrics["randomised_beyond_A"] = (round(float(1.0 / freq[rb]), 3)
                                          if rb is not None and rb > 0 else None)

    # ---- results shown ---------------------------------------------------------------
    res.facts += [
        _fmt_res(cross["fsc"], f"Resolution by the FSC ({K.FSC_GOLD:g}, unmasked)", nyquist),
        _fmt_res(cross["ssnr"], f"Resolution by the SSNR ({K.SSNR_THRESHOLD:g})", nyquist),
    ]
    estimates = {k: cross[k].resolution for k in COMPARED
                 if cross[k].resolution is not None}
    if estimates:
        vals = list(estimates.values())
        res.facts.append(Fact("Mean of the FSC and SSNR estimates", round(float(np.mean(vals)), 2),
                              "Å"))
    res.facts.append(_fmt_res(cross["dpr"], f"Resolution by the DPR ({K.DPR_THRESHOLD_DEG:g}°, "
                                            f"about FSC {DPR_FSC_EQUIVALENT:g})", nyquist))
    res.facts += [
        _fmt_res(cross["fsc05"], "Resolution by the FSC (0.5, unmasked)", nyquist),
        _fmt_res(cross["halfbit"], "Resolution by the FSC (half-bit curve)", nyquist),
        _fmt_res(cross["3sigma"], "Resolution by the FSC (3σ curve)", nyquist),
    ]
    if masked is not None:
        res.facts += [
            _fmt_res(cross["masked"], "Resolution by the masked FSC, corrected (0.143)", nyquist),
            _fmt_res(cross["masked_raw"], "Resolution by the masked FSC, uncorrected (0.143)", nyquist),
        ]
        if res.metrics["randomised_beyond_A"] is not None:
            res.facts.append(Fact("Phases randomised beyond",
                                  res.metrics["randomised_beyond_A"], "Å"))
    if cross["fsc09"].status == K.CROSSES:
        res.facts.append(Fact("Map information well preserved (FSC > 0.9) up to",
                              round(cross["fsc09"].resolution, 2), "Å"))

    rows = []
    for key, label in (("fsc", "FSC unmasked = 0.143"), ("masked", "FSC masked, corrected = 0.143"),
                       ("masked_raw", "FSC masked, uncorrected = 0.143"),
                       ("fsc05", "FSC unmasked = 0.5"), ("halfbit", "FSC unmasked = half-bit"),
                       ("3sigma", "FSC unmasked = 3σ"), ("dpr", f"DPR = {K.DPR_THRESHOLD_DEG:g}°"),
                       ("ssnr", "SSNR = 1")):
        c = cross.get(key)
        if c is None:
            continue
        rows.append([label, f"{c.resolution:.2f}" if c.resolution is not None else
                     (f"< {nyquist:.2f}" if c.status == K.NEVER else "—"),
                     {K.CROSSES: "crosses", K.NEVER: "never crosses (finer than Nyquist)",
                      K.AT_START: "past the threshold from the first shell"}[c.status]])
    res.tables.append(Table("Resolution estimates from the half maps",
                            ["Criterion", "Resolution (Å)", "Curve"], rows,
                            ["{}", "{}", "{}"]))

    res.notes.append(
        "Frequencies are r/(N·Ts) for shell r (N = largest box side). The reference plots and "
        "tests its SSNR against r·2·Ts/N, so its SSNR resolution equals ours times 1/(2·Ts²) "
        f"(here ×{1.0 / (2.0 * ctx.map.voxel_size ** 2):.2f}).")
    res.notes.append(
        f"The DPR is read at {K.DPR_THRESHOLD_DEG:g}° (Frank et al. 1981). The reference uses "
        f"103.9° (its code 102.9°), which is the random-phase limit itself "
        f"(180°/√3 = {K.DPR_RANDOM_DEG:.1f}°): the curve approaches it but never meaningfully "
        f"crosses it. The 0.9 level is read on the measured FSC (the reference fits a logistic "
        f"curve first).")

    # ---- criteria and warnings ---------------------------------------------------------
    R = ctx.resolution
    if R is None:
        res.criteria = CRITERIA_NO_RESOLUTION
        res.notes.append("No resolution was reported: the estimates are not compared with it.")
    flagged = []
    if identical:
        res.warn("identical_halves", WARN_IDENTICAL)
    elif cross["fsc"].status == K.AT_START:
        res.warn("no_signal", WARN_NO_SIGNAL, gold=K.FSC_GOLD, d=float(1.0 / freq[1]))
    if R is not None:
        for key in COMPARED:
            est = cross[key].resolution
            if est is not None and R < OVERESTIMATE_FACTOR * est:
                flagged.append(METHOD_NAMES[key].split(" ")[0])
                res.warn(f"overestimated_{key}", criteria.WARN_OVERESTIMATED, r=float(R),
                         method=METHOD_NAMES[key], est=float(est), factor=OVERESTIMATE_FACTOR,
                         limit=OVERESTIMATE_FACTOR * est)
    sentences = []
    if identical:
        sentences.append("The two half maps are identical, so they cannot measure the "
                         "resolution (see 1.a).")
    elif cross["fsc"].status == K.AT_START:
        sentences.append("The two half maps share no measurable signal (see 1.a).")
    if flagged:
        sentences.append("The reported resolution seems too optimistic compared with the "
                         f"{', '.join(flagged)} of the half maps (see 1.a).")
    res.summary = " ".join(sentences)

    # the summary's estimates: those of the same kind as a reported resolution (not the DPR)
    for key, method in (("fsc", f"FSC {K.FSC_GOLD:g} (1.a)"), ("ssnr", "SSNR (1.a)")):
        if cross[key].resolution is not None:
            res.resolution_estimates.append(
                {"method": method, "resolution_A": round(float(cross[key].resolution), 3)})

    # ---- curves: figures and fsc.csv ---------------------------------------------------
    res.data.update({
        "frequency": freq, "fsc": curves.fsc, "dpr": curves.dpr, "ssnr": curves.ssnr,
        "thresholds": thr,
        "fsc_masked": None if masked is None else masked.masked,
        "fsc_random_masked": None if masked is None else masked.random_masked,
        "fsc_corrected": None if masked is None else masked.corrected,
        "crossings": {k: c.frequency for k, c in cross.items() if c.frequency is not None},
    })
    res.artefacts.append(_curves(freq, curves, thr, masked))
    return res.finish()


def _curves(freq, curves, thr, masked) -> Curves:
    """fsc.csv: one row per shell; NaN (an empty cell) where a curve is not defined."""
    n = freq.size
    nan = np.full(n, np.nan)
    with np.errstate(divide="ignore"):
        resolution = np.where(freq > 0, 1.0 / np.where(freq > 0, freq, 1.0), np.nan)
    return Curves("fsc.csv", [
        ("shell", np.arange(n)), ("frequency_1_per_A", freq), ("resolution_A", resolution),
        ("fsc_unmasked", curves.fsc),
        ("fsc_masked", nan if masked is None else masked.masked),
        ("fsc_masked_phase_randomised",
         nan if masked is None or masked.random_masked is None else masked.random_masked),
        ("fsc_masked_corrected", nan if masked is None else masked.corrected),
        ("dpr_deg", curves.dpr), ("ssnr", curves.ssnr),
        ("threshold_0.143", thr["0.143"]), ("threshold_0.5", thr["0.5"]),
        ("threshold_half_bit", thr["half_bit"]), ("threshold_one_bit", thr["one_bit"]),
        ("threshold_3sigma", thr["three_sigma"]),
    ])
