"""An EMDB entry as inputs of a report ("Public data-based report", as the reference calls it).

:func:`prepare` reads the entry's header (v3 or v1.9), downloads the primary map, the half maps
and the fitted models it lists (each cached by entry, resumable, checked; see
:mod:`cryovalid.emdb.fetch`) and returns the :class:`~cryovalid.api.Inputs` and
:class:`~cryovalid.api.Options` for :func:`cryovalid.validate`: the recommended contour as the
threshold, the reported resolution, and the entry's metadata and sources for the report's front
page. A file the header lists but the archive lacks (no half maps, a model that is not there)
lowers what the report grades, with a note; a missing entry or map is a one-line error.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass, field
from typing import Callable, Optional

from cryovalid.emdb.fetch import (FetchError, Mirror, RemoteNotFound, entry_files, fetch,
                                  sha256_file)
from cryovalid.emdb.header import normalise_emdb_id, read_header
from cryovalid.errors import InputError


@dataclass
class Entry:
    inputs: object  # cryovalid.api.Inputs
    options: object  # cryovalid.api.Options
    metadata: dict  # the front page (inputs.entry in report.json)
    notes: list = field(default_factory=list)


def _source(kind, remote, path) -> dict:
    return {"kind": kind, "url": remote.url, "file": os.path.basename(str(path)),
            "sha256": sha256_file(path)}


@contextlib.contextmanager
def _cache_lock(folder):
    """Hold ``folder/.lock`` (an exclusive flock) while the entry's files are fetched, so that
    two runs (two batch workers, two shells) fetching one entry take turns instead of
    writing one ``.part`` file together; the second then finds the files in the cache."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(os.path.join(folder, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InputError(f"{folder}: cannot use the download cache ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def prepare(emdb_id, *, cache: str, mirror: Optional[Mirror] = None, formats=None,
            levels=None, progress: Optional[Callable] = None) -> Entry:
    """Fetch an entry into ``cache/EMD-N/`` and return what :func:`cryovalid.validate` needs.

    ``levels`` (level IDs, None for all): the half maps are fetched only when Level 1 or A is
    asked for, the models only when Level A is. ``progress(name, done_bytes, total_bytes)`` is
    called while files download."""
    from cryovalid.api import check_levels

    eid = normalise_emdb_id(emdb_id)
    levels = check_levels(levels)
    mirror = mirror or Mirror()
    folder = os.path.join(cache, eid)
    with _cache_lock(folder):
        return _prepare(eid, folder, mirror, formats, levels, progress)


def _prepare(eid, folder, mirror, formats, levels, progress) -> Entry:
    from cryovalid.api import FORMATS, Inputs, Options

    want_halves = levels is None or "1" in levels or "A" in levels
    want_models = levels is None or "A" in levels

    def get(remote):
        cb = None if progress is None else (lambda d, t, n=remote.name: progress(n, d, t))
        return fetch(remote.url, os.path.join(folder, remote.name), progress=cb,
                     expected_size=remote.expected_size, sha256=remote.sha256)

    files = entry_files(eid, mirror)
    header_path = header_remote = None
    for remote in (files["header"], *files["old_headers"]):
        try:
            header_path, header_remote = get(remote), remote
            break
        except RemoteNotFound as exc:  # any other failure (network, checks) is said as it is
            missing = exc
    if header_path is None:
        raise FetchError(f"{eid}: no such entry in the archive ({missing})") from None
    header = read_header(str(header_path))
    files = entry_files(eid, mirror, header)
    sources = [_source("header", header_remote, header_path)]
    map_path = get(files["map"])
    sources.append(_source("map", files["map"], map_path))
    notes = []
    halves = []
    if not want_halves and files["half_maps"]:
        notes.append(f"The half maps are not fetched: Levels 1 and A are not asked for "
                     f"(--levels {','.join(levels)}).")
    for remote in files["half_maps"] if want_halves else ():
        try:
            path = get(remote)
        except FetchError as exc:
            notes.append(f"The header lists the half map {remote.name}, but it could not be "
                         f"fetched ({exc}); Level 1 is not graded.")
            halves = []
            break
        halves.append(path)
        sources.append(_source("half map", remote, path))
    if len(halves) != 2:
        if files["half_maps"] and halves:
            notes.append("The header lists fewer or more than two half maps; Level 1 is not "
                         "graded.")
        halves = []
    if not files["half_maps"] and want_halves:
        notes.append("The entry has no half maps: Level 1 is not graded.")
    model = None
    if not want_models and files["models"]:
        notes.append(f"The fitted model is not fetched: Level A is not asked for "
                     f"(--levels {','.join(levels)}).")
    for remote in files["models"] if want_models else ():
        try:
            path = get(remote)
        except FetchError as exc:
            notes.append(f"The fitted model {remote.pdb_id} could not be fetched ({exc}).")
            continue
        if model is None:
            model = path
            sources.append(_source("model", remote, path))
        else:
            notes.append(f"The entry lists several fitted models; Level A grades the first, "
                         f"{files['models'][0].pdb_id} ({remote.pdb_id} is not graded).")
    if not files["models"] and want_models:
        notes.append("The entry lists no fitted model: Level A is not graded.")
    if header.contour is None:
        notes.append("The header gives no recommended contour: the threshold is chosen "
                     "automatically.")
    if header.resolution is None:
        notes.append("The header gives no resolution: the items that need it do not apply.")
    metadata = {"emdb_id": eid, "pdb_ids": list(header.pdb_ids), "title": header.title,
                "authors": list(header.authors), "deposited": header.deposition_date,
                "method": header.method, "resolution_A": header.resolution,
                "resolution_method": header.resolution_method,
                "contour": header.contour, "contour_source": header.contour_source,
                "header_schema": header.schema, "sources": sources, "notes": notes}
    inputs = Inputs(str(map_path), half_maps=tuple(str(h) for h in halves) or None,
                    model=None if model is None else str(model), entry=metadata)
    options = Options(threshold=header.contour, resolution=header.resolution,
                      formats=tuple(formats or FORMATS), levels=levels)
    return Entry(inputs, options, metadata, notes)
