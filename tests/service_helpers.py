"""Helpers of the web-service tests: a small synthetic map, a real server on a free port."""
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
