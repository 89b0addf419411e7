"""The constants of the hand test (Å unless stated).

Part of :mod:`cryovalid.kernels.hand` (the method is described there)."""
from __future__ import annotations

import numpy as np


HELIX_PHI_DEG = -57.8  # ideal α-helix backbone dihedrals (right-handed for L-amino acids)
HELIX_PSI_DEG = -47.0

DETECTION_VOXEL = 1.5  # Å per voxel of the rod-detection grid
DETECTION_SIGMA = 2.5  # Å, Gaussian blur before the Hessian
WORK_VOXEL = 1.0  # Å, the working grid for cylindrical sampling (never finer than the map's)
MIN_LENGTH = 10.0  # Å, shortest segment kept (about two turns)
MAX_THICKNESS = 2.0  # Å, largest rms distance of a segment's rod voxels from its axis
ROD_ROUNDNESS = 0.4  # λ2/λ1 at least (round cross-section, not a sheet)
ROD_STRAIGHTNESS = 0.5  # |λ3|/|λ2| at most (density continues along the axis)
RIDGE_STEP = 1.0  # detection voxels: largest Newton step to the rod's centre line
REFINE_MAX_ITERATIONS = 6  # axis refinement passes at most
REFINE_TOLERANCE = 0.05  # Å, the refinement stops when the axis moves less than this
MAX_SPLIT_DEPTH = 6  # a linked set of centre-line voxels is split at most this often in a row
LINK_ANGLE_DEG = 30.0  # neighbouring centre-line voxels are linked when their axes agree this well
REGION_REACH = 3.0  # Å, rods are sought within this distance of a voxel with V ≥ T
ROD_LEVEL_QUANTILE = 0.5  # a rod voxel's blurred density ≥ this quantile of it over V ≥ T

CYL_RADII = np.arange(1.0, 6.01, 0.5)  # Å, radii of the cylindrical grid
CYL_N_PHI = 36  # samples around the axis (10°)
CYL_DZ = 0.5  # Å, step along the axis
