"""Many reports on a Dask cluster: :func:`run_batch`.

Each entry is one Dask task, :func:`run_entry`, which calls the same
:func:`cryovalid.validate` as the command line (an EMDB entry is first fetched with
:func:`cryovalid.emdb.entry.prepare`) and writes the report into ``OUT/<entry name>/``. The
task returns the entry's summary row; it never raises for a bad entry (a corrupt map, a
missing file, an internal error): the row says ``failed`` with the one-line reason, so one
entry never stops the others.

* **Cluster.** ``scheduler=None`` starts a :class:`distributed.LocalCluster` on this machine
  (``workers`` processes of one thread each, on loopback, stopped at the end); an address
  (``tcp://host:8786``) uses an existing scheduler, e.g. one started by dask-jobqueue on
  SLURM/PBS or by dask-kubernetes: the workers must have cryovalid installed and see the same
  ``OUT`` and cache folders (a shared file system).
* **A worker that dies** (killed, out of memory, a crash in a C library) takes its running
  task with it; the scheduler then runs the task once more on another worker
  (``distributed.scheduler.allowed-failures`` = 1 on the local cluster; an existing
  scheduler's own setting applies there) and, if that worker dies too, the entry is
  ``failed`` ("the worker running it died twice").
* **Resumable.** An entry whose folder already holds a complete report
  (:func:`cryovalid.io.output.holds_complete_report`) is not run again: its row is read from
  its report.json. Failed entries are run again.
* **Threads.** Each task's FFTs use ``fft_threads`` threads (default: the machine's CPUs
  divided by the local workers, so that N reports at once do not oversubscribe the cores); the
  local workers' BLAS, OpenMP and software-OpenGL thread pools get the same count
  (:data:`THREAD_ENV`).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, replace
from typing import Callable, Optional

from cryovalid.batch import summary as summ
from cryovalid.batch.entries import BatchEntry
from cryovalid.errors import InputError

ALLOWED_FAILURES = 1  # a task whose worker died is run once more, then the entry fails
POLL_S = 0.5  # how often the progress callback is called while tasks run (s)


@dataclass(frozen=True)
class BatchSettings:
    """What every entry of a batch shares."""

    cache: str  # the EMDB download cache (shared by the workers)
    emdb_mirror: Optional[str] = None  # None: CRYOVALID_EMDB_MIRROR, else EBI
    pdb_mirror: Optional[str] = None
    formats: tuple = ("json", "html", "pdf")
    levels: Optional[tuple] = None  # default for entries that name none
    fft_threads: Optional[int] = None  # per task; None: CRYOVALID_WORKERS, else every CPU


_PROCESS_READY = False


def _prepare_process():
    """Once per worker process: keep freed memory for the next report (as the CLI does)."""
    global _PROCESS_READY
    if not _PROCESS_READY:
        from cryovalid.allocator import keep_freed_memory

        keep_freed_memory()
        _PROCESS_READY = True


def run_entry(entry: BatchEntry, out_dir: str, settings: BatchSettings) -> dict:
    """Grade one entry into ``out_dir``; return its summary row (never raises for the entry's
    own problems: those make a ``failed`` row with the one-line reason)."""
    _prepare_process()
    t0 = time.perf_counter()
    try:
        return _run_entry(entry, out_dir, settings, t0)
    finally:
        try:
            os.rmdir(out_dir)  # only when empty: a failed entry leaves no empty folder
        except OSError:
            pass


def _run_entry(entry, out_dir, settings, t0) -> dict:
    from cryovalid.api import Inputs, Options, validate
    from cryovalid.io.output import OutputFolder, remove_stale_staging

    levels = entry.levels or settings.levels
    try:
        os.makedirs(out_dir, exist_ok=True)
        remove_stale_staging(out_dir)  # left by a worker that died on this entry
        if entry.emdb_id:
            from cryovalid.emdb.entry import prepare
            from cryovalid.emdb.fetch import Mirror

            prepared = prepare(entry.emdb_id, cache=settings.cache,
                               mirror=Mirror(emdb=settings.emdb_mirror, pdb=settings.pdb_mirror),
                               formats=settings.formats, levels=levels)
            inputs = replace(prepared.inputs, **dict(entry.others))
            o = prepared.options
            options = Options(
                threshold=o.threshold if entry.threshold is None else entry.threshold,
                resolution=o.resolution if entry.resolution is None else entry.resolution,
                voxel_size=entry.voxel_size, formats=o.formats, levels=levels,
                workers=settings.fft_threads, symmetry=entry.symmetry or "c1")
        else:
            inputs = Inputs(entry.map, half_maps=entry.half_maps, model=entry.model,
                            **dict(entry.others))
            options = Options(threshold=entry.threshold, resolution=entry.resolution,
                              voxel_size=entry.voxel_size, formats=tuple(settings.formats),
                              levels=levels, workers=settings.fft_threads,
                              symmetry=entry.symmetry or "c1")
        store = OutputFolder(out_dir, inputs=inputs.paths(), force=True)
        try:
            rep = validate(inputs, options, store=store)
        except BaseException:
            store.abandon(keep=False)
            raise
        finally:
            store.release()
    except InputError as exc:
        return summ.failed_row(entry.name, entry.source, _one_line(exc),
                               time.perf_counter() - t0)
    except MemoryError:
        return summ.failed_row(entry.name, entry.source, "ran out of memory",
                               time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - an internal error fails this entry only
        return summ.failed_row(entry.name, entry.source,
                               f"internal error ({type(exc).__name__}: {_one_line(exc)})",
                               time.perf_counter() - t0)
    return summ.row_from_report(entry.name, entry.source, rep, time.perf_counter() - t0,
                                _report_link(out_dir, settings.formats))


def _one_line(exc) -> str:
    text = str(exc).strip()
    return " ".join(text.split()) if text else type(exc).__name__


def _report_link(out_dir: str, formats) -> str:
    name = os.path.basename(os.path.normpath(out_dir))
    return f"{name}/report.html" if "html" in formats else f"{name}/report.json"


def completed_row(entry: BatchEntry, out_dir: str, formats) -> Optional[dict]:
    """The row of an entry whose folder holds a complete report, or None."""
    from cryovalid.io.output import holds_complete_report

    if not holds_complete_report(out_dir):
        return None
    try:
        with open(os.path.join(out_dir, "report.json"), encoding="utf-8") as fh:
            rep = json.load(fh)
    except (OSError, ValueError):
        return None
    seconds = sum(v for v in rep.get("timings_s", {}).values() if isinstance(v, (int, float)))
    row = summ.row_from_report(entry.name, entry.source, rep, None,
                               _report_link(out_dir, formats))
    row["seconds"] = None if not seconds else round(seconds, 2)
    return row


# thread pools of the libraries a report uses besides scipy.fft: BLAS / OpenMP and Mesa's
# software OpenGL (llvmpipe, the isosurface views); a local worker gets its share of the cores
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LP_NUM_THREADS")


class _Cluster:
    """A distributed.Client on a new LocalCluster (closed on exit) or on a scheduler."""

    def __init__(self, scheduler: Optional[str], workers: int, threads: int = 1):
        self.scheduler, self.workers, self.threads = scheduler, workers, threads
        self.cluster = self.client = None

    def __enter__(self):
        import dask
        from distributed import Client, LocalCluster

        try:
            if self.scheduler:
                self.client = Client(self.scheduler, timeout="30s")
            else:
                with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                                      "distributed.worker.daemon": False,
                                      "distributed.worker.memory.target": False,
                                      "distributed.worker.memory.spill": False}):
                    self.cluster = LocalCluster(
                        n_workers=self.workers, threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR,
                        env={k: str(self.threads) for k in THREAD_ENV})
                    self.client = Client(self.cluster)
        except OSError as exc:  # a scheduler that cannot be reached (timeout included)
            self.__exit__(None, None, None)
            raise InputError(f"cannot reach the Dask scheduler {self.scheduler or ''} "
                             f"({_one_line(exc)})") from None
        return self.client

    def __exit__(self, *exc):
        for thing in (self.client, self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closing must not hide the real error
                    pass
        return False


def _worker_died_row(entry, exc) -> dict:
    return summ.failed_row(
        entry.name, entry.source,
        f"the worker running it died twice (killed, out of memory or crashed: "
        f"{type(exc).__name__}); the entry was not graded")


def run_batch(entries, out: str, *, settings: BatchSettings, scheduler: Optional[str] = None,
              workers: Optional[int] = None, progress: Optional[Callable] = None,
              task: Optional[Callable] = None) -> dict:
    """Grade every entry into ``out/<entry name>/`` and write the summary; return it.

    ``progress(done, failed, running, total, skipped)`` is called as the batch goes (counts of
    entries: ``done`` complete, ``skipped`` of them complete from an earlier run). ``task``
    replaces :func:`run_entry` (same signature; for tests). Returns the dict written as
    summary.json. Interrupted (Ctrl-C), it writes the summary of what finished, the other
    entries ``failed`` with "interrupted", and raises KeyboardInterrupt again."""
    t_start = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    task = task or run_entry
    rows = {}
    todo = []
    for e in entries:
        row = completed_row(e, os.path.join(out, e.name), settings.formats)
        if row is not None:
            rows[e.name] = row
        else:
            todo.append(e)
    skipped = len(rows)
    total = len(entries)
    report = progress or (lambda *a: None)
    report(0, 0, 0, total, skipped)
    if todo:
        workers = max(1, int(workers or min(os.cpu_count() or 1, len(todo))))
        if settings.fft_threads is None and scheduler is None:
            settings = _with_threads(settings, max(1, (os.cpu_count() or 1) // workers))
        try:
            with _Cluster(scheduler, workers, settings.fft_threads or 1) as client:
                _run_on(client, todo, out, settings, task, report, total, skipped, rows)
        except KeyboardInterrupt:
            for e in entries:
                rows.setdefault(e.name, summ.failed_row(
                    e.name, e.source, "interrupted before it finished; run the batch again "
                                      "to grade it"))
            summ.write(out, [rows[e.name] for e in entries], time.perf_counter() - t_start)
            raise
    ordered = [rows[e.name] for e in entries]
    return summ.write(out, ordered, time.perf_counter() - t_start)


def _with_threads(settings: BatchSettings, n: int) -> BatchSettings:
    return replace(settings, fft_threads=n)


def _run_on(client, todo, out, settings, task, report, total, skipped, rows) -> None:
    """Submit every entry and fill ``rows`` (entry name -> row) as they finish."""
    from distributed import wait

    futures = {}
    for e in todo:
        f = client.submit(task, e, os.path.join(out, e.name), settings, pure=False,
                          key=f"cryovalid-{e.name}-{os.urandom(4).hex()}")
        futures[f] = e
    pending = set(futures)
    failed = 0
    while pending:
        try:
            finished, pending = wait(list(pending), timeout=POLL_S,
                                     return_when="FIRST_COMPLETED")
        except TimeoutError:  # dask's TimeoutError is the built-in one
            finished = set()
        for f in finished:
            e = futures[f]
            try:
                row = f.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker, a lost or cancelled task
                row = _worker_died_row(e, exc) if "KilledWorker" in type(exc).__name__ else \
                    summ.failed_row(e.name, e.source, f"the task failed ({type(exc).__name__}: "
                                    f"{_one_line(exc)})")
            rows[e.name] = row
            failed += row["status"] == summ.FAILED
        keys = {f.key for f in pending}
        try:
            running = sum(len(keys & set(ts)) for ts in client.processing().values())
        except Exception:  # noqa: BLE001 - progress only
            running = 0
        report(len(rows) - failed, failed, running, total, skipped)
