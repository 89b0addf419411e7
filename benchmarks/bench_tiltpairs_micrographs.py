"""Benchmark of O.c's input from micrograph pairs (``--tilt-micrographs``): M micrograph pairs of
SIZE² float32 with P coordinate pairs each (default 10 pairs of 4096², 1000 pairs each: 10 000
pairs), a map box of BOX px at the micrographs' pixel size (default 128: the issue's 128³ map).

Steps timed (seconds and peak traced memory, benchmarks/steps.py): reading (the two coordinate
STARs, the micrographs' headers and SHA-256 of every file, the matching, the edge check), then
cutting the boxes O.c measures (its MAX_PAIRS, 2000 evenly spaced pairs: every micrograph is
read once per side). The micrographs are white noise (the
content does not change the cost); the simulation is not timed. Run with 2 workers:

    CRYOVALID_WORKERS=2 PYTHONPATH=src python benchmarks/bench_tiltpairs_micrographs.py \
        [M] [SIZE] [P] [BOX]
"""
from __future__ import annotations

import glob
import os
import resource
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from steps import step  # noqa: E402
from cryovalid.io.maps import write_map  # noqa: E402
from cryovalid.io.tiltpairs import read_tilt_pairs_from_micrographs  # noqa: E402
from cryovalid.items import tiltpairs as item  # noqa: E402


def make(folder, m, size, p, box):
    rng = np.random.default_rng(0)
    rows = {"u": [], "t": []}
    for k in range(m):
        for side in "ut":
            name = f"mic{k:03d}_{side}.mrc"
            write_map(os.path.join(folder, name),
                      rng.standard_normal((size, size), dtype=np.float32), 1.0)
            xy = rng.uniform(box, size - box, (p, 2))
            rows[side] += [f"{name} {x:.1f} {y:.1f}\n" for x, y in xy]
    paths = []
    for side in "ut":
        path = os.path.join(folder, f"{side}.star")
        with open(path, "w") as fh:
            fh.write("data_particles\nloop_\n_rlnMicrographName #1\n_rlnCoordinateX #2\n"
                     "_rlnCoordinateY #3\n")
            fh.writelines(rows[side])
        paths.append(path)
    return paths


def main(m=10, size=4096, p=1000, box=128):
    folder = tempfile.mkdtemp(prefix="bench_tiltmics_")
    try:
        u, t = make(folder, m, size, p, box)
        pattern = os.path.join(folder, "mic*.mrc")
        rows = []
        print(f"{m} micrograph pairs of {size}², {m * p} pairs, box {box} px", flush=True)
        tp = step("read (STARs, headers, SHA-256)", lambda: read_tilt_pairs_from_micrographs(
            u, t, pattern, sorted(glob.glob(pattern)), map_box=box, map_voxel=1.0,
            tilt_angle=30.0), rows)
        sel = np.unique(np.linspace(0, tp.n - 1, min(tp.n, item.MAX_PAIRS)).round()
                        .astype(np.int64))
        step(f"cut {len(sel)} pairs (what O.c asks)", lambda: tp.images(sel), rows)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"total {sum(r[1] for r in rows):.1f} s, peak RSS {rss:.0f} MiB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:5]))
