"""Simulated micrographs with known bad regions (Level 5 known answers and benchmark).

A micrograph is white noise (σ 1) plus pink noise (amplitude ∝ 1/f, std ``pink``), dark Gaussian
blobs for the particles (σ = box/6, peak ``particle_contrast``), and optionally ice
contamination (dark discs of mean ``ice_contrast``, with a little texture of their own) and a
carbon film (a half-plane of mean ``carbon_mean`` with extra texture: Gaussian-filtered noise of
std ``carbon_texture``). The truth mask marks the discs and the half-plane. Picks are the
particles' centres, placed at random (``n_particles``) with at least a box between them,
anywhere: on ice and on carbon too, as a picker would.
"""
from __future__ import annotations

import numpy as np
import scipy.fft
from scipy import ndimage


def pink_noise(shape, rng) -> np.ndarray:
    """Noise with amplitude ∝ 1/f (f in cycles per image), zero mean, unit std, float32."""
    ny, nx = shape
    ky = np.fft.fftfreq(ny)[:, None] * ny
    kx = np.fft.rfftfreq(nx)[None, :] * nx
    k = np.sqrt(ky ** 2 + kx ** 2)
    k[0, 0] = 1.0
    ft = (rng.standard_normal((ny, nx // 2 + 1)) + 1j * rng.standard_normal((ny, nx // 2 + 1)))
    ft /= k
    ft[0, 0] = 0.0
    out = scipy.fft.irfft2(ft, s=shape).astype(np.float32)
    return out / out.std()


def gaussian_fft(img, sigma) -> np.ndarray:
    """``img`` convolved (periodically) with a unit-sum Gaussian of σ ``sigma`` px, float32."""
    ny, nx = img.shape
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    g = np.exp(-2.0 * (np.pi * sigma) ** 2 * (ky ** 2 + kx ** 2))
    return scipy.fft.irfft2(scipy.fft.rfft2(img) * g, s=img.shape).astype(np.float32)


def place(n, shape, box, rng, margin=None) -> np.ndarray:
    """(k, 2) float (x, y) of up to n random centres at least ``box`` apart, ``margin`` (default
    box/2) from the edges."""
    margin = box / 2 if margin is None else margin
    ny, nx = shape
    pts = []
    for _ in range(50 * n):
        p = rng.uniform([margin, margin], [nx - margin, ny - margin])
        if all((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 >= box ** 2 for q in pts):
            pts.append(p)
            if len(pts) == n:
                break
    return np.array(pts, dtype=np.float64).reshape(-1, 2)


def simulate_micrograph(size=1024, box=48, n_particles=150, ice=(), carbon=None, seed=0,
                        pink=0.3, particle_contrast=1.0, ice_contrast=3.0, carbon_mean=0.6,
                        carbon_texture=0.8):
    """(image float32 (size, size), truth bool (size, size) True = bad, picks (k, 2) x, y).

    ``ice``: [(x, y, radius)] px; ``carbon``: (nx, ny, offset): the half-plane
    nx·x + ny·y > offset (px; (nx, ny) a unit vector) is carbon, darker by ``carbon_mean``."""
    rng = np.random.default_rng(seed)
    shape = (size, size)
    img = rng.standard_normal(shape).astype(np.float32)
    if pink:
        img += pink * pink_noise(shape, rng)
    picks = place(n_particles, shape, box, rng)
    blobs = np.zeros(shape, dtype=np.float32)
    iy, ix = np.clip(np.round(picks[:, 1]).astype(int), 0, size - 1), \
        np.clip(np.round(picks[:, 0]).astype(int), 0, size - 1)
    blobs[iy, ix] = 1.0
    s = box / 6.0
    blobs = gaussian_fft(blobs, s) * (2 * np.pi * s * s)
    img -= particle_contrast * blobs
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    truth = np.zeros(shape, dtype=bool)
    if carbon is not None:
        cnx, cny, off = carbon
        c = (cnx * xx + cny * yy) > off
        tex = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 2.0)
        tex *= carbon_texture / tex.std()
        img[c] += tex[c] - carbon_mean
        truth |= c
    for (cx, cy, r) in ice:
        d = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        img[d] -= ice_contrast
        truth |= d
    return img, truth, picks


def truth_goodness(truth, box, picks) -> np.ndarray:
    """The good fraction of each pick's box × box box in the full-resolution truth mask
    (independent of the kernel's working grid)."""
    good = ndimage.uniform_filter((~truth).astype(np.float64), size=int(box), mode="nearest")
    col = np.clip(np.floor(picks[:, 0]).astype(int), 0, truth.shape[1] - 1)
    row = np.clip(np.floor(picks[:, 1]).astype(int), 0, truth.shape[0] - 1)
    return good[row, col]


def write_mrc(path, img, pixel) -> str:
    import mrcfile

    with mrcfile.new(str(path), overwrite=True) as m:
        m.set_data(np.asarray(img, dtype=np.float32))
        m.voxel_size = pixel
    return str(path)


def write_dataset(folder, micrographs, pixel=1.0, box=48, star_names=None, extra_rows=(),
                  particle_bin=1):
    """Write ``micrographs`` [(image, picks)] (any iterable: one image is held at a time) as
    ``folder/mics/mic_###.mrc`` and their particles (box × box crops around the picks,
    zero-padded at the edges, block-averaged by ``particle_bin``) as a RELION 3.1
    ``folder/particles.star`` + ``particles.mrcs`` with rlnMicrographName (``mics/NAME``, or
    ``star_names[i]``) and rlnCoordinateX/Y in micrograph pixels (RELION's convention; the
    particles' pixel is ``particle_bin`` × ``pixel``). ``extra_rows``: (micrograph name, x, y)
    of particles on micrographs not written. Returns (star path, glob pattern)."""
    import os

    os.makedirs(os.path.join(folder, "mics"), exist_ok=True)
    crops, rows = [], []
    h = box // 2
    for k, (img, picks) in enumerate(micrographs):
        name = f"mic_{k + 1:03d}.mrc"
        write_mrc(os.path.join(folder, "mics", name), img, pixel)
        padded = np.pad(img, h)
        for x, y in picks:
            ix, iy = int(round(x)), int(round(y))
            crop = padded[iy:iy + box, ix:ix + box]
            if particle_bin > 1:
                b2 = box // particle_bin
                crop = crop[:b2 * particle_bin, :b2 * particle_bin].reshape(
                    b2, particle_bin, b2, particle_bin).mean(axis=(1, 3))
            crops.append(crop)
            shown = star_names[k] if star_names else f"mics/{name}"
            rows.append((shown, x, y))
    for name, x, y in extra_rows:
        crops.append(np.random.default_rng(len(crops)).standard_normal(
            (box // particle_bin,) * 2))
        rows.append((name, x, y))
    import mrcfile

    with mrcfile.new(os.path.join(folder, "particles.mrcs"), overwrite=True) as m:
        m.set_data(np.asarray(crops, dtype=np.float32))
        m.set_image_stack()
        m.voxel_size = pixel * particle_bin
    lines = ["data_optics", "", "loop_", "_rlnOpticsGroupName #1", "_rlnOpticsGroup #2",
             "_rlnImagePixelSize #3", "_rlnImageSize #4", "_rlnImageDimensionality #5",
             "_rlnVoltage #6", "_rlnSphericalAberration #7", "_rlnAmplitudeContrast #8",
             f"opticsGroup1 1 {pixel * particle_bin:.6f} {box // particle_bin:d} 2 300.0 2.7 "
             f"0.1", "", "",
             "data_particles", "", "loop_", "_rlnImageName #1", "_rlnMicrographName #2",
             "_rlnCoordinateX #3", "_rlnCoordinateY #4", "_rlnOpticsGroup #5"]
    for i, (name, x, y) in enumerate(rows):
        lines.append(f"{i + 1:06d}@particles.mrcs {name} {x:.2f} {y:.2f} 1")
    star = os.path.join(folder, "particles.star")
    with open(star, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return star, os.path.join(folder, "mics", "*.mrc")
