"""Level 3 numerics on particle images against 2D classes (vrs_level2_5.md §2): assignment of
each particle to its best class with its 2-D alignment (the reference's GL2D static step,
``xmipp_cuda_align_significant --keepBestN 1``), the PCA/Mahalanobis core of a class
(Xmipp ``classify_CL2D_core_analysis --computeCore 3 3``), the Fourier ring correlation of
half-class averages (Xmipp ``classify_evaluate_classes``), the correlation after alignment
with mirrors (Xmipp ``alignImagesConsideringMirrors``) and a reference-free 2-D classifier
(standing in for cryoSPARC's 2D classification).

Conventions of kernels/align2d.py: images (..., y, x), centre pixel b//2; a particle is
matched as ``image ≈ shift(rotate(reference, psi), t)``, so its aligned copy (in the
reference's frame) is ``rotate(shift(image, -t), -psi)``. Angles degrees, shifts pixels,
frequencies digital (cycles per pixel). Batched: Python loops only over chunks of images,
over classes (k of them) and over iterations.

The classifier (:func:`classify`) is multi-reference alignment with k-means assignment (van
Heel & Stöffler-Meilicke 1985, Proc. Natl. Acad. Sci. 82:7994; the MRA/k-means scheme of
Penczek et al. 1992, Ultramicroscopy 40:33): references seeded by k-means (k-means++
initialisation, Arthur & Vassilvitskii 2007) in a PCA space of rotation- and translation-
invariant features (the modulus of the image's Fourier transform, sampled on polar rings,
and the modulus of its Fourier series along the angle; Schatz & van Heel 1990,
Ultramicroscopy 32:255), then ``iterations`` rounds, on a seeded random subset of at most
``CLASSIFY_PER_CLASS`` images per class, of: align every image to every reference (align2d's
polar search over in-plane angle and shift), assign it to the best, average the
aligned members, centre each average on its centre of mass. It is not cryoSPARC's algorithm
(a maximum-likelihood classification with marginalisation over poses), so its classes differ
from cryoSPARC's in detail.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from cryovalid.kernels import align2d, fourier
from cryovalid.kernels.resample2d import fourier_resize

ALIGN_CHUNK = 1024  # images aligned (rotated, shifted, correlated) at once
PCA_COMPONENTS = 3  # the reference's --computeCore 3 3: z-score 3, 3 PCA components
CORE_ZSCORE = 3.0  # an image whose Mahalanobis distance is >= this is an outlier
MIN_CORE_IMAGES = 10  # classes with at most this many images are left untouched
CLASSIFY_ITERATIONS = 5  # multi-reference alignment rounds
CLASSIFY_PER_CLASS = 50  # the classifier works on a random subset of this many images per class
FEATURE_COMPONENTS = 10  # PCA dimensions of the invariant features for the seeding k-means
SEARCH_PIXEL = 3.0  # Å: coarse searches on images binned to this pixel size (Nyquist 6 Å)
MIN_SEARCH_BOX = 32  # px: the binned copy is never smaller
MATCH_TOP = 3  # pairs refined per row and per column in correlation_after_alignment
NULL_QUANTILE = 0.99  # a particle whose best CC is at most this quantile of the null is noise
OUTLIER_MADS = 3.0  # robust z-score (median − k·1.4826·MAD) of an outlier CC
NULL_SAMPLE = 2000  # phase-randomised copies aligned for the null (a seeded subset)
RANDOM_LABEL_TAIL = 0.3  # random_label_fraction: the bottom 30 % of the ranks


@dataclass
class Assignment:
    """Per image: the best reference (n,) int, the in-plane angle psi (n,) degrees, the shift
    (n, 2) px (dx, dy) and the Pearson correlation within the circle of radius b/2 (n,);
    ``scores`` (n, k) float32, the coarse search's correlation with every reference (its best
    angle and shift on the binned copy), from which ``best`` was chosen."""
    best: np.ndarray
    psi: np.ndarray
    shift: np.ndarray
    cc: np.ndarray
    scores: np.ndarray | None = None


def aligned(images: np.ndarray, psi, shifts) -> np.ndarray:
    """The images in their reference's frame: ``rotate(shift(image, -t), -psi)``."""
    images = np.asarray(images, dtype=np.float32)
    if not len(images):
        return images.copy()
    return align2d.rotate(align2d.shift(images, -np.asarray(shifts, dtype=np.float64)),
                          -np.asarray(psi, dtype=np.float64))


def search_box(box: int, pixel_size: float) -> int:
    """Box of the binned copy used for the coarse searches: the pixel size raised to
    ``SEARCH_PIXEL`` Å (Nyquist at cryoSPARC's default maximum resolution of 2D
    classification, 6 Å), an even number of pixels, at least ``MIN_SEARCH_BOX`` (and at most
    ``box``)."""
    if pixel_size >= SEARCH_PIXEL:
        return int(box)
    small = 2 * int(np.ceil(box * pixel_size / SEARCH_PIXEL / 2))
    return int(min(box, max(MIN_SEARCH_BOX, small)))


def binned(images: np.ndarray, size: int) -> np.ndarray:
    """The images Fourier-cropped to ``size`` px (same physical width), in chunks."""
    images = np.asarray(images, dtype=np.float32)
    if images.shape[-1] == size:
        return images
    return np.concatenate([fourier_resize(images[lo:lo + ALIGN_CHUNK], size)
                           for lo in range(0, len(images), ALIGN_CHUNK)])


def _refine_angle_shift(fi, refs, psi0, t0, reach, half, mask, which=None):
    """Angle refined by a parabola through the cross-correlation peaks of ``refs`` turned by
    psi0 − half, psi0, psi0 + half (degrees), then the sub-pixel shift at that angle (within
    ``reach`` px of t0): (psi (k,), t (k, 2))."""
    peaks = []
    for d in (-half, 0.0, half):
        _, pk = align2d.best_shift(fi, align2d.rotate(refs, psi0 + d), mask, reach,
                                   centre=t0, which=which)
        peaks.append(pk)
    lft, mid, rgt = peaks
    den = lft - 2 * mid + rgt
    off = np.where(den < 0, 0.5 * (lft - rgt) / np.where(den < 0, den, -1.0), 0.0)
    psi = psi0 + np.clip(off, -1.0, 1.0) * half
    t, _ = align2d.best_shift(fi, align2d.rotate(refs, psi), mask, reach, centre=t0,
                              which=which)
    return psi, t


def assign(images: np.ndarray, refs: np.ndarray, small: np.ndarray | None = None) -> Assignment:
    """Each image's best reference, angle and shift. The coarse polar search of align2d
    (every reference, in-plane angle and shift within box/10) runs on ``small``, a binned copy
    of the images (:func:`binned`; the images themselves when None); then, on the binned copy
    against the chosen reference, the angle is refined by a parabola through the
    cross-correlation peaks at the coarse angle and half a coarse angular step either side,
    and the shift to sub-pixel (peak within one coarse shift step of the coarse shift); the
    shift is refined once more at full size (within one binned pixel). The correlation is
    Pearson's r within the circle of radius b/2 of the image with the reference turned and
    shifted onto it."""
    images = np.asarray(images, dtype=np.float32)
    refs = np.asarray(refs, dtype=np.float32)
    n, b = images.shape[0], images.shape[-1]
    small = images if small is None else np.asarray(small, dtype=np.float32)
    bs = small.shape[-1]
    scale = b / bs
    mask = align2d.circular_mask(b)
    mask_s = align2d.circular_mask(bs)
    refs_s = binned(refs, bs)
    co = align2d.coarse_search(small, refs_s)
    best = co.score.argmax(axis=1)
    rows = np.arange(n)
    psi0 = co.psi[rows, best]
    t0 = co.shift[rows, best]
    reach = align2d.SHIFT_STEP * bs  # one coarse step around the coarse shift (binned px)
    limit = (np.floor(align2d.SHIFT_RANGE * bs + 1e-9) + 1.0) * scale
    half = 0.5 * 360.0 / align2d.n_angles_for(bs)
    psi = np.empty(n)
    t = np.empty((n, 2))
    cc = np.empty(n)
    for lo in range(0, n, ALIGN_CHUNK):
        sl = slice(lo, lo + ALIGN_CHUNK)
        fs = align2d.spectra(small[sl], mask_s)
        psi[sl], ts = _refine_angle_shift(fs, refs_s[best[sl]], psi0[sl], t0[sl], reach, half,
                                          mask_s)
        turned = align2d.rotate(refs[best[sl]], psi[sl])
        if bs < b:  # the shift once more at full size, within a binned pixel
            ts, _ = align2d.best_shift(align2d.spectra(images[sl], mask), turned, mask,
                                       scale, centre=ts * scale)
        t[sl] = np.clip(ts, -limit, limit)
        # Pearson's r in the particle's frame (the reference turned and shifted onto it)
        cc[sl] = align2d.pearson(images[sl], align2d.shift(turned, t[sl]), mask)
    return Assignment(best, psi % 360.0, t, cc, np.asarray(co.score, dtype=np.float32))


def label_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rank (n,) of each image's label among the k references: the number of references
    that score strictly higher than the labelled one (0: the label is the best match).
    ``scores`` (n, k), ``labels`` (n,) 0-based."""
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=int)
    own = scores[np.arange(len(scores)), labels]
    return np.count_nonzero(scores > own[:, None], axis=1)


def random_label_fraction(ranks: np.ndarray, k: int, tail: float = RANDOM_LABEL_TAIL) -> float:
    """Estimated fraction of the images whose label is no better than one drawn at random,
    from the ranks of their labels among ``k`` references (:func:`label_ranks`).

    Model: a fraction f of the labels is random (its rank uniform on 0 … k−1), the others
    are right (the rank of a right label is near 0: the labelled reference is the best match
    or among the close ones, and only noise that makes it look worse than most references
    puts it in the bottom ranks). The bottom ``m = max(1, round(tail·k))`` ranks then hold
    f·m/k of the images plus what noise pushes there, and ``f̂ = P(rank ≥ k − m)·k/m`` (at most
    1) estimates f from above: the estimate of the proportion of null hypotheses from the
    flat part of a p-value histogram (Storey 2002, J. R. Stat. Soc. B 64:479, with the rank
    over k as the p-value and λ = 1 − tail). Different references that look alike share the
    top ranks, so they do not raise it; particles so noisy that no reference stands out do."""
    ranks = np.asarray(ranks)
    if not ranks.size:
        return float("nan")
    m = max(1, int(round(tail * k)))
    return float(min(1.0, np.mean(ranks >= k - m) * k / m))


def core_distances(aligned_images: np.ndarray, components: int = PCA_COMPONENTS) -> np.ndarray:
    """Mahalanobis distance (n,) of each aligned image of one class in the space of the class's
    first ``components`` principal components (Xmipp ``classify_CL2D_core_analysis``): pixels
    within the circle of radius b/2, the class mean subtracted, the principal axes computed
    exactly (eigenvectors of the Gram or of the pixel covariance matrix, whichever is smaller;
    the reference learns them by EM-PCA with 10 iterations from a random start, which
    converges to the same subspace), the projections x, their covariance C = XᵀX/n and
    ``sqrt(xᵀ C⁻¹ x)``."""
    a = np.asarray(aligned_images, dtype=np.float32)
    mask = align2d.circular_mask(a.shape[-1])
    x = a[:, mask].astype(np.float64)
    x -= x.mean(axis=0)
    k = min(components, max(1, x.shape[0] - 1))
    if x.shape[0] <= x.shape[1]:  # n ≤ pixels: the Gram matrix X·Xᵀ = U S² Uᵀ
        w, u = np.linalg.eigh(x @ x.T)
        top = np.argsort(w)[::-1][:k]
        proj = u[:, top] * np.sqrt(np.maximum(w[top], 0.0))  # = U S, the projections
    else:  # the principal axes from the pixel covariance XᵀX
        w, v = np.linalg.eigh(x.T @ x)
        proj = x @ v[:, np.argsort(w)[::-1][:k]]
    cov = proj.T @ proj / len(proj)
    inv = np.linalg.pinv(cov)
    return np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", proj, inv, proj), 0.0))


def phase_randomised(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Copies of the images with the same Fourier amplitudes and random phases (the phases of
    the rfft2 of seeded white noise, so the copies are real): the same power spectrum as the
    particles, no structure; each copy normalised to zero mean and unit standard deviation."""
    images = np.asarray(images, dtype=np.float32)
    rng = np.random.default_rng(seed)
    b = images.shape[-1]
    out = np.empty_like(images)
    for lo in range(0, len(images), ALIGN_CHUNK):
        x = images[lo:lo + ALIGN_CHUNK]
        ph = scipy.fft.rfft2(rng.normal(size=x.shape).astype(np.float32),
                             workers=fourier.workers())
        ph /= np.maximum(np.abs(ph), 1e-30)
        g = scipy.fft.irfft2(scipy.fft.rfft2(x, workers=fourier.workers()) * ph, s=(b, b),
                             workers=fourier.workers()).astype(np.float32)
        g -= g.mean(axis=(1, 2), keepdims=True)
        g /= np.maximum(g.std(axis=(1, 2), keepdims=True), 1e-30)
        out[lo:lo + ALIGN_CHUNK] = g
    return out


@dataclass
class OutlierTest:
    """The outlier test on each particle's best correlation after alignment (cc, from
    :func:`assign`): ``noise`` (n,) bool, cc ≤ ``null_limit`` (the ``NULL_QUANTILE`` quantile of
    the correlations that phase-randomised copies reach against the same classes after the
    same search); ``off_class`` (n,) bool, the class-relative cc ``z = cc / median of its
    class's cc`` below ``median(z) − k·1.4826·MAD(z)`` (``z_limit``); ``off_all`` (n,) bool, cc
    below ``median(cc) − k·1.4826·MAD(cc)`` (``cc_limit``); ``outlier`` = any of the three."""
    outlier: np.ndarray
    noise: np.ndarray
    off_class: np.ndarray
    off_all: np.ndarray
    null_limit: float
    z_limit: float
    cc_limit: float
    z: np.ndarray


def robust_low_limit(x: np.ndarray, k: float = OUTLIER_MADS) -> float:
    """median(x) − k·1.4826·MAD(x): k standard deviations below the centre for Gaussian data,
    insensitive to a minority of outliers (Hampel 1974, J. Am. Stat. Assoc. 69:383)."""
    med = float(np.median(x))
    return med - k * 1.4826 * float(np.median(np.abs(x - med)))


def outlier_test(cc: np.ndarray, best: np.ndarray, null_cc: np.ndarray,
                 quantile: float = NULL_QUANTILE, k: float = OUTLIER_MADS) -> OutlierTest:
    """:class:`OutlierTest` of the correlations ``cc`` (n,) of particles with their best class
    ``best`` (n,), against ``null_cc`` (the correlations of phase-randomised copies: a
    per-dataset null, so no fixed limit on the correlation)."""
    cc = np.asarray(cc, dtype=np.float64)
    best = np.asarray(best)
    null_limit = float(np.quantile(null_cc, quantile))
    k_cls = int(best.max()) + 1 if best.size else 0
    med = np.zeros(k_cls)
    for c in np.unique(best):  # loop over classes
        med[c] = np.median(cc[best == c])
    z = cc / np.where(np.abs(med[best]) > 1e-12, med[best], 1e-12)
    z_limit = robust_low_limit(z, k)
    cc_limit = robust_low_limit(cc, k)
    noise = cc <= null_limit
    off_class = z < z_limit
    off_all = cc < cc_limit
    return OutlierTest(noise | off_class | off_all, noise, off_class, off_all, null_limit,
                       z_limit, cc_limit, z)


def frc(a: np.ndarray, b: np.ndarray):
    """Fourier ring correlation of two images: (frequencies (R,) digital, FRC (R,)) for rings
    of one Fourier pixel, ring r holding |k|·b in [r − 0.5, r + 0.5), r = 1 .. b/2."""
    box = a.shape[-1]
    fa = scipy.fft.rfft2(np.asarray(a, dtype=np.float32), workers=fourier.workers())
    fb = scipy.fft.rfft2(np.asarray(b, dtype=np.float32), workers=fourier.workers())
    ky = np.fft.fftfreq(box)[:, None]
    kx = np.fft.rfftfreq(box)[None, :]
    ring = np.rint(np.hypot(kx, ky) * box).astype(int).ravel()
    w = np.ones_like(kx + ky)
    w[:, 1:(box + 1) // 2] = 2.0  # the rfft's half plane counts the other half too
    w = w.ravel()
    n = box // 2 + 1
    num = np.bincount(ring, (w * (fa * np.conj(fb)).real.ravel()), minlength=n)[:n]
    da = np.bincount(ring, (w * np.abs(fa.ravel()) ** 2), minlength=n)[:n]
    db = np.bincount(ring, (w * np.abs(fb.ravel()) ** 2), minlength=n)[:n]
    f = np.arange(n) / box
    c = num / np.sqrt(np.maximum(da * db, 1e-300))
    return f[1:], c[1:]


def frc_threshold_frequency(freq: np.ndarray, curve: np.ndarray, level: float = 0.5) -> float:
    """The first frequency where the curve drops below ``level`` (the last frequency if it
    never does), as Xmipp ``classify_evaluate_classes``."""
    below = np.flatnonzero(curve < level)
    return float(freq[below[0]] if below.size else freq[-1])


def mirror(imgs: np.ndarray) -> np.ndarray:
    """x → −x about pixel b//2."""
    return np.roll(np.asarray(imgs)[..., ::-1], 1, axis=-1)


def _fine_coarse_search(a, refs):
    """align2d.coarse_search on a shift grid twice as dense: run again on the images shifted
    by half a step along x, y and both, keeping the best score per pair (few images: the
    classes)."""
    h = 0.5 * align2d.SHIFT_STEP * a.shape[-1]
    best = None
    for off in ((0.0, 0.0), (h, 0.0), (0.0, h), (h, h)):
        moved = a if off == (0.0, 0.0) else align2d.shift(a, np.tile(off, (len(a), 1)))
        co = align2d.coarse_search(moved, refs)
        co.shift = co.shift - np.asarray(off)  # a ≈ shift(rotate(ref, psi), t − off)
        if best is None:
            best = co
            continue
        better = co.score > best.score
        best.score = np.where(better, co.score, best.score)
        best.psi = np.where(better, co.psi, best.psi)
        best.shift = np.where(better[..., None], co.shift, best.shift)
    return best


def correlation_after_alignment(a: np.ndarray, b: np.ndarray, mirrors: bool = True,
                                top: int = MATCH_TOP) -> np.ndarray:
    """(na, nb) Pearson correlation within the circle of radius b/2 of each image of ``a``
    with each image of ``b`` after the best in-plane rotation and shift of b (and, with
    ``mirrors``, also of b's mirror image; the larger correlation is kept), as Xmipp's
    ``alignImagesConsideringMirrors`` followed by the correlation coefficient. The coarse
    polar search (on a shift grid twice as dense as align2d's) scores every pair; the pairs
    among the ``top`` best of their row or of their column (either mirror) are refined (angle
    and sub-pixel shift) and their exact correlation computed; the other pairs are −inf (not
    computed), so the maximum of every row and every column is exact."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    na, nb, box = len(a), len(b), a.shape[-1]
    mask = align2d.circular_mask(box)
    half = 0.5 * 360.0 / align2d.n_angles_for(box)
    cands = [b, mirror(b)] if mirrors else [b]
    coarse = [_fine_coarse_search(a, c) for c in cands]
    score = np.stack([c.score for c in coarse])  # (m, na, nb)
    m = len(cands)
    chosen = np.zeros(score.shape, dtype=bool)
    flat_rows = score.transpose(1, 0, 2).reshape(na, m * nb)  # each a against every option
    for i, j in enumerate(np.argsort(-flat_rows, axis=1)[:, :top]):
        chosen[j // nb, i, j % nb] = True
    flat_cols = score.transpose(2, 0, 1).reshape(nb, m * na)
    for j, i in enumerate(np.argsort(-flat_cols, axis=1)[:, :top]):
        chosen[i // na, i % na, j] = True
    best = np.full((na, nb), -np.inf)
    fa = align2d.spectra(a, mask)
    for k, (cand, co) in enumerate(zip(cands, coarse)):
        ia, ib = np.nonzero(chosen[k])
        psi, t0 = co.psi[ia, ib], co.shift[ia, ib]
        cc = np.empty(len(ia))
        for lo in range(0, len(ia), ALIGN_CHUNK):
            sl = slice(lo, lo + ALIGN_CHUNK)
            ps, t = _refine_angle_shift(fa, cand[ib[sl]], psi[sl], t0[sl],
                                        align2d.SHIFT_STEP * box, half, mask, which=ia[sl])
            turned = align2d.rotate(cand[ib[sl]], ps)
            cc[sl] = align2d.pearson(a[ia[sl]], align2d.shift(turned, t), mask)
        best[ia, ib] = np.maximum(best[ia, ib], cc)
    return best


def _invariants(images: np.ndarray) -> np.ndarray:
    """Rotation- and translation-invariant features: |FT| (translation invariant) on polar
    rings up to 0.4 of the box's frequencies, then the modulus of the Fourier series along the
    angle (rotation invariant), log-compressed."""
    b = images.shape[-1]
    amp = np.fft.fftshift(np.abs(scipy.fft.fft2(images, workers=fourier.workers())),
                          axes=(-2, -1)).astype(np.float32)
    n_ang = align2d.n_angles_for(b)
    p = align2d.polar(amp, n_ang)[:, : int(0.4 * b)]
    inv = np.abs(scipy.fft.rfft(p, axis=-1, workers=fourier.workers()))[..., : n_ang // 4]
    return np.log1p(inv.reshape(len(images), -1)).astype(np.float32)


def _centre(refs: np.ndarray) -> np.ndarray:
    """Each reference shifted so that the centre of mass of its positive part (within the
    circle of radius b/2) is on pixel b//2 (keeps the averages from drifting)."""
    b = refs.shape[-1]
    mask = align2d.circular_mask(b)
    w = np.where(mask, np.maximum(refs - np.median(refs[:, mask], axis=1)[:, None, None], 0),
                 0.0)
    y, x = np.mgrid[:b, :b] - b // 2
    tot = np.maximum(w.sum(axis=(1, 2)), 1e-30)
    com = np.stack([(w * x).sum(axis=(1, 2)) / tot, (w * y).sum(axis=(1, 2)) / tot], axis=1)
    return align2d.shift(refs, -com)


@dataclass
class Classification:
    """The k classes (k, b, b) at the input's box; for each image of the subset ``members``
    (indices into the input): its class, in-plane angle (degrees), shift (px, full size) and
    correlation with its class (binned grid)."""
    classes: np.ndarray
    labels: np.ndarray
    psi: np.ndarray
    shift: np.ndarray
    cc: np.ndarray
    members: np.ndarray


def class_averages(images: np.ndarray, labels: np.ndarray, psi, shifts, k: int) -> np.ndarray:
    """(k, b, b) mean of each class's aligned images (zeros for an empty class)."""
    b = images.shape[-1]
    out = np.zeros((k, b, b), dtype=np.float32)
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        for lo in range(0, len(idx), ALIGN_CHUNK):
            sl = idx[lo:lo + ALIGN_CHUNK]
            out[c] += aligned(images[sl], psi[sl], shifts[sl]).sum(axis=0)
        out[c] /= max(1, len(idx))
    return out


def classify(images: np.ndarray, k: int, small: np.ndarray | None = None, seed: int = 0,
             iterations: int = CLASSIFY_ITERATIONS,
             per_class: int = CLASSIFY_PER_CLASS) -> Classification:
    """Reference-free classification of the images into ``k`` classes (module docstring) on a
    seeded random subset of at most ``per_class``·k images (cryoSPARC's 2D classification
    likewise iterates on batches of images per class); the alignment rounds run on ``small``
    (a binned copy, :func:`binned`; the images when None), the class averages of the last
    round at full size. ``Classification.members`` are the indices of the subset."""
    from scipy.cluster.vq import kmeans2

    images = np.asarray(images, dtype=np.float32)
    n_all, b = images.shape[0], images.shape[-1]
    k = int(min(k, n_all))
    rng = np.random.default_rng(seed)
    members = np.arange(n_all)
    if n_all > per_class * k:
        members = np.sort(rng.choice(n_all, per_class * k, replace=False))
    work = np.asarray(images if small is None else small, dtype=np.float32)[members]
    n = len(members)
    small = work.shape[-1]
    scale = b / small
    feats = np.concatenate([_invariants(work[lo:lo + ALIGN_CHUNK])
                            for lo in range(0, n, ALIGN_CHUNK)])
    feats = feats - feats.mean(axis=0)
    u, s, _ = np.linalg.svd(feats, full_matrices=False)
    z = u[:, :FEATURE_COMPONENTS] * s[:FEATURE_COMPONENTS]
    _, labels = kmeans2(z.astype(np.float64), k, minit="++", seed=rng)
    # seed each reference with the image nearest to its cluster's centre, then let the rounds of
    # alignment build averages
    refs = np.empty((k, small, small), dtype=np.float32)
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        if not idx.size:
            idx = rng.integers(0, n, 1)
        d = ((z[idx] - z[idx].mean(axis=0)) ** 2).sum(axis=1)
        refs[c] = work[idx[np.argmin(d)]]
    refs = _lowpass(refs, 0.15)
    for it in range(iterations):
        asg = assign(work, refs)
        labels, psi, sh, cc = asg.best, asg.psi, asg.shift, asg.cc
        if it == iterations - 1:
            break
        refs = class_averages(work, labels, psi, sh, k)
        counts = np.bincount(labels, minlength=k)
        for c in np.flatnonzero(counts == 0):  # an empty class takes the worst-fitting images
            big = int(np.argmax(counts))
            worst_of = np.flatnonzero(labels == big)
            worst = worst_of[np.argsort(cc[worst_of])[: max(1, len(worst_of) // 2)]]
            refs[c] = class_averages(work[worst], np.zeros(len(worst), int), psi[worst],
                                     sh[worst], 1)[0]
            labels[worst] = c
            counts = np.bincount(labels, minlength=k)
        refs = _centre(refs)
    classes = class_averages(images[members], labels, psi, sh * scale, k)
    return Classification(classes, labels, psi, sh * scale, cc, members)


def _lowpass(imgs: np.ndarray, freq: float) -> np.ndarray:
    """Gaussian low-pass with its 1/√e point at digital frequency ``freq``."""
    b = imgs.shape[-1]
    ky = np.fft.fftfreq(b)[:, None]
    kx = np.fft.rfftfreq(b)[None, :]
    g = np.exp(-0.5 * (kx * kx + ky * ky) / (freq * freq))
    ft = scipy.fft.rfft2(imgs, workers=fourier.workers())
    return scipy.fft.irfft2(ft * g.astype(np.float32), s=(b, b),
                            workers=fourier.workers()).astype(np.float32)
