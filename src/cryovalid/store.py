"""The output store: the one place that writes what items and figures produce.

Items hand artefacts (:class:`~cryovalid.results.Volume`, :class:`~cryovalid.results.Curves`,
:class:`~cryovalid.results.Text`) on their result, figure functions hand back a
:class:`~cryovalid.figures.common.Drawing` (PNG :class:`~cryovalid.results.Image` artefacts and
ChimeraX scripts); the pipeline passes them all to a store. :class:`FolderStore` writes them under a folder (the
report's staging folder, see :mod:`cryovalid.io.output`); a service or an archive can give
another object with the same ``write(artefact) -> str`` method.
"""
from __future__ import annotations

import csv
import math
import os

import numpy as np

from cryovalid.io.maps import write_map
from cryovalid.results import Curves, Image, Text, Volume


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (str, np.str_)):
        return str(v)
    if isinstance(v, (bool, np.bool_, int, np.integer)):
        return str(int(v))
    v = float(v)
    return f"{v:.6g}" if math.isfinite(v) else ""


class FolderStore:
    """Writes artefacts under ``root`` (folders created as needed); returns each file's path."""

    def __init__(self, root: str):
        self.root = root
        self._volumes = {}  # name -> the array written there (one copy for several items)

    def path(self, name: str) -> str:
        p = os.path.join(self.root, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def write(self, artefact) -> str:
        p = self.path(artefact.name)
        if isinstance(artefact, Volume):
            # the same array under the same name (the input map that three ChimeraX scripts
            # open) is written once
            if self._volumes.get(artefact.name) is artefact.data:
                return p
            write_map(p, artefact.data, artefact.voxel_size, artefact.origin)
            self._volumes[artefact.name] = artefact.data
        elif isinstance(artefact, Curves):
            headers = [h for h, _ in artefact.columns]
            cols = [list(c) for _, c in artefact.columns]
            with open(p, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(headers)
                for row in zip(*cols):
                    w.writerow([_cell(v) for v in row])
        elif isinstance(artefact, Image):
            with open(p, "wb") as fh:
                fh.write(artefact.png)
        elif isinstance(artefact, Text):
            with open(p, "w", encoding="utf-8") as fh:
                fh.write(artefact.text)
        else:
            raise TypeError(f"not an artefact: {type(artefact).__name__}")
        return p
