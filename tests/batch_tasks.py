"""Dask tasks for tests/test_batch.py, importable by the worker processes (tests/ is on the
path the workers inherit): the real task, recording each call, or a worker that dies."""
import os
import uuid

from cryovalid.batch.runner import run_entry

CALLS_ENV = "CRYOVALID_TEST_BATCH_CALLS"  # folder where each call leaves a marker file


def recorded(entry, out_dir, settings):
    """run_entry, leaving ``<calls>/<entry name>.<uuid>`` behind; the entry named 'crash'
    makes its worker process exit in the middle of the report, as a kill or a crash does."""
    calls = os.environ[CALLS_ENV]
    open(os.path.join(calls, f"{entry.name}.{uuid.uuid4().hex}"), "w").close()
    if entry.name == "crash":
        os._exit(17)
    return run_entry(entry, out_dir, settings)
