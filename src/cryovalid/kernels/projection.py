"""Projections of a 3-D map by the central-slice theorem, Euler angles and orientation sampling.

Euler convention (RELION and Xmipp, ZYZ, degrees): the rotation matrix is
``A(rot, tilt, psi) = Rz(psi)·Ry(tilt)·Rz(rot)`` with ``Rz(a) = [[c, s, 0], [-s, c, 0],
[0, 0, 1]]`` and ``Ry(b) = [[c, 0, -s], [0, 1, 0], [s, 0, c]]`` (RELION ``Euler_angles2matrix``).
The projection image is ``P(x', y') = Σ_z' V(Aᵀ·(x', y', z'))``: for (0, 0, 0) the sum of the
map along z; its 2-D Fourier transform is the central section ``P̂(u, v) = V̂(Aᵀ·(u, v, 0))``
(Bracewell's central-slice theorem; Penczek 2010, Methods Enzymol. 482:1-33). A change of psi
only turns the image: ``P_psi(x) = P_0(R(psi)·x)`` with ``R`` the standard counter-clockwise
rotation of (x, y), which is what :func:`cryovalid.kernels.align2d.rotate` does.

Map axes: the array is (z, y, x); image arrays are (y, x); pixel b//2 is the centre (the
rotation centre and the origin of the Fourier transforms). Pixel sizes are those of the map.

The map is padded to a cube (side ``B`` = its largest edge) and then ``pad`` times (2 by default)
with zeros before one 3-D FFT; sections are interpolated trilinearly on that finer Fourier grid
(the padding is what makes trilinear interpolation accurate: Penczek 2004, Ultramicroscopy 99,
no B-splines needed) and inverted with a batched irfft2. ``max_freq`` (digital frequency, 0.5 =
Nyquist) zeroes the section beyond it: the reference's gallery uses 0.25 (Xmipp
``angular_project_library --max_freq``).

Orientation sampling: projection directions (rot, tilt) on rings of constant tilt every
``step`` degrees, ``round(range·sin(tilt)/step)`` directions per ring (about 1650 for c1 at 5°),
over the asymmetric unit of the point group: c1 the whole sphere, cN rot in [0, 360/N), dN rot
in [0, 360/N) and tilt in [0, 90]. t, o and i fall back to the c1 sphere (correct, only slower).
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from cryovalid.kernels import fourier

PAD = 2
CHUNK = 256  # projections per batch


def euler_matrix(eulers) -> np.ndarray:
    """(..., 3, 3) rotation matrices of (..., 3) Euler angles (rot, tilt, psi) in degrees."""
    e = np.radians(np.asarray(eulers, dtype=np.float64))
    ca, sa = np.cos(e[..., 0]), np.sin(e[..., 0])
    cb, sb = np.cos(e[..., 1]), np.sin(e[..., 1])
    cg, sg = np.cos(e[..., 2]), np.sin(e[..., 2])
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    a = np.empty(e.shape[:-1] + (3, 3))
    a[..., 0, 0] = cg * cc - sg * sa
    a[..., 0, 1] = cg * cs + sg * ca
    a[..., 0, 2] = -cg * sb
    a[..., 1, 0] = -sg * cc - cg * sa
    a[..., 1, 1] = -sg * cs + cg * ca
    a[..., 1, 2] = sg * sb
    a[..., 2, 0] = sc
    a[..., 2, 1] = ss
    a[..., 2, 2] = cb
    return a


def matrix_euler(a) -> np.ndarray:
    """(..., 3) Euler angles (degrees) of (..., 3, 3) rotation matrices (inverse of
    :func:`euler_matrix`; tilt in [0, 180])."""
    a = np.asarray(a, dtype=np.float64)
    tilt = np.degrees(np.arccos(np.clip(a[..., 2, 2], -1, 1)))
    rot = np.degrees(np.arctan2(a[..., 2, 1], a[..., 2, 0]))
    psi = np.degrees(np.arctan2(a[..., 1, 2], -a[..., 0, 2]))
    pole = np.abs(np.sin(np.radians(tilt))) < 1e-6  # tilt 0 or 180: rot + psi only
    if np.any(pole):
        # A = Rz(psi)·Ry(0 or 180)·Rz(rot): put everything in psi, rot = 0
        sgn = np.where(a[..., 2, 2] > 0, 1.0, -1.0)
        psi_pole = np.degrees(np.arctan2(a[..., 0, 1], a[..., 0, 0] * sgn))
        psi = np.where(pole, psi_pole, psi)
        rot = np.where(pole, 0.0, rot)
    return np.stack([rot, tilt, psi], axis=-1)


def symmetry_matrices(symmetry: str) -> np.ndarray:
    """(k, 3, 3) rotations of the point group, identity first (cN about z; dN also the 2-folds
    about x; t, o, i in RELION's settings): :func:`cryovalid.kernels.symmetry.matrices`."""
    from cryovalid.kernels.symmetry import matrices  # symmetry imports this module

    return matrices(symmetry)


def angular_distance(e1, e2, symmetry: str = "c1") -> np.ndarray:
    """Angle (degrees) of the rotation between two orientations (..., 3), the smallest over the
    point group's equivalent orientations (A·S for S in the group)."""
    a1, a2 = euler_matrix(e1), euler_matrix(e2)
    best = None
    for s in symmetry_matrices(symmetry):
        r = np.einsum("...ij,...kj->...ik", a1 @ s, a2)
        tr = np.clip((np.trace(r, axis1=-2, axis2=-1) - 1) / 2, -1, 1)
        ang = np.degrees(np.arccos(tr))
        best = ang if best is None else np.minimum(best, ang)
    return best


def asymmetric_unit(symmetry: str) -> tuple:
    """(rot range, tilt max) in degrees of the sampled directions and a note ('' when exact)."""
    sym = symmetry.lower()
    if sym[0] == "c" and len(sym) > 1:
        return 360.0 / int(sym[1:]), 180.0, ""
    if sym[0] == "d" and len(sym) > 1:
        return 360.0 / int(sym[1:]), 90.0, ""
    return 360.0, 180.0, (f"the orientations of point group {sym.upper()} are sampled over the "
                          f"whole sphere (as C1): exact, but slower")


def orientations(symmetry: str = "c1", step: float = 5.0):
    """((m, 3) Euler angles (rot, tilt, psi = 0) in degrees, note): projection directions every
    ``step`` degrees over the asymmetric unit (module docstring)."""
    rot_range, tilt_max, note = asymmetric_unit(symmetry)
    n_tilt = int(round(tilt_max / step))
    out = []
    for i in range(n_tilt + 1):
        tilt = tilt_max * i / n_tilt
        n_rot = max(1, int(round(rot_range * np.sin(np.radians(tilt)) / step)))
        rot = rot_range * (np.arange(n_rot) + 0.5 * (i % 2)) / n_rot
        out.append(np.stack([rot, np.full(n_rot, tilt), np.zeros(n_rot)], axis=1))
    return np.concatenate(out).astype(np.float64), note


def cube(vol: np.ndarray) -> np.ndarray:
    """The map zero-padded to a cube (side = its largest edge), voxel n//2 of each axis on
    B//2."""
    vol = np.asarray(vol, dtype=np.float32)
    b = max(vol.shape)
    if vol.shape == (b, b, b):
        return vol
    out = np.zeros((b, b, b), dtype=np.float32)
    sl = tuple(slice(b // 2 - n // 2, b // 2 - n // 2 + n) for n in vol.shape)
    out[sl] = vol
    return out


class Projector:
    """Projections of one map by central sections (module docstring): build once (one 3-D FFT
    of the padded cube), then :meth:`project` any batch of orientations."""

    def __init__(self, vol: np.ndarray, pad: int = PAD):
        c = cube(vol)
        self.box = c.shape[0]
        self.pad = int(pad)
        p = self.pad * self.box
        big = np.zeros((p, p, p), dtype=np.float32)
        o = p // 2 - self.box // 2
        big[o:o + self.box, o:o + self.box, o:o + self.box] = c
        big = np.fft.ifftshift(big)  # voxel p//2 (the map's centre) on index 0
        self.size = p
        ft = scipy.fft.rfftn(big, workers=fourier.workers()).astype(np.complex64)
        del big
        # one more plane in z and y (copies of plane 0, the grid is periodic) and one zero
        # column past Nyquist in x, so that the 8 corners of any sample are plain offsets
        h = ft.shape[2]
        self._ftp = np.zeros((p + 1, p + 1, h + 1), dtype=np.complex64)
        self._ftp[:p, :p, :h] = ft
        self._ftp[p, :p, :h] = ft[0]
        self._ftp[:, p, :] = self._ftp[:, 0, :]
        self._half = h
        self._flat = self._ftp.reshape(-1)
        b = self.box
        u = np.fft.fftfreq(b) * b  # integer frequencies of the image along y
        v = np.fft.rfftfreq(b) * b  # along x
        self._v, self._u = np.meshgrid(v, u)  # (b, b//2+1)

    def project(self, eulers, max_freq: float = 0.5) -> np.ndarray:
        """(m, B, B) float32 projections for (m, 3) Euler angles (degrees)."""
        eulers = np.atleast_2d(np.asarray(eulers, dtype=np.float64))
        b = self.box
        radius = np.hypot(self._u, self._v)
        inside = radius <= max_freq * b + 1e-6
        uu, vv = self._u[inside], self._v[inside]  # (q,) frequencies kept
        out = np.empty((len(eulers), b, b), dtype=np.float32)
        for lo in range(0, len(eulers), CHUNK):
            a = euler_matrix(eulers[lo:lo + CHUNK]).astype(np.float32)  # (c, 3, 3)
            # 3-D frequency (x, y, z) of image frequency (v along x, u along y), padded units
            k = self.pad * (vv[None, :, None] * a[:, None, 0, :] + uu[None, :, None] * a[:, None, 1, :])
            vals = self._sample(k)  # (c, q) complex64
            sec = np.zeros((len(a), b, b // 2 + 1), dtype=np.complex64)
            sec[:, inside] = vals
            out[lo:lo + CHUNK] = scipy.fft.irfft2(sec, s=(b, b), workers=fourier.workers())
        # the FFT origin (index 0) is pixel b//2 of the image
        return np.fft.fftshift(out, axes=(-2, -1)).astype(np.float32, copy=False)

    def _sample(self, k: np.ndarray) -> np.ndarray:
        """Trilinear interpolation of the padded rfft at (..., 3) frequencies (x, y, z) in
        padded-grid units, using V̂(-k) = conj V̂(k) for kx < 0."""
        neg = k[..., 0] < 0
        k = np.where(neg[..., None], -k, k).astype(np.float32)
        p = self.size
        f = np.floor(k)
        w = k - f
        i0 = f.astype(np.int64)
        ix = np.minimum(i0[..., 0], self._half - 1)
        iy = i0[..., 1] % p
        iz = i0[..., 2] % p
        sy, sz = self._half + 1, (self._half + 1) * (p + 1)
        base = iz * sz + iy * sy + ix
        wx, wy, wz = w[..., 0], w[..., 1], w[..., 2]
        acc = np.zeros(k.shape[:-1], dtype=np.complex64)
        for dz, fz in ((0, 1 - wz), (sz, wz)):
            for dy, fy in ((0, 1 - wy), (sy, wy)):
                fzy = fz * fy
                acc += (fzy * (1 - wx)) * np.take(self._flat, base + (dz + dy))
                acc += (fzy * wx) * np.take(self._flat, base + (dz + dy + 1))
        return np.where(neg, np.conj(acc), acc)


def neighbours(eulers, radius_deg: float) -> np.ndarray:
    """(m, k) indices of the directions within ``radius_deg`` of each direction (itself
    included; rows padded with their own index), from the projection directions (third row of
    the Euler matrix)."""
    d = euler_matrix(eulers)[:, 2, :]
    near = d @ d.T >= np.cos(np.radians(radius_deg))
    k = int(near.sum(axis=1).max())
    idx = np.argsort(~near, axis=1, kind="stable")[:, :k]  # the near ones first
    ok = np.take_along_axis(near, idx, axis=1)
    return np.where(ok, idx, np.arange(len(d))[:, None])
