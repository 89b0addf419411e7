"""Automatic choice of a visualisation threshold when the user gives none.

A deposited map is rarely "molecule in stationary noise". Depositors mask their maps: with a
sphere (EMD-11007: noise σ 0.5–0.8 inside, 0.03 outside), with a soft or tight mask that sets
most of the box to exactly 0 (EMD-3488 71 %, EMD-1997 68 %), or with a zone around a model.
A noise level taken over the whole box is then the noise of the quiet, masked-off region, and
a median absolute deviation over a box that is mostly exact zeros is 0. The method therefore:

1. **Support.** Voxels equal to the map's most frequent value, when that value fills more than
   1 % of the box, are a constant (masked) region and take no part in any estimate.
2. **Noise where it matters.** A core of the molecule is the largest 26-connected component of
   the voxels above the 99th percentile of the support. The noise is measured in the shell of
   support voxels between ``SHELL_A`` = (10, 25) Å from that core — next to the molecule,
   inside whatever mask the depositor applied — by the median and 1.4826 × MAD. It is taken as
   measurable when that shell holds at least ``MIN_SHELL_VOXELS`` voxels and at least
   ``MIN_SHELL_SUPPORT`` of it is support (not masked off).
3. **False-discovery-rate threshold** (Beckers, Jakobi & Sachse 2019, IUCrJ 6:18): every
   support voxel is tested against that Gaussian noise; the threshold is the lowest level at
   which the expected number of noise voxels above it is at most ``FDR`` = 1 % of all voxels
   above it, with the Benjamini–Yekutieli correction for dependent tests (q / (ln m + γ)).
4. **Sanity checks, and the adjustment they make.** At the chosen level the map must show one
   body (the 0.b criteria: 95 % of the voxels in at most 5 components, at most 10 % outside the
   largest), the body must not touch all six faces of the box (a noise sponge), and the region
   must not fill more than half of the unmasked box (three quarters in a masked map). If a
   large piece splits off (the molecule breaks up: a weak interface at a high level), the level
   is lowered in steps of 0.25 σ; if many small blobs pass (noise), it is raised; the first
   level that passes is used. When the noise cannot be measured (masked or zoned maps), the
   scan starts at the support's 5th percentile and goes up in steps of 0.1 σ of the support
   (on a 2×-binned copy of a large box, confirmed on the full one): the result is the highest
   level at which the molecule is still one body, before it first breaks up.

Everything is expressed through quantities that move with the map (medians, MADs, quantiles),
so the threshold transforms exactly as the map does under an offset and a positive scale.
The kernel returns a :class:`ThresholdEstimate` with the noise it measured and each check.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from cryovalid.kernels import masks

CONSTANT_MIN_FRACTION = 0.01
CORE_QUANTILE = 0.99
SHELL_A = (10.0, 25.0)
MIN_SHELL_VOXELS = 2000
MIN_SHELL_SUPPORT = 0.8
FDR = 0.01
STEP_NOISE_SIGMA = 0.25
STEP_SUPPORT_SIGMA = 0.1
MAX_STEPS = 40  # at most 10 noise σ (or 4 support σ) away from the starting level
SPLIT_FRACTION = 0.10  # a second component this large means the molecule broke up
EULER_GAMMA = 0.5772156649
SCAN_FULL_MAX_VOXELS = 4_000_000
# A thresholded region larger than this fraction of the unmasked box is not one molecule. In a
# masked or zoned map the depositor's mask already removed the solvent and the molecule may
# fill most of what is left; in an unmasked box it rarely fills half.
MAX_FILL_UNMASKED = 0.5
MAX_FILL_MASKED = 0.75
SCAN_START_QUANTILE = 0.05  # of the support, where a masked map is still one body

METHOD_NOISE = (
    f"automatic: noise measured {SHELL_A[0]:g}–{SHELL_A[1]:g} Å around the molecule (median and "
    f"MAD, masked-off constant regions excluded), threshold at a false discovery rate of "
    f"{FDR:.0%} (Benjamini–Yekutieli), then checked to show one body")
METHOD_CONNECTIVITY = (
    "automatic: the noise could not be measured (masked or zoned map), so the threshold is the "
    "highest level at which the map still shows one body")
METHOD_BINARY = "automatic: half-way between the two values of a binary map"


@dataclass
class ThresholdEstimate:
    """What the automatic threshold measured and decided (numbers in map units)."""

    threshold: float
    method: str
    noise_measured: bool
    noise_centre: float
    noise_sigma: float
    n_sigma: float  # (threshold - centre) / sigma
    noise_region: str
    noise_voxels: int
    constant_value: float | None
    constant_fraction: float
    fdr_threshold: float | None = None
    checks: list = field(default_factory=list)  # [{"name", "passed", "detail"}]

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _subsample(v: np.ndarray, n: int = 2_000_000) -> np.ndarray:
    flat = v.ravel()
    return flat[:: flat.size // n + 1] if flat.size > n else flat


def constant_region(vol: np.ndarray, region: np.ndarray | None = None):
    """(value, fraction) of the most frequent voxel value (in ``region``, a boolean volume, or
    the whole box) if it fills more than 1 % of it (a masked-off region), else (None, 0.0)."""
    if region is None:
        values, n = vol.ravel(), vol.size
    else:
        idx = np.flatnonzero(region)
        if idx.size == 0:
            return None, 0.0
        values, n = vol.ravel()[idx[:: idx.size // 2_000_000 + 1]], idx.size
    sample = _subsample(values)
    vals, counts = np.unique(sample, return_counts=True)
    i = int(np.argmax(counts))
    if counts[i] / sample.size <= CONSTANT_MIN_FRACTION:
        return None, 0.0
    value = vals[i]
    inside = vol == value if region is None else (vol == value) & region
    # + 0.0 turns a -0.0 (what some programs write) into 0.0, equal to it, printed as "0"
    return float(value) + 0.0, float(np.count_nonzero(inside) / n)


def fdr_threshold(support_values: np.ndarray, centre: float, sigma: float,
                  q: float = FDR) -> float | None:
    """Lowest level at which Gaussian noise (centre, sigma) explains at most a fraction q of the
    voxels above it, Benjamini–Yekutieli corrected (q / (ln m + γ), m = number of voxels).
    None if no level qualifies."""
    m = support_values.size
    qq = q / (math.log(m) + EULER_GAMMA)
    srt = np.sort(_subsample(support_values))
    scale = m / srt.size
    levels = np.linspace(centre, float(srt[-1]), 4001)[1:]
    above = (srt.size - np.searchsorted(srt, levels, side="left")) * scale
    expected_noise = m * 0.5 * special.erfc((levels - centre) / (sigma * math.sqrt(2.0)))
    ok = np.flatnonzero(expected_noise <= qq * np.maximum(above, 1.0))
    return float(levels[ok[0]]) if ok.size else None


def one_body(vol: np.ndarray, level: float, support_voxels: int | None = None,
             max_fill: float = MAX_FILL_UNMASKED) -> dict:
    """Connectivity of vol >= level: the 0.b statistics and whether they pass, plus whether the
    largest component touches all six faces of the box (a noise sponge) and whether the region
    fills more than ``max_fill`` of the ``support_voxels`` (not a molecule)."""
    binary = vol >= level
    st = masks.component_stats(binary)
    if st is None:
        return {"passes": False, "empty": True}
    lab = st.pop("largest")
    faces = all(lab.take(0, axis=a).any() and lab.take(-1, axis=a).any() for a in range(3))
    support_voxels = support_voxels or vol.size
    fill = float(np.count_nonzero(binary)) / support_voxels
    st.update(empty=False, touches_all_faces=faces, support_fill=fill,
              passes=st["passes"] and not faces and fill <= max_fill)
    return st


def _adjust(vol, level, step, vmin, vmax, n_support):
    """Move ``level`` in steps until the map shows one body: down when a big second piece splits
    off (the molecule breaks up), up when small blobs pass (noise). Returns (level, stats); the
    starting level if no level in reach passes."""
    st = one_body(vol, level, *n_support)
    if st["passes"]:
        return level, st
    first = (level, st)
    down = st.get("empty") or st["second_fraction"] >= SPLIT_FRACTION
    direction = -1.0 if down else 1.0
    for _ in range(MAX_STEPS):
        level += direction * step
        if not vmin < level < vmax:
            break
        st = one_body(vol, level, *n_support)
        if st["passes"]:
            return level, st
    return first


def _binned(vol: np.ndarray, b: int) -> np.ndarray:
    """Mean over b³ blocks (the box trimmed to a multiple of b)."""
    nz, ny, nx = (n // b * b for n in vol.shape)
    v = vol[:nz, :ny, :nx].reshape(nz // b, b, ny // b, b, nx // b, b)
    return v.mean(axis=(1, 3, 5), dtype=np.float32)


def _highest_one_body(vol, start, step, vmax, n_support):
    """The highest level, going up from ``start`` in ``step``s, at which the map still shows one
    body (after it first does). Scanned on a 2×-binned copy for large boxes, then confirmed on
    the full map (stepping down until it passes). Returns (level, stats)."""
    b = 2 if vol.size > SCAN_FULL_MAX_VOXELS else 1
    scan = _binned(vol, b) if b > 1 else vol
    last, seen = None, False
    level = start
    for _ in range(4 * MAX_STEPS):
        if level >= vmax:
            break
        ok = one_body(scan, level, n_support[0] // b ** 3, n_support[1])["passes"]
        if ok:
            last, seen = level, True
        elif seen:
            break
        level += step
    if last is None:
        last = start
    for _ in range(MAX_STEPS):
        st = one_body(vol, last, *n_support)
        if st["passes"]:
            break
        last -= step
    return last, st


def estimate(vol: np.ndarray, voxel_size: float) -> ThresholdEstimate:
    """The automatic threshold of ``vol`` (voxel size in Å) with what it measured."""
    vol = np.asarray(vol, dtype=np.float32)
    const, const_frac = constant_region(vol)
    support = vol != const if const is not None else None
    sv = vol[support] if support is not None else vol.ravel()
    if sv.size < 8:
        raise ValueError("the map is constant outside fewer than 8 voxels")
    core_level = float(np.quantile(_subsample(sv), CORE_QUANTILE))
    core = masks.largest_component(vol >= core_level)
    dist = masks.distance_from(core, voxel_size)
    shell = (dist >= SHELL_A[0]) & (dist <= SHELL_A[1])
    n_shell = int(np.count_nonzero(shell))
    if support is not None:
        shell &= support
    noise = vol[shell]
    shell_support = noise.size / n_shell if n_shell else 0.0
    measurable = noise.size >= MIN_SHELL_VOXELS and shell_support >= MIN_SHELL_SUPPORT
    checks = [{"name": "noise measurable",
               "passed": bool(measurable),
               "detail": (f"{noise.size} voxels {SHELL_A[0]:g}–{SHELL_A[1]:g} Å from the "
                          f"molecule's core, {shell_support:.0%} of them unmasked (need "
                          f"≥ {MIN_SHELL_VOXELS} and ≥ {MIN_SHELL_SUPPORT:.0%})")}]
    if const is not None:
        checks.append({"name": "constant region excluded", "passed": True,
                       "detail": f"{const_frac:.1%} of the box equals {const:.4g}"})
    vmax, vmin = float(sv.max()), float(sv.min())
    if vmax == vmin:  # a binary mask: the support is one value
        level = 0.5 * (vmax + (const if const is not None else vmin))
        return ThresholdEstimate(
            threshold=level, method=METHOD_BINARY, noise_measured=False, noise_centre=vmin,
            noise_sigma=0.0, n_sigma=0.0, noise_region="not measurable (a binary map)",
            noise_voxels=0, constant_value=const, constant_fraction=const_frac, checks=checks)
    fdr_t = None
    support_args = (sv.size, MAX_FILL_MASKED if const is not None else MAX_FILL_UNMASKED)
    if measurable:
        centre = float(np.median(noise))
        sigma = 1.4826 * float(np.median(np.abs(noise - centre)))
        measurable = sigma > 0
    if measurable:
        fdr_t = fdr_threshold(sv, centre, sigma)
        level = fdr_t if fdr_t is not None else centre + 5.0 * sigma
        level, st = _adjust(vol, level, STEP_NOISE_SIGMA * sigma, vmin, vmax, support_args)
        method, region = METHOD_NOISE, (f"{SHELL_A[0]:g}–{SHELL_A[1]:g} Å around the molecule")
    else:
        centre = float(np.median(sv))
        sigma = float(sv.std())
        start = float(np.quantile(_subsample(sv), SCAN_START_QUANTILE))
        level, st = _highest_one_body(vol, start, STEP_SUPPORT_SIGMA * sigma, vmax, support_args)
        method, region = METHOD_CONNECTIVITY, "not measurable"
    if level >= vmax:  # nothing would be shown: half-way between the noise and the maximum
        level = 0.5 * (centre + vmax)
        st = one_body(vol, level, *support_args)
    if st.get("empty"):
        checks.append({"name": "one body", "passed": False,
                       "detail": "no voxel lies above the threshold"})
    else:
        checks.append({
            "name": "one body",
            "passed": bool(st["passes"]),
            "detail": (f"{st['n_components_95']} component(s) hold 95 % of the voxels above the "
                       f"threshold, {st['outside_largest_fraction']:.1%} lie outside the largest"
                       + f", filling {st['support_fill']:.1%} of the unmasked box"
                       + ("; the body touches all six faces of the box"
                          if st["touches_all_faces"] else ""))})
    if fdr_t is not None and abs(level - fdr_t) > 1e-6 * sigma:
        checks.append({"name": "adjusted", "passed": True,
                       "detail": (f"the false-discovery-rate level {fdr_t:.4g} "
                                  f"({(fdr_t - centre) / sigma:.1f} σ) did not show one body; "
                                  f"moved to {level:.4g}")})
    return ThresholdEstimate(
        threshold=float(level), method=method, noise_measured=bool(measurable),
        noise_centre=centre, noise_sigma=sigma, n_sigma=(level - centre) / sigma,
        noise_region=region, noise_voxels=int(noise.size), constant_value=const,
        constant_fraction=const_frac, fdr_threshold=fdr_t, checks=checks)


def auto_threshold(vol: np.ndarray, voxel_size: float) -> float:
    """The automatic threshold as a number (see :func:`estimate`); voxel size in Å."""
    return estimate(vol, voxel_size).threshold
