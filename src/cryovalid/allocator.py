"""Process-wide memory allocator settings for the command-line entry point.

A report allocates and frees many arrays of the box's size (a 360³ float32 map is 187 MB).
glibc's malloc serves every block above 32 MB with a fresh ``mmap`` and returns it to the system
on ``free``, so each new array of that size is page-faulted in and zeroed by the kernel again:
on a 360³ map the system time exceeded the user time. Telling malloc to serve large blocks from
its heap and to keep freed memory (``mallopt(M_MMAP_MAX, 0)`` and a 1 GiB ``M_TRIM_THRESHOLD``)
lets the next array of the same size reuse the pages already mapped. The peak resident memory is
the same (it is the most that was in use at once); what changes is that the process keeps it
until it exits, which suits a command that exits when its report is written.

Only the process owner (the CLI, a batch worker) should call this, once, at start; the library
itself never changes process state. It does nothing where glibc is not the C library.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Configure glibc malloc as described above; True if it was done."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
