"""A shared bank of isotropic Fourier band-pass filters and the Riesz (monogenic) transform.

One forward FFT of the map (``ctx.map.ft``) feeds every band. For a band transfer function
H(|s|) the map's band component and its three Riesz conjugates are

    g   = F⁻¹[ H·F ]
    r_j = F⁻¹[ −i (s_j/|s|) · H·F ],   j = z, y, x

and the local amplitude is a = sqrt(g² + r_z² + r_y² + r_x²) (the modulus of the monogenic
signal: Felsberg & Sommer 2001, IEEE Trans Signal Process 49:3136; in cryo-EM MonoRes, Vilas et
al. 2018, Structure 26:337, and the spiral-phase transform of LocSpiral/LocBFactor/LocOccupancy,
Kaur et al. 2021, Nat Commun 12:1240). For a band of width comparable to its centre, ``a`` is a
smooth envelope: how much signal of that band is present around each voxel, regardless of phase.

Units and conventions
---------------------
* Frequencies are physical, in 1/Å: coefficient k along an axis of n voxels and length
  L = n·Ts Å has frequency k/L. A cropped grid keeps the same L, so its coefficients keep their
  physical frequencies (this is what makes Fourier cropping an exact resampling).
* Values are true samples of the band-limited function (the cropping scale factor is applied),
  so grey levels are comparable between grids.
* float32/complex64 throughout, ``scipy.fft`` with ``fourier.workers()`` threads (read when
  each FFT runs), no Python loop over voxels.
* Invariance: the zero-frequency coefficient (the map's mean) is left out of every band, so a
  constant offset of the map changes no amplitude; the bank's ``gain`` multiplies every band
  (items set it to 1 / the map's robust scale, so that amplitudes are O(1) in any units).

Speed
-----
A band whose transfer is zero above f_max only needs a grid whose Nyquist exceeds f_max: the
components are computed on the spectrum cropped to that grid (a 15 Å band of a 240³ map is
computed on about 40³ voxels). When the amplitude is wanted back on the full grid, the squared
amplitude is low-pass filtered on the small grid (as MonoRes smooths its amplitude) and brought
back by zero-padding its spectrum; the small grid is chosen so that the squared amplitude, whose
spectrum reaches 2·f_max, aliases only onto frequencies the low-pass removes.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.fft
from scipy import ndimage

from cryovalid.kernels.fourier import (crop_spectrum, frequency_magnitude, hermitian_weights,
                                       pad_spectrum, workers)


# ---------------------------------------------------------------------------------------------
# Transfer functions of |s| (1/Å). Each returns a function that maps a float32 array of |s| to a
# float32 array of gains.
# ---------------------------------------------------------------------------------------------
def _raised_cosine_step(s, start, end):
    """0 at s <= start, 1 at s >= end, half-cosine in between (a rising edge)."""
    if end <= start:
        return (s >= end).astype(np.float32)
    t = np.clip((s - start) / (end - start), 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)


def raised_cosine_band(rise_start, rise_end, fall_start, fall_end):
    """Band-pass: rises from 0 at ``rise_start`` to 1 at ``rise_end``, flat, falls from 1 at
    ``fall_start`` to 0 at ``fall_end`` (all in 1/Å; fall_end = inf makes it a high-pass)."""
    def transfer(s):
        h = _raised_cosine_step(s, rise_start, rise_end)
        if np.isfinite(fall_end):
            h *= 1.0 - _raised_cosine_step(s, fall_start, fall_end)
        return h
    transfer.f_max = float(fall_end)
    return transfer


def raised_cosine_lowpass(cutoff, taper):
    """1 below ``cutoff``, half-cosine to 0 at ``cutoff + taper`` (1/Å)."""
    def transfer(s):
        return 1.0 - _raised_cosine_step(s, cutoff, cutoff + taper)
    transfer.f_max = float(cutoff + taper)
    return transfer


def gaussian_shell(f0, sigma):
    """exp(−(|s| − f0)² / (2σ²)): the annular band of LocSpiral/LocBFactor (1/Å)."""
    def transfer(s):
        d = (s - np.float32(f0)) / np.float32(sigma)
        return np.exp(-0.5 * d * d).astype(np.float32)
    transfer.f_max = float("inf")  # a Gaussian is never exactly zero
    return transfer


def _rfftn(a):
    return scipy.fft.rfftn(a, workers=workers())


def _irfftn(ft, shape):
    return scipy.fft.irfftn(ft, s=shape, workers=workers()).astype(np.float32, copy=False)


def fourier_resample(ft, shape, new_shape, transfer=None, voxel_size=None) -> np.ndarray:
    """Map of ``shape`` (given by its rfft) resampled onto ``new_shape`` voxels of the same box
    by Fourier cropping (exact: an ideal low-pass at the new Nyquist, grey levels preserved).
    Only downsampling is supported (new_shape <= shape on every axis). ``transfer(s)``
    (s in 1/Å) multiplies the cropped spectrum on the way; it needs ``voxel_size``, the new
    grid's voxel in Å (one number or z, y, x)."""
    if any(m > n for m, n in zip(new_shape, shape)):
        raise ValueError(f"Fourier cropping cannot enlarge {shape} to {new_shape}")
    small = crop_spectrum(ft, shape, new_shape)
    if transfer is not None:
        small *= np.asarray(transfer(frequency_magnitude(new_shape, voxel_size)),
                            dtype=np.float32)  # crop_spectrum returned a fresh array
    scale = float(np.prod(new_shape)) / float(np.prod(shape))
    # the inverse transform sums up to prod(new_shape) coefficients before normalising: bring
    # them to O(1) first, so that a map in huge units (× 1e30) does not overflow float32
    peak = float(np.max(np.abs(small))) if small.size else 0.0
    unit = peak if (np.isfinite(peak) and peak > 0) else 1.0
    if unit != 1.0:
        small = small * np.complex64(1.0 / unit)
    out = _irfftn(small, new_shape)
    out *= np.float32(scale * unit)
    return out


def fast_even_size(k: int) -> int:
    """The smallest even length >= k that scipy.fft transforms quickly."""
    m = scipy.fft.next_fast_len(max(2, int(k)), real=True)
    while m % 2:
        m = scipy.fft.next_fast_len(m + 1, real=True)
    return m


# ---------------------------------------------------------------------------------------------
# The bank
# ---------------------------------------------------------------------------------------------
#: oversampling of the smoothed energy before trilinear sampling in FilterBank.amplitude_at
OVERSAMPLE = 2.0


class FilterBank:
    """Band-pass filters and monogenic amplitudes of one map, from its rfft.

    Parameters
    ----------
    ft : complex64 rfft of the map, shape (nz, ny, nx//2 + 1); shared, never modified
    shape : (nz, ny, nx) of the real-space map
    lengths : (Lz, Ly, Lx) physical box lengths in Å (n_i × voxel size along that axis)
    """

    def __init__(self, ft, shape, lengths, gain: float = 1.0):
        self.ft = ft
        #: factor applied to every band (1 / the map's robust scale, so that amplitudes are
        #: O(1) whatever the map's units: no float32 overflow or underflow when squaring)
        self.gain = float(gain)
        self.shape = tuple(int(v) for v in shape)
        self.lengths = tuple(float(v) for v in lengths)
        self.spacing = tuple(L / n for L, n in zip(self.lengths, self.shape))
        #: highest frequency present on every axis (1/Å)
        self.nyquist = min(n / (2.0 * L) for n, L in zip(self.shape, self.lengths))
        #: the box length that defines Fourier shells (the largest side), Å
        self.shell_length = max(self.lengths)

    @classmethod
    def from_map(cls, data, voxel_size, ft=None, gain: float = 1.0):
        shape = data.shape
        if ft is None:
            ft = _rfftn(np.asarray(data, dtype=np.float32))
        return cls(ft, shape, [n * float(voxel_size) for n in shape], gain=gain)

    def with_gain(self, gain: float) -> "FilterBank":
        """The same bank (shared spectrum and cached frequency grids, no copy) with another
        gain."""
        other = FilterBank(self.ft, self.shape, self.lengths, gain=gain)
        other.__dict__.update({k: v for k, v in self.__dict__.items() if k.startswith("_")})
        return other

    # ---- frequency grids -------------------------------------------------------------------
    def components(self, shape=None):
        """Broadcastable (sz, sy, sx) physical frequencies (1/Å) on the rfft grid of ``shape``
        (a grid of this bank's box; default the bank's own grid)."""
        nz, ny, nx = self.shape if shape is None else shape
        Lz, Ly, Lx = self.lengths
        sz = (np.fft.fftfreq(nz) * (nz / Lz)).astype(np.float32)[:, None, None]
        sy = (np.fft.fftfreq(ny) * (ny / Ly)).astype(np.float32)[None, :, None]
        sx = (np.fft.rfftfreq(nx) * (nx / Lx)).astype(np.float32)[None, None, :]
        return sz, sy, sx

    def magnitude(self, shape=None):
        """|s| in 1/Å on the rfft grid of ``shape`` (cached for the bank's own grid and for
        the last two cropped grids)."""
        if shape is None or tuple(shape) == self.shape:
            return self._magnitude
        shape = tuple(int(v) for v in shape)
        cache = self.__dict__.setdefault("_magnitude_cache", {})
        if shape not in cache:
            if len(cache) >= 2:
                cache.pop(next(iter(cache)))
            sz, sy, sx = self.components(shape)
            cache[shape] = np.sqrt(sz * sz + sy * sy + sx * sx)
        return cache[shape]

    @cached_property
    def _magnitude(self):
        sz, sy, sx = self.components()
        return np.sqrt(sz * sz + sy * sy + sx * sx)

    def _riesz_kernels(self, shape):
        """(sz, sy, sx, 1/|s|) with the Nyquist index of each even axis zeroed, so that the
        Riesz multipliers −i s_j/|s| keep the spectrum Hermitian."""
        sz, sy, sx = (c.copy() for c in self.components(shape))
        for comp, n in zip((sz, sy, sx), shape):
            if n % 2 == 0:
                flat = comp.reshape(-1)
                # fftfreq puts -n/2 at index n/2; rfftfreq puts +n/2 last
                flat[n // 2 if flat.size == n else -1] = 0.0
        if tuple(shape) == self.shape:
            return sz, sy, sx, self._inverse_magnitude
        return sz, sy, sx, self._inverse(self.magnitude(shape))

    @staticmethod
    def _inverse(mag):
        with np.errstate(divide="ignore"):
            return np.where(mag > 0, 1.0 / mag, 0.0).astype(np.float32)

    @cached_property
    def _inverse_magnitude(self):
        return self._inverse(self._magnitude)

    # Transfers on the bank's own grid are read from a table of |s| in steps of 1/(4096 L): one
    # cosine per table entry instead of one per coefficient.
    TABLE_SUBDIVISION = 4096

    @cached_property
    def _table_index(self):
        step = 1.0 / (self.TABLE_SUBDIVISION * self.shell_length)
        return np.rint(self._magnitude / step).astype(np.int32), step

    def _table_index_for(self, grid):
        """Table indices of |s| on the rfft grid of ``grid`` (the bank's own grid, or one of the
        last two cropped grids: cached)."""
        if grid is None or tuple(grid) == self.shape:
            return self._table_index
        grid = tuple(int(v) for v in grid)
        cache = self.__dict__.setdefault("_table_cache", {})
        if grid not in cache:
            if len(cache) >= 2:
                cache.pop(next(iter(cache)))
            step = 1.0 / (self.TABLE_SUBDIVISION * self.shell_length)
            cache[grid] = (np.rint(self.magnitude(grid) / step).astype(np.int32), step)
        return cache[grid]

    def transfer_values(self, transfer, grid=None):
        """``transfer`` evaluated on the rfft grid of ``grid`` (float32), read from a table of
        |s| in steps of 1/(4096 L)."""
        idx, step = self._table_index_for(grid)
        table = transfer(np.arange(int(idx.max()) + 1, dtype=np.float32) * np.float32(step))
        return np.take(np.asarray(table, dtype=np.float32), idx)

    def shape_for(self, f_max):
        """The grid (same box) on which frequencies up to ``f_max`` 1/Å are represented: the
        smallest fast even size per axis with Nyquist > f_max, or the full size."""
        out = []
        for n, L in zip(self.shape, self.lengths):
            if not np.isfinite(f_max):
                out.append(n)
                continue
            m = fast_even_size(2 * int(np.ceil(f_max * L)) + 2)
            out.append(n if m >= n else m)
        return tuple(out)

    def hermitian_sum(self, values, shape=None):
        """Sum of a real array on an rfft grid counting each coefficient with its mate."""
        shape = self.shape if shape is None else shape
        return float(np.sum(values * hermitian_weights(shape), dtype=np.float64))

    # ---- the monogenic amplitude -------------------------------------------------------------
    def energy(self, transfer, grid=None, normalise=False):
        """Squared monogenic amplitude g² + Σ r_j² of the band ``transfer``, on ``grid``.

        Parameters
        ----------
        transfer : function of |s| (1/Å) returning the band's gain (see the factories above)
        grid : real-space shape to compute on (same box); default: the smallest grid that holds
            the band (``shape_for(transfer.f_max)``)
        normalise : divide the band by its sum over the whole (full-grid) spectrum, as
            LocBFactor/LocOccupancy do (their m = |ch + i·s| with H/ΣH)

        The zero-frequency coefficient (the map's mean) is left out of every band, and the band
        is multiplied by the bank's ``gain``: amplitudes do not depend on a constant offset of
        the map, and scale with ``gain`` × the map's scale.

        Returns (energy float32 array on ``grid``, grid).
        """
        if grid is None:
            grid = self.shape_for(getattr(transfer, "f_max", np.inf))
        grid = tuple(int(v) for v in grid)
        full = grid == self.shape
        spec = self.ft if full else crop_spectrum(self.ft, self.shape, grid)
        h = self.transfer_values(transfer, grid)
        scale = float(np.prod(grid)) / float(np.prod(self.shape))
        if normalise:
            total = self.hermitian_sum(h if full else self.transfer_values(transfer))
            scale /= total
        h *= np.float32(scale * self.gain)
        if full:
            band = spec * h
        else:  # the cropped spectrum is already a private copy: work in place
            band = spec
            band *= h
        del h
        # a band-pass never holds the map's mean: without this a constant offset added to the
        # map leaks into every band whose transfer is not exactly 0 at |s| = 0 (Gaussian shells)
        band[0, 0, 0] = 0
        energy = _irfftn(band, grid)
        np.multiply(energy, energy, out=energy)
        # r_j = F⁻¹[(band/|s|) · (−i s_j)]: one division, then a 1-D factor per axis (one
        # work buffer for the three products)
        sz, sy, sx, inv = self._riesz_kernels(grid)
        band *= inv
        work = np.empty_like(band)
        for comp in (sz, sy, sx):
            np.multiply(band, comp * np.complex64(-1j), out=work)
            rr = _irfftn(work, grid)
            np.multiply(rr, rr, out=rr)
            energy += rr
            del rr
        return energy, grid

    def amplitude(self, transfer, normalise=False, smooth=None, grid=None):
        """Local monogenic amplitude of a band, on the bank's full grid (float32).

        Parameters
        ----------
        transfer : band transfer function of |s| (1/Å)
        normalise : see :meth:`energy`
        smooth : optional low-pass transfer (e.g. :func:`raised_cosine_lowpass`) applied to the
            squared amplitude before the square root, as MonoRes smooths its amplitude. When the
            band is computed on a cropped grid, a smoothing low-pass is required (it is what
            makes the way back to the full grid exact).
        grid : force the working grid (default: the smallest alias-free grid)
        """
        f_band = getattr(transfer, "f_max", np.inf)
        if grid is None:
            if smooth is None:
                grid = self.shape
            else:
                # energy reaches 2·f_band; its alias 2·Nyq − 2·f_band must lie above the
                # low-pass's stop frequency f_lp: Nyq >= f_band + f_lp / 2.
                grid = self.shape_for(f_band + 0.5 * getattr(smooth, "f_max", np.inf))
        grid = tuple(int(v) for v in grid)
        energy, grid = self.energy(transfer, grid=grid, normalise=normalise)
        if smooth is not None:
            spec = _rfftn(energy)
            del energy
            spec *= self.transfer_values(smooth, grid)
            if grid != self.shape:
                spec = pad_spectrum(spec, grid, self.shape)
                scale = float(np.prod(self.shape)) / float(np.prod(grid))
            else:
                scale = 1.0
            energy = _irfftn(spec, self.shape)
            del spec
            if scale != 1.0:
                energy *= np.float32(scale)
        elif grid != self.shape:
            raise ValueError("a band computed on a cropped grid needs a smoothing low-pass to "
                             "return to the full grid; use energy() to stay on the small grid")
        np.maximum(energy, 0.0, out=energy)
        return np.sqrt(energy, out=energy)

    def sample_points(self, flat_index) -> "SamplePoints":
        """Voxels of the bank's grid at which :meth:`amplitude_at` samples (prepared once)."""
        flat_index = np.asarray(flat_index)
        zyx = np.stack(np.unravel_index(flat_index, self.shape)).astype(np.float32)
        return SamplePoints(flat_index, zyx)

    def amplitude_at(self, transfer, smooth, points, oversample: float = OVERSAMPLE):
        """Smoothed local amplitude of a band at selected voxels of the bank's grid.

        Same quantity as ``amplitude(transfer, smooth=smooth).ravel()[flat_index]``, computed
        without building the full-size volume when the band is low: the smoothed squared
        amplitude is band-limited to the low-pass's stop frequency f_lp, so it is evaluated on a
        grid whose Nyquist is at least ``oversample`` × f_lp (and alias-free for the band, as in
        :meth:`amplitude`) and interpolated trilinearly (periodic) at the requested voxels.
        Trilinear interpolation of a field sampled at twice its highest frequency acts as a
        slight extra smoothing (about 2 % mean deviation from the exact values in the tests);
        mask and noise voxels get the same treatment. Falls back to the exact full-grid path
        when no smaller grid exists.

        ``points``: flat indices, or a :class:`SamplePoints` from :meth:`sample_points` (faster
        when sampling the same voxels many times). Returns float32 values in their order.
        """
        if not isinstance(points, SamplePoints):
            points = self.sample_points(points)
        f_band = getattr(transfer, "f_max", np.inf)
        f_lp = getattr(smooth, "f_max", np.inf)
        grid = self.shape_for(max(f_band + 0.5 * f_lp, oversample * f_lp))
        if grid == self.shape:
            # no smaller sampling grid: the exact full-grid amplitude, its energy computed on
            # the smallest alias-free grid (amplitude's default) and brought back by padding
            return self.amplitude(transfer, smooth=smooth).ravel()[points.flat]
        energy, grid = self.energy(transfer, grid=grid)
        spec = _rfftn(energy)
        spec *= self.transfer_values(smooth, grid)
        energy = _irfftn(spec, grid)
        del spec
        scale = np.array([m / n for m, n in zip(grid, self.shape)], dtype=np.float32)
        out = ndimage.map_coordinates(energy, points.zyx * scale[:, None], order=1,
                                      mode="grid-wrap")
        out = out.astype(np.float32, copy=False)
        np.maximum(out, 0.0, out=out)
        return np.sqrt(out, out=out)


class SamplePoints:
    """Flat indices of voxels and their (z, y, x) coordinates as a float32 (3, n) array."""

    def __init__(self, flat, zyx):
        self.flat = flat
        self.zyx = zyx

    def subset(self, index) -> "SamplePoints":
        """The points at positions ``index`` (an integer array) of this set."""
        return SamplePoints(self.flat[index], self.zyx[:, index])

    def __len__(self):
        return int(self.flat.size)
