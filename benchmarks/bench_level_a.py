"""Benchmark of Level A (every item of the level, in run order): seconds and peak traced memory
per item (with --trace), the total, and the process's peak RSS.

1. EMD-3488 + 5ME2 (100³, 4 468 atoms) at R = 3.2 Å — targets: A.a + A.d ≤ 5 s on 2 cores
   (cctbx's mtriage + map_model_cc take 10.4 s there), Q-score ≤ 3 s, EMRinger ≤ 1 s,
   A.g ≤ 3 s.
2. A 240³ map simulated from 1OEL (GroEL, 27 078 atoms) at 0.7 Å per voxel and 3.5 Å
   (tests/simulate.py), with the model itself — targets: A.0 + A.a + A.d ≤ 30 s (for 20 000
   atoms), the whole of Level A ≤ 60 s.

    CRYOVALID_WORKERS=2 PYTHONPATH=src python benchmarks/bench_level_a.py
"""
from __future__ import annotations

import os
import resource
import sys
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from cryovalid.context import Context  # noqa: E402
from cryovalid.data import ModelData  # noqa: E402
from cryovalid.io.maps import Map, read_map  # noqa: E402
from cryovalid.io.model import read_model  # noqa: E402
from cryovalid import registry  # noqa: E402
from cryovalid.items.base import run_item  # noqa: E402

REAL = os.path.join(HERE, "..", "..", "shared", "data", "real")


def step(name, fn, trace):
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20 if trace else float("nan")
    if trace:
        tracemalloc.stop()
    mem = f"   peak {peak:7.0f} MiB" if trace else ""
    print(f"  {name:<30s} {dt:7.2f} s{mem}", flush=True)
    return out, dt


def level_a(m, model, resolution, threshold, trace):
    ctx = Context.of(m, threshold, resolution=resolution)
    ctx.model = ModelData(model, ctx.map, resolution)
    total = 0.0
    for mod in registry.items():
        if mod.LEVEL != "A":
            continue
        res, dt = step(f"{mod.ID} {mod.TITLE[:24]}", lambda mod=mod: run_item(mod, ctx), trace)
        total += dt
        if res.status not in ("ok", "warnings"):
            print(f"    {res.status}: {res.reason}")
    print(f"  {'Level A total':<30s} {total:7.2f} s")
    return total


def main():
    trace = "--trace" in sys.argv  # tracemalloc slows numpy a little: off by default
    p = os.path.join(REAL, "EMD-3488")
    if os.path.isdir(p):
        print("EMD-3488 + 5ME2 (100³, 4 468 atoms), R = 3.2 Å")
        level_a(read_map(os.path.join(p, "emd_3488.map")), read_model(os.path.join(p, "5me2.pdb")),
                3.2, 0.083, trace)
    p = os.path.join(REAL, "EMD-1997", "1oel.pdb")
    if os.path.exists(p):
        from simulate import simulate, threshold_for_volume

        model = read_model(p)
        t0 = time.perf_counter()
        vol, ts, origin = simulate(p, 0.7, bfactor=20.0, resolution=3.5, noise=0.1,
                                   shape=(240, 240, 240))
        print(f"1OEL simulated on 240³ at 0.7 Å, 3.5 Å ({model.n_atoms} atoms; simulation "
              f"{time.perf_counter() - t0:.1f} s)")
        m = Map(vol, ts, origin, path="sim_1oel.mrc")
        level_a(m, model, 3.5, threshold_for_volume(vol, model.n_atoms * 18.0, ts), trace)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"process max RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
