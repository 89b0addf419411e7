"""The validation report web service (``cryovalid serve``): a FastAPI application whose jobs
are queued in a database (SQLAlchemy: SQLite by default, PostgreSQL as an option) and run by
workers that call :func:`cryovalid.validate` — an embedded pool of child processes, or a Dask
scheduler. docs/service.md describes the pages, the REST API and the design.

Modules: :mod:`.settings` (configuration), :mod:`.db` (schema, engine, migrations),
:mod:`.uploads` (streaming multipart uploads with limits and content checks), :mod:`.jobs`
(queue, dispatcher, recovery, cancellation), :mod:`.runjob` (one job in its own process),
:mod:`.app` (the web pages and the REST API), :mod:`.cli` (``cryovalid serve``).
"""
