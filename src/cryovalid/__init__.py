"""cryovalid: cryo-EM map validation reports.

The one entry point is :func:`validate` (``from cryovalid import Inputs, Options, validate``);
see :mod:`cryovalid.api`. The command line (``cryovalid report``) is a thin layer over it.
"""
__version__ = "0.1.0"
__all__ = ["Inputs", "Options", "validate", "__version__"]


def __getattr__(name):  # the API is imported on first use, so that `cryovalid --help` stays quick
    if name in ("Inputs", "Options", "validate"):
        from cryovalid import api

        return getattr(api, name)
    raise AttributeError(f"module 'cryovalid' has no attribute {name!r}")
