"""Hand of a cryo-EM map from the twist of its α-helices (no neural network).

Physical fact used: α-helices of L-amino-acid proteins are right-handed (backbone dihedrals
φ ≈ −58°, ψ ≈ −47°; Pauling, Corey & Branson 1951 PNAS 37:205). In a map with the correct hand
the density of every helix winds as a right-handed spiral of pitch 5.4 Å; in a mirrored map it
winds left. The reference (VRS 0.h, DeepHand / HaPi, Garcia Condado et al. 2022 JSB 214:107915)
learns this with two CNNs; here it is measured directly:

1. **Rods.** The map's spectrum is cropped to a detection grid of about 1.5 Å per voxel and
   blurred by a Gaussian of σ = 2.5 Å (a ~5–6 Å low-pass, fixed whatever the map's own
   resolution: at that scale an α-helix is a solid rod whose density peaks on its axis, even
   in a sharpened 1.5 Å map where the axis itself is below the contour or negative); gradient
   and Hessian come from the same spectrum. Rods are sought in the molecule region: detection
   voxels within 3 Å of a voxel with V ≥ T (the backbone atoms lie 1.6–2.3 Å from a helix
   axis), whose blurred density is at least the median of the blurred map over the voxels
   with V ≥ T (a helix axis is among the densest lines of the molecule at that scale). There a
   voxel lies on a rod's centre line when two Hessian eigenvalues are negative and alike
   (round cross-section, not a sheet), the third is small (density continues along the rod)
   and the Newton step to the ridge is under one voxel. Neighbouring centre-line voxels whose
   rod directions agree within 30° are linked; each linked set is fitted by a line (principal
   component) and, while its rms distance from the line exceeds 2 Å, split in two, either at
   its median along the line (a bent rod) or across it by two-means (two helices side by side,
   linked through the density between them), whichever leaves the smaller residual; pieces
   ≥ 10 Å long (about two turns) are kept.
2. **Axis refinement.** On the working map (≈1 Å voxels, low-passed at max(R, 2.5 Å)) the axis is
   refitted to the density centroids of slices perpendicular to it, until it moves less than
   0.05 Å (at most 6 passes).
3. **Cylindrical sampling.** The density is interpolated on a cylindrical grid (r = 1–6 Å,
   φ every 10°, z every 0.5 Å, at most 40 Å) around the axis, in a right-handed frame (u, v, axis),
   u × v = axis, in world x, y, z.
4. **Templates.** An ideal poly-alanine α-helix (N, CA, C, O, CB; φ = −57.8°, ψ = −47.0°, built
   from internal coordinates) is rendered on a grid with the working voxel size and low-passed
   exactly as the map; its mirror image is the left-handed template. Both are sampled on the same
   cylindrical grid, in both polarities (N→C up and down).
5. **Correlation.** The cylindrical average (Bessel order 0: the rod itself, identical for both
   hands) is removed from map and templates; the remainder is correlated over all rotations about
   the axis (FFT along φ), axial shifts of ±1 Å and both polarities. CC_R and CC_L are the best
   normalised correlations with the right- and left-handed templates.
6. **Significance.** The same measurement on 200 cylinders at random protein voxels with random
   directions gives the scatter of CC_L − CC_R where no helix is aligned, in this map, at its
   resolution and noise (robust s.d. = 1.4826 × median |CC_L − CC_R|). A rod whose
   (CC_L − CC_R)/scatter is ≤ −4 votes right-handed, ≥ +4 left-handed; others do not vote.
   A rod lying along a longer one (half its axis within 2.3 Å of it: the same helix found
   twice) does not vote.
7. **Score.** :func:`hand_score`: (left votes + 1)/(votes + 2), and 0.5 with fewer than 3 votes.

Units: Å throughout; angles in radians inside, degrees in reports. Arrays (z, y, x) float32.
World coordinates are (x, y, z) in Å; a map index (z, y, x) is converted with the voxel size and
origin, never used as a coordinate frame itself (its axis order is a mirror of x, y, z).
"""
from __future__ import annotations

from cryovalid.kernels.hand.constants import (  # noqa: F401
    CYL_DZ,
    CYL_N_PHI,
    CYL_RADII,
    DETECTION_SIGMA,
    DETECTION_VOXEL,
    HELIX_PHI_DEG,
    HELIX_PSI_DEG,
    LINK_ANGLE_DEG,
    MAX_SPLIT_DEPTH,
    MAX_THICKNESS,
    MIN_LENGTH,
    REFINE_MAX_ITERATIONS,
    REFINE_TOLERANCE,
    REGION_REACH,
    RIDGE_STEP,
    ROD_LEVEL_QUANTILE,
    ROD_ROUNDNESS,
    ROD_STRAIGHTNESS,
    WORK_VOXEL)
from cryovalid.kernels.hand.geometry import (  # noqa: F401
    _place,
    build_backbone,
    dihedral,
    fit_axis,
    ideal_helix,
    perpendicular_frame,
    twist_sign)
from cryovalid.kernels.hand.grids import (  # noqa: F401
    Grid,
    _cropped_shape,
    fourier_resample,
    gaussian_lowpass,
    raised_cosine_lowpass)
from cryovalid.kernels.hand.rods import (  # noqa: F401
    RodField,
    Segment,
    _coherent_components,
    _fit_line,
    _lateral_split,
    _split_segments,
    _thick_cost,
    find_rods,
    molecule_region,
    rod_field)
from cryovalid.kernels.hand.cylinders import (  # noqa: F401
    refine_axis,
    sample_cylinder,
    sample_planes)
from cryovalid.kernels.hand.templates import (  # noqa: F401
    Templates,
    _deposit,
    make_templates,
    render_helix)
from cryovalid.kernels.hand.correlation import (  # noqa: F401
    _twisted,
    correlate)
from cryovalid.kernels.hand.analysis import (  # noqa: F401
    ANALYSIS_MIN_RESOLUTION,
    HandResult,
    HelixEvidence,
    MAX_SEGMENT,
    MAX_SHIFT,
    MIN_HELICES,
    N_DECOYS,
    OVERLAP_FRACTION,
    OVERLAP_RADIUS,
    UNROLL_RADII,
    Z_VOTE,
    _aligned_template,
    _null_differences,
    _standardised,
    _unroll,
    correlate_hands,
    determine_hand,
    hand_score,
    overlapping_rods)
