"""Numerical kernels shared by many checks: Fourier shells, masks, resampling."""
