"""Benchmark of Level 3 (3.a outlier detection, 3.b internal consistency, 3.c external
consistency): N particles of BOX² against K user classes (target: 10 000 particles of 128² in
≤ 5 min and ≤ 4 GB on 2 cores). Prints seconds and peak traced memory per step (the shared
intermediates of data.ParticlesData, then each item), and the process's peak RSS.

The map is simulated from the 5ME2 model (tests/simulate.py) at 1 Å, 4 Å resolution, BOX³;
K clean projections at random orientations are the views; each particle is one view turned by
a random in-plane angle, shifted by up to ±3 px and given white noise at SNR 0.3; the user
classes are the clean views. Particles are written as a RELION 3.1 STAR + MRCS in a temporary
folder and read back lazily (io/particles.py), as the report does. Run with 2 workers:

    CRYOVALID_WORKERS=2 PYTHONPATH=src python benchmarks/bench_level3.py [N] [BOX] [K]
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
from cryovalid.context import Context  # noqa: E402
from cryovalid.data import ClassesData, ParticlesData  # noqa: E402
from cryovalid.io.maps import Map  # noqa: E402
from cryovalid.io.particles import read_particles  # noqa: E402
from cryovalid.io.stacks import Stack  # noqa: E402
from cryovalid.items import external_consistency, internal_consistency, outliers  # noqa: E402
from cryovalid.kernels import align2d  # noqa: E402


def make_particles(folder, views, n, snr=0.3, seed=0):
    """STAR + MRCS of n particles made from the views (written in chunks); returns (star,
    true view index)."""
    import mrcfile

    from simulate_particles import write_relion

    rng = np.random.default_rng(seed)
    k, b = len(views), views.shape[-1]
    label = rng.integers(0, k, n)
    mask = align2d.circular_mask(b)
    sd = np.sqrt(views[:, mask].var(axis=1).mean() / snr)
    mrcs = os.path.join(folder, "particles.mrcs")
    with mrcfile.new_mmap(mrcs, shape=(n, b, b), mrc_mode=2, overwrite=True) as m:
        for lo in range(0, n, 1000):
            hi = min(n, lo + 1000)
            img = align2d.shift(align2d.rotate(views[label[lo:hi]], rng.uniform(0, 360, hi - lo)),
                                rng.uniform(-3, 3, (hi - lo, 2)))
            m.data[lo:hi] = img + rng.normal(0, sd, img.shape).astype(np.float32)
        m.set_image_stack()
        m.voxel_size = 1.0
    # the STAR file only (write_relion would write the stack again): reuse its writer with an
    # empty image array and put the real stack back
    sim = {"particles": np.zeros((1, b, b), np.float32), "pixel": 1.0, "defocus_um": None,
           "eulers": np.zeros((n, 3)), "shifts": np.zeros((n, 2)), "class_id": label}
    real = mrcs + ".keep"
    os.replace(mrcs, real)
    star, _ = write_relion(folder, sim)
    os.replace(real, mrcs)
    return star, label


def main(n=10000, box=128, k=50):
    from simulate import simulate
    from simulate_particles import random_eulers

    from cryovalid.kernels.projection import Projector

    rows = []
    vol, ts, _ = simulate(voxel_size=1.0, resolution=4.0, shape=(box,) * 3)
    views = Projector(vol).project(random_eulers(k, np.random.default_rng(1)))
    folder = tempfile.mkdtemp(prefix="bench_level3_")
    t0 = time.perf_counter()
    star, label = make_particles(folder, views, n)
    print(f"made {n} particles of {box}² in {time.perf_counter() - t0:.1f} s ({folder})")
    ctx = Context.of(map=Map(data=vol, voxel_size=ts, path="sim.mrc"),
                     threshold=float(np.quantile(vol, 0.97)))
    ctx.classes = ClassesData(Stack(views.astype(np.float32), ts), ctx.map)
    t_all = time.perf_counter()
    pd = ParticlesData(read_particles(star), ctx.map, ctx.classes)
    ctx.particles = pd
    step("particles on the class grid", lambda: pd.on_class_grid, rows)
    step("binned copy for the searches", lambda: pd.binned, rows)
    a = step("assignment to the user classes", lambda: pd.assignment, rows)
    print(f"  assigned to the right view: {np.mean(a.best == label):.1%}")
    step("core analysis", lambda: pd.core, rows)
    step("noise null (phase-randomised copies)", lambda: pd.null_cc, rows)
    ra = step("item 3.a", lambda: outliers.run(ctx), rows)
    rb = step("item 3.b", lambda: internal_consistency.run(ctx), rows)
    rc = step("item 3.c (classifier + matching)", lambda: external_consistency.run(ctx), rows)
    print(f"Level 3 total {time.perf_counter() - t_all:.1f} s")
    for r in (ra, rb, rc):
        print(r.id, r.metrics, [str(w) for w in r.warnings])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:.0f} MiB")
    return rows


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:]])
