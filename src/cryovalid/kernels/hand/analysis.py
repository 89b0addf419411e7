"""The whole hand analysis: evidence per rod, decoys, votes and the score (determine_hand).

Part of :mod:`cryovalid.kernels.hand` (the method is described there)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft

from cryovalid.kernels.fourier import workers
from cryovalid.kernels.hand.constants import CYL_DZ, MIN_LENGTH, WORK_VOXEL
from cryovalid.kernels.hand.grids import Grid, fourier_resample, raised_cosine_lowpass
from cryovalid.kernels.hand.rods import find_rods
from cryovalid.kernels.hand.cylinders import refine_axis, sample_cylinder
from cryovalid.kernels.hand.templates import Templates, make_templates
from cryovalid.kernels.hand.correlation import correlate


Z_VOTE = 4.0  # a helix votes when |CC_L − CC_R| ≥ Z_VOTE × the spread at random positions
MIN_HELICES = 3  # fewer voting helices than this → no evidence (score 0.5)
N_DECOYS = 200  # random cylinders for the null spread
MAX_SEGMENT = 40.0  # Å, longest stretch of a rod correlated at once
MAX_SHIFT = 2  # axial shift search, in CYL_DZ steps (± half a residue rise)
ANALYSIS_MIN_RESOLUTION = 2.5  # Å, map and templates are low-passed at max(R, this)
OVERLAP_RADIUS = 2.3  # Å (the α-helix CA radius): rods whose axes run this close are one helix
OVERLAP_FRACTION = 0.5  # … over at least this fraction of the shorter rod's length
UNROLL_RADII = (1.5, 4.0)  # Å, radii averaged for the unrolled pictures


@dataclass
class HelixEvidence:
    """One rod: where it is, how well each hand's template fits, and its vote."""

    centre: np.ndarray  # world x, y, z (Å, map origin included)
    direction: np.ndarray
    length: float  # Å
    cc_right: float
    cc_left: float
    z: float  # (cc_left − cc_right) / null spread
    vote: int  # −1 right-handed, +1 left-handed, 0 not significant (or overlapping)
    overlaps: bool = False  # lies along a longer rod (the same helix): does not vote
    unrolled: np.ndarray = field(default=None, repr=False)  # (n_z, n_phi) map, twisted part
    unrolled_right: np.ndarray = field(default=None, repr=False)  # best-aligned templates
    unrolled_left: np.ndarray = field(default=None, repr=False)


@dataclass
class HandResult:
    score: float  # 0 correct hand … 1 mirrored; 0.5 no evidence
    n_candidates: int  # rods examined
    n_helices: int  # rods whose twist was significant (voting helices)
    n_right: int
    n_left: int
    null_spread: float  # robust sd of CC_L − CC_R at random positions
    analysis_resolution: float  # Å
    reason: str  # '' or why the score is 0.5 by default
    helices: list  # HelixEvidence, strongest first
    decoy_differences: np.ndarray = field(default=None, repr=False)
    timings: dict = field(default_factory=dict)


def correlate_hands(cyls, templates: Templates):
    """Best correlation of (n, n_r, n_phi, n_z) cylinders with each hand's template over
    rotations, axial shifts and both polarities. Returns {"right"/"left": (cc, k, shift,
    polarity)} with arrays of length n."""
    out = {}
    for name, hand in (("right", templates.right), ("left", templates.left)):
        best = None
        for pol, t in enumerate(hand):
            cc, k, sh = correlate(cyls, t, templates.radii, MAX_SHIFT)
            pol_arr = np.full(cc.shape, pol)
            if best is None:
                best = [cc, k, sh, pol_arr]
            else:
                better = cc > best[0]
                for b, v in zip(best, (cc, k, sh, pol_arr)):
                    b[better] = v[better]
        out[name] = tuple(best)
    return out


def _unroll(cyl, radii):
    """Twisted part of a cylindrical sampling averaged over UNROLL_RADII: (n_z, n_phi)."""
    r = np.asarray(radii)
    sel = (r >= UNROLL_RADII[0]) & (r <= UNROLL_RADII[1])
    tw = cyl[sel] - cyl[sel].mean(axis=1, keepdims=True)
    return tw.mean(axis=0).T.copy()


def _aligned_template(t_long, nz, k, s):
    mid = t_long.shape[2] // 2
    start = mid - nz // 2 + s
    return np.roll(t_long[:, :, start:start + nz], k, axis=1)


def overlapping_rods(rods, radius=OVERLAP_RADIUS, fraction=OVERLAP_FRACTION):
    """Which rods lie along a longer one: ``rods`` is a list of (centre, unit direction,
    length) in Å. Taken longest first, a rod is flagged when at least ``fraction`` of its
    axis (points every 1 Å) lies within ``radius`` Å of the axis segment of a longer rod not
    itself flagged: the same stretch of density, which must not vote twice. Returns a list of
    booleans in the order of ``rods``."""
    order = sorted(range(len(rods)), key=lambda i: -rods[i][2])
    kept, flags = [], [False] * len(rods)
    for i in order:
        c, d, length = (np.asarray(rods[i][0], float), np.asarray(rods[i][1], float),
                        float(rods[i][2]))
        pts = c + np.arange(-length / 2, length / 2 + 1e-9, 1.0)[:, None] * d
        near = np.zeros(len(pts), dtype=bool)
        for kc, kd, klen in kept:
            t = np.clip((pts - kc) @ kd, -klen / 2, klen / 2)
            near |= np.linalg.norm(pts - (kc + t[:, None] * kd), axis=1) < radius
        if near.mean() >= fraction:
            flags[i] = True
        else:
            kept.append((c, d, length))
    return flags


def hand_score(n_right: int, n_left: int, min_helices: int = MIN_HELICES) -> float:
    """Hand score from the helices' votes: (n_left + 1) / (n_right + n_left + 2), Laplace's rule
    of succession (the posterior mean fraction of left-handed helices under a uniform prior),
    and exactly 0.5 when fewer than ``min_helices`` helices voted."""
    n = n_right + n_left
    if n < min_helices:
        return 0.5
    return (n_left + 1.0) / (n + 2.0)


def _null_differences(grid, protein, voxel_size, templates, length, n_decoys, seed):
    """CC_L − CC_R on ``n_decoys`` cylinders of ``length`` Å centred on random protein voxels
    with random (isotropic) axis directions: the spread of the hand evidence where no helix is
    aligned, measured in this map at its resolution and noise."""
    rng = np.random.default_rng(seed)
    flat = np.flatnonzero(protein)
    pick = rng.choice(flat, size=n_decoys, replace=flat.size < n_decoys)
    centres = np.stack(np.unravel_index(pick, protein.shape), axis=1)[:, ::-1] * float(voxel_size)
    dirs = rng.normal(size=(n_decoys, 3))
    dirs /= np.linalg.norm(dirs, axis=1)[:, None]
    z = np.arange(-length / 2, length / 2 + 1e-9, CYL_DZ)
    cyls = np.stack([sample_cylinder(grid, centres[i], dirs[i], templates.radii,
                                     templates.n_phi, z) for i in range(n_decoys)])
    best = correlate_hands(cyls, templates)
    return best["left"][0] - best["right"][0]


def _standardised(data, ft=None):
    """((data − c)/s as float32, its rfft), c the median and s the standard deviation of a
    regular subsample (both move exactly with an offset and a positive scale of the map). The
    given rfft ``ft`` of ``data`` is rescaled instead of recomputed."""
    sample = data.ravel()[:: max(1, data.size // 1_000_000)].astype(np.float64)
    c = float(np.median(sample))
    s = float(sample.std()) or 1.0
    out = (data - np.float32(c)) * np.float32(1.0 / s)
    if ft is None:
        return out, None
    ft_out = ft * np.complex64(1.0 / s)
    ft_out[0, 0, 0] -= np.complex64(c * data.size / s)
    return out, ft_out


def determine_hand(data, voxel_size: float, threshold: float, resolution: float,
                   origin=(0.0, 0.0, 0.0), n_decoys: int = N_DECOYS, seed: int = 0,
                   keep_pictures: int = 4, ft=None, protein=None) -> HandResult:
    """Hand of a map from the twist of its α-helices (see the module docstring).

    Parameters
    ----------
    data : (z, y, x) float32 map; voxel_size : Å; threshold : density where protein begins
    resolution : Å (reported); the map and templates are low-passed at max(R, 2.5 Å)
    origin : world x, y, z of voxel (0, 0, 0), only for reporting helix positions
    n_decoys, seed : random cylinders (fixed seed → reproducible) for the null spread
    keep_pictures : unrolled pictures kept for the strongest helices
    ft : the map's rfft (complex64) if already computed (it is not modified)
    protein : boolean mask data >= threshold if already computed
    """
    import time

    t0 = time.perf_counter()
    timings = {}
    data = np.asarray(data, dtype=np.float32)
    r_an = max(float(resolution), ANALYSIS_MIN_RESOLUTION)
    if protein is None:
        protein = data >= threshold
    # work in units of the map's own median and spread, so that the result does not depend on
    # the map's units or zero level (V -> a·V + c), nor do squares under- or overflow
    data, ft = _standardised(data, ft)
    empty = HandResult(0.5, 0, 0, 0, 0, float("nan"), r_an, "", [], np.zeros(0), timings)
    if not protein.any():
        empty.reason = "no voxel reaches the threshold"
        return empty
    if ft is None:
        ft = scipy.fft.rfftn(data, workers=workers())
    timings["fft"] = time.perf_counter() - t0

    t = time.perf_counter()
    segs, _ = find_rods(data, voxel_size, protein, ft=ft)
    timings["rods"] = time.perf_counter() - t

    t = time.perf_counter()
    work, vox = fourier_resample(data, voxel_size, WORK_VOXEL, raised_cosine_lowpass(r_an), ft=ft)
    del ft
    grid = Grid(work, vox, np.zeros(3))
    templates = make_templates(r_an, float(vox.mean()))
    timings["working map and templates"] = time.perf_counter() - t

    t = time.perf_counter()
    radii = templates.radii
    rows = []
    for seg in segs:
        seg = refine_axis(grid, seg)
        length = min(seg.length, MAX_SEGMENT)
        z = np.arange(-length / 2, length / 2 + 1e-9, CYL_DZ)
        cyl = sample_cylinder(grid, seg.centre, seg.direction, radii, templates.n_phi, z)
        best = correlate_hands(cyl[None], templates)
        rows.append((seg, length, cyl, {k: tuple(a[0] for a in v) for k, v in best.items()}))
    timings["helix correlation"] = time.perf_counter() - t

    # null spread: the same measurement on random cylinders inside the protein
    t = time.perf_counter()
    diffs = _null_differences(grid, protein, voxel_size, templates,
                              float(np.median([r[1] for r in rows])) if rows else 2 * MIN_LENGTH,
                              n_decoys, seed)
    spread = 1.4826 * float(np.median(np.abs(diffs)))
    timings["null"] = time.perf_counter() - t

    helices = []
    pictures = {}
    overlapping = overlapping_rods([(r[0].centre, r[0].direction, r[1]) for r in rows])
    for (seg, length, cyl, best), dup in zip(rows, overlapping):
        d = best["left"][0] - best["right"][0]
        zval = d / spread if spread > 0 else 0.0
        vote = 0 if abs(zval) < Z_VOTE or dup else (1 if zval > 0 else -1)
        h = HelixEvidence(seg.centre + np.asarray(origin, dtype=np.float64), seg.direction,
                          float(length), float(best["right"][0]), float(best["left"][0]),
                          float(zval), vote, overlaps=bool(dup))
        pictures[id(h)] = (cyl, best)
        helices.append(h)
    helices.sort(key=lambda h: -abs(h.z))
    for h in helices[:keep_pictures]:
        cyl, best = pictures[id(h)]
        nz = cyl.shape[2]
        h.unrolled = _unroll(cyl, radii)
        for name, hand in (("right", templates.right), ("left", templates.left)):
            _, k, sh, pol = best[name]
            setattr(h, f"unrolled_{name}",
                    _unroll(_aligned_template(hand[int(pol)], nz, int(k), int(sh)), radii))
    n_right = sum(1 for h in helices if h.vote < 0)
    n_left = sum(1 for h in helices if h.vote > 0)
    score = hand_score(n_right, n_left)
    reason = ""
    if not segs:
        reason = "no helix-like rods were found"
    elif n_right + n_left < MIN_HELICES:
        reason = (f"only {n_right + n_left} of {len(segs)} rods show a significant helical "
                  f"twist (at least {MIN_HELICES} are needed)")
    timings["total"] = time.perf_counter() - t0
    return HandResult(score, len(segs), n_right + n_left, n_right, n_left, spread, r_an, reason,
                      helices, diffs, timings)
