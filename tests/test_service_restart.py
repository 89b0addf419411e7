"""A job survives the server: SIGKILL a real server (uvicorn subprocess) while two jobs run;
the next server re-queues both (attempt 2) and runs them; killed again on their last attempt,
they are failed with the reason. No job is lost, none is duplicated, none stays running, and
the archive lists each once."""
import json
import os

import httpx
import pytest

from service_helpers import BLOB_THRESHOLD, Server, pid_alive, rows, wait_for, write_blob_map

SLOW = {"CRYOVALID_SERVICE_TEST_SLEEP": "120"}  # a job waits 2 min: it is caught running
ARGS = ("--rate-limit", "0", "--formats", "json")


def _submit(url, path):
    with open(path, "rb") as fh:
        r = httpx.post(url + "/api/jobs", files={"map": ("blob.mrc", fh)},
                       data={"threshold": str(BLOB_THRESHOLD)}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _running_with_pids(data, n):
    rs = [r for r in rows(data) if r["status"] == "running" and r["pid"]]
    return rs if len(rs) == n else None


@pytest.mark.slow
def test_jobs_survive_a_killed_server_and_are_retried_once(tmp_path):
    data = tmp_path / "data"
    blob = write_blob_map(tmp_path / "blob.mrc")
    srv = Server(data, workers=2, extra=ARGS, env=SLOW)
    try:
        ids = [_submit(srv.url, blob) for _ in range(3)]
        first = wait_for(lambda: _running_with_pids(data, 2), 30, what="two jobs running")
    finally:
        srv.kill()  # SIGKILL while two jobs run and one is queued
    # the job processes do not outlive their server
    for r in first:
        wait_for(lambda r=r: not pid_alive(r["pid"]), 10, what=f"job {r['id']} to stop")
    assert sorted(r["status"] for r in rows(data)) == ["queued", "running", "running"]
    interrupted = {r["id"] for r in first}

    # second server, still slow: both interrupted jobs are re-queued and run again (attempt 2)
    srv = Server(data, workers=2, extra=ARGS, env=SLOW)
    try:
        second = wait_for(lambda: _running_with_pids(data, 2), 30, what="two jobs re-run")
        assert {r["id"] for r in second} == interrupted  # the oldest first
        assert all(r["attempts"] == 2 for r in second)
        for r in second:
            assert "attempt 1 was interrupted (the server stopped while the job ran); " \
                   "re-queued" in json.loads(r["notes"])
        listed = httpx.get(srv.url + "/api/jobs").json()
        assert sorted(j["id"] for j in listed["jobs"]) == sorted(ids)  # none lost, none twice
    finally:
        srv.kill()

    # third server, fast: the twice-interrupted jobs are failed (no third attempt), the one
    # that never ran is done, exactly once
    srv = Server(data, workers=2, extra=ARGS)
    try:
        final = wait_for(lambda: (lambda rs: rs if all(r["status"] in ("done", "failed")
                                                      for r in rs) else None)(rows(data)),
                         60, what="every job to finish")
        by_id = {r["id"]: r for r in final}
        assert len(final) == 3 and set(by_id) == set(ids)
        for i in interrupted:
            assert by_id[i]["status"] == "failed" and by_id[i]["attempts"] == 2
            assert by_id[i]["error"] == ("interrupted (the server stopped while the job ran) on "
                                         "attempt 2 of 2; not retried")
        (done,) = set(ids) - interrupted
        assert by_id[done]["status"] == "done" and by_id[done]["attempts"] == 1
        rep = httpx.get(f"{srv.url}/api/jobs/{done}/report.json").json()
        assert rep["inputs"]["threshold"] == BLOB_THRESHOLD
        listed = httpx.get(srv.url + "/api/jobs").json()
        assert listed["total"] == 3 and len({j["id"] for j in listed["jobs"]}) == 3
        assert sorted(j["status"] for j in listed["jobs"]) == ["done", "failed", "failed"]
        for r in final:  # a failed job's folder holds no report; the done one exactly one
            has = os.path.isfile(os.path.join(data, "jobs", r["id"], "report", "report.json"))
            assert has == (r["status"] == "done")
    finally:
        srv.stop()


@pytest.mark.slow
def test_a_clean_stop_requeues_the_running_job_without_counting_the_attempt(tmp_path):
    data = tmp_path / "data"
    blob = write_blob_map(tmp_path / "blob.mrc")
    srv = Server(data, workers=1, extra=ARGS, env=SLOW)
    try:
        job = _submit(srv.url, blob)
        (r,) = wait_for(lambda: _running_with_pids(data, 1), 30, what="the job to run")
    finally:
        srv.stop()  # SIGTERM: the server stops its job and puts it back in the queue
    wait_for(lambda: not pid_alive(r["pid"]), 10, what="the job to stop")
    (row,) = rows(data)
    assert row["status"] == "queued" and row["attempts"] == 0
    assert json.loads(row["notes"]) == ["re-queued: the server stopped while the job ran"]
    with Server(data, workers=1, extra=ARGS) as srv:
        st = wait_for(lambda: (lambda j: j if j["status"] == "done" else None)(
            httpx.get(f"{srv.url}/api/jobs/{job}").json()), 60, what="the job to finish")
        assert st["attempts"] == 1


@pytest.mark.slow
def test_a_real_server_refuses_a_2gb_declared_upload_before_the_body(tmp_path):
    """Over a real socket: only the headers are sent, declaring 2 GB; the 413 comes back at
    once (the body is never read, nor sent), and nothing is left on disk."""
    import socket

    with Server(tmp_path / "data", workers=1, extra=ARGS + ("--max-upload-mb", "64")) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: multipart/form-data; boundary=x\r\n"
                      b"Content-Length: 2000000000\r\n\r\n")
            answer = b""
            while b"}" not in answer:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), head
        # a whole submission may hold 3 files of 64 MiB (and 1 MiB of fields)
        assert json.loads(body)["detail"] == ("the upload is 1.86 GiB, more than the limit of "
                                              "193.0 MiB")
        assert os.listdir(tmp_path / "data" / "jobs") == []
        assert httpx.get(srv.url + "/api/jobs").json()["total"] == 0
