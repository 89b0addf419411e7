"""The one entry point, cryovalid.validate(): what every front end calls."""
import json

import pytest

import cryovalid
from cryovalid import Inputs, Options, validate
from cryovalid.errors import InputError


def _numbers(rep):
    return {it["id"]: it["metrics"] for it in rep["items"]}


@pytest.mark.slow
def test_validate_twice_in_one_process_silently(sim_file, tmp_path, capsys):
    path, t = sim_file
    steps = []
    opts = Options(threshold=t, resolution=4.0, formats=("json",))
    a = validate(Inputs(path), opts, store=str(tmp_path / "a"),
                 progress=lambda label, seconds, status="": steps.append(label))
    b = validate(Inputs(path), opts, store=str(tmp_path / "b"))
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # the library prints nothing
    assert _numbers(a) == _numbers(b)
    assert json.loads((tmp_path / "a" / "report.json").read_text())["score"] == a["score"]
    assert steps[0].startswith("Masks") and any(s.startswith("0.h") for s in steps)
    assert cryovalid.validate is validate


def test_validate_raises_on_bad_input_instead_of_exiting(tmp_path):
    with pytest.raises(InputError, match="does not exist|not found|no such"):
        validate(Inputs(str(tmp_path / "missing.mrc")), store=str(tmp_path / "out"))
    with pytest.raises(InputError, match="unknown format"):
        validate(Inputs("x.mrc"), Options(formats=("docx",)), store=str(tmp_path / "out"))
    with pytest.raises(ValueError, match="store"):
        validate(Inputs("x.mrc"))


def test_validate_refuses_a_folder_holding_another_report(sim_file, tmp_path):
    path, t = sim_file
    opts = Options(threshold=t, formats=("json",))
    validate(Inputs(path), opts, store=str(tmp_path / "out"))
    with pytest.raises(InputError, match="already holds a report"):
        validate(Inputs(path), opts, store=str(tmp_path / "out"))


def test_a_bad_worker_count_is_one_line_exit_2(sim_file, tmp_path, capsys, monkeypatch):
    from cryovalid import cli

    monkeypatch.setenv("CRYOVALID_WORKERS", "two")
    code = cli.main(["report", sim_file[0], "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "CRYOVALID_WORKERS" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()  # nothing was started


def test_levels_leave_out_what_was_not_asked_for(sim_file, tmp_path):
    """--levels A on a map without a model grades nothing: refused in one line. With a model,
    Level 0 is given but not asked (its items are not_run with that reason, in no score)."""
    path, t = sim_file
    with pytest.raises(InputError, match="nothing to grade with --levels A: level A needs"):
        validate(Inputs(path), Options(threshold=t, formats=("json",), levels=("a",)),
                 store=str(tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()
    rep = validate(Inputs(path, model="examples/5me2.pdb.gz"),
                   Options(threshold=t, formats=("json",), levels=("a",)),
                   store=str(tmp_path / "out"))
    states = {lv["id"]: lv["state"] for lv in rep["context"]["levels"]}
    assert states["0"] == "not_asked" and states["A"] == "graded"
    assert states["1"] == "not_given" and states["5"] == "not_given"
    level0 = [it for it in rep["items"] if it["id"].startswith("0.")]
    assert level0 and all(it["status"] == "not_run" for it in level0)
    assert "--levels A" in level0[0]["reason"]
    assert rep["levels"] == ["A"]
    assert {it["id"][0] for it in rep["items"] if it["status"] != "not_run"} == {"A"}


def test_levels_are_checked_before_any_work(tmp_path, monkeypatch):
    from cryovalid import registry
    from cryovalid.api import check_levels

    assert check_levels(None) is None
    assert check_levels("a,0") == ("0", "A")  # report order, upper case
    with pytest.raises(InputError, match="unknown level"):
        validate(Inputs("x.mrc"), Options(levels=("7",)), store=str(tmp_path / "o"))
    # every level has items now: a version without Level 5's is simulated
    monkeypatch.setattr(registry, "levels_with_items",
                        lambda: {"0", "1", "2", "3", "4", "A", "W", "O"})
    with pytest.raises(InputError, match="no items in this version"):
        check_levels(("0", "5"))
    assert not (tmp_path / "o").exists()


def test_names_given_for_the_inputs_are_what_the_report_shows(sim_file, tmp_path):
    """The service stores uploads as map.mrc, model.pdb …; the report shows the names given."""
    path, t = sim_file
    rep = validate(Inputs(path, model="examples/5me2.pdb.gz",
                          names={"map": "my map.mrc", "model": "fitted.pdb"}),
                   Options(threshold=t, formats=("json",), levels=("0",)),
                   store=str(tmp_path / "out"))
    assert rep["inputs"]["map_name"] == "my map.mrc" and rep["inputs"]["map"] == path
    assert rep["inputs"]["model"]["name"] == "fitted.pdb"


@pytest.mark.slow
def test_max_particles_analyses_a_subset_and_says_so(tmp_path):
    """validate(max_particles=N): Level 3 analyses N of the particles (seeded), the report's
    particles input gives both counts and says why; 0 analyses all."""
    from service_helpers import BLOB_THRESHOLD, blob_particles, write_blob_map

    blob = write_blob_map(tmp_path / "blob.mrc")
    star, _, classes = blob_particles(tmp_path)
    reps = {n: validate(Inputs(blob, classes=classes, particles=star),
                        Options(threshold=BLOB_THRESHOLD, resolution=8.0, formats=("json",),
                                levels=("3",), max_particles=n), store=str(tmp_path / f"r{n}"))
            for n in (20, 0)}
    part = reps[20]["inputs"]["particles"]
    assert (part["n_particles"], part["n_given"]) == (20, 40)
    assert any("20 of the 40 particles" in n for n in part["notes"])
    items = {i["id"]: i for i in reps[20]["items"]}
    assert items["3.a"]["metrics"]["n_particles"] == 20
    assert reps[0]["inputs"]["particles"]["n_particles"] == 40
