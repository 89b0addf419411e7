"""Benchmark of Level 4 (the particles' angular assignment): N particles of BOX² with their
true angles, shifts and CTF against the BOX³ map they were made from (target: 10 000 particles
of 128² against a 128³ map, every Level 4 item together, in ≤ 10 min on 2 cores). Prints
seconds and peak traced memory per step (making the data, the shared working grid, then every
Level 4 item the registry holds, in report order) and the process's peak RSS.

The map is simulated from one αβ dimer of the 5ME2 model (chains A and B, tests/
simulate_particles.reprojection_atoms: no internal symmetry, so c1 is right; the tetramer's
2-fold axis would make true angles look wrong to 4.b and 4.c) at 1 Å, 4 Å resolution, BOX³.
Each particle is its central-section projection at a uniform random orientation, shifted by up
to ±3 px, multiplied by a CTF (defocus 1–3 µm, 300 kV, Cs 2.7 mm, Q0 0.1) and given white noise
at SNR 0.1; written in chunks as a RELION 3.1 STAR + MRCS in a temporary folder and read back
lazily (io/particles.py), as the report does. Run with 2 workers:

    CRYOVALID_WORKERS=2 PYTHONPATH=src python benchmarks/bench_level4.py [N] [BOX]
"""
from __future__ import annotations

import os
import resource
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from steps import step  # noqa: E402
from cryovalid import registry  # noqa: E402
from cryovalid.context import Context  # noqa: E402
from cryovalid.data import ParticlesData  # noqa: E402
from cryovalid.io.maps import Map  # noqa: E402
from cryovalid.io.particles import read_particles  # noqa: E402
from cryovalid.items.base import run_item  # noqa: E402
from cryovalid.kernels import align2d  # noqa: E402

RESOLUTION = 4.0  # Å: the map's resolution, also the reported one
SNR = 0.1
CHUNK = 500


def make_particles(folder, vol, n, seed=0):
    """STAR + MRCS of n CTF-modulated noisy projections of ``vol`` (1 Å/px), written in
    chunks; returns the STAR path."""
    import mrcfile
    import scipy.fft

    from cryovalid.kernels.ctf import ctf_2d
    from cryovalid.kernels.projection import Projector
    from simulate_particles import random_eulers, write_relion

    rng = np.random.default_rng(seed)
    pr = Projector(vol)
    b = pr.box
    eulers = random_eulers(n, rng)
    shifts = rng.uniform(-3, 3, (n, 2))
    defocus_um = rng.uniform(1.0, 3.0, n)
    mask = align2d.circular_mask(b)
    mrcs = os.path.join(folder, "particles.mrcs")
    sd = None
    with mrcfile.new_mmap(mrcs, shape=(n, b, b), mrc_mode=2, overwrite=True) as m:
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            p = pr.project(eulers[lo:hi])
            c = ctf_2d(b, 1.0, defocus_um[lo:hi] * 1e4)
            p = scipy.fft.irfft2(scipy.fft.rfft2(p) * c, s=(b, b)).astype(np.float32)
            p = align2d.shift(p, shifts[lo:hi])
            if sd is None:
                sd = float(np.sqrt(p[:, mask].var(axis=1).mean() / SNR))
            m.data[lo:hi] = p + rng.normal(0, sd, p.shape).astype(np.float32)
        m.set_image_stack()
        m.voxel_size = 1.0
    sim = {"particles": np.zeros((1, b, b), np.float32), "pixel": 1.0, "defocus_um": defocus_um,
           "eulers": eulers, "shifts": shifts, "class_id": np.zeros(n, int)}
    real = mrcs + ".keep"
    os.replace(mrcs, real)  # write_relion writes a stack too: keep the real one
    star, _ = write_relion(folder, sim)
    os.replace(real, mrcs)
    return star


def main(n=10000, box=128):
    from simulate import simulate
    from simulate_particles import reprojection_atoms

    rows = []
    vol, ts, _ = simulate(voxel_size=1.0, resolution=RESOLUTION, shape=(box,) * 3,
                          atoms=reprojection_atoms())
    folder = tempfile.mkdtemp(prefix="bench_level4_")
    star = step(f"simulate {n} particles of {box}²", lambda: make_particles(folder, vol, n), rows)
    ctx = Context.of(Map(vol, ts), float(np.percentile(vol, 95)), resolution=RESOLUTION)
    ctx.particles = ParticlesData(read_particles(star), ctx.map, None)
    t_items = time.perf_counter()
    for s in registry.steps("4"):
        res = step(f"{s.module.ID} {s.module.TITLE}"[:34], lambda: run_item(s.module, ctx), rows)
        print(f"    status {res.status}: {res.reason or ''}", flush=True)
    total = time.perf_counter() - t_items
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"Level 4 items together: {total:.1f} s; peak RSS {rss:.0f} MiB", flush=True)
    return rows


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
