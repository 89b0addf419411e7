"""Bad regions of a micrograph (carbon, ice contamination, aggregates) from local statistics, and
the goodness of each picked coordinate (Level 5, item 5.a; vrs_level2_5.md §4.2).

The reference runs MicrographCleaner (Sanchez-Garcia, Segura, Maluenda, Sorzano and Carazo
2020, "MicrographCleaner: a python package for cryo-EM micrograph cleaning using deep
learning", J Struct Biol 210:107498), a U-net trained on annotated micrographs. We use no
learned model. The measure is the one RELION's auto-picker uses to keep picks off carbon and
contamination (Scheres 2015, "Semi-automated selection of cryo-EM particles in RELION-1.3",
J Struct Biol 189:114-122: ``--max_stddev_noise``, a pick is discarded where
the local standard deviation of the normalised micrograph around it is too high; RELION 3.0
added ``--min_avg_noise``, discarded where the local average is too low), made into a map of
the whole micrograph with robust thresholds (location and scale of the bulk of the micrograph
instead of absolute values, so that no value has to be tuned per data set) and a half-maximum
boundary:

1. Clip hot and dead pixels (:func:`clip_outliers`, beyond ``OUTLIER_Z`` robust σ, as RELION's
   ``--outlier_removal_zscore``), then block-average the micrograph to a working grid of ``BLOCKS_PER_BOX`` pixels per particle
   box (``factor`` micrograph pixels per working pixel): a low-pass that keeps what is larger
   than about an eighth of a particle.
2. Local mean ``M = G_s * g`` and local texture ``T = sqrt(G_s * (g - med3(g))²)`` with a
   Gaussian ``G_s`` of σ = ``SIGMA_BOXES`` particle boxes (FWHM ≈ one box) and ``med3`` the
   3 × 3 median: ``T`` is the RMS of the detail finer than about a quarter of a particle; the
   median (unlike a linear filter) leaves a step edge alone, so the edge of a dark blob adds
   no texture and only the mean sees the blob.
3. Robust z-scores over the micrograph (:func:`robust_z`: the shortest half of the values,
   then one re-weighting step) of ``F = M`` (both signs: ice and thick carbon are dark, holes
   bright) and ``F = log T`` (rougher or smoother texture than the ice with particles, e.g.
   carbon).
4. Seeds where ``|z| > Z_SEED``; each seed grows into the connected region where ``|z|`` exceeds
   half its plateau (the 90th percentile of ``|z|`` in the seed), but never below ``Z_GROW``:
   for a step in ``F`` blurred by ``G_s`` the half-height lies on the true edge, however strong
   the step (a fixed threshold would move the boundary outward by up to a box for a very dark
   blob).
5. The union of the two features, holes filled; regions smaller than ``MIN_AREA_BOXES``
   particle boxes are dropped (a few particles close together are not contamination).

Each coordinate's goodness is the fraction of its particle box (box × box micrograph pixels)
that is good; 5.a keeps a coordinate when its goodness is at least 0.9, as the reference keeps a
coordinate whose MicrographCleaner score is (``--deepThr 0.1``).
Assumption: at least half of each micrograph is good (the bulk of the values describes the
good ice); a micrograph mostly covered by carbon is judged the other way round. Detection
limit: a region is found when its mean differs from the ice by more than ``Z_SEED`` times the
spread of the local mean over the ice (which the particles and low-frequency noise set; about
1.5 pixel standard deviations in tests/simulate_micrographs.py's default micrographs), or its
texture does: texture at the scale of the working pixels (an eighth to a quarter of a particle);
noise finer than a working pixel is averaged away by the blocks and is not seen (white noise
raised by √2 inside a region gives z ≈ 2 there: not found).
Units: coordinates and boxes in micrograph pixels; masks on the working grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

BLOCKS_PER_BOX = 8  # working pixels per particle box (the block average's factor = box / 8)
MIN_WORK = 32  # the working grid keeps at least this many pixels a side
SIGMA_BOXES = 0.5  # σ of the local windows, in particle boxes (FWHM ≈ 1.2 boxes)
Z_SEED = 5.0  # |robust z| of a seed of a bad region
Z_GROW = 3.0  # the lowest |z| a region grows into
HALF = 0.5  # a region grows to this fraction of its seed's plateau (half maximum)
PLATEAU_PERCENTILE = 90.0  # the seed's plateau: this percentile of its |z|
MIN_AREA_BOXES = 1.0  # regions smaller than this many particle boxes are dropped
MIN_SEED_BOXES = 0.25  # seeds smaller than this many boxes are noise, not grown
SHORTH_SCALE = 1.0 / (2 * 0.6744898)  # length of the shortest half of a normal -> its σ
REWEIGHT_Z = 3.0  # the re-weighting step keeps the values within this many σ
TRUNCATED_SD = 0.98658  # σ of a unit normal truncated at ±3 (√(1 − 6φ(3)/(2Φ(3) − 1)))
GOOD_LIMIT = 0.9  # a coordinate is kept when this fraction of its box is good (the reference)
OUTLIER_Z = 8.0  # pixels further than this many robust σ from the median are clipped
OUTLIER_STRIDE = 7  # the pixel σ is estimated from every 7th pixel


@dataclass
class Quality:
    """The bad regions of one micrograph.

    ``mask`` (h, w) bool on the working grid, True = bad; ``factor`` micrograph pixels per
    working pixel (the working grid covers the first ``h·factor`` rows and ``w·factor``
    columns); ``box`` the particle box in micrograph pixels; ``z_mean``, ``z_texture`` the
    robust z-scores (float32, for figures); ``bad_fraction`` the fraction of the grid that is
    bad."""
    mask: np.ndarray
    factor: int
    box: float
    z_mean: np.ndarray
    z_texture: np.ndarray

    @property
    def bad_fraction(self) -> float:
        return float(np.count_nonzero(self.mask)) / self.mask.size

    def goodness(self, xy) -> np.ndarray:
        """(n,) float: the good fraction of the particle box around each (x, y) coordinate
        (micrograph pixels; x along columns); coordinates off the grid take its edge."""
        return goodness(self.mask, self.factor, self.box, xy)


def working_factor(box_px: float, shape) -> int:
    """Micrograph pixels per working pixel: box / BLOCKS_PER_BOX, at least 1, and small enough
    that the grid keeps MIN_WORK pixels a side."""
    f = max(1, int(round(float(box_px) / BLOCKS_PER_BOX)))
    return max(1, min(f, min(shape) // MIN_WORK))


def block_mean(img: np.ndarray, f: int) -> np.ndarray:
    """The (ny//f, nx//f) float32 averages of f × f blocks."""
    ny, nx = (img.shape[0] // f) * f, (img.shape[1] // f) * f
    a = np.asarray(img[:ny, :nx], dtype=np.float32)
    if f == 1:
        return a.copy()
    return a.reshape(ny // f, f, nx // f, f).mean(axis=(1, 3), dtype=np.float32)


def robust_z(values: np.ndarray) -> np.ndarray:
    """(v − location) / scale as float32, from the shortest half of the values (the "shorth",
    Rousseeuw and Leroy 1988, Robust Regression and Outlier Detection, §4.4): location = the
    median of the shortest interval holding half of the values, scale = its length × SHORTH_SCALE
    (σ for a normal distribution). Unlike the median and MAD, it describes the largest mode
    (the good ice) even when up to half of the micrograph is carbon at another level. The
    shorth overestimates σ when the other level takes part of the values (by 2× with 40 % of
    them at another level); one re-weighting step corrects it: the values within
    ``REWEIGHT_Z`` of the shorth's estimate give the location (median) and the scale (their
    standard deviation / ``TRUNCATED_SD``, the σ of a normal truncated at ±REWEIGHT_Z σ).
    ValueError for a constant array."""
    v = np.sort(np.asarray(values, dtype=np.float32).ravel())
    n = v.size
    k = (n + 1) // 2
    widths = v[k - 1:] - v[:n - k + 1]
    i = int(np.argmin(widths))
    loc = float(np.median(v[i:i + k]))
    scale = SHORTH_SCALE * float(widths[i])
    if not scale > 0:
        scale = float(v.std())
    if not scale > 0:
        raise ValueError("the micrograph is constant")
    lo, hi = np.searchsorted(v, [loc - REWEIGHT_Z * scale, loc + REWEIGHT_Z * scale])
    kept = v[lo:hi].astype(np.float64)
    if kept.size > 2 and kept.std() > 0:
        loc, scale = float(np.median(kept)), float(kept.std()) / TRUNCATED_SD
    return ((np.asarray(values, dtype=np.float32) - loc) / scale).astype(np.float32)


def clip_outliers(img: np.ndarray) -> np.ndarray:
    """A float32 copy of ``img`` with pixels further than OUTLIER_Z robust standard deviations
    (median and MAD of every OUTLIER_STRIDE-th pixel) from the median clipped there: hot or dead
    pixels, which a block average would spread into a bad-looking box (RELION's auto-picker
    does the same, ``--outlier_removal_zscore``, 8 by default)."""
    out = np.array(img, dtype=np.float32)
    sample = out.ravel()[::OUTLIER_STRIDE]
    med = float(np.median(sample))
    sd = 1.4826 * float(np.median(np.abs(sample - med)))
    if sd > 0:
        np.clip(out, med - OUTLIER_Z * sd, med + OUTLIER_Z * sd, out=out)
    return out


def _grown(az: np.ndarray, min_seed: float) -> np.ndarray:
    """Seeds (|z| > Z_SEED, at least ``min_seed`` pixels) grown to half their plateau."""
    seeds, n = ndimage.label(az > Z_SEED)
    out = np.zeros(az.shape, dtype=bool)
    if n == 0:
        return out
    sizes = np.bincount(seeds.ravel(), minlength=n + 1)
    for lab in np.flatnonzero(sizes >= min_seed):
        if lab == 0:
            continue
        inside = seeds == lab
        if out[inside].all():  # already inside a region grown from another seed
            continue
        level = max(Z_GROW, HALF * float(np.percentile(az[inside], PLATEAU_PERCENTILE)))
        region, _ = ndimage.label(az > level)
        keep = np.unique(region[inside & (region > 0)])
        out |= np.isin(region, keep[keep > 0])
    return out


def assess(img: np.ndarray, box_px: float) -> Quality:
    """The bad regions of micrograph ``img`` (2-D, finite) for particles of ``box_px``
    micrograph pixels (see the module docstring). ValueError for non-finite values or a
    constant micrograph."""
    img = np.asarray(img)
    if img.ndim != 2:
        raise ValueError("a micrograph is a 2-D image")
    if not np.isfinite(img).all():
        raise ValueError("the micrograph has NaN or infinite values")
    f = working_factor(box_px, img.shape)
    g = block_mean(clip_outliers(img), f)
    box_w = float(box_px) / f  # the particle box in working pixels
    s = SIGMA_BOXES * box_w
    mean = ndimage.gaussian_filter(g, s, mode="reflect")
    hp = g - ndimage.median_filter(g, size=3, mode="reflect")
    texture = np.sqrt(np.maximum(ndimage.gaussian_filter(hp * hp, s, mode="reflect"), 1e-30))
    z_mean = robust_z(mean)
    z_tex = robust_z(np.log(texture))
    box_area = box_w * box_w
    bad = _grown(np.abs(z_mean), MIN_SEED_BOXES * box_area) | \
        _grown(np.abs(z_tex), MIN_SEED_BOXES * box_area)
    bad = ndimage.binary_fill_holes(bad)
    lab, n = ndimage.label(bad)
    if n:
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        small = sizes < MIN_AREA_BOXES * box_area
        small[0] = False
        bad[small[lab]] = False
    return Quality(mask=bad, factor=int(f), box=float(box_px), z_mean=z_mean, z_texture=z_tex)


def goodness(mask: np.ndarray, factor: int, box_px: float, xy) -> np.ndarray:
    """(n,) float: the good fraction of the box_px × box_px box centred on each (x, y)
    (micrograph pixels) on the working grid ``mask`` (True = bad) of ``factor``."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if len(xy) == 0:
        return np.zeros(0)
    size = max(1, int(round(box_px / factor)))
    good = ndimage.uniform_filter((~mask).astype(np.float32), size=size, mode="nearest")
    col = np.clip(np.floor(xy[:, 0] / factor).astype(np.int64), 0, mask.shape[1] - 1)
    row = np.clip(np.floor(xy[:, 1] / factor).astype(np.int64), 0, mask.shape[0] - 1)
    return np.clip(good[row, col].astype(np.float64), 0.0, 1.0)
