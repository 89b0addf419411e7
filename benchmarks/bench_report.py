"""Benchmark: the whole report as a user runs it, on EMD-11007 (240³) and on the same map
resampled to 360³, at the automatic threshold, json+html+pdf.

Run with `make bench` (needs ../shared/data/real, or give a map path as the first argument).
Each report runs in a child process (`python -m cryovalid report ...`), so the figures are the
command's own: wall seconds, user and system CPU seconds, minor page faults and peak resident
memory (getrusage of the child), then the per-step seconds the report records.

Targets (issue 8, 2 cores): 240³ ≤ 35 s wall and ≤ 1.5 GB peak, 0.e ≤ 10 s of it; 360³ ≤ 4 ×
the 240³ time, with system time well below user time.
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "..", "shared", "data", "real", "EMD-11007", "emd_11007.map")
RESOLUTION = 2.9


def resampled(path, n, out_dir):
    """The map resampled to an n³ box over the same physical box (linear interpolation)."""
    from scipy import ndimage

    from cryovalid.io.maps import read_map, write_map

    m = read_map(path)
    factor = n / m.shape[0]
    data = ndimage.zoom(m.data, factor, order=1).astype("float32")
    out = os.path.join(out_dir, f"resampled_{n}.mrc")
    write_map(out, data, m.voxel_size / factor, m.origin)
    return out


def run(path, out_dir, label):
    cmd = [sys.executable, "-m", "cryovalid", "report", path, "--resolution", str(RESOLUTION),
           "--out", out_dir, "--quiet", "--force"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print(f"{label}: exit {proc.returncode}: {proc.stderr.strip()}")
        return None
    rep = json.load(open(os.path.join(out_dir, "report.json")))
    row = {"wall": wall, "user": after.ru_utime - before.ru_utime,
           "sys": after.ru_stime - before.ru_stime,
           "faults": after.ru_minflt - before.ru_minflt,
           "peak_mb": after.ru_maxrss / 1024.0, "timings": rep.get("timings_s", {}),
           "threshold": rep["inputs"]["threshold"]}
    print(f"\n{label}: {rep['inputs']['shape']} voxel {rep['inputs']['voxel_size_A']} Å, "
          f"automatic threshold {row['threshold']:.4g}")
    print(f"  wall {wall:.1f} s   user {row['user']:.1f} s   sys {row['sys']:.1f} s   "
          f"minor page faults {row['faults']:,}   peak RSS {row['peak_mb']:.0f} MB "
          f"(the largest child so far)")
    for k, v in row["timings"].items():
        print(f"    {k:<40}{v:8.2f} s")
    return row


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    if not os.path.exists(path):
        print(f"benchmark map not found: {path}")
        return 0
    print(f"{os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="cryovalid-bench-") as tmp:
        small = run(path, os.path.join(tmp, "r240"), "EMD-11007 240³")
        big_map = resampled(path, 360, tmp)
        big = run(big_map, os.path.join(tmp, "r360"), "EMD-11007 resampled to 360³")
    if small and big:
        print(f"\n360³ / 240³: wall × {big['wall'] / small['wall']:.2f} for × 3.375 voxels "
              f"(target ≤ 4)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
