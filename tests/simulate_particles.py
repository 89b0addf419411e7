"""Particle and 2D-class simulator for the Level 2 known-answer tests.

A map (e.g. ``simulate.simulate`` of the 5ME2 haemoglobin model) is projected by the central-
section projector of ``cryovalid.kernels.projection`` (RELION/Xmipp ZYZ Euler angles; the
projector's convention is itself checked against real-space sums in test_reprojection.py) at
known orientations and shifts:

* ``n_classes`` class orientations drawn uniformly on SO(3) (rot, psi uniform, cos(tilt)
  uniform); each class has ``per_class`` particles whose angles are the class's plus Gaussian
  jitter of ``jitter_deg`` and whose shift is the class's plus Gaussian jitter of
  ``shift_jitter`` px (the class's shift is uniform within ±``max_shift`` px);
* optional CTF per particle (defocus uniform in 1–3 µm, no astigmatism, 300 kV, Cs 2.7 mm,
  amplitude contrast Q0 = 0.1; phase contrast convention −sin(χ) − Q0·cos... written as
  ``-(√(1-Q0²)·sin χ + Q0·cos χ)``, χ = π λ Δf s² − π/2 Cs λ³ s⁴);
* white Gaussian noise with variance var(signal in the circle of radius box/2)/``snr``.

Class averages: the plain mean of each class's particles (their true-orientation group, no
alignment), after phase flipping each particle by sign(CTF) when a CTF was applied (so a class
is the projection times the mean |CTF|, not CTF-corrected further).

Files: :func:`write_relion` writes a RELION 3.1 STAR file (``data_optics`` and
``data_particles`` tables, written as text: ``starfile`` is not a dependency) and the MRCS stack
it points to; :func:`write_stack` writes an MRC image stack (ISPG 0, MZ = 1).
RELION's ``rlnOriginX/YAngst`` is written as minus our shift (the content of the image is moved
by +t, RELION stores the translation that re-centres it).
"""
from __future__ import annotations

import os

import mrcfile
import numpy as np
import scipy.fft

from cryovalid.kernels.align2d import circular_mask, shift
from cryovalid.kernels.projection import Projector


def electron_wavelength(kv: float) -> float:
    """Relativistic electron wavelength in Å for an accelerating voltage in kV."""
    v = kv * 1e3
    return 12.2643247 / np.sqrt(v * (1 + 0.978466e-6 * v))


def ctf_2d(box: int, pixel: float, defocus_um, kv=300.0, cs_mm=2.7, q0=0.1,
           phase_deg=0.0) -> np.ndarray:
    """(k, box, box//2+1) CTF on the rfft2 grid for each defocus (µm, underfocus positive),
    with a phase plate's phase shift ``phase_deg`` added to χ."""
    lam = electron_wavelength(kv)
    ky = np.fft.fftfreq(box, pixel)[:, None]
    kx = np.fft.rfftfreq(box, pixel)[None, :]
    s2 = kx * kx + ky * ky
    df = np.atleast_1d(np.asarray(defocus_um, dtype=np.float64))[:, None, None] * 1e4  # Å
    cs = cs_mm * 1e7
    chi = np.pi * lam * df * s2 - 0.5 * np.pi * cs * lam ** 3 * s2 * s2 + np.radians(phase_deg)
    return (-(np.sqrt(1 - q0 * q0) * np.sin(chi) + q0 * np.cos(chi))).astype(np.float32)


def random_eulers(n: int, rng) -> np.ndarray:
    """(n, 3) Euler angles (degrees) of rotations uniform on SO(3)."""
    rot = rng.uniform(0, 360, n)
    tilt = np.degrees(np.arccos(rng.uniform(-1, 1, n)))
    psi = rng.uniform(0, 360, n)
    return np.stack([rot, tilt, psi], axis=1)


def simulate_particles(vol, voxel_size, n_classes=20, per_class=40, snr=0.1, ctf=False,
                       jitter_deg=1.0, max_shift=3.0, shift_jitter=0.5, seed=0,
                       phase_shift_deg=None):
    """Particles and class averages of ``vol`` (module docstring). Returns a dict with
    ``particles`` (N, b, b), ``eulers`` (N, 3), ``shifts`` (N, 2) px, ``defocus_um`` (N,) or
    None, ``class_id`` (N,), ``classes`` (K, b, b), ``class_eulers`` (K, 3), ``class_shifts``
    (K, 2), ``pixel`` and ``phase_shift_deg`` (a phase plate's shift of the CTF, degrees, or
    None: no phase plate; the STAR file then has no rlnPhaseShift)."""
    rng = np.random.default_rng(seed)
    pr = Projector(vol)
    b = pr.box
    ce = random_eulers(n_classes, rng)
    cs = rng.uniform(-max_shift, max_shift, (n_classes, 2))
    cid = np.repeat(np.arange(n_classes), per_class)
    e = ce[cid] + rng.normal(0, jitter_deg, (len(cid), 3))
    t = cs[cid] + rng.normal(0, shift_jitter, (len(cid), 2))
    clean = shift(pr.project(e), t)
    defocus = None
    if ctf:
        defocus = rng.uniform(1.0, 3.0, len(cid))
        c = ctf_2d(b, voxel_size, defocus, phase_deg=phase_shift_deg or 0.0)
        clean = scipy.fft.irfft2(scipy.fft.rfft2(clean) * c, s=(b, b)).astype(np.float32)
    mask = circular_mask(b)
    sig_var = clean[:, mask].var(axis=1).mean()
    noise_sd = np.sqrt(sig_var / snr)
    parts = (clean + rng.normal(0, noise_sd, clean.shape)).astype(np.float32)
    flipped = parts
    if ctf:
        flipped = scipy.fft.irfft2(scipy.fft.rfft2(parts) * np.sign(c), s=(b, b))
    classes = np.stack([flipped[cid == k].mean(axis=0) for k in range(n_classes)])
    return {"particles": parts, "eulers": e, "shifts": t, "defocus_um": defocus,
            "class_id": cid, "classes": classes.astype(np.float32), "class_eulers": ce,
            "class_shifts": cs, "pixel": float(voxel_size), "phase_shift_deg": phase_shift_deg}


def write_stack(path, imgs, pixel) -> str:
    """An MRC image stack (n, y, x) with pixel size ``pixel`` Å (ISPG 0, MZ = 1)."""
    with mrcfile.new(str(path), overwrite=True) as m:
        m.set_data(np.asarray(imgs, dtype=np.float32))
        m.set_image_stack()
        m.voxel_size = pixel
    return str(path)


def write_relion(folder, sim: dict, kv=300.0, cs_mm=2.7, q0=0.1) -> tuple:
    """(star path, mrcs path): RELION 3.1 STAR (optics group 1) + MRCS stack of the
    particles of :func:`simulate_particles`."""
    os.makedirs(folder, exist_ok=True)
    mrcs = os.path.join(folder, "particles.mrcs")
    write_stack(mrcs, sim["particles"], sim["pixel"])
    b = sim["particles"].shape[-1]
    px = sim["pixel"]
    lines = ["# RELION 3.1 (cryovalid tests/simulate_particles.py)", "", "data_optics", "",
             "loop_", "_rlnOpticsGroupName #1", "_rlnOpticsGroup #2",
             "_rlnImagePixelSize #3", "_rlnImageSize #4", "_rlnImageDimensionality #5",
             "_rlnVoltage #6", "_rlnSphericalAberration #7", "_rlnAmplitudeContrast #8",
             f"opticsGroup1 1 {px:.6f} {b:d} 2 {kv:.3f} {cs_mm:.3f} {q0:.3f}", "", "",
             "data_particles", "", "loop_", "_rlnImageName #1", "_rlnAngleRot #2",
             "_rlnAngleTilt #3", "_rlnAnglePsi #4", "_rlnOriginXAngst #5",
             "_rlnOriginYAngst #6", "_rlnOpticsGroup #7", "_rlnClassNumber #8"]
    has_ctf = sim["defocus_um"] is not None
    if has_ctf:
        lines += ["_rlnDefocusU #9", "_rlnDefocusV #10", "_rlnDefocusAngle #11"]
    phase = sim.get("phase_shift_deg") if has_ctf else None
    if phase is not None:
        lines += ["_rlnPhaseShift #12"]
    for i, (e, t, k) in enumerate(zip(sim["eulers"], sim["shifts"], sim["class_id"])):
        row = (f"{i + 1:06d}@particles.mrcs {e[0]:.4f} {e[1]:.4f} {e[2]:.4f} "
               f"{-t[0] * px:.4f} {-t[1] * px:.4f} 1 {int(k) + 1}")
        if has_ctf:
            d = sim["defocus_um"][i] * 1e4
            row += f" {d:.2f} {d:.2f} 0.00"
        if phase is not None:
            row += f" {phase:.3f}"
        lines.append(row)
    star = os.path.join(folder, "particles.star")
    with open(star, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return star, mrcs


def reprojection_atoms(chains=("A", "B")):
    """(xyz, weights) of the non-H atoms of the given chains of the 5ME2 haemoglobin model: one
    αβ dimer has no internal symmetry (the tetramer has a 2-fold axis, which makes orientations
    equal only up to it)."""
    import gemmi

    from simulate import EXAMPLE_MODEL

    st = gemmi.read_structure(EXAMPLE_MODEL)
    st.remove_hydrogens()
    st.remove_waters()
    xyz, w = [], []
    for ch in st[0]:
        if ch.name not in chains:
            continue
        for res in ch:
            for at in res:
                xyz.append(at.pos.tolist())
                w.append(at.element.atomic_number)
    return np.array(xyz, dtype=np.float64), np.array(w, dtype=np.float32)


def reprojection_wrong_shape(shape, voxel_size, kind="dumbbell", resolution=6.0):
    """A map of another 'molecule' in the same box, low-passed like the test maps: 'dumbbell'
    (two balls of radius 12 Å, centres 36 Å apart along x), 'torus' (ring of radius 22 Å,
    tube radius 7 Å in the xy plane) or 'rod' (a cylinder of radius 9 Å, 70 Å long along z)."""
    from simulate import shape_map

    z, y, x = [(np.arange(n) - n // 2) * voxel_size for n in shape]
    z, y, x = np.meshgrid(z, y, x, indexing="ij")
    if kind == "dumbbell":
        vol = ((x - 18) ** 2 + y * y + z * z < 144) | ((x + 18) ** 2 + y * y + z * z < 144)
    elif kind == "torus":
        vol = (np.hypot(x, y) - 22) ** 2 + z * z < 49
    else:
        vol = (x * x + y * y < 81) & (np.abs(z) < 35)
    return shape_map(vol.astype(np.float32), voxel_size, resolution=resolution)


def reprojection_cn_map(vol, n: int, offset_px: int = 6) -> np.ndarray:
    """A map with exact-ish point group Cn about the z axis through voxel b//2: ``vol`` moved
    ``offset_px`` voxels along x off the axis, plus its copies turned by 360k/n° about that
    axis (linear interpolation). The group's rotations are then those of
    ``cryovalid.kernels.projection.symmetry_matrices('cN')``."""
    from scipy import ndimage

    v = np.roll(np.asarray(vol, dtype=np.float32), offset_px, axis=2)
    b = np.array(v.shape, dtype=np.float64)
    c = b // 2
    out = np.zeros_like(v)
    for k in range(n):
        t = 2 * np.pi * k / n
        # output voxel (z, y, x) samples the input at the point turned by −t about z
        m = np.array([[1, 0, 0], [0, np.cos(t), np.sin(t)], [0, -np.sin(t), np.cos(t)]])
        out += ndimage.affine_transform(v, m, offset=c - m @ c, order=1)
    return out
