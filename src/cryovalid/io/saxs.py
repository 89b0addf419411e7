"""Reader of an experimental SAXS curve (Level O, item O.b): an ATSAS-style ``.dat`` file.

Format: text; comment and header lines (starting with ``#`` or not starting with a number) are
kept as the header; each data line holds 2 or more numbers separated by blanks, commas or
semicolons: q, I(q) and optionally sigma(q) (further columns are ignored).

q units (the rule, stated in :data:`UNIT_RULE` and in the curve's notes): q is in 1/Å unless the
header names an inverse nm (``1/nm``, ``nm^-1``, ``nm-1``, ``nm⁻¹``), in which case it is in
1/nm and divided by 10. A header naming an inverse Å (``1/A``, ``A^-1``, ``1/Å``, ``Å-1``)
means 1/Å; a plain length unit (``[nm]``, a wavelength) says nothing about q. When the
header names neither, q is taken as 1/nm (and divided by 10) if its largest value exceeds
:data:`NM_GUESS_Q_MAX` (a SAXS curve in 1/Å seldom reaches 1 Å⁻¹, one in 1/nm seldom stops below
1 nm⁻¹), else as 1/Å; a guess is always noted.

Checks (an :class:`~cryovalid.errors.InputError` with one line naming the file and line): a
data line whose columns are not numbers, non-finite q or I, negative q, fewer than
:data:`MIN_POINTS` points. Rows with q = 0 are dropped (no scattering angle); a sigma column
with a value ≤ 0 or not finite is not used (sigma is then None and the item estimates it) and
so noted; rows out of order are sorted by q and so noted.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from cryovalid.errors import InputError
from cryovalid.io.maps import read_small_text, sha256_of

MIN_POINTS = 10
NM_GUESS_Q_MAX = 1.0  # largest q above which an unlabelled curve is read as 1/nm
MAX_BYTES = 50 * 1024 * 1024  # a SAXS curve is a few kB; anything this large is not one
UNIT_RULE = (f"q is read in 1/Å unless the header names nm (then 1/nm, divided by 10); with no "
             f"unit in the header, q is read as 1/nm when its largest value exceeds "
             f"{NM_GUESS_Q_MAX:g}, else as 1/Å")

# inverse units only ("[nm]" alone names a length, e.g. a wavelength, not q's unit)
_NM = re.compile(r"(1\s*/\s*nm|nm\s*\^?\s*[-−]\s*1|nm⁻¹|inverse\s+nm)", re.IGNORECASE)
_ANG = re.compile(r"(1\s*/\s*(a|å|ang|angstrom)\b|(\ba|å|ang|angstrom)\s*\^?\s*[-−]\s*1|å⁻¹|"
                  r"inverse\s+(a|å|ang))", re.IGNORECASE)
_SPLIT = re.compile(r"[\s,;]+")


@dataclass
class SaxsCurve:
    """An experimental SAXS curve. ``q`` in 1/Å (float64, increasing, > 0), ``intensity`` in
    the file's (arbitrary) units, ``sigma`` its standard errors (None when the file has no
    usable third column)."""
    path: str
    sha256: str
    q: np.ndarray
    intensity: np.ndarray
    sigma: Optional[np.ndarray]
    q_unit: str  # the unit the file's q was read in: "1/Å" or "1/nm"
    unit_source: str  # "header" or "guessed from the values"
    header: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def n_points(self) -> int:
        return int(self.q.size)


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def read_saxs(path: str) -> SaxsCurve:
    """Read and check a SAXS curve (see the module docstring)."""
    text = read_small_text(path, MAX_BYTES, "a SAXS curve (text with q I sigma)")
    header, rows, ncols = [], [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#") or s.startswith("!"):
            header.append(s)
            continue
        toks = [t for t in _SPLIT.split(s) if t]
        if not _is_number(toks[0]):
            header.append(s)  # a header line (column names, sample description, footer)
            continue
        vals = []
        for t in toks[:3]:
            if not _is_number(t):
                break
            vals.append(float(t))
        if len(vals) < 2:
            raise InputError(f"{path}: line {lineno}: expected q I [sigma] as numbers, got "
                             f"{s[:60]!r}")
        rows.append(vals)
        ncols.append(len(vals))
    if not rows:
        raise InputError(f"{path}: no data lines (q I [sigma]) found: not a SAXS curve")
    notes = []
    has_sigma = min(ncols) >= 3
    if not has_sigma and max(ncols) >= 3:
        notes.append("Some data lines have no sigma column: the sigma column was not used.")
    q = np.array([r[0] for r in rows], dtype=np.float64)
    inten = np.array([r[1] for r in rows], dtype=np.float64)
    sig = np.array([r[2] for r in rows], dtype=np.float64) if has_sigma else None
    bad = ~(np.isfinite(q) & np.isfinite(inten))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path}: data point {i + 1} has a q or I that is not a finite number")
    if (q < 0).any():
        raise InputError(f"{path}: negative q values: not a scattering curve")
    keep = q > 0
    if not keep.all():
        notes.append(f"{int((~keep).sum())} point(s) at q = 0 were dropped.")
        q, inten = q[keep], inten[keep]
        sig = sig[keep] if sig is not None else None
    if q.size < MIN_POINTS:
        raise InputError(f"{path}: only {q.size} data points; a SAXS curve needs at least "
                         f"{MIN_POINTS}")
    if np.any(np.diff(q) < 0):
        order = np.argsort(q, kind="stable")
        q, inten = q[order], inten[order]
        sig = sig[order] if sig is not None else None
        notes.append("The points were not in increasing q: they were sorted.")
    if sig is not None and not (np.all(np.isfinite(sig)) and np.all(sig > 0)):
        notes.append("The sigma column has values that are zero, negative or not finite: it "
                     "was not used (sigma is estimated from the curve's point-to-point scatter).")
        sig = None

    head = " ".join(header)
    if _NM.search(head):
        unit, source = "1/nm", "header"
    elif _ANG.search(head):
        unit, source = "1/Å", "header"
    else:
        unit = "1/nm" if float(q.max()) > NM_GUESS_Q_MAX else "1/Å"
        source = "guessed from the values"
        notes.append(f"The file does not state the unit of q: read as {unit} ({UNIT_RULE}).")
    if unit == "1/nm":
        q = q / 10.0
    if source == "header":
        notes.append(f"q was read in {unit} as the file's header states.")
    return SaxsCurve(path=os.path.abspath(path), sha256=sha256_of(path), q=q, intensity=inten,
                     sigma=sig, q_unit=unit, unit_source=source, header=header, notes=notes)
