"""The web application: pages (jinja2, server-rendered) and the REST API (FastAPI, /docs).

``create_app(settings)`` builds it; the dispatcher (jobs.Dispatcher) starts and stops with it.
Pages: ``/`` the submission form, ``/jobs/{id}`` a job's progress and then its report (the
report.html the core wrote, in a sandboxed frame), ``/archive`` every public report with
filters and downloads. API: see docs/service.md (and /docs). A private job's pages and files
are reachable only with its token (``?token=`` or the ``X-Job-Token`` header); without it the
job does not exist (404). Cancelling needs the token for every job.
"""
from __future__ import annotations

import collections
import datetime as dt
import os
import re
import secrets
import shutil
import threading
import time
import zipfile
from contextlib import asynccontextmanager
from typing import Optional
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, literal, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from cryovalid import __version__
from cryovalid.service import db, jobs, uploads
from cryovalid.service.db import Job
from cryovalid.service.settings import Settings

HERE = os.path.dirname(os.path.abspath(__file__))
JOB_ID = re.compile(r"^[0-9a-f]{16}$")
REPORT_FORMATS = {"json": "application/json", "html": "text/html; charset=utf-8",
                  "pdf": "application/pdf"}
LIST_COLUMNS = (Job.id, Job.name, Job.emdb_id, Job.status, Job.private, Job.created,
                Job.started, Job.finished, Job.threshold, Job.resolution, Job.formats,
                Job.attempts, Job.score_passed, Job.score_evaluable, Job.score, Job.levels,
                Job.error, Job.names, Job.files)
LEVELS = ("0", "1", "A", "2", "3", "4")  # what uploads can grade (Level 5 needs micrographs)
MAX_LIST = 500

SUBMIT_DOC = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "properties": {
            "map": {"type": "string", "format": "binary",
                    "description": "the map (MRC/CCP4, .gz too)"},
            "half_map_1": {"type": "string", "format": "binary"},
            "half_map_2": {"type": "string", "format": "binary"},
            "model": {"type": "string", "format": "binary",
                      "description": "atomic model, PDB or mmCIF (.gz too)"},
            "classes": {"type": "string", "format": "binary",
                        "description": "2D class averages, an MRC stack (Level 2)"},
            "particles": {"type": "string", "format": "binary",
                          "description": "the particles: a RELION STAR file (with "
                                         "particles_stack) or an MRC stack (Level 3; Level 4 "
                                         "when the STAR carries angles)"},
            "particles_stack": {"type": "string", "format": "binary",
                                "description": "the one MRC stack of the STAR's particles"},
            "symmetry": {"type": "string",
                         "description": "point group of the particle (c1, cN, dN, t, o, i)"},
            "classes_pixel": {"type": "number", "description": "Å, over the classes' header"},
            "particles_pixel": {"type": "number",
                                "description": "Å, over the particles' STAR or header"},
            "kv": {"type": "number", "description": "voltage (kV), over the STAR's"},
            "cs": {"type": "number", "description": "spherical aberration (mm)"},
            "q0": {"type": "number", "description": "amplitude contrast (fraction)"},
            "threshold": {"type": "number", "description": "contour level (map units)"},
            "resolution": {"type": "number", "description": "reported resolution (Å)"},
            "emdb_id": {"type": "string", "description": "an EMDB entry instead of files"},
            "formats": {"type": "string", "description": "comma-separated json,html,pdf"},
            "private": {"type": "boolean",
                        "description": "reachable only with the returned token"},
            "name": {"type": "string", "description": "a name shown in the archive"}}}}}},
    "responses": {"201": {"description": "queued: {id, token, status, url}"},
                  "413": {"description": "too large"}, "415": {"description": "not multipart"},
                  "422": {"description": "a file or field failed its check"},
                  "429": {"description": "too many submissions from this client"}}}


class RateLimiter:
    """At most ``per_minute`` submissions per client address in any 60 s (0: no limit)."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self.seen = collections.defaultdict(collections.deque)
        self.lock = threading.Lock()

    def check(self, client: str) -> None:
        if self.per_minute <= 0:
            return
        now = time.monotonic()
        with self.lock:
            q = self.seen[client]
            while q and now - q[0] > 60.0:
                q.popleft()
            if len(q) >= self.per_minute:
                wait = max(1, int(60.0 - (now - q[0])) + 1)
                raise uploads.UploadError(
                    429, f"too many submissions from {client}: at most {self.per_minute} per "
                         f"minute; try again in {wait} s")
            q.append(now)
            if len(self.seen) > 10000:  # forget idle clients
                for k in [k for k, v in self.seen.items() if not v]:
                    del self.seen[k]


def _utc(t: Optional[float]) -> str:
    if t is None:
        return ""
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _day(text: str, name: str, end: bool = False) -> Optional[float]:
    if not text:
        return None
    try:
        d = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise HTTPException(422, f"{name} must be a date YYYY-MM-DD, got {text[:20]!r}") from None
    return (d + dt.timedelta(days=1) if end else d).timestamp()


def _token(request: Request) -> str:
    return request.query_params.get("token") or request.headers.get("x-job-token") or ""


def create_app(settings: Settings, start_dispatcher: bool = True) -> FastAPI:
    """The application for ``settings``; the dispatcher runs while the app does."""
    os.makedirs(settings.jobs_dir, exist_ok=True)
    engine = db.make_engine(settings.database)
    db.migrate(engine)
    read = db.reader(engine)
    read_session = db.sessions(read)
    dispatcher = jobs.Dispatcher(settings, engine)
    limiter = RateLimiter(settings.rate_limit_per_minute)
    templates = Jinja2Templates(directory=os.path.join(HERE, "templates"))
    templates.env.filters["utc"] = _utc
    templates.env.globals["version"] = __version__

    @asynccontextmanager
    async def lifespan(app):
        if start_dispatcher:
            dispatcher.start()
        try:
            yield
        finally:
            if start_dispatcher:
                await run_in_threadpool(dispatcher.stop)
            engine.dispose()

    app = FastAPI(title="cryovalid", version=__version__, lifespan=lifespan,
                  description="Cryo-EM map validation reports as a service: submit a map "
                              "(with half maps and a model) or an EMDB ID, follow the job, "
                              "fetch the report. See docs/service.md.")
    app.state.settings, app.state.engine, app.state.dispatcher = settings, engine, dispatcher
    app.mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static")

    # ---- errors: one line, JSON for the API, a page for the pages ----------------------
    def _wants_html(request: Request) -> bool:
        return not request.url.path.startswith("/api/")

    def _error(request: Request, status: int, detail: str, headers=None):
        detail = " ".join(str(detail).split())
        if _wants_html(request):
            return templates.TemplateResponse(request, "error.html",
                                              {"status": status, "detail": detail},
                                              status_code=status, headers=headers)
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        return _error(request, exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "path"))
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error(request, 422, "; ".join(parts) or "invalid request")

    @app.exception_handler(uploads.UploadError)
    async def _upload_error(request: Request, exc: uploads.UploadError):
        headers = {"Retry-After": "60"} if exc.status == 429 else None
        return _error(request, exc.status, str(exc), headers)

    # ---- jobs ------------------------------------------------------------------------
    def load(job_id: str, token: str = "", cols=None):
        if not JOB_ID.match(job_id):
            raise HTTPException(404, f"no job {job_id[:40]!r}")
        with read_session() as ses:
            row = ses.execute(select(*(cols or (Job,)), Job.private, Job.token)
                              .where(Job.id == job_id)).first()
        if row is None or (row.private and not secrets.compare_digest(token, row.token)):
            raise HTTPException(404, f"no job {job_id!r}")
        return row if cols else row[0]

    async def submit(request: Request):
        client = request.client.host if request.client else "unknown"
        limiter.check(client)
        job_id = jobs.new_id()
        folder = os.path.join(settings.jobs_dir, job_id)
        os.makedirs(folder)
        try:
            sub = await uploads.receive(request, folder, settings.max_upload_bytes,
                                        settings.max_request_bytes)
            checked = await run_in_threadpool(uploads.check, sub, settings.formats)
            try:
                token = await run_in_threadpool(jobs.insert, engine, job_id, checked, client)
            except SQLAlchemyError as exc:  # a full disk, a lost or locked database server
                raise HTTPException(503, f"the job could not be stored in the database "
                                         f"({type(exc).__name__}); try again later") from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # nothing half written remains
            raise
        dispatcher.notify()
        return job_id, token, checked.private

    def job_query(job_id, token, private) -> str:
        return "?" + urlencode({"token": token}) if private else ""

    @app.post("/api/jobs", status_code=201, openapi_extra=SUBMIT_DOC, tags=["jobs"],
              summary="Submit a job (multipart: map, half_map_1, half_map_2, model, "
                      "classes, particles, particles_stack, threshold, resolution, or "
                      "emdb_id)")
    async def api_submit(request: Request):
        job_id, token, private = await submit(request)
        return JSONResponse({"id": job_id, "token": token, "status": "queued",
                             "url": f"/jobs/{job_id}" + job_query(job_id, token, private)},
                            status_code=201)

    @app.get("/api/jobs", tags=["jobs"], summary="List the public jobs (archive filters)")
    def api_list(name: str = "", emdb_id: str = "", date_from: str = "", date_to: str = "",
                 level: str = "", min_score: Optional[float] = Query(None, ge=0, le=100),
                 status: str = "", limit: int = Query(100, ge=1, le=MAX_LIST),
                 offset: int = Query(0, ge=0)):
        rows, total = list_jobs(name, emdb_id, date_from, date_to, level, min_score, status,
                                limit, offset)
        return {"total": total, "offset": offset, "jobs": [_row_summary(r) for r in rows]}

    @app.get("/api/jobs/{job_id}", tags=["jobs"], summary="A job's status and progress")
    def api_status(job_id: str, request: Request):
        return load(job_id, _token(request)).summary()

    @app.get("/api/jobs/{job_id}/report.{fmt}", tags=["jobs"],
             summary="The report (json, html or pdf)")
    def api_report(job_id: str, fmt: str, request: Request):
        return report_file(load(job_id, _token(request)), fmt)

    @app.get("/api/jobs/{job_id}/maps.zip", tags=["jobs"], summary="The derived maps, zipped")
    def api_maps(job_id: str, request: Request):
        return maps_zip(load(job_id, _token(request)))

    @app.post("/api/jobs/{job_id}/cancel", tags=["jobs"],
              summary="Cancel a queued or running job (needs its token)")
    def api_cancel(job_id: str, request: Request):
        return {"id": job_id, "status": cancel(job_id, _token(request))}

    def cancel(job_id: str, token: str) -> str:
        row = load(job_id, token, cols=(Job.status,))
        if not secrets.compare_digest(token, row.token):
            raise HTTPException(403, "cancelling a job needs its token (returned when it was "
                                     "submitted): ?token=… or the X-Job-Token header")
        if row.status in db.FINISHED:
            raise HTTPException(409, f"job {job_id} is already {row.status}")
        return dispatcher.cancel(job_id)

    def report_file(job, fmt: str):
        if fmt not in REPORT_FORMATS:
            raise HTTPException(404, f"no report format {fmt[:20]!r}; choose json, html or pdf")
        if job.status != "done":
            raise HTTPException(409, f"job {job.id} is {job.status}; its report is not ready")
        path = os.path.join(settings.jobs_dir, job.id, "report", f"report.{fmt}")
        if not os.path.isfile(path):
            if fmt == "json" and job.report is not None:
                return JSONResponse(job.report)
            raise HTTPException(404, f"job {job.id} has no {fmt.upper()} report (formats: "
                                     f"{job.formats})")
        headers = {"X-Content-Type-Options": "nosniff"}
        if fmt == "html":
            # the report in its own origin: its scripts cannot reach the service's pages
            headers["Content-Security-Policy"] = "sandbox allow-scripts allow-popups"
            return FileResponse(path, media_type=REPORT_FORMATS[fmt], headers=headers)
        return FileResponse(path, media_type=REPORT_FORMATS[fmt], headers=headers,
                            filename=f"cryovalid-{job.id}-report.{fmt}")

    def maps_zip(job):
        if job.status != "done":
            raise HTTPException(409, f"job {job.id} is {job.status}; its maps are not ready")
        folder = os.path.join(settings.jobs_dir, job.id)
        maps = os.path.join(folder, "report", "maps")
        names = sorted(n for n in os.listdir(maps) if os.path.isfile(os.path.join(maps, n))
                       ) if os.path.isdir(maps) else []
        if not names:
            raise HTTPException(404, f"job {job.id} wrote no derived maps")
        out = os.path.join(folder, "maps.zip")
        if not os.path.isfile(out):
            tmp = f"{out}.{secrets.token_hex(4)}.tmp"
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
                for n in names:
                    z.write(os.path.join(maps, n), arcname=f"maps/{n}")
            os.replace(tmp, out)
        return FileResponse(out, media_type="application/zip",
                            filename=f"cryovalid-{job.id}-maps.zip")

    def list_jobs(name, emdb_id, date_from, date_to, level, min_score, status, limit, offset):
        q = select(*LIST_COLUMNS).where(Job.private.is_(False))
        if name:
            q = q.where(Job.name.ilike(f"%{_like(name)}%", escape="\\"))
        if emdb_id:
            from cryovalid.emdb.header import normalise_emdb_id
            from cryovalid.errors import InputError

            try:
                emdb_id = normalise_emdb_id(emdb_id)
            except InputError as exc:
                raise HTTPException(422, str(exc)) from None
            q = q.where(Job.emdb_id == emdb_id)
        t0, t1 = _day(date_from, "date_from"), _day(date_to, "date_to", end=True)
        if t0 is not None:
            q = q.where(Job.created >= t0)
        if t1 is not None:
            q = q.where(Job.created < t1)
        if level:
            if level not in LEVELS:
                raise HTTPException(422, f"level must be one of {', '.join(LEVELS)}, got "
                                         f"{level[:10]!r}")
            q = q.where((literal(",") + Job.levels + literal(",")).like(f"%,{level},%"))
        if min_score is not None:
            # a percentage: 66.67 % must admit 2 of 3 (0.6666…), whatever the float rounding
            q = q.where(Job.score >= min_score / 100.0 - 1e-9)
        if status:
            if status not in db.STATUSES:
                raise HTTPException(422, f"status must be one of {', '.join(db.STATUSES)}")
            q = q.where(Job.status == status)
        with read.connect() as conn:
            total = conn.execute(select(func.count()).select_from(q.subquery())).scalar_one()
            rows = conn.execute(q.order_by(Job.created.desc(), Job.id).limit(limit)
                                .offset(offset)).all()
        return rows, total

    # ---- pages -------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page_form(request: Request):
        return templates.TemplateResponse(request, "index.html", {"error": None,
                                                                  "settings": settings})

    @app.post("/submit", include_in_schema=False)
    async def page_submit(request: Request):
        try:
            job_id, token, _ = await submit(request)
        except uploads.UploadError as exc:
            return templates.TemplateResponse(request, "index.html",
                                              {"error": str(exc), "settings": settings},
                                              status_code=exc.status)
        # the submitter's page carries the token (it can cancel; a private job needs it)
        return RedirectResponse(f"/jobs/{job_id}?" + urlencode({"token": token}),
                                status_code=303)

    @app.get("/jobs/{job_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_job(job_id: str, request: Request):
        token = _token(request)
        job = load(job_id, token)
        can_cancel = bool(token) and secrets.compare_digest(token, job.token)
        q = "?" + urlencode({"token": token}) if token else ""
        return templates.TemplateResponse(request, "job.html", {
            "job": job, "s": job.summary(), "q": q, "can_cancel": can_cancel,
            "files": _files(job)})

    @app.post("/jobs/{job_id}/cancel", include_in_schema=False)
    def page_cancel(job_id: str, request: Request):
        token = _token(request)
        cancel(job_id, token)
        return RedirectResponse(f"/jobs/{job_id}?" + urlencode({"token": token}),
                                status_code=303)

    @app.get("/archive", response_class=HTMLResponse, include_in_schema=False)
    def page_archive(request: Request, name: str = "", emdb_id: str = "", date_from: str = "",
                     date_to: str = "", level: str = "", min_score: str = "",
                     status: str = "", page: int = Query(1, ge=1)):
        score = None
        if min_score:
            try:
                score = float(min_score)
            except ValueError:
                raise HTTPException(422, f"min_score must be a number, got "
                                         f"{min_score[:20]!r}") from None
        per = 50
        rows, total = list_jobs(name, emdb_id, date_from, date_to, level, score, status, per,
                                (page - 1) * per)
        f = {"name": name, "emdb_id": emdb_id, "date_from": date_from, "date_to": date_to,
             "level": level, "min_score": min_score, "status": status}
        more = urlencode({**{k: v for k, v in f.items() if v}, "page": page + 1})
        return templates.TemplateResponse(request, "archive.html", {
            "rows": [(_row_summary(r), _files_of(r)) for r in rows], "total": total,
            "f": f, "levels": LEVELS, "statuses": db.STATUSES, "page": page,
            "next": f"/archive?{more}" if page * per < total else None})

    def _files(job) -> dict:
        return _files_of(job)

    def _files_of(row) -> dict:
        """Which downloads a finished job has (looked up in its folder)."""
        if row.status != "done":
            return {}
        rep = os.path.join(settings.jobs_dir, row.id, "report")
        have = {fmt: os.path.isfile(os.path.join(rep, f"report.{fmt}"))
                for fmt in REPORT_FORMATS}
        have["json"] = True  # also from the database
        have["maps"] = os.path.isdir(os.path.join(rep, "maps"))
        return have

    return app


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _row_summary(r) -> dict:
    return {"id": r.id, "name": r.name, "emdb_id": r.emdb_id, "status": r.status,
            "created": r.created, "finished": r.finished, "threshold": r.threshold,
            "resolution": r.resolution, "formats": r.formats.split(","),
            "files": dict(r.names if r.names is not None else (r.files or {})),
            "attempts": r.attempts,
            "score": ({"passed": r.score_passed, "evaluable": r.score_evaluable}
                      if r.score_passed is not None else None),
            "levels": r.levels.split(",") if r.levels else [], "error": r.error}
