"""0.e Local resolution of the map alone, from its monogenic amplitude (MonoRes-style).

The reference runs DeepRes (Ramírez-Aportela et al. 2019, IUCrJ 6:1054), a trained 3-D network
whose weights we do not use. We answer the same question with the monogenic-signal method of
MonoRes (Vilas et al. 2018, Structure 26:337) applied to the single map: noise is taken from the
map outside the molecule. See :func:`cryovalid.kernels.localmaps.monogenic_local_resolution`
for the algorithm and docs/local-maps.md for how it differs from the reference.

Noise: :func:`noise_region` (solvent far from ``ctx.map.molecule_mask``, not flattened, not quiet).
Bands are divided by the map's robust scale and leave out its mean, so the result does not
depend on the map's units or offset. Statistics are over the hard-mask voxels that are also in
``ctx.map.molecule_mask``.

Outputs: ``maps/local_resolution.mrc`` on the input grid (Å; 0 outside the hard mask and where
nothing was significant), metrics ``local_resolution_median_A``, ``p2_5``, ``p25``, ``p50``,
``p75``, ``p97_5`` (Å) and ``resolution_percentile`` (% of voxels finer than the reported R).
"""
from __future__ import annotations

import math
import sys

import numpy as np
from scipy import ndimage

from cryovalid.errors import NotApplicable
from cryovalid.items.base import Fact, Volume, new_result
from cryovalid.items.percentiles import percentile_table, record
from cryovalid.kernels import localmaps, masks

ID = "0.e"
LEVEL = "0"
REQUIRES = ("resolution",)  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "Local resolution (monogenic amplitude)"
SECTION = "Level 0 analysis"

MIN_R_A, MAX_R_A = 2.0, 13.0  # the reference's applicability range for this item
HOMOGENEITY_EPS_A = 0.01  # |P97.5 - P2.5| below this: output suspiciously uniform
LOW_PERCENTILE = 0.1  # % of voxels finer than R below this: R is too optimistic
NOISE_GAPS_A = (15.0, 10.0, 5.0)  # noise: solvent at least this far from the molecule (the
#                                   first gap that leaves MIN_NOISE_VOXELS)
MIN_NOISE_VOXELS = 2000
FLAT_EDGE_A = 4.0  # noise voxels are at least this far from a region flattened by the depositor
QUIET_BLOCK_A = 2.0  # block size (Å) of the local RMS that detects quiet (masked-out) solvent
QUIET_FRACTION = 0.5  # solvent whose local RMS is below this × the shell's median is not noise

WARN_HOMOGENEOUS = ("The local resolutions are all practically the same (2.5 and 97.5 "
                    "percentiles within {eps:g} Å); the measurement may have gone wrong.")
WARN_TOO_FINE = ("The reported resolution, {r:.2f} Å, is finer than almost all local "
                 "resolutions: only {below:.2f} % of the voxels are finer.")

EXPLANATION = (
    "Resolution is rarely the same everywhere in a map: flexible or less populated parts are "
    "usually worse than the core. Here the local resolution is measured from the map alone, "
    "following the monogenic-signal approach of MonoRes (Vilas et al. 2018, Structure 26:337). "
    "The map is band-pass filtered at a series of frequencies, from 15 Å towards Nyquist; at each "
    "one the local amplitude of that band (the modulus of the monogenic signal, obtained with "
    "the Riesz transform) is compared with the amplitude the same band has in the noise outside "
    "the molecule. Each voxel is given the finest resolution at which its amplitude is still "
    "above 95 % of the noise amplitudes (interpolated between the frequencies scanned), and "
    "the scan stops where the map holds no more signal than noise in the band, or nothing at "
    "all (its information limit). The distribution of local resolutions should be "
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
    "from the solvent away from the molecule (found at the automatic threshold, whatever the "
    "threshold given). The two methods answer the same question but can differ by "
    "a fraction of an ångström, and a map whose background was masked or flattened by its "
    "depositor leaves less noise to compare with.")


def block_rms(data, centre, block, scale=1.0):
    """RMS of (data − centre) / scale over cubic blocks of ``block`` voxels. Returns (the block
    RMS values, float32, and a function that reads them back at flat voxel indices, or at every
    voxel when called without argument). The last partial block of an axis takes the previous
    full block's value. ``scale`` (the map's robust scale) keeps the squares finite for maps in
    any units."""
    shape = data.shape
    n = [max(1, s // block) for s in shape]
    b = [min(block, s) for s in shape]
    core = np.asarray(data[: n[0] * b[0], : n[1] * b[1], : n[2] * b[2]], dtype=np.float32)
    core = core - np.float32(centre)
    core *= np.float32(1.0 / scale)
    core *= core
    ms = core.reshape(n[0], b[0], n[1], b[1], n[2], b[2]).mean(axis=(1, 3, 5))
    del core
    rms = np.sqrt(ms, dtype=np.float32)
    iz, iy, ix = (np.minimum(np.arange(s) // bb, nn - 1) for s, bb, nn in zip(shape, b, n))

    def at(flat=None, values=rms):
        if flat is None:
            return values[iz[:, None, None], iy[None, :, None], ix[None, None, :]]
        z, y, x = np.unravel_index(flat, shape)
        return values[iz[z], iy[y], ix[x]]

    return rms, at


def coarse_dilations(binary, voxel_size, distances_A):
    """``binary`` grown by about each of ``distances_A`` Å (at least that much; a list of
    volumes, same order), computed on blocks of b = max(1, floor(2 Å / Ts)) voxels: a block is
    set when any of its voxels is, the blocks are dilated ceil(distance / (b·Ts)) (+ 1 when
    b > 1, for the position of the voxels inside their block) times with the 18-neighbourhood,
    and read back at every voxel. b³ times fewer voxels to dilate than on the full grid
    (EMD-11007: 8×), and each distance continues from the previous one."""
    b = max(1, int(math.floor(2.0 / voxel_size)))
    shape = binary.shape
    n = [-(-s // b) for s in shape]
    pad = np.zeros([k * b for k in n], dtype=bool)
    pad[: shape[0], : shape[1], : shape[2]] = binary
    blocks = pad.reshape(n[0], b, n[1], b, n[2], b).any(axis=(1, 3, 5))
    iz, iy, ix = (np.arange(s) // b for s in shape)
    out, done = {}, 0
    for dist in sorted(set(distances_A)):
        steps = int(math.ceil(dist / (b * voxel_size) - 1e-9)) + (1 if b > 1 else 0)
        if steps > done:
            blocks = ndimage.binary_dilation(blocks, structure=masks.NEIGHBOURHOOD_18,
                                             iterations=steps - done)
            done = steps
        out[dist] = blocks[iz[:, None, None], iy[None, :, None], ix[None, None, :]]
    return [out[d] for d in distances_A]


def coarse_dilation(binary, voxel_size, distance_A):
    """:func:`coarse_dilations` for one distance."""
    return coarse_dilations(binary, voxel_size, [distance_A])[0]


def noise_region(data, molecule, voxel_size, threshold, scale=None):
    """Voxels used as the noise reference, and a list of notes on how they were chosen.

    ``molecule``: the molecule mask at the automatic threshold (``ctx.map.molecule_mask``, not the
    user's mask: a low user threshold lets noise blobs into the mask, and then no solvent would
    be left); ``threshold``: the automatic threshold (every voxel at or above it, in any
    component, is molecule too); ``scale``: the map's robust scale
    (:func:`cryovalid.kernels.localmaps.robust_centre_scale`; computed when not given).

    Noise = solvent at least NOISE_GAPS_A[0] Å from the molecule (the next gap when fewer than
    MIN_NOISE_VOXELS remain; never less than the last): band-pass filtering spreads the
    molecule's signal beyond its mask, and weak parts of the molecule (flexible domains,
    detergent, below the automatic threshold) lie next to it, so solvent close to the molecule
    reads too much "noise" and every local resolution too coarse (EMD-11007: median 3.43 Å with
    noise taken 5–15 Å from the molecule, 3.07 Å at 15 Å or more; FSC ≈ 2.9 Å). Also: in the
    ellipsoid inscribed in the box (dropped if too few voxels remain); not in a region the
    depositor flattened to one exact value nor within FLAT_EDGE_A of it (in a map cut to a
    zone around a model every voxel left is molecule); and not "quiet": the RMS of the map
    over blocks of QUIET_BLOCK_A must be at least QUIET_FRACTION of its median over the
    solvent next to the molecule (NOISE_GAPS_A[-1] to NOISE_GAPS_A[-2] Å). This leaves out the region outside a
    spherical mask applied by the depositor (on EMD-11007 the noise σ is 0.55 inside the sphere
    and 0.03 outside), whose noise is not the molecule's. Without MIN_NOISE_VOXELS such voxels
    (a map masked tightly or cropped to a zone) the item does not apply."""
    notes = []
    molecule = molecule | (data >= threshold)
    outside = ~molecule
    flat, value = localmaps.flattened_background(data, outside)
    if value is not None:
        frac = flat.sum() / max(outside.sum(), 1)
        notes.append(f"{100 * frac:.0f} % of the background holds exactly {value:g} (the map "
                     f"was masked or cropped to a zone); those voxels are not used as noise.")
    regions = [~near & ~flat for near in coarse_dilations(molecule, voxel_size, NOISE_GAPS_A)]
    if value is not None:
        # the edge of a flattened region is not noise either: in a map cut to a zone around a
        # model every voxel left is within a few Å of the model (and of the flat region),
        # molecule that the automatic threshold missed
        edge = coarse_dilation(flat, voxel_size, FLAT_EDGE_A)
        regions = [r & ~edge for r in regions]
    near = regions[-1] & ~regions[-2]  # the solvent next to the molecule (5 to 10 Å)
    if not near.any():
        near = regions[-1]
    if near.any():
        near_idx = np.flatnonzero(near)
        near_idx = near_idx[:: near_idx.size // 500_000 + 1]  # a regular subsample suffices
        centre = float(np.median(data.ravel()[near_idx]))
        if scale is None:
            _, scale = localmaps.robust_centre_scale(data)
        rms, at = block_rms(data, centre, max(1, int(round(QUIET_BLOCK_A / voxel_size))), scale)
        ref = float(np.median(at(near_idx)))
        quiet = at(values=rms < np.float32(QUIET_FRACTION * ref))  # boolean, voxel grid
        n_quiet = int(np.count_nonzero(quiet & regions[-1]))
        if n_quiet and value is None:
            notes.append(f"{100 * n_quiet / max(int(regions[-1].sum()), 1):.0f} % of the "
                         f"solvent is much quieter than the solvent next to the molecule (RMS "
                         f"below {QUIET_FRACTION:g} × its median: the map was masked by its "
                         f"depositor); those voxels are not used as noise.")
        regions = [r & ~quiet for r in regions]
    ellipsoid = localmaps.inscribed_ellipsoid(data.shape)
    for inside in (True, False):
        for gap, region in zip(NOISE_GAPS_A, regions):
            if inside:
                region = region & ellipsoid
            if region.sum() >= MIN_NOISE_VOXELS:
                text = f"solvent at least {gap:g} Å from the molecule"
                if not inside:
                    text += ", including beyond the ellipsoid inscribed in the box"
                return region, notes, text
    raise NotApplicable(f"fewer than {MIN_NOISE_VOXELS} background voxels at least "
                        f"{NOISE_GAPS_A[-1]:g} Å from the molecule hold noise (the map seems "
                        f"masked tightly or cropped to a zone around the molecule), so the "
                        f"local amplitude has no noise to be compared with")


def run(ctx):
    res = new_result(sys.modules[__name__])
    r = ctx.resolution
    if r < MIN_R_A:
        raise NotApplicable(f"the method is not applied to maps with a reported resolution "
                            f"finer than {MIN_R_A:g} Å (reported {r:g} Å)")
    if r > MAX_R_A:
        raise NotApplicable(f"the method is not applied to maps with a reported resolution "
                            f"worse than {MAX_R_A:g} Å (reported {r:g} Å)")
    localmaps.require_finite(ctx.map.data, "the map")
    hard = ctx.map.hard_mask
    if not hard.any():
        raise NotApplicable("the mask is empty at this threshold")
    _, scale = localmaps.robust_centre_scale(ctx.map.data)
    noise, noise_notes, noise_text = noise_region(ctx.map.data, ctx.map.molecule_mask,
                                                  ctx.map.voxel_size, ctx.map.auto_threshold, scale)
    localmaps.require_finite(ctx.map.ft, "the map's Fourier transform")
    bank = ctx.map.filter_bank.with_gain(1.0 / scale)  # amplitudes O(1) in any units
    core = hard & ctx.map.molecule_mask
    if not core.any():
        core = hard
    out = localmaps.monogenic_local_resolution(bank, hard, noise, core=core)
    localmaps.require_finite(out.values, "local resolution")

    vol = np.zeros(ctx.map.shape, dtype=np.float32)
    hard_idx = np.flatnonzero(hard)
    vol.ravel()[hard_idx] = out.values
    res.artefacts.append(Volume("maps/local_resolution.mrc", vol, ctx.map.voxel_size,
                                ctx.map.origin))

    # statistics over the mask voxels that are molecule at the automatic threshold too: below
    # it the mask also holds solvent, whose "local resolution" is that of noise
    in_core = core.ravel()[hard_idx]
    measured = out.values[in_core]
    vals = measured[measured > 0]
    if vals.size == 0:
        raise NotApplicable("no voxel of the mask rose above the noise, even at "
                            f"{localmaps.LOW_RES_A:g} Å")
    table, p = percentile_table("Local resolution percentiles", vals, "Value (Å)",
                                "{:.2f}")
    below = 100.0 * float(np.mean(vals < r))
    median = float(p[2])
    res.metrics["local_resolution_median_A"] = round(median, 3)
    record(res.metrics, p)
    res.metrics["resolution_percentile"] = round(below, 3)
    res.metrics["unresolved_fraction"] = round(1.0 - vals.size / measured.size, 4)
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
        Fact("Mask voxels in the statistics (also molecule at the automatic threshold "
             f"{ctx.map.auto_threshold:.4g})", 100.0 * measured.size / hard_idx.size, "%", "{:.1f}"),
        Fact("Noise voxels", int(noise.sum()), "", "{:d}"),
        Fact("Noise taken from", noise_text, "", "{}"),
    ]
    res.notes.append(METHOD_NOTE)
    res.notes += noise_notes
    res.resolution_estimates.append({"method": "Local resolution median (monogenic, 0.e)",
                                     "resolution_A": round(median, 3)})
    res.data.update(values=vals, volume=vol, p2_5=float(p[0]), p97_5=float(p[4]),
                    sweep_resolutions=list(scanned), power_ratio=list(out.power_ratio),
                    noise_power=list(out.noise_power))

    if abs(p[4] - p[0]) < HOMOGENEITY_EPS_A:
        res.warn("homogeneous", WARN_HOMOGENEOUS, eps=HOMOGENEITY_EPS_A)
    if below < LOW_PERCENTILE:
        res.warn("reported_too_fine", WARN_TOO_FINE, r=float(r), below=float(below))
    return res.finish()
