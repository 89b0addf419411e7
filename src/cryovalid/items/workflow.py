"""W.a Workflow: the image-processing workflow that produced the map, as a graph of its jobs.

Input: a Scipion workflow JSON or a RELION ``default_pipeline.star`` (io/workflow.py). Nodes are
the jobs (protocols), edges the inputs each job takes from another. The jobs are layered by
topological generation (a job's layer is one more than the largest layer of the jobs it reads
from: the longest path from a first job, as networkx's ``topological_generations``) and ordered
within a layer by the mean position of their inputs (one barycentre sweep, fewer crossings).
A cycle (impossible in a real pipeline) is broken where it is met and so noted. Not evaluable
(no automatic criteria), as in the reference (vrs_level1_A_O_W.md §4).
"""
from __future__ import annotations

import os
import sys

from cryovalid.items.base import Fact, Table, new_result

ID = "W.a"
LEVEL = "W"
TITLE = "Workflow"
SECTION = "Level W analysis"
REQUIRES = ("workflow",)

EXPLANATION = (
    "The workflow that produced the map, as given by the user (a Scipion workflow or a RELION "
    "pipeline): each box is a job (protocol), each arrow an input a job takes from another. It "
    "documents how the map was obtained; there is nothing to evaluate automatically.")
CRITERIA = ""  # not evaluable: shown "OK (no automatic criteria)" and counted in no score


def layers(ids: list, edges: list):
    """(layer per id, order within its layer per id, ids in cycles) for the directed graph
    ``edges`` [(from, to, ...)] on ``ids``. Kahn's algorithm; when only jobs on a cycle are
    left, the one with the fewest unplaced inputs (first in file order) is placed next."""
    preds = {i: [] for i in ids}
    succs = {i: [] for i in ids}
    for a, b, *_ in edges:
        preds[b].append(a)
        succs[a].append(b)
    left = {i: len(preds[i]) for i in ids}
    placed, layer, cyclic = [], {}, []
    ready = [i for i in ids if left[i] == 0]
    order = {i: n for n, i in enumerate(ids)}
    while len(placed) < len(ids):
        if not ready:  # a cycle: break it
            rest = [i for i in ids if i not in layer]
            pick = min(rest, key=lambda i: (left[i], order[i]))
            cyclic.append(pick)
            ready = [pick]
        i = ready.pop(0)
        if i in layer:
            continue
        layer[i] = 1 + max((layer[p] for p in preds[i] if p in layer), default=-1)
        placed.append(i)
        for s in succs[i]:
            left[s] -= 1
            if left[s] == 0 and s not in layer:
                ready.append(s)
    # within a layer: by the mean position of the inputs (file order for the first layer)
    pos = {}
    for lv in range(max(layer.values(), default=-1) + 1):
        row = [i for i in ids if layer[i] == lv]
        key = {}
        for i in row:
            ps = [pos[p] for p in preds[i] if p in pos]
            key[i] = (sum(ps) / len(ps) if ps else float(row.index(i)), order[i])
        for n, i in enumerate(sorted(row, key=lambda i: key[i])):
            pos[i] = n
    return layer, pos, cyclic


def run(ctx):
    res = new_result(sys.modules[__name__])
    wf = ctx.workflow
    ids = [j.id for j in wf.jobs]
    layer, pos, cyclic = layers(ids, wf.edges)
    n_layers = 1 + max(layer.values(), default=-1)
    inputs_of = {i: [] for i in ids}
    for a, b, _ in wf.edges:
        inputs_of[b].append(a)
    label = {j.id: j.label for j in wf.jobs}
    m = res.metrics
    m["n_jobs"] = len(ids)
    m["n_edges"] = len(wf.edges)
    m["n_layers"] = n_layers
    m["n_first_jobs"] = sum(1 for i in ids if not inputs_of[i])
    m["n_dangling_references"] = wf.dangling
    m["has_cycle"] = bool(cyclic)
    res.facts += [
        Fact("Workflow file", os.path.basename(wf.path), "", "{}"),
        Fact("Workflow SHA-256", wf.sha256, "", "{}"),
        Fact("Format", wf.format, "", "{}"),
        Fact("Jobs", len(ids), "", "{}"),
        Fact("Dependencies", len(wf.edges), "", "{}"),
        Fact("Layers", n_layers, "", "{}"),
    ]
    res.tables.append(Table(
        title="Jobs",
        columns=["ID", "Label", "Type", "Status", "Layer", "Inputs from"],
        rows=[[j.id, j.label, j.kind, j.status, layer[j.id] + 1,
               ", ".join(label[a] for a in inputs_of[j.id]) or "—"] for j in wf.jobs],
        formats=["{}", "{}", "{}", "{}", "{}", "{}"]))
    params = [[j.label, k, v] for j in wf.jobs for k, v in j.params]
    if params:
        res.tables.append(Table(title="Parameters of each job",
                                columns=["Job", "Parameter", "Value"], rows=params,
                                formats=["{}", "{}", "{}"]))
    if cyclic:
        res.notes.append(f"The dependencies form a cycle (a job depends on itself through "
                         f"others); it was broken at: {', '.join(label[i] for i in cyclic)}.")
    res.data.update({
        "ids": ids, "labels": [label[i] for i in ids], "kinds": [j.kind for j in wf.jobs],
        "layer": [layer[i] for i in ids], "position": [pos[i] for i in ids],
        "edges": [(a, b) for a, b, _ in wf.edges], "format": wf.format,
    })
    return res.finish()
