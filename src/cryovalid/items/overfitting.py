"""4.f Overfitting detection (vrs_level2_5.md §3.8, §6.10; the reference runs Xmipp
``validate_overfitting``, which cites B. Heymann, "Validation of 3D EM reconstructions", 2015:
the resolution of reconstructions from growing subsets, against that of pure noise images
aligned to the map; on noise that aligns to a reference, Stewart & Grigorieff 2004,
Ultramicroscopy 102:67).

On the working grid of Ts = R/2 (``ctx.particles.grid(R/2)``, box B): for each subset size
n = int(½·x·N), x in ``FRACTIONS``, and each of ``REPEATS`` repetitions, two disjoint random
subsets of n particles are reconstructed with the user's angles and shifts
(kernels/reconstruct: direct Fourier, padding 2, trilinear, to Nyquist; particles that carry a
CTF are phase-flipped, sign(CTF)), symmetry-expanded by the point group, and the resolution is
where the FSC of the two (unmasked) reconstructions first drops below ``FSC_LEVEL`` (Å, linear
interpolation between shells; the box when it is below from the first shell, Nyquist = R when it
never drops). The same with noise: as many images of white Gaussian noise (σ = ``NOISE_SIGMA``;
the FSC does not depend on σ) as particles, whose angles are assigned by projection matching
against the map's projections every ``GALLERY_STEP_DEG``° over the asymmetric unit with tilts
0 to ``GALLERY_TILT_MAX_DEG`` (the reference's range: noise has no hand), on the grid
Fourier-cropped to B/2 (digital frequency 0.25, as the reference's galleries), at every in-plane
angle, no shift search (kernels/reconstruct.match_directions), and reconstructed the same way.
Resolutions in Å.

Decisions where we differ from the reference (docs/level4.md): disjoint halves (the
reference's independent draws overlap by n²/N particles, which inflates both FSCs); subsets
nested within a repetition (one random split per repetition, the first n of each half: a pair
of random disjoint subsets for every n, at the cost of one reconstruction); ``REPEATS``
repetitions instead of 5 (speed); the point group is used (the reference passes it under a
name the protocol ignores, so it stays C1); the particles are phase-flipped (the reference's
``reconstruct_fourier`` call has no CTF option: its particles are reconstructed as they are);
the resolution is interpolated between shells (the reference takes the first shell below
0.5); no shift search for the noise (the reference's projection matching has one); at most
``MAX_EXPANDED`` (particle, operator) pairs (a seeded subset of the particles beyond that).
Standard deviations over the repetitions with n − 1, as the reference.
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import CannotMeasure
from cryovalid.items.base import Curves, Fact, new_result
from cryovalid.kernels import reconstruct as rec
from cryovalid.kernels.projection import orientations, symmetry_matrices
from cryovalid.kernels.resample2d import fourier_resize

ID = "4.f"
LEVEL = "4"
REQUIRES = ("angles", "resolution")
TITLE = "Overfitting detection"
SECTION = "Level 4 analysis"

FRACTIONS = (0.03, 0.1, 0.3, 0.75, 1.0)  # subset sizes int(0.5·x·N)
REPEATS = 3  # random splits per size (the reference: 5)
FSC_LEVEL = 0.5  # resolution where the FSC of the two subsets drops below this
NOISE_SIGMA = 3.0  # standard deviation of the noise images (the reference's)
GALLERY_STEP_DEG = 5.0  # angular step of the gallery the noise is matched against
GALLERY_TILT_MAX_DEG = 90.0  # its tilts, 0 to this (the reference's; noise has no hand)
MATCH_FREQ = 0.25  # digital frequency (of the Ts = R/2 grid) kept for the matching
MIN_SUBSET = 5  # smaller subsets are left out
MAX_EXPANDED = 10_000  # (particle, symmetry operator) pairs used at most
SEED = 0
CHUNK = 512  # particles transformed at once

WARN_NOISE = ("the resolution of pure noise particles is sometimes better than the one of "
              "true particles: with {size} particles, {noise:.2f} Å for noise against "
              "{exp:.2f} Å for the particles (noise is better at {count} of the {total} "
              "subset sizes)")

EXPLANATION = (
    "Reconstructions from more particles should reach a better resolution, and pure noise "
    "should not reach the resolution of real particles. Two disjoint random subsets of the "
    f"particles, of sizes from {FRACTIONS[0]:g} to {FRACTIONS[-1]:g} times half the "
    "particles, are reconstructed with the user's angles and shifts (phase-flipped when the "
    "particles carry a CTF) and the resolution is where the Fourier shell correlation of the "
    f"two reconstructions drops below {FSC_LEVEL:g}, in {REPEATS} random repetitions. The same "
    "is done with images of pure noise whose angles are assigned by matching them to "
    f"projections of the map (every {GALLERY_STEP_DEG:g}°): whatever resolution they reach "
    "comes from the alignment to the map alone (reference bias). If noise reaches a better "
    "resolution than the particles, the particles' resolution may be no better than what "
    "aligning noise to the map produces (overfitting).")
CRITERIA = (
    "OK if the resolution of noise particles is never better than the resolution of true "
    "particles (mean over the repetitions, at each subset size); one warning otherwise.")


def subset_sizes(n_particles: int) -> list:
    """The subset sizes int(½·x·N) for x in FRACTIONS that have at least MIN_SUBSET
    particles, without repeats."""
    out = []
    for x in FRACTIONS:
        n = int(0.5 * x * n_particles)
        if n >= MIN_SUBSET and n not in out:
            out.append(n)
    return out


def size_key(x: float) -> str:
    """The metrics' suffix of fraction x: 'f' and 100·x on three digits (f003 … f100)."""
    return f"f{int(round(100 * x)):03d}"


def noise_samples(bp, n, volume, symmetry, rng):
    """(n, q) transform samples of ``n`` noise images (σ = NOISE_SIGMA, the box of ``bp``),
    their angles (n, 3) assigned by matching to the gallery of ``volume``'s projections,
    Fourier-cropped to MATCH_FREQ (:func:`cryovalid.kernels.reconstruct.match_directions`)."""
    from cryovalid.kernels.projection import Projector

    b = bp.box
    small = max(8, 2 * int(round(MATCH_FREQ * b)))
    gal_e, _ = orientations(symmetry, GALLERY_STEP_DEG)
    gal_e = gal_e[gal_e[:, 1] <= GALLERY_TILT_MAX_DEG + 1e-9]
    gallery = fourier_resize(Projector(volume).project(gal_e, max_freq=MATCH_FREQ), small)
    samples = np.empty((n, bp.n_samples), dtype=np.complex64)
    eulers = np.empty((n, 3))
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        imgs = rng.normal(0.0, NOISE_SIGMA, (hi - lo, b, b)).astype(np.float32)
        eulers[lo:hi], _ = rec.match_directions(fourier_resize(imgs, small), gallery, gal_e)
        samples[lo:hi] = bp.samples(imgs)
    return samples, eulers


def curve(bp_factory, samples, eulers, sizes, rng, repeats, pixel_size):
    """(repeats, len(sizes)) resolutions (Å) and how each was found (kernels/reconstruct.
    resolution_at): per repetition a random split into two disjoint halves, the first n of
    each half reconstructed for each size n (nested), FSC < FSC_LEVEL."""
    n_all = len(samples)
    out = np.empty((repeats, len(sizes)))
    how = np.empty((repeats, len(sizes)), dtype=object)
    for r in range(repeats):
        perm = rng.permutation(n_all)
        halves = (perm[0::2], perm[1::2])
        bps = (bp_factory(), bp_factory())
        done = 0
        for j, n in enumerate(sizes):
            vols = []
            for bp, h in zip(bps, halves):
                idx = np.sort(h[done:n])
                bp.insert(samples[idx], eulers[idx])
                vols.append(bp.volume())
            done = n
            freq, fsc = rec.fsc_curve(vols[0], vols[1], pixel_size)
            out[r, j], how[r, j] = rec.resolution_at(freq, fsc, FSC_LEVEL)
    return out, how


def working_grid(ctx, res):
    """The particles' grid at Ts = R/2 (at most ``reconstruct.MAX_BOX`` px) that 4.e and 4.f
    reconstruct on; a note in ``res`` when the cap makes it coarser than R/2."""
    r = float(ctx.resolution)
    g = ctx.particles.grid(rec.working_pixel(ctx.map.shape, ctx.map.voxel_size, r))
    if g.pixel_size > r / 2.0 * (1 + 1e-6):
        res.notes.append(f"The working grid is limited to {rec.MAX_BOX} px: "
                         f"{g.pixel_size:.2f} Å per pixel instead of R/2 = {r / 2:.2f} Å, so "
                         f"nothing finer than {2 * g.pixel_size:.2f} Å is measured.")
    return g


def seeded_subset(n_all: int, symmetry: str, max_expanded: int, rng, res) -> np.ndarray:
    """The particles 4.e and 4.f reconstruct from: all of them, or, when the (particle,
    symmetry operator) pairs would exceed ``max_expanded``, a sorted random subset drawn with
    ``rng`` (a note in ``res`` says so)."""
    k = len(symmetry_matrices(symmetry))
    use = np.arange(n_all)
    if n_all * k > max_expanded:
        use = np.sort(rng.choice(n_all, max(1, max_expanded // k), replace=False))
        res.notes.append(f"A random subset of {len(use)} of the {n_all} particles is used "
                         f"(at most {max_expanded} particles × symmetry operators).")
    return use


def run(ctx):
    res = new_result(sys.modules[__name__])
    pd = ctx.particles
    e_all = pd.finite_eulers()
    g = working_grid(ctx, res)
    b, ts = g.box, g.pixel_size
    n_all = pd.n
    rng = np.random.default_rng(SEED)
    use = seeded_subset(n_all, ctx.symmetry, MAX_EXPANDED, rng, res)
    n = len(use)
    sizes = subset_sizes(n)
    if not sizes:
        raise CannotMeasure(f"{n} particles are too few: the subsets would have fewer than "
                            f"{MIN_SUBSET} particles")

    def factory():
        return rec.Backprojector(b, symmetry=ctx.symmetry)

    proto = factory()
    has_ctf = pd.ctf_parameters is not None
    samples = np.empty((n, proto.n_samples), dtype=np.complex64)
    images, shifts = g.images, g.shifts
    for lo in range(0, n, CHUNK):
        idx = use[lo:lo + CHUNK]
        s = proto.samples(images[idx], shifts[idx])
        if has_ctf:
            s *= np.sign(g.ctf(idx)[:, proto.inside])
        samples[lo:lo + len(idx)] = s
    exp, exp_how = curve(factory, samples, e_all[use], sizes, rng, REPEATS, ts)
    del samples
    nz_samples, nz_eulers = noise_samples(proto, n, g.volume, ctx.symmetry, rng)
    noise, noise_how = curve(factory, nz_samples, nz_eulers, sizes, rng, REPEATS, ts)
    del nz_samples

    m = res.metrics
    ddof = 1 if REPEATS > 1 else 0  # the sample standard deviation, as the reference
    exp_mean, exp_std = exp.mean(axis=0), exp.std(axis=0, ddof=ddof)
    nz_mean, nz_std = noise.mean(axis=0), noise.std(axis=0, ddof=ddof)
    m["n_particles"] = n_all
    m["n_used"] = n
    m["n_sizes"] = len(sizes)
    m["repeats"] = REPEATS
    m["pixel_size_A"] = float(ts)
    m["box"] = int(b)
    # one value per fraction x of FRACTIONS (key suffix: 100·x), None where that size was
    # left out (fewer than MIN_SUBSET particles)
    for x in FRACTIONS:
        key = size_key(x)
        nx = int(0.5 * x * n)
        j = sizes.index(nx) if nx in sizes else None
        m[f"subset_size_{key}"] = nx if j is not None else None
        for name, arr in (("resolution_mean_A", exp_mean), ("resolution_std_A", exp_std),
                          ("noise_resolution_mean_A", nz_mean),
                          ("noise_resolution_std_A", nz_std)):
            m[f"{name}_{key}"] = float(arr[j]) if j is not None else None
    better = nz_mean < exp_mean
    m["n_sizes_noise_better"] = int(better.sum())
    res.facts += [
        Fact("Symmetry", ctx.symmetry.upper(), "", "{}"),
        Fact("Working grid", f"{b} px of {ts:.2f} Å", "", "{}"),
        Fact("Particles used", f"{n} of {n_all}", "", "{}"),
        Fact("Subset sizes", ", ".join(str(v) for v in sizes), "", "{}"),
        Fact("Repetitions per size", REPEATS, "", "{:d}"),
        Fact(f"Resolution with {sizes[-1]} particles", float(exp_mean[-1]), "Å", "{:.2f}"),
        Fact(f"Resolution with {sizes[-1]} noise images", float(nz_mean[-1]), "Å", "{:.2f}"),
    ]
    if has_ctf:
        res.notes.append("The particles were phase-flipped (multiplied by the sign of their "
                         "CTF) before the reconstructions; the noise images carry no CTF.")
    else:
        res.notes.append("The particles carry no CTF: they were reconstructed as they are.")
    for name, how in (("particles", exp_how), ("noise images", noise_how)):
        if np.any(how == "never"):
            res.notes.append(f"For some subsets of {name} the FSC never drops below "
                             f"{FSC_LEVEL:g}: their resolution is given as the Nyquist limit of "
                             f"the working grid, {2 * ts:.2f} Å.")
        if np.any(how == "at_start"):
            res.notes.append(f"For some subsets of {name} the FSC is below {FSC_LEVEL:g} from "
                             f"the first shell: their resolution is given as the box, "
                             f"{b * ts:.1f} Å.")
    if better.any():
        j = int(np.flatnonzero(better)[0])
        res.warn("noise_better", WARN_NOISE, size=int(sizes[j]), noise=float(nz_mean[j]),
                 exp=float(exp_mean[j]), count=int(better.sum()), total=len(sizes))
    res.data.update(sizes=np.asarray(sizes), inverse=1.0 / exp_mean,
                    noise_inverse=1.0 / nz_mean)  # 1/Å, what the figure plots
    inv2 = 1.0 / exp ** 2
    ninv2 = 1.0 / noise ** 2
    res.artefacts.append(Curves("overfitting.csv", [
        ("n_particles", [int(v) for v in sizes]),
        ("resolution_mean_A", exp_mean), ("resolution_std_A", exp_std),
        ("inv_resolution2_mean", inv2.mean(axis=0)),
        ("inv_resolution2_std", inv2.std(axis=0, ddof=ddof)),
        ("noise_resolution_mean_A", nz_mean), ("noise_resolution_std_A", nz_std),
        ("noise_inv_resolution2_mean", ninv2.mean(axis=0)),
        ("noise_inv_resolution2_std", ninv2.std(axis=0, ddof=ddof)),
    ]))
    return res.finish()
