"""Every real map shipped in ../shared/data/real, run with the defaults (automatic threshold),
gives a report with no failed item, a threshold that shows one body, and no false centring
warning."""
import json
import os

import pytest

from cryovalid import cli

# (folder, file, resolution or None): the resolution each entry reports (SOURCE.md)
REAL = [
    ("EMD-3488", "emd_3488.map", 3.2),
    ("EMD-3488", "emd_3488_contour_mask.mrc", 3.2),
    ("EMD-11007", "emd_11007.map", 2.9),
    ("EMD-1997", "emd_1997.map", 7.0),
    ("EMD-21457", "emd_21457_seg.mrc", 3.2),
    ("EMD-21457", "emd_21457_seg_nstart.mrc", 3.2),
    ("EMD-21457", "emd_21457_seg_orig0.mrc", 3.2),
    ("EMD-2566", "2566_3J6B_9.mrc", 3.2),
    ("EMD-30342", "390_emd_30342_A_z4.mrc", 3.9),
    ("EMD-3197", "emd_3197.map.gz", None),
]


@pytest.mark.slow
@pytest.mark.parametrize("folder, name, resolution", REAL, ids=[f"{f}/{n}" for f, n, _ in REAL])
def test_real_map_default_report(shared_real, tmp_path, capsys, folder, name, resolution):
    out = tmp_path / "out"
    args = ["report", os.path.join(shared_real, folder, name), "--out", str(out),
            "--formats", "json", "--quiet"]
    if resolution is not None:
        args += ["--resolution", str(resolution)]
    code = cli.main(args)
    err = capsys.readouterr().err
    assert code == 0, err
    rep = json.loads((out / "report.json").read_text())
    items = {i["id"]: i for i in rep["items"]}
    failed = [(i["id"], i["reason"]) for i in rep["items"] if i["status"] == "failed"]
    assert not failed
    assert rep["score"]["evaluable"] >= 3
    # the automatic threshold shows one body, so 0.b passes, and says how it was chosen
    assert items["0.b"]["status"] == "ok", items["0.b"]["warnings"]
    assert rep["inputs"]["threshold_estimate"]["method"].startswith("automatic")
    # centred maps: the centre of mass of the molecule is central
    assert not any("centre of mass" in w for w in items["0.a"]["warnings"])


def test_anisotropic_microed_map_is_refused(shared_real, tmp_path, capsys):
    code = cli.main(["report", os.path.join(shared_real, "EMD-3001", "emd_3001.map.gz"),
                     "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "non-orthogonal" in err and len(err.splitlines()) == 1
