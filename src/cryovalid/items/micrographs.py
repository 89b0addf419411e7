"""5.a Micrograph cleaner (vrs_level2_5.md §4.2): how many of the particles' coordinates lie on
carbon, ice contamination or aggregates.

The reference runs MicrographCleaner (Sanchez-Garcia et al. 2020, J Struct Biol 210:107498), a
U-net, and keeps a coordinate whose goodness score is at least 0.9. We use no learned model:
kernels/micrograph_quality.py maps each micrograph's bad regions from robust z-scores of its
local mean and local texture, the measure RELION's auto-picker uses to avoid carbon and
contamination (Scheres 2015, J Struct Biol 189:114-122, ``--max_stddev_noise``, and RELION 3's
``--min_avg_noise``), with half-maximum boundaries; a coordinate's goodness is the good fraction
of its particle box. A coordinate is kept when its goodness is at least :data:`GOOD_LIMIT`.
The numbers are this detector's, not MicrographCleaner's: it sees what differs in mean or
texture from the bulk of the micrograph at the particle's scale, and it assumes that at least
half of each micrograph is good.

Metrics: n_in (coordinates on the micrographs assessed), n_out (kept), n_flagged,
percent_flagged (%), n_micrographs, n_micrographs_assessed, n_unmatched (particles whose
micrograph was not given), n_outside (coordinates off their micrograph), box_px (particle box
in micrograph pixels), bad_area_percent_mean / _max (% of a micrograph's area).
"""
from __future__ import annotations

import sys

import numpy as np

from cryovalid.errors import CannotMeasure, NotApplicable
from cryovalid.items.base import Curves, Fact, Table, new_result
from cryovalid.kernels import micrograph_quality as mq

ID = "5.a"
LEVEL = "5"
REQUIRES = ("micrographs", "particles")
TITLE = "Micrograph cleaner (local statistics)"
SECTION = "Level 5 analysis"

GOOD_LIMIT = mq.GOOD_LIMIT  # a coordinate is kept when this fraction of its box is good
KEEP_FRACTION = 0.8  # warn when fewer than this fraction of the coordinates are kept (strict)
SHOWN_MICROGRAPHS = 20  # rows of the per-micrograph table in the report (the CSV has all)

WARN_FLAGGED = ("More than {limit:g}% of the particles were flagged as being suspicious: "
                "{percent:.1f}% ({flagged} of {total}) lie where less than {good:g}% of their "
                "box is good")

EXPLANATION = (
    "Particles picked on carbon, on ice contamination or on aggregates are not particles. "
    "Each micrograph is averaged to about eight pixels per particle box; the local mean and "
    "the local texture (the RMS of the detail finer than a particle) are computed in windows "
    "of about one particle box and turned into robust z-scores against the bulk of the "
    "micrograph (the shortest half of the values). Regions whose mean or texture differ by "
    f"more than {mq.Z_SEED:g} standard deviations are bad, grown to half of their contrast (the "
    "edge of a blurred step), holes filled, and regions smaller than "
    f"{mq.MIN_AREA_BOXES:g} particle box dropped. This is a non-learned detector, the "
    "local-statistics measure of RELION's auto-picker (Scheres 2015) applied to the whole "
    "micrograph; the reference uses MicrographCleaner (Sanchez-Garcia et al. 2020), a deep "
    "network, whose numbers will differ. A coordinate is kept when at least "
    f"{100 * GOOD_LIMIT:g}% of its particle box is good.")
CRITERIA = (
    f"OK if less than {100 * (1 - KEEP_FRACTION):g}% of the coordinates are suspected to lie on "
    "carbon, ice contamination, aggregates, etc. (fewer than "
    f"{100 * KEEP_FRACTION:g}% kept); one warning otherwise.")


def run(ctx):
    res = new_result(sys.modules[__name__])
    md = ctx.micrographs
    c = md.coordinates
    if not c.available:
        raise NotApplicable(c.reason)
    n_mic = md.n
    bad_frac = np.full(n_mic, np.nan)
    per_n = np.zeros(n_mic, dtype=np.int64)
    per_flag = np.zeros(n_mic, dtype=np.int64)
    score = np.full(len(c.mic), np.nan)
    for i in range(n_mic):
        q = md.quality(i)
        if q is None:
            continue
        bad_frac[i] = q.bad_fraction
        on = c.on(i)
        if len(on):
            score[on] = q.goodness(c.xy[on])
            per_n[i] = len(on)
            per_flag[i] = int(np.count_nonzero(score[on] < GOOD_LIMIT))
    assessed = np.isfinite(bad_frac)
    if not assessed.any():
        why = "; ".join(f"{md.micrographs.names[i]}: {e}" for i, e in
                        list(md.quality_errors.items())[:3])
        raise CannotMeasure(f"no micrograph could be assessed ({why})")
    done = np.isfinite(score)
    n_in = int(np.count_nonzero(done))
    if n_in == 0:
        raise CannotMeasure("no particle coordinate lies on a micrograph that could be "
                            "assessed")
    flagged = done & (score < GOOD_LIMIT)
    n_flag = int(np.count_nonzero(flagged))
    n_out = n_in - n_flag
    pct = 100.0 * n_flag / n_in
    m = res.metrics
    m.update(n_in=n_in, n_out=n_out, n_flagged=n_flag, percent_flagged=pct,
             n_micrographs=n_mic, n_micrographs_assessed=int(np.count_nonzero(assessed)),
             n_unmatched=c.n_unmatched, n_outside=c.n_outside, box_px=c.box_px,
             bad_area_percent_mean=100.0 * float(np.mean(bad_frac[assessed])),
             bad_area_percent_max=100.0 * float(np.max(bad_frac[assessed])))
    res.facts += [
        Fact("Micrographs assessed", f"{int(assessed.sum())} of {n_mic}", "", "{}"),
        Fact("Coordinates assessed (Nin)", n_in, "", "{:d}"),
        Fact("Coordinates kept (Nout)", n_out, "", "{:d}"),
        Fact(f"Coordinates with less than {100 * GOOD_LIMIT:g}% of their box good", pct, "%",
             "{:.1f}"),
        Fact("Particle box on the micrographs", c.box_px, "px", "{:.0f}"),
        Fact("Mean bad area of a micrograph", m["bad_area_percent_mean"], "%", "{:.1f}"),
        Fact("Largest bad area of a micrograph", m["bad_area_percent_max"], "%", "{:.1f}"),
    ]
    names = md.micrographs.names
    order = np.argsort(-np.nan_to_num(bad_frac, nan=-1.0), kind="stable")[:SHOWN_MICROGRAPHS]
    res.tables.append(Table(
        "Micrographs, largest bad area first" + (f" (the first {SHOWN_MICROGRAPHS})"
                                                 if n_mic > SHOWN_MICROGRAPHS else ""),
        ["Micrograph", "Bad area (%)", "Coordinates", "Flagged"],
        [[names[i], 100.0 * bad_frac[i] if assessed[i] else None, int(per_n[i]),
          int(per_flag[i])] for i in order],
        ["{}", "{:.1f}", "{:d}", "{:d}"]))
    res.notes.append(f"The coordinates (rlnCoordinateX/Y) are read in {c.convention}; the "
                     f"particle box is {c.box_px:.0f} micrograph pixels.")
    if c.n_unmatched:
        res.notes.append(f"{c.n_unmatched} of the {c.n_particles} particles name a micrograph "
                         f"that was not given (e.g. {', '.join(c.unmatched_names[:3])}); they "
                         f"are not assessed (the reference skips them without saying so).")
    if c.n_outside:
        res.notes.append(f"{c.n_outside} coordinates lie off their micrograph; each is judged "
                         f"at the nearest point of its micrograph.")
    for i, why in md.quality_errors.items():
        res.notes.append(f"{names[i]} could not be assessed ({why}); its "
                         f"{int(np.count_nonzero(c.mic == i))} coordinates are not counted.")
    if n_out < KEEP_FRACTION * n_in:
        res.warn("flagged_coordinates", WARN_FLAGGED, limit=100 * (1 - KEEP_FRACTION),
                 percent=pct, flagged=n_flag, total=n_in, good=100 * GOOD_LIMIT)
        res.summary = ("Many particles lie on carbon, ice contamination or aggregates "
                       "(see 5.a).")
    res.artefacts.append(Curves("micrograph_coordinates.csv", [
        ("micrograph", [names[i] for i in c.mic]), ("x_px", c.xy[:, 0]), ("y_px", c.xy[:, 1]),
        ("goodness", score), ("flagged", [int(v) for v in flagged])]))
    res.artefacts.append(Curves("micrographs.csv", [
        ("micrograph", names), ("bad_area_fraction", bad_frac), ("coordinates", per_n),
        ("flagged", per_flag)]))
    res.data.update(bad_fraction=bad_frac, score=score, flagged=flagged)
    return res.finish()
