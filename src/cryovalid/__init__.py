"""cryovalid: cryo-EM map validation reports."""
__version__ = "0.1.0"
