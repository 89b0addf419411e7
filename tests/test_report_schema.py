"""report.json follows the JSON Schema shipped in the package (report/schema/report.schema.json),
and docs/report-json.md documents every field of it.

The conftest hook validates every report.json the suite writes; here: the demo report itself,
and reports broken on purpose, so that the schema is shown to reject what it must."""
import copy
import os
import re

import pytest

import schema_check
from cryovalid import cli
from cryovalid.report import model

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEMO = os.path.join(ROOT, "examples", "emd_3488.map.gz")


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    """The report of `make demo` (json only: the numbers are those of the full report)."""
    out = tmp_path_factory.mktemp("demo")
    code = cli.main(["report", DEMO, "--threshold", "0.07", "--resolution", "3.2", "--out",
                     str(out), "--formats", "json", "--quiet"])
    assert code == 0
    return out, schema_check.validate_file(out / "report.json")


@pytest.mark.slow
def test_demo_report_matches_schema(demo_report):
    out, rep = demo_report
    assert rep["schema_version"] == model.SCHEMA_VERSION
    assert rep["created"].endswith("+00:00")  # UTC, with its offset
    assert rep["inputs"]["voxel_size_A"] == 1.05  # float32 1.0499999237 written as meant
    by_id = {i["id"]: i for i in rep["items"]}
    # Level 1 was not asked for: its items are listed, not run, and not scored
    for item_id in ("1.a", "1.b"):
        assert by_id[item_id]["status"] == "not_run"
        assert "half maps" in by_id[item_id]["status_label"]
    assert rep["score"]["evaluable"] == sum(i["status"] in ("ok", "warnings")
                                            for i in rep["items"])
    # json only: no figure drawn (maps are still written, the binary mask as 8-bit)
    assert not (out / "figures").exists()
    assert rep["input_figures"] == [] and all(i["figures"] == [] for i in rep["items"])


@pytest.mark.slow
def test_schema_rejects_broken_reports(demo_report):
    _, rep = demo_report
    assert schema_check.errors(rep) == []

    def broken(change):
        r = copy.deepcopy(rep)
        change(r)
        return schema_check.errors(r)

    assert broken(lambda r: r.pop("schema_version"))
    assert broken(lambda r: r.update(created="2026-12-01T14:00:00"))  # no time zone
    assert broken(lambda r: r["items"][0]["metrics"].update(x=True))  # booleans go to flags
    assert broken(lambda r: r["items"][0]["flags"].update(x=1.0))
    assert broken(lambda r: r["items"][0].update(status="fine"))
    assert broken(lambda r: r["items"][0].update(status="ok", warnings=["w"]))
    assert broken(lambda r: r["inputs"].update(sha256="abc"))
    assert broken(lambda r: r.update(undocumented_field=1))
    assert broken(lambda r: r["inputs"].update(threshold_estimate={"threshold": "high"}))


def test_threshold_estimate_is_optional_and_described():
    est = {"threshold": 0.07, "noise_measured": True, "noise_centre": 0.0,
           "noise_sigma": 0.014, "n_sigma": 5.0, "noise_region": "10–20 Å around the molecule",
           "noise_voxels": 900000, "constant_value": None, "constant_fraction": 0.0,
           "fdr_threshold": 0.069, "method": "automatic", "checks": [
               {"name": "inside the map range", "passed": True, "detail": "0.07 < 0.9"}]}
    props = schema_check.SCHEMA["$defs"]["threshold_estimate"]["properties"]
    assert set(est) == set(props)
    sub = {"$defs": schema_check.SCHEMA["$defs"], "$ref": "#/$defs/threshold_estimate"}
    validator = schema_check.VALIDATOR.evolve(schema=sub)
    assert list(validator.iter_errors(est)) == []
    assert list(validator.iter_errors(dict(est, noise_voxels=-1)))
    assert list(validator.iter_errors(dict(est, checks=[{"name": "x", "passed": "yes"}])))


def test_docs_describe_every_field():
    """docs/report-json.md names every field the schema defines (top level, inputs, items,
    threshold_estimate, context levels, figures)."""
    doc = open(os.path.join(ROOT, "docs", "report-json.md"), encoding="utf-8").read()
    named = set(re.findall(r"`([A-Za-z_0-9]+)`", doc))
    s = schema_check.SCHEMA
    groups = {
        "top level": s["properties"],
        "inputs": s["$defs"]["inputs"]["properties"],
        "items": s["$defs"]["item"]["properties"],
        "threshold_estimate": s["$defs"]["threshold_estimate"]["properties"],
        "context levels": s["properties"]["context"]["properties"]["levels"]["items"][
            "properties"],
        "figures": s["$defs"]["figure"]["properties"],
        "toc": s["properties"]["toc"]["items"]["properties"],
    }
    missing = {g: sorted(set(p) - named) for g, p in groups.items() if set(p) - named}
    assert not missing, f"undocumented in docs/report-json.md: {missing}"
    assert f"`{model.SCHEMA_VERSION}`" in doc


def test_tidy_rounds_to_meaning():
    assert model.tidy_number(float(__import__("numpy").float32(1.05))) == 1.05
    assert model.tidy_number(18432.794634539) == 18432.8
    assert model.tidy_number(2.5783140252464157e-128) == 2.57831e-128
    assert model.tidy({"a": [0.1 + 0.2, True, 3]}) == {"a": [0.3, True, 3]}
    numbers, flags = model.split_flags({"x": 1.5, "ok": True, "none": None})
    assert numbers == {"x": 1.5, "none": None} and flags == {"ok": True}
