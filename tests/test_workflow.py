"""W.a workflow: the graphs of a small Scipion workflow JSON and of a RELION pipeline STAR have
the right jobs and edges; cycles and dangling references are notes; bad files one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cryovalid.context import Context
from cryovalid.errors import InputError
from cryovalid.io.maps import Map
from cryovalid.io.workflow import RELION, SCIPION, read_workflow
from cryovalid.items import workflow as item
from cryovalid.items.base import run_item

SCIPION_WF = [
    {"object.className": "ProtImportMovies", "object.id": "2", "object.label": "import movies",
     "object.comment": "", "runName": None, "samplingRate": 1.1, "voltage": 300.0,
     "filesPath": "/data/movies"},
    {"object.className": "ProtMotionCorr", "object.id": "45", "object.label": "motioncor2",
     "inputMovies": "2.outputMovies", "patchX": 5, "patchY": 5},
    {"object.className": "CistemProtCTFFind", "object.id": "97", "object.label": "ctffind4",
     "inputMicrographs": "45.outputMicrographsDoseWeighted", "lowRes": 30.0},
    {"object.className": "SphireProtCRYOLOPicking", "object.id": "150",
     "object.label": "cryolo picking", "inputMicrographs": "45.outputMicrographsDoseWeighted",
     "boxSize": 200},
    {"object.className": "XmippProtExtractParticles", "object.id": "210",
     "object.label": "extract", "inputCoordinates": "150.outputCoordinates",
     "ctfRelations": "97.outputCTF", "inputMicrographs": "45.outputMicrographsDoseWeighted",
     "inputThreshold": "0.5", "downFactor": 2.0},
    {"object.className": "ProtUnionSet", "object.id": "300", "object.label": "join sets",
     "inputSets": ["210.outputParticles", "210.outputParticlesBad"]},
]

RELION_STAR = """
# version 30001

data_pipeline_general

_rlnPipeLineJobCounter                       6

# version 30001

data_pipeline_processes

loop_
_rlnPipeLineProcessName #1
_rlnPipeLineProcessAlias #2
_rlnPipeLineProcessTypeLabel #3
_rlnPipeLineProcessStatusLabel #4
Import/job001/       None relion.importmovies  Succeeded
MotionCorr/job002/   None relion.motioncorr.own  Succeeded
CtfFind/job003/      ctf_run relion.ctffind.ctffind4  Succeeded
AutoPick/job004/     None relion.autopick.log  Succeeded
Extract/job005/      None relion.extract  Failed

# version 30001

data_pipeline_nodes

loop_
_rlnPipeLineNodeName #1
_rlnPipeLineNodeTypeLabel #2
Import/job001/movies.star MicrographMovieData.star.relion
MotionCorr/job002/corrected_micrographs.star MicrographData.star.relion.motioncorr
CtfFind/job003/micrographs_ctf.star MicrographData.star.relion.ctf
AutoPick/job004/autopick.star MicrographsCoords.star.relion.autopick
Extract/job005/particles.star ParticlesData.star.relion

# version 30001

data_pipeline_input_edges

loop_
_rlnPipeLineEdgeFromNode #1
_rlnPipeLineEdgeProcess #2
Import/job001/movies.star MotionCorr/job002/
MotionCorr/job002/corrected_micrographs.star CtfFind/job003/
CtfFind/job003/micrographs_ctf.star AutoPick/job004/
CtfFind/job003/micrographs_ctf.star Extract/job005/
AutoPick/job004/autopick.star Extract/job005/
/elsewhere/gain.mrc MotionCorr/job002/

# version 30001

data_pipeline_output_edges

loop_
_rlnPipeLineEdgeProcess #1
_rlnPipeLineEdgeToNode #2
Import/job001/ Import/job001/movies.star
MotionCorr/job002/ MotionCorr/job002/corrected_micrographs.star
CtfFind/job003/ CtfFind/job003/micrographs_ctf.star
AutoPick/job004/ AutoPick/job004/autopick.star
Extract/job005/ Extract/job005/particles.star
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def small_ctx(wf):
    vol = np.zeros((16, 16, 16), np.float32)
    vol[6:10, 6:10, 6:10] = 1
    return Context.of(map=Map(vol, 1.0), threshold=0.5, workflow=wf)


def test_scipion_graph(tmp_path):
    wf = read_workflow(write(tmp_path, "workflow.json", json.dumps(SCIPION_WF, indent=2)))
    assert wf.format == SCIPION and len(wf.sha256) == 64
    assert [j.id for j in wf.jobs] == ["2", "45", "97", "150", "210", "300"]
    assert [j.label for j in wf.jobs][:2] == ["import movies", "motioncor2"]
    assert wf.jobs[1].kind == "ProtMotionCorr"
    assert sorted((a, b) for a, b, _ in wf.edges) == sorted([
        ("2", "45"), ("45", "97"), ("45", "150"), ("150", "210"), ("45", "210"), ("210", "300")])
    # "0.5" is a number, not a pointer; ctfRelations holds no "input": no edge 97 -> 210
    via = {(a, b): v for a, b, v in wf.edges}
    assert via[("210", "300")] == "outputParticles, outputParticlesBad"
    assert ("patchX", "5") in wf.jobs[1].params and wf.dangling == 0 and not wf.notes
    res = run_item(item, small_ctx(wf))
    assert res.status == "ok" and not res.evaluable and res.criteria == ""
    m = res.metrics
    assert (m["n_jobs"], m["n_edges"], m["n_layers"], m["has_cycle"]) == (6, 6, 5, False)
    layer = dict(zip(res.data["ids"], res.data["layer"]))
    assert layer == {"2": 0, "45": 1, "97": 2, "150": 2, "210": 3, "300": 4}
    jobs = res.tables[0]
    assert jobs.rows[4][-1] == "cryolo picking, motioncor2"  # in the order of its input keys
    params = res.tables[1]
    assert ["motioncor2", "inputMovies", "2.outputMovies"] in params.rows


def test_relion_graph(tmp_path):
    wf = read_workflow(write(tmp_path, "default_pipeline.star", RELION_STAR))
    assert wf.format == RELION
    assert [j.id for j in wf.jobs] == ["Import/job001/", "MotionCorr/job002/", "CtfFind/job003/",
                                       "AutoPick/job004/", "Extract/job005/"]
    assert wf.jobs[2].label == "ctf_run" and wf.jobs[4].status == "Failed"
    assert sorted((a, b) for a, b, _ in wf.edges) == sorted([
        ("Import/job001/", "MotionCorr/job002/"), ("MotionCorr/job002/", "CtfFind/job003/"),
        ("CtfFind/job003/", "AutoPick/job004/"), ("CtfFind/job003/", "Extract/job005/"),
        ("AutoPick/job004/", "Extract/job005/")])
    assert any("outside" in n for n in wf.notes)  # the gain reference
    assert any("No job.star" in n for n in wf.notes) and all(not j.params for j in wf.jobs)
    assert [t.title for t in run_item(item, small_ctx(wf)).tables] == ["Jobs"]
    res = run_item(item, small_ctx(wf))
    assert res.status == "ok"
    layer = dict(zip(res.data["ids"], res.data["layer"]))
    assert layer["Extract/job005/"] == 4 and layer["AutoPick/job004/"] == 3
    from cryovalid.figures.workflow import draw_workflow

    drawing = draw_workflow(res, small_ctx(wf))
    assert [f.path for f in drawing.figures] == ["figures/workflow.png"]
    assert drawing.artefacts[0].png[:4] == b"\x89PNG"


JOB_STAR = """
# version 30001

data_job

_rlnJobTypeLabel             relion.ctffind.ctffind4
_rlnJobIsContinue                       0

# version 30001

data_joboptions_values

loop_
_rlnJobOptionVariable #1
_rlnJobOptionValue #2
   box        512
 dfmax      50000
fn_ctffind_exe "/usr/local/bin/ctffind 4.1"
"""


def test_relion_job_parameters_from_job_star(tmp_path):
    (tmp_path / "CtfFind" / "job003").mkdir(parents=True)
    (tmp_path / "CtfFind" / "job003" / "job.star").write_text(JOB_STAR)
    wf = read_workflow(write(tmp_path, "default_pipeline.star", RELION_STAR))
    ctf = wf.jobs[2]
    assert ctf.params == [("box", "512"), ("dfmax", "50000"),
                          ("fn_ctffind_exe", "/usr/local/bin/ctffind 4.1")]
    assert all(not j.params for j in wf.jobs if j is not ctf)
    assert any("1 of the 5 jobs" in n for n in wf.notes)
    res = run_item(item, small_ctx(wf))
    assert ["ctf_run", "dfmax", "50000"] in res.tables[1].rows


def test_relion3_numeric_types(tmp_path):
    text = RELION_STAR.replace("_rlnPipeLineProcessTypeLabel", "_rlnPipeLineProcessType")
    text = text.replace("_rlnPipeLineProcessStatusLabel", "_rlnPipeLineProcessStatus")
    for label, num in (("relion.importmovies", "0"), ("relion.motioncorr.own", "1"),
                       ("relion.ctffind.ctffind4", "2"), ("relion.autopick.log", "4"),
                       ("relion.extract", "5"), ("Succeeded", "2"), ("Failed", "3")):
        text = text.replace(f" {label} ", f" {num} ")
    wf = read_workflow(write(tmp_path, "p3.star", text))
    assert [j.kind for j in wf.jobs] == ["Import", "Motion correction", "CTF estimation",
                                         "Auto-picking", "Particle extraction"]
    assert wf.jobs[4].status == "Failed" and len(wf.edges) == 5


def test_cycle_and_dangling_are_notes(tmp_path):
    wf_json = [
        {"object.id": "1", "object.label": "a", "object.className": "A", "inputX": "3.out"},
        {"object.id": "2", "object.label": "b", "object.className": "B", "inputX": "1.out"},
        {"object.id": "3", "object.label": "c", "object.className": "C", "inputX": "2.out",
         "inputY": ["99.outputVolume"]},
        {"object.id": "4", "object.label": "d", "object.className": "D", "inputX": "4.out"},
    ]
    wf = read_workflow(write(tmp_path, "cyc.json", json.dumps(wf_json)))
    assert wf.dangling == 1 and any("not in the workflow" in n and "99" in n for n in wf.notes)
    assert any("names itself" in n for n in wf.notes)
    assert sorted((a, b) for a, b, _ in wf.edges) == [("1", "2"), ("2", "3"), ("3", "1")]
    res = run_item(item, small_ctx(wf))
    assert res.status == "ok" and res.metrics["has_cycle"] is True
    assert res.metrics["n_dangling_references"] == 1
    assert any("cycle" in n for n in res.notes)
    assert sorted(res.data["layer"]) == [0, 0, 1, 2]
    from cryovalid.figures.workflow import draw_workflow

    assert len(draw_workflow(res, small_ctx(wf)).figures) == 1


def test_relion_dangling_job(tmp_path):
    text = RELION_STAR.replace("AutoPick/job004/autopick.star Extract/job005/",
                               "AutoPick/job004/autopick.star Class2D/job009/")
    wf = read_workflow(write(tmp_path, "d.star", text))
    assert wf.dangling == 1 and any("Class2D/job009/" in n for n in wf.notes)
    assert ("AutoPick/job004/", "Extract/job005/") not in [(a, b) for a, b, _ in wf.edges]


@pytest.mark.parametrize("name, text, words", [
    ("a.json", "[{\"object.id\": 1,}]", "not valid JSON (line 1"),
    ("b.json", "{\"object.id\": \"1\"}", "list of protocols, not a dict"),
    ("c.json", "[]", "lists no protocols"),
    ("d.json", "[{\"object.label\": \"x\"}]", "protocol 1 is not an object"),
    ("e.txt", "hello world\n", "neither a Scipion workflow JSON"),
    ("f.star", "data_pipeline_processes\n\nloop_\n_rlnPipeLineProcessAlias #1\nNone\n",
     "no _rlnPipeLineProcessName"),
])
def test_bad_files(tmp_path, name, text, words):
    with pytest.raises(InputError) as e:
        read_workflow(write(tmp_path, name, text))
    msg = str(e.value)
    assert words in msg and name in msg and "\n" not in msg


def test_empty_and_missing(tmp_path):
    with pytest.raises(InputError, match="empty"):
        read_workflow(write(tmp_path, "z.json", ""))
    with pytest.raises(InputError, match="no such file"):
        read_workflow(str(tmp_path / "none.json"))


def test_layering_known_answer():
    ids = list("abcdef")
    edges = [("a", "c"), ("b", "c"), ("c", "d"), ("a", "d"), ("d", "e"), ("b", "f")]
    layer, pos, cyc = item.layers(ids, edges)
    assert layer == {"a": 0, "b": 0, "c": 1, "f": 1, "d": 2, "e": 3} and cyc == []
    assert sorted(pos[i] for i in ids if layer[i] == 1) == [0, 1]
