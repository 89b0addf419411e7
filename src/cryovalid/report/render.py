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
import re

import jinja2

from cryovalid.scoped import ScopedOverride

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")

MAX_SIGNIFICANT = 4  # a fixed-point format shows at most this many significant digits …
# … but never rounds the integer part: 18432.79 with {:.2f} shows 18433, 2.3707 shows 2.37
_FIXED = re.compile(r"^\{:([+ ]?)\.(\d+)f\}$")
_EXPONENT = re.compile(r"(\d)e([+-])0*(\d+)")
_SUPERSCRIPT = str.maketrans("0123456789-+", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺")
TEXT_WIDTH_MM = 182.0  # A4 less the page margins: the widest a figure is shown
MAX_FIGURE_HEIGHT_MM = 240.0  # A4 text height less a caption: a taller figure is scaled down


def _exponent(match):
    sign = "⁻" if match.group(2) == "-" else ""
    return f"{match.group(1)} × 10{(sign + match.group(3)).translate(_SUPERSCRIPT)}"


def _fmt(value, fmt):
    """Format a fact or table value: ``fmt`` as the item gave it, with no false precision (see
    MAX_SIGNIFICANT) and powers of ten written as × 10ⁿ instead of e-notation."""
    if value is None:
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return "–"
    m = _FIXED.match(fmt) if isinstance(value, float) else None
    if m:
        a = abs(value)
        integer_digits = len(str(int(a))) if a >= 1 else 0
        decimals = min(int(m.group(2)), max(0, MAX_SIGNIFICANT - integer_digits))
        fmt = "{:" + m.group(1) + f".{decimals}f}}"
    try:
        text = fmt.format(value)
    except (ValueError, TypeError):
        return str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = _EXPONENT.sub(_exponent, text)
    return text


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


def _img_style(out_dir, rel):
    """The CSS size of a figure: its physical size (pixels / the dpi saved in the PNG), so that
    a font of n pt in the figure prints at n pt; scaled down only where it would not fit."""
    from PIL import Image

    try:
        with Image.open(os.path.join(out_dir, rel)) as im:
            w_px, h_px = im.size
            dpi = im.info.get("dpi")
    except (OSError, ValueError):
        return ""
    if not dpi or not dpi[0] or dpi[0] < 10:  # no physical size: as wide as the text
        return "width: 100%"
    w_mm, h_mm = 25.4 * w_px / float(dpi[0]), 25.4 * h_px / float(dpi[1] or dpi[0])
    scale = min(1.0, TEXT_WIDTH_MM / w_mm, MAX_FIGURE_HEIGHT_MM / h_mm)
    return f"width: {w_mm * scale:.1f}mm"


def _toc_tree(toc):
    """[(section, [subsections])] from the flat table of contents."""
    tree = []
    for e in toc:
        if e["depth"] == 1 or not tree:
            tree.append((e, []))
        else:
            tree[-1][1].append(e)
    return tree


def to_html(report: dict, out_dir: str, for_pdf: bool = False) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    env.filters["fmt"] = _fmt
    env.globals["img"] = lambda rel: _data_uri(out_dir, rel)
    env.globals["img_style"] = lambda rel: _img_style(out_dir, rel)
    env.globals["toc_tree"] = _toc_tree
    sections = {e["anchor"]: e for e in report.get("toc", [])}
    env.globals["sec"] = lambda anchor: sections.get(anchor, {"number": "", "title": anchor,
                                                              "anchor": anchor})
    return env.get_template("report.html.j2").render(r=report, for_pdf=for_pdf)


def write_html(report: dict, out_dir: str) -> str:
    path = os.path.join(out_dir, "report.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_html(report, out_dir))
    return path


def write_summary_html(summary: dict, out_dir: str) -> str:
    """summary.html of a batch (cryovalid.batch.summary decides what it holds); entries link
    to their report.html, relative to ``out_dir``."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    env.filters["fmt"] = _fmt
    rows = [dict(r, source_name=os.path.basename(str(r.get("source", "")))) for r in
            summary["rows"]]
    html = env.get_template("summary.html.j2").render(s=dict(summary, rows=rows))
    path = os.path.join(out_dir, "summary.html")
    tmp = os.path.join(out_dir, ".summary.html.part")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(html)
    os.replace(tmp, path)
    return path


QUIET_LOGGERS = ("weasyprint", "fontTools", "fontTools.subset")  # chatty during write_pdf
def _quiet_loggers():
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    return saved


# QUIET_LOGGERS at ERROR while a PDF is written, their own levels restored when the last
# overlapping write ends (also after an exception), so that a caller's logging setup is left as
# it was, even with PDFs written in several threads at once. Levels are per logger, not per
# thread: the stdlib has no narrower switch that also covers child loggers.
_pdf_loggers_quiet = ScopedOverride(_quiet_loggers,
                                    lambda saved: [lg.setLevel(lv) for lg, lv in saved])


def write_pdf(report: dict, out_dir: str) -> str:
    path = os.path.join(out_dir, "report.pdf")
    html = to_html(report, out_dir, for_pdf=True)
    with _pdf_loggers_quiet():  # WeasyPrint's and fontTools' warnings off the terminal
        import weasyprint

        weasyprint.HTML(string=html, base_url=out_dir).write_pdf(path)
    return path


WRITERS = {"json": write_json, "html": write_html, "pdf": write_pdf}
