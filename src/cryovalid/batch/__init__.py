"""Many reports at once: ``cryovalid batch`` on a Dask cluster.

* :mod:`cryovalid.batch.entries` — :func:`read_entries` (text files of EMDB IDs or map paths,
  CSV files with options, folders of maps) → :class:`BatchEntry`
* :mod:`cryovalid.batch.runner` — :func:`run_batch` (LocalCluster or a scheduler address;
  isolated, retried, resumable), :func:`run_entry` (one report; the Dask task)
* :mod:`cryovalid.batch.summary` — summary.csv / summary.json / summary.html
"""
from cryovalid.batch.entries import BatchEntry, read_entries
from cryovalid.batch.runner import BatchSettings, run_batch, run_entry

__all__ = ["BatchEntry", "read_entries", "BatchSettings", "run_batch", "run_entry"]
