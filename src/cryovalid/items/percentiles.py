"""The percentile summary several items give of a distribution (local maps, Q-scores, FSC-Qr):
one set of percentiles, one metric naming, one table layout. Not an item (no ``ID``)."""
from __future__ import annotations

import numpy as np

from cryovalid.results import Table

PERCENTILES = (2.5, 25.0, 50.0, 75.0, 97.5)
PERCENTILE_KEYS = ("p2_5", "p25", "p50", "p75", "p97_5")  # metric names, in that order


def percentile_table(title, values, column, fmt):
    """(Table "Percentile | ``column``" of ``values`` at PERCENTILES, the percentiles)."""
    p = np.percentile(values, PERCENTILES)
    return Table(title, ["Percentile", column],
                 [[f"{q:g} %", float(v)] for q, v in zip(PERCENTILES, p)], ["{}", fmt]), p


def record(metrics: dict, p, digits: int = 3) -> None:
    """The percentiles as metrics ``p2_5`` … ``p97_5``, rounded to ``digits`` decimals."""
    for key, v in zip(PERCENTILE_KEYS, p):
        metrics[key] = round(float(v), digits)
