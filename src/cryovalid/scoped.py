"""A process-wide setting changed only while some code runs, even when such runs overlap in
threads: the first to enter saves and changes it, the last to leave restores it.

For the few switches libraries offer only process-wide (VTK's warning display, the level of a
library's logger); cryovalid changes no other process state."""
from __future__ import annotations

import contextlib
import threading


class ScopedOverride:
    """``ScopedOverride(apply, restore)``: ``apply()`` changes the setting and returns what
    ``restore(saved)`` needs to put it back. Use an instance as ``with override():``."""

    def __init__(self, apply, restore):
        self._apply, self._restore = apply, restore
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = None

    @contextlib.contextmanager
    def __call__(self):
        with self._lock:
            if self._depth == 0:
                self._saved = self._apply()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._restore(self._saved)
                    self._saved = None
