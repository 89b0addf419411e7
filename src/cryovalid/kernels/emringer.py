"""EMRinger: side-chain-directed model and map validation (Barad, Echols, Wang, Cheng, DiMaio,
Adams & Fraser 2015, Nature Methods 12:943–946), computed as cctbx's ``phenix.emringer``
computes it (``mmtbx/ringer/__init__.py`` sampling, ``mmtbx/ringer/em_scoring.py`` statistics).

Sampling (Ringer; Lang et al. 2010, Protein Sci. 19:1420). For every residue whose name is in
:data:`SCORED_RESIDUES` and that has the four χ1 atoms N, CA, CB and its γ atom (SG for Cys,
OG for Ser, CG otherwise; first conformer only), the γ atom is rotated about the CA→CB axis
(right-handed) to χ1 = 0 and then in 5° steps: 72 samples, sample i at χ1 = 5(i+1)° but
labelled 5i°, as cctbx labels it (its loop rotates before it samples). The map is sampled with
its raw values (no σ scaling: cctbx sets σ = 1 for a map file) by trilinear interpolation at
grid coordinates (xyz − origin)/voxel. A residue with any sample whose interpolation cell
leaves the box (floor(g) < 0 or floor(g) > n − 2 on some axis) is dropped, as cctbx's
``non_crystallographic_eight_point_interpolation`` raises there and the residue is skipped.
The number of residues left is L.

Statistics. With avg_avg = mean over the L residues of each profile's mean and max_max = the
largest sample of all profiles, the thresholds are t_i = avg_avg + i·(max_max − avg_avg)/20,
i = 0…19. At t_i a residue gives a peak at every sample that equals its profile's maximum
when that maximum is > t_i. Peaks are binned in six 60° bins of sample indices 6–17, 18–29,
…, 66–5 (centred on the labels 60°, 120°, … 360°); bins 0, 2, 4 (60°, 180°, 300°) are
rotameric. With N peaks of which N_rot are rotameric:

    rotamer ratio = N_rot / N,    Z = (N_rot − N·39/72) / sqrt(N·(39/72)·(33/72))

(cctbx's normal approximation to the binomial, kept as it is: its expected rotameric share
is 39/72 = (72/2 + 3)/72, although the three rotameric bins hold 36 of the 72 samples).
Thresholds are scanned from t_0 upward and the scan stops at the first one whose rotamer
ratio is 0 (no peak or no rotameric peak). The EMRinger score is
10·Z_max/sqrt(L), Z_max the largest Z over the thresholds scanned; the best (optimal)
threshold is the first where Z_max is reached.

Units: map values are the map's own (raw) units; angles are degrees; coordinates Å.

SEC and PYL are in cctbx's scored list but its side-chain angle table
(``mmtbx/rotamer/sidechain_angles.props``) has no χ1 for them, so cctbx never samples them;
neither does this module (and MSE, not in the list, is not scored either).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cryovalid.errors import CannotMeasure

# Residues cctbx's em_scoring counts (``Residue_codes`` less SEC/PYL, see the module docstring)
# and the γ atom that closes their χ1 dihedral N–CA–CB–γ.
SCORED_RESIDUES = {
    "ARG": "CG", "ASN": "CG", "ASP": "CG", "CYS": "SG", "GLU": "CG", "GLN": "CG",
    "HIS": "CG", "LEU": "CG", "LYS": "CG", "MET": "CG", "PHE": "CG", "SER": "OG",
    "TRP": "CG", "TYR": "CG",
}
SAMPLING_ANGLE = 5                       # degrees between samples
N_ANGLES = 360 // SAMPLING_ANGLE         # 72 samples per residue
N_THRESHOLDS = 20                        # t_i, i = 0 … 19
BIN_SIZE = 12                            # samples per 60° bin
FIRST_ROTAMER = 60                       # degrees: centre of bin 0
FIRST_BIN_START = FIRST_ROTAMER // SAMPLING_ANGLE - BIN_SIZE // 2   # sample index 6
N_BINS = N_ANGLES // BIN_SIZE            # 6
ROTAMERIC_BINS = (0, 2, 4)               # bins centred on 60°, 180°, 300°
# cctbx's expected rotameric share of the 72 samples in its Z: 39 of 72 (and 33 of 72 not).
ROTAMERIC_SAMPLES = 39
# Profiles whose largest sample exceeds the mean of the means by no more than this fraction of
# their magnitude are flat: the differences are interpolation rounding (a float32 map holds
# ~7 digits). cctbx only refuses exactly equal thresholds, which rounding rarely gives.
FLAT_RELATIVE = 1e-6
# cctbx adds this to denominators "to avoid zero division"; kept so that ratios and Z agree.
_TINY = 1e-21


@dataclass
class EmringerResult:
    """EMRinger result (Barad et al. 2015). Map values in the map's raw units, angles in degrees.

    Attributes
    ----------
    score : float, EMRinger score 10·Z_max/sqrt(n_residues)
    optimal_threshold : float, map value (raw units) of the threshold where Z is largest
    rotamer_ratio : float, fraction of peaks in rotameric bins at that threshold
    zscore_max : float, Z_max
    n_residues : int, L = number of residues scored (sampled entirely inside the box)
    avg_avg, max_max : float, mean of the profile means and largest profile sample (raw units)
    all_thresholds : (20,) float64, t_0 … t_19
    thresholds : (k,) float64, the thresholds scanned before the first with rotamer ratio 0
    scores, rotamer_ratios, zscores : (k,) float64, at those thresholds (score = 10·Z/sqrt(L))
    n_peaks : (k,) int, peaks counted at those thresholds
    histogram : (72,) int, peaks per sample label 0°, 5°, … 355° at the optimal threshold
    histogram_angles : (72,) float64, those labels in degrees
    residue_scored : (n_model_residues,) bool, in the model's residue order
    residue_peak_chi : (n_model_residues,) float64, degrees, label of the first maximum of the
        profile (cctbx's convention, 5i°); NaN for unscored residues
    residue_peak_rho : (n_model_residues,) float64, that maximum (raw units); NaN if unscored
    residue_chi1 : (n_model_residues,) float64, the model's χ1 in degrees (−180, 180];
        NaN where it could not be computed
    residue_peak_above : (n_model_residues,) bool, the residue gives a peak at the optimal
        threshold
    profiles : (L, 72) float64, the sampled density of the scored residues (raw units)
    profile_residues : (L,) int, the model residue index of each profile row
    """

    score: float
    optimal_threshold: float
    rotamer_ratio: float
    zscore_max: float
    n_residues: int
    avg_avg: float
    max_max: float
    all_thresholds: np.ndarray
    thresholds: np.ndarray
    scores: np.ndarray
    rotamer_ratios: np.ndarray
    zscores: np.ndarray
    n_peaks: np.ndarray
    histogram: np.ndarray
    histogram_angles: np.ndarray
    residue_scored: np.ndarray
    residue_peak_chi: np.ndarray
    residue_peak_rho: np.ndarray
    residue_chi1: np.ndarray
    residue_peak_above: np.ndarray
    profiles: np.ndarray
    profile_residues: np.ndarray


def _first_atom_of_residue(residue_index: np.ndarray, selected: np.ndarray,
                           n_residues: int) -> np.ndarray:
    """(n_residues,) int: the first atom row selected in each residue, −1 where none."""
    out = np.full(n_residues, -1, dtype=np.int64)
    rows = np.flatnonzero(selected)[::-1]      # reversed, so the first row is written last
    out[residue_index[rows]] = rows
    return out


def chi1_atoms(model) -> tuple:
    """Rows of the χ1 atoms of every residue EMRinger scores.

    Returns ``(residues, atoms)``: ``residues`` (m,) int, model residue indices (in model
    order) whose name is in :data:`SCORED_RESIDUES` and that have N, CA, CB and the γ atom;
    ``atoms`` (m, 4) int, the rows of N, CA, CB, γ in ``model.xyz``.
    """
    n_res = model.n_residues
    names = np.asarray(model.atom_name).astype(str)
    resnames = np.asarray(model.resname).astype(str)
    ri = np.asarray(model.residue_index, dtype=np.int64)
    gamma_of_residue = np.array([SCORED_RESIDUES.get(r, "") for r in resnames], dtype=object)
    gamma_name = gamma_of_residue[ri].astype(str)
    cols = [_first_atom_of_residue(ri, names == nm, n_res) for nm in ("N", "CA", "CB")]
    cols.append(_first_atom_of_residue(ri, (names == gamma_name) & (gamma_name != ""), n_res))
    atoms = np.stack(cols, axis=1)
    keep = (gamma_of_residue != "") & (atoms >= 0).all(axis=1)
    return np.flatnonzero(keep), atoms[keep]


def dihedral_deg(p0, p1, p2, p3) -> np.ndarray:
    """Dihedral angle p0–p1–p2–p3 (IUPAC sign) in degrees, (−180, 180]; rows of (m, 3)."""
    b0 = p0 - p1
    b1 = p2 - p1
    b2 = p3 - p2
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - (b0 * b1n).sum(-1, keepdims=True) * b1n
    w = b2 - (b2 * b1n).sum(-1, keepdims=True) * b1n
    x = (v * w).sum(-1)
    y = (np.cross(b1n, v) * w).sum(-1)
    return np.degrees(np.arctan2(y, x))


def rotate_about_axis(point, axis_1, axis_2, angle_deg) -> np.ndarray:
    """Rotate ``point`` (m, 3) about the axis axis_1→axis_2 (m, 3) by ``angle_deg`` (m, k)
    degrees, right-handed (Rodrigues). Returns (m, k, 3) Å."""
    u = axis_2 - axis_1
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    r = point - axis_1                                          # (m, 3)
    a = np.radians(angle_deg)[..., None]                        # (m, k, 1)
    c, s = np.cos(a), np.sin(a)
    along = (u * r).sum(-1, keepdims=True) * u                  # (m, 3)
    cross = np.cross(u, r)
    return (axis_1[:, None, :] + along[:, None, :] + c * (r - along)[:, None, :]
            + s * cross[:, None, :])


def sample_profiles(map_data, voxel_size, origin, model):
    """Ringer profiles of the χ1 γ atom (see the module docstring).

    Returns ``(residues, profiles, chi1, candidate_residues, candidate_chi1)``: the residues
    kept (every sample inside the box), their (L, 72) profiles (raw map units, float64) and
    χ1 (degrees); and every candidate residue with its χ1.
    """
    data = np.asarray(map_data)
    residues, atoms = chi1_atoms(model)
    xyz = np.asarray(model.xyz, dtype=np.float64)
    n, ca, cb, g = (xyz[atoms[:, k]] for k in range(4))
    chi1 = dihedral_deg(n, ca, cb, g)
    steps = SAMPLING_ANGLE * np.arange(1, N_ANGLES + 1, dtype=np.float64)
    points = rotate_about_axis(g, ca, cb, steps[None, :] - chi1[:, None])   # (m, 72, 3)
    grid = (points - np.asarray(origin, dtype=np.float64)) / float(voxel_size)  # x, y, z
    corner = np.floor(grid)
    size_xyz = np.array(data.shape[::-1], dtype=np.float64)
    inside = ((corner >= 0) & (corner <= size_xyz - 2)).all(axis=(1, 2))
    grid = grid[inside]
    coords = grid[..., ::-1].reshape(-1, 3).T                   # (3, L·72) in z, y, x
    values = ndimage.map_coordinates(data, coords, order=1, mode="nearest", prefilter=False,
                                     output=np.float64)
    profiles = values.reshape(-1, N_ANGLES)
    return residues[inside], profiles, chi1[inside], residues, chi1


def _binned_statistics(counts: np.ndarray):
    """(ratio, Z, N) per row of peak counts (…, 72) (cctbx ``statistic``)."""
    binned = np.roll(counts, -FIRST_BIN_START, axis=-1).reshape(
        counts.shape[:-1] + (N_BINS, BIN_SIZE)).sum(-1)
    rot = binned[..., list(ROTAMERIC_BINS)].sum(-1).astype(np.float64)
    total = binned.sum(-1).astype(np.float64)
    p_rot = ROTAMERIC_SAMPLES / N_ANGLES
    p_non = (N_ANGLES - ROTAMERIC_SAMPLES) / N_ANGLES
    ratio = rot / (total + _TINY)
    z = (rot - total * p_rot) / (np.sqrt(p_rot * p_non * total) + _TINY)
    return ratio, z, total.astype(np.int64)


def score_profiles(profiles: np.ndarray) -> dict:
    """EMRinger statistics of (L, 72) Ringer profiles (cctbx ``em_scoring.main``; see the
    module docstring). Returns a dict: ``avg_avg``, ``max_max``, ``all_thresholds`` (20,),
    and over the k thresholds scanned (those before the first with rotamer ratio 0)
    ``thresholds``, ``zscores``, ``scores`` (10·Z/sqrt(L)), ``rotamer_ratios``, ``n_peaks``,
    ``counts`` (k, 72) peaks per sample label; ``best``, the index of the first largest Z.

    Raises :class:`CannotMeasure` when the profiles are flat or no threshold gives a
    rotameric peak (cctbx raises Sorry in both cases).
    """
    profiles = np.asarray(profiles, dtype=np.float64)
    length = profiles.shape[0]
    maxima = profiles.max(axis=1)
    avg_avg = float(np.mean(profiles.mean(axis=1)))
    max_max = float(maxima.max())
    all_thresholds = np.array([avg_avg + i * (max_max - avg_avg) / N_THRESHOLDS
                               for i in range(N_THRESHOLDS)])
    spread = max_max - avg_avg
    if not spread > FLAT_RELATIVE * max(abs(max_max), abs(avg_avg)):
        raise CannotMeasure("the density around the side chains is flat (every profile's "
                            "maximum equals the mean), so EMRinger finds no feature")
    is_peak = profiles == maxima[:, None]                                  # (L, 72)
    above = maxima[None, :] > all_thresholds[:, None]                      # (20, L)
    counts = above.astype(np.int64) @ is_peak.astype(np.int64)            # (20, 72)
    ratio, z, total = _binned_statistics(counts)
    zero = np.flatnonzero(ratio == 0)
    k = int(zero[0]) if len(zero) else N_THRESHOLDS
    if k == 0:
        raise CannotMeasure("no threshold gives a rotameric side-chain peak, so EMRinger "
                            "cannot score the model (the map may be featureless here)")
    zscores = z[:k].copy()
    return {
        "avg_avg": avg_avg, "max_max": max_max, "all_thresholds": all_thresholds,
        "thresholds": all_thresholds[:k].copy(), "zscores": zscores,
        "scores": 10.0 * zscores / math.sqrt(length), "rotamer_ratios": ratio[:k].copy(),
        "n_peaks": total[:k].copy(), "counts": counts[:k].copy(),
        "best": int(np.argmax(zscores)),                                   # first maximum
    }


def emringer(map_data, voxel_size, origin, model) -> EmringerResult:
    """EMRinger score of ``model`` in a map (Barad et al. 2015; cctbx ``phenix.emringer``).

    Parameters
    ----------
    map_data : (z, y, x) array, raw map values (not rescaled)
    voxel_size : float, Å per voxel
    origin : (x, y, z) world coordinate in Å of voxel (0, 0, 0)
    model : :class:`cryovalid.io.model.Model` (world coordinates in Å, same frame as origin)

    Raises
    ------
    CannotMeasure
        no residue with a χ1 EMRinger scores lies inside the box; the map is flat along every
        profile; or no threshold gives a rotameric peak.
    """
    residues, profiles, chi1, cand, cand_chi1 = sample_profiles(map_data, voxel_size,
                                                                origin, model)
    n_res_model = model.n_residues
    if len(cand) == 0:
        raise CannotMeasure("the model has no residue EMRinger scores (Arg, Asn, Asp, Cys, Glu, "
                            "Gln, His, Leu, Lys, Met, Phe, Ser, Trp, Tyr with N, CA, CB and "
                            "its γ atom): a poly-Ala/Gly model or side chains left out")
    if len(residues) == 0:
        raise CannotMeasure("no scorable side chain lies inside the map box (none of "
                            f"{len(cand)} candidates), so EMRinger cannot sample the map")
    if not np.isfinite(profiles).all():
        raise CannotMeasure("the map has non-finite values around the side chains")
    st = score_profiles(profiles)
    best = st["best"]
    maxima = profiles.max(axis=1)
    peak_chi = np.full(n_res_model, np.nan)
    peak_rho = np.full(n_res_model, np.nan)
    scored = np.zeros(n_res_model, dtype=bool)
    peak_above = np.zeros(n_res_model, dtype=bool)
    res_chi1 = np.full(n_res_model, np.nan)
    res_chi1[cand] = cand_chi1
    scored[residues] = True
    peak_chi[residues] = SAMPLING_ANGLE * np.argmax(profiles, axis=1).astype(np.float64)
    peak_rho[residues] = maxima
    peak_above[residues] = maxima > st["thresholds"][best]
    return EmringerResult(
        score=float(st["scores"][best]), optimal_threshold=float(st["thresholds"][best]),
        rotamer_ratio=float(st["rotamer_ratios"][best]),
        zscore_max=float(st["zscores"][best]),
        n_residues=int(len(residues)), avg_avg=st["avg_avg"], max_max=st["max_max"],
        all_thresholds=st["all_thresholds"], thresholds=st["thresholds"],
        scores=st["scores"], rotamer_ratios=st["rotamer_ratios"], zscores=st["zscores"],
        n_peaks=st["n_peaks"], histogram=st["counts"][best].copy(),
        histogram_angles=SAMPLING_ANGLE * np.arange(N_ANGLES, dtype=np.float64),
        residue_scored=scored, residue_peak_chi=peak_chi, residue_peak_rho=peak_rho,
        residue_chi1=res_chi1, residue_peak_above=peak_above, profiles=profiles,
        profile_residues=residues)
