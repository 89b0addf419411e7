"""Benchmark of the Level 1 global items (1.a global resolution, 1.b FDR-FSC) on 240³ half maps.

The half maps are EMD-11007 (240³, 0.834 Å) plus independent Gaussian noise shaped per shell so
that the FSC falls off like a real one and crosses 0.143 at 3.0 Å. Prints seconds and peak
traced memory per step, and the process's peak RSS. Run with 2 workers to match the target (≤ 20 s on 2 cores):

    CRYOVALID_WORKERS=2 PYTHONPATH=src python benchmarks/bench_level1.py
"""
from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
import tracemalloc

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from cryovalid.context import Context  # noqa: E402
from cryovalid.figures import fsc as fsc_figures  # noqa: E402
from cryovalid.io.maps import Map, read_map  # noqa: E402
from cryovalid.items import fdr_fsc, global_resolution  # noqa: E402
from cryovalid.items.base import run_item  # noqa: E402
from cryovalid.kernels import fourier  # noqa: E402

MAP = os.path.join(HERE, "..", "..", "shared", "data", "real", "EMD-11007", "emd_11007.map")


def step(name, fn, rows):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    rows.append((name, dt, peak))
    print(f"{name:<34s} {dt:7.2f} s   peak {peak:7.0f} MiB", flush=True)
    return out


def make_halves(m: Map, resolution=3.0, seed=0):
    """map + noise_i, the noise shaped per shell so that the expected FSC is SNR/(1+SNR) with
    SNR(s) = (0.143/0.857)·exp(-8((s·d)² - 1)) (crossing 0.143 at d = ``resolution``)."""
    rng = np.random.default_rng(seed)
    shells = fourier.FourierShells(m.shape, m.voxel_size)
    ft = fourier.rfft(m.data)
    signal_power = shells.mean(ft.real ** 2 + ft.imag ** 2)
    s = fourier.frequency_magnitude(m.shape, m.voxel_size)
    snr = np.maximum(0.143 / 0.857 * np.exp(-8.0 * ((s * resolution) ** 2 - 1.0)), 1e-3)
    idx = np.minimum(shells.index, shells.n_shells - 1)
    scale = np.sqrt(signal_power[idx] / snr / m.data.size).astype(np.float32)
    del ft, s, snr, idx
    halves = []
    for _ in range(2):
        w = fourier.rfft(rng.standard_normal(m.shape, dtype=np.float32))
        n = fourier.irfft(w * scale, m.shape)
        halves.append(Map(m.data + n, m.voxel_size, m.origin, path=f"half{len(halves) + 1}"))
    return halves


def main():
    if not os.path.exists(MAP):
        print("EMD-11007 not present (../shared/data/real)")
        return 1
    print(f"workers = {fourier.WORKERS}")
    rows = []
    m = step("read map", lambda: read_map(MAP), rows)
    h1, h2 = step("make half maps (not timed in total)", lambda: make_halves(m), rows)
    out = tempfile.mkdtemp(prefix="bench_level1_")
    thr = float(np.percentile(m.data, 97))
    ctx = Context(m, thr, resolution=2.9, out_dir=out, half_maps=(h1, h2))
    step("masks (shared with Level 0)", lambda: ctx.soft_mask, rows)
    step("half-map transforms (ctx.half_fts)", lambda: ctx.half_fts, rows)
    a = step("1.a global resolution", lambda: run_item(global_resolution, ctx), rows)
    b = step("1.b FDR-FSC", lambda: run_item(fdr_fsc, ctx), rows)
    step("figures 1.a + 1.b", lambda: (fsc_figures.draw_global_resolution(a, ctx),
                                       fsc_figures.draw_fdr_fsc(b, ctx)), rows)
    total = sum(dt for name, dt, _ in rows
                if name.startswith(("half-map", "1.a", "1.b", "figures")))
    print(f"{'Level 1 global items (total)':<34s} {total:7.2f} s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print("1.a", a.status, a.reason, {k: v for k, v in a.metrics.items()})
    print("1.b", b.status, b.reason, b.metrics)
    print("output in", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
