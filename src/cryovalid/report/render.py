"""Render the report dict to report.json, a self-contained report.html and report.pdf.

The renderer lays out what model.build decided; it computes nothing. Number formats come with
each fact and table column. Figures are embedded in the HTML as data URIs, so the file can be
mailed on its own; the PDF is made by WeasyPrint from the same HTML.
"""
from __future__ import annotations

import base64
import json
import logging
import math
import os

import jinja2

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")


def _fmt(value, fmt):
    if value is None:
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return "–"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def _json_default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o):
    """Replace NaN/inf by None so that report.json is strict JSON."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def write_json(report: dict, out_dir: str) -> str:
    path = os.path.join(out_dir, "report.json")
    with open(path, "w") as f:
        json.dump(_clean(json.loads(json.dumps(report, default=_json_default))), f, indent=2,
                  allow_nan=False)
    return path


def _data_uri(out_dir, rel):
    if not rel:
        return ""
    path = os.path.join(out_dir, rel)
    if not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


def to_html(report: dict, out_dir: str, for_pdf: bool = False) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    env.filters["fmt"] = _fmt
    env.globals["img"] = lambda rel: _data_uri(out_dir, rel)
    return env.get_template("report.html.j2").render(r=report, for_pdf=for_pdf)


def write_html(report: dict, out_dir: str) -> str:
    path = os.path.join(out_dir, "report.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_html(report, out_dir))
    return path


def write_pdf(report: dict, out_dir: str) -> str:
    for name in ("weasyprint", "fontTools", "fontTools.subset"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import weasyprint

    path = os.path.join(out_dir, "report.pdf")
    weasyprint.HTML(string=to_html(report, out_dir, for_pdf=True), base_url=out_dir).write_pdf(path)
    return path


WRITERS = {"json": write_json, "html": write_html, "pdf": write_pdf}
