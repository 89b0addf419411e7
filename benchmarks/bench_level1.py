"""Benchmark of every Level 1 item (1.a–1.h) on 240³ half maps (``--figures`` draws them too).

The half maps are EMD-11007 (240³, 0.834 Å) plus independent Gaussian noise shaped per shell so
that the FSC falls off like a real one and crosses 0.143 at 3.0 Å. Prints seconds and peak
traced memory per step, and the process's peak RSS. Targets on 2 cores: 1.a + 1.b ≤ 20 s; 1.c–1.h ≤ 120 s
and ≤ 3 GB. Run with 2 workers:

    CRYOVALID_WORKERS=2 PYTHONPATH=src python benchmarks/bench_level1.py
"""
from __future__ import annotations

import os
import resource
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from steps import step  # noqa: E402
from cryovalid import registry  # noqa: E402
from cryovalid.context import Context  # noqa: E402
from cryovalid.io.maps import Map, read_map  # noqa: E402
from cryovalid.items.base import run_item  # noqa: E402
from cryovalid.kernels import fourier  # noqa: E402

MAP = os.path.join(HERE, "..", "..", "shared", "data", "real", "EMD-11007", "emd_11007.map")


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
    print(f"workers = {fourier.workers()}")
    rows = []
    m = step("read map", lambda: read_map(MAP), rows)
    h1, h2 = step("make half maps (not timed in total)", lambda: make_halves(m), rows)
    thr = float(np.percentile(m.data, 97))
    ctx = Context.of(m, thr, resolution=2.9, half_maps=(h1, h2))
    step("masks (shared with Level 0)", lambda: ctx.map.soft_mask, rows)
    step("half-map transforms (ctx.half_maps.fts)", lambda: ctx.half_maps.fts, rows)
    results = []
    for s in registry.steps("1"):  # every Level 1 item, in run order
        r = step(f"{s.module.ID} {s.module.TITLE[:28]}", lambda s=s: run_item(s.module, ctx),
                 rows)
        results.append(r)
        if "--figures" in sys.argv and s.draw is not None:
            step(f"   figures of {s.module.ID}", lambda s=s, r=r: s.draw(r, ctx), rows)
    total = sum(dt for name, dt, _ in rows if name.startswith(("half-map", "1.", "   fig")))
    print(f"{'Level 1 items (total)':<34s} {total:7.2f} s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    for r in results:
        est = [round(e["resolution_A"], 2) for e in r.resolution_estimates]
        print(r.id, r.status, r.reason, "estimates", est)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
