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
