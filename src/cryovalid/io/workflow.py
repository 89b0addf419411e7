"""Reader of an image-processing workflow (Level W, item W.a): a Scipion workflow JSON or a
RELION pipeline STAR (``default_pipeline.star``).

Scipion (spec vrs_level1_A_O_W.md §4): a JSON list of protocol objects, each with
``object.id``, ``object.label`` and ``object.className``; every key containing "input" (in any
case) whose value is a pointer string ``"ID.attr"`` (attr starting with a letter or ``_``; a
number such as ``"0.5"`` is a parameter, not a pointer) or a list of them gives an edge from
protocol ID to this protocol. The other keys are the protocol's parameters.

RELION (3.1 and 4/5): blocks ``data_pipeline_processes`` (jobs: name, alias, type, status),
``data_pipeline_nodes`` (files), ``data_pipeline_input_edges`` (file → the job reading it) and
``data_pipeline_output_edges`` (the job writing it → file), read with ``starfile``. A job B
depends on a job A when B reads a file that A writes. A job's parameters are read from its
``job.star`` (block ``joboptions_values``) when the pipeline lies in its RELION project folder
(``<folder>/<job name>/job.star``); without them a job has no parameters, and so noted.

Which of the two: a file whose first non-blank character is ``[`` or ``{`` is read as JSON, a
file with a ``data_pipeline_processes`` block as a RELION pipeline; anything else is refused.
A reference to a protocol/job that is not in the file (dangling) or a file read by a job but
written by none (an input from outside the pipeline) is a note, never an error; cycles are
found by the item. Bad files raise :class:`~cryovalid.errors.InputError` with one line.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from cryovalid.errors import InputError
from cryovalid.io.maps import read_small_text, sha256_of

MAX_BYTES = 100 * 1024 * 1024
SCIPION = "Scipion workflow JSON"
RELION = "RELION pipeline STAR"
_POINTER = re.compile(r"^([^.\s]+)\.([A-Za-z_]\S*)$")
# RELION 3.1 numeric process types (pipeline_jobs.h) for pipelines without type labels
RELION3_TYPES = {0: "Import", 1: "Motion correction", 2: "CTF estimation", 3: "Manual picking",
                 4: "Auto-picking", 5: "Particle extraction", 7: "2D classification",
                 8: "3D classification", 9: "3D auto-refine", 10: "Mask creation",
                 11: "Join star files", 12: "Subtraction", 13: "Post-processing",
                 14: "Local resolution", 15: "Movie refine", 16: "Initial model",
                 17: "Multi-body", 18: "Bayesian polishing", 19: "CTF refinement",
                 20: "External", 21: "Subset selection", 99: "Other"}
RELION3_STATUS = {0: "Running", 1: "Scheduled", 2: "Succeeded", 3: "Failed", 4: "Aborted"}


@dataclass
class Job:
    id: str
    label: str
    kind: str  # Scipion className or RELION job type
    status: str = ""
    params: list = field(default_factory=list)  # [(name, value as text)]


@dataclass
class Workflow:
    """``jobs`` in file order; ``edges`` [(from job id, to job id, what it passes)] between
    jobs of the file, unique per (from, to) pair (what it passes joined by ", ")."""
    path: str
    sha256: str
    format: str  # SCIPION or RELION
    jobs: list
    edges: list
    notes: list = field(default_factory=list)
    dangling: int = 0  # references to jobs that are not in the file


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _pointers(value):
    vals = value if isinstance(value, list) else [value]
    for v in vals:
        if isinstance(v, str):
            m = _POINTER.match(v.strip())
            if m:
                yield m.group(1), m.group(2)


def _merge_edges(raw) -> list:
    merged = {}
    for a, b, via in raw:
        merged.setdefault((a, b), [])
        if via not in merged[(a, b)]:
            merged[(a, b)].append(via)
    return [(a, b, ", ".join(v)) for (a, b), v in merged.items()]


def _read_scipion(path, text):
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: a Scipion workflow JSON is a list of protocols, not a "
                         f"{type(data).__name__}")
    if not data:
        raise InputError(f"{path}: the workflow lists no protocols")
    jobs, ids, notes = [], set(), []
    for n, obj in enumerate(data, 1):
        if not isinstance(obj, dict) or "object.id" not in obj:
            raise InputError(f"{path}: protocol {n} is not an object with an \"object.id\"")
        pid = str(obj["object.id"])
        if pid in ids:
            notes.append(f"Protocol id {pid} appears twice; the second was ignored.")
            continue
        ids.add(pid)
        cls = str(obj.get("object.className", ""))
        label = str(obj.get("object.label") or cls or pid)
        params = [(k, _text(v)) for k, v in obj.items()
                  if k not in ("object.id", "object.label", "object.className")]
        jobs.append((Job(pid, label, cls, "", params), obj))
    raw, dangling = [], []
    for job, obj in jobs:
        for key, value in obj.items():
            if "input" not in key.lower():
                continue
            for src, attr in _pointers(value):
                if src not in ids:
                    dangling.append(f"{job.id}.{key} → {src}")
                elif src == job.id:
                    notes.append(f"Protocol {job.id} names itself as its input ({key}).")
                else:
                    raw.append((src, job.id, attr))
    if dangling:
        notes.append(f"{len(dangling)} input reference(s) name a protocol that is not in the "
                     f"workflow: {'; '.join(dangling[:10])}{' …' if len(dangling) > 10 else ''}.")
    return [j for j, _ in jobs], _merge_edges(raw), notes, len(dangling)


def _col(df, *names):
    for n in names:
        if n in df.columns:
            return [str(v) for v in df[n].tolist()]
    return None


def _job_options(path, job_name) -> list:
    """[(option, value)] from ``<pipeline folder>/<job>/job.star`` (RELION 3.1+: block
    ``joboptions_values``), [] when there is none or it cannot be read."""
    import starfile

    folder = os.path.dirname(os.path.abspath(path))
    js = os.path.normpath(os.path.join(folder, job_name, "job.star"))
    if not js.startswith(folder + os.sep) or not os.path.isfile(js):
        return []
    try:
        blocks = starfile.read(js, always_dict=True)
    except Exception:  # noqa: BLE001 - a broken job.star only loses that job's parameters
        return []
    df = blocks.get("joboptions_values")
    if df is None or not hasattr(df, "columns"):
        return []
    keys, vals = _col(df, "rlnJobOptionVariable"), _col(df, "rlnJobOptionValue")
    return list(zip(keys, vals)) if keys and vals else []


def _read_relion(path):
    import starfile

    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # noqa: BLE001 - any parser failure is a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a readable STAR file ({first})") from None
    procs = blocks.get("pipeline_processes")
    if procs is None or not hasattr(procs, "columns") or len(procs) == 0:
        raise InputError(f"{path}: a RELION pipeline STAR needs a data_pipeline_processes loop "
                         f"with at least one job")
    names = _col(procs, "rlnPipeLineProcessName")
    if names is None:
        raise InputError(f"{path}: data_pipeline_processes has no _rlnPipeLineProcessName column")
    aliases = _col(procs, "rlnPipeLineProcessAlias") or ["None"] * len(names)
    types = _col(procs, "rlnPipeLineProcessTypeLabel")
    if types is None:
        t3 = _col(procs, "rlnPipeLineProcessType") or [""] * len(names)
        types = [RELION3_TYPES.get(int(t), t) if t.lstrip("-").isdigit() else t for t in t3]
    status = _col(procs, "rlnPipeLineProcessStatusLabel")
    if status is None:
        s3 = _col(procs, "rlnPipeLineProcessStatus") or [""] * len(names)
        status = [RELION3_STATUS.get(int(s), s) if s.lstrip("-").isdigit() else s for s in s3]
    jobs, ids, notes = [], set(), []
    for name, alias, kind, st in zip(names, aliases, types, status):
        if name in ids:
            notes.append(f"Job {name} appears twice; the second was ignored.")
            continue
        ids.add(name)
        label = alias if alias and alias != "None" else name
        jobs.append(Job(name, label, kind, st, _job_options(path, name)))
    found = sum(1 for j in jobs if j.params)
    if found:
        notes.append(f"The parameters of {found} of the {len(jobs)} jobs were read from their "
                     f"job.star files next to the pipeline (not part of its SHA-256).")
    else:
        notes.append("No job.star file was found next to the pipeline (in each job's folder): "
                     "the jobs' parameters are not shown.")

    def pairs(block, a, b):
        df = blocks.get(block)
        if df is None or not hasattr(df, "columns") or len(df) == 0:
            return []
        x, y = _col(df, a), _col(df, b)
        if x is None or y is None:
            raise InputError(f"{path}: data_{block} lacks the _{a} or _{b} column")
        return list(zip(x, y))

    inputs = pairs("pipeline_input_edges", "rlnPipeLineEdgeFromNode", "rlnPipeLineEdgeProcess")
    outputs = pairs("pipeline_output_edges", "rlnPipeLineEdgeProcess", "rlnPipeLineEdgeToNode")
    writer = {}
    dangling = []
    for job, node in outputs:
        if job not in ids:
            dangling.append(f"{job} (writes {node})")
            continue
        writer.setdefault(node, []).append(job)
    raw, outside = [], []
    for node, job in inputs:
        if job not in ids:
            dangling.append(f"{job} (reads {node})")
            continue
        if node not in writer:
            outside.append(node)
        for w in writer.get(node, []):
            if w == job:
                notes.append(f"Job {job} reads the file it writes ({node}).")
            else:
                raw.append((w, job, node))
    if outside:
        notes.append(f"{len(outside)} file(s) read by jobs are written by no job of the "
                     f"pipeline (inputs from outside it).")
    if dangling:
        notes.append(f"{len(dangling)} edge(s) name a job that is not in "
                     f"data_pipeline_processes: {'; '.join(dangling[:10])}"
                     f"{' …' if len(dangling) > 10 else ''}.")
    return jobs, _merge_edges(raw), notes, len(dangling)


def read_workflow(path: str) -> Workflow:
    """Read a Scipion workflow JSON or a RELION pipeline STAR (see the module docstring)."""
    text = read_small_text(path, MAX_BYTES, "a workflow (Scipion JSON or RELION STAR)")
    head = text.lstrip("\ufeff \t\r\n")
    if head[:1] in ("[", "{"):
        fmt = SCIPION
        jobs, edges, notes, dangling = _read_scipion(path, text)
    elif re.search(r"^\s*data_pipeline_processes\b", text, re.MULTILINE):
        fmt = RELION
        jobs, edges, notes, dangling = _read_relion(path)
    else:
        raise InputError(f"{path}: neither a Scipion workflow JSON (a list of protocols) nor a "
                         f"RELION pipeline STAR (data_pipeline_processes)")
    return Workflow(os.path.abspath(path), sha256_of(path), fmt, jobs, edges, notes, dangling)
