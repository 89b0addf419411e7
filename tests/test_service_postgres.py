"""The web service on a real PostgreSQL server (``postgresql+psycopg://`` URLs).

A throw-away PostgreSQL cluster (``initdb -A trust -U cv``) is started for this module on
127.0.0.1 at a free port, its unix socket in its own temporary folder, fsync off; each test gets
a fresh database; the cluster is stopped (``pg_ctl -m immediate stop``) and removed at the end.
As root, initdb and pg_ctl (which refuse root) run as the ``postgres`` user. The tests skip when
the server binaries or psycopg are absent.

On it: the Alembic migrations give exactly the models' schema, servers started at once take
turns at the upgrade (an advisory lock), and a database at 0001 upgrades to 0003 with its rows
kept; a NaN in a JSON column is stored as null (PostgreSQL's json refuses NaN); submit → poll → report → list through the API gives validate()'s
own numbers (the SQLite test's known answer) and the uploaded names; the claim is atomic
(20 queued jobs, 4 claimers at once: each job claimed exactly once); a killed server's running
job is re-queued and run by the next server.
"""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
import warnings

import pytest

from service_helpers import (BLOB_THRESHOLD, Server, check_upgrade_keeps_rows, free_port,
                             pid_alive, rows_at, wait_for, write_blob_map)

try:
    import psycopg
except ImportError:  # pragma: no cover - the skip below says it
    psycopg = None


def _pg_bin():
    """The folder holding initdb and pg_ctl (PATH, /usr/local/bin, /usr/lib/postgresql/*/bin)."""
    found = shutil.which("initdb")
    cands = ([os.path.dirname(found)] if found else []) + ["/usr/local/bin"] + sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for d in cands:
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl")):
            return d
    return None


def _as_postgres():
    """The command prefix that runs initdb/pg_ctl as ``postgres`` when we are root (they
    refuse root), [] otherwise; None when that is not possible."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--"]
    if shutil.which("setpriv"):
        pw = pwd.getpwnam("postgres")
        return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups"]
    return None


PG_BIN = _pg_bin()
AS_PG = _as_postgres()
SKIP = ("psycopg (3) is not installed" if psycopg is None else
        "the PostgreSQL server binaries (initdb, pg_ctl) were not found" if PG_BIN is None else
        "running as root with no 'postgres' user (or runuser/setpriv) to run initdb and pg_ctl"
        if AS_PG is None else None)
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


class PostgresCluster:
    """initdb + pg_ctl start on 127.0.0.1:<free port>; databases made with CREATE DATABASE."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="cryovalid-pg-")
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        self.datadir = os.path.join(self.base, "db")
        self.log = os.path.join(self.base, "server.log")
        self._pg("initdb", "-D", self.datadir, "-A", "trust", "-U", "cv", "-E", "UTF8",
                 "--no-locale", "--no-sync")
        for attempt in range(3):  # the free port may be taken before the server binds it
            self.port = free_port()
            opts = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
                    f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            try:
                self._pg("pg_ctl", "-D", self.datadir, "-o", opts, "-l", self.log, "-w",
                         "-t", "30", "start")
                break
            except AssertionError:
                if attempt == 2:
                    raise
        self._count = 0

    def _pg(self, prog, *args):
        r = subprocess.run([*AS_PG, os.path.join(PG_BIN, prog), *args], cwd=self.base,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            tail = open(self.log).read()[-2000:] if os.path.exists(self.log) else ""
            raise AssertionError(f"{prog} failed ({r.returncode}): "
                                 f"{r.stdout.decode(errors='replace')[-2000:]}{tail}")

    def new_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        self._count += 1
        name = f"cv{self._count}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user="cv", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://cv@127.0.0.1:{self.port}/{name}"

    def stop(self):
        try:
            self._pg("pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    c = PostgresCluster()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def pg_url(cluster):
    return cluster.new_database()


def test_the_migrations_on_postgresql_give_the_models_schema(pg_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    from cryovalid.service import db

    engine = db.make_engine(pg_url)
    try:
        assert engine.dialect.name == "postgresql" and engine.driver == "psycopg"
        db.migrate(engine)
        db.migrate(engine)  # a second start finds it done
        with engine.connect() as conn:
            mc = MigrationContext.configure(conn)
            assert mc.get_current_revision() == "0003"
            assert compare_metadata(mc, db.Base.metadata) == []
            cols = {c["name"]: c["type"] for c in inspect(conn).get_columns("jobs")}
        assert cols["names"].__class__.__name__ == "JSON"
        assert cols["report"].__class__.__name__ == "JSON"
    finally:
        engine.dispose()


MIGRATE_AT = """
import sys, time
from cryovalid.service import db
engine = db.make_engine(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
db.migrate(engine)
"""


@pytest.mark.slow
def test_servers_started_at_once_upgrade_a_new_postgresql_database_in_turn(pg_url):
    """migrate() takes the advisory lock: while the test holds it, three processes (servers
    started together) wait and create nothing; released, they upgrade the empty database in
    turn and each succeeds (without the lock they CREATE TABLE at once and fail)."""
    import sys

    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    from cryovalid.service import db

    engine = db.make_engine(pg_url)
    try:
        with engine.connect() as holder:
            holder.exec_driver_sql(f"SELECT pg_advisory_lock({db.MIGRATION_LOCK})")
            at = time.time() + 2.5  # after the three have imported cryovalid
            procs = [subprocess.Popen([sys.executable, "-c", MIGRATE_AT, pg_url, repr(at)],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                     for _ in range(3)]
            time.sleep(max(0.0, at + 1.0 - time.time()))
            with engine.connect() as conn:
                assert inspect(conn).get_table_names() == []  # all three wait for the lock
            assert [p.poll() for p in procs] == [None, None, None]
            holder.exec_driver_sql(f"SELECT pg_advisory_unlock({db.MIGRATION_LOCK})")
            outs = [p.communicate(timeout=60)[0].decode(errors="replace")[-400:]
                    for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], outs
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == "0003"
    finally:
        engine.dispose()


def test_a_postgresql_database_at_0001_upgrades_to_0003_with_its_rows_kept(pg_url):
    check_upgrade_keeps_rows(pg_url)


@pytest.mark.slow
def test_submit_poll_report_list_on_postgresql(pg_url, tmp_path):
    """The SQLite test's known answer (the service's numbers are validate()'s own) through a
    PostgreSQL database, with the uploaded names; the row holds report.json itself; the
    archive's filters (ILIKE, the levels concatenation, the score) run on PostgreSQL."""
    import json

    from sqlalchemy import select

    from cryovalid import Inputs, Options, validate
    from cryovalid.service import db
    from cryovalid.service.db import Job

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from cryovalid.service.app import create_app
    from cryovalid.service.settings import MIB, Settings

    from test_service_api import _numbers, check_upload_names_are_shown

    data = tmp_path / "data"
    s = Settings(data=str(data), database=pg_url, workers=2, rate_limit_per_minute=0,
                 formats=("json",), poll_s=0.05, heartbeat_s=0.5, max_upload_bytes=4 * MIB,
                 max_request_bytes=16 * MIB)
    with TestClient(create_app(s)) as client:
        client.data = str(data)
        job, rep = check_upload_names_are_shown(client, tmp_path, halves=False)
        st = client.get(f"/api/jobs/{job}").json()
        assert st["status"] == "done" and st["attempts"] == 1 and st["levels"] == ["0"]
        assert not os.path.exists(data / "cryovalid.sqlite")  # PostgreSQL, not the default
        folder = data / "jobs" / job
        direct = validate(Inputs(str(folder / "map.mrc")),
                          Options(threshold=BLOB_THRESHOLD, resolution=8.0, formats=("json",)),
                          store=str(tmp_path / "direct"))
        assert _numbers(rep) == _numbers(direct) and rep["score"] == direct["score"]
        assert st["score"] == direct["score"]
        engine = db.make_engine(pg_url)
        with engine.connect() as conn:
            stored = conn.execute(select(Job.report).where(Job.id == job)).scalar_one()
        engine.dispose()
        assert stored == json.load(open(folder / "report" / "report.json"))
        pct = 100.0 * st["score"]["passed"] / st["score"]["evaluable"]

        def ids(**q):
            r = client.get("/api/jobs", params=q)
            assert r.status_code == 200, r.text
            return {j["id"] for j in r.json()["jobs"]}

        today = time.strftime("%Y-%m-%d", time.gmtime())
        assert job in ids(name="NAMED") and job not in ids(name="nothing_like%it")
        assert job in ids(level="0") and job not in ids(level="1")
        assert job in ids(min_score=pct) and job not in ids(min_score=pct + 0.5)
        assert job in ids(date_from=today, status="done")
        assert client.get("/api/jobs").json()["total"] == 1
        # a format given many times is stored once: "json,json,…" (34 characters) would not
        # fit the 32-character column, which PostgreSQL (unlike SQLite) enforces
        with open(folder / "map.mrc", "rb") as fh:
            r = client.post("/api/jobs", files={"map": ("again.mrc", fh)},
                            data={"threshold": str(BLOB_THRESHOLD),
                                  "formats": ",".join(["json"] * 7)})
        assert r.status_code == 201, r.text
        assert client.get(f"/api/jobs/{r.json()['id']}").json()["formats"] == ["json"]


def test_a_nan_in_a_json_column_is_written_as_null_on_postgresql(pg_url):
    """PostgreSQL's json type refuses NaN (json.dumps' default): db.strict_json writes null,
    so that a report holding a NaN is stored, not a failed job."""
    from sqlalchemy import select

    from cryovalid.service import db
    from cryovalid.service.db import Job

    from test_service_api import _row

    engine = db.make_engine(pg_url)
    try:
        db.migrate(engine)
        _row(engine, id="a" * 16, status="done",
             report={"x": float("nan"), "y": [1.5, float("-inf")]}, notes=["n"])
        with engine.connect() as conn:
            assert conn.execute(select(Job.report)).scalar_one() == {"x": None,
                                                                     "y": [1.5, None]}
    finally:
        engine.dispose()


def test_the_claim_is_atomic_on_postgresql(pg_url):
    """20 queued jobs, 4 claimers at once (threads, each on its own connection): every job is
    claimed exactly once, with run number 1 (a second claim of a job would make it 2)."""
    from sqlalchemy import select

    from cryovalid.service import db, jobs
    from cryovalid.service.db import Job

    from test_service_api import _row

    engine = db.make_engine(pg_url)
    try:
        db.migrate(engine)
        t0 = time.time()
        ids = [f"{i:016x}" for i in range(20)]
        for i, job_id in enumerate(ids):
            _row(engine, id=job_id, status="queued", attempts=0, runs=0, created=t0 + i,
                 started=None)
        start = threading.Barrier(4)
        got = [[] for _ in range(4)]
        errors = []

        def claimer(k):
            try:
                start.wait(10)
                while True:
                    c = jobs.claim(engine)
                    if c is None:
                        return
                    got[k].append(c)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc))

        threads = [threading.Thread(target=claimer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        claimed = [job_id for g in got for job_id, _ in g]
        assert sorted(claimed) == ids  # each exactly once
        assert all(run == 1 for g in got for _, run in g)
        with engine.connect() as conn:
            rs = conn.execute(select(Job.status, Job.attempts, Job.runs)).all()
        assert sorted(rs) == [("running", 1, 1)] * 20
        assert jobs.claim(engine) is None
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_killed_servers_job_is_requeued_on_postgresql(pg_url, tmp_path):
    """A real server (subprocess, --database postgresql+psycopg://…) is killed with SIGKILL
    while its job runs; the job's process ends with it; the next server re-queues the job
    (attempt 2, with the note) and runs it to done."""
    data = tmp_path / "data"
    blob = write_blob_map(tmp_path / "blob.mrc")
    args = ("--rate-limit", "0", "--formats", "json", "--database", pg_url)
    import httpx

    srv = Server(data, workers=1, extra=args, env={"CRYOVALID_SERVICE_TEST_SLEEP": "120"})
    try:
        with open(blob, "rb") as fh:
            r = httpx.post(srv.url + "/api/jobs", files={"map": ("blob.mrc", fh)},
                           data={"threshold": str(BLOB_THRESHOLD)}, timeout=30)
        assert r.status_code == 201, r.text
        job = r.json()["id"]
        (row,) = wait_for(lambda: [x for x in rows_at(pg_url)
                                   if x["status"] == "running" and x["pid"]], 30,
                          what="the job to run")
    finally:
        srv.kill()
    wait_for(lambda: not pid_alive(row["pid"]), 10, what="the job's process to end")
    assert [x["status"] for x in rows_at(pg_url)] == ["running"]
    assert not os.path.exists(data / "cryovalid.sqlite")
    with Server(data, workers=1, extra=args) as srv:
        st = wait_for(lambda: (lambda j: j if j["status"] in ("done", "failed") else None)(
            httpx.get(f"{srv.url}/api/jobs/{job}").json()), 60, what="the job to finish")
        assert st["status"] == "done" and st["attempts"] == 2, st
        assert st["notes"] == ["attempt 1 was interrupted (the server stopped while the job "
                               "ran); re-queued"]
        rep = httpx.get(f"{srv.url}/api/jobs/{job}/report.json").json()
        assert rep["inputs"]["threshold"] == BLOB_THRESHOLD
        assert rep["inputs"]["map_name"] == "blob.mrc"
