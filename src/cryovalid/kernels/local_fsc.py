"""Local resolution from the FSC of two maps in a sliding box (blocres; Cardone, Heymann &
Steven 2013, J Struct Biol 184:226), shared by 1.c (half map vs half map, FSC cut-off 0.5) and
A.b FSC-Q (map vs model map at 0.67 minus half vs half at 0.5; Ramírez-Aportela et al. 2021,
Nat Commun 12:42).

Algorithm (all lengths in voxels unless said; resolutions in Å, frequencies in 1/Å):

* Box centres lie on a lattice of spacing ``step`` (node j of an axis at voxel j·step). A node
  is used when a voxel of ``region`` lies in one of the lattice cells it is a corner of, so
  that every region voxel has all eight corners of its cell measured.
* Around each centre c a cube of ``box`` voxels is cut from each map (voxels c − box//2 …
  c + box − box//2 − 1 per axis, periodic at the faces of the map, as the FFT is), its
  window-weighted mean is removed and it is multiplied by a soft-edged cubic window: 1 in the
  middle, a raised cosine over the outer EDGE_FRACTION·``box`` voxels of each axis, 0 at the
  faces (the product of the three 1-D profiles). Many boxes are transformed at once
  (``scipy.fft.rfftn`` over the last three axes, :func:`cryovalid.kernels.fourier.workers`
  threads).
* The FSC of each box pair is computed in 1-voxel Fourier shells of the box: shell
  r = round(|k|), frequency r/(box·Ts), r = 0 … box//2 (coefficients beyond the box's Nyquist
  belong to no shell); the Hermitian-weighted shell sums are one matrix product of the
  coefficient products with a (coefficients × shells) weight matrix.
* The local resolution is 1/f where the FSC first falls below ``cutoff`` from shell 1 on,
  interpolated linearly between the two shells around the crossing (FSC(0) taken as 1, so a
  curve already below the cut-off at shell 1 is interpolated from the origin); it is then
  limited to [``finest_A``, box·Ts] (finest: max(2·Ts, the reference's ``-maxresolution``); a
  box cannot measure below its own first shell).
* The node values are interpolated trilinearly back to every region voxel.

blocres computes a box around every voxel (``-step 1``) and pads each box ×2 before its FFT
(``-pad 1``, which samples the FSC curve on a finer grid of frequencies). We sample the centres
every ``step`` voxels (2–4, see :func:`choose_step`) and interpolate, and interpolate the FSC
linearly between the unpadded shells instead: both change a local value by a fraction of the
distance between two shells, far less than the spread of local values, and make a 240³ map
take seconds instead of hours.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy import ndimage

from cryovalid.kernels import fourier

BOX = 20  # voxels, the reference's -box
CUTOFF_HALVES = 0.5  # local FSC cut-off between two half maps (the reference's -cutoff)
CUTOFF_MODEL = 0.67  # FSC-Q: map vs model map (2·0.5/(1+0.5): the full map's equivalent)
STEPS = (2, 3, 4)  # box-centre spacings tried, finest first (voxels)
MAX_BOXES = 40_000  # the finest step that needs at most this many boxes is used (EMD-11007,
#                     240³ at 0.834 Å with 1.27 M mask voxels: step 4, 25 000 boxes)
BATCH_BYTES = 32 * 2 ** 20  # real-space bytes of one half's boxes in one batch
# Raised-cosine edge of the window, as a fraction of the box. A box cannot resolve a curve finer
# than its own shells: multiplying by the window smooths the spectrum over about one shell, and
# where the signal falls steeply (a poorly resolved region) power leaks from the stronger low
# frequencies into the shell of the crossing and the value comes out too fine. On stationary
# halves with a known FSC (as in tests/test_local_fsc.py, but at 1 Å/voxel) edges of 2, 3, 5,
# 7, 10 voxels of a 20-voxel box gave medians of 3.69, 5.05, 5.51, 5.75, 5.81 Å where the truth
# is 6.81 Å (0.5 crossing of a 6 Å FSC), and 2.95 … 3.24 Å for 3.41 Å; beyond 7 the values
# stop improving and spread more (fewer voxels in the box). At 1.5 Å/voxel (a 30 Å box, 5 × the
# coarser resolution, blocres' rule of thumb) edge 7 gives 6.30 and 3.31 Å.
EDGE_FRACTION = 0.35
REGION_MIN = 1e-3  # a soft mask above this is "inside" (Xmipp's FSC-Q uses mask > 0.001)


@dataclass
class LocalFSC:
    """Local resolutions of one pair of maps.

    values : (n,) float32 Å at the voxels ``index`` (flat indices into ``shape``, C order)
    node_values : the values at the box centres (Å; 0 where no box was computed)
    step, box, cutoff : centre spacing and box size (voxels), FSC cut-off
    n_boxes : boxes computed
    finest_A, coarsest_A : the limits the values were clipped to
    at_finest, at_coarsest : fraction of the boxes whose FSC never fell below the cut-off up
        to ``finest_A`` / was below it at the box's first shell (coarser than the box)
    """

    values: np.ndarray
    index: np.ndarray
    shape: tuple
    node_values: np.ndarray
    step: int
    box: int
    cutoff: float
    n_boxes: int
    finest_A: float
    coarsest_A: float
    at_finest: float
    at_coarsest: float

    def volume(self) -> np.ndarray:
        """The values on the full grid (float32 Å), 0 outside the region."""
        out = np.zeros(self.shape, dtype=np.float32)
        out.ravel()[self.index] = self.values
        return out


def window(box: int = BOX) -> np.ndarray:
    """(box, box, box) float32 soft-edged cube: product of 1-D profiles that are 1 within
    box/2 − e voxels of the centre voxel (index box//2), e = round(EDGE_FRACTION·box), and fall
    as a raised cosine to 0 at distance box/2."""
    edge = max(int(round(EDGE_FRACTION * box)), 1)
    d = np.abs(np.arange(box) - box // 2).astype(np.float64)
    flat = box / 2.0 - edge
    t = np.clip((d - flat) / edge, 0.0, 1.0)
    w1 = 0.5 * (1.0 + np.cos(np.pi * t))
    return (w1[:, None, None] * w1[None, :, None] * w1[None, None, :]).astype(np.float32)


def shell_matrix(box: int = BOX) -> np.ndarray:
    """(box·box·(box//2+1), box//2+1) float32: Hermitian weight of each rfft coefficient of a
    box in its shell's column (0 beyond the box's Nyquist), so that products @ matrix are the
    full-transform shell sums."""
    k = np.fft.fftfreq(box) * box
    kx = np.fft.rfftfreq(box) * box
    r = np.rint(np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2))
    r = r.astype(np.int64).ravel()
    w = np.broadcast_to(fourier.hermitian_weights((box, box, box)), (box, box, box // 2 + 1))
    w = np.asarray(w, dtype=np.float32).ravel()
    n_shells = box // 2 + 1
    m = np.zeros((r.size, n_shells), dtype=np.float32)
    ok = r < n_shells
    m[np.flatnonzero(ok), r[ok]] = w[ok]
    return m


def lattice(region: np.ndarray, step: int):
    """(node shape, boolean array of the nodes needed) of the centre lattice for ``region``."""
    shape = region.shape
    nb = [-(-s // step) for s in shape]  # blocks of step voxels per axis
    pad = np.zeros([n * step for n in nb], dtype=bool)
    pad[: shape[0], : shape[1], : shape[2]] = region
    blocks = pad.reshape(nb[0], step, nb[1], step, nb[2], step).any(axis=(1, 3, 5))
    need = np.zeros([n + 1 for n in nb], dtype=bool)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                need[dz: dz + nb[0], dy: dy + nb[1], dx: dx + nb[2]] |= blocks
    return need.shape, need


def choose_step(region: np.ndarray, max_boxes: int = MAX_BOXES, steps=STEPS) -> int:
    """The finest spacing of ``steps`` whose lattice needs at most ``max_boxes`` boxes (the
    coarsest when none does)."""
    for s in steps:
        if int(lattice(region, s)[1].sum()) <= max_boxes:
            return s
    return steps[-1]


def _gather(vol, view, lo, box, out):
    """Copy the boxes whose first voxel is ``lo`` ((n, 3) z, y, x) from ``vol`` into ``out``
    ((n, box, box, box)): boxes inside the map from its sliding-window view (no copy of the
    map), the others with periodic indices."""
    shape = np.asarray(vol.shape)
    inside = np.all((lo >= 0) & (lo + box <= shape), axis=1)
    if inside.all():
        out[...] = view[lo[:, 0], lo[:, 1], lo[:, 2]]
        return out
    i = np.flatnonzero(inside)
    out[i] = view[lo[i, 0], lo[i, 1], lo[i, 2]]
    j = np.flatnonzero(~inside)
    r = np.arange(box)
    iz = (lo[j, 0, None] + r) % shape[0]
    iy = (lo[j, 1, None] + r) % shape[1]
    ix = (lo[j, 2, None] + r) % shape[2]
    out[j] = vol[iz[:, :, None, None], iy[:, None, :, None], ix[:, None, None, :]]
    return out


def _box_fsc(pairs, centres, box, win, smat, batch):
    """(len(pairs), n_centres, n_shells) float32 FSC of the boxes at ``centres`` ((n, 3) voxel
    z, y, x) for each pair of maps."""
    n_shells = smat.shape[1]
    smat2 = np.repeat(smat, 2, axis=0)  # rows for the real and imaginary parts
    wsum = np.float32(win.sum(dtype=np.float64))
    views = {id(v): np.lib.stride_tricks.sliding_window_view(v, (box, box, box))
             for pair in pairs for v in pair}
    out = np.empty((len(pairs), len(centres), n_shells), dtype=np.float32)
    real = np.empty((min(batch, len(centres)), box, box, box), dtype=np.float32)
    prod = None
    for lo in range(0, len(centres), batch):
        first = centres[lo: lo + batch] - box // 2
        n = len(first)
        for p, (a, b) in enumerate(pairs):
            fts = []
            for vol in (a, b):
                boxes = _gather(vol, views[id(vol)], first, box, real[:n])
                mean = np.tensordot(boxes, win, axes=3)
                mean /= wsum
                boxes -= mean[:, None, None, None]
                boxes *= win
                ft = scipy.fft.rfftn(boxes, axes=(1, 2, 3), workers=fourier.workers())
                fts.append(ft.reshape(n, -1).view(np.float32))
            f1, f2 = fts
            if prod is None or prod.shape[0] < n:
                prod = np.empty_like(f1)
            buf = prod[:n]
            cross = np.multiply(f1, f2, out=buf) @ smat2
            p1 = np.multiply(f1, f1, out=buf) @ smat2
            p2 = np.multiply(f2, f2, out=buf) @ smat2
            del fts, f1, f2
            with np.errstate(invalid="ignore", divide="ignore"):
                out[p, lo: lo + n] = cross / np.sqrt(p1 * p2)
    return out


def crossing_resolution(fsc: np.ndarray, cutoff: float, box: int, voxel_size: float,
                        finest_A: float):
    """Per row of ``fsc`` ((n, box//2+1), shells r/(box·Ts)): (resolution Å, never crossed,
    crossed at the first shell) as described in the module docstring."""
    n, n_shells = fsc.shape
    f = np.arange(n_shells) / (box * voxel_size)
    y = np.array(fsc, dtype=np.float64)
    y[:, 0] = 1.0
    below = ~(y >= cutoff)  # NaN (an empty box) counts as below
    below[:, 0] = False
    first = np.argmax(below, axis=1)
    never = ~below.any(axis=1)
    first = np.where(never, n_shells - 1, first)
    rows = np.arange(n)
    y0, y1 = y[rows, first - 1], y[rows, first]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(np.isfinite(y1) & (y0 != y1), (y0 - cutoff) / (y0 - y1), 1.0)
    freq = f[first - 1] + np.clip(t, 0.0, 1.0) * (f[first] - f[first - 1])
    freq = np.where(never, f[-1], freq)
    coarsest = box * voxel_size
    with np.errstate(divide="ignore"):
        res = np.where(freq > 0, 1.0 / np.maximum(freq, 1e-12), coarsest)
    res = np.clip(res, finest_A, coarsest)
    return res.astype(np.float32), never | (res <= finest_A), first == 1


def local_resolutions(pairs, voxel_size: float, region: np.ndarray, cutoffs, *, box: int = BOX,
                      step: int | None = None, finest_A: float = 0.0) -> list:
    """Local FSC resolution of each pair of maps ((a, b) float32 arrays of one shape) at the
    voxels of ``region`` (boolean), one :class:`LocalFSC` per pair, cut-off ``cutoffs[i]``.
    The pairs share the box centres, so several pairs cost one lattice. ``finest_A`` (Å): no
    value finer than max(2·Ts, finest_A). ``step``: centre spacing (None: :func:`choose_step`).
    Raises ValueError when the region is empty or a map is smaller than the box."""
    pairs = [(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32))
             for a, b in pairs]
    shape = pairs[0][0].shape
    if any(a.shape != shape or b.shape != shape for a, b in pairs):
        raise ValueError("the maps of a local FSC must have the same shape")
    if min(shape) < box:
        raise ValueError(f"the map ({'×'.join(map(str, shape))} voxels) is smaller than the "
                         f"local FSC box ({box} voxels)")
    region = np.asarray(region, dtype=bool)
    if not region.any():
        raise ValueError("the mask is empty")
    step = choose_step(region) if step is None else int(step)
    node_shape, need = lattice(region, step)
    centres = np.argwhere(need) * step
    batch = max(64, BATCH_BYTES // (4 * box ** 3))
    fsc = _box_fsc(pairs, centres, box, window(box), shell_matrix(box), batch)

    finest = max(2.0 * voxel_size, float(finest_A))
    index = np.flatnonzero(region)
    coords = np.vstack(np.unravel_index(index, shape)).astype(np.float32) / np.float32(step)
    out = []
    for p, cutoff in enumerate(cutoffs):
        res, at_finest, at_coarsest = crossing_resolution(fsc[p], cutoff, box, voxel_size,
                                                          finest)
        nodes = np.zeros(node_shape, dtype=np.float32)
        nodes[need] = res
        vals = ndimage.map_coordinates(nodes, coords, order=1, mode="nearest",
                                       prefilter=False).astype(np.float32)
        out.append(LocalFSC(values=vals, index=index, shape=tuple(shape), node_values=nodes,
                            step=step, box=box, cutoff=float(cutoff),
                            n_boxes=int(len(centres)), finest_A=finest,
                            coarsest_A=box * voxel_size,
                            at_finest=float(np.mean(at_finest)),
                            at_coarsest=float(np.mean(at_coarsest))))
    return out


def local_fsc_resolution(a, b, voxel_size: float, region, cutoff: float = CUTOFF_HALVES,
                         **kwargs) -> LocalFSC:
    """:func:`local_resolutions` for one pair."""
    return local_resolutions([(a, b)], voxel_size, region, [cutoff], **kwargs)[0]
