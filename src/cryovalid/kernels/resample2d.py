"""Resampling a stack of square 2-D images onto another grid (the VRS chain of
vrs_level2_5.md §0.2, used by Level 2 to put the class averages on the map's grid).

Chain (``importAvgs`` of the reference): when box and pixel size already equal the target's the
images are kept; otherwise

1. window (centred pad with 0 / crop) to ``int(B·Ts_map / Ts_img)`` px: the physical size of
   the target box;
2. Fourier-resample to Ts_map (crop or zero-pad the centred spectrum of each image, which
   low-passes at the new Nyquist when downsampling, as Xmipp's crop/resize does), keeping the
   grey levels (values, not sums, are preserved);
3. window to the target box ``B``.

The image centre is pixel ``b//2`` (the FFT convention) in every step, so a centred object stays
on the centre. Units: pixel sizes in Å per pixel. Batched over the stack, float32/complex64.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from cryovalid.kernels import fourier


def window(imgs: np.ndarray, size: int) -> np.ndarray:
    """Pad with zeros or crop the last two axes to ``size`` × ``size``, keeping pixel b//2 on
    pixel size//2."""
    imgs = np.asarray(imgs, dtype=np.float32)
    b = imgs.shape[-1]
    if b == size:
        return imgs.copy()
    out = np.zeros(imgs.shape[:-2] + (size, size), dtype=np.float32)
    c_in, c_out = b // 2, size // 2
    lo = max(0, c_in - c_out)  # first input pixel kept
    hi = min(b, c_in + (size - c_out))
    o = lo - c_in + c_out  # where it lands
    out[..., o:o + hi - lo, o:o + hi - lo] = imgs[..., lo:hi, lo:hi]
    return out


def fourier_resize(imgs: np.ndarray, size: int) -> np.ndarray:
    """Resample square images of b px to ``size`` px covering the same physical width (pixel
    size × b/size) by cropping or zero-padding their spectrum; values are kept (the mean is
    unchanged). The unpaired Nyquist row/column is dropped, so the result is real and exact for
    a band-limited image."""
    imgs = np.asarray(imgs, dtype=np.float32)
    b = imgs.shape[-1]
    if b == size:
        return imgs.copy()
    ft = scipy.fft.rfft2(imgs, workers=fourier.workers())
    keep = min(b, size)
    h = (keep - 1) // 2  # frequencies -h..h are kept (no unpaired Nyquist)
    out = np.zeros(imgs.shape[:-2] + (size, size // 2 + 1), dtype=np.complex64)
    rows = np.r_[0:h + 1, -h:0]
    out[..., rows, :h + 1] = ft[..., rows, :h + 1]
    res = scipy.fft.irfft2(out, s=(size, size), workers=fourier.workers())
    return (res * (size * size) / float(b * b)).astype(np.float32)


def to_grid(imgs: np.ndarray, pixel_size: float, box: int, target_pixel: float) -> np.ndarray:
    """The reference's two-step chain (module docstring): ``imgs`` (n, b, b) at ``pixel_size``
    Å → (n, box, box) at ``target_pixel`` Å."""
    imgs = np.asarray(imgs, dtype=np.float32)
    b = imgs.shape[-1]
    if b == box and abs(pixel_size - target_pixel) <= 1e-6 * target_pixel:
        return imgs.copy()
    physical = int(box * target_pixel / pixel_size)  # step 1: same physical size as the box
    step1 = window(imgs, max(physical, 2))
    size = max(2, int(round(step1.shape[-1] * pixel_size / target_pixel)))
    step2 = fourier_resize(step1, size)  # step 2: pixel size -> target_pixel
    return window(step2, box)  # step 3: the target box
