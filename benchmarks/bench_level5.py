"""Benchmark of Level 5 (the micrographs' input section and 5.a): M micrographs of SIZE² float32
(target: 20 of 4096² in ≤ 2 min on 2 cores). Prints seconds and peak traced memory per step
(reading the headers and hashing the files, the coordinates, the bad regions of every
micrograph, item 5.a, the figures), and the process's peak RSS.

The micrographs are tests/simulate_micrographs.py's (white + pink noise, dark Gaussian
particles, BOX-px box): one in three has two ice discs, one in three a carbon edge, the others
are clean; PICKS picks each. They are written as MRC files with a RELION 3.1 STAR of the
particles (crops of the picks, binned ×4 as after a rescaled extraction, coordinates in
micrograph pixels) in a temporary folder and read back memory-mapped, as the report does. The
simulation is not timed. Run with 2 workers:

    CRYOVALID_WORKERS=2 PYTHONPATH=src python benchmarks/bench_level5.py [M] [SIZE] [BOX] [PICKS]
"""
from __future__ import annotations

import glob
import os
import resource
import shutil
import sys
import tempfile
import time
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from steps import step  # noqa: E402
from cryovalid.data import MicrographsData, ParticlesData  # noqa: E402
from cryovalid.io.micrographs import read_micrographs  # noqa: E402
from cryovalid.io.particles import read_particles  # noqa: E402
from cryovalid.items import micrographs as cleaner  # noqa: E402


def make(folder, m, size, box, picks):
    from simulate_micrographs import simulate_micrograph, write_dataset

    def mics():  # one micrograph in memory at a time
        for k in range(m):
            kind = k % 3
            kw = {}
            if kind == 1:
                kw["ice"] = [(0.3 * size, 0.3 * size, 2.5 * box),
                             (0.7 * size, 0.6 * size, 2 * box)]
            elif kind == 2:
                kw["carbon"] = (1.0, 0.0, 0.7 * size)
            img, _, xy = simulate_micrograph(size=size, box=box, n_particles=picks, seed=k,
                                             **kw)
            yield img, xy

    # the particles binned ×4 (as after a rescaled extraction; Level 5 does not read them)
    return write_dataset(folder, mics(), box=box, particle_bin=4)


def main(m=20, size=4096, box=200, picks=300):
    from cryovalid.figures import micrographs as figs

    rows = []
    folder = tempfile.mkdtemp(prefix="bench_level5_")
    try:
        t0 = time.perf_counter()
        star, pattern = make(folder, m, size, box, picks)
        print(f"made {m} micrographs of {size}² ({picks} picks each, box {box} px) in "
              f"{time.perf_counter() - t0:.1f} s ({folder})")
        t_all = time.perf_counter()
        paths = sorted(glob.glob(pattern))
        mics = step("read headers + SHA-256", lambda: read_micrographs(pattern, paths), rows)
        parts = ParticlesData(read_particles(star), None)
        md = MicrographsData(mics, parts)
        ctx = SimpleNamespace(micrographs=md, particles=parts)
        step("coordinates", lambda: md.coordinates, rows)
        step("bad regions of every micrograph", lambda: [md.quality(i) for i in range(md.n)],
             rows)
        res = step("item 5.a", lambda: cleaner.run(ctx), rows)
        step("input section figure", lambda: figs.draw_micrographs_section(ctx), rows)
        step("5.a figures", lambda: figs.draw_cleaner(res, ctx), rows)
        print(f"Level 5 total {time.perf_counter() - t_all:.1f} s")
        print(res.id, res.metrics, [str(w) for w in res.warnings])
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS {rss:.0f} MiB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:]])
