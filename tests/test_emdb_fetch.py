"""EMDB/PDB downloads (cryovalid.emdb.fetch): a loopback HTTP server started by each test
(Range support, a connection cut half-way, a server that ignores Range, missing files), the
file:// and plain-folder mirrors, caching, checks (size, SHA-256) and entry_files. No network
beyond 127.0.0.1."""
import gzip
import hashlib
import http.server
import os
import threading

import numpy as np
import pytest

from cryovalid.emdb import fetch as fx
from cryovalid.emdb import read_header
from cryovalid.errors import InputError

from test_emdb_header import V3  # noqa: E402  (tests/ is on sys.path via conftest)


# ------------------------------------------------------------------ a test mirror + server

def _blob(n, seed):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


@pytest.fixture
def tree(tmp_path):
    """A folder laid out like EMDB + the PDB archive for EMD-5138 (V3 header) with small
    generated files; returns (emdb_root, pdb_root, {relative path: bytes})."""
    emdb = tmp_path / "emdb"
    pdb = tmp_path / "pdb"
    files = {
        "structures/EMD-5138/header/emd-5138-v30.xml": V3,
        "structures/EMD-5138/map/emd_5138.map.gz": gzip.compress(_blob(300_000, 1)),
        "structures/EMD-5138/other/emd_5138_half_map_1.map.gz": _blob(250_001, 2),
        "structures/EMD-5138/other/emd_5138_half_map_2.map.gz": _blob(250_003, 3),
    }
    models = {
        "data/structures/divided/mmCIF/j0/3j03.cif.gz": gzip.compress(b"data_3J03\n#\n"),
        "data/structures/divided/mmCIF/iy/3iyl.cif.gz": gzip.compress(b"data_3IYL\n#\n"),
    }
    for base, group in ((emdb, files), (pdb, models)):
        for rel, data in group.items():
            p = base / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    return emdb, pdb, {**files, **models}


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.root; modes (server.mode): 'range' honours Range, 'norange' ignores it;
    paths in server.drop (path below emdb/ or pdb/ → times) are cut half-way that many times;
    server.log records (that path, Range header) per request."""

    def log_message(self, *a):  # quiet
        pass

    def do_GET(self):
        srv = self.server
        rel = self.path.split("?", 1)[0].lstrip("/")
        key = rel.split("/", 1)[-1]          # log / drop key: path below emdb/ or pdb/
        srv.log.append((key, self.headers.get("Range")))
        path = os.path.join(srv.root, *rel.split("/"))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        data = open(path, "rb").read()
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.mode == "range":
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.drop.get(key, 0) > 0:
            srv.drop[key] -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)      # cut: the client sees a short body
            return
        self.wfile.write(body)


@pytest.fixture
def server(tree):
    """A loopback HTTP server over the test tree: yields (base_url, server)."""
    root = tree[0].parent
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.root, srv.mode, srv.drop, srv.log = str(root), "range", {}, []
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


MAP = "structures/EMD-5138/map/emd_5138.map.gz"
HALF1 = "structures/EMD-5138/other/emd_5138_half_map_1.map.gz"


def _sha(b):
    return hashlib.sha256(b).hexdigest()


# ------------------------------------------------------------------ HTTP

def test_http_fetch_with_checks_and_progress(tree, server, tmp_path):
    base, srv = server
    data = tree[2][MAP]
    calls = []
    out = fx.fetch(f"{base}/emdb/{MAP}", tmp_path / "dl" / "m.map.gz", expected_size=len(data),
                   sha256=_sha(data), progress=lambda d, t: calls.append((d, t)))
    assert out.read_bytes() == data
    assert not (tmp_path / "dl" / "m.map.gz.part").exists()
    assert calls[-1] == (len(data), len(data))
    assert all(t == len(data) for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_http_cached_file_reused_without_request(tree, server, tmp_path):
    base, srv = server
    data = tree[2][MAP]
    dest = tmp_path / "m.map.gz"
    fx.fetch(f"{base}/emdb/{MAP}", dest, sha256=_sha(data))
    n = len(srv.log)
    mtime = dest.stat().st_mtime_ns
    assert fx.fetch(f"{base}/emdb/{MAP}", dest, sha256=_sha(data)) == dest
    assert len(srv.log) == n and dest.stat().st_mtime_ns == mtime


def test_http_dest_folder_uses_url_name(tree, server, tmp_path):
    base, _ = server
    out = fx.fetch(f"{base}/emdb/{HALF1}", tmp_path)
    assert out == tmp_path / "emd_5138_half_map_1.map.gz"
    assert out.read_bytes() == tree[2][HALF1]


def test_http_cut_download_is_resumed_with_range(tree, server, tmp_path):
    base, srv = server
    data = tree[2][HALF1]
    srv.drop[HALF1] = 1
    out = fx.fetch(f"{base}/emdb/{HALF1}", tmp_path / "h1", expected_size=len(data),
                   sha256=_sha(data))
    assert out.read_bytes() == data
    reqs = [r for p, r in srv.log if p == HALF1]
    assert reqs[0] is None and reqs[1] == f"bytes={len(data) // 2}-"   # resumed mid-file


def test_http_cut_without_range_support_restarts(tree, server, tmp_path):
    base, srv = server
    srv.mode = "norange"
    data = tree[2][HALF1]
    srv.drop[HALF1] = 1
    out = fx.fetch(f"{base}/emdb/{HALF1}", tmp_path / "h1", sha256=_sha(data))
    assert out.read_bytes() == data          # the 200 reply rewrote the part from zero


def test_http_always_cut_never_passes_as_complete_then_resumes(tree, server, tmp_path):
    base, srv = server
    data = tree[2][HALF1]
    srv.drop[HALF1] = 10
    dest = tmp_path / "h1"
    with pytest.raises(fx.FetchError) as e:
        fx.fetch(f"{base}/emdb/{HALF1}", dest, retries=2)     # no size/checksum given
    assert "\n" not in str(e.value) and HALF1 in str(e.value) and "incomplete" in str(e.value)
    assert not dest.exists()
    part = tmp_path / "h1.part"
    assert 0 < part.stat().st_size < len(data)
    srv.drop[HALF1] = 0
    fx.fetch(f"{base}/emdb/{HALF1}", dest)                     # a later run resumes the part
    assert dest.read_bytes() == data and not part.exists()
    assert srv.log[-1] == (HALF1, f"bytes={part_size_after(srv, HALF1)}-")


def part_size_after(srv, rel):
    """The offset the last request asked for (= size of the .part left by the cut runs)."""
    return int(srv.log[-1][1].split("=")[1].rstrip("-"))


def test_http_complete_part_gets_416_and_is_kept(tree, server, tmp_path):
    base, srv = server
    data = tree[2][HALF1]
    (tmp_path / "h1.part").write_bytes(data)                   # complete but not renamed
    out = fx.fetch(f"{base}/emdb/{HALF1}", tmp_path / "h1", sha256=_sha(data))
    assert out.read_bytes() == data
    assert srv.log[-1] == (HALF1, f"bytes={len(data)}-")


def test_http_wrong_checksum_refetched_then_error(tree, server, tmp_path):
    base, srv = server
    dest = tmp_path / "m"
    with pytest.raises(fx.FetchError, match="SHA-256 does not match"):
        fx.fetch(f"{base}/emdb/{MAP}", dest, sha256="0" * 64)
    assert not dest.exists() and not (tmp_path / "m.part").exists()
    assert sum(p == MAP for p, _ in srv.log) == 2             # fetched once more from zero
    with pytest.raises(fx.FetchError, match="expected 7 B"):
        fx.fetch(f"{base}/emdb/{MAP}", dest, expected_size=7)
    assert not dest.exists()


def test_http_corrupt_cached_file_is_replaced(tree, server, tmp_path):
    base, srv = server
    data = tree[2][MAP]
    dest = tmp_path / "m"
    dest.write_bytes(data[:-10] + b"0123456789")               # same size, wrong bytes
    out = fx.fetch(f"{base}/emdb/{MAP}", dest, sha256=_sha(data))
    assert out.read_bytes() == data and srv.log[-1] == (MAP, None)
    dest.write_bytes(data[:100])                               # truncated
    assert fx.fetch(f"{base}/emdb/{MAP}", dest, expected_size=len(data)).read_bytes() == data


def test_http_missing_file_is_one_line_not_found(server, tmp_path):
    base, _ = server
    url = f"{base}/emdb/structures/EMD-9/map/emd_9.map.gz"
    with pytest.raises(FileNotFoundError) as e:
        fx.fetch(url, tmp_path / "x")
    assert isinstance(e.value, InputError) and str(e.value) == f"{url}: not found (HTTP 404)"
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.part").exists()


def test_http_refused_connection_is_fetch_error(tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                                  # nothing listens there now
    with pytest.raises(fx.FetchError) as e:
        fx.fetch(f"http://127.0.0.1:{port}/a.map", tmp_path / "a", retries=1, timeout=2)
    assert "\n" not in str(e.value) and f"127.0.0.1:{port}/a.map" in str(e.value)


# ------------------------------------------------------------------ file:// and folders

@pytest.mark.parametrize("kind", ["folder", "file_url"])
def test_local_mirror_entry_download(tree, tmp_path, kind):
    emdb, pdb, files = tree
    if kind == "folder":
        mirror = fx.Mirror(emdb=str(emdb), pdb=str(pdb))
    else:
        mirror = fx.Mirror(emdb=emdb.as_uri(), pdb=pdb.as_uri() + "/")
    todo = fx.entry_files("EMD-5138", mirror)
    hpath = fx.fetch(todo["header"].url, tmp_path / "cache" / todo["header"].name)
    h = read_header(hpath)
    todo = fx.entry_files("EMD-5138", mirror, h)
    got = {}
    for rf in [todo["map"], *todo["half_maps"], *todo["models"]]:
        got[rf.name] = fx.fetch(rf.url, tmp_path / "cache" / rf.name).read_bytes()
    assert got["emd_5138.map.gz"] == files[MAP]
    assert got["emd_5138_half_map_1.map.gz"] == files[HALF1]
    assert got["3j03.cif.gz"] == files["data/structures/divided/mmCIF/j0/3j03.cif.gz"]
    assert sorted(got) == ["3iyl.cif.gz", "3j03.cif.gz", "emd_5138.map.gz",
                           "emd_5138_half_map_1.map.gz", "emd_5138_half_map_2.map.gz"]


def test_local_resume_and_missing(tree, tmp_path):
    emdb, _, files = tree
    data = files[HALF1]
    dest = tmp_path / "h1"
    (tmp_path / "h1.part").write_bytes(data[:1000])
    calls = []
    fx.fetch(emdb / HALF1, dest, sha256=_sha(data), progress=lambda d, t: calls.append(d))
    assert dest.read_bytes() == data and calls[0] == 1000      # continued from the part
    missing = (emdb / "structures/EMD-5138/other/none.map.gz").as_uri()
    with pytest.raises(fx.RemoteNotFound) as e:
        fx.fetch(missing, tmp_path / "n")
    assert str(e.value) == f"{missing}: not found"


def test_local_stale_part_is_caught_by_checksum(tree, tmp_path):
    """A leftover part with wrong bytes gives a wrong checksum → refetched from zero."""
    emdb, _, files = tree
    data = files[HALF1]
    (tmp_path / "h.part").write_bytes(b"x" * 1000)
    out = fx.fetch(emdb / HALF1, tmp_path / "h", sha256=_sha(data))
    assert out.read_bytes() == data


# ------------------------------------------------------------------ settings and layout

def test_mirror_defaults_and_environment(monkeypatch):
    monkeypatch.delenv(fx.ENV_EMDB, raising=False)
    monkeypatch.delenv(fx.ENV_PDB, raising=False)
    m = fx.Mirror()
    assert m.emdb == "https://ftp.ebi.ac.uk/pub/databases/emdb"
    assert m.pdb == "https://files.wwpdb.org/pub/pdb"
    monkeypatch.setenv(fx.ENV_EMDB, "/srv/emdb")
    monkeypatch.setenv(fx.ENV_PDB, "file:///srv/pdb")
    m = fx.Mirror()
    assert m.emdb == "/srv/emdb" and m.pdb == "file:///srv/pdb"
    assert fx.Mirror(emdb="http://x/e").emdb == "http://x/e"


def test_entry_files_public_layout(monkeypatch):
    monkeypatch.delenv(fx.ENV_EMDB, raising=False)
    monkeypatch.delenv(fx.ENV_PDB, raising=False)
    h = read_header(V3)
    todo = fx.entry_files("emd_5138", fx.Mirror(), h)
    e = "https://ftp.ebi.ac.uk/pub/databases/emdb/structures/EMD-5138"
    assert todo["header"].url == f"{e}/header/emd-5138-v30.xml"
    assert todo["map"].url == f"{e}/map/emd_5138.map.gz"
    assert [r.url for r in todo["half_maps"]] == [f"{e}/other/emd_5138_half_map_1.map.gz",
                                                  f"{e}/other/emd_5138_half_map_2.map.gz"]
    p = "https://files.wwpdb.org/pub/pdb/data/structures/divided/mmCIF"
    assert [(r.pdb_id, r.url) for r in todo["models"]] == [
        ("3j03", f"{p}/j0/3j03.cif.gz"), ("3iyl", f"{p}/iy/3iyl.cif.gz")]
    bare = fx.entry_files(5138, fx.Mirror())
    assert bare["half_maps"] == [] and bare["models"] == []
    assert bare["map"].url == f"{e}/map/emd_5138.map.gz"
    with pytest.raises(InputError):
        fx.entry_files("5ME2", fx.Mirror())


def test_entry_files_ignores_path_in_header_names():
    h = read_header(V3.replace(b"<file>emd_5138_half_map_1.map.gz</file>",
                               b"<file>../../x/half_a.map.gz</file>"))
    todo = fx.entry_files("EMD-5138", fx.Mirror(emdb="/m", pdb="/p"), h)
    assert todo["half_maps"][0].name == "half_a.map.gz"
    assert todo["half_maps"][0].url == os.path.join("/m", "structures", "EMD-5138", "other",
                                                    "half_a.map.gz")
