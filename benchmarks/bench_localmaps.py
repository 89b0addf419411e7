"""Benchmark of items 0.e, 0.f and 0.g (local resolution, B-factor, occupancy).

Targets: 0.e + 0.f + 0.g on EMD-11007 (240³, Ts 0.834 Å, R = 2.9 Å) in at most 40 s and 3 GB
on 2 cores (issue 3); 0.e alone in at most 10 s (issue 8; its time includes the molecule mask
at the automatic threshold, which only 0.e uses). Prints seconds and peak traced memory per
step (tracemalloc: numpy arrays, not FFT work buffers) and the process's peak resident memory
at the end. The default threshold is the automatic one.

    PYTHONPATH=src python benchmarks/bench_localmaps.py [map] [--threshold T] [--resolution R]
        [--figures]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MAP = os.path.join(HERE, "..", "..", "shared", "data", "real", "EMD-11007",
                           "emd_11007.map")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("map", nargs="?", default=DEFAULT_MAP)
    ap.add_argument("--threshold", type=float, default=None,
                    help="density threshold (default: the automatic threshold)")
    ap.add_argument("--resolution", type=float, default=2.9)
    ap.add_argument("--figures", action="store_true", help="also time the figures")
    args = ap.parse_args(argv)
    if not os.path.isfile(args.map):
        print(f"map not found: {args.map}", file=sys.stderr)
        return 2

    from cryovalid.context import Context
    from cryovalid.figures import localmaps as figs
    from cryovalid.io.maps import read_map
    from cryovalid.items import localres, locbfactor, lococcupancy
    from cryovalid.items.base import run_item
    from cryovalid.kernels.fourier import workers

    m = read_map(args.map)
    out = tempfile.mkdtemp(prefix="bench_localmaps_")
    threshold = args.threshold
    if threshold is None:
        from cryovalid.kernels.threshold import auto_threshold
        threshold = auto_threshold(m.data, m.voxel_size)
    ctx = Context.of(m, threshold, resolution=args.resolution)
    print(f"map {os.path.basename(args.map)} {m.shape[2]}x{m.shape[1]}x{m.shape[0]}, "
          f"Ts {m.voxel_size:.3f} Å, T {threshold:g}, R {args.resolution:g} Å, "
          f"FFT workers {workers()}, output {out}")

    def step(label, fn):
        tracemalloc.start()
        t0 = time.perf_counter()
        value = fn()
        dt = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"{label:<40} {dt:7.2f} s   peak traced {peak / 2**20:7.0f} MiB")
        return value, dt

    _, t_prep = step("shared: map FFT + hard mask", lambda: (ctx.map.ft, ctx.map.hard_mask))
    total = t_prep
    draws = {localres: figs.draw_localres, locbfactor: figs.draw_locbfactor,
             lococcupancy: figs.draw_lococcupancy}
    for mod in (localres, locbfactor, lococcupancy):
        res, dt = step(f"{mod.ID} {mod.TITLE}", lambda mod=mod: run_item(mod, ctx))
        total += dt
        key = {"0.e": "local_resolution_median_A", "0.f": "local_bfactor_median_A2",
               "0.g": "local_occupancy_median"}[mod.ID]
        print(f"    status {res.status} {res.reason} median {res.metrics.get(key)} "
              f"p2.5 {res.metrics.get('p2_5')} p97.5 {res.metrics.get('p97_5')}")
        if args.figures:
            _, dt = step(f"    figures of {mod.ID}", lambda: draws[mod](res, ctx))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"{'total 0.e + 0.f + 0.g (with shared prep)':<40} {total:7.2f} s   "
          f"peak resident {rss:7.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
