"""Map simulator for known-answer tests: density from a real atomic model with known properties.

The model is read with gemmi; each non-hydrogen atom is spread onto the grid by trilinear
weights proportional to its atomic number, then the map is shaped in Fourier space:

* ``bfactor`` (Å², standard crystallographic sign): amplitudes multiplied by exp(-B s²/4), with s
  in 1/Å. cryovalid reports B with the reference's sign, so it should measure about -B plus the
  (constant) decay of the deposition itself.
* ``resolution`` (Å): a smooth low-pass (raised cosine from 0.9/d to 1/d), zero beyond 1/d.
* ``noise``: white Gaussian noise, given as a fraction of the signal's standard deviation.

Everything is float32 and vectorised; a 100³ map takes well under a second.
"""
from __future__ import annotations

import os

import gemmi
import numpy as np
import scipy.fft

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
EXAMPLE_MODEL = os.path.join(REPO, "examples", "5me2.pdb.gz")
EXAMPLE_MAP = os.path.join(REPO, "examples", "emd_3488.map.gz")
SHARED_REAL = os.path.abspath(os.path.join(REPO, "..", "shared", "data", "real"))


def load_atoms(path: str = EXAMPLE_MODEL):
    """(xyz (n, 3) float64 in Å, weight (n,) float32 = atomic number) of non-H, non-water atoms."""
    st = gemmi.read_structure(path)
    st.remove_hydrogens()
    st.remove_waters()
    xyz, w = [], []
    for ch in st[0]:
        for res in ch:
            for at in res:
                xyz.append(at.pos.tolist())
                w.append(at.element.atomic_number)
    return np.array(xyz, dtype=np.float64), np.array(w, dtype=np.float32)


def box_around(xyz, voxel_size: float, padding: float = 15.0, cubic: bool = True, shape=None):
    """(shape (z, y, x), origin (x, y, z)) of a box holding the atoms with ``padding`` Å around,
    the model centred. ``shape`` forces a box size."""
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    centre = (lo + hi) / 2
    if shape is None:
        extent = (hi - lo) + 2 * padding
        n_xyz = np.ceil(extent / voxel_size).astype(int)
        n_xyz += n_xyz % 2
        if cubic:
            n_xyz[:] = n_xyz.max()
        shape = (int(n_xyz[2]), int(n_xyz[1]), int(n_xyz[0]))
    n_xyz = np.array(shape[::-1])
    origin = centre - (n_xyz // 2) * voxel_size
    return tuple(shape), tuple(float(v) for v in origin)


def deposit(xyz, weights, shape, voxel_size, origin) -> np.ndarray:
    """Trilinear splatting of point weights onto a (z, y, x) grid."""
    grid = np.zeros(shape, dtype=np.float32)
    ijk = (np.asarray(xyz) - np.asarray(origin)) / voxel_size  # x, y, z fractional indices
    zyx = ijk[:, ::-1]
    base = np.floor(zyx).astype(int)
    frac = (zyx - base).astype(np.float32)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                idx = base + np.array([dz, dy, dx])
                wz = frac[:, 0] if dz else 1 - frac[:, 0]
                wy = frac[:, 1] if dy else 1 - frac[:, 1]
                wx = frac[:, 2] if dx else 1 - frac[:, 2]
                ok = np.all((idx >= 0) & (idx < np.array(shape)), axis=1)
                np.add.at(grid, (idx[ok, 0], idx[ok, 1], idx[ok, 2]), (weights * wz * wy * wx)[ok])
    return grid


def freq2(shape, voxel_size):
    nz, ny, nx = shape
    sz = np.fft.fftfreq(nz, voxel_size)[:, None, None]
    sy = np.fft.fftfreq(ny, voxel_size)[None, :, None]
    sx = np.fft.rfftfreq(nx, voxel_size)[None, None, :]
    return (sz * sz + sy * sy + sx * sx).astype(np.float32)


def lowpass_filter(s2, resolution):
    """Raised-cosine low-pass: 1 below 0.9/d, 0 above 1/d."""
    s = np.sqrt(s2)
    f_hi = 1.0 / resolution
    f_lo = 0.9 * f_hi
    t = np.clip((s - f_lo) / (f_hi - f_lo), 0, 1)
    return (0.5 * (1 + np.cos(np.pi * t))).astype(np.float32)


def shape_map(grid, voxel_size, bfactor=0.0, resolution=None):
    """Apply a B-factor (Å², standard sign) and a low-pass to a density grid."""
    ft = scipy.fft.rfftn(grid)
    s2 = freq2(grid.shape, voxel_size)
    filt = np.exp(-bfactor * s2 / 4.0).astype(np.float32)
    if resolution is not None:
        filt *= lowpass_filter(s2, resolution)
    return scipy.fft.irfftn(ft * filt, s=grid.shape).astype(np.float32)


def simulate(path=EXAMPLE_MODEL, voxel_size=1.0, bfactor=0.0, resolution=None, noise=0.0,
             seed=0, padding=15.0, shape=None, cubic=True, atoms=None):
    """Simulate a map from a model. Returns (data (z, y, x) float32, voxel_size, origin xyz)."""
    xyz, w = atoms if atoms is not None else load_atoms(path)
    shape, origin = box_around(xyz, voxel_size, padding=padding, cubic=cubic, shape=shape)
    grid = deposit(xyz, w, shape, voxel_size, origin)
    vol = shape_map(grid, voxel_size, bfactor=bfactor, resolution=resolution)
    if noise > 0:
        rng = np.random.default_rng(seed)
        vol += rng.normal(0.0, noise * float(vol.std()), size=vol.shape).astype(np.float32)
    return vol, voxel_size, origin


SMALL_BOX = 72  # small_example: 1.46 Å for the example's 100 voxels of 1.05 Å


def small_example(folder, box: int = SMALL_BOX):
    """The example map Fourier-cropped to box³ (the same physical box, so its model still fits;
    Nyquist 2.92 Å for 72, under the entry's 3.2 Å), written as ``example_small.mrc`` in
    ``folder``: (path, voxel size Å). A report on it takes about a third of the 100³ map's
    time, for the tests that need a real map but not its full sampling."""
    from cryovalid.io.maps import read_map, write_map
    from cryovalid.kernels import fourier
    from cryovalid.kernels.filterbank import fourier_resample

    m = read_map(EXAMPLE_MAP)
    voxel = round(m.voxel_size * m.shape[0] / box, 4)
    path = os.path.join(str(folder), "example_small.mrc")
    write_map(path, fourier_resample(fourier.rfft(m.data), m.shape, (box,) * 3), voxel,
              m.origin)
    return path, voxel


def write_mrc(path, data, voxel_size, origin=(0.0, 0.0, 0.0)):
    from cryovalid.io.maps import write_map

    write_map(str(path), data, voxel_size, origin)
    return str(path)


# ---- half maps with a known FSC ----------------------------------------------------------
# The two halves are signal + independent noise_i. The noise is Gaussian and shaped per Fourier
# coefficient so that the signal-to-noise power ratio at frequency s is
#     SNR(s) = SNR_d · exp(-(k/2)·((s·d)² - 1)),   SNR_d = 0.143/0.857,
# floored at ``floor``. The expected FSC per shell is S/(S+N) = SNR/(1+SNR), so the true FSC
# crosses 0.143 exactly at s = 1/d; k ("steepness") sets how fast it falls (k = 16 takes it from
# 0.9 at 0.71/d to 0.143 at 1/d and 0.03 at 1.1/d, a typical shape).
SNR_AT_GOLD = 0.143 / (1.0 - 0.143)


def half_map_snr(s, resolution, steepness=16.0, floor=1e-3):
    """Designed signal-to-noise power ratio at frequency s (1/Å)."""
    x2 = (np.asarray(s, dtype=np.float64) * resolution) ** 2
    return np.maximum(SNR_AT_GOLD * np.exp(-0.5 * steepness * (x2 - 1.0)), floor)


def half_map_fsc(s, resolution, steepness=16.0, floor=1e-3):
    """Expected FSC of :func:`simulate_half_maps` at frequency s (1/Å)."""
    snr = half_map_snr(s, resolution, steepness, floor)
    return snr / (1.0 + snr)


def true_crossing(curve, threshold, lo, hi, iters=100):
    """Frequency s in [lo, hi] where the decreasing ``curve(s)`` meets ``threshold(s)``
    (bisection; ``threshold`` may be a number or a function of s)."""
    thr = threshold if callable(threshold) else (lambda s: threshold)
    f = lambda s: curve(s) - thr(s)  # noqa: E731
    if f(lo) < 0 or f(hi) > 0:
        return None
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _shell_signal_power(signal, voxel_size):
    """(|s| per rfft coefficient (1/Å), the signal's mean power in its 1-voxel shell, per
    coefficient): what the half-map simulators shape their noise by."""
    shape = signal.shape
    ft = scipy.fft.rfftn(signal)
    s = np.sqrt(freq2(shape, voxel_size))
    shell = np.rint(s * max(shape) * voxel_size).astype(np.int64)
    wx = np.full(shape[2] // 2 + 1, 2.0)
    wx[0] = 1.0
    if shape[2] % 2 == 0:
        wx[-1] = 1.0
    w = np.broadcast_to(wx, ft.shape)
    power = (ft.real.astype(np.float64) ** 2 + ft.imag.astype(np.float64) ** 2)
    s_mean = (np.bincount(shell.ravel(), (power * w).ravel())
              / np.maximum(np.bincount(shell.ravel(), w.ravel()), 1e-30))
    return s, s_mean[shell]


def _noisy_halves(signal, noise_power, seed):
    """(half1, half2): ``signal`` + two independent Gaussian noises of the given power per
    rfft coefficient (same random stream for the same seed)."""
    shape = signal.shape
    scale = np.sqrt(noise_power / float(np.prod(shape))).astype(np.float32)
    rng = np.random.default_rng(seed)
    halves = []
    for _ in range(2):
        white = rng.standard_normal(shape, dtype=np.float32)
        noise = scipy.fft.irfftn(scipy.fft.rfftn(white) * scale, s=shape).astype(np.float32)
        halves.append(signal + noise)
    return halves[0], halves[1]


def simulate_half_maps(resolution, voxel_size=1.0, shape=None, cubic=True, seed=0,
                       steepness=16.0, floor=1e-3, padding=10.0, atoms=None):
    """Two half maps whose expected FSC is :func:`half_map_fsc` (crossing 0.143 at
    ``resolution`` Å). Returns (half1, half2, signal, voxel_size, origin)."""
    signal, voxel_size, origin = simulate(voxel_size=voxel_size, padding=padding, shape=shape,
                                          cubic=cubic, atoms=atoms)
    s, power = _shell_signal_power(signal, voxel_size)
    h1, h2 = _noisy_halves(signal, power / half_map_snr(s, resolution, steepness, floor), seed)
    return h1, h2, signal, voxel_size, origin


def blend_halves(first, second, axis: int = 2, width: float = 1.5):
    """One map whose lower half (along ``axis``, index < n/2) comes from ``first`` and upper half
    from ``second``, joined by a logistic ramp of ``width`` voxels (no sharp seam)."""
    n = first.shape[axis]
    t = (np.arange(n) - n / 2.0) / width
    w = (1.0 / (1.0 + np.exp(-t))).astype(np.float32)
    shape = [1, 1, 1]
    shape[axis] = n
    w = w.reshape(shape)
    return (first * (1.0 - w) + second * w).astype(np.float32)


def add_noise(vol, noise, seed=0):
    """White Gaussian noise of ``noise`` × std(vol), added in place; returns vol."""
    rng = np.random.default_rng(seed)
    vol += rng.normal(0.0, noise * float(vol.std()), size=vol.shape).astype(np.float32)
    return vol


def threshold_for_volume(vol, volume_A3, voxel_size):
    """The density level above which ``volume_A3`` Å³ of the map lie."""
    n = int(round(volume_A3 / voxel_size ** 3))
    flat = np.sort(np.asarray(vol).ravel())[::-1]
    return float(flat[min(max(n, 1), flat.size - 1)])


def simulate_with_snr(resolution, bfactor=0.0, sharpen=0.0, voxel_size=1.0, seed=0,
                      padding=8.0, snr_at_resolution=2.0 * SNR_AT_GOLD, shape=None, atoms=None):
    """A map as a reconstruction delivers it: the model's density blurred by ``bfactor`` (Å²),
    plus white Gaussian noise whose power equals the signal's mean power at 1/``resolution``
    divided by ``snr_at_resolution`` (default 1/3: the full-map SNR where the half-map FSC is
    0.143), low-passed at ``resolution`` (raised cosine, zero beyond 1/d) and then sharpened
    by ``sharpen`` Å² (amplitudes × exp(+sharpen·s²/4), signal and noise alike, as a B-factor
    sharpening does). Returns (data (z, y, x) float32, voxel_size, origin xyz)."""
    clean, voxel_size, origin = simulate(voxel_size=voxel_size, padding=padding, shape=shape,
                                         atoms=atoms)
    shape = clean.shape
    ft = scipy.fft.rfftn(clean)
    s2 = freq2(shape, voxel_size)
    ft *= np.exp(-bfactor * s2 / 4.0).astype(np.float32)
    s = np.sqrt(s2)
    shell = np.abs(s * resolution - 1.0) < 0.05  # coefficients within 5 % of 1/d
    p_signal = float(np.mean(np.abs(ft[shell]) ** 2))
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(shape, dtype=np.float32)
    noise_ft = scipy.fft.rfftn(white)  # mean power per coefficient = number of voxels
    noise_ft *= np.float32(np.sqrt(p_signal / snr_at_resolution / float(np.prod(shape))))
    ft = (ft + noise_ft) * lowpass_filter(s2, resolution)
    ft *= np.exp(sharpen * s2 / 4.0).astype(np.float32)
    return scipy.fft.irfftn(ft, s=shape).astype(np.float32), voxel_size, origin


def values_at_atoms(vol, xyz, voxel_size, origin):
    """Map values (trilinear) at atom positions xyz (n, 3) Å."""
    from scipy import ndimage

    idx = ((np.asarray(xyz) - np.asarray(origin)) / voxel_size)[:, ::-1].T
    return ndimage.map_coordinates(vol, idx, order=1)


# ---- 1.c / A.b local FSC: half maps of a signal with a realistic fall-off ---------------------
def local_fsc_noisy_halves(signal, voxel_size, resolution, seed=0, steepness=16.0, floor=1e-3):
    """(half1, half2) = ``signal`` + independent noise shaped per Fourier shell exactly as in
    :func:`simulate_half_maps` (expected FSC :func:`half_map_fsc`, 0.143 at ``resolution`` Å),
    for any given signal (e.g. one with a B-factor fall-off, whose low frequencies dominate the
    high-frequency noise as in a real reconstruction)."""
    s, power = _shell_signal_power(signal, voxel_size)
    return _noisy_halves(signal, power / half_map_snr(s, resolution, steepness, floor), seed)


# ---- anisotropic half maps (1.g FSO, 1.h 3D FSC) -------------------------------------------
def directional_anisotropic_radius(sz, sy, sx, resolution_xyz):
    """The ellipsoidal "radius" ρ = sqrt((sx·dx)² + (sy·dy)² + (sz·dz)²) of frequencies
    (1/Å) for the resolutions (dx, dy, dz) Å along x, y, z: ρ = 1 on the ellipsoid whose
    semi-axes are 1/dx, 1/dy, 1/dz. Along a direction u the ellipsoid lies at frequency
    1/sqrt(Σ (u_i·d_i)²)."""
    dx, dy, dz = resolution_xyz
    return np.sqrt((sx * dx) ** 2 + (sy * dy) ** 2 + (sz * dz) ** 2)


def directional_resolution_truth(u_xyz, resolution_xyz):
    """Resolution (Å) at which the designed FSC of :func:`directional_anisotropic_half_maps`
    crosses 0.143 along the unit vectors ``u_xyz`` ((n, 3) x, y, z)."""
    u = np.atleast_2d(np.asarray(u_xyz, dtype=np.float64))
    return np.sqrt(((u * np.asarray(resolution_xyz, dtype=np.float64)) ** 2).sum(axis=1))


def directional_anisotropic_half_maps(resolution_xyz=(3.0, 3.0, 6.0), voxel_size=1.0,
                                      shape=None, cubic=True, seed=0, steepness=16.0,
                                      floor=1e-3, padding=10.0, atoms=None):
    """Two half maps of the 5ME2 model whose signal-to-noise ratio is cut by an ellipsoid:
    the noise is shaped per coefficient as in :func:`simulate_half_maps`, but with SNR =
    half_map_snr(ρ, 1) where ρ is :func:`directional_anisotropic_radius`, so the expected FSC
    along direction u crosses 0.143 at 1/sqrt(Σ (u_i·d_i)²) (``resolution_xyz`` = (dx, dy, dz)
    Å along x, y, z: the directional resolution is dx along x, dz along z, and in between on
    the ellipsoid). Isotropic when dx = dy = dz (then equal to simulate_half_maps(d)).
    Returns (half1, half2, signal, voxel_size, origin)."""
    signal, voxel_size, origin = simulate(voxel_size=voxel_size, padding=padding, shape=shape,
                                          cubic=cubic, atoms=atoms)
    _, power = _shell_signal_power(signal, voxel_size)
    nz, ny, nx = signal.shape
    sz = np.fft.fftfreq(nz, voxel_size)[:, None, None]
    sy = np.fft.fftfreq(ny, voxel_size)[None, :, None]
    sx = np.fft.rfftfreq(nx, voxel_size)[None, None, :]
    rho = directional_anisotropic_radius(sz, sy, sx, resolution_xyz)
    h1, h2 = _noisy_halves(signal, power / half_map_snr(rho, 1.0, steepness, floor), seed)
    return h1, h2, signal, voxel_size, origin


def simulate_halves_monodir(res_xy=3.0, res_z=6.0, voxel_size=1.0, shape=None, cubic=True,
                            seed=0, noise_resolution=2.2, steepness=16.0, padding=10.0):
    """Half maps (for 1.f MonoDir) whose signal is band-limited by an ellipsoid in Fourier
    space: resolution ``res_xy`` Å along x and y, ``res_z`` Å along z (raised-cosine edge from
    0.9 to 1 of the ellipsoid's radius, zero beyond; res_z = res_xy gives isotropic halves).
    Each half adds independent noise shaped per shell as :func:`simulate_half_maps` does for
    ``noise_resolution`` (computed from the unfiltered signal: the designed SNR stays high
    inside the ellipsoid, while beyond it the halves hold noise only). Returns (half1, half2,
    filtered signal, voxel_size, origin)."""
    signal, voxel_size, origin = simulate(voxel_size=voxel_size, padding=padding, shape=shape,
                                          cubic=cubic)
    shape = signal.shape
    ft = scipy.fft.rfftn(signal)
    nz, ny, nx = shape
    sz = np.fft.fftfreq(nz, voxel_size)[:, None, None]
    sy = np.fft.fftfreq(ny, voxel_size)[None, :, None]
    sx = np.fft.rfftfreq(nx, voxel_size)[None, None, :]
    rho = np.sqrt((sx * res_xy) ** 2 + (sy * res_xy) ** 2 + (sz * res_z) ** 2)
    t = np.clip((rho - 0.9) / 0.1, 0.0, 1.0)
    ellipsoid = (0.5 * (1 + np.cos(np.pi * t))).astype(np.float32)
    s = np.sqrt(freq2(shape, voxel_size))
    shell = np.rint(s * max(shape) * voxel_size).astype(np.int64)
    wx = np.full(nx // 2 + 1, 2.0)
    wx[0] = 1.0
    if nx % 2 == 0:
        wx[-1] = 1.0
    w = np.broadcast_to(wx, ft.shape)
    power = ft.real.astype(np.float64) ** 2 + ft.imag.astype(np.float64) ** 2
    s_mean = (np.bincount(shell.ravel(), (power * w).ravel())
              / np.maximum(np.bincount(shell.ravel(), w.ravel()), 1e-30))
    noise_power = s_mean[shell] / half_map_snr(s, noise_resolution, steepness)
    scale = np.sqrt(noise_power / float(np.prod(shape))).astype(np.float32)
    filtered = scipy.fft.irfftn(ft * ellipsoid, s=shape).astype(np.float32)
    rng = np.random.default_rng(seed)
    halves = []
    for _ in range(2):
        white = rng.standard_normal(shape, dtype=np.float32)
        noise = scipy.fft.irfftn(scipy.fft.rfftn(white) * scale, s=shape).astype(np.float32)
        halves.append(filtered + noise)
    return halves[0], halves[1], filtered, voxel_size, origin
