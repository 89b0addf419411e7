"""The web service's REST API (cryovalid.service), in process (FastAPI's TestClient) with real
job processes: submit, poll, fetch, list, filter; every malformed upload refused with one line
and nothing left on disk; private reports, cancellation, a killed job, the rate limit, EMDB
entries from a local mirror."""
import gzip
import io
import json
import os
import shutil
import signal
import sqlite3
import time
import warnings
import zipfile

import pytest

from cryovalid import Inputs, Options, validate

from service_helpers import (BLOB_THRESHOLD, blob_particles, check_upgrade_keeps_rows,
                             pid_alive, wait_for, write_blob_map)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from cryovalid.service.app import create_app  # noqa: E402
from cryovalid.service.runjob import TEST_SLEEP_ENV  # noqa: E402
from cryovalid.service.settings import MIB, Settings  # noqa: E402


def _settings(data, **kw):
    base = dict(workers=2, rate_limit_per_minute=0, formats=("json",), poll_s=0.05,
                heartbeat_s=0.5, max_upload_bytes=4 * MIB, max_request_bytes=10 * MIB)
    base.update(kw)
    return Settings(data=str(data), **base)


@pytest.fixture(scope="module")
def blob(tmp_path_factory):
    return write_blob_map(tmp_path_factory.mktemp("maps") / "blob.mrc")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    data = tmp_path_factory.mktemp("service") / "data"
    with TestClient(create_app(_settings(data))) as client:
        client.data = str(data)
        yield client


def _submit(client, path, **fields):
    with open(path, "rb") as fh:
        return client.post("/api/jobs", files={"map": (os.path.basename(path), fh)},
                           data={k: str(v) for k, v in fields.items()})


def _finished(client, job_id, timeout=60, token=""):
    q = f"?token={token}" if token else ""

    def done():
        j = client.get(f"/api/jobs/{job_id}{q}").json()
        return j if j["status"] not in ("queued", "running") else None
    return wait_for(done, timeout, what=f"job {job_id} to finish")


def _count_rows(data):
    con = sqlite3.connect(os.path.join(data, "cryovalid.sqlite"))
    try:
        return con.execute("SELECT count(*) FROM jobs").fetchone()[0]
    finally:
        con.close()


def _numbers(rep):
    return {it["id"]: it.get("metrics") for it in rep["items"]}


def test_submit_poll_fetch_list_gives_the_report_validate_gives(service, blob, tmp_path):
    r = _submit(service, blob, threshold=BLOB_THRESHOLD, resolution=8.0, name="blob one")
    assert r.status_code == 201, r.text
    job = r.json()
    assert set(job) >= {"id", "token", "status"} and job["status"] == "queued"
    st = _finished(service, job["id"])
    assert st["status"] == "done", st
    assert st["progress"] and st["progress"][0]["label"].startswith("Masks")
    assert st["attempts"] == 1
    rep = service.get(f"/api/jobs/{job['id']}/report.json").json()
    # the service passes the inputs through unchanged: the numbers are validate()'s own
    direct = validate(Inputs(blob), Options(threshold=BLOB_THRESHOLD, resolution=8.0,
                                            formats=("json",)), store=str(tmp_path / "direct"))
    assert rep["inputs"]["threshold"] == BLOB_THRESHOLD and rep["inputs"]["resolution_A"] == 8.0
    assert _numbers(rep) == _numbers(direct) and rep["score"] == direct["score"]
    assert st["score"] == direct["score"]
    # stored under the server's own names, in the job's folder
    folder = os.path.join(service.data, "jobs", job["id"])
    assert "map.mrc" in os.listdir(folder)
    assert json.load(open(os.path.join(folder, "report", "report.json")))["score"] == rep["score"]
    listed = service.get("/api/jobs").json()
    assert job["id"] in [j["id"] for j in listed["jobs"]]
    entry = [j for j in listed["jobs"] if j["id"] == job["id"]][0]
    assert entry["name"] == "blob one" and entry["levels"] == ["0"]
    # json only: no HTML or PDF, said in one line
    r = service.get(f"/api/jobs/{job['id']}/report.pdf")
    assert r.status_code == 404 and "no PDF" in r.json()["detail"]
    # the derived maps, zipped: the very files the report wrote
    r = service.get(f"/api/jobs/{job['id']}/maps.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        names = sorted(z.namelist())
        maps = os.path.join(folder, "report", "maps")
        assert names == sorted(f"maps/{n}" for n in os.listdir(maps)) and names
        assert z.read(names[0]) == open(os.path.join(maps, names[0][5:]), "rb").read()
    r = service.get(f"/api/jobs/{job['id']}/report.docx")
    assert r.status_code == 404 and "no report format" in r.json()["detail"]
    assert service.get("/api/jobs/../../etc/passwd").status_code == 404
    assert service.get("/api/jobs/0123456789abcdef").json() == {
        "detail": "no job '0123456789abcdef'"}


def test_the_archive_filters_on_name_date_level_and_score(service, blob):
    job = _submit(service, blob, threshold=BLOB_THRESHOLD, name="filter-me").json()
    st = _finished(service, job["id"])
    pct = 100.0 * st["score"]["passed"] / st["score"]["evaluable"]

    def ids(**q):
        r = service.get("/api/jobs", params=q)
        assert r.status_code == 200, r.text
        return {j["id"] for j in r.json()["jobs"]}

    today = time.strftime("%Y-%m-%d", time.gmtime())
    yesterday = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
    assert job["id"] in ids(name="FILTER")  # case-insensitive substring
    assert job["id"] not in ids(name="nothing-like-it")
    assert job["id"] in ids(date_from=today, date_to=today)
    assert job["id"] not in ids(date_to=yesterday)
    assert job["id"] in ids(level="0") and job["id"] not in ids(level="1")
    assert job["id"] in ids(min_score=pct) and job["id"] not in ids(min_score=pct + 0.5)
    assert job["id"] in ids(status="done")
    r = service.get("/api/jobs", params={"level": "Z"})
    assert r.status_code == 422 and "level must be one of" in r.json()["detail"]
    page = service.get("/archive", params={"name": "filter-me"})
    assert page.status_code == 200 and f'id="job-{job["id"]}"' in page.text


@pytest.mark.slow
def test_classes_and_particles_are_graded_at_levels_2_and_3(service, blob, tmp_path):
    """A map, its 2D classes and a RELION STAR with its one stack, uploaded under other names:
    the job grades Levels 2 and 3 with the numbers validate() gives on the same files, the
    report names the uploaded files, and the stored files have the server's names."""
    star, mrcs, classes = blob_particles(tmp_path)
    files = {"map": ("blob.mrc", open(blob, "rb").read()),
             "classes": ("run_classes.mrcs", open(classes, "rb").read()),
             "particles": ("run_data.star", open(star, "rb").read()),
             "particles_stack": ("particles.mrcs", open(mrcs, "rb").read())}
    r = service.post("/api/jobs", files=files,
                     data={"threshold": str(BLOB_THRESHOLD), "resolution": "8",
                           "symmetry": "C2", "kv": "200", "cs": "0"})  # Cs-corrected
    assert r.status_code == 201, r.text
    job = r.json()
    st = _finished(service, job["id"], timeout=120)
    assert st["status"] == "done", st
    rep = service.get(f"/api/jobs/{job['id']}/report.json").json()
    assert {"2", "3"} <= set(rep["levels"])
    assert rep["inputs"]["classes"]["name"] == "run_classes.mrcs"
    assert rep["inputs"]["particles"]["name"] == "run_data.star"
    assert rep["inputs"]["particles"]["n_particles"] == 40
    assert rep["inputs"]["classes"]["symmetry"] == "c2"  # the form's options reach validate()
    assert rep["inputs"]["particles"]["voltage_kv"] == 200.0
    assert rep["inputs"]["particles"]["cs_mm"] == 0.0
    folder = os.path.join(service.data, "jobs", job["id"])
    assert {"classes.mrcs", "particles.star", "particles_stack.mrcs"} <= set(os.listdir(folder))
    direct = validate(Inputs(blob, classes=classes, particles=star),
                      Options(threshold=BLOB_THRESHOLD, resolution=8.0, formats=("json",),
                              symmetry="c2", voltage_kv=200.0, cs_mm=0.0),
                      store=str(tmp_path / "direct"))
    assert _numbers(rep) == _numbers(direct)
    entry = [j for j in service.get("/api/jobs", params={"level": "3"}).json()["jobs"]]
    assert job["id"] in [j["id"] for j in entry]


def _png():
    return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 2048


def _truncated(blob, tmp_path):
    p = tmp_path / "truncated.mrc"
    raw = open(blob, "rb").read()
    p.write_bytes(raw[: 1024 + (len(raw) - 1024) // 2])
    return str(p)


@pytest.mark.parametrize("case", ["truncated", "png", "empty", "not_a_model", "declared_2gb",
                                  "path_name", "no_map", "bad_threshold", "unknown_field",
                                  "star_without_stack", "gzipped_classes", "stack_without_star",
                                  "star_of_two_stacks", "bad_symmetry", "option_without_file",
                                  "negative_cs"])
def test_a_malformed_upload_is_refused_in_one_line_and_leaves_nothing(service, blob, tmp_path,
                                                                      case):
    before_rows = _count_rows(service.data)
    before_dirs = sorted(os.listdir(os.path.join(service.data, "jobs")))
    if case == "declared_2gb":  # the header alone: the body is never sent
        r = service.post("/api/jobs", content=b"--x--\r\n",
                         headers={"Content-Type": "multipart/form-data; boundary=x",
                                  "Content-Length": str(2 * 10 ** 9)})
        want, status = "more than the limit", 413
    elif case == "no_map":
        r = service.post("/api/jobs", files={"threshold": (None, "0.3")})
        want, status = "no map: upload one", 422
    elif case == "unknown_field":
        r = service.post("/api/jobs", files={"mask": ("m.mrc", b"x")})
        want, status = "unknown file field 'mask'", 400
    else:
        files, data = {}, {"threshold": str(BLOB_THRESHOLD)}
        if case == "truncated":
            files["map"] = ("t.mrc", open(_truncated(blob, tmp_path), "rb").read())
            want, status = "map (t.mrc): the file is truncated", 422
        elif case == "png":
            files["map"] = ("picture.png", _png())
            want, status = "map (picture.png): not a readable MRC/CCP4 map", 422
        elif case == "empty":
            files["map"] = ("empty.mrc", b"")
            want, status = "map (empty.mrc): the file is empty", 422
        elif case == "not_a_model":
            files["map"] = ("blob.mrc", open(blob, "rb").read())
            files["model"] = ("model.pdb", b"this is a letter, not an atomic model\n" * 5)
            want, status = "model (model.pdb)", 422
        elif case == "path_name":
            files["map"] = ("../../etc/passwd", open(blob, "rb").read())
            want, status = "is not a plain file name", 400
        elif case == "bad_threshold":
            files["map"] = ("blob.mrc", open(blob, "rb").read())
            data["threshold"] = "5"
            want, status = "lies outside the map's values", 422
        elif case == "option_without_file":
            files["map"] = ("blob.mrc", open(blob, "rb").read())
            data["kv"] = "300"
            want, status = "kv is an option of the particles, which were not uploaded", 422
        elif case in ("star_without_stack", "gzipped_classes", "stack_without_star",
                      "star_of_two_stacks", "bad_symmetry", "negative_cs"):
            star, mrcs, classes = blob_particles(tmp_path)
            files["map"] = ("blob.mrc", open(blob, "rb").read())
            files["classes"] = ("classes.mrcs", open(classes, "rb").read())
            if case == "star_without_stack":
                files["particles"] = ("run_data.star", open(star, "rb").read())
                want, status = "particles (run_data.star): a STAR file needs the stack", 422
            elif case == "gzipped_classes":
                files["classes"] = ("classes.mrcs.gz", gzip.compress(open(classes, "rb").read()))
                want, status = "classes (classes.mrcs.gz): a gzipped file", 422
            elif case == "negative_cs":
                files["particles"] = ("parts.mrcs", open(mrcs, "rb").read())
                data["cs"] = "-1"
                want, status = "cs must not be negative", 422
            elif case == "bad_symmetry":
                data["symmetry"] = "c0"
                want, status = "symmetry 'c0' is not a point group", 422
            elif case == "stack_without_star":
                files["particles"] = ("parts.mrcs", open(mrcs, "rb").read())
                files["particles_stack"] = ("parts.mrcs", open(mrcs, "rb").read())
                want, status = "particles_stack goes with a STAR file", 422
            else:
                text = open(star).read().replace("000002@particles.mrcs", "000002@other.mrcs")
                files["particles"] = ("run_data.star", text.encode())
                files["particles_stack"] = ("particles.mrcs", open(mrcs, "rb").read())
                want, status = "the particles are in 2 stacks", 422
        r = service.post("/api/jobs", files=files, data=data)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and want in detail, detail
    assert service.data not in detail  # never the server's own paths
    assert _count_rows(service.data) == before_rows  # no row
    assert sorted(os.listdir(os.path.join(service.data, "jobs"))) == before_dirs  # no folder
    assert not os.path.exists("/etc/passwd.mrc")


def test_a_database_failure_on_submit_is_one_line_503_and_leaves_nothing(service, blob,
                                                                          monkeypatch):
    from sqlalchemy.exc import OperationalError

    from cryovalid.service import jobs

    def broken(*args, **kwargs):
        raise OperationalError("INSERT INTO jobs", {}, Exception("database is locked"))

    before = sorted(os.listdir(os.path.join(service.data, "jobs")))
    monkeypatch.setattr(jobs, "insert", broken)
    r = _submit(service, blob)
    assert r.status_code == 503, r.text
    detail = r.json()["detail"]
    assert "could not be stored in the database (OperationalError)" in detail
    assert "\n" not in detail
    assert sorted(os.listdir(os.path.join(service.data, "jobs"))) == before


def test_an_upload_larger_than_it_declared_is_cut_at_the_limit(service):
    """A body with no Content-Length (chunked) is counted as it arrives."""
    def body():
        yield (b"--x\r\nContent-Disposition: form-data; name=\"map\"; filename=\"big.mrc\"\r\n"
               b"Content-Type: application/octet-stream\r\n\r\n")
        for _ in range(6):
            yield b"\0" * MIB
        yield b"\r\n--x--\r\n"
    before = sorted(os.listdir(os.path.join(service.data, "jobs")))
    r = service.post("/api/jobs", content=body(),
                     headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "larger than the limit of 4.0 MiB" in r.json()["detail"]
    assert sorted(os.listdir(os.path.join(service.data, "jobs"))) == before


def test_a_private_report_needs_its_token(service, blob):
    job = _submit(service, blob, threshold=BLOB_THRESHOLD, private="1").json()
    assert service.get(f"/api/jobs/{job['id']}").status_code == 404
    assert service.get(f"/api/jobs/{job['id']}?token=wrong").status_code == 404
    st = _finished(service, job["id"], token=job["token"])
    assert st["status"] == "done" and st["private"]
    assert service.get(f"/api/jobs/{job['id']}/report.json").status_code == 404
    assert service.get(f"/api/jobs/{job['id']}/report.json",
                       headers={"X-Job-Token": job["token"]}).status_code == 200
    assert service.get(f"/jobs/{job['id']}").status_code == 404
    assert service.get(f"/jobs/{job['id']}?token={job['token']}").status_code == 200
    assert job["id"] not in [j["id"] for j in service.get("/api/jobs").json()["jobs"]]
    assert job["id"] not in service.get("/archive").text


def test_the_api_is_documented(service):
    spec = service.get("/openapi.json").json()
    for path in ("/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/report.{fmt}",
                 "/api/jobs/{job_id}/cancel", "/api/jobs/{job_id}/maps.zip"):
        assert path in spec["paths"], path
    form = spec["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert {"map", "half_map_1", "half_map_2", "model", "threshold", "resolution",
            "emdb_id"} <= set(form["schema"]["properties"])
    assert service.get("/docs").status_code == 200
    con = sqlite3.connect(os.path.join(service.data, "cryovalid.sqlite"))
    assert con.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0003"
    con.close()


def test_cancel_and_a_killed_job(tmp_path, blob):
    s = _settings(tmp_path / "data", workers=1, extra_env={TEST_SLEEP_ENV: "60"})
    with TestClient(create_app(s)) as c:
        a = _submit(c, blob, threshold=BLOB_THRESHOLD).json()
        b = _submit(c, blob, threshold=BLOB_THRESHOLD).json()
        running = wait_for(lambda: (lambda j: j if j["status"] == "running" else None)(
            c.get(f"/api/jobs/{a['id']}").json()), 30, what="job a to run")
        assert c.get(f"/api/jobs/{b['id']}").json()["status"] == "queued"  # one worker
        assert c.post(f"/api/jobs/{b['id']}/cancel").status_code == 403  # no token
        r = c.post(f"/api/jobs/{b['id']}/cancel", headers={"X-Job-Token": b["token"]})
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        pid = wait_for(lambda: sqlite3.connect(os.path.join(s.data, "cryovalid.sqlite"))
                       .execute("SELECT pid FROM jobs WHERE id=?", (a["id"],)).fetchone()[0],
                       20, what="job a's pid")
        assert pid_alive(pid) and running["attempts"] == 1
        r = c.post(f"/api/jobs/{a['id']}/cancel?token={a['token']}")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        wait_for(lambda: not pid_alive(pid), 10, what="the cancelled job's process to end")
        r = c.post(f"/api/jobs/{a['id']}/cancel?token={a['token']}")
        assert r.status_code == 409 and "already cancelled" in r.json()["detail"]
        # a job whose process is killed is failed with the reason, not left running
        k = _submit(c, blob, threshold=BLOB_THRESHOLD).json()
        pid = wait_for(lambda: sqlite3.connect(os.path.join(s.data, "cryovalid.sqlite"))
                       .execute("SELECT pid FROM jobs WHERE id=?", (k["id"],)).fetchone()[0],
                       30, what="job k's pid")
        os.kill(pid, signal.SIGKILL)
        st = _finished(c, k["id"], timeout=20)
        assert st["status"] == "failed" and "killed by SIGKILL" in st["error"], st


def test_the_rate_limit_answers_429(tmp_path, blob):
    with TestClient(create_app(_settings(tmp_path / "data", rate_limit_per_minute=2))) as c:
        for _ in range(2):  # refused submissions count too
            assert c.post("/api/jobs", files={"threshold": (None, "1")}).status_code == 422
        r = c.post("/api/jobs", files={"map": ("blob.mrc", open(blob, "rb").read())})
        assert r.status_code == 429 and r.headers["retry-after"]
        assert "too many submissions" in r.json()["detail"] and "2 per minute" in \
            r.json()["detail"]
        assert os.listdir(os.path.join(str(tmp_path / "data"), "jobs")) == []


HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<emd emdb_id="EMD-9999" version="3.0.9.1">
  <admin><key_dates><deposition>2020-01-01</deposition></key_dates>
  <title>A test blob</title></admin>
  <structure_determination_list><structure_determination><method>singleParticle</method>
    <singleparticle_processing><final_reconstruction>
      <resolution res_type="BY AUTHOR">8.0</resolution>
    </final_reconstruction></singleparticle_processing>
  </structure_determination></structure_determination_list>
  <map format="CCP4"><file>emd_9999.map.gz</file>
    <pixel_spacing><x>1.5</x><y>1.5</y><z>1.5</z></pixel_spacing>
    <contour_list><contour primary="true"><level>0.3</level><source>AUTHOR</source>
    </contour></contour_list>
  </map>
</emd>
"""


def test_an_emdb_id_is_fetched_from_the_mirror_and_graded(tmp_path, blob):
    emdb = tmp_path / "emdb" / "structures" / "EMD-9999"
    (emdb / "header").mkdir(parents=True)
    (emdb / "map").mkdir()
    (emdb / "header" / "emd-9999-v30.xml").write_text(HEADER)
    with open(blob, "rb") as src, gzip.open(emdb / "map" / "emd_9999.map.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    (tmp_path / "pdb").mkdir()
    s = _settings(tmp_path / "data", emdb_mirror=str(tmp_path / "emdb"),
                  pdb_mirror=str(tmp_path / "pdb"))
    with TestClient(create_app(s)) as c:
        r = c.post("/api/jobs", data={"emdb_id": "emd-9999"})
        assert r.status_code == 201, r.text
        st = _finished(c, r.json()["id"])
        assert st["status"] == "done" and st["emdb_id"] == "EMD-9999", st
        rep = c.get(f"/api/jobs/{st['id']}/report.json").json()
        assert rep["inputs"]["threshold"] == 0.3 and rep["inputs"]["resolution_A"] == 8.0
        assert [j["id"] for j in c.get("/api/jobs", params={"emdb_id": "9999"}).json()["jobs"]
                ] == [st["id"]]
        missing = c.post("/api/jobs", data={"emdb_id": "EMD-99999"}).json()
        st = _finished(c, missing["id"])
        assert st["status"] == "failed" and "EMD-99999" in st["error"]
        assert "\n" not in st["error"]
        r = c.post("/api/jobs", data={"emdb_id": "not-an-id"})
        assert r.status_code == 422 and "is not an EMDB ID" in r.json()["detail"]


@pytest.mark.slow
def test_jobs_run_on_a_dask_scheduler(tmp_path, blob):
    """--scheduler: the dispatcher submits each job to Dask (distributed.Client.submit); a
    worker runs it as its own process (python -m cryovalid.service.runjob)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        s = _settings(tmp_path / "data", scheduler=cluster.scheduler_address)
        with TestClient(create_app(s)) as c:
            ids = [_submit(c, blob, threshold=BLOB_THRESHOLD).json()["id"] for _ in range(2)]
            for i in ids:
                st = _finished(c, i, timeout=90)
                assert st["status"] == "done" and st["attempts"] == 1, st
            rep = c.get(f"/api/jobs/{ids[0]}/report.json").json()
            assert rep["inputs"]["threshold"] == BLOB_THRESHOLD


def test_the_form_redirects_to_the_job_page_or_shows_the_error(service, blob):
    with open(blob, "rb") as fh:
        r = service.post("/submit", files={"map": ("blob.mrc", fh)},
                         data={"threshold": "abc"}, follow_redirects=False)
    assert r.status_code == 422 and "threshold must be a number, got &#39;abc&#39;" in r.text
    assert 'id="submit"' in r.text  # the form again, with the error above it
    with open(blob, "rb") as fh:
        r = service.post("/submit", files={"map": ("blob.mrc", fh), "model": ("", b"")},
                         data={"threshold": str(BLOB_THRESHOLD), "emdb_id": ""},
                         follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/jobs/")
    page = service.get(r.headers["location"])
    assert page.status_code == 200 and 'id="cancel"' in page.text  # the token is in the URL
    job_id = r.headers["location"].split("/")[2].split("?")[0]
    assert _finished(service, job_id)["status"] == "done"
    page = service.get(f"/jobs/{job_id}")
    assert "evaluable items passed" in page.text and 'id="dl-json"' in page.text
    assert 'id="cancel"' not in page.text  # done, and no token


def _row(engine, **kw):
    from sqlalchemy import insert

    from cryovalid.service.db import Job

    values = dict(token="t", private=False, status="running", name="x", created=time.time(),
                  started=time.time(), formats="json", files={}, progress=[], notes=[],
                  attempts=1, runs=1, cancel_requested=False)
    values.update(kw)
    with engine.begin() as conn:
        conn.execute(insert(Job).values(**values))


def test_recovery_requeues_a_lost_job_or_fails_it_on_its_last_attempt(tmp_path):
    """The rules of jobs.Dispatcher.recover, on rows written by hand: a stale heartbeat from
    another host, a dead pid on this host, an orphan still alive at start (killed), a fresh
    heartbeat elsewhere (left alone), a last attempt (failed)."""
    import socket
    import subprocess

    from sqlalchemy import select

    from cryovalid.service import db
    from cryovalid.service.db import Job
    from cryovalid.service.jobs import Dispatcher
    from cryovalid.service.runjob import process_start_time

    s = _settings(tmp_path / "data", lease_s=30.0)
    engine = db.make_engine(s.database)
    db.migrate(engine)
    now, me = time.time(), socket.gethostname()
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = subprocess.Popen(["sleep", "60"])
    _row(engine, id="a" * 16, host="elsewhere", pid=1234, heartbeat=now - 100)
    _row(engine, id="b" * 16, host=me, pid=dead.pid, pid_start=123, heartbeat=now)
    _row(engine, id="c" * 16, host=me, pid=orphan.pid,
         pid_start=process_start_time(orphan.pid), heartbeat=now)
    _row(engine, id="d" * 16, host="elsewhere", pid=1234, heartbeat=now - 5)
    _row(engine, id="e" * 16, host="elsewhere", pid=1234, heartbeat=now - 100, attempts=2,
         runs=2)
    d = Dispatcher(s, engine)
    d.recover(at_start=True)
    assert orphan.wait(10) == -signal.SIGKILL  # the orphan of the last server is killed
    with engine.connect() as conn:
        got = {r.id[0]: r for r in conn.execute(select(Job.id, Job.status, Job.notes,
                                                       Job.error, Job.pid))}
    assert got["a"].status == "queued" and got["a"].pid is None
    assert got["a"].notes == ["attempt 1 was interrupted (no heartbeat for 100 s); re-queued"]
    for k in "bc":  # this host, at start: the previous server's jobs
        assert got[k].status == "queued", k
        assert got[k].notes == ["attempt 1 was interrupted (the server stopped while the job "
                                "ran); re-queued"], k
    assert got["d"].status == "running" and got["d"].notes == []  # alive elsewhere
    assert got["e"].status == "failed" and got["e"].error == (
        "interrupted (no heartbeat for 100 s) on attempt 2 of 2; not retried")
    # after start, a dead pid of this host is recovered at once, without waiting for the lease
    dead2 = subprocess.Popen(["true"])
    dead2.wait()
    _row(engine, id="f" * 16, host=me, pid=dead2.pid, pid_start=1, heartbeat=time.time())
    d.recover()
    with engine.connect() as conn:
        st, notes = conn.execute(select(Job.status, Job.notes).where(Job.id == "f" * 16)).one()
    assert st == "queued" and notes == ["attempt 1 was interrupted (the job's process is "
                                        "gone); re-queued"]
    d.stop()
    engine.dispose()


def test_a_database_at_0001_upgrades_to_0003_with_its_rows_kept(tmp_path):
    check_upgrade_keeps_rows(f"sqlite:///{tmp_path / 'old.sqlite'}")


def test_the_migration_matches_the_models(tmp_path):
    """Alembic's migrations create exactly the tables, columns and indexes db.Job declares."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from cryovalid.service import db

    engine = db.make_engine(f"sqlite:///{tmp_path / 'm.sqlite'}")
    db.migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.Base.metadata)
    assert diff == []
    engine.dispose()


def check_upload_names_are_shown(client, tmp_path, halves=True):
    """A job uploaded as ``my map.mrc`` (with half maps ``half <1>.mrc`` and ``half &2.mrc``):
    report.json's inputs name them so (map_name, half_maps[].name), as do the job's status,
    its page and the archive (HTML-escaped); the stored names (map.mrc, half_map_1.mrc) are
    never shown. Returns the job's id and its report."""
    import html

    paths = {"map": write_blob_map(tmp_path / "b.mrc")}
    names = {"map": "my map.mrc"}
    if halves:
        paths.update(half_map_1=write_blob_map(tmp_path / "h1.mrc", seed=1),
                     half_map_2=write_blob_map(tmp_path / "h2.mrc", seed=2))
        names.update(half_map_1="half <1>.mrc", half_map_2="half &2.mrc")
    files = {k: (names[k], open(p, "rb").read()) for k, p in paths.items()}
    r = client.post("/api/jobs", files=files, data={"threshold": str(BLOB_THRESHOLD),
                                                    "resolution": "8", "name": "named"})
    assert r.status_code == 201, r.text
    job = r.json()["id"]
    st = _finished(client, job)
    assert st["status"] == "done", st
    assert st["files"] == names
    rep = client.get(f"/api/jobs/{job}/report.json").json()
    assert rep["inputs"]["map_name"] == "my map.mrc"
    assert [h["name"] for h in rep["inputs"].get("half_maps", [])] == (
        ["half <1>.mrc", "half &2.mrc"] if halves else [])
    # the files themselves are stored under the server's names
    stored = sorted(n for n in os.listdir(os.path.join(client.data, "jobs", job))
                    if n.endswith(".mrc"))
    assert stored == (["half_map_1.mrc", "half_map_2.mrc"] if halves else []) + ["map.mrc"]
    page = client.get(f"/jobs/{job}").text
    for n in names.values():
        assert f">{html.escape(n, quote=False)}</code>" in page, n
    assert "half <1>" not in page and "half &2" not in page  # escaped, never raw
    for n in stored:
        assert f">{n}<" not in page and f'"{n}"' not in page
    arch = client.get("/archive", params={"name": "named"}).text
    assert f'id="job-{job}"' in arch and ">my map.mrc</small>" in arch
    listed = client.get("/api/jobs", params={"name": "named"}).json()["jobs"]
    assert [j["files"] for j in listed if j["id"] == job] == [names]
    return job, rep


@pytest.mark.slow
def test_the_report_and_pages_show_the_uploaded_names(service, tmp_path):
    check_upload_names_are_shown(service, tmp_path)


def test_a_nan_in_a_json_column_is_stored_as_null(tmp_path):
    """db.strict_json: the JSON columns hold strict JSON (NaN and infinities as null), as
    report.json does (PostgreSQL's json type refuses NaN: see test_service_postgres)."""
    from sqlalchemy import select

    from cryovalid.service import db
    from cryovalid.service.db import Job

    engine = db.make_engine(f"sqlite:///{tmp_path / 'n.sqlite'}")
    db.migrate(engine)
    _row(engine, id="a" * 16, status="done", report={"x": float("nan"), "y": [1.5,
                                                                             float("inf")]})
    with engine.connect() as conn:
        assert conn.execute(select(Job.report)).scalar_one() == {"x": None, "y": [1.5, None]}
    engine.dispose()


def test_a_failed_jobs_reason_names_the_uploaded_files_not_the_stored_ones():
    from cryovalid.service.runjob import said

    folder = "/srv/data/jobs/0123456789abcdef"
    files = {"map": "map.mrc.gz", "half_map_1": "half_map_1.mrc", "half_map_2": "half_map_2.mrc"}
    names = {"map": "my map.mrc.gz", "half_map_1": "h 1.mrc", "half_map_2": "h 2.mrc"}
    msg = (f"{folder}/half_map_1.mrc and {folder}/half_map_2.mrc differ in shape from "
           f"{folder}/map.mrc.gz")
    assert said(msg, folder, files, names) == ("half_map_1 (h 1.mrc) and half_map_2 (h 2.mrc) "
                                               "differ in shape from map (my map.mrc.gz)")
    assert said(f"{folder}/map.mrc.gz: bad", folder, files, None) == "map.mrc.gz: bad"
