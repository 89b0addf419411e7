"""Download an EMDB entry's files: resumable, checked and cached (urllib only).

Archive layouts (base URLs are settings, see :class:`Mirror`):

* EMDB (``https://ftp.ebi.ac.uk/pub/databases/emdb``):
  ``structures/EMD-N/header/emd-N-v30.xml``, ``structures/EMD-N/map/emd_N.map.gz``,
  ``structures/EMD-N/other/emd_N_half_map_{1,2}.map.gz``
* PDB (``https://files.wwpdb.org/pub/pdb``):
  ``data/structures/divided/mmCIF/<middle two characters>/<id>.cif.gz``

A base is an ``http(s)://`` URL, a ``file://`` URL or a plain folder; all three are read the
same way by :func:`fetch`.

:func:`fetch` writes into ``<dest>.part`` and renames it to ``dest`` only when the transfer is
complete (the byte count equals the announced length) and checked (``expected_size`` and
``sha256`` where given). An interrupted transfer is resumed with an HTTP ``Range`` request
(or from the offset for a local source); a server that ignores ``Range`` restarts it from zero.
A file that fails its check is deleted and fetched again once from zero; a second failure is
an error. So a half-downloaded or corrupt file never carries the final name.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

from cryovalid.emdb.header import EntryHeader, normalise_emdb_id
from cryovalid.errors import InputError

__all__ = ["DEFAULT_EMDB", "DEFAULT_PDB", "ENV_EMDB", "ENV_PDB", "Mirror", "RemoteFile",
           "FetchError", "RemoteNotFound", "fetch", "entry_files", "sha256_file",
           "pdb_mmcif_path"]

DEFAULT_EMDB = "https://ftp.ebi.ac.uk/pub/databases/emdb"
DEFAULT_PDB = "https://files.wwpdb.org/pub/pdb"
ENV_EMDB = "CRYOVALID_EMDB_MIRROR"
ENV_PDB = "CRYOVALID_PDB_MIRROR"

CHUNK = 1 << 20          # bytes read per step
TIMEOUT_S = 60.0         # socket timeout per request, seconds
RETRIES = 3              # resumptions after a dropped connection, per fetch

Progress = Callable[[int, Optional[int]], None]


class FetchError(InputError):
    """A download failed (one line naming the URL)."""


class RemoteNotFound(FetchError, FileNotFoundError):
    """The URL or path does not exist on the archive / mirror."""

    def __str__(self):  # OSError's str would show the errno tuple otherwise
        return str(self.args[0]) if self.args else ""


def _env_emdb() -> str:
    return os.environ.get(ENV_EMDB) or DEFAULT_EMDB


def _env_pdb() -> str:
    return os.environ.get(ENV_PDB) or DEFAULT_PDB


def _join(base: str, rel: str) -> str:
    """Append a '/'-separated relative path to a URL or a folder."""
    base = os.fspath(base)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", base):
        return base.rstrip("/") + "/" + urllib.parse.quote(rel.lstrip("/"))
    return os.path.join(base, *rel.split("/"))


@dataclass(frozen=True)
class Mirror:
    """Base locations of the EMDB and PDB archives: URL (http/https/file) or folder.

    Defaults: the environment variables ``CRYOVALID_EMDB_MIRROR`` / ``CRYOVALID_PDB_MIRROR``,
    else the public archives :data:`DEFAULT_EMDB` / :data:`DEFAULT_PDB` (read when the
    Mirror is created)."""

    emdb: str = field(default_factory=_env_emdb)
    pdb: str = field(default_factory=_env_pdb)

    def __post_init__(self):
        object.__setattr__(self, "emdb", os.fspath(self.emdb) if self.emdb else _env_emdb())
        object.__setattr__(self, "pdb", os.fspath(self.pdb) if self.pdb else _env_pdb())

    def emdb_url(self, rel: str) -> str:
        return _join(self.emdb, rel)

    def pdb_url(self, rel: str) -> str:
        return _join(self.pdb, rel)


@dataclass(frozen=True)
class RemoteFile:
    """One file to download: where from, the local name, and what it is."""

    url: str
    name: str                        # local file name
    kind: str                        # "header" | "map" | "half_map" | "model"
    pdb_id: Optional[str] = None     # for kind == "model"
    expected_size: Optional[int] = None
    sha256: Optional[str] = None


def pdb_mmcif_path(pdb_id: str) -> str:
    """Archive path of a PDB entry's mmCIF, relative to the PDB base:
    ``data/structures/divided/mmCIF/<id[1:3]>/<id>.cif.gz`` (4-character IDs, lower case)."""
    pid = pdb_id.strip().lower()
    if not re.fullmatch(r"[0-9][a-z0-9]{3}", pid):
        raise InputError(f"{pdb_id!r} is not a 4-character PDB ID")
    return f"data/structures/divided/mmCIF/{pid[1:3]}/{pid}.cif.gz"


def _safe_name(name: Optional[str], default: str) -> str:
    """A header-given file name, reduced to its base name (never a path)."""
    if not name:
        return default
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base if re.fullmatch(r"[A-Za-z0-9._-]+", base or "") and base not in (".", "..") \
        else default


def entry_files(emdb_id, mirror: Optional[Mirror] = None,
                header: Optional[EntryHeader] = None) -> Dict[str, object]:
    """What to download for an entry.

    Returns ``{"header": RemoteFile, "old_headers": [RemoteFile], "map": RemoteFile,
    "half_maps": [RemoteFile], "models": [RemoteFile]}`` (``old_headers``: the names a header
    had before v3, ``header/emd-N.xml``, tried when the v3 one is not there). Without a header only the header and the primary map (by the
    archive's naming rule) are known; with one, the map's file name, the half maps it lists
    (``other/``) and its fitted PDB IDs (mmCIF from the PDB archive) are added."""
    mirror = mirror or Mirror()
    eid = normalise_emdb_id(emdb_id)
    n = eid.split("-", 1)[1]
    root = f"structures/{eid}"
    hname = f"emd-{n}-v30.xml"
    old = f"emd-{n}.xml"  # the v1.9-era name, still on some mirrors
    out: Dict[str, object] = {
        "header": RemoteFile(mirror.emdb_url(f"{root}/header/{hname}"), hname, "header"),
        "old_headers": [RemoteFile(mirror.emdb_url(f"{root}/header/{old}"), old, "header")],
    }
    mname = _safe_name(header.map_file if header else None, f"emd_{n}.map.gz")
    out["map"] = RemoteFile(mirror.emdb_url(f"{root}/map/{mname}"), mname, "map")
    halves: List[RemoteFile] = []
    models: List[RemoteFile] = []
    if header is not None:
        for i, f in enumerate(header.half_maps, 1):
            hn = _safe_name(f, f"emd_{n}_half_map_{i}.map.gz")
            halves.append(RemoteFile(mirror.emdb_url(f"{root}/other/{hn}"), hn, "half_map"))
        for pid in header.pdb_ids:
            try:
                rel = pdb_mmcif_path(pid)
            except InputError:
                continue   # extended / malformed IDs: not in the divided layout
            models.append(RemoteFile(mirror.pdb_url(rel), f"{pid.lower()}.cif.gz", "model",
                                     pdb_id=pid.lower()))
    out["half_maps"] = halves
    out["models"] = models
    return out


def sha256_file(path: Union[str, os.PathLike]) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _check(path: Path, expected_size, sha256) -> Optional[str]:
    """None when the file passes, else why not (words)."""
    size = path.stat().st_size
    if expected_size is not None and size != int(expected_size):
        return f"size {size} B, expected {int(expected_size)} B"
    if sha256 is not None and sha256_file(path).lower() != sha256.strip().lower():
        return "SHA-256 does not match"
    return None


def _local_source(src: str) -> Optional[str]:
    """The filesystem path of a plain path or file:// URL; None for a remote URL."""
    if src.startswith("file://"):
        p = urllib.parse.urlparse(src)
        return urllib.request.url2pathname(p.path)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", src):
        return None
    return src


class _Incomplete(Exception):
    """The transfer stopped early (resumable)."""


def _copy_stream(reader, fh, done: int, total: Optional[int], progress: Optional[Progress]):
    while True:
        try:
            block = reader.read(CHUNK)
        except (http.client.IncompleteRead, ConnectionError, socket.timeout, OSError) as e:
            raise _Incomplete(str(e) or type(e).__name__)
        if not block:
            break
        fh.write(block)
        done += len(block)
        if progress is not None:
            progress(done, total)
    return done


def _fetch_local(path: str, url: str, part: Path, progress) -> None:
    if not os.path.isfile(path):
        raise RemoteNotFound(f"{url}: not found")
    total = os.path.getsize(path)
    done = part.stat().st_size if part.exists() else 0
    if done > total:
        part.unlink()
        done = 0
    with open(path, "rb") as src, open(part, "ab") as fh:
        src.seek(done)
        if progress is not None:
            progress(done, total)
        done = _copy_stream(src, fh, done, total, progress)
    if done != total:
        raise _Incomplete(f"incomplete: {done} of {total} B")


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _fetch_http_once(url: str, part: Path, progress, timeout: float) -> None:
    """One HTTP request, resuming from ``part``'s size. Raises _Incomplete on a short read."""
    done = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "cryovalid",
                                               "Accept-Encoding": "identity"})
    if done:
        req.add_header("Range", f"bytes={done}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 404 or e.code == 410:
            raise RemoteNotFound(f"{url}: not found (HTTP {e.code})") from None
        if e.code == 416 and done:
            # the part is as long as (or longer than) the file: decide from the total
            m = re.search(r"/(\d+)", e.headers.get("Content-Range", "") or "")
            if m and int(m.group(1)) == done:
                return
            part.unlink()
            raise _Incomplete("range not satisfiable; restarting")
        raise FetchError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as e:
        reason = getattr(e, "reason", e)
        raise _Incomplete(f"{reason}")
    with resp:
        status = getattr(resp, "status", 200)
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", "") or "")
            if not m or int(m.group(1)) != done:
                part.unlink()
                raise _Incomplete("unexpected Content-Range; restarting")
            total = int(m.group(3)) if m.group(3) != "*" else (
                done + length if length is not None else None)
            mode = "ab"
        else:                              # 200: the whole file (Range ignored) → start over
            done = 0
            total = length
            mode = "wb"
        with open(part, mode) as fh:
            if progress is not None:
                progress(done, total)
            done = _copy_stream(resp, fh, done, total, progress)
    if total is not None and done != total:
        raise _Incomplete(f"incomplete: {done} of {total} B")


def fetch(url_or_path: Union[str, os.PathLike], dest: Union[str, os.PathLike], *,
          expected_size: Optional[int] = None, sha256: Optional[str] = None,
          progress: Optional[Progress] = None, retries: int = RETRIES,
          timeout: float = TIMEOUT_S) -> Path:
    """Download ``url_or_path`` (http(s) URL, file:// URL or local path) to ``dest``.

    ``dest`` is a file path, or an existing folder (the source's base name is used). An
    existing ``dest`` that passes the checks is reused without any transfer (cache); one that
    fails them is replaced. Data goes to ``dest + '.part'``, resumed after a dropped
    connection (HTTP Range; up to ``retries`` resumptions) and renamed to ``dest`` only when
    complete and checked: ``expected_size`` (bytes) and ``sha256`` (hex) where given. A file
    that fails its check is fetched once more from zero. ``progress(done_bytes, total_bytes)``
    is called as bytes arrive (total None when unknown). Returns ``dest`` as a Path.

    Raises :class:`RemoteNotFound` (a FileNotFoundError and an InputError) for a missing
    file and :class:`FetchError` for any other failure, each one line naming the URL."""
    src = os.fspath(url_or_path)
    dest = Path(dest)
    if dest.is_dir():
        base = urllib.parse.urlparse(src).path if "://" in src else src
        dest = dest / os.path.basename(base.rstrip("/"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")

    if dest.is_file():
        if _check(dest, expected_size, sha256) is None:
            if progress is not None:
                size = dest.stat().st_size
                progress(size, size)
            return dest
        dest.unlink()                      # corrupt cache entry: fetch again

    local = _local_source(src)
    why = None
    for attempt in range(2):               # a failed check → one fresh fetch from zero
        tries = 0
        while True:
            try:
                if local is not None:
                    _fetch_local(local, src, part, progress)
                else:
                    _fetch_http_once(src, part, progress, timeout)
                break
            except _Incomplete as e:
                tries += 1
                if tries > retries:
                    raise FetchError(f"{src}: download failed after {tries} attempts "
                                     f"({e})") from None
                time.sleep(min(0.2 * tries, 2.0))
        why = _check(part, expected_size, sha256)
        if why is None:
            os.replace(part, dest)
            return dest
        part.unlink()
    raise FetchError(f"{src}: downloaded file failed its check ({why})")

