"""The step timer the per-level benchmarks share: seconds and peak traced memory of one step."""
import time
import tracemalloc


def step(name, fn, rows):
    """Run ``fn()``, print its seconds and peak traced memory (MiB), append (name, s, MiB) to
    ``rows`` and return what ``fn`` returned."""
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    rows.append((name, dt, peak))
    print(f"{name:<34s} {dt:7.2f} s   peak {peak:7.0f} MiB", flush=True)
    return out
