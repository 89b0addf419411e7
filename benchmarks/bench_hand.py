"""Benchmark of 0.h (hand from α-helix twist) on EMD-11007 (240³, 0.834 Å, R 2.9 Å).

Usage: python benchmarks/bench_hand.py [map] [threshold] [resolution]
Prints seconds per step of the analysis, the item's total time as the pipeline runs it (shared
FFT and threshold mask included), and peak memory: Python-heap peak of the analysis
(tracemalloc, numpy arrays included; a separate run, since tracing slows it) and the process's
maximum resident set size. Target (issue 4): ≤ 30 s on 2 cores.
"""
import os
import resource
import sys
import time
import tracemalloc

os.environ.setdefault("CRYOVALID_WORKERS", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "..", "shared", "data", "real", "EMD-11007", "emd_11007.map")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    threshold = float(sys.argv[2]) if len(sys.argv) > 2 else 1.5
    resolution = float(sys.argv[3]) if len(sys.argv) > 3 else 2.9
    if not os.path.exists(path):
        print(f"benchmark map not found: {path}")
        return 0
    from cryovalid.context import Context
    from cryovalid.io.maps import read_map
    from cryovalid.items import hand
    from cryovalid.items.base import run_item
    from cryovalid.kernels import hand as helices

    t0 = time.perf_counter()
    m = read_map(path)
    t_read = time.perf_counter() - t0
    print(f"map {os.path.basename(path)} shape {m.shape} voxel {m.voxel_size:.3f} Å, "
          f"threshold {threshold:g}, R {resolution:g} Å, workers "
          f"{os.environ['CRYOVALID_WORKERS']}, {os.cpu_count()} cores; read {t_read:.2f} s")

    out = helices.determine_hand(m.data, m.voxel_size, threshold, resolution, origin=m.origin)
    print(f"{'step':<30}{'seconds':>9}")
    for name, sec in out.timings.items():
        print(f"{name:<30}{sec:9.2f}")
    print(f"score {out.score:.3f}, rods {out.n_candidates}, voting helices {out.n_helices} "
          f"(right {out.n_right}, left {out.n_left}), null spread {out.null_spread:.3f}")

    ctx = Context.of(m, threshold, resolution=resolution)
    t0 = time.perf_counter()
    res = run_item(hand, ctx)
    print(f"item 0.h as in the pipeline (incl. shared FFT and mask): "
          f"{time.perf_counter() - t0:.2f} s, status {res.status}, metrics {res.metrics}")

    tracemalloc.start()
    helices.determine_hand(m.data, m.voxel_size, threshold, resolution)
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"peak memory of the analysis (tracemalloc): {peak:.0f} MB; process max RSS "
          f"{rss:.0f} MB (map itself {m.data.nbytes / 2 ** 20:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
