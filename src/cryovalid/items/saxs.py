"""O.b SAXS: does the scattering profile computed from the map fit the experimental SAXS curve?

The reference converts the map (hard mask) to pseudo-atoms and runs ATSAS CRYSOL against the
curve, and leaves the item unevaluated. We compute the profile from the map itself
(kernels/saxs.py): every voxel inside the hard mask is a point scatterer of weight
(map − solvent level)·a³, the Debye formula (Debye 1915, Ann. Phys. 351:809) evaluated exactly
through the density's autocorrelation, with a hydration layer as in CRYSOL (Svergun, Barberato &
Koch 1995, J. Appl. Cryst. 28:768): a shell of :data:`HYDRATION_SHELL_A` Å around the mask at
:data:`HYDRATION_CONTRAST` of the molecule's mean density (over the mask). The map is
a contrast map already (the solvent's level is subtracted), so no excluded-volume term is
added. Scale and a constant background are fitted to the curve by weighted least squares
(weights 1/σ²; a curve without σ gets σ from its point-to-point scatter,
kernels.saxs.estimate_sigma), over q ≤ min(:data:`Q_FIT_MAX`, :data:`NYQUIST_FRACTION`·π/a,
2π/d) (a = the voxel size of the grid used, d the reported resolution); χ² is the reduced one
(N − 2 degrees of freedom). Rg of the map is real-space (from the density, with and without
the hydration layer) and from the same Guinier fit on the map's profile; Rg of the curve from
a Guinier fit (Guinier 1939) with q·Rg ≤ 1.3
chosen automatically.
Units: q in 1/Å, Rg in Å, intensities in the curve's units.
"""
from __future__ import annotations

import math
import os
import sys


from cryovalid.errors import CannotMeasure
from cryovalid.items.base import Fact, new_result
from cryovalid.kernels import saxs as ks
from cryovalid.results import Curves

ID = "O.b"
LEVEL = "O"
TITLE = "SAXS"
SECTION = "Level O analysis"
REQUIRES = ("saxs",)

CHI2_MAX = 2.0  # reduced χ² of the fit above which the item warns
HYDRATION_SHELL_A = 3.0  # Å, thickness of the hydration layer
HYDRATION_CONTRAST = 0.10  # the layer's density as a fraction of the molecule's mean density
Q_FIT_MAX = 0.5  # 1/Å, as CRYSOL's default smax
NYQUIST_FRACTION = 0.5  # of the grid's Nyquist q = π/a
MIN_FIT_POINTS = 10

WARN_CHI2 = ("The profile computed from the map fits the SAXS curve with χ² = {chi2:.2f}, above "
             "{limit:g}: the molecule in solution may differ from the map's (its shape, "
             "oligomeric state or flexible parts), or the map's mask may cut or add density.")

EXPLANATION = (
    "Small-angle X-ray scattering measures the rotationally averaged scattering of the molecule "
    "in solution, an independent check of its overall size and shape. We compute the profile "
    "the map's molecule would give (every voxel inside the molecule's mask as a scatterer, with "
    f"a {HYDRATION_SHELL_A:g} Å hydration layer of {HYDRATION_CONTRAST:.0%} of the molecule's "
    "contrast), fit its scale and a constant background to the experimental curve and report "
    "the reduced χ² and the radii of gyration of the map and of the curve (Guinier, "
    f"q·Rg ≤ {ks.GUINIER_QRG_MAX:g}). With correct errors a profile that explains the data "
    "gives χ² near 1 (its standard deviation is √(2/N), 0.14 for 100 points); a map-derived "
    "profile carries small systematic errors of its own (the mask, the hydration layer, "
    f"flexible parts missing from the map), so we accept up to χ² = {CHI2_MAX:g}, while a "
    "wrong oligomeric state or a different molecule gives χ² of tens or more. χ² is only as "
    "good as the curve's errors: a curve whose sigma is underestimated fails every map. The "
    "reference leaves this item unevaluated.")

CRITERIA = (f"OK if the reduced χ² of the fit of the map's profile to the SAXS curve (scale and "
            f"constant background fitted) is at most {CHI2_MAX:g}.")


def q_limit(voxel_size: float, resolution) -> float:
    """Largest q (1/Å) fitted: the map carries no information beyond 2π/d nor, reliably, beyond
    a fraction of its grid's Nyquist q."""
    lim = min(Q_FIT_MAX, NYQUIST_FRACTION * math.pi / voxel_size)
    if resolution:
        lim = min(lim, 2 * math.pi / float(resolution))
    return float(lim)


def run(ctx):
    res = new_result(sys.modules[__name__])
    curve = ctx.saxs
    mask = ctx.map.hard_mask
    if not mask.any():
        raise CannotMeasure("The molecule's mask is empty at this threshold.")
    dens = ks.scattering_density(ctx.map.data, mask, ctx.map.voxel_size,
                                 shell_A=HYDRATION_SHELL_A, shell_contrast=HYDRATION_CONTRAST)
    if not dens.molecule_density > 0:
        raise CannotMeasure("The map's density inside the mask is not above the solvent's "
                            "level: there is no contrast to compute a profile from.")
    qmax = q_limit(dens.voxel_size, ctx.resolution)
    sel = curve.q <= qmax
    n = int(sel.sum())
    if n < MIN_FIT_POINTS:
        raise CannotMeasure(f"Only {n} points of the SAXS curve lie at q ≤ {qmax:.3f} 1/Å, the "
                            f"range the map can predict; at least {MIN_FIT_POINTS} are needed.")
    q, inten = curve.q[sel], curve.intensity[sel]
    if curve.sigma is not None:
        sigma, sigma_source = curve.sigma[sel], "the file"
    else:
        sigma, sigma_source = ks.estimate_sigma(inten), "estimated from the point-to-point scatter"
        res.notes.append(f"The curve has no usable sigma column: sigma was {sigma_source} "
                         f"(the running root-mean-square over {ks.SIGMA_WINDOW} points of its "
                         f"second differences / √6); the χ² is only as good as that estimate.")
    r, p = ks.distance_distribution(dens.rho, dens.voxel_size)
    model = ks.profile(r, p, q)
    fit = ks.fit_profile(model, inten, sigma)
    if not fit.scale > 0:
        raise CannotMeasure("The best fit of the map's profile to the curve has a scale that is "
                            "not positive: the curve does not look like this molecule's "
                            "scattering at all.")
    rg_map = ks.rg_real_space(dens.rho, dens.voxel_size)
    rg_dry = ks.rg_real_space(dens.rho_dry, dens.voxel_size)
    gu = ks.guinier(curve.q, curve.intensity, curve.sigma)
    # the map's profile through the same Guinier fit (its own range, on the curve's q): Rg
    # compared like with like, with the same truncation bias (~1.5 % for 5ME2)
    gm = ks.guinier(q, fit.fitted - fit.background)

    m = res.metrics
    m["chi2"] = round(fit.chi2, 4)
    m["scale"] = fit.scale
    m["background"] = fit.background
    m["n_points_fitted"] = n
    m["q_min_fitted"] = round(float(q[0]), 6)
    m["q_max_fitted"] = round(float(q[-1]), 6)
    m["q_limit"] = round(qmax, 6)
    m["rg_map_A"] = None if rg_map is None else round(rg_map, 3)
    m["rg_map_no_hydration_A"] = None if rg_dry is None else round(rg_dry, 3)
    m["rg_map_guinier_A"] = None if gm is None else round(gm.rg, 3)
    m["rg_guinier_A"] = None if gu is None else round(gu.rg, 3)
    m["rg_difference_pct"] = (None if gu is None or gm is None
                              else round(100.0 * (gm.rg - gu.rg) / gu.rg, 3))
    m["guinier_q_min"] = None if gu is None else round(gu.q_min, 6)
    m["guinier_q_max"] = None if gu is None else round(gu.q_max, 6)
    m["guinier_points"] = 0 if gu is None else gu.n_points
    m["hydration_shell_A"] = dens.shell_A
    m["hydration_contrast"] = dens.shell_contrast
    m["bin_factor"] = dens.bin_factor
    m["sigma_from_file"] = curve.sigma is not None
    if gu is None:
        res.notes.append(f"No Guinier range was found (at least {ks.GUINIER_MIN_POINTS} points "
                         f"with I > 0 and q·Rg ≤ {ks.GUINIER_QRG_MAX:g} and a falling ln I): "
                         f"the curve's Rg could not be measured.")
    if dens.bin_factor > 1:
        res.notes.append(f"The molecule is large: its density was summed in blocks of "
                         f"{dens.bin_factor}³ voxels (a grid of {dens.voxel_size:.2f} Å) before "
                         f"the profile was computed.")

    res.facts += [
        Fact("SAXS curve", os.path.basename(curve.path), "", "{}"),
        Fact("SAXS curve SHA-256", curve.sha256, "", "{}"),
        Fact("χ² of the fit", fit.chi2, "", "{:.2f}"),
        Fact("Points fitted", n, "", "{}"),
        Fact("q range fitted", f"{q[0]:.4f} – {q[-1]:.4f}", "1/Å", "{}"),
        Fact("Sigma of the curve", sigma_source, "", "{}"),
        Fact("Rg of the map (with hydration layer)", rg_map, "Å", "{:.1f}"),
        Fact("Rg of the map (without hydration layer)", rg_dry, "Å", "{:.1f}"),
        Fact("Rg of the map's profile (Guinier)", None if gm is None else gm.rg, "Å", "{:.1f}"),
        Fact("Rg of the curve (Guinier)", None if gu is None else gu.rg, "Å", "{:.1f}"),
        Fact("Guinier range", "—" if gu is None else
             f"q {gu.q_min:.4f} – {gu.q_max:.4f} 1/Å ({gu.n_points} points)", "", "{}"),
        Fact("Hydration layer", f"{dens.shell_A:.1f} Å at {dens.shell_contrast:.0%} contrast",
             "", "{}"),
    ]
    if fit.chi2 > CHI2_MAX:
        res.warn("chi2", WARN_CHI2, chi2=fit.chi2, limit=CHI2_MAX)
        res.summary = ("The scattering profile computed from the map does not fit the SAXS "
                       "curve (see O.b).")
    res.artefacts.append(Curves("saxs_fit.csv", [
        ("q_1_per_A", q), ("I_experimental", inten), ("sigma", sigma),
        ("I_map_fitted", fit.fitted), ("residual_over_sigma", fit.residuals)]))
    res.data.update({
        "q_all": curve.q, "I_all": curve.intensity, "sigma_all": curve.sigma,
        "q": q, "I": inten, "sigma": sigma, "fit": fit.fitted, "residuals": fit.residuals,
        "chi2": fit.chi2, "q_limit": qmax,
        "guinier": None if gu is None else {"rg": gu.rg, "i0": gu.i0, "first": gu.first,
                                            "last": gu.last},
        "rg_map": rg_map,
    })
    return res.finish()
