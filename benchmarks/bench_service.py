"""Load benchmark of the web service (loopback only, bounded).

Starts ``cryovalid serve`` on 127.0.0.1 (a free port, its own data folder), then at once:
N concurrent submissions of a small synthetic map (json only) and R readers fetching the
archive page in a loop. Prints submissions/s, job throughput (jobs/s, from the first
submission to the last job finished), p50/p95/max latency of the archive page while jobs run,
and checks that every job completed exactly once (status done, one attempt, one report) and
that no request failed. Target: p95 of the archive ≤ 200 ms while jobs run.

    .venv/bin/python benchmarks/bench_service.py [--jobs 50] [--readers 8] [--workers 2]
                                                 [--size 24]
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import mrcfile
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
P95_TARGET_S = 0.200
THRESHOLD = 0.3


def write_map(path, n):
    """A Gaussian blob (peak 1, sigma n/8 voxels) in 1 % noise, 1.5 Å voxels."""
    z, y, x = np.mgrid[:n, :n, :n].astype(np.float32)
    c = (n - 1) / 2.0
    vol = np.exp(-((x - c) ** 2 + (y - c) ** 2 + (z - c) ** 2) / (2 * (n / 8.0) ** 2))
    vol = vol.astype(np.float32) + 0.01 * np.random.default_rng(0).standard_normal(
        (n, n, n)).astype(np.float32)
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(vol)
        m.voxel_size = 1.5
    return path


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values, q):
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def run(data, jobs=50, readers=8, workers=2, size=24, timeout=300.0) -> dict:
    """Run the load against a fresh server on ``data``; returns the figures and checks."""
    os.makedirs(data, exist_ok=True)
    path = write_map(os.path.join(data, "..", f"blob{size}.mrc"), size)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(os.path.join(data, "..", "server.log"), "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cryovalid.service", "serve", "--data", data, "--port",
         str(port), "--workers", str(workers), "--rate-limit", "0", "--formats", "json"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")})
    failures, latencies = [], []
    try:
        t0 = time.monotonic()
        while True:
            try:
                if httpx.get(url + "/api/jobs", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() - t0 > 60:
                raise RuntimeError("the server did not start; see server.log")
            time.sleep(0.1)
        body = open(path, "rb").read()
        limits = httpx.Limits(max_connections=jobs + readers + 4)
        client = httpx.Client(timeout=120, limits=limits)
        stop = threading.Event()
        running = threading.Event()

        def reader():
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    r = client.get(url + "/archive")
                    ok = r.status_code == 200
                except httpx.HTTPError as exc:
                    ok, r = False, exc
                dt = time.perf_counter() - t
                if not ok:
                    failures.append(f"GET /archive: {r}")
                elif running.is_set():
                    latencies.append(dt)

        def submit(i):
            try:
                r = client.post(url + "/api/jobs", files={"map": (f"blob-{i}.mrc", body)},
                                data={"threshold": str(THRESHOLD), "name": f"load-{i}"})
            except httpx.HTTPError as exc:
                failures.append(f"POST /api/jobs: {exc!r}")
                return None
            if r.status_code != 201:
                failures.append(f"POST /api/jobs: {r.status_code} {r.text[:200]}")
                return None
            return r.json()["id"]

        threads = [threading.Thread(target=reader, daemon=True) for _ in range(readers)]
        for t in threads:
            t.start()
        running.set()
        t_sub = time.monotonic()
        with cf.ThreadPoolExecutor(jobs) as ex:
            ids = [i for i in ex.map(submit, range(jobs)) if i]
        t_subbed = time.monotonic()
        while True:
            r = client.get(url + "/api/jobs", params={"limit": 500})
            if r.status_code != 200:
                failures.append(f"GET /api/jobs: {r.status_code}")
            st = [j["status"] for j in r.json()["jobs"]]
            if st.count("queued") + st.count("running") == 0 and len(st) >= len(ids):
                break
            if time.monotonic() - t_sub > timeout:
                failures.append(f"timed out: {st.count('done')} of {len(ids)} done")
                break
            time.sleep(0.2)
        t_done = time.monotonic()
        running.clear()
        stop.set()
        for t in threads:
            t.join(10)
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    con = sqlite3.connect(os.path.join(data, "cryovalid.sqlite"))
    rows = con.execute("SELECT id, status, attempts FROM jobs").fetchall()
    con.close()
    reports = sum(os.path.isfile(os.path.join(data, "jobs", i, "report", "report.json"))
                  for i, _, _ in rows)
    return {"jobs": jobs, "submitted": len(ids), "rows": len(rows),
            "done_once": sum(1 for _, s, a in rows if s == "done" and a == 1),
            "distinct_ids": len({r[0] for r in rows}), "reports": reports,
            "failures": failures, "submit_s": t_subbed - t_sub,
            "submissions_per_s": len(ids) / max(t_subbed - t_sub, 1e-9),
            "jobs_per_s": len(ids) / max(t_done - t_sub, 1e-9), "total_s": t_done - t_sub,
            "archive_requests": len(latencies), "p50_s": _percentile(latencies, 50),
            "p95_s": _percentile(latencies, 95),
            "max_s": max(latencies) if latencies else float("nan")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--readers", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=24, help="map edge, voxels")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        f = run(os.path.join(tmp, "data"), a.jobs, a.readers, a.workers, a.size)
    print(f"{f['submitted']}/{f['jobs']} submissions in {f['submit_s']:.2f} s "
          f"({f['submissions_per_s']:.1f} submissions/s)")
    print(f"all jobs finished in {f['total_s']:.2f} s ({f['jobs_per_s']:.2f} jobs/s, "
          f"{a.workers} workers, {a.size}³ map, json only)")
    print(f"archive page while jobs ran ({a.readers} readers, {f['archive_requests']} "
          f"requests): p50 {1000 * f['p50_s']:.0f} ms, p95 {1000 * f['p95_s']:.0f} ms, "
          f"max {1000 * f['max_s']:.0f} ms (target p95 <= {1000 * P95_TARGET_S:.0f} ms)")
    print(f"exactly once: {f['done_once']} of {f['rows']} rows done with one attempt, "
          f"{f['distinct_ids']} distinct ids, {f['reports']} reports; "
          f"failed requests: {len(f['failures'])}")
    for x in f["failures"][:10]:
        print("  ", x)
    ok = (f["done_once"] == f["jobs"] == f["rows"] == f["reports"] and not f["failures"]
          and f["p95_s"] <= P95_TARGET_S)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
