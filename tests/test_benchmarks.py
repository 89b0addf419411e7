"""The benchmarks still run on the current API (make bench is not part of CI's timed runs, so a
broken benchmark would otherwise go unnoticed). Each runs on the shipped example map Fourier-
cropped to 72³ (the same box at 1.46 Å; a third of the 100³ map's time) instead of the 240³
bench maps; only that it completes is checked, not its times."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the compute threads the test run was given (make test: one per pytest process)
ENV = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example map Fourier-cropped to 72³ (tests/simulate.small_example), as MRC."""
    from simulate import small_example

    return small_example(tmp_path_factory.mktemp("bench"))[0]


def _run(*args):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("script,args", [
    ("bench_level0.py", ["0.07", "3.2"]),
    ("bench_localmaps.py", ["--threshold", "0.07", "--resolution", "3.2"]),
    ("bench_hand.py", ["0.07", "3.2"]),
])
def test_map_benchmarks_run_on_the_example(script, args, example):
    out = _run(os.path.join("benchmarks", script), example, *args)
    assert "s" in out


@pytest.mark.slow
def test_level1_and_level_a_benchmarks_run(example):
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import bench_level1 as b; "
            f"b.MAP = {example!r}; sys.argv = ['bench_level1.py']; "
            "raise SystemExit(b.main())")
    out = _run("-c", code)
    assert "1.h" in out and "Level 1 items (total)" in out
    code = ("import sys; sys.path.insert(0, 'benchmarks'); sys.path.insert(0, 'tests'); "
            "import bench_level_a as b; from cryovalid.io.maps import read_map; "
            "from cryovalid.io.model import read_model; "
            f"t = b.level_a(read_map({example!r}), "
            f"read_model({os.path.join(ROOT, 'examples', '5me2.pdb.gz')!r}), 3.2, 0.07, False)")
    out = _run("-c", code)
    assert "A.g" in out and "Level A total" in out


@pytest.mark.slow
def test_level4_and_level5_benchmarks_run():
    """bench_level4 runs every Level 4 item the registry holds; bench_level5 the micrographs'
    steps and 5.a (small sizes here: only that they complete)."""
    out = _run(os.path.join("benchmarks", "bench_level4.py"), "120", "48")
    assert "4.f Overfitting detection" in out and "Level 4 items together" in out
    assert "status failed" not in out
    out = _run(os.path.join("benchmarks", "bench_level5.py"), "2", "1024", "48", "40")
    assert "5.a" in out
