"""Figures of 4.i (CTF stability, vrs_level2_5.md §3.11): the reference's seven histograms (25
bins) of the refined defocus and astigmatism, their differences from the given values, the
phase shift (refined for phase-plate data, else as given), the relative B-factor and the relative scale factor.
Draws ``res.data`` only."""
from __future__ import annotations

from cryovalid.figures.common import Drawing, histogram

# key of res.data["values"] -> (file, x label, caption)
PANELS = (
    ("defocus", "ctf_defocus_hist.png", "Defocus (Å)",
     "Histogram of the defocus after local refinement (Å)."),
    ("astigmatism", "ctf_astigmatism_hist.png", "Astigmatism |U − V| (Å)",
     "Histogram of the astigmatism after local refinement (Å)."),
    ("ddiff", "ctf_defocus_difference_hist.png", "Defocus difference (Å)",
     "Histogram of the difference in defocus (given − refined, Å)."),
    ("adiff", "ctf_astigmatism_difference_hist.png", "Astigmatism difference (Å)",
     "Histogram of the difference in astigmatism (given − refined, Å)."),
    ("phase", "ctf_phase_hist.png", "Phase shift (degrees)",
     "Histogram of the CTF phase shift (degrees; {phase})."),
    ("bfactor", "ctf_bfactor_hist.png", "B-factor (Å², relative)",
     "Histogram of the B-factor (Å², relative to the particles' median)."),
    ("scale", "ctf_scale_hist.png", "Scale factor (relative)",
     "Histogram of the scale factor (relative to the particles' median)."),
)


def draw_ctf_stability(res, ctx) -> Drawing:
    out = Drawing()
    values = res.data.get("values")
    if values is None:
        return out
    phase = ("after local refinement" if res.data.get("phase_refined")
             else "as given, not refined")
    for key, name, xlabel, caption in PANELS:
        caption = caption.format(phase=phase)
        marker = 0.0 if key in ("ddiff", "adiff") else None
        out.add(name, histogram(values[key], xlabel, marker, "0" if marker is not None
                                else None), caption)
    return out


DRAWS = {"4.i": draw_ctf_stability}
