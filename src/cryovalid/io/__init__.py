"""Reading inputs: maps (all MRC header conventions) and atomic models (gemmi)."""
from cryovalid.io.maps import Map, read_map, write_map  # noqa: F401
