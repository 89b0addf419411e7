"""Helpers of the web-service tests: a small synthetic map, a real server on a free port."""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import httpx
import mrcfile
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOB_THRESHOLD = 0.3  # the blob's peak is 1; the noise is 0.01


def write_blob_map(path, n=24, voxel_size=1.5, seed=0):
    """A Gaussian blob (sigma n/8 voxels, peak 1) in 1 % noise, an n³ float32 MRC file;
    returns the path. Its values run from about -0.04 to 1.04."""
    z, y, x = np.mgrid[:n, :n, :n].astype(np.float32)
    c = (n - 1) / 2.0
    vol = np.exp(-((x - c) ** 2 + (y - c) ** 2 + (z - c) ** 2) / (2 * (n / 8.0) ** 2))
    vol = vol.astype(np.float32)
    vol += 0.01 * np.random.default_rng(seed).standard_normal(vol.shape).astype(np.float32)
    with mrcfile.new(str(path), overwrite=True) as m:
        m.set_data(vol)
        m.voxel_size = voxel_size
    return str(path)


def blob_particles(folder):
    """(STAR, its stack, a class stack) of 8 classes × 5 particles of the blob map's
    projections (24², 1.5 Å), written under ``folder``."""
    from simulate_particles import simulate_particles, write_relion, write_stack

    from cryovalid.io.maps import read_map

    m = read_map(write_blob_map(os.path.join(str(folder), "blob_for_particles.mrc")))
    sim = simulate_particles(np.asarray(m.data), m.voxel_size, n_classes=8, per_class=5,
                             snr=0.5, seed=2)
    star, mrcs = write_relion(os.path.join(str(folder), "particles"), sim)
    classes = os.path.join(str(folder), "classes.mrcs")
    write_stack(classes, sim["classes"], sim["pixel"])
    return star, mrcs, classes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, step=0.1, what="condition"):
    t0 = time.monotonic()
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def rows(data):
    """Every job row, read straight from the SQLite file (as dicts)."""
    con = sqlite3.connect(os.path.join(str(data), "cryovalid.sqlite"), timeout=30)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT id, status, attempts, pid, error, notes, "
                                             "score_passed FROM jobs ORDER BY created")]
    finally:
        con.close()


class Server:
    """``python -m cryovalid.service serve`` on 127.0.0.1:<free port>, as a subprocess."""

    def __init__(self, data, workers=2, extra=(), env=None, log=None):
        self.data, self.port = str(data), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "cryovalid.service", "serve", "--data", self.data,
               "--port", str(self.port), "--workers", str(workers), *extra]
        self.log = open(log or os.path.join(self.data + ".log"), "ab")
        e = {**os.environ, "CRYOVALID_WORKERS": "1", **(env or {})}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=e, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        try:
            wait_for(self._up, 60, what="the server to start")
        except BaseException:
            self.kill()
            raise

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"the server exited with {self.proc.returncode}; see "
                                 f"{self.log.name}")
        try:
            return httpx.get(self.url + "/api/jobs", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self):
        """SIGKILL: no clean-up of any kind."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.log.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def pid_alive(pid):
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def rows_at(url):
    """Every job row of the database at SQLAlchemy ``url`` (any dialect), as dicts; notes
    decoded (a list)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            out = [dict(r._mapping) for r in conn.execute(text(
                "SELECT id, status, attempts, pid, error, notes, score_passed FROM jobs "
                "ORDER BY created"))]
    finally:
        engine.dispose()
    for r in out:
        if isinstance(r["notes"], str):
            r["notes"] = json.loads(r["notes"])
    return out


def check_upgrade_keeps_rows(url):
    """A database migrated to 0001 holding a finished job (written through the 0001 table as
    the database reflects it) upgrades to the newest revision with the row unchanged, the new
    ``names`` (0002) and ``options`` (0003) columns NULL, and the job's summary falling back to the stored names."""
    import sqlalchemy as sa
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from cryovalid.service import db

    engine = db.make_engine(url)
    try:
        db.migrate(engine, "0001")
        with engine.begin() as conn:
            old = sa.Table("jobs", sa.MetaData(), autoload_with=conn)
            assert "names" not in old.c
            row = dict(id="0123456789abcdef", token="t" * 32, private=False, status="done",
                       name="kept", emdb_id=None, client="127.0.0.1", created=1.5e9,
                       started=1.5e9 + 1, finished=1.5e9 + 9, threshold=0.3, resolution=8.0,
                       formats="json", files={"map": "map.mrc.gz"},
                       progress=[["Masks", 0.5, ""]], error=None, notes=["a note"],
                       attempts=1, runs=1, cancel_requested=False, host="h", pid=12,
                       pid_start=345, heartbeat=1.5e9 + 9, score_passed=2, score_evaluable=3,
                       score=2 / 3, levels="0", report={"score": {"passed": 2,
                                                                   "evaluable": 3}})
            conn.execute(old.insert().values(**row))
            assert MigrationContext.configure(conn).get_current_revision() == "0001"
        db.migrate(engine)
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == "0003"
            assert compare_metadata(MigrationContext.configure(conn), db.Base.metadata) == []
            new = sa.Table("jobs", sa.MetaData(), autoload_with=conn)
            got = dict(conn.execute(sa.select(new)).one()._mapping)
        assert got.pop("names") is None and got.pop("options") is None
        assert got == row
        with db.sessions(engine)() as ses:
            job = ses.get(db.Job, row["id"])
            s = job.summary()
        assert s["files"] == {"map": "map.mrc.gz"} and s["score"] == {"passed": 2,
                                                                       "evaluable": 3}
    finally:
        engine.dispose()
