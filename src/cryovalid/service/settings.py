"""Settings of the web service (``cryovalid serve`` options and their defaults).

Every limit is in plain units: bytes, seconds, submissions per minute."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

MIB = 1 << 20
GIB = 1 << 30
DEFAULT_FORMATS = ("json", "html", "pdf")


@dataclass
class Settings:
    """How one server runs.

    data: the archive folder (``DATA/jobs/<id>/`` per job, ``DATA/cryovalid.sqlite`` by
    default); database: a SQLAlchemy URL (default SQLite next to the archive, or e.g.
    ``postgresql+psycopg://user@host/db``); workers: jobs run at once by the embedded pool;
    scheduler: a Dask scheduler address (``tcp://host:8786``) that runs the jobs instead."""

    data: str
    database: Optional[str] = None
    workers: int = 1
    scheduler: Optional[str] = None
    max_upload_bytes: int = 2 * GIB      # per file (map, half map, model)
    max_request_bytes: int = 7 * GIB     # a whole submission (Content-Length)
    rate_limit_per_minute: int = 10      # submissions per client IP per minute; 0: no limit
    formats: tuple = DEFAULT_FORMATS     # default report formats of a submission
    heartbeat_s: float = 2.0             # how often a running job says it is alive
    lease_s: float = 30.0                # a running job silent this long is taken as dead
    max_attempts: int = 2                # a job interrupted by a crash runs again once
    poll_s: float = 0.2                  # how often the dispatcher looks at the queue
    emdb_mirror: Optional[str] = None    # EMDB archive (URL or folder); None: the default
    pdb_mirror: Optional[str] = None     # PDB archive (URL or folder); None: the default
    threads_per_job: Optional[int] = None  # FFT threads of a job; None: CPUs / workers
    extra_env: dict = field(default_factory=dict)  # environment given to every job process

    def __post_init__(self):
        self.data = os.path.abspath(self.data)
        if self.database is None:
            self.database = "sqlite:///" + os.path.join(self.data, "cryovalid.sqlite")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        self.formats = tuple(self.formats)

    @property
    def jobs_dir(self) -> str:
        return os.path.join(self.data, "jobs")

    @property
    def emdb_cache(self) -> str:
        return os.path.join(self.data, "emdb-cache")

    def job_threads(self) -> int:
        """FFT threads of one job: the CPUs shared among the jobs that run at once."""
        if self.threads_per_job:
            return int(self.threads_per_job)
        return max(1, (os.cpu_count() or 1) // self.workers)
