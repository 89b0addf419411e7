"""Every real map shipped in ../shared/data/real gives a report with no failed item."""
import json
import os

import pytest

from cryovalid import cli

# (folder, file, threshold, resolution or None). Thresholds: the author's contour where known
# (EMD-1997), otherwise a level that shows the molecule as one body (checked by eye).
REAL = [
    ("EMD-3488", "emd_3488.map", 0.07, 3.2),
    ("EMD-3488", "emd_3488_contour_mask.mrc", 0.5, 3.2),
    ("EMD-11007", "emd_11007.map", 2.5, 2.9),
    ("EMD-1997", "emd_1997.map", 1.0, 7.0),
    ("EMD-21457", "emd_21457_seg.mrc", 0.7, 3.2),
    ("EMD-21457", "emd_21457_seg_nstart.mrc", 0.7, 3.2),
    ("EMD-21457", "emd_21457_seg_orig0.mrc", 0.7, 3.2),
    ("EMD-2566", "2566_3J6B_9.mrc", 0.2, 3.2),
    ("EMD-30342", "390_emd_30342_A_z4.mrc", 0.04, 3.9),
    ("EMD-3197", "emd_3197.map.gz", 3.0, None),
]


@pytest.mark.slow
@pytest.mark.parametrize("folder, name, threshold, resolution", REAL,
                         ids=[f"{f}/{n}" for f, n, *_ in REAL])
def test_real_map_report_has_no_failed_item(shared_real, tmp_path, capsys, folder, name,
                                            threshold, resolution):
    args = ["report", os.path.join(shared_real, folder, name), "--threshold", str(threshold),
            "--out", str(tmp_path), "--formats", "json,html", "--quiet"]
    if resolution is not None:
        args += ["--resolution", str(resolution)]
    code = cli.main(args)
    err = capsys.readouterr().err
    assert code == 0, err
    rep = json.loads((tmp_path / "report.json").read_text())
    failed = [(i["id"], i["reason"]) for i in rep["items"] if i["status"] == "failed"]
    assert not failed
    assert rep["score"]["evaluable"] >= 3


def test_anisotropic_microed_map_is_refused(shared_real, tmp_path, capsys):
    code = cli.main(["report", os.path.join(shared_real, "EMD-3001", "emd_3001.map.gz"),
                     "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "non-orthogonal" in err and len(err.splitlines()) == 1
