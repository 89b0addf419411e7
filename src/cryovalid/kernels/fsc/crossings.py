"""Where a curve first passes a threshold (linear interpolation between shells).

Part of :mod:`cryovalid.kernels.fsc` (the methods are described there)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np




CROSSES, NEVER, AT_START = "crosses", "never", "at_start"


@dataclass
class Crossing:
    """Where a curve first passes a threshold.

    frequency : 1/Å at the crossing (linear interpolation), None unless status == "crosses"
    index : index of the first sample past the threshold (None when it never passes)
    status : "crosses"; "never" (the curve never passes the threshold); "at_start" (it is
        already past the threshold at the first sample considered, so no crossing is reported)
    """

    frequency: float | None
    index: int | None
    status: str

    @property
    def resolution(self) -> float | None:
        """Resolution in Å (1/frequency), None when there is no crossing."""
        if self.frequency is None or self.frequency <= 0:
            return None
        return 1.0 / self.frequency


def first_crossing(x, y, threshold, mode: str = "below", start: int = 1) -> Crossing:
    """First crossing of ``y`` (sampled at ``x``) past ``threshold`` (a number or a curve).

    This is the reference's ``findFirstCross`` with its rules written down:

    * the search starts at sample ``start`` (default 1: the DC term, whose FSC is ±1 and whose
      phase difference is 0° or 180° depending only on the signs of the map means, is ignored);
    * the first index i0 ≥ start where y < threshold (``mode="below"``) or y > threshold
      (``mode="above"``) is the crossing; NaN never counts as past the threshold;
    * if i0 == start the curve is past the threshold from the beginning and, as in the reference
      (which ignores crossings at the first two samples), no crossing is reported
      (status "at_start");
    * otherwise x is interpolated linearly between samples i0-1 and i0 at the threshold
      (for a threshold curve, at the zero of y - threshold).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    t = np.broadcast_to(np.asarray(threshold, dtype=np.float64), y.shape)
    d = y - t
    with np.errstate(invalid="ignore"):
        past = d < 0 if mode == "below" else d > 0
    past[:start] = False
    hits = np.flatnonzero(past)
    if hits.size == 0:
        return Crossing(None, None, NEVER)
    i0 = int(hits[0])
    if i0 <= start:
        return Crossing(None, i0, AT_START)
    d0, d1 = d[i0 - 1], d[i0]
    if not np.isfinite(d0) or not np.isfinite(d1) or d1 == d0:
        f = x[i0] if not np.isfinite(d0) else x[i0 - 1]
    else:
        f = x[i0 - 1] + (x[i0] - x[i0 - 1]) * (0.0 - d0) / (d1 - d0)
    return Crossing(float(f), i0, CROSSES)
