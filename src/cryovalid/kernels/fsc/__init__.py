"""Half-map resolution kernels: FSC, DPR, SSNR, threshold curves, crossings, phase
randomisation (masked FSC correction) and the FDR-FSC permutation test.

All functions take the rfft of the two half maps (complex64, see :mod:`cryovalid.kernels.fourier`)
and a :class:`~cryovalid.kernels.fourier.FourierShells`; curves are arrays with one value per
shell, shell r having the physical frequency r/(N·Ts) in 1/Å (N = largest box side). Sums over
the half-space rfft grid use the Hermitian weights of ``FourierShells.sum`` and therefore equal
sums over the full transform.

References
----------
* FSC: Harauz & van Heel (1986) Optik 73:146; 0.143 threshold: Rosenthal & Henderson (2003)
  J Mol Biol 333:721.
* DPR: Frank, Verschoor & Boublik (1981) Science 214:1353, resolution where the DPR reaches 45°.
  (The reference's 103.9° is the rms of a phase difference uniform in [-180°, 180°], 180/√3: the
  random-phase limit itself, which the curve approaches but never meaningfully crosses.)
* Half-bit, one-bit and 3σ curves: van Heel & Schatz (2005) J Struct Biol 151:250, with the
  effective number of voxels used by EMDB Validation Analysis (Wang et al. 2022, Acta D 78:542).
* Masked FSC corrected by phase randomisation: Chen et al. (2013) Ultramicroscopy 135:24; the
  details (randomise beyond the first shell where the unmasked FSC < 0.8, correct from two shells
  further on, clip at 0) follow RELION's postprocessing.
* FDR-FSC: Beckers & Sachse (2020) IUCrJ 7:1196 (permutation test per shell, Benjamini–Yekutieli
  false-discovery-rate control).
"""
from __future__ import annotations

from cryovalid.kernels.fsc.constants import (  # noqa: F401
    DPR_RANDOM_DEG,
    DPR_THRESHOLD_DEG,
    EMDB_VA_SAMPLING,
    FSC_GOLD,
    FSC_HALF,
    RANDOMISE_AT_FSC,
    SSNR_THRESHOLD)
from cryovalid.kernels.fsc.curves import (  # noqa: F401
    HalfMapCurves,
    _power,
    _re_cross,
    fsc,
    half_map_curves)
from cryovalid.kernels.fsc.thresholds import (  # noqa: F401
    effective_voxels,
    threshold_curves)
from cryovalid.kernels.fsc.crossings import (  # noqa: F401
    AT_START,
    CROSSES,
    Crossing,
    NEVER,
    first_crossing)
from cryovalid.kernels.fsc.masked import (  # noqa: F401
    MaskedFSC,
    background_level,
    masked_fsc,
    randomise_phases)
from cryovalid.kernels.fsc.fdr import (  # noqa: F401
    FdrFscResult,
    benjamini_yekutieli,
    fdr_fsc,
    unique_half_space)
