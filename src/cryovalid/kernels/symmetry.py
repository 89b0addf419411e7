"""Point-group rotation matrices (cN, dN, t, o, i) in the RELION/Xmipp convention, and the
projection directions and orientation distances that Level 4 builds on them.

Each group is generated from RELION's generators (``symmetries.cpp``; Xmipp uses the same
settings) by closure under multiplication:

* ``cN``: the N-fold axis along z;
* ``dN``: cN plus a 2-fold axis along x;
* ``t``: a 3-fold along z and a 2-fold along (0, 0.816496, 0.577350) (12 rotations);
* ``o``: a 3-fold along (1, 1, 1)/√3 and a 4-fold along z (24);
* ``i`` = ``i2`` (RELION's default, Crowther 222 setting): a 2-fold along z, a 5-fold along
  (0.525731, 0, 0.850651) and a 3-fold along (0, 0.356822, 0.934172) (60); ``i1``: a 2-fold
  along x, a 5-fold along (0.850651, 0, −0.525731), a 3-fold along (0.934172, 0.356822, 0);
  ``i3`` and ``i4`` as RELION.

Orientations are RELION Euler angles (rot, tilt, psi) in degrees, rotation matrix ``A`` of
:func:`cryovalid.kernels.projection.euler_matrix`; the orientations equivalent under the group
are ``A·S`` (S in the group), whose projection directions (the third row of ``A·S``) are
``Sᵀ·n`` with ``n = (sin tilt cos rot, sin tilt sin rot, cos tilt)``.
"""
from __future__ import annotations

import numpy as np

from cryovalid.kernels.projection import euler_matrix

# RELION's generators: (fold, axis)
_GENERATORS = {
    "t": ((3, (0, 0, 1)), (2, (0, 0.816496, 0.577350))),
    "o": ((3, (0.5773502, 0.5773502, 0.5773502)), (4, (0, 0, 1))),
    "i1": ((2, (1, 0, 0)), (5, (0.8506508, 0, -0.5257311)), (3, (0.9341724, 0.3568221, 0))),
    "i2": ((2, (0, 0, 1)), (5, (0.5257311, 0, 0.8506508)), (3, (0, 0.3568221, 0.9341724))),
    "i3": ((2, (-0.5257311, 0, 0.8506508)), (5, (0, 0, 1)),
           (3, (-0.4911235, 0.3568221, 0.7946545))),
    "i4": ((2, (0.5257311, 0, 0.8506508)), (5, (0.8944272, 0, 0.4472136)),
           (3, (0.4911235, 0.3568221, 0.7946545))),
}
ORDERS = {"t": 12, "o": 24, "i": 60}


def axis_rotation(axis, angle: float) -> np.ndarray:
    """The 3×3 rotation by ``angle`` radians about ``axis`` (right hand; Rodrigues)."""
    u = np.asarray(axis, dtype=np.float64)
    u = u / np.linalg.norm(u)
    k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def _closure(gens) -> np.ndarray:
    group = [np.eye(3)]
    frontier = [np.eye(3)]
    while frontier:
        new = []
        for g in frontier:
            for h in gens:
                m = h @ g
                if not any(np.abs(m - x).max() < 1e-4 for x in group):
                    group.append(m)
                    new.append(m)
        frontier = new
        if len(group) > 120:
            raise ValueError("the generators do not close into a point group")
    return np.array(group)


def normalise(symmetry: str) -> str:
    """The point group's canonical lower-case name (``i`` → ``i2``); ValueError if unknown."""
    s = str(symmetry).strip().lower()
    if s == "i":
        return "i2"
    if (s[:1] in ("c", "d") and s[1:].isdigit() and int(s[1:]) >= 1) or s in _GENERATORS:
        return s
    raise ValueError(f"unknown point group {symmetry!r} (c1, cN, dN, t, o, i, i1–i4)")


def matrices(symmetry: str) -> np.ndarray:
    """(k, 3, 3) rotation matrices of the point group (k = N, 2N, 12, 24, 60), identity first."""
    s = normalise(symmetry)
    if s[0] in "cd":
        n = int(s[1:])
        gens = [axis_rotation((0, 0, 1), 2 * np.pi / n)]
        if s[0] == "d":
            gens.append(axis_rotation((1, 0, 0), np.pi))
    else:
        gens = [axis_rotation(ax, 2 * np.pi / fold) for fold, ax in _GENERATORS[s]]
    return _closure(gens)


def directions(eulers) -> np.ndarray:
    """(n, 3) unit projection directions (sin tilt cos rot, sin tilt sin rot, cos tilt) of
    (n, 3) Euler angles in degrees (the third row of the rotation matrix)."""
    e = np.radians(np.asarray(eulers, dtype=np.float64))
    st = np.sin(e[:, 1])
    return np.stack([st * np.cos(e[:, 0]), st * np.sin(e[:, 0]), np.cos(e[:, 1])], axis=1)


def expand_directions(dirs, symmetry: str) -> np.ndarray:
    """(n·k, 3) the directions ``Sᵀ·n`` for every group element S (module docstring)."""
    mats = matrices(symmetry)
    return np.einsum("kji,nj->nki", mats, np.asarray(dirs, dtype=np.float64)).reshape(-1, 3)


def mirror_eulers(eulers) -> np.ndarray:
    """Xmipp's ``Euler_up_down``, the mirror that ``SymList::computeDistance`` checks with
    ``--check_mirrors``: the opposite projection direction, (rot, tilt + 180, −(180 + psi))."""
    e = np.array(eulers, dtype=np.float64, copy=True)
    e[..., 1] = e[..., 1] + 180.0
    e[..., 2] = -(180.0 + e[..., 2])
    return e


def orientation_differences(e1, e2, symmetry: str = "c1", check_mirrors: bool = True):
    """Angular differences (degrees) between two assignments (n, 3) of the same particles:

    * ``mean_row``: Xmipp ``angular_distance`` (``SymList::computeDistance``): the mean of the
      three angles between corresponding rows of ``A1`` and ``A2·S`` (the rotated x, y, z
      axes), minimised over the group elements S and, with ``check_mirrors``, the mirror of
      the second orientation;
    * ``geodesic``: the angle of the rotation ``A1·(A2·S)ᵀ`` (arccos((trace − 1)/2)), minimised
      in the same way.

    Returns (mean_row, geodesic), each (n,) float64.
    """
    a1 = euler_matrix(e1)
    seconds = [euler_matrix(e2)]
    if check_mirrors:
        seconds.append(euler_matrix(mirror_eulers(e2)))
    mean_row = np.full(a1.shape[0], np.inf)
    geodesic = np.full(a1.shape[0], np.inf)
    for a2 in seconds:
        for s in matrices(symmetry):
            b = a2 @ s
            rows = np.clip(np.einsum("nij,nij->ni", a1, b), -1.0, 1.0)
            mean_row = np.minimum(mean_row, np.degrees(np.arccos(rows)).mean(axis=1))
            tr = np.clip((np.einsum("nij,nij->n", a1, b) - 1.0) / 2.0, -1.0, 1.0)
            geodesic = np.minimum(geodesic, np.degrees(np.arccos(tr)))
    return mean_row, geodesic


def fibonacci_hemisphere(m: int) -> np.ndarray:
    """(m, 3) unit vectors on the upper hemisphere on a Fibonacci spiral (Baldwin's
    ``GetIFibDirections_Now``: longitude = golden angle·j, latitude = arcsin(j/m))."""
    ga = ((1.0 + np.sqrt(5.0)) / 2.0 - 1.0) * 2.0 * np.pi
    j = np.arange(m, dtype=np.float64)
    lon, lat = ga * j, np.arcsin(j / m)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)
