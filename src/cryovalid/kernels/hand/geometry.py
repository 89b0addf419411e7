"""Ideal α-helix backbones (NeRF placement from the dihedrals), line fits and frames.

Part of :mod:`cryovalid.kernels.hand` (the method is described there)."""
from __future__ import annotations

import math

import numpy as np

from cryovalid.kernels.hand.constants import HELIX_PHI_DEG, HELIX_PSI_DEG


def _place(a, b, c, bond, angle_deg, torsion_deg):
    """Position of atom D bonded to C with |CD| = bond, angle BCD and dihedral ABCD (NeRF)."""
    bc = c - b
    bc /= np.linalg.norm(bc)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.stack([bc, np.cross(n, bc), n], axis=1)
    th, ph = math.radians(angle_deg), math.radians(torsion_deg)
    d2 = np.array([-bond * math.cos(th), bond * math.sin(th) * math.cos(ph),
                   bond * math.sin(th) * math.sin(ph)])
    return c + m @ d2


def dihedral(a, b, c, d) -> float:
    """Dihedral angle ABCD in degrees (IUPAC sign convention)."""
    b0, b1, b2 = a - b, c - b, d - c
    b1 = b1 / np.linalg.norm(b1)
    v = b0 - np.dot(b0, b1) * b1
    w = b2 - np.dot(b2, b1) * b1
    return math.degrees(math.atan2(np.dot(np.cross(b1, v), w), np.dot(v, w)))


def build_backbone(n_residues: int, phi_deg: float = HELIX_PHI_DEG,
                   psi_deg: float = HELIX_PSI_DEG, omega_deg: float = 180.0):
    """Poly-alanine chain (N, CA, C, O, CB per residue) from backbone dihedrals.

    Engh & Huber bond lengths/angles; CB at dihedral C−N−CA−CB = −122.7° (L-amino acid),
    O at N−CA−C−O = ψ + 180°. Returns (xyz (5n, 3) float64 Å, names list)."""
    n_ca, ca_c, c_n, c_o, ca_cb = 1.458, 1.525, 1.329, 1.231, 1.530
    a_n_ca_c, a_ca_c_n, a_c_n_ca, a_ca_c_o, a_n_ca_cb = 111.2, 116.2, 121.7, 120.5, 110.5
    n = np.array([0.0, 0.0, 0.0])
    ca = np.array([n_ca, 0.0, 0.0])
    c = ca + ca_c * np.array([-math.cos(math.radians(a_n_ca_c)),
                              math.sin(math.radians(a_n_ca_c)), 0.0])
    bb = [(n, ca, c)]
    for _ in range(n_residues - 1):
        pn, pca, pc = bb[-1]
        nn = _place(pn, pca, pc, c_n, a_ca_c_n, psi_deg)
        nca = _place(pca, pc, nn, n_ca, a_c_n_ca, omega_deg)
        nc = _place(pc, nn, nca, ca_c, a_n_ca_c, phi_deg)
        bb.append((nn, nca, nc))
    xyz, names = [], []
    for i, (rn, rca, rc) in enumerate(bb):
        o = _place(rn, rca, rc, c_o, a_ca_c_o, psi_deg + 180.0)
        # CB from the C−N−CA frame
        cb = _place(rc, rn, rca, ca_cb, a_n_ca_cb, -122.7)
        xyz += [rn, rca, rc, o, cb]
        names += ["N", "CA", "C", "O", "CB"]
    return np.array(xyz), names


def fit_axis(points: np.ndarray):
    """Axis of a helix through ``points`` (n, 3): (point on axis, unit direction).

    Direction from the cross products of consecutive bisectors (Kahn 1989 Comput Chem 13:185),
    oriented along the chain; centre = least-squares circle of the points projected on the plane
    perpendicular to it."""
    p = np.asarray(points, dtype=np.float64)
    bis = (p[:-2] - p[1:-1]) + (p[2:] - p[1:-1])
    cr = np.cross(bis[:-1], bis[1:])
    d = cr.sum(axis=0)
    d /= np.linalg.norm(d)
    if np.dot(p[-1] - p[0], d) < 0:
        d = -d
    u, v = perpendicular_frame(d)
    x, y = (p - p.mean(0)) @ u, (p - p.mean(0)) @ v
    a = np.stack([2 * x, 2 * y, np.ones_like(x)], axis=1)
    cx, cy, _ = np.linalg.lstsq(a, x * x + y * y, rcond=None)[0]
    centre = p.mean(0) + cx * u + cy * v
    return centre, d


def perpendicular_frame(d):
    """Unit vectors u, v with (u, v, d) a right-handed orthonormal frame (u × v = d)."""
    d = np.asarray(d, dtype=np.float64)
    d = d / np.linalg.norm(d)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(helper, d)
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    return u, v


def ideal_helix(n_residues: int = 48, mirror: bool = False):
    """Ideal α-helix atoms with the axis on +z through the origin (N-terminus at low z).

    Returns (xyz (n, 3) Å, weights = atomic numbers). ``mirror`` flips x (left-handed)."""
    xyz, names = build_backbone(n_residues)
    ca = xyz[1::5]
    centre, d = fit_axis(ca)
    u, v = perpendicular_frame(d)
    rel = xyz - centre
    local = np.stack([rel @ u, rel @ v, rel @ d], axis=1)
    local[:, 2] -= 0.5 * (local[:, 2].min() + local[:, 2].max())
    if mirror:
        local[:, 0] *= -1
    z = {"N": 7.0, "CA": 6.0, "C": 6.0, "O": 8.0, "CB": 6.0}
    return local, np.array([z[nm] for nm in names], dtype=np.float32)


def twist_sign(xyz_ca: np.ndarray) -> float:
    """+1 for a right-handed helix of CA positions, −1 for a left-handed one (mean sign of the
    turning angle about the fitted axis per step along it)."""
    centre, d = fit_axis(xyz_ca)
    u, v = perpendicular_frame(d)
    rel = xyz_ca - centre
    phi = np.unwrap(np.arctan2(rel @ v, rel @ u))
    z = rel @ d
    slope = np.polyfit(z, phi, 1)[0]
    return float(np.sign(slope))
