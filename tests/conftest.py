import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("CRYOVALID_WORKERS", "2")

import simulate  # noqa: E402


@pytest.fixture(scope="session")
def shared_real():
    """Path of ../shared/data/real; the test is skipped in a user's clone that lacks it."""
    if not os.path.isdir(simulate.SHARED_REAL):
        pytest.skip("../shared/data/real not present (user clone): real-data test skipped")
    return simulate.SHARED_REAL


@pytest.fixture(scope="session")
def atoms():
    return simulate.load_atoms()


@pytest.fixture(scope="session")
def clean_map(atoms):
    """5me2 haemoglobin at 1.2 Å/voxel, 4 Å low-pass, B = 40 Å², 2 % noise, 25 Å padding."""
    return simulate.simulate(atoms=atoms, voxel_size=1.2, resolution=4.0, bfactor=40.0,
                             noise=0.02, padding=25.0)


@pytest.fixture(scope="session")
def sim_file(tmp_path_factory, clean_map):
    """(path, threshold) of the clean simulated map written as an MRC file."""
    vol, ts, origin = clean_map
    p = tmp_path_factory.mktemp("in") / "sim.mrc"
    simulate.write_mrc(p, vol, ts, origin)
    return str(p), threshold_for(vol)


def store_artefacts(res, out_dir):
    """Write an item result's artefacts as the pipeline does (items never open files)."""
    from cryovalid.store import FolderStore

    store = FolderStore(str(out_dir))
    return [store.write(a) for a in res.artefacts]


def threshold_for(vol, fraction=0.03):
    """A threshold leaving ``fraction`` of the box above it (a sensible visual contour)."""
    return float(np.quantile(vol, 1.0 - fraction))


@pytest.fixture(autouse=True, scope="session")
def _every_report_json_matches_the_schema():
    """Every report.json written during the suite is validated against the shipped schema."""
    from cryovalid.report import render
    import schema_check

    original = render.write_json

    def write_and_validate(report, out_dir):
        path = original(report, out_dir)
        schema_check.validate_file(path)
        return path

    render.write_json = write_and_validate
    render.WRITERS["json"] = write_and_validate
    yield
    render.write_json = original
    render.WRITERS["json"] = original
