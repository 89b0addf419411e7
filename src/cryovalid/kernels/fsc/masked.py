"""Masked FSC with the phase-randomisation correction (Chen et al. 2013).

Part of :mod:`cryovalid.kernels.fsc` (the methods are described there)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryovalid.kernels import fourier
from cryovalid.kernels.fsc.constants import RANDOMISE_AT_FSC
from cryovalid.kernels.fsc.curves import fsc
from cryovalid.kernels.fsc.crossings import first_crossing


def randomise_phases(F: np.ndarray, shells: fourier.FourierShells, beyond_shell: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Copy of F whose coefficients in shells > ``beyond_shell`` (including the corners beyond
    Nyquist) get uniformly random phases; amplitudes are kept (Chen et al. 2013)."""
    out = F.copy()
    sel = shells.index > beyond_shell
    n = int(np.count_nonzero(sel))
    phase = rng.uniform(0.0, 2.0 * np.pi, size=n).astype(np.float32)
    amp = np.abs(out[sel])
    out[sel] = amp * (np.cos(phase) + 1j * np.sin(phase)).astype(np.complex64)
    return out


@dataclass
class MaskedFSC:
    masked: np.ndarray  # FSC of the masked halves
    random_masked: np.ndarray | None  # FSC of the masked phase-randomised halves
    corrected: np.ndarray  # FSC_true of Chen et al. (2013)
    randomised_beyond: int | None  # shell index beyond which the phases were randomised


def background_level(data: np.ndarray, mask: np.ndarray) -> np.float32:
    """Mean of ``data`` outside a soft ``mask`` (weights 1 − mask); the whole box's mean when the
    mask fills the box. Subtracted before masking, so that masked FSCs do not depend on an
    offset of the map."""
    outside = 1.0 - mask
    w = float(outside.sum(dtype=np.float64))
    if w < 1.0:
        return np.float32(data.mean(dtype=np.float64))
    return np.float32(np.vdot(data.ravel().astype(np.float64), outside.ravel()) / w)


def masked_fsc(h1: np.ndarray, h2: np.ndarray, F1: np.ndarray, F2: np.ndarray,
               mask: np.ndarray, shells: fourier.FourierShells, fsc_unmasked: np.ndarray,
               seed: int = 0) -> MaskedFSC:
    """FSC of the halves multiplied by ``mask``, and its phase-randomisation-corrected version.

    The phases of both halves are randomised beyond r_rand, the first shell (after the DC term)
    where the unmasked FSC drops below 0.8 (RELION's choice). With FSC_n the FSC of the masked
    randomised halves and FSC_t the masked FSC, the corrected curve is FSC_t for shells
    < r_rand + 2 and (FSC_t - FSC_n)/(1 - FSC_n) beyond (0 when FSC_n > FSC_t), as in RELION.
    If the unmasked FSC never drops below 0.8 (identical halves), no correction is applied.
    """
    mask = mask.astype(np.float32, copy=False)
    # each half's solvent level is removed before masking: an offset c would enter both halves
    # as the same c·mask and correlate them at every frequency
    b1, b2 = background_level(h1, mask), background_level(h2, mask)
    m1 = fourier.rfft((h1 - b1) * mask)
    m2 = fourier.rfft((h2 - b2) * mask)
    fsc_t = fsc(m1, m2, shells)
    del m1, m2
    cross = first_crossing(shells.frequency, fsc_unmasked, RANDOMISE_AT_FSC, "below")
    if cross.index is None:
        return MaskedFSC(fsc_t, None, fsc_t.copy(), None)
    r_rand = max(int(cross.index), 1)
    rng = np.random.default_rng(seed)
    r1 = fourier.irfft(randomise_phases(F1, shells, r_rand, rng), h1.shape)
    r1 -= b1  # the DC term is kept by the randomisation, so is the offset
    r1 *= mask
    R1 = fourier.rfft(r1)
    del r1
    r2 = fourier.irfft(randomise_phases(F2, shells, r_rand, rng), h2.shape)
    r2 -= b2
    r2 *= mask
    R2 = fourier.rfft(r2)
    del r2
    fsc_n = fsc(R1, R2, shells)
    del R1, R2
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(fsc_n > fsc_t, 0.0, (fsc_t - fsc_n) / (1.0 - fsc_n))
    i = np.arange(shells.n_shells)
    corrected = np.where(i < r_rand + 2, fsc_t, corr)
    return MaskedFSC(fsc_t, fsc_n, corrected, r_rand)
