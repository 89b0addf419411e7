"""Benchmark of Level 2 item 2.a (reprojection consistency): 50 classes of 128² against a 128³
map (target ≤ 60 s on 2 cores). Prints seconds and peak traced memory per step (the steps of
items/reprojection.py, then the whole item once more), and the process's peak RSS.

The map is simulated from the 5ME2 model (tests/simulate.py) at 1 Å, 4 Å resolution, 128³; the
classes are averages of 10 particles at SNR 1 (tests/simulate_particles.py). Run with 2
workers:

    CRYOVALID_WORKERS=2 PYTHONPATH=src python benchmarks/bench_level2.py [N_CLASSES] [BOX]
"""
from __future__ import annotations

import os
import resource
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from steps import step  # noqa: E402
from cryovalid.context import Context  # noqa: E402
from cryovalid.data import ClassesData  # noqa: E402
from cryovalid.io.maps import Map  # noqa: E402
from cryovalid.io.stacks import Stack  # noqa: E402
from cryovalid.items import reprojection as item  # noqa: E402
from cryovalid.kernels import align2d, projection  # noqa: E402


def main(n_classes=50, box=128):
    from simulate import simulate
    from simulate_particles import simulate_particles

    rows = []
    vol, ts, _ = simulate(voxel_size=1.0, resolution=4.0, shape=(box,) * 3)
    sim = simulate_particles(vol, ts, n_classes=n_classes, per_class=10, snr=1.0, seed=0)
    ctx = Context.of(map=Map(data=vol, voxel_size=ts, path="sim.mrc"),
                     threshold=float(np.quantile(vol, 0.97)))
    ctx.classes = ClassesData(Stack(sim["classes"], ts), ctx.map)
    t_all = time.perf_counter()
    imgs = step("classes on the map grid", lambda: np.asarray(ctx.classes.on_map_grid), rows)
    eul, _ = projection.orientations("c1", item.ANGULAR_STEP)
    pr = step("projector (3-D FFT of the padded map)", lambda: ctx.classes.projector, rows)
    gal = step(f"gallery ({len(eul)} projections)",
               lambda: pr.project(eul, max_freq=item.GALLERY_MAX_FREQ), rows)
    coarse = step("coarse search (polar, shifts)", lambda: align2d.coarse_search(imgs, gal), rows)
    gal = None  # free the gallery
    pick = coarse.candidates(projection.neighbours(eul, item.NEIGHBOUR_STEPS * item.ANGULAR_STEP),
                             item.KEEP)
    cand = eul[pick].copy()
    cand[..., 2] = np.take_along_axis(coarse.psi, pick, axis=1)
    cs = np.take_along_axis(coarse.shift, pick[..., None], axis=1)
    al = step("local refinement", lambda: align2d.refine(
        imgs, lambda e: pr.project(e, max_freq=item.REFINE_MAX_FREQ), cand, cs,
        step=item.ANGULAR_STEP / 2), rows)
    mask = align2d.circular_mask(box)
    step("residuals and covariances", lambda: align2d.column_covariance(
        align2d.gray_residual(imgs, al.reference, mask)[0]), rows)
    steps_s = time.perf_counter() - t_all
    err = projection.angular_distance(al.eulers, sim["class_eulers"])
    print(f"steps total {steps_s:.1f} s; CC mean {al.cc.mean():.3f}; orientation error median "
          f"{np.median(err):.2f}°, within 5°: {np.mean(err < 5):.0%}")
    ctx.classes = ClassesData(Stack(sim["classes"], ts), ctx.map)  # nothing cached
    res = step("item 2.a (all of it)", lambda: item.run(ctx), rows)
    print("metrics", getattr(res, "metrics", None))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:.0f} MiB")
    return rows


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
