"""Figures of Level 4 (the angular assignment): 4.d's sorted differences and histograms, 4.g's
histogram and map of the directional resolution, 4.h's map of the Fourier-space sampling
(vrs_level2_5.md §3.4, §3.9, §3.10). They draw the arrays of ``res.data``; nothing is computed
here beyond placing the points on the map.

Sphere maps: a hemisphere of directions (x, y, z ≥ 0) is shown with its antipodes (the sampling
of a central plane does not change from n to −n) on a Hammer equal-area projection, longitude
atan2(y, x) and latitude asin(z) (z is the map's z axis: latitude 90° is the top view).
"""
from __future__ import annotations

import numpy as np

from cryovalid.figures.common import Drawing, histogram, png, subplots, new_figure

FONT = 8


def _sorted_plot(values, ylabel, limit, limit_label) -> bytes:
    fig, ax = subplots(figsize=(4.6, 2.6))
    v = np.sort(np.asarray(values, dtype=np.float64))
    ax.plot(np.arange(1, len(v) + 1), v, color="#2596be", lw=1.2)
    ax.axhline(limit, color="#b03030", ls="--", lw=1, label=limit_label)
    ax.set_xlabel("Particle No. (sorted)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=FONT)
    ax.grid(True, alpha=0.4)
    fig.tight_layout()
    return png(fig)


def _sphere_map(points, values, label, cmap="viridis") -> bytes:
    p = np.asarray(points, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    p = np.concatenate([p, -p])
    v = np.concatenate([v, v])
    lon = np.arctan2(p[:, 1], p[:, 0])
    lat = np.arcsin(np.clip(p[:, 2], -1, 1))
    fig = new_figure((5.6, 3.0))
    ax = fig.add_subplot(111, projection="hammer")
    lo, hi = np.percentile(v, [1, 99]) if v.size else (0.0, 1.0)
    sc = ax.scatter(lon, lat, c=v, s=10, cmap=cmap, linewidths=0, vmin=lo,
                    vmax=hi if hi > lo else lo + 1, rasterized=True)
    ax.set_xticklabels([])  # longitudes: the grid is enough
    ax.grid(True, alpha=0.4)
    ax.tick_params(labelsize=FONT - 1)
    cb = fig.colorbar(sc, ax=ax, shrink=0.8, pad=0.04)
    cb.set_label(label + " (1st–99th percentile)", fontsize=FONT)
    cb.ax.tick_params(labelsize=FONT - 1)
    fig.subplots_adjust(left=0.04, right=0.94, bottom=0.05, top=0.95)
    return png(fig)


ANGLE_BINS = (72, 36)  # longitude × latitude bins of the angular distribution (5° each)


def angular_distribution(eulers) -> bytes:
    """The projection directions of the particles (rot, tilt: direction (cos rot·sin tilt,
    sin rot·sin tilt, cos tilt)) as counts per 5° × 5° cell of longitude (rot) and latitude
    (90° − tilt) on a Hammer equal-area map; empty cells are white."""
    e = np.asarray(eulers, dtype=np.float64)
    lon = np.radians((e[:, 0] + 180.0) % 360.0 - 180.0)
    lat = np.radians(90.0 - np.clip(e[:, 1] % 360.0, 0.0, 180.0))
    lon_edges = np.linspace(-np.pi, np.pi, ANGLE_BINS[0] + 1)
    lat_edges = np.linspace(-np.pi / 2, np.pi / 2, ANGLE_BINS[1] + 1)
    counts, _, _ = np.histogram2d(lon, lat, bins=(lon_edges, lat_edges))
    fig = new_figure((5.6, 3.0))
    ax = fig.add_subplot(111, projection="hammer")
    masked = np.ma.masked_equal(counts.T, 0)
    mesh = ax.pcolormesh(lon_edges, lat_edges, masked, cmap="viridis", shading="flat",
                         rasterized=True)
    ax.set_xticklabels([])
    ax.grid(True, alpha=0.4)
    ax.tick_params(labelsize=FONT - 1)
    cb = fig.colorbar(mesh, ax=ax, shrink=0.8, pad=0.04)
    cb.set_label("Particles per 5° × 5° cell", fontsize=FONT)
    cb.ax.tick_params(labelsize=FONT - 1)
    fig.subplots_adjust(left=0.04, right=0.94, bottom=0.05, top=0.95)
    return png(fig)


def draw_comparison(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "angle_diff" not in d:
        return out
    lim_a, lim_s = d["angle_limit"], d["shift_limit"]
    out.add("angular_comparison_angles_sorted.png",
            _sorted_plot(d["angle_diff"], "Angular difference (°)", lim_a, f"{lim_a:g}°"),
            "Angular difference between the two assignments of each particle (mean angle "
            "between the corresponding axes, smallest over symmetry and mirror), sorted.")
    out.add("angular_comparison_angles_hist.png",
            histogram(d["angle_diff"], "Angular difference (°)", lim_a, f"{lim_a:g}°"),
            "Histogram of the angular difference between the two assignments.")
    if d.get("shift_diff") is not None:
        out.add("angular_comparison_shifts_sorted.png",
                _sorted_plot(d["shift_diff"], "Shift difference (Å)", lim_s, f"{lim_s:g} Å"),
                "Shift difference (Å) between the two assignments of each particle, sorted.")
        out.add("angular_comparison_shifts_hist.png",
                histogram(d["shift_diff"], "Shift difference (Å)", lim_s, f"{lim_s:g} Å"),
                "Histogram of the shift difference (Å) between the two assignments.")
    return out


def draw_efficiency(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "values" not in d:
        return out
    out.add("angular_efficiency_hist.png",
            histogram(d["values"], "Resolution (Å)", d["resolution"], "reported"),
            "Histogram of the directional resolution according to the angular distribution "
            "efficiency (dashed: the reported resolution).")
    out.add("angular_efficiency_map.png",
            _sphere_map(d["points"], d["values"], "Directional resolution (Å)", "viridis_r"),
            "Directional resolution (Å) over the directions of Fourier space (Hammer "
            "projection; latitude 90° is the map's z axis).")
    return out


def draw_scf(res, ctx) -> Drawing:
    out = Drawing()
    d = res.data
    if "counts" not in d:
        return out
    out.add("scf_sampling_map.png",
            _sphere_map(d["points"], d["counts"], "Planes through the point"),
            f"SCF plot: the number of central planes passing within half a voxel of each point "
            f"of the sphere of radius {d['fourier_radius']} voxels (Hammer projection; latitude "
            f"90° is the map's z axis). SCF = {d['scf']:.3f}, SCF* = {d['scf_star']:.3f}. SCF "
            f"from {d['healthy']:g} to 1 is healthy (pure side views give {d['healthy']:g}), "
            f"from about {d['limit']:g} to {d['healthy']:g} shows small problems, below "
            f"{d['limit']:g} serious ones.")
    return out


DRAWS = {"4.d": draw_comparison, "4.g": draw_efficiency, "4.h": draw_scf}
