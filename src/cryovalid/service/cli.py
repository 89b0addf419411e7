"""``cryovalid serve``: run the web service.

``cryovalid serve --host 127.0.0.1 --port 8000 --data DIR [--database URL]
[--workers N | --scheduler ADDRESS]``: :func:`add_parser` and :func:`serve` are the
``serve`` command of ``cryovalid.cli`` (``python -m cryovalid.service serve …`` runs it too).
"""
from __future__ import annotations

import argparse
import sys

from cryovalid.service.settings import MIB, Settings


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _count(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {v}")
    return v


def add_parser(subparsers):
    """Add the ``serve`` command to an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "serve", help="run the validation report web service",
        description="Run the web service: a submission form, job pages with progress and the "
                    "report, an archive with filters and downloads, and a REST API (OpenAPI "
                    "docs at /docs). Jobs are queued in the database and survive a restart. "
                    "See docs/service.md.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                                                       "127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="the archive folder: DIR/jobs/<id>/ per job, DIR/cryovalid.sqlite")
    p.add_argument("--database", metavar="URL", default=None,
                   help="SQLAlchemy URL (default: SQLite in DIR; e.g. "
                        "postgresql+psycopg://user@host/db)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="jobs run at once by the embedded pool (default 1); each gets "
                        "CPUs/N FFT threads")
    g.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="a Dask scheduler (tcp://host:8786) that runs the jobs instead; its "
                        "workers must reach DIR and the database")
    p.add_argument("--max-upload-mb", type=_positive_int, default=2048, metavar="MB",
                   help="largest file accepted, MiB (default 2048)")
    p.add_argument("--rate-limit", type=_count, default=10, metavar="N",
                   help="submissions per minute per client address (default 10; 0: none)")
    from cryovalid.cli import _formats

    p.add_argument("--formats", type=_formats, default=["json", "html", "pdf"], metavar="LIST",
                   help="default report formats of a submission (default json,html,pdf; a "
                        "submission's own formats field overrides it)")
    p.add_argument("--mirror", dest="emdb_mirror", default=None, metavar="URL_OR_DIR",
                   help="EMDB archive for EMDB-ID jobs (default: CRYOVALID_EMDB_MIRROR, else "
                        "EBI)")
    p.add_argument("--pdb-mirror", default=None, metavar="URL_OR_DIR",
                   help="PDB archive for EMDB-ID jobs (default: CRYOVALID_PDB_MIRROR, else "
                        "wwPDB)")
    return p


def settings_from(args) -> Settings:
    return Settings(data=args.data, database=args.database, workers=args.workers,
                    scheduler=args.scheduler, max_upload_bytes=args.max_upload_mb * MIB,
                    max_request_bytes=3 * args.max_upload_mb * MIB + MIB,
                    rate_limit_per_minute=args.rate_limit, formats=tuple(args.formats),
                    emdb_mirror=args.emdb_mirror,
                    pdb_mirror=args.pdb_mirror)


def serve(args) -> int:
    """Run the server until interrupted; 0 on a clean stop, 2 with one line on bad options."""
    import uvicorn

    from cryovalid.service.app import create_app

    try:
        settings = settings_from(args)
        app = create_app(settings)
    except (ValueError, OSError) as exc:
        print(f"cryovalid: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - e.g. a database that cannot be reached
        print(f"cryovalid: error: cannot start the service ({type(exc).__name__}: "
              f"{' '.join(str(exc).split())[:300]})", file=sys.stderr)
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cryovalid.service")
    sub = ap.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = ap.parse_args(argv)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
