"""A.d Map–model Guinier match: do the map's and the model's amplitude fall-offs agree?

The Guinier profile (ln mean |F| per 1-voxel Fourier shell, :func:`cryovalid.kernels.fourier.
guinier_profile`, the same as 0.d's) of the map and of the model map with every B = 0, up to the
reported resolution; the map's profile is shifted to the model's mean and the two are
correlated (Pearson R), as the reference does with xmipp's ``.guinier`` files.
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import NotApplicable
from cryovalid.items.base import Fact, new_result
from cryovalid.kernels import fourier

ID = "A.d"
LEVEL = "A"
REQUIRES = ("model", "resolution", "fitted_model")
TITLE = "Map–model Guinier match"
SECTION = "Level A analysis"
MIN_CORRELATION = 0.5
MIN_SHELLS = 3

WARN_LOW = "The correlation between the two Guinier profiles, {r:.3f}, is below {limit:g}."

EXPLANATION = (
    "A map's amplitudes fall off with resolution as the atoms' images blur; the model map with "
    "every B-factor set to 0 shows the fall-off the atomic structure alone gives. Plotted as "
    "log amplitude against 1/d² (a Guinier plot), the two profiles should have the same shape up "
    "to the resolution (their offset and overall slope aside): a map whose profile does not "
    "follow the model's has features (or artefacts, or over-sharpening) the model does not "
    "explain.")

CRITERIA = (f"OK if the correlation between the two Guinier profiles, from the lowest "
            f"frequency to the reported resolution, is at least {MIN_CORRELATION:g}.")


def run(ctx):
    res = new_result(sys.modules[__name__])
    shells = ctx.map.shells
    s2_map, ln_map = fourier.guinier_profile(ctx.map.ft, shells)
    s2_mod, ln_mod = fourier.guinier_profile(fourier.rfft(ctx.model.model_map_b0), shells)
    limit = 1.0 / ctx.resolution ** 2 * (1 + 1e-9)
    common, i_map, i_mod = np.intersect1d(s2_map, s2_mod, return_indices=True)
    sel = common <= limit
    if sel.sum() < MIN_SHELLS:
        raise NotApplicable(f"only {int(sel.sum())} Fourier shells lie below the reported "
                            f"resolution; a profile needs at least {MIN_SHELLS}")
    s2, a, b = common[sel], ln_map[i_map][sel], ln_mod[i_mod][sel]
    a_shifted = a - a.mean() + b.mean()
    r = float(np.corrcoef(a_shifted, b)[0, 1])
    res.metrics["guinier_correlation"] = r
    res.facts += [Fact("Correlation of the Guinier profiles", r, "", "{:.3f}"),
                  Fact("Shells compared", f"{int(sel.sum())} (up to {ctx.resolution:g} Å)", "",
                       "{}")]
    res.notes.append("The DC shell is left out (the reference includes it: its amplitude is the "
                     "map's sum, near zero for a zero-mean map, and would dominate the "
                     "correlation).")
    if r < MIN_CORRELATION:
        res.warn("low_correlation", WARN_LOW, r=r, limit=MIN_CORRELATION)
        res.summary = ("The Guinier plots of the map and its model do not match (see A.d).")
    res.data.update(s2=s2, map_profile=a_shifted, model_profile=b, correlation=r)
    return res.finish()
