"""0.e Local resolution of the map alone, from its monogenic amplitude (MonoRes-style).

The reference runs DeepRes (Ramírez-Aportela et al. 2019, IUCrJ 6:1054), a trained 3-D network
whose weights we do not use. We answer the same question with the monogenic-signal method of
MonoRes (Vilas et al. 2018, Structure 26:337) applied to the single map: noise is taken from the
map outside the molecule. See :func:`cryovalid.kernels.localmaps.monogenic_local_resolution`
for the algorithm and docs/local-maps.md for how it differs from the reference.

Outputs: ``maps/local_resolution.mrc`` on the input grid (Å; 0 outside the hard mask and where
nothing was significant), metrics ``local_resolution_median_A``, ``p2_5``, ``p25``, ``p50``,
``p75``, ``p97_5`` (Å) and ``resolution_percentile`` (% of voxels finer than the reported R).
"""
from __future__ import annotations

import sys

import numpy as np
from scipy import ndimage

from cryovalid.errors import NotApplicable
from cryovalid.io.maps import write_map
from cryovalid.items.base import Fact, Table, new_result
from cryovalid.kernels import localmaps, masks

ID = "0.e"
TITLE = "Local resolution (monogenic amplitude)"
SECTION = "Level 0 analysis"

MIN_R_A, MAX_R_A = 2.0, 13.0  # the reference's applicability range for this item
HOMOGENEITY_EPS_A = 0.01  # |P97.5 - P2.5| below this: output suspiciously uniform
LOW_PERCENTILE = 0.1  # % of voxels finer than R below this: R is too optimistic
NOISE_GAP_A = 5.0  # noise voxels are at least this far from the hard mask (fewer if needed)
NOISE_SHELL_A = 10.0  # ... and at most NOISE_GAP_A + NOISE_SHELL_A Å (the solvent near the molecule)
MIN_NOISE_VOXELS = 2000
PERCENTILES = (2.5, 25.0, 50.0, 75.0, 97.5)
PERCENTILE_KEYS = ("p2_5", "p25", "p50", "p75", "p97_5")

EXPLANATION = (
    "Resolution is rarely the same everywhere in a map: flexible or less populated parts are "
    "usually worse than the core. Here the local resolution is measured from the map alone, "
    "following the monogenic-signal approach of MonoRes (Vilas et al. 2018, Structure 26:337). "
    "The map is band-pass filtered at a series of frequencies, from 15 Å towards Nyquist; at each "
    "one the local amplitude of that band (the modulus of the monogenic signal, obtained with "
    "the Riesz transform) is compared with the amplitude the same band has in the noise outside "
    "the molecule. Each voxel is given the finest resolution at which its amplitude is still "
    "above 95 % of the noise amplitudes. The distribution of local resolutions should be "
    "consistent with the reported resolution: a reported value finer than almost every local "
    "value suggests that the global figure is optimistic.")

CRITERIA = (
    f"OK if at least {LOW_PERCENTILE:g} % of the voxels in the mask have a local resolution "
    f"finer than the reported resolution, and the local resolutions are not all the same "
    f"(the 2.5 and 97.5 percentiles differ by at least {HOMOGENEITY_EPS_A:g} Å).")

METHOD_NOTE = (
    "The reference measures this item with DeepRes, a trained neural network whose weights are "
    "not used here. cryovalid measures local resolution with the published, non-learned "
    "monogenic-amplitude method (MonoRes, Vilas et al. 2018) on the map alone, with noise taken "
    "from the map outside the mask. The two methods answer the same question but can differ by "
    "a fraction of an ångström, and a map whose background was masked or flattened by its "
    "depositor leaves less noise to compare with.")


def noise_region(data, hard_mask, voxel_size, threshold):
    """Voxels used as the noise reference, and a list of notes on how they were chosen.

    Noise = between NOISE_GAP_A and NOISE_GAP_A + NOISE_SHELL_A Å from the molecule (the hard
    mask and every voxel at or above the threshold, in any component): the solvent next to the
    molecule, whose noise is the closest to the molecule's own (band-pass filtering spreads the
    molecule's signal over the first few Å, hence the gap);
    inside the ellipsoid inscribed in the box; and not in a region the depositor flattened to
    one exact value. With fewer than MIN_NOISE_VOXELS such voxels, the shell and then the
    ellipsoid are dropped; the gap never is: without background at least NOISE_GAP_A Å from
    the molecule (a map masked tightly or cropped to a zone) the item does not apply."""
    notes = []
    outside = ~hard_mask
    flat, value = localmaps.flattened_background(data, outside)
    if value is not None:
        frac = flat.sum() / max(outside.sum(), 1)
        notes.append(f"{100 * frac:.0f} % of the background holds exactly {value:g} (the map "
                     f"was masked or cropped to a zone); those voxels are not used as noise.")
    # everything at or above the threshold is molecule (not only the largest component)
    molecule = hard_mask | (data >= threshold)
    steps = masks.dilation_steps(voxel_size, NOISE_GAP_A)
    near = ndimage.binary_dilation(molecule, structure=masks.NEIGHBOURHOOD_18, iterations=steps)
    usable = ~near & ~flat
    far_steps = masks.dilation_steps(voxel_size, NOISE_GAP_A + NOISE_SHELL_A) - steps
    shell = ndimage.binary_dilation(near, structure=masks.NEIGHBOURHOOD_18, iterations=far_steps)
    ellipsoid = localmaps.inscribed_ellipsoid(data.shape)
    for region, text in ((usable & ellipsoid & shell, None),
                         (usable & ellipsoid, f"the noise reference extends beyond "
                          f"{NOISE_GAP_A + NOISE_SHELL_A:g} Å from the mask."),
                         (usable, "the noise reference extends beyond the ellipsoid inscribed "
                          "in the box.")):
        if region.sum() >= MIN_NOISE_VOXELS:
            if text:
                notes.append("Noise: " + text)
            return region, notes
    raise NotApplicable(f"fewer than {MIN_NOISE_VOXELS} background voxels at least "
                        f"{NOISE_GAP_A:g} Å from the molecule hold noise (the map seems masked "
                        f"tightly or cropped to a zone around the molecule), so the local "
                        f"amplitude has no noise to be compared with")


def percentile_table(title, values, unit, fmt):
    p = np.percentile(values, PERCENTILES)
    return Table(title, ["Percentile", f"Value ({unit})" if unit else "Value"],
                 [[f"{q:g} %", float(v)] for q, v in zip(PERCENTILES, p)], ["{}", fmt]), p


def run(ctx):
    res = new_result(sys.modules[__name__])
    r = ctx.resolution
    if r is None:
        raise NotApplicable("the resolution was not reported")
    if r < MIN_R_A:
        raise NotApplicable(f"the method is not applied to maps with a reported resolution "
                            f"finer than {MIN_R_A:g} Å (reported {r:g} Å)")
    if r > MAX_R_A:
        raise NotApplicable(f"the method is not applied to maps with a reported resolution "
                            f"worse than {MAX_R_A:g} Å (reported {r:g} Å)")
    hard = ctx.hard_mask
    if not hard.any():
        raise NotApplicable("the mask is empty at this threshold")
    noise, noise_notes = noise_region(ctx.map.data, hard, ctx.voxel_size, ctx.threshold)
    bank = ctx.filter_bank
    out = localmaps.monogenic_local_resolution(bank, hard, noise)

    vol = np.zeros(ctx.map.shape, dtype=np.float32)
    vol.ravel()[np.flatnonzero(hard)] = out.values
    write_map(ctx.path("maps", "local_resolution.mrc"), vol, ctx.voxel_size, ctx.map.origin)

    vals = out.values[out.values > 0]
    if vals.size == 0:
        raise NotApplicable("no voxel of the mask rose above the noise, even at "
                            f"{localmaps.LOW_RES_A:g} Å")
    table, p = percentile_table("Local resolution percentiles", vals, "Å", "{:.2f}")
    below = 100.0 * float(np.mean(vals < r))
    median = float(p[2])
    res.metrics["local_resolution_median_A"] = round(median, 3)
    for key, v in zip(PERCENTILE_KEYS, p):
        res.metrics[key] = round(float(v), 3)
    res.metrics["resolution_percentile"] = round(below, 3)
    res.metrics["unresolved_fraction"] = round(1.0 - vals.size / out.values.size, 4)
    res.tables.append(table)
    nyq = 1.0 / bank.nyquist
    scanned = out.resolutions
    res.facts += [
        Fact("Median local resolution", median, "Å", "{:.2f}"),
        Fact("Reported resolution is at the percentile", below, "%", "{:.1f}"),
        Fact("Resolutions scanned", f"{localmaps.LOW_RES_A:g} Å towards Nyquist ({nyq:.2f} Å) "
             f"in steps of {localmaps.RES_STEP_A:g} Å, merged within a Fourier shell; "
             f"{len(scanned)} steps down to {scanned[-1]:.2f} Å" if scanned else "none", "", "{}"),
        Fact("End of the sweep", out.stop_reason, "", "{}"),
        Fact("Mask voxels with no significant signal (left out)",
             100.0 * res.metrics["unresolved_fraction"], "%", "{:.1f}"),
        Fact("Noise voxels", int(noise.sum()), "", "{:d}"),
    ]
    res.notes.append(METHOD_NOTE)
    res.notes += noise_notes
    res.resolution_estimates.append({"method": "Local resolution median (monogenic, 0.e)",
                                     "resolution_A": round(median, 3)})
    res.data.update(values=vals, volume=vol, p2_5=float(p[0]), p97_5=float(p[4]))

    if abs(p[4] - p[0]) < HOMOGENEITY_EPS_A:
        res.warnings.append("The local resolutions are all practically the same (2.5 and 97.5 "
                            "percentiles within 0.01 Å); the measurement may have gone wrong.")
    if below < LOW_PERCENTILE:
        res.warnings.append(f"The reported resolution, {r:.2f} Å, is finer than almost all local "
                            f"resolutions: only {below:.2f} % of the voxels are finer.")
    return res.finish()
