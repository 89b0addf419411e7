"""No global state: a report leaves the process as it found it, and two reports in one process
give the same numbers (what ``cryovalid.validate()`` needs to be called twice in one process or
from worker processes).

The report runs in a fresh interpreter, so that import-time side effects count too: the child
picks a non-Agg matplotlib backend and its own logging levels *before* importing cryovalid, has
no DISPLAY (the case where VTK must be steered to EGL), then imports every figure module, writes
two reports of one simulated map (the first also as PDF) and says what changed.
"""
import json
import logging
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import scipy.fft

import simulate
from conftest import threshold_for
from cryovalid.kernels import filterbank, fourier
from cryovalid.kernels import hand as helices

LOGGERS = ("weasyprint", "fontTools", "fontTools.subset")

CHILD = r"""
import json, logging, os, sys
import matplotlib
matplotlib.use("svg")  # a headless backend that is not Agg: cryovalid must not switch it
for name, level in zip(LOGGERS, (logging.INFO, logging.WARNING, logging.NOTSET)):
    logging.getLogger(name).setLevel(level)  # a caller's own logging setup
import vtk

def state():
    return {"environ": dict(os.environ), "backend": matplotlib.get_backend(),
            "levels": {n: logging.getLogger(n).level for n in LOGGERS},
            "vtk_warnings": int(vtk.vtkObject.GetGlobalWarningDisplay())}

before = state()
from cryovalid import cli
import cryovalid.figures.common, cryovalid.figures.fsc, cryovalid.figures.halfmaps
import cryovalid.figures.hand, cryovalid.figures.isosurface, cryovalid.figures.level0
import cryovalid.figures.localmaps, cryovalid.figures.slices
after_import = state()
mrc, threshold, out = sys.argv[1], sys.argv[2], sys.argv[3]
codes = []
for i, formats in enumerate(("json,html,pdf", "json,html")):
    codes.append(cli.main(["report", mrc, "--threshold", threshold, "--resolution", "6",
                           "--out", os.path.join(out, f"run{i + 1}"), "--formats", formats,
                           "--quiet"]))
print(json.dumps({"before": before, "after_import": after_import, "after": state(),
                  "codes": codes, "pyplot": "matplotlib.pyplot" in sys.modules}))
""".replace("LOGGERS", repr(LOGGERS))


def _without_run_facts(report):
    """The report less what may differ between two runs of the same input: the run's date
    and the seconds each step took."""
    if isinstance(report, dict):
        return {k: _without_run_facts(v) for k, v in report.items()
                if k not in ("created", "seconds", "timings_s")}
    if isinstance(report, list):
        return [_without_run_facts(v) for v in report]
    return report


# the child process writes two reports (one with a PDF): ~10 s, so these run in the full suite
slow_child = pytest.mark.slow


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two reports of one 48³ map (5me2 at 2 Å/voxel, 6 Å, B = 40 Å²) in one fresh process."""
    vol, ts, origin = simulate.simulate(voxel_size=2.0, resolution=6.0, bfactor=40.0,
                                        noise=0.02, padding=12.0)
    tmp = tmp_path_factory.mktemp("global_state")
    mrc = simulate.write_mrc(tmp / "sim.mrc", vol, ts, origin)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "VTK_DEFAULT_OPENGL_WINDOW", "MPLBACKEND", "CRYOVALID_NO_VTK")}
    env["CRYOVALID_WORKERS"] = os.environ.get("CRYOVALID_WORKERS", "1")
    proc = subprocess.run([sys.executable, "-c", CHILD, mrc, repr(threshold_for(vol)),
                           str(tmp)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), tmp


@slow_child
def test_reports_succeed(two_runs):
    st, tmp = two_runs
    assert st["codes"] == [0, 0]
    assert (tmp / "run1" / "report.pdf").read_bytes()[:5] == b"%PDF-"
    for run in ("run1", "run2"):  # headless figures, VTK's surface views among them
        assert (tmp / run / "figures" / "input_isosurface.png").stat().st_size > 1000


@pytest.mark.parametrize("stage", ["after_import", "after"])
@slow_child
def test_environment_unchanged(two_runs, stage):
    st, _ = two_runs
    before, now = st["before"]["environ"], st[stage]["environ"]
    changed = {k for k in set(before) | set(now) if before.get(k) != now.get(k)}
    assert not changed, f"os.environ changed {stage.replace('_', ' ')}: {sorted(changed)}"


@pytest.mark.parametrize("stage", ["after_import", "after"])
@slow_child
def test_matplotlib_backend_unchanged(two_runs, stage):
    st, _ = two_runs
    assert st["before"]["backend"] == "svg"
    assert st[stage]["backend"] == "svg"
    assert not st["pyplot"], "pyplot imported: figures must use Figure + FigureCanvasAgg"


@slow_child
def test_logging_levels_unchanged_by_the_pdf_writer(two_runs):
    st, _ = two_runs
    assert st["before"]["levels"] == {"weasyprint": logging.INFO, "fontTools": logging.WARNING,
                                      "fontTools.subset": logging.NOTSET}
    assert st["after"]["levels"] == st["before"]["levels"]


@slow_child
def test_vtk_warning_switch_restored(two_runs):
    st, _ = two_runs
    assert st["after"]["vtk_warnings"] == st["before"]["vtk_warnings"] == 1


@slow_child
def test_two_runs_identical(two_runs):
    _, tmp = two_runs
    r1, r2 = (json.loads((tmp / run / "report.json").read_text()) for run in ("run1", "run2"))
    metrics = {it["id"]: it["metrics"] for it in r1["items"] if it["status"] != "not_run"}
    assert sum(len(m) for m in metrics.values()) >= 20  # the comparison has numbers in it
    assert all(np.isfinite(v) for m in metrics.values() for v in m.values()
               if isinstance(v, float))
    assert _without_run_facts(r1) == _without_run_facts(r2)


# ---- FFT threads: a run-time setting --------------------------------------------------------

def test_workers_read_at_call_time(monkeypatch):
    monkeypatch.setenv("CRYOVALID_WORKERS", "3")
    assert fourier.workers() == 3
    monkeypatch.setenv("CRYOVALID_WORKERS", "1")
    assert fourier.workers() == 1
    monkeypatch.setenv("CRYOVALID_WORKERS", "0")
    assert fourier.workers() == (os.cpu_count() or 1)
    monkeypatch.delenv("CRYOVALID_WORKERS")
    assert fourier.workers() == (os.cpu_count() or 1)
    monkeypatch.setenv("CRYOVALID_WORKERS", "-1")  # as scipy.fft: every CPU
    assert fourier.workers() == (os.cpu_count() or 1)
    monkeypatch.setenv("CRYOVALID_WORKERS", "two")
    with pytest.raises(ValueError, match="CRYOVALID_WORKERS must be a whole number"):
        fourier.workers()


def test_using_workers_is_scoped_and_per_thread(monkeypatch):
    monkeypatch.setenv("CRYOVALID_WORKERS", "2")
    seen = {}
    with fourier.using_workers(5):
        assert fourier.workers() == 5
        with fourier.using_workers(7):
            assert fourier.workers() == 7
        assert fourier.workers() == 5
        t = threading.Thread(target=lambda: seen.setdefault("thread", fourier.workers()))
        t.start()
        t.join()
        with pytest.raises(RuntimeError):
            with fourier.using_workers(9):
                raise RuntimeError
        assert fourier.workers() == 5
    assert seen["thread"] == 2  # another thread keeps the default
    assert fourier.workers() == 2
    with pytest.raises(ValueError):
        with fourier.using_workers(2.5):
            pass


def test_every_fft_call_site_uses_the_setting(monkeypatch):
    calls = []
    for name in ("rfftn", "irfftn"):
        real = getattr(scipy.fft, name)

        def record(*args, _real=real, **kwargs):
            calls.append(kwargs.get("workers"))
            return _real(*args, **kwargs)
        monkeypatch.setattr(scipy.fft, name, record)
    vol = np.random.default_rng(0).standard_normal((16, 18, 20)).astype(np.float32)

    def run_all():
        calls.clear()
        fourier.irfft(fourier.rfft(vol), vol.shape)
        filterbank._irfftn(filterbank._rfftn(vol), vol.shape)
        helices.render_helix(6.0, 2.0, n_residues=8)
        return set(calls)

    monkeypatch.setenv("CRYOVALID_WORKERS", "3")
    assert run_all() == {3}
    with fourier.using_workers(1):
        assert run_all() == {1}
    assert len(calls) >= 6


def test_thread_count_changes_no_number():
    vol = np.random.default_rng(1).standard_normal((40, 36, 30)).astype(np.float32)
    with fourier.using_workers(1):
        f1 = fourier.rfft(vol)
        b1 = fourier.irfft(f1, vol.shape)
    with fourier.using_workers(3):
        f3 = fourier.rfft(vol)
        b3 = fourier.irfft(f1, vol.shape)
    assert f1.dtype == np.complex64 and np.array_equal(f1, f3)
    assert np.array_equal(b1, b3)


# ---- scoped quieting: restored after the last of overlapping calls ---------------------------

def test_pdf_logger_quieting_restores_after_interleaved_writes():
    from cryovalid.report import render

    lg = logging.getLogger("weasyprint")
    saved = lg.level
    try:
        lg.setLevel(logging.INFO)
        a, b = render._pdf_loggers_quiet(), render._pdf_loggers_quiet()
        a.__enter__()
        b.__enter__()  # a second write starts (another thread) before the first ends
        a.__exit__(None, None, None)
        assert lg.level == logging.ERROR  # the second is still writing
        b.__exit__(None, None, None)
        assert lg.level == logging.INFO
        with pytest.raises(OSError):
            with render._pdf_loggers_quiet():
                raise OSError("disk full")
        assert lg.level == logging.INFO
        assert logging.getLogger("fontTools.subset").level == logging.NOTSET
    finally:
        lg.setLevel(saved)


def test_vtk_warning_quieting_restores_after_interleaved_renders():
    vtk = pytest.importorskip("vtk")
    from cryovalid.figures import isosurface

    shown = vtk.vtkObject.GetGlobalWarningDisplay()
    assert shown == 1
    a, b = isosurface._vtk_warnings_off(), isosurface._vtk_warnings_off()
    a.__enter__()
    assert vtk.vtkObject.GetGlobalWarningDisplay() == 0
    b.__enter__()
    a.__exit__(None, None, None)
    assert vtk.vtkObject.GetGlobalWarningDisplay() == 0
    b.__exit__(None, None, None)
    assert vtk.vtkObject.GetGlobalWarningDisplay() == 1
