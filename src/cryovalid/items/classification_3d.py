"""4.e Classification without alignment (vrs_level2_5.md §3.7; the reference runs RELION 3D
classification, Scheres 2012, J Struct Biol 180:519, with K = 2 classes, the user's angles
kept, an initial low-pass of 10 Å). Here a hard-assignment classification of our own, with the
user's angles and shifts fixed, on the working grid of Ts = R/2 (``ctx.particles.grid(R/2)``):

* the particles are split at random (``SEED``) into two independent halves, each classified on
  its own, and each half into two quarters that are scored against each other's class maps
  (cross-fitting: a particle is never compared with a map that contains its own noise, which
  would make any split self-consistent). The class maps start from a random split of each
  quarter into two; they are reconstructed with kernels/reconstruct (direct Fourier,
  Wiener-weighted by the CTF when the particles carry one, symmetry-expanded) up to the
  frequency 1/``LOWPASS_A`` Å (or 1/R when R is coarser): the classes are compared at that
  resolution, as RELION's initial low-pass;
* each iteration projects the other quarter's class maps at every particle's angles,
  multiplies them by the particle's CTF and shift, and gives the particle to the class whose
  projection correlates best with it (the normalised inner product over the kept frequencies,
  the DC term left out); that quarter's class maps are then reconstructed from their members
  before the other quarter is scored (updating both at once makes their labels swap every
  iteration); at most ``ITERATIONS`` iterations, or until fewer than ``STABLE_FRACTION`` of the
  particles change class;
* two classes are reported only if both halves find the same difference: the correlation of
  the two halves' difference maps (class 1 − class 2, over the kept frequencies, Hermitian
  weights; when it is negative the second half's labels are swapped and its sign dropped) is
  at least ``REPRODUCIBLE_CC`` (the half-set threshold of Rosenthal & Henderson 2003, J Mol
  Biol 333:721) and each class holds at least ``MIN_FRACTION`` of the particles. A split that
  one half finds and the other does not is noise that the hard assignment amplifies (any
  split of homogeneous particles is self-consistent), so the particles form a single class.

Outcomes as the reference: a single class → OK, counted ("converged to a single class with n
out of N images"); two classes → the sizes and slices of the two class maps and of their
difference, no automatic criterion, not counted (``criteria`` set to "" for this result).
Class maps in the units of the normalised particles; resolutions in Å.
"""
from __future__ import annotations

import sys

import numpy as np
import scipy.fft

from cryovalid.errors import CannotMeasure
from cryovalid.items.base import Fact, new_result
from cryovalid.items.overfitting import seeded_subset, working_grid
from cryovalid.kernels import fourier
from cryovalid.kernels import reconstruct as rec
from cryovalid.kernels.projection import Projector

ID = "4.e"
LEVEL = "4"
REQUIRES = ("angles", "resolution")
TITLE = "Classification without alignment"
SECTION = "Level 4 analysis"

N_CLASSES = 2
LOWPASS_A = 10.0  # Å: the classes are compared up to 1/max(LOWPASS_A, R)
ITERATIONS = 10  # at most
STABLE_FRACTION = 0.005  # stop when fewer particles than this fraction change class
REPRODUCIBLE_CC = 0.143  # correlation of the two halves' difference maps for two classes
MIN_FRACTION = 0.05  # a class with fewer particles than this fraction is empty
MIN_PARTICLES = 20  # per half: fewer cannot be classified
MAX_EXPANDED = 20_000  # (particle, symmetry operator) pairs used at most
SEED = 0
CHUNK = 512

TEXT_ONE = "The classification converged to a single class with {n} out of {total} images in it."
TEXT_TWO = ("The classification produced two classes with {n1} and {n2} images out of {total}; "
            "their maps and their difference are shown.")

EXPLANATION = (
    "If the particles are a mixture of different structures, classifying them into two "
    "classes with their angles fixed separates them; a homogeneous set of particles stays in "
    f"one class. The particles are classified into {N_CLASSES} classes at a resolution of "
    f"{LOWPASS_A:g} Å (or the reported resolution, if coarser), each particle going to the "
    "class whose projection at its angles (with its CTF) correlates best with it, the classes "
    "reconstructed from their particles, for a few iterations. This is done independently on "
    "two random halves of the particles; the two classes are kept only if both halves find "
    f"the same difference between them (correlation of the difference maps at least "
    f"{REPRODUCIBLE_CC:g}) and each class has at least {MIN_FRACTION:.0%} of the particles.")
CRITERIA = "The validation is OK if the classification converged to a single class."
CRITERIA_TWO = ""  # two classes: no automatic criterion (not counted), as the reference
NOTE_TWO = ("The program ran properly but there are no automatic criteria defined to evaluate "
            "two classes: manual interpretation is needed (are the two maps different "
            "structures, or different states of one?). Not counted in the score.")


class _Classifier:
    """Samples, CTFs and angles of a set of particles, and their classification."""

    def __init__(self, samples, ctf, eulers, box, symmetry, max_freq):
        self.samples, self.ctf, self.eulers = samples, ctf, eulers
        self.box, self.symmetry, self.max_freq = box, symmetry, max_freq
        bp = self.backprojector()
        self.inside = bp.inside
        hw = np.where(np.fft.rfftfreq(box)[None, :] * np.ones((box, 1)) == 0, 1.0, 2.0)
        dc = np.zeros((box, box // 2 + 1), dtype=bool)
        dc[0, 0] = True
        self.weights = np.where(dc, 0.0, hw)[self.inside].astype(np.float32)

    def backprojector(self):
        return rec.Backprojector(self.box, symmetry=self.symmetry, max_freq=self.max_freq)

    def reconstruct(self, idx):
        bp = self.backprojector()
        for lo in range(0, len(idx), CHUNK * 4):
            j = idx[lo:lo + CHUNK * 4]
            bp.insert(self.samples[j], self.eulers[j],
                      None if self.ctf is None else self._ctf_grid(j), rec.WIENER)
        return bp.volume()

    def _ctf_grid(self, j):
        c = np.zeros((len(j), self.box, self.box // 2 + 1), dtype=np.float32)
        c[:, self.inside] = self.ctf[j]
        return c

    def scores(self, vol, idx):
        """(len(idx),) normalised correlation of each particle with the class map's
        projection at its angles (CTF applied), over the kept frequencies."""
        pr = Projector(vol)
        out = np.empty(len(idx))
        for lo in range(0, len(idx), CHUNK):
            j = idx[lo:lo + CHUNK]
            proj = pr.project(self.eulers[j], max_freq=self.max_freq)
            p = scipy.fft.rfft2(np.fft.ifftshift(proj, axes=(-2, -1)),
                                workers=fourier.workers())[:, self.inside]
            if self.ctf is not None:
                p = p * self.ctf[j]
            x = self.samples[j]
            num = (self.weights * (x.real * p.real + x.imag * p.imag)).sum(axis=1)
            den = np.sqrt((self.weights * (p.real ** 2 + p.imag ** 2)).sum(axis=1))
            out[lo:lo + len(j)] = num / np.maximum(den, 1e-30)
        return out

    def classify(self, halves, rng):
        """(labels (n,) in {0, 1}, class maps [half][class], iterations run) for the two
        halves (index arrays) of the particles: from a random split, hard assignment, the
        particles of each half scored against the other half's class maps (module
        docstring)."""
        n = sum(len(h) for h in halves)
        labels = np.zeros(len(self.samples), dtype=int)
        for h in halves:
            labels[h] = rng.permutation(len(h)) % N_CLASSES
        vols = [self._maps(h, labels) for h in halves]
        it = 0
        for it in range(1, ITERATIONS + 1):
            changed = 0
            for j, h in enumerate(halves):
                other = vols[1 - j]
                sc = np.stack([self.scores(v, h) if np.any(v) else np.full(len(h), -np.inf)
                               for v in other], axis=1)  # an empty class takes no one
                new = sc.argmax(axis=1)
                changed += np.count_nonzero(new != labels[h])
                labels[h] = new
                vols[j] = self._maps(h, labels)  # at once: the other half follows these
            if changed < STABLE_FRACTION * n:
                break
        return labels, vols, it

    def _maps(self, h, labels):
        out = []
        for c in range(N_CLASSES):
            members = h[labels[h] == c]
            out.append(self.reconstruct(members) if len(members)
                       else np.zeros((self.box,) * 3, dtype=np.float32))
        return out


def difference_correlation(d1: np.ndarray, d2: np.ndarray, max_freq: float) -> float:
    """Correlation of two difference maps over the frequencies up to ``max_freq`` (digital),
    the DC term left out, Hermitian weights (kernels/fourier.hermitian_weights)."""
    f1 = scipy.fft.rfftn(d1, workers=fourier.workers())
    f2 = scipy.fft.rfftn(d2, workers=fourier.workers())
    s = fourier.frequency_magnitude(d1.shape, 1.0)
    w = np.broadcast_to(fourier.hermitian_weights(d1.shape), f1.shape)
    keep = (s <= max_freq + 1e-9) & (s > 0)
    cross = (w * (f1.real * f2.real + f1.imag * f2.imag))[keep].sum()
    p1 = (w * np.abs(f1) ** 2)[keep].sum()
    p2 = (w * np.abs(f2) ** 2)[keep].sum()
    if p1 <= 0 or p2 <= 0:
        return 0.0
    return float(cross / np.sqrt(p1 * p2))


def run(ctx):
    res = new_result(sys.modules[__name__])
    pd = ctx.particles
    r = float(ctx.resolution)
    e_all = pd.finite_eulers()
    g = working_grid(ctx, res)
    b, ts = g.box, g.pixel_size
    lowpass = max(LOWPASS_A, r, 2 * ts)
    max_freq = ts / lowpass
    n_all = pd.n
    rng = np.random.default_rng(SEED)
    use = seeded_subset(n_all, ctx.symmetry, MAX_EXPANDED, rng, res)
    n = len(use)
    if n < 2 * MIN_PARTICLES:
        raise CannotMeasure(f"{n} particles are too few to classify (at least "
                            f"{2 * MIN_PARTICLES} are needed)")
    proto = rec.Backprojector(b, symmetry=ctx.symmetry, max_freq=max_freq)
    samples = np.empty((n, proto.n_samples), dtype=np.complex64)
    has_ctf = pd.ctf_parameters is not None
    ctf = np.empty((n, proto.n_samples), dtype=np.float32) if has_ctf else None
    images, shifts = g.images, g.shifts
    for lo in range(0, n, CHUNK):
        idx = use[lo:lo + CHUNK]
        samples[lo:lo + len(idx)] = proto.samples(images[idx], shifts[idx])
        if has_ctf:
            ctf[lo:lo + len(idx)] = g.ctf(idx)[:, proto.inside]
    cl = _Classifier(samples, ctf, e_all[use], b, ctx.symmetry, max_freq)
    perm = rng.permutation(n)
    quarters = [np.sort(perm[q::4]) for q in range(4)]
    labels = np.zeros(n, dtype=int)
    diffs, iters = [], []
    for pair in (quarters[:2], quarters[2:]):  # two independent halves
        lab, _, it = cl.classify(pair, rng)
        h = np.concatenate(pair)
        labels[h] = lab[h]
        iters.append(it)
        d = [cl.reconstruct(h[lab[h] == c]) if np.any(lab[h] == c)
             else np.zeros((b,) * 3, dtype=np.float32) for c in range(N_CLASSES)]
        diffs.append(d[0] - d[1])
    cc = difference_correlation(diffs[0], diffs[1], max_freq)
    second = np.concatenate(quarters[2:])
    if cc < 0:  # the second half's labels are the other way round
        labels[second] = 1 - labels[second]
        cc = -cc
    counts = np.bincount(labels, minlength=N_CLASSES)
    two = cc >= REPRODUCIBLE_CC and counts.min() >= MIN_FRACTION * n
    m = res.metrics
    m["n_particles"] = n_all
    m["n_used"] = n
    m["n_classes"] = 2 if two else 1
    m["class_size_1"], m["class_size_2"] = int(counts[0]), int(counts[1])
    m["difference_cc"] = float(cc)
    m["iterations_half_1"], m["iterations_half_2"] = int(iters[0]), int(iters[1])
    m["lowpass_A"] = float(lowpass)
    res.facts += [
        Fact("Symmetry", ctx.symmetry.upper(), "", "{}"),
        Fact("Working grid", f"{b} px of {ts:.2f} Å", "", "{}"),
        Fact("Particles used", f"{n} of {n_all}", "", "{}"),
        Fact("Resolution of the classification", float(lowpass), "Å", "{:.1f}"),
        Fact("Class sizes (both halves)", f"{counts[0]} and {counts[1]}", "", "{}"),
        Fact("Correlation of the halves' difference maps", float(cc), "", "{:.2f}"),
    ]
    if has_ctf:
        res.notes.append("The class maps are CTF-corrected reconstructions (Wiener-weighted) "
                         "and their projections are multiplied by each particle's CTF.")
    if two:
        res.criteria = CRITERIA_TWO
        res.notes.append(TEXT_TWO.format(n1=int(counts[0]), n2=int(counts[1]), total=n))
        res.notes.append(NOTE_TWO)
        maps = [cl.reconstruct(np.flatnonzero(labels == c)) for c in range(N_CLASSES)]
        res.data.update(class_maps=maps, difference=maps[0] - maps[1])
        m["class_fraction_max"] = float(counts.max() / n)
    else:
        big = int(counts.max()) if cc >= REPRODUCIBLE_CC else n
        m["class_fraction_max"] = float(big / n)
        m["single_class_size"] = big
        res.notes.append(TEXT_ONE.format(n=big, total=n))
        if cc < REPRODUCIBLE_CC:
            res.notes.append(
                f"Each half of the particles was split in two, but the two splits differ "
                f"(correlation of their difference maps {cc:.2f}, below {REPRODUCIBLE_CC:g}): "
                f"the split is not reproducible, so the particles form a single class.")
    res.data.update(class_sizes=counts, n=n, two=two, labels=labels, used=use)
    return res.finish()
