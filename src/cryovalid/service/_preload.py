"""Imported once by the job forkserver (jobs.LocalRunner): everything a job imports, so that
each job process forked from it starts validating at once instead of importing for a second."""
from cryovalid.service.runjob import preload

preload()
