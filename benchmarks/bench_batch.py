"""Benchmark of ``cryovalid batch``: throughput of a local Dask cluster against single reports.

20 small maps (100³, 1 Å voxels: the 5ME2 haemoglobin model simulated at 4 Å with 5 % noise,
one noise seed each; --resolution 4; every format, as a batch writes by default: json, html and
pdf with their figures; ``--formats json`` for the numbers alone) are graded

1. one after the other in this process, each with the FFT threads one batch worker gets
   (the "single-report times"), and
2. by ``run_batch`` on a LocalCluster of ``WORKERS`` processes (one thread each).

Target (issue 13): the batch's wall time within 15 % of sum(single-report times) / WORKERS.
Prints each phase, the overhead (cluster start, worker imports, scheduling) and the peak RSS
of the worker processes. Run:

    PYTHONPATH=src python benchmarks/bench_batch.py [N_MAPS] [WORKERS] [--formats json]
"""
from __future__ import annotations

import os
import sys

_ARGV = sys.argv[1:]
FORMATS = (tuple(_ARGV[_ARGV.index("--formats") + 1].split(","))
           if "--formats" in _ARGV else ("json", "html", "pdf"))
if "--formats" in _ARGV:
    del _ARGV[_ARGV.index("--formats"):_ARGV.index("--formats") + 2]
ARGS = _ARGV
WORKERS = int(ARGS[1]) if len(ARGS) > 1 else 2
# the single reports get what one batch worker gets: CPUs / WORKERS threads for the FFTs, BLAS,
# OpenMP and Mesa's software OpenGL (set before numpy and VTK are imported)
THREADS = max(1, (os.cpu_count() or 1) // WORKERS)
for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LP_NUM_THREADS"):
    os.environ[_k] = str(THREADS)

import resource  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import simulate  # noqa: E402
from cryovalid.batch import BatchSettings, read_entries, run_batch, run_entry  # noqa: E402

N_MAPS = int(ARGS[0]) if len(ARGS) > 0 else 20
TARGET = 1.15


def main():
    tmp = tempfile.mkdtemp(prefix="cryovalid-bench-batch-")
    try:
        folder = os.path.join(tmp, "maps")
        os.makedirs(folder)
        xyz_w = simulate.load_atoms()
        t0 = time.perf_counter()
        for k in range(N_MAPS):
            vol, vs, origin = simulate.simulate(voxel_size=1.0, resolution=4.0, noise=0.05,
                                                seed=k, shape=(100, 100, 100), atoms=xyz_w)
            simulate.write_mrc(os.path.join(folder, f"map{k:02d}.mrc"), vol, vs, origin)
        with open(os.path.join(tmp, "maps.csv"), "w") as fh:
            fh.write("map,resolution\n")
            fh.writelines(f"maps/map{k:02d}.mrc,4.0\n" for k in range(N_MAPS))
        print(f"{N_MAPS} maps of 100³ written in {time.perf_counter() - t0:.1f} s", flush=True)
        entries = read_entries([os.path.join(tmp, "maps.csv")])
        threads = THREADS
        settings = BatchSettings(cache=os.path.join(tmp, "cache"), formats=FORMATS,
                                 fft_threads=threads)

        run_entry(entries[0], os.path.join(tmp, "warmup"), settings)  # imports, FFT plans
        singles = []
        for e in entries:
            t0 = time.perf_counter()
            row = run_entry(e, os.path.join(tmp, "single", e.name), settings)
            singles.append(time.perf_counter() - t0)
            assert row["status"] == "complete", row["error"]
        ideal = sum(singles) / WORKERS
        print(f"single reports ({','.join(FORMATS)}): {N_MAPS} × {sum(singles) / N_MAPS:.2f} s "
              f"(FFT threads {threads}) = {sum(singles):.1f} s; / {WORKERS} workers = "
              f"{ideal:.1f} s",
              flush=True)

        t0 = time.perf_counter()
        summary = run_batch(entries, os.path.join(tmp, "batch"), settings=settings,
                            workers=WORKERS)
        wall = time.perf_counter() - t0
        assert summary["complete"] == N_MAPS, [r["error"] for r in summary["rows"]]
        in_tasks = sum(r["seconds"] for r in summary["rows"])
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2 ** 10
        print(f"batch on LocalCluster({WORKERS} workers): {wall:.1f} s wall; reports inside "
              f"the tasks {in_tasks:.1f} s ({in_tasks / N_MAPS:.2f} s each); overhead "
              f"{wall - in_tasks / WORKERS:.1f} s (cluster start, worker imports, "
              f"scheduling); worker peak RSS {children:.0f} MiB")
        ratio = wall / ideal
        verdict = "OK" if ratio <= TARGET else "OVER TARGET"
        print(f"batch / (sum of single reports / workers) = {ratio:.3f} (target ≤ {TARGET}): "
              f"{verdict}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
