"""The job queue: it lives in the database (the ``jobs`` table), so it survives the server.

* **Submit**: a checked submission becomes a row ``queued`` (:func:`insert`).
* **Claim**: the dispatcher thread takes the oldest queued job with one atomic statement,
  ``UPDATE jobs SET status='running', attempts=attempts+1, runs=runs+1 … WHERE id=(SELECT …
  WHERE status='queued' ORDER BY created LIMIT 1 [FOR UPDATE SKIP LOCKED]) AND
  status='queued' RETURNING id, runs`` (:func:`claim`): two dispatchers never take the same
  job.
* **Run**: each job runs in its own process (:mod:`cryovalid.service.runjob`), forked from a
  forkserver that has imported cryovalid once (:class:`LocalRunner`, ``--workers N`` at a
  time), or submitted to a Dask cluster (:class:`DaskRunner`, ``--scheduler ADDRESS``), where
  a task starts the same ``runjob`` as a subprocess. The process writes its progress, its
  heartbeat and its outcome to the row itself.
* **Reap**: a process that ended while its row still says ``running`` (killed, out of memory,
  crashed) gets the row marked ``failed`` with the reason (its exit code or signal).
* **Recover** (at start, then every few seconds): a ``running`` row whose process is gone
  (same host: the pid, checked with its start time, no longer exists) or whose heartbeat is
  older than the lease (any host) was interrupted: it is re-queued if it has attempts left
  (``max_attempts``, default 2: one retry), else marked failed, with a note either way. At start
  an orphan of the previous server still alive on this host is killed first. No job is left
  ``running`` forever, none is lost, none runs twice at once (every write of a job process is
  fenced by its run number, ``runs``). A clean stop of the server (SIGTERM) stops its jobs and
  re-queues them without counting the attempt.
* **Cancel**: a queued job is marked ``cancelled`` at once; a running one gets
  ``cancel_requested``, its process is killed (local) or ends itself at its next heartbeat
  (Dask), and the row is marked ``cancelled``.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import signal
import socket
import threading
import time

from sqlalchemy import insert as sa_insert
from sqlalchemy import select, update

from cryovalid.service import db, runjob
from cryovalid.service.db import Job

log = logging.getLogger("cryovalid.service")
RECOVER_EVERY_S = 5.0


def new_id() -> str:
    return secrets.token_hex(8)


def insert(engine, job_id: str, checked, client: str) -> str:
    """Queue a checked submission (uploads.Checked); returns its access token."""
    token = secrets.token_urlsafe(24)
    with engine.begin() as conn:
        conn.execute(sa_insert(Job).values(
            id=job_id, token=token, private=checked.private, status="queued",
            name=checked.name, emdb_id=checked.emdb_id, client=client[:64], created=db.now(),
            threshold=checked.threshold, resolution=checked.resolution,
            formats=",".join(checked.formats), files=checked.files,
            names=dict(checked.names) or None, options=dict(checked.options) or None,
            progress=[], notes=[],
            attempts=0, cancel_requested=False))
    return token


def claim(engine):
    """Take the oldest queued job: (id, run number) or None. One statement, atomic."""
    oldest = (select(Job.id).where(Job.status == "queued").order_by(Job.created, Job.id)
              .limit(1).with_for_update(skip_locked=True).scalar_subquery())
    stmt = (update(Job).where(Job.id == oldest, Job.status == "queued")
            .values(status="running", attempts=Job.attempts + 1, runs=Job.runs + 1,
                    started=db.now(),
                    heartbeat=db.now(), host=None, pid=None, pid_start=None, error=None,
                    progress=[], cancel_requested=False)
            .returning(Job.id, Job.runs))
    with engine.begin() as conn:
        row = conn.execute(stmt).first()
    return (row[0], row[1]) if row else None


def fail(engine, job_id: str, run: int, reason: str) -> bool:
    with engine.begin() as conn:
        res = conn.execute(update(Job).where(Job.id == job_id, Job.status == "running",
                                             Job.runs == run)
                           .values(status="failed", finished=db.now(), error=reason))
    return res.rowcount == 1


def _exit_reason(code) -> str:
    if code is None:
        return "the job's process ended without a result"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        extra = " (out of memory, or killed by an operator?)" if -code == signal.SIGKILL else ""
        return f"the job's process was killed by {name}{extra} before it finished"
    return f"the job's process ended with exit status {code} before it finished"


# ----------------------------------------------------------------------------- runners


def _driver_modules(url: str) -> list:
    """The modules a job's engine for ``url`` imports (its SQLAlchemy dialect and the DBAPI
    driver, e.g. psycopg: 0.1-0.2 s), preloaded in the forkserver so that a job does not."""
    from sqlalchemy.engine import make_url

    try:
        dialect = make_url(url).get_dialect()
        return [dialect.__module__, dialect.import_dbapi().__name__]
    except Exception:  # noqa: BLE001 - a driver that is not installed: the job says so
        return []


class LocalRunner:
    """Each job in its own process, forked from a preloaded forkserver (fast start)."""

    def __init__(self, settings):
        self.settings = settings
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(["cryovalid.service.runjob",
                                         "cryovalid.service._preload",
                                         *_driver_modules(settings.database)])
        from multiprocessing import forkserver

        forkserver.ensure_running()  # start it (and its imports) now, not at the first job

    def start(self, job_id, run):
        s = self.settings
        p = self.ctx.Process(
            target=runjob.run, name=f"cryovalid-job-{job_id}",
            args=(s.data, s.database, job_id, run),
            kwargs=dict(heartbeat_s=s.heartbeat_s, env=s.extra_env, emdb_mirror=s.emdb_mirror,
                        pdb_mirror=s.pdb_mirror, threads=s.job_threads(),
                        supervisor=(os.getpid(), runjob.process_start_time(os.getpid()))),
            daemon=False)
        p.start()
        return p

    @staticmethod
    def exitcode(handle):
        """None while running, else the exit status (negative: killed by that signal)."""
        return handle.exitcode

    @staticmethod
    def sentinels(handles) -> list:
        """What becomes readable when a job process ends (the dispatcher waits on these)."""
        return [h.sentinel for h in handles]

    @staticmethod
    def kill(handle):
        if handle.exitcode is None:
            handle.kill()
        handle.join(5)

    def close(self):
        pass


def run_in_subprocess(data, database, job_id, run, heartbeat_s, threads, emdb_mirror,
                      pdb_mirror, env):
    """A Dask task: run the job as ``python -m cryovalid.service.runjob`` on the worker
    (its own process, as locally). Returns the exit status."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "cryovalid.service.runjob", job_id, "--data", data,
           "--database", database, "--run", str(run), "--heartbeat", str(heartbeat_s),
           "--threads", str(threads), "--supervisor", str(os.getpid())]
    if emdb_mirror:
        cmd += ["--emdb-mirror", emdb_mirror]
    if pdb_mirror:
        cmd += ["--pdb-mirror", pdb_mirror]
    return subprocess.run(cmd, env={**os.environ, **(env or {})}).returncode


class DaskRunner:
    """Jobs submitted to a Dask scheduler (``distributed.Client(address).submit``). The workers
    must reach the data folder (a shared file system) and the database (e.g. PostgreSQL)."""

    def __init__(self, settings):
        from distributed import Client

        self.settings = settings
        self.client = Client(settings.scheduler, timeout=30)

    def start(self, job_id, run):
        s = self.settings
        return self.client.submit(run_in_subprocess, s.data, s.database, job_id, run,
                                  s.heartbeat_s, s.job_threads(), s.emdb_mirror, s.pdb_mirror,
                                  s.extra_env, pure=False, key=f"cryovalid-{job_id}-{run}")

    @staticmethod
    def exitcode(fut):
        if not fut.done():
            return None
        try:
            return int(fut.result())
        except Exception:  # noqa: BLE001 - a lost worker, a cancelled task
            return -int(signal.SIGKILL)

    @staticmethod
    def kill(fut):
        fut.cancel()  # the job process also ends itself when it sees cancel_requested

    @staticmethod
    def sentinels(handles) -> list:
        return []  # polled

    def close(self):
        self.client.close()


# -------------------------------------------------------------------------- dispatcher


class Dispatcher:
    """The thread that claims queued jobs, starts them, reaps them and recovers lost ones."""

    def __init__(self, settings, engine):
        self.settings, self.engine = settings, engine
        self.host = socket.gethostname()
        self.running = {}  # job id -> (handle, run number)
        self.lock = threading.Lock()
        # a self-pipe: a submission or a cancel wakes the dispatcher, as does a job's end
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.stopping = threading.Event()
        self.thread = None
        self.runner = None
        self.capacity = 10 ** 6 if settings.scheduler else settings.workers
        self._last_recover = 0.0

    # lifecycle
    def start(self):
        self.runner = (DaskRunner(self.settings) if self.settings.scheduler
                       else LocalRunner(self.settings))
        self.recover(at_start=True)
        self.thread = threading.Thread(target=self._loop, name="cryovalid-dispatcher",
                                       daemon=True)
        self.thread.start()

    def stop(self, timeout=10.0):
        """Stop claiming; the jobs running here are stopped and re-queued (not counted as an
        attempt), so that the next server runs them again."""
        self.stopping.set()
        self.notify()
        if self.thread is not None:
            self.thread.join(timeout)
        with self.lock:
            items = list(self.running.items())
            self.running.clear()
        for job_id, (handle, run) in items:
            self.runner.kill(handle)
            with self.engine.begin() as conn:
                conn.execute(update(Job).where(Job.id == job_id, Job.status == "running",
                                               Job.runs == run)
                             .values(status="queued", attempts=Job.attempts - 1, pid=None,
                                     pid_start=None, host=None, progress=[]))
            self._note(job_id, "re-queued: the server stopped while the job ran")
        if self.runner is not None:
            self.runner.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def notify(self):
        try:
            os.write(self._wake_w, b"!")
        except (BlockingIOError, OSError):  # full: it is awake already; closed: stopped
            pass

    def _wait(self):
        """Until a job process ends, a submission arrives, or poll_s has passed."""
        from multiprocessing.connection import wait

        with self.lock:
            handles = [h for h, _ in self.running.values()]
        wait([self._wake_r, *self.runner.sentinels(handles)], self.settings.poll_s)
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _loop(self):
        while not self.stopping.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - a busy or lost database: try again
                log.exception("dispatcher step failed")
            self._wait()

    def step(self):
        self.reap()
        if time.time() - self._last_recover > RECOVER_EVERY_S:
            self.recover()
        while not self.stopping.is_set():
            with self.lock:
                if len(self.running) >= self.capacity:
                    break
            got = claim(self.engine)
            if got is None:
                break
            job_id, run = got
            try:
                handle = self.runner.start(job_id, run)
            except Exception as exc:  # noqa: BLE001 - cannot fork, scheduler gone, ...
                fail(self.engine, job_id, run, f"the job could not be started "
                                               f"({type(exc).__name__}: {exc})")
                continue
            with self.lock:
                self.running[job_id] = (handle, run)

    def reap(self):
        with self.lock:
            items = list(self.running.items())
        for job_id, (handle, run) in items:
            code = self.runner.exitcode(handle)
            if code is None:
                continue
            with self.lock:
                self.running.pop(job_id, None)
            if hasattr(handle, "join"):
                handle.join(0)
            if code == runjob.EXIT_CANCELLED:
                continue
            fail(self.engine, job_id, run, _exit_reason(code))  # only if still running

    # cancellation
    def cancel(self, job_id: str) -> str:
        """Cancel a job; returns its status afterwards."""
        with self.engine.begin() as conn:
            res = conn.execute(update(Job).where(Job.id == job_id, Job.status == "queued")
                               .values(status="cancelled", finished=db.now(),
                                       error="cancelled by the user"))
            if res.rowcount:
                return "cancelled"
            conn.execute(update(Job).where(Job.id == job_id, Job.status == "running")
                         .values(cancel_requested=True))
        with self.lock:
            entry = self.running.pop(job_id, None)
        if entry is not None:
            handle, run = entry
            self.runner.kill(handle)
            with self.engine.begin() as conn:
                conn.execute(update(Job).where(Job.id == job_id, Job.status == "running",
                                               Job.runs == run)
                             .values(status="cancelled", finished=db.now(),
                                     error="cancelled by the user"))
        with db.reader(self.engine).connect() as conn:
            return conn.execute(select(Job.status).where(Job.id == job_id)).scalar_one()

    # recovery
    def _note(self, job_id, text):
        with self.engine.begin() as conn:
            notes = conn.execute(select(Job.notes).where(Job.id == job_id)).scalar_one()
            conn.execute(update(Job).where(Job.id == job_id)
                         .values(notes=list(notes or []) + [text]))

    def _alive(self, row) -> bool:
        """Is the process named in ``row`` (same host) still the one that started the job?"""
        if not row.pid:
            return False
        start = runjob.process_start_time(row.pid)
        if start is None:
            try:
                os.kill(row.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return row.pid_start is None  # no /proc: trust the pid alone
        return row.pid_start is None or start == row.pid_start

    def recover(self, at_start: bool = False):
        """Re-queue (or fail) the running jobs whose process is gone; see the module doc."""
        self._last_recover = time.time()
        now = db.now()
        with db.reader(self.engine).connect() as conn:
            rows = conn.execute(select(Job.id, Job.attempts, Job.runs, Job.host, Job.pid,
                                       Job.pid_start,
                                       Job.heartbeat, Job.started)
                                .where(Job.status == "running")).all()
        with self.lock:
            mine = set(self.running)
        for r in rows:
            if r.id in mine:
                continue
            beat = r.heartbeat or r.started or 0.0
            stale = now - beat > self.settings.lease_s
            local = r.host in (None, self.host)
            if at_start and local and not self.settings.scheduler:
                # nothing of ours runs yet: a row of this host is an orphan of the last server
                if self._alive(r):
                    try:
                        os.kill(r.pid, signal.SIGKILL)
                    except OSError:
                        pass
                reason = "the server stopped while the job ran"
            elif local and r.pid and not self._alive(r) and not self.settings.scheduler:
                reason = "the job's process is gone"
            elif stale:
                reason = f"no heartbeat for {now - beat:.0f} s"
            else:
                continue
            self._requeue_or_fail(r.id, r.attempts, r.runs, reason)

    def _requeue_or_fail(self, job_id, attempt, run, reason):
        if attempt < self.settings.max_attempts:
            with self.engine.begin() as conn:
                res = conn.execute(update(Job).where(Job.id == job_id, Job.status == "running",
                                                     Job.runs == run)
                                   .values(status="queued", pid=None, pid_start=None,
                                           host=None, progress=[]))
            if res.rowcount:
                self._note(job_id, f"attempt {attempt} was interrupted ({reason}); re-queued")
                log.warning("job %s: attempt %d interrupted (%s); re-queued", job_id, attempt,
                            reason)
                self.notify()
        else:
            if fail(self.engine, job_id, run,
                    f"interrupted ({reason}) on attempt {attempt} of "
                    f"{self.settings.max_attempts}; not retried"):
                log.warning("job %s: attempt %d interrupted (%s); failed", job_id, attempt,
                            reason)
