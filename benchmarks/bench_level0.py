"""Benchmark: seconds and peak memory per step of the Level 0 report on EMD-11007 (240³).

Run with `make bench`. Needs ../shared/data/real (or give a map path as the first argument).
Peak memory is the process's maximum resident set size after each step (it only grows).
Target (issue 2): input data + 0.a-0.d + json/html/pdf <= 20 s and <= 2 GB on 2 cores.
"""
import os
import resource
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "..", "shared", "data", "real", "EMD-11007", "emd_11007.map")


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    threshold = float(sys.argv[2]) if len(sys.argv) > 2 else 2.5
    resolution = float(sys.argv[3]) if len(sys.argv) > 3 else 2.9
    if not os.path.exists(path):
        print(f"benchmark map not found: {path}")
        return 0
    from cryovalid.context import Context
    from cryovalid.store import FolderStore
    from cryovalid.io.maps import read_map
    from cryovalid.items.base import run_item
    from cryovalid import registry
    from cryovalid.figures import level0 as fig0
    from cryovalid.report import model, render

    out = tempfile.mkdtemp(prefix="cryovalid-bench-")
    rows = []

    def step(name, fn):
        t0 = time.perf_counter()
        value = fn()
        rows.append((name, time.perf_counter() - t0, peak_mb()))
        return value

    t_all = time.perf_counter()
    m = step("read map", lambda: read_map(path))
    ctx = Context.of(m, threshold, resolution=resolution)
    store = FolderStore(out)

    def drawn(drawing):  # what the pipeline does with a figure function's Drawing
        for a in drawing.artefacts:
            store.write(a)
        return drawing.figures

    step("masks", lambda: (ctx.map.hard_mask, ctx.map.soft_mask))
    figs = step("input data figures", lambda: drawn(fig0.draw_input_data(ctx)))
    results = []
    for s in registry.steps("0"):
        def one(s=s):
            r = run_item(s.module, ctx)
            if s.draw:
                r.figures += drawn(s.draw(r, ctx))
            for a in r.artefacts:
                store.write(a)
            r.data.clear()
            return r
        results.append(step(f"{s.module.ID} {s.module.TITLE}", one))
    rep = step("report model", lambda: model.build(ctx, {"input_data": figs}, results))
    for fmt in ("json", "html", "pdf"):
        step(f"write {fmt}", lambda fmt=fmt: render.WRITERS[fmt](rep, out))
    total = time.perf_counter() - t_all
    print(f"map {os.path.basename(path)} shape {m.shape} voxel {m.voxel_size:.3f} Å, "
          f"{os.cpu_count()} cores")
    print(f"{'step':<34}{'seconds':>9}{'peak RSS MB':>13}")
    for name, sec, mb in rows:
        print(f"{name:<34}{sec:9.2f}{mb:13.0f}")
    print(f"{'total':<34}{total:9.2f}{peak_mb():13.0f}")
    print(f"statuses: {[(r.id, r.status) for r in results]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
