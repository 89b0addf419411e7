"""cryovalid batch: entry lists, the Dask runner (isolation, retry of a dead worker, resume)
and the summary across entries."""
import csv
import json
import os

import pytest

import simulate
from batch_tasks import CALLS_ENV, recorded
from cryovalid import cli
from cryovalid.batch import BatchSettings, read_entries, run_batch
from cryovalid.batch import summary as summ
from cryovalid.errors import InputError


def _small_maps(folder, n):
    """n haemoglobin maps (2 Å voxels, 46³, 6 Å, 5 % noise, seeds 0..n-1)."""
    paths = []
    for k in range(n):
        vol, vs, origin = simulate.simulate(voxel_size=2.0, resolution=6.0, noise=0.05, seed=k,
                                            padding=10)
        paths.append(simulate.write_mrc(folder / f"map{k}.mrc", vol, vs, origin))
    return paths


def _truncated(src, dst):
    data = open(src, "rb").read()
    open(dst, "wb").write(data[: len(data) // 2])
    return str(dst)


# ---- entry lists ---------------------------------------------------------------------------
def test_entry_lists_text_csv_and_folder(tmp_path):
    (tmp_path / "maps").mkdir()
    for n in ("a.mrc", "b.map.gz", "notes.txt"):
        (tmp_path / "maps" / n).write_bytes(b"x")
    (tmp_path / "m.mrc").write_bytes(b"x")
    (tmp_path / "h1.mrc").write_bytes(b"x")
    (tmp_path / "h2.mrc").write_bytes(b"x")
    (tmp_path / "ids.txt").write_text("# curated\nEMD-5138\n\n1997  # old header\nm.mrc\n")
    (tmp_path / "opts.csv").write_text(
        "name,map,half_map_1,half_map_2,threshold,resolution,levels\n"
        "mine,m.mrc,h1.mrc,h2.mrc,0.5,3.2,\"0,1\"\n"
        ",,,,,,\n")
    es = read_entries([tmp_path / "ids.txt", tmp_path / "opts.csv", tmp_path / "maps"])
    assert [e.name for e in es] == ["EMD-5138", "EMD-1997", "m", "mine", "a", "b"]
    assert es[0].emdb_id == "EMD-5138" and es[2].map == str(tmp_path / "m.mrc")
    mine = es[3]
    assert mine.half_maps == (str(tmp_path / "h1.mrc"), str(tmp_path / "h2.mrc"))
    assert (mine.threshold, mine.resolution, mine.levels) == (0.5, 3.2, ("0", "1"))
    # the other inputs of a CSV row (Levels 2, O, W), by path
    (tmp_path / "c.mrcs").write_bytes(b"x")
    (tmp_path / "curve.dat").write_bytes(b"x")
    (tmp_path / "more.csv").write_text("map,classes,symmetry,saxs\nm.mrc,c.mrcs,c7,curve.dat\n")
    (more,) = read_entries([tmp_path / "more.csv"])
    assert more.symmetry == "c7" and dict(more.others) == {
        "classes": str(tmp_path / "c.mrcs"), "saxs": str(tmp_path / "curve.dat")}
    # Levels 3-5: the particles, a second assignment and the micrographs' glob pattern
    (tmp_path / "p.star").write_bytes(b"x")
    (tmp_path / "mics").mkdir()
    (tmp_path / "mics" / "m1.mrc").write_bytes(b"x")
    (tmp_path / "l5.csv").write_text("map,particles,angles_b,micrographs\n"
                                     "m.mrc,p.star,p.star,mics/*.mrc\n")
    (l5,) = read_entries([tmp_path / "l5.csv"])
    assert dict(l5.others) == {"particles": str(tmp_path / "p.star"),
                               "angles_b": str(tmp_path / "p.star"),
                               "micrographs": str(tmp_path / "mics" / "*.mrc")}
    # the same entry named twice is graded once
    assert len(read_entries([tmp_path / "ids.txt", tmp_path / "ids.txt"])) == 3


@pytest.mark.parametrize("text, message", [
    ("map,resolution\nm.mrc,-3\n", r"opts.csv:2: resolution must be positive"),
    ("map,resolution\nm.mrc,three\n", r"opts.csv:2: resolution must be a number"),
    ("map,colour\nm.mrc,red\n", r"unknown column\(s\) colour"),
    ("threshold\n0.1\n", r"needs a 'map' or an 'emdb_id' column"),
    ("map,emdb_id\nm.mrc,EMD-1\n", r"opts.csv:2: give either a map or an emdb_id, not both"),
    ("map\nmissing.mrc\n", r"opts.csv:2: map 'missing.mrc': no such file"),
    ("map,half_map_1\nm.mrc,m.mrc\n", r"give both half maps or neither"),
    ("map,name\nm.mrc,x\nn.mrc,x\n", r"opts.csv:3: the entry name 'x' is also used at"),
    ("map,symmetry\nm.mrc,q3\n", r"opts.csv:2: symmetry 'q3' is not a point group"),
    ("map,micrographs\nm.mrc,none/*.mrc\n", r"opts.csv:2: micrographs 'none/\*.mrc': no file "
                                            r"matches"),
])
def test_a_bad_entry_list_is_one_line_naming_the_line(tmp_path, text, message):
    (tmp_path / "m.mrc").write_bytes(b"x")
    (tmp_path / "n.mrc").write_bytes(b"x")
    (tmp_path / "opts.csv").write_text(text)
    with pytest.raises(InputError, match=message):
        read_entries([tmp_path / "opts.csv"])


def test_a_missing_list_is_exit_2_before_any_work(tmp_path, capsys):
    code = cli.main(["batch", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "nope.txt: no such file or folder" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "o").exists()
    assert cli.main(["batch", "x.txt", "--out", "o", "--workers", "0"]) == 2
    assert cli.main(["batch", "x.txt", "--out", "o", "--levels", "9"]) == 2


# ---- summary -------------------------------------------------------------------------------
def test_summary_columns_follow_the_spec(tmp_path):
    rep = {"score": {"passed": 2, "evaluable": 3}, "levels": ["0", "1"],
           "items": [{"id": "0.a", "status": "warnings", "metrics": {"decentering_pct_x": 2.5}},
                     {"id": "1.a", "status": "ok", "metrics": {"flag": True,
                                                              "fsc_resolution_A": 3.3}},
                     {"id": "0.d", "status": "not_applicable", "metrics": {}}]}
    rows = [summ.row_from_report("one", "one.mrc", rep, 12.0, "one/report.html"),
            summ.failed_row("two", "two.mrc", "two.mrc: truncated")]
    s = summ.write(str(tmp_path), rows)
    assert (s["complete"], s["failed"]) == (1, 1)
    table = list(csv.reader(open(tmp_path / "summary.csv")))
    ids = summ.item_ids()
    assert table[0][:5 + len(ids)] == ["entry", "status", "levels", "passed", "evaluable"] + ids
    one = dict(zip(table[0], table[1]))
    assert (one["status"], one["levels"], one["passed"], one["score"]) == \
        ("complete", "0,1", "2", "0.6667")
    assert one["0.a"] == "warnings" and one["1.a fsc_resolution_A"] == "3.3"
    two = dict(zip(table[0], table[2]))
    assert two["status"] == "failed" and two["error"] == "two.mrc: truncated"
    html = (tmp_path / "summary.html").read_text()
    assert 'href="one/report.html"' in html and "two.mrc: truncated" in html
    assert json.loads((tmp_path / "summary.json").read_text())["rows"][0]["entry"] == "one"


# ---- the runner on a local Dask cluster ----------------------------------------------------
def _mtimes(out, names):
    return {n: os.stat(out / n / "report.json").st_mtime_ns for n in names}


def _calls(folder):
    return sorted(n.split(".")[0] for n in os.listdir(folder))


@pytest.mark.slow
def test_batch_isolates_retries_and_resumes(tmp_path, monkeypatch):
    """6 entries on 2 workers: 4 maps (one EMDB entry from a file mirror, three local maps),
    a truncated map and an entry whose worker process exits in the middle. 4 complete reports,
    2 clear failures; the dead worker's entry is tried twice; a rerun runs only the 2."""
    from test_emdb_entry import _mirror

    inp = tmp_path / "in"
    inp.mkdir()
    maps = _small_maps(inp, 3)
    _truncated(maps[0], inp / "corrupt.mrc")
    os.link(maps[1], inp / "crash.mrc")
    (inp / "list.txt").write_text("EMD-3488\nmap0.mrc\nmap1.mrc\nmap2.mrc\ncorrupt.mrc\n"
                                  "crash.mrc\n")
    emdb, pdb = _mirror(tmp_path)
    calls = tmp_path / "calls"
    calls.mkdir()
    monkeypatch.setenv(CALLS_ENV, str(calls))  # the local workers inherit it
    settings = BatchSettings(cache=str(tmp_path / "cache"), emdb_mirror=emdb, pdb_mirror=pdb,
                             formats=("json",), levels=("0",))
    out = tmp_path / "out"
    seen = []
    s = run_batch(read_entries([inp / "list.txt"]), str(out), settings=settings, workers=2,
                  task=recorded, progress=lambda *a: seen.append(a))
    rows = {r["entry"]: r for r in s["rows"]}
    assert [r["entry"] for r in s["rows"]] == ["EMD-3488", "map0", "map1", "map2", "corrupt",
                                               "crash"]
    complete = ["EMD-3488", "map0", "map1", "map2"]
    assert [n for n in rows if rows[n]["status"] == "complete"] == complete
    assert "corrupt.mrc" in rows["corrupt"]["error"] and "truncated" in rows["corrupt"]["error"]
    assert "died twice" in rows["crash"]["error"]
    assert _calls(calls).count("crash") == 2  # retried once on a fresh worker
    for n in complete:
        rep = json.loads((out / n / "report.json").read_text())
        assert rep["levels"] == ["0"] and rows[n]["passed"] == rep["score"]["passed"]
    emd = json.loads((out / "EMD-3488" / "report.json").read_text())
    assert emd["inputs"]["entry"]["emdb_id"] == "EMD-3488" and emd["inputs"]["threshold"] == 0.07
    assert not (out / "corrupt").exists() and not (out / "crash").exists()
    table = list(csv.reader(open(out / "summary.csv")))
    assert [r[1] for r in table[1:]] == ["complete"] * 4 + ["failed"] * 2
    assert seen[-1][:2] == (4, 2) and seen[-1][3] == 6

    # the rerun: no work for the 4 complete entries, the 2 failures are tried again
    before = _mtimes(out, complete)
    for f in os.listdir(calls):
        os.unlink(calls / f)
    s2 = run_batch(read_entries([inp / "list.txt"]), str(out), settings=settings, workers=2,
                   task=recorded)
    assert sorted(set(_calls(calls))) == ["corrupt", "crash"]
    assert _mtimes(out, complete) == before
    assert [r["status"] for r in s2["rows"]] == ["complete"] * 4 + ["failed"] * 2
    assert [r["passed"] for r in s2["rows"][:4]] == [rows[n]["passed"] for n in complete]


def test_a_rerun_of_a_complete_batch_starts_no_cluster(tmp_path, monkeypatch, capsys):
    """Every report complete: the CLI reads the summary back and starts nothing (exit 0)."""
    from cryovalid import Inputs, Options, validate
    from cryovalid.batch import runner

    paths = _small_maps(tmp_path, 2)
    for p in paths:
        name = os.path.basename(p)[:-4]
        validate(Inputs(p), Options(formats=("json",)), store=str(tmp_path / "out" / name))
    (tmp_path / "list.txt").write_text("map0.mrc\nmap1.mrc\n")

    def no_cluster(*a, **k):
        raise AssertionError("a cluster was started for complete entries")

    monkeypatch.setattr(runner, "_Cluster", no_cluster)
    code = cli.main(["batch", str(tmp_path / "list.txt"), "--out", str(tmp_path / "out"),
                     "--quiet", "--formats", "json"])
    assert code == 0, capsys.readouterr().err
    rows = list(csv.DictReader(open(tmp_path / "out" / "summary.csv")))
    assert [(r["entry"], r["status"]) for r in rows] == [("map0", "complete"),
                                                          ("map1", "complete")]


@pytest.mark.slow
def test_the_readme_batch_example_runs(tmp_path, capsys):
    """README: `cryovalid batch examples/batch.csv --out out/batch` (here json, Level 0)."""
    out = tmp_path / "batch"
    code = cli.main(["batch", os.path.join(os.path.dirname(simulate.EXAMPLE_MAP), "batch.csv"), "--out",
                     str(out), "--formats", "json", "--levels", "0", "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "1 of 1 entries complete, 0 failed" in err
    rep = json.loads((out / "emd_3488" / "report.json").read_text())
    assert rep["inputs"]["threshold"] == 0.07 and rep["inputs"]["resolution_A"] == 3.2
    assert rep["inputs"]["model"]["name"] == "5me2.pdb.gz"
    assert rep["levels"] == ["0"]


@pytest.mark.slow
def test_a_running_scheduler_runs_the_batch_and_an_interrupt_keeps_what_finished(tmp_path):
    """--scheduler ADDRESS: the batch runs on a cluster it did not start (here one started by
    the test on loopback). A Ctrl-C while it runs writes the summary of what finished."""
    from distributed import LocalCluster

    maps = _small_maps(tmp_path, 3)
    entries = read_entries([tmp_path])
    settings = BatchSettings(cache=str(tmp_path / "cache"), formats=("json",), fft_threads=1)
    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        s = run_batch(entries[:1], str(tmp_path / "out"), settings=settings,
                      scheduler=cluster.scheduler_address)
        assert s["rows"][0]["status"] == "complete" and s["rows"][0]["entry"] == "map0"

        def interrupt(done, failed, running, total, skipped):
            if done > skipped:  # the first entry of this run finished
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            run_batch(entries, str(tmp_path / "out"), settings=settings,
                      scheduler=cluster.scheduler_address, progress=interrupt)
    rows = list(csv.DictReader(open(tmp_path / "out" / "summary.csv")))
    assert len(rows) == len(maps) and rows[0]["status"] == "complete"
    statuses = [r["status"] for r in rows]
    assert statuses.count("complete") >= 2  # map0 from before and the one that finished
    assert all("interrupted" in r["error"] for r in rows if r["status"] == "failed")
