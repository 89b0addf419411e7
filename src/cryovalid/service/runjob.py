"""One job in its own process: ``python -m cryovalid.service.runjob --data DIR --database URL
--run N JOB_ID`` (or :func:`run` in a process the dispatcher forks).

The process

1. marks itself in the job row (host, pid, the pid's start time, a heartbeat) — only if the
   row is still ``running`` with this run number (``runs``, incremented by every claim): every
   write of this process is fenced by (id, status='running', runs=N), so a process of an
   earlier, interrupted run can never overwrite a later one;
2. starts a watchdog thread that renews the heartbeat every ``heartbeat_s`` seconds and ends
   the process when the job is cancelled (``cancel_requested``), when the row is no longer
   its own, or when the server process that started it has gone (its pid and start time): a
   job never outlives the server that supervises it, and the next server re-queues it
   (jobs.Dispatcher.recover);
3. calls :func:`cryovalid.validate` (``CRYOVALID_WORKERS`` and ``Options.workers`` set so that
   the jobs that run at once share the cores), writing each step to ``progress``;
4. writes the outcome: ``done`` with report.json (the file, read back) and the archive
   columns (score, levels), or ``failed`` with the one-line reason (an InputError's message,
   the files named as they were uploaded; for an internal error its type and message, the
   traceback in ``error.log`` in the job folder), and exits.

The report names the files as they were uploaded (``Inputs(names=…)`` from the row's
``names``), never by their stored names.

Test hook: ``CRYOVALID_SERVICE_TEST_SLEEP`` (seconds) makes the job wait before validating,
so that a test can catch it running.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import threading
import time

TEST_SLEEP_ENV = "CRYOVALID_SERVICE_TEST_SLEEP"
EXIT_CANCELLED = 3
EXIT_ORPHANED = 4
EXIT_LOST = 5
PRELOAD = ("cryovalid.api", "cryovalid.context", "cryovalid.emdb.entry", "cryovalid.io.halfmaps",
           "cryovalid.io.maps", "cryovalid.io.model", "cryovalid.io.output", "cryovalid.pipeline",
           "cryovalid.report.model", "cryovalid.report.render", "cryovalid.store",
           "cryovalid.service.db", "sqlalchemy.dialects.sqlite")


def process_start_time(pid: int):
    """The start time of process ``pid`` (clock ticks since boot, Linux /proc), or None when
    there is no such process (or only its zombie): with the pid it names one process, whatever
    pids are reused later."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().decode("latin-1").rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _one_line(exc) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def preload() -> None:
    """Import what validate() imports lazily, so that a process forked from a preloaded
    parent starts a job at once (see jobs.LocalRunner)."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    from cryovalid import registry

    registry.items()  # every item, its kernels and (through draws) its figures
    registry.draws()


class _Job:
    def __init__(self, database: str, job_id: str, run: int):
        from cryovalid.service import db

        self.db = db
        self.engine = db.make_engine(database)
        self.id, self.run = job_id, run

    def update(self, **values) -> bool:
        """UPDATE the row if it is still this run's and running; True if it was."""
        from sqlalchemy import update

        Job = self.db.Job
        with self.engine.begin() as conn:
            res = conn.execute(update(Job).where(Job.id == self.id, Job.status == "running",
                                                 Job.runs == self.run).values(**values))
            return res.rowcount == 1

    def row(self):
        from sqlalchemy import select

        with self.db.reader(self.engine).connect() as conn:
            return conn.execute(select(self.db.Job).where(self.db.Job.id == self.id)).first()

    def add_progress(self, label, seconds, status):
        from sqlalchemy import select

        Job = self.db.Job
        with self.engine.begin() as conn:
            cur = conn.execute(select(Job.progress).where(
                Job.id == self.id, Job.status == "running",
                Job.runs == self.run)).scalar_one_or_none()
            if cur is None:
                raise SystemExit(EXIT_LOST)
            from sqlalchemy import update

            conn.execute(update(Job).where(Job.id == self.id, Job.runs == self.run)
                         .values(progress=list(cur) + [[str(label), round(float(seconds), 3),
                                                        str(status or "")]],
                                 heartbeat=time.time()))


def _supervisor_gone(supervisor) -> bool:
    """Has the server process ``supervisor`` = (pid, start time) ended?"""
    pid, start = supervisor
    now = process_start_time(pid)
    if now is None and start is None:  # no /proc: the pid alone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return now != start


def _watchdog(job: _Job, heartbeat_s: float, supervisor, stop: threading.Event):
    while not stop.wait(heartbeat_s):
        if supervisor is not None and _supervisor_gone(supervisor):
            os._exit(EXIT_ORPHANED)  # the server is gone: the next server re-queues
        try:
            r = job.row()
            if r is None or r.status != "running" or r.runs != job.run:
                os._exit(EXIT_LOST)
            if r.cancel_requested:
                job.db_cancel()
                os._exit(EXIT_CANCELLED)
            job.update(heartbeat=time.time())
        except Exception:  # noqa: BLE001 - a busy database: try again at the next beat
            continue


def run(data: str, database: str, job_id: str, run: int, *, heartbeat_s: float = 2.0,
        env: dict | None = None, emdb_mirror=None, pdb_mirror=None, threads: int = 1,
        supervisor=None) -> int:
    """Run job ``job_id`` (its run number ``run``) to its end; returns the exit status.
    ``supervisor``: (pid, start time) of the server that started it; the job ends itself
    when that process is gone."""
    from cryovalid.errors import InputError
    from cryovalid.service import db

    os.environ.update({k: str(v) for k, v in (env or {}).items()})
    os.environ["CRYOVALID_WORKERS"] = str(threads)
    job = _Job(database, job_id, run)

    def db_cancel():
        job.update(status="cancelled", finished=db.now(), error="cancelled by the user")

    job.db_cancel = db_cancel
    me = os.getpid()
    if not job.update(host=socket.gethostname(), pid=me, pid_start=process_start_time(me),
                      heartbeat=db.now()):
        return EXIT_LOST  # cancelled or re-queued before this process started
    stop = threading.Event()
    threading.Thread(target=_watchdog, args=(job, heartbeat_s, supervisor, stop), daemon=True,
                     name="cryovalid-job-watchdog").start()
    folder = os.path.join(data, "jobs", job_id)
    out = os.path.join(folder, "report")
    r = None
    try:
        r = job.row()
        sleep = float(os.environ.get(TEST_SLEEP_ENV, "0") or 0)
        if sleep > 0:
            time.sleep(sleep)
        rep = _stored_report(out, _validate(job, r, folder, out, data, threads, emdb_mirror,
                                            pdb_mirror))
        score = rep.get("score") or {}
        passed, evaluable = score.get("passed"), score.get("evaluable")
        job.update(status="done", finished=db.now(), report=rep, score_passed=passed,
                   score_evaluable=evaluable,
                   score=(passed / evaluable) if passed is not None and evaluable else None,
                   levels=",".join(str(x) for x in rep.get("levels", [])))
        return 0
    except InputError as exc:
        msg = said(_one_line(exc), folder, r.files if r is not None else None,
                   r.names if r is not None else None)
        job.update(status="failed", finished=db.now(), error=msg)
        return 0
    except SystemExit as exc:
        return int(exc.code or 0)
    except BaseException as exc:  # noqa: BLE001 - the reason goes to the row, one line
        import traceback

        try:
            with open(os.path.join(folder, "error.log"), "w", encoding="utf-8") as fh:
                fh.write(traceback.format_exc())
        except OSError:
            pass
        job.update(status="failed", finished=db.now(),
                   error=f"internal error ({type(exc).__name__}: {_one_line(exc)[:300]}); "
                         f"the traceback is in the job's error.log")
        return 1
    finally:
        stop.set()
        job.engine.dispose()


def _validate(job, r, folder, out, data, threads, emdb_mirror, pdb_mirror) -> dict:
    from cryovalid.api import Inputs, Options, validate

    formats = tuple(r.formats.split(","))
    if os.path.lexists(out):  # what an interrupted attempt left
        shutil.rmtree(out, ignore_errors=True)

    def progress(label, seconds, status=""):
        job.add_progress(label, seconds, status)

    if r.emdb_id:
        from dataclasses import replace

        from cryovalid.emdb.entry import prepare
        from cryovalid.emdb.fetch import Mirror

        kw = {k: v for k, v in (("emdb", emdb_mirror), ("pdb", pdb_mirror)) if v}
        t0 = time.perf_counter()
        entry = prepare(r.emdb_id, cache=os.path.join(data, "emdb-cache"), mirror=Mirror(**kw),
                        formats=formats)
        job.add_progress(f"Fetched {r.emdb_id}", time.perf_counter() - t0,
                         "; ".join(entry.notes)[:300])
        opts = replace(entry.options, formats=formats, workers=threads)
        if r.threshold is not None:
            opts = replace(opts, threshold=r.threshold)
        if r.resolution is not None:
            opts = replace(opts, resolution=r.resolution)
        return validate(entry.inputs, opts, store=out, progress=progress)
    files = r.files or {}

    def p(name):
        return os.path.join(folder, files[name]) if name in files else None

    halves = (p("half_map_1"), p("half_map_2")) if "half_map_1" in files else None
    # the report shows the names the files were uploaded with, never the stored ones
    names = {k: v for k, v in (r.names or {}).items() if k in files} or None
    inputs = Inputs(map=p("map"), half_maps=halves, model=p("model"), classes=p("classes"),
                    particles=p("particles"), particles_stack=p("particles_stack"),
                    names=names)
    opts = Options(threshold=r.threshold, resolution=r.resolution, formats=formats,
                   workers=threads, **(r.options or {}))
    return validate(inputs, opts, store=out, progress=progress)


def said(msg: str, folder: str, files, names) -> str:
    """An error message for the user: each stored file's path becomes its field and the name
    it was uploaded with, ``map (my map.mrc)`` (as the submission's checks say it), and no
    path of the server's remains."""
    names = names or {}
    for key, stored in sorted((files or {}).items(), key=lambda kv: -len(kv[1])):
        if key in names:
            msg = msg.replace(os.path.join(folder, stored), f"{key} ({names[key]})")
    return msg.replace(folder + os.sep, "")


def _stored_report(out: str, rep: dict) -> dict:
    """What the row stores: the report.json the core wrote (strict JSON: NaN and infinities
    are null), read back, so that the database holds the file's very content; ``rep`` (the
    dict validate() returned) only if the file cannot be read (db.strict_json writes its NaN
    as null, which PostgreSQL's json type needs)."""
    import json

    try:
        with open(os.path.join(out, "report.json"), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return rep


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cryovalid.service.runjob",
                                 description="run one queued job of the web service")
    ap.add_argument("job_id")
    ap.add_argument("--data", required=True)
    ap.add_argument("--database", required=True)
    ap.add_argument("--run", type=int, required=True, help="the job's run number (fence)")
    ap.add_argument("--heartbeat", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--emdb-mirror", default=None)
    ap.add_argument("--pdb-mirror", default=None)
    ap.add_argument("--supervisor", type=int, default=None, metavar="PID",
                    help="end the job when this process (e.g. the Dask worker) is gone")
    a = ap.parse_args(argv)
    sup = (a.supervisor, process_start_time(a.supervisor)) if a.supervisor else None
    return run(a.data, a.database, a.job_id, a.run, heartbeat_s=a.heartbeat,
               threads=a.threads, emdb_mirror=a.emdb_mirror, pdb_mirror=a.pdb_mirror,
               supervisor=sup)


if __name__ == "__main__":
    sys.exit(main())
