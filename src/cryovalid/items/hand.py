"""0.h Hand: is the map mirrored? Measured from the twist of its α-helices.

α-helices of proteins built from L-amino acids are right-handed, so in a correctly handed map the
density of each helix winds as a right-handed spiral (pitch 5.4 Å); a mirrored map shows
left-handed spirals. We find rod-like helices, correlate the density around each with ideal
right- and left-handed α-helix templates at the map's resolution (every rotation about the axis,
small shifts along it, both polarities), let each helix whose difference is significant vote,
and report score = (left votes + 1) / (votes + 2), or 0.5 (no evidence) with fewer than three
voting helices. See :mod:`cryovalid.kernels.hand` and docs/hand.md.

The reference (VRS 0.h) runs DeepHand (Garcia Condado et al. 2022, J Struct Biol 214:107915),
two trained networks whose weights are not used here; its outcomes are kept: > 0.4 uncertain,
> 0.5 flipped, and it applies only when the reported resolution is 5 Å or better.
"""
from __future__ import annotations

import sys

from cryovalid.errors import NotApplicable
from cryovalid.items.base import Fact, Table, new_result
from cryovalid.kernels import hand as helices

ID = "0.h"
LEVEL = "0"
REQUIRES = ("resolution",)  # inputs/options it needs (items.base.REQUIREMENTS)
TITLE = "Hand"
SECTION = "Level 0 analysis"
MAX_RESOLUTION_A = 5.0
UNCERTAIN_ABOVE = 0.4
FLIPPED_ABOVE = 0.5
TABLE_ROWS = 12

WARN_MIRRORED = ("The map seems to be mirrored: its helices fit left-handed α-helices better "
                 "(hand score {score:.3f} > {limit:g}).")
WARN_UNCERTAIN = "The hand of the map is uncertain (hand score {score:.3f} > {limit:g})."

EXPLANATION = (
    "A reconstruction can come out as the mirror image of the molecule, and at medium "
    "resolution nothing else in the map betrays it. Proteins do: their α-helices, made of "
    "L-amino acids, are always right-handed, so in a correctly handed map the density of every "
    "helix winds like a right-handed screw with a pitch of 5.4 Å. We locate rod-shaped helices "
    "in the map blurred to about 5 Å, where a helix is a solid rod at any resolution (even "
    "in a sharpened high-resolution map whose helix axes are below the contour), compare the "
    "density around each with ideal right- and left-handed α-helices simulated at the map's "
    "resolution (trying every rotation about the helix axis and small "
    "shifts along it), and let each helix whose preference is clearly larger than the scatter "
    "seen at random places in the same map vote for a hand. The hand score is (left-handed "
    "votes + 1) / (votes + 2): near 0 for a correctly handed map, near 1 for a mirrored one, "
    "and exactly 0.5 when fewer than three helices give clear evidence (for example a β-rich "
    "protein, or a map whose resolution does not resolve the helical twist). The reference "
    "answers the same question with DeepHand (Garcia Condado et al. 2022, J Struct Biol "
    "214:107915), a pair of trained neural networks.")

CRITERIA = (
    f"OK if the hand score is at most {UNCERTAIN_ABOVE:g}. A score above {UNCERTAIN_ABOVE:g} "
    f"warns that the hand is uncertain; a score above {FLIPPED_ABOVE:g} also warns that the map "
    f"seems mirrored. Applies only to maps with a reported resolution of "
    f"{MAX_RESOLUTION_A:g} Å or better.")


def run(ctx):
    res = new_result(sys.modules[__name__])
    r = ctx.resolution
    if r > MAX_RESOLUTION_A:
        raise NotApplicable(f"the reported resolution ({r:g} Å) is worse than "
                            f"{MAX_RESOLUTION_A:g} Å; the twist of α-helices is not visible "
                            f"at that resolution")
    out = helices.determine_hand(ctx.map.data, ctx.map.voxel_size, ctx.map.threshold, r,
                                 origin=ctx.map.origin, ft=ctx.map.ft, protein=ctx.map.raw_mask)
    score = float(out.score)
    res.metrics.update(hand_score=round(score, 4), n_helices=int(out.n_helices),
                       n_rods=int(out.n_candidates), n_right_handed=int(out.n_right),
                       n_left_handed=int(out.n_left))
    res.facts += [
        Fact("Hand score (0 = correct hand, 1 = mirrored, 0.5 = no evidence)", score, "",
             "{:.3f}"),
        Fact("Helix-like rods examined", out.n_candidates, "", "{:d}"),
        Fact("Helices with a significant twist (used)", out.n_helices, "", "{:d}"),
        Fact("… of which right-handed", out.n_right, "", "{:d}"),
        Fact("… of which left-handed", out.n_left, "", "{:d}"),
        Fact("Map and templates low-passed at", out.analysis_resolution, "Å", "{:.2f}"),
    ]
    if out.helices:
        rows = []
        for h in out.helices[:TABLE_ROWS]:
            vote = "(repeat)" if h.overlaps else {-1: "right", 1: "left", 0: "–"}[h.vote]
            rows.append([float(h.centre[0]), float(h.centre[1]), float(h.centre[2]),
                         h.length, h.cc_right, h.cc_left, h.z, vote])
        res.tables.append(Table(
            f"Strongest helix candidates (of {out.n_candidates}); evidence = (CC left − CC "
            f"right) in units of its spread at random places ({out.null_spread:.3f}); a helix "
            f"votes when |evidence| ≥ {helices.Z_VOTE:g}; '(repeat)': the rod lies along a "
            f"longer one (the same helix) and does not vote",
            ["x (Å)", "y (Å)", "z (Å)", "Length (Å)", "CC right", "CC left", "Evidence",
             "Vote"],
            rows, ["{:.1f}", "{:.1f}", "{:.1f}", "{:.1f}", "{:.3f}", "{:.3f}", "{:+.1f}", "{}"]))
    if out.reason:
        res.notes.append(f"No evidence about the hand: {out.reason}; the score is set to 0.5 "
                         f"rather than guessed.")
    res.notes.append(
        "Our method differs from the reference's DeepHand (trained networks, weights not used "
        "here): it measures the twist of the α-helices directly by correlating the density "
        "with ideal right- and left-handed helix templates. Its scores are not numerically "
        "comparable with DeepHand's; the thresholds 0.4 and 0.5 keep their meaning.")
    res.data.update(helices=out.helices[:4], decoy_differences=out.decoy_differences,
                    null_spread=out.null_spread,
                    evidence=[h.z for h in out.helices], z_vote=helices.Z_VOTE)

    if score > FLIPPED_ABOVE:
        res.warn("mirrored", WARN_MIRRORED, score=float(score), limit=FLIPPED_ABOVE)
    if score > UNCERTAIN_ABOVE:
        res.warn("uncertain", WARN_UNCERTAIN, score=float(score), limit=UNCERTAIN_ABOVE)
    if res.warnings:
        res.summary = "The hand of the map may be wrong or could not be confirmed (see 0.h)."
    return res.finish()
