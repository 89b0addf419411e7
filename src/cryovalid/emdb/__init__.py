"""EMDB entries: read an entry's header XML and fetch its files (map, half maps, models).

* :mod:`cryovalid.emdb.header` — :func:`read_header` (v3 and v1.9 schemas) →
  :class:`EntryHeader`
* :mod:`cryovalid.emdb.fetch` — :class:`Mirror` (archive base URLs / folders),
  :func:`~cryovalid.emdb.fetch.fetch` (resumable, checked, cached download),
  :func:`entry_files` (what an entry needs)
"""
# ``fetch`` (the function) is not re-exported here: ``cryovalid.emdb.fetch`` stays the module.
from cryovalid.emdb.fetch import (FetchError, Mirror, RemoteFile, RemoteNotFound, entry_files,
                                  sha256_file)
from cryovalid.emdb.header import EntryHeader, normalise_emdb_id, read_header

__all__ = ["EntryHeader", "normalise_emdb_id", "read_header", "FetchError", "Mirror",
           "RemoteFile", "RemoteNotFound", "entry_files", "sha256_file"]
