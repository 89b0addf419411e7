"""The thresholds and constants of the FSC family (Å, 1/Å, degrees).

Part of :mod:`cryovalid.kernels.fsc` (the methods are described there)."""
from __future__ import annotations

import math





FSC_GOLD = 0.143
FSC_HALF = 0.5
DPR_THRESHOLD_DEG = 45.0  # Frank et al. 1981 (the reference's 103.9° = 180/√3 is the random limit)
DPR_RANDOM_DEG = 180.0 / math.sqrt(3.0)  # rms of uniformly random phase differences, 103.92°
SSNR_THRESHOLD = 1.0
RANDOMISE_AT_FSC = 0.8  # RELION: phase-randomise beyond the first shell with unmasked FSC < 0.8
EMDB_VA_SAMPLING = (1.5 * 0.66) ** 2  # EMDB VA's reduction of the shell voxel count (n_eff)
