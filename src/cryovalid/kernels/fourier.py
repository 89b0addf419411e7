"""Fourier transforms and Fourier shells, for cubic and non-cubic boxes.

Conventions
-----------
* Transforms are real-to-complex (``scipy.fft.rfftn``) in float32/complex64 with
  :func:`workers` threads (every CPU unless ``CRYOVALID_WORKERS`` or :func:`using_workers` says).
  The last axis (x) is halved, so shapes are (nz, ny, nx//2 + 1).
* Physical frequency of a coefficient: s = sqrt((kz/(nz·Ts))² + (ky/(ny·Ts))² + (kx/(nx·Ts))²)
  in 1/Å, with k the signed integer index. For a cubic box this is |k|/(N·Ts).
* Shells are 1 voxel wide in units of 1/(N·Ts), N = the largest box side, so the physical
  frequency of shell r is r/(N·Ts) (the correct scaling; the reference mis-scales SSNR and 3D
  FSC). Shell index = round(s·N·Ts); shells run from 0 to N//2 (Nyquist); coefficients beyond
  Nyquist (the corners of the box) belong to no shell.
* Sums over the half-space rfft grid count each coefficient with its Hermitian mate: weight 2
  for 0 < kx < nx/2, weight 1 for kx = 0 and (even nx) kx = nx/2. A weighted shell sum therefore
  equals the sum over the full 3-D transform.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from functools import cached_property

import numpy as np
import scipy.fft

WORKERS_ENV = "CRYOVALID_WORKERS"  # threads per FFT; unset, empty or 0: every CPU
_workers = contextvars.ContextVar("cryovalid_fft_workers", default=None)


def workers() -> int:
    """Threads for one FFT, read when the FFT runs (never at import): the innermost
    :func:`using_workers` of this thread/task, else the ``CRYOVALID_WORKERS`` environment
    variable (an integer; unset, empty or 0 means every CPU, a negative n as in
    ``scipy.fft``: -1 every CPU, -2 all but one), else ``os.cpu_count()``.
    The thread count changes only the speed, never a number: each 1-D transform is computed
    by one thread."""
    n = _workers.get()
    if n is None:
        text = os.environ.get(WORKERS_ENV, "").strip()
        try:
            n = int(text) if text else 0
        except ValueError:
            raise ValueError(f"{WORKERS_ENV} must be a whole number of threads, "
                             f"not {text!r}") from None
    cpus = os.cpu_count() or 1
    if n < 0:  # as scipy.fft: -1 every CPU, -2 all but one, …
        return max(1, cpus + 1 + n)
    return n or cpus


@contextlib.contextmanager
def using_workers(n):
    """Within the ``with`` block (this thread or asyncio task only), FFTs use ``n`` threads;
    ``n`` = None or 0 restores the default (environment, else every CPU); a negative n counts
    back from every CPU as in ``scipy.fft``. Nests; restored on exit, also after an exception.
    A new thread starts with the default: a caller that runs FFTs in a thread pool enters
    ``using_workers`` in each worker (a worker process reads its own environment)."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer))):
        raise ValueError(f"FFT workers must be a whole number, not {n!r}")
    token = _workers.set(int(n) if n else None)
    try:
        yield
    finally:
        _workers.reset(token)


def rfft(vol: np.ndarray) -> np.ndarray:
    """Real-to-complex 3-D FFT in complex64."""
    return scipy.fft.rfftn(np.asarray(vol, dtype=np.float32), workers=workers())


def irfft(ft: np.ndarray, shape) -> np.ndarray:
    """Inverse of :func:`rfft` back to a float32 array of ``shape``."""
    return scipy.fft.irfftn(ft, s=shape, workers=workers()).astype(np.float32, copy=False)


def frequency_components(shape, voxel_size):
    """Broadcastable (sz, sy, sx) physical frequencies in 1/Å on the rfft grid (float32).
    ``voxel_size``: Å, one number or (z, y, x) per axis (a Fourier-cropped grid)."""
    nz, ny, nx = shape
    vz, vy, vx = np.broadcast_to(np.asarray(voxel_size, dtype=np.float64), (3,))
    sz = (np.fft.fftfreq(nz) / vz).astype(np.float32)[:, None, None]
    sy = (np.fft.fftfreq(ny) / vy).astype(np.float32)[None, :, None]
    sx = (np.fft.rfftfreq(nx) / vx).astype(np.float32)[None, None, :]
    return sz, sy, sx


def frequency_magnitude(shape, voxel_size) -> np.ndarray:
    """|s| in 1/Å of every rfft coefficient (float32, shape (nz, ny, nx//2+1)); voxel_size as
    in :func:`frequency_components`."""
    sz, sy, sx = frequency_components(shape, voxel_size)
    return np.sqrt(sz * sz + sy * sy + sx * sx)


def hermitian_weights(shape) -> np.ndarray:
    """Weights (1 or 2) along x on the rfft grid so that half-space sums equal full sums."""
    nx = shape[2]
    w = np.full(nx // 2 + 1, 2.0, dtype=np.float32)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return w[None, None, :]


# ---------------------------------------------------------------------------------------------
# Spectrum cropping / padding between grids of the same physical box.
# ---------------------------------------------------------------------------------------------
def _full_axis_pairs(n, m):
    """(indices in the full axis of length n, indices in the small axis of length m) of the
    coefficients both grids hold. For m < n the small grid's Nyquist index (even m) is left
    out, so that it stays zero and the small spectrum is Hermitian-consistent."""
    if m >= n:
        idx = np.arange(n)
        return idx, idx
    pos = (m - 1) // 2 + 1  # frequencies 0 .. pos-1
    neg = (m - 1) // 2  # frequencies -neg .. -1
    full = np.concatenate([np.arange(pos), np.arange(n - neg, n)])
    small = np.concatenate([np.arange(pos), np.arange(m - neg, m)])
    return full, small


def _half_axis_pairs(n, m):
    """The same for the halved rfft axis (x)."""
    if m >= n:
        idx = np.arange(n // 2 + 1)
        return idx, idx
    keep = (m - 1) // 2 + 1
    idx = np.arange(keep)
    return idx, idx


def _pairs(shape, small_shape):
    nz, ny, nx = shape
    mz, my, mx = small_shape
    return (_full_axis_pairs(nz, mz), _full_axis_pairs(ny, my), _half_axis_pairs(nx, mx))


def crop_spectrum(ft, shape, small_shape):
    """The rfft of a map of ``shape`` cropped to the rfft grid of ``small_shape`` (same box).
    Coefficients are copied as they are (no rescaling)."""
    (fz, sz), (fy, sy), (fx, sx) = _pairs(shape, small_shape)
    out = np.zeros((small_shape[0], small_shape[1], small_shape[2] // 2 + 1), dtype=np.complex64)
    out[np.ix_(sz, sy, sx)] = ft[np.ix_(fz, fy, fx)]
    return out


def pad_spectrum(ft_small, small_shape, shape):
    """Inverse of :func:`crop_spectrum`: zero-pad a small rfft into the rfft grid of ``shape``."""
    (fz, sz), (fy, sy), (fx, sx) = _pairs(shape, small_shape)
    out = np.zeros((shape[0], shape[1], shape[2] // 2 + 1), dtype=np.complex64)
    out[np.ix_(fz, fy, fx)] = ft_small[np.ix_(sz, sy, sx)]
    return out



class FourierShells:
    """Spherical Fourier shells of a box, computed once and shared by every check.

    Parameters
    ----------
    shape : (nz, ny, nx) of the real-space map
    voxel_size : Å per voxel

    Attributes
    ----------
    n : reference box size N (largest side); shell r has frequency r/(N·Ts) 1/Å
    n_shells : N//2 + 1 (shell 0 is the DC term, the last is Nyquist)
    index : int32 shell index of each rfft coefficient (n_shells for beyond Nyquist)
    frequency : (n_shells,) shell frequencies in 1/Å
    counts : (n_shells,) number of coefficients per shell in the full transform
    """

    def __init__(self, shape, voxel_size: float):
        self.shape = tuple(int(v) for v in shape)
        self.voxel_size = float(voxel_size)
        self.n = max(self.shape)
        self.n_shells = self.n // 2 + 1
        s = frequency_magnitude(self.shape, self.voxel_size)
        idx = np.rint(s * (self.n * self.voxel_size)).astype(np.int32)
        idx[idx >= self.n_shells] = self.n_shells
        self.index = idx
        self.weights = np.broadcast_to(hermitian_weights(self.shape), idx.shape)
        self.frequency = np.arange(self.n_shells) / (self.n * self.voxel_size)
        self.counts = self.sum(np.ones(idx.shape, dtype=np.float32))

    @cached_property
    def _flat_index(self):
        return self.index.ravel()

    @cached_property
    def _flat_weights(self):
        return np.ascontiguousarray(self.weights, dtype=np.float64).ravel()

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Hermitian-weighted sum of a real array over each shell; returns (n_shells,) float64."""
        v = np.asarray(values).ravel()
        out = np.bincount(self._flat_index, weights=v * self._flat_weights,
                          minlength=self.n_shells + 1)
        return out[: self.n_shells]

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Shell means of a real array (NaN for an empty shell)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum(values) / self.counts

    @property
    def resolution(self) -> np.ndarray:
        """Resolution in Å of each shell (inf for shell 0)."""
        with np.errstate(divide="ignore"):
            return 1.0 / self.frequency


def guinier_profile(ft: np.ndarray, shells: FourierShells):
    """The Guinier profile of a map from its rfft: (s² per shell in 1/Å², ln mean |F| per
    shell) for the 1-voxel shells 1 … Nyquist whose mean amplitude is positive (the DC shell is
    left out: its |F| is the map's sum, near zero for a zero-mean map, and says nothing about
    the fall-off). Shared by 0.d (the B-factor fit) and A.d (the map–model match)."""
    amp = shells.mean(np.abs(ft))
    f = shells.frequency
    keep = (np.arange(f.size) > 0) & np.isfinite(amp) & (amp > 0)
    return f[keep] ** 2, np.log(amp[keep])
