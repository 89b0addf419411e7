"""Before/after table of every metric: run two source trees of cryovalid on the same maps and
compare their report.json numbers (the check that a restructure changed no number).

    python benchmarks/compare_metrics.py BEFORE_SRC AFTER_SRC [--maps DIR] [--out DIR]

BEFORE_SRC / AFTER_SRC are ``src`` folders (e.g. of a ``git worktree`` at the old commit and of
this checkout). Each map runs with the automatic threshold and its reported resolution, JSON
only, in a fresh process per tree (``PYTHONPATH=<src> python -m cryovalid report ...``). Prints
one Markdown row per (map, item, metric) and a last line with the count of differences; exits 1
when a metric differs by more than 1e-6 (relative) or appears on one side only (an item added
since, listed as not run because its input was not given, is shown but not counted).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REAL = os.path.join(HERE, "..", "..", "shared", "data", "real")
# the bench maps: (label, path under the real-data folder, reported resolution Å)
MAPS = [("EMD-3488", "EMD-3488/emd_3488.map", 3.2),
        ("EMD-1997", "EMD-1997/emd_1997.map", 7.0),
        ("EMD-11007", "EMD-11007/emd_11007.map", 2.9)]


def run(src, path, resolution, out):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
    cmd = [sys.executable, "-m", "cryovalid", "report", path, "--resolution", str(resolution),
           "--out", out, "--formats", "json", "--quiet", "--force"]
    subprocess.run(cmd, env=env, check=True)
    with open(os.path.join(out, "report.json")) as fh:
        rep = json.load(fh)
    metrics = {("inputs", "threshold"): rep["inputs"]["threshold"]}
    for it in rep["items"]:
        for k, v in it["metrics"].items():
            metrics[(it["id"], k)] = v
        for k, v in it.get("flags", {}).items():
            metrics[(it["id"], k)] = v
        metrics[(it["id"], "status")] = it["status"]
    return metrics


def differs(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            not isinstance(a, bool) and not isinstance(b, bool):
        if math.isnan(a) and math.isnan(b):
            return False
        return abs(a - b) > 1e-6 * max(1.0, abs(a), abs(b))
    return a != b


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--maps", default=REAL)
    ap.add_argument("--out", default="/tmp/cryovalid-compare")
    args = ap.parse_args(argv)
    n_diff = n = 0
    print("| map | item | metric | before | after | |")
    print("|---|---|---|---|---|---|")
    for label, rel, res in MAPS:
        path = os.path.join(args.maps, rel)
        if not os.path.exists(path):
            print(f"| {label} | – | – | – | – | missing: {path} |")
            continue
        a = run(args.before, path, res, os.path.join(args.out, label, "before"))
        b = run(args.after, path, res, os.path.join(args.out, label, "after"))
        for key in sorted(set(a) | set(b)):
            va, vb = a.get(key, "—"), b.get(key, "—")
            if key not in a and key[1] == "status" and vb == "not_run":
                print(f"| {label} | {key[0]} | {key[1]} | — | {vb} | new item, its input not "
                      f"given |")
                continue
            bad = key not in a or key not in b or differs(va, vb)
            n += 1
            n_diff += bad
            print(f"| {label} | {key[0]} | {key[1]} | {va} | {vb} | {'DIFFERS' if bad else '='} |")
    print(f"\n{n} values compared, {n_diff} differ")
    return 1 if n_diff else 0


if __name__ == "__main__":
    sys.exit(main())
