"""The table across a batch's entries: ``summary.csv``, ``summary.json`` and ``summary.html``.

One row per entry: its name, its source (EMDB ID or map file), ``status`` (``complete`` or
``failed``), the levels graded, the items passed and evaluable, the score (passed / evaluable),
the error of a failed entry, the seconds it took, and for every item of the registry its status
and its headline metric. An item's headline metric is the first number of its ``metrics`` (each
item lists its main number first: 0.d the B-factor, 1.a the FSC resolution, A.a CC_mask, …).

``summary.csv`` columns: ``entry, status, levels, passed, evaluable``, then one column per item
ID with its status, then ``score, error, seconds, source, report`` and one ``<ID> <metric>``
column per item with its headline value.
"""
from __future__ import annotations

import csv
import json
import os
from typing import Optional

from cryovalid import registry

COMPLETE, FAILED = "complete", "failed"


def item_ids() -> list:
    """Every item ID, in report order."""
    return [m.ID for m in registry.items()]


def headline(item: dict):
    """(metric name, value) of an item's first numeric metric, or (None, None)."""
    for k, v in (item.get("metrics") or {}).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return k, v
    return None, None


def row_from_report(name: str, source: str, report: dict, seconds: Optional[float],
                    report_path: str = "") -> dict:
    """A complete entry's row, from its report dict (report.json)."""
    sc = report.get("score", {})
    passed, evaluable = int(sc.get("passed", 0)), int(sc.get("evaluable", 0))
    items, heads = {}, {}
    for it in report.get("items", []):
        items[it["id"]] = it["status"]
        k, v = headline(it)
        if k is not None and it["status"] in ("ok", "warnings"):
            heads[it["id"]] = {"metric": k, "value": v}
    return {"entry": name, "source": source, "status": COMPLETE,
            "levels": list(report.get("levels", [])), "passed": passed, "evaluable": evaluable,
            "score": round(passed / evaluable, 4) if evaluable else None, "error": "",
            "seconds": None if seconds is None else round(float(seconds), 2),
            "report": report_path, "items": items, "headlines": heads}


def failed_row(name: str, source: str, error: str, seconds: Optional[float] = None) -> dict:
    return {"entry": name, "source": source, "status": FAILED, "levels": [], "passed": None,
            "evaluable": None, "score": None, "error": error,
            "seconds": None if seconds is None else round(float(seconds), 2), "report": "",
            "items": {}, "headlines": {}}


def _csv_rows(rows, ids):
    head = (["entry", "status", "levels", "passed", "evaluable"] + ids
            + ["score", "error", "seconds", "source", "report"])
    metric_cols = []
    for i in ids:
        names = sorted({r["headlines"][i]["metric"] for r in rows if i in r["headlines"]})
        metric_cols += [(i, n) for n in names]
    head += [f"{i} {n}" for i, n in metric_cols]
    yield head
    for r in rows:
        line = [r["entry"], r["status"], ",".join(r["levels"]),
                "" if r["passed"] is None else r["passed"],
                "" if r["evaluable"] is None else r["evaluable"]]
        line += [r["items"].get(i, "") for i in ids]
        line += ["" if r["score"] is None else r["score"], r["error"],
                 "" if r["seconds"] is None else r["seconds"], r["source"], r["report"]]
        for i, n in metric_cols:
            h = r["headlines"].get(i)
            line.append(h["value"] if h and h["metric"] == n else "")
        yield line


def write(out: str, rows: list, seconds: Optional[float] = None) -> dict:
    """Write summary.csv, summary.json and summary.html into ``out``; return the summary."""
    from cryovalid.report.render import write_summary_html

    ids = item_ids()  # every item of this version, so that batches line up
    summary = {
        "entries": len(rows),
        "complete": sum(r["status"] == COMPLETE for r in rows),
        "failed": sum(r["status"] == FAILED for r in rows),
        "seconds": None if seconds is None else round(float(seconds), 1),
        "item_ids": ids,
        "rows": rows,
    }
    tmp = os.path.join(out, ".summary.csv.part")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(_csv_rows(rows, ids))
    os.replace(tmp, os.path.join(out, "summary.csv"))
    tmp = os.path.join(out, ".summary.json.part")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1)
    os.replace(tmp, os.path.join(out, "summary.json"))
    write_summary_html(summary, out)
    return summary
