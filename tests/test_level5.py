"""Level 5 (micrographs and coordinates): the micrographs' reader, the coordinates on them
(data.MicrographsData), the bad-region detector (kernels/micrograph_quality.py) and item 5.a.

Known answers come from tests/simulate_micrographs.py: micrographs of white + pink noise with
dark Gaussian particles, ice contamination (dark discs) and carbon (a half-plane of another mean
and texture) whose truth masks are known. The detector's regions must match the truth
(IoU on the working grid), the coordinates it flags must be those whose box lies more than 10 %
on the truth (exactly, away from the region edges; a stated few near them), a clean micrograph
must be clean, and 5.a must warn exactly when more than 20 % of the picks lie on bad regions.
"""
import glob
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

sys.path.insert(0, os.path.dirname(__file__))

from simulate_micrographs import (simulate_micrograph, truth_goodness,  # noqa: E402
                                  write_dataset, write_mrc)

from cryovalid.data import MicrographsData, ParticlesData  # noqa: E402
from cryovalid.errors import InputError  # noqa: E402
from cryovalid.io.micrographs import read_micrographs  # noqa: E402
from cryovalid.io.particles import Particles, read_particles  # noqa: E402
from cryovalid.items import base  # noqa: E402
from cryovalid.items import micrographs as cleaner  # noqa: E402
from cryovalid.kernels import micrograph_quality as mq  # noqa: E402

BOX = 48  # particle box, px (1 Å pixels)
ICE = [(300, 300, 120), (700, 650, 90)]
CARBON = (1.0, 0.0, 700)  # x > 700: carbon
BOTH = dict(ice=[(250, 700, 110)], carbon=(0.6, 0.8, 800))
NEAR_EDGE = 4  # picks near a region edge where the detector and the truth may disagree


def truth_on_grid(truth, factor):
    return mq.block_mean(truth.astype(np.float32), factor) > 0.5


def iou(a, b):
    return np.count_nonzero(a & b) / max(1, np.count_nonzero(a | b))


# ---- the detector --------------------------------------------------------------------------
@pytest.mark.parametrize("kind,kw", [("ice", dict(ice=ICE)), ("carbon", dict(carbon=CARBON)),
                                     ("ice and carbon", BOTH)])
@pytest.mark.parametrize("seed", [0, 1])
def test_bad_regions_match_the_truth(kind, kw, seed):
    img, truth, picks = simulate_micrograph(seed=seed, box=BOX, **kw)
    q = mq.assess(img, BOX)
    t = truth_on_grid(truth, q.factor)
    # measured IoU 0.92-0.97 on these micrographs; 0.85 leaves room for the seeds only
    assert iou(q.mask, t) >= 0.85, (kind, iou(q.mask, t))
    flagged = q.goodness(picks) < mq.GOOD_LIMIT
    expected = truth_goodness(truth, BOX, picks) < mq.GOOD_LIMIT
    # away from the edges (a box or more from any boundary of the truth) they agree exactly
    edge = truth ^ ndimage.binary_erosion(truth)
    far = ndimage.distance_transform_edt(~edge)
    away = far[picks[:, 1].astype(int), picks[:, 0].astype(int)] > BOX
    assert away.sum() > 0.5 * len(picks)
    np.testing.assert_array_equal(flagged[away], expected[away])
    assert np.count_nonzero(flagged != expected) <= NEAR_EDGE, kind
    assert expected.sum() >= 10  # the micrograph does have picks on bad regions


@pytest.mark.parametrize("kw", [dict(seed=3), dict(seed=4, n_particles=300),
                                dict(seed=5, pink=1.0), dict(seed=6, particle_contrast=3.0)])
def test_clean_micrograph_is_clean(kw):
    img, truth, picks = simulate_micrograph(box=BOX, **kw)
    q = mq.assess(img, BOX)
    assert q.bad_fraction < 0.02
    assert np.all(q.goodness(picks) >= mq.GOOD_LIMIT)


def test_hot_pixels_are_not_bad_regions(monkeypatch):
    img, truth, picks = simulate_micrograph(box=BOX, seed=7)
    rng = np.random.default_rng(1)
    img[rng.integers(0, 1024, 100), rng.integers(0, 1024, 100)] = 5000.0  # hot pixels
    q = mq.assess(img, BOX)
    assert q.bad_fraction < 0.02 and np.all(q.goodness(picks) >= mq.GOOD_LIMIT)
    # without the clipping they make bad regions (measured 4.8 % of the area, 15 picks)
    monkeypatch.setattr(mq, "clip_outliers", lambda x: np.asarray(x, np.float32))
    assert mq.assess(img, BOX).bad_fraction > 0.02


def test_robust_z_describes_the_larger_mode():
    # 60 % N(0, 1) and 40 % N(10, 1): median/MAD would give z ≈ 0.6 per σ; the shorth and one
    # re-weighting step give the good mode's location and σ
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(0, 1, 60000), rng.normal(10, 1, 40000)])
    z = mq.robust_z(v)
    assert abs(z[:60000].mean()) < 0.02
    assert z[:60000].std() == pytest.approx(1.0, abs=0.03)
    with pytest.raises(ValueError, match="constant"):
        mq.robust_z(np.ones(100))


def test_goodness_is_the_good_fraction_of_the_box():
    mask = np.zeros((64, 64), dtype=bool)
    mask[:, 32:] = True  # right half bad
    f, box = 4, 32  # box 32 px = 8 working pixels
    g = mq.goodness(mask, f, box, [(64.0, 100.0), (2 * 128 - 1.0, 100.0), (128.0, 100.0)])
    # centre 16 px left of the edge: box 8 px wide from 12 to 19 (working), all good -> 1;
    # far right: all bad -> 0; on the edge (working column 32): 4 of 8 columns good
    np.testing.assert_allclose(g, [1.0, 0.0, 0.5])


def test_detector_refuses_non_finite_and_constant():
    img = np.zeros((256, 256), dtype=np.float32)
    with pytest.raises(ValueError, match="constant"):
        mq.assess(img, 32)
    img = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    img[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mq.assess(img, 32)


# ---- the reader ----------------------------------------------------------------------------
def test_reader_headers_names_and_pixel(tmp_path):
    for k, shape in enumerate([(128, 160), (128, 128)]):
        write_mrc(tmp_path / f"m{k}.mrc", np.random.default_rng(k).standard_normal(shape),
                  1.25)
    pat = str(tmp_path / "*.mrc")
    m = read_micrographs(pat, sorted(glob.glob(pat)))
    assert m.names == ["m0.mrc", "m1.mrc"] and m.pixel_size == pytest.approx(1.25, rel=1e-6)
    assert m.shapes == [(128, 160), (128, 128)]
    assert any("2 different sizes" in n for n in m.notes)
    img = m.image(0)
    assert img.dtype == np.float32 and img.shape == (128, 160)
    assert len(m.sha256) == 2 and all(len(h) == 64 for h in m.sha256)
    m2 = read_micrographs(pat, sorted(glob.glob(pat)), pixel_size=2.0)
    assert m2.pixel_size == 2.0 and any("1.25" in n for n in m2.notes)


def test_reader_errors(tmp_path):
    with pytest.raises(InputError, match="no file matches"):
        read_micrographs(str(tmp_path / "*.mrc"), [])
    write_mrc(tmp_path / "a.mrc", np.ones((64, 64)), 0.0)
    with pytest.raises(InputError, match="no pixel size in the header"):
        read_micrographs("x", [str(tmp_path / "a.mrc")])
    with pytest.raises(InputError, match="pixel size given with --micrographs-pixel must be "
                                         "positive"):
        read_micrographs("x", [str(tmp_path / "a.mrc")], pixel_size=-1.0)
    (tmp_path / "b.mrc").write_text("not a micrograph\n" * 100)
    with pytest.raises(InputError, match="b.mrc: not a readable MRC"):
        read_micrographs("x", [str(tmp_path / "b.mrc")], pixel_size=1.0)


# ---- the coordinates -----------------------------------------------------------------------
def _particles(names, x, y, pixel, box=BOX, extra=None):
    t = pd.DataFrame({"rlnImageName": [f"{i + 1:06d}@s.mrcs" for i in range(len(x))],
                      "rlnMicrographName": names, "rlnCoordinateX": x, "rlnCoordinateY": y})
    for k, v in (extra or {}).items():
        t[k] = v
    return ParticlesData(Particles(path="p.star", table=t, stacks=np.array(["s"] * len(x)),
                                   index=np.arange(len(x)), box=box, pixel_size=pixel), None)


def _mics(tmp_path, n=2, size=512, pixel=1.0):
    for k in range(n):
        write_mrc(tmp_path / f"mic_{k}.mrc",
                  np.random.default_rng(k).standard_normal((size, size)), pixel)
    pat = str(tmp_path / "mic_*.mrc")
    return read_micrographs(pat, sorted(glob.glob(pat)))


def test_coordinates_matched_by_name_and_unmatched_counted(tmp_path):
    mics = _mics(tmp_path)
    pd_ = _particles(["Movies/mic_1.mrc", "mic_0.tiff", "other.mrc", "mic_0.mrc"],
                     [10.0, 20.0, 30.0, 40.0], [11.0, 21.0, 31.0, 41.0], 1.0)
    c = MicrographsData(mics, pd_).coordinates
    assert c.available
    np.testing.assert_array_equal(c.mic, [1, 0, 0])  # by basename, by stem, -, by basename
    np.testing.assert_array_equal(c.particle, [0, 1, 3])
    assert c.n_unmatched == 1 and c.unmatched_names == ["other.mrc"]
    np.testing.assert_allclose(c.xy, [[10, 11], [20, 21], [40, 41]])


def test_coordinate_conventions(tmp_path):
    mics = _mics(tmp_path, size=512, pixel=1.0)  # 512 Å
    # particles binned ×4 (4 Å pixels, box 12 px = 48 Å on the micrographs)
    x = np.array([30.0, 260.0, 500.0])
    one = ["mic_0.mrc"] * 3
    # RELION: coordinates in micrograph pixels; ×4 would put two off the micrograph -> ×1
    c = MicrographsData(mics, _particles(one, x, x[::-1], 4.0, box=12)).coordinates
    np.testing.assert_allclose(c.xy, np.stack([x, x[::-1]], 1))
    assert "RELION" in c.convention and c.box_px == pytest.approx(48.0) and c.n_outside == 0
    # the reference (Scipion): particle pixels; both fit, the larger scale is taken -> ×4
    c = MicrographsData(mics, _particles(one, x / 4, x[::-1] / 4, 4.0, box=12)).coordinates
    np.testing.assert_allclose(c.xy, np.stack([x, x[::-1]], 1))
    assert "reference" in c.convention and c.n_outside == 0
    # neither fits: the one with fewer coordinates off (×1: two; ×4: three)
    far = np.array([600.0, 620.0, 126.0])
    c = MicrographsData(mics, _particles(one, far, far, 4.0, box=12)).coordinates
    assert "RELION" in c.convention and c.n_outside == 2
    # rlnMicrographPixelSize says it: coordinates in 2 Å pixels -> ×2
    c = MicrographsData(mics, _particles(one, x / 2, x / 2, 4.0, box=12, extra={
        "rlnMicrographPixelSize": [2.0] * 3})).coordinates
    np.testing.assert_allclose(c.xy[:, 0], x)
    assert "rlnMicrographPixelSize" in c.convention


def test_coordinates_absent_say_why(tmp_path):
    mics = _mics(tmp_path)
    t = pd.DataFrame({"rlnImageName": ["000001@s.mrcs"], "rlnCoordinateX": [1.0],
                      "rlnCoordinateY": [1.0]})
    pd_ = ParticlesData(Particles(path="p.star", table=t, stacks=np.array(["s"]),
                                  index=np.arange(1), box=BOX, pixel_size=1.0), None)
    ctx = SimpleNamespace(micrographs=MicrographsData(mics, pd_), particles=pd_)
    res = base.run_item(cleaner, ctx)
    assert res.status == "not_applicable" and "rlnMicrographName" in res.reason
    none = MicrographsData(mics, _particles(["x.mrc"], [1.0], [1.0], 1.0))
    res = base.run_item(cleaner, SimpleNamespace(micrographs=none, particles=True))
    assert res.status == "not_applicable" and "none of the 1 particles' micrographs" in \
        res.reason


# ---- item 5.a ------------------------------------------------------------------------------
def _dataset(tmp_path, kinds, seeds=None, extra_rows=()):
    mics, truths = [], []
    for k, kw in enumerate(kinds):
        img, truth, picks = simulate_micrograph(seed=(seeds or range(10, 99))[k], box=BOX,
                                                **kw)
        mics.append((img, picks))
        truths.append((truth, picks))
    star, pat = write_dataset(str(tmp_path), mics, box=BOX, extra_rows=extra_rows)
    m = read_micrographs(pat, sorted(glob.glob(pat)))
    p = ParticlesData(read_particles(star), None)
    expected = sum(int(np.count_nonzero(truth_goodness(t, BOX, pk) < mq.GOOD_LIMIT))
                   for t, pk in truths)
    n = sum(len(pk) for _, pk in truths)
    return SimpleNamespace(micrographs=MicrographsData(m, p), particles=p), expected, n


def test_cleaner_no_warning_when_few_picks_are_bad(tmp_path):
    ctx, expected, n = _dataset(tmp_path, [dict(ice=ICE[:1]), {}, {}],
                                extra_rows=[("elsewhere.mrc", 5.0, 5.0)] * 3)
    res = base.run_item(cleaner, ctx)
    m = res.metrics
    assert res.status == "ok", res.warnings
    assert m["n_in"] == n and m["n_unmatched"] == 3 and m["n_micrographs"] == 3
    assert abs(m["n_flagged"] - expected) <= NEAR_EDGE and expected >= 5
    assert m["n_out"] == n - m["n_flagged"]
    assert m["percent_flagged"] == pytest.approx(100 * m["n_flagged"] / n)
    assert any("3 of the" in s and "elsewhere.mrc" in s for s in res.notes)
    names = [a.name for a in res.artefacts]
    assert names == ["micrograph_coordinates.csv", "micrographs.csv"]
    coords = dict(res.artefacts[0].columns)
    assert len(coords["x_px"]) == n and sum(coords["flagged"]) == m["n_flagged"]


def test_cleaner_warns_when_more_than_20_percent_are_bad(tmp_path):
    # carbon over x > 600 (41 % of the micrograph) and BOTH (43 % bad): 135 of the 300
    # picks are bad by the truth
    ctx, expected, n = _dataset(tmp_path, [dict(carbon=(1.0, 0.0, 600)), BOTH])
    res = base.run_item(cleaner, ctx)
    m = res.metrics
    assert expected > 0.2 * n
    assert abs(m["n_flagged"] - expected) <= 2 * NEAR_EDGE
    assert res.status == "warnings" and len(res.warnings) == 1
    assert res.warnings[0].code == "flagged_coordinates"
    assert "More than 20% of the particles were flagged as being suspicious" in res.warnings[0]
    assert m["n_out"] < cleaner.KEEP_FRACTION * m["n_in"]


def test_criteria_built_from_the_constants():
    assert f"{100 * (1 - cleaner.KEEP_FRACTION):g}%" in cleaner.CRITERIA
    assert f"{100 * cleaner.GOOD_LIMIT:g}%" in cleaner.EXPLANATION
    assert "non-learned" in cleaner.EXPLANATION and "MicrographCleaner" in cleaner.EXPLANATION


def test_figures_draw(tmp_path):
    from cryovalid.figures import micrographs as figs

    ctx, _, _ = _dataset(tmp_path, [dict(ice=ICE), dict(carbon=CARBON), {}])
    res = base.run_item(cleaner, ctx)
    d = figs.draw_cleaner(res, ctx)
    assert [f.path for f in d.figures] == ["figures/micrograph_cleaner.png",
                                           "figures/micrograph_bad_area_histogram.png"]
    s = figs.draw_micrographs_section(ctx)
    assert s.figures[0].caption.startswith("Two example micrographs with their coordinates")
    assert all(a.png[:8] == b"\x89PNG\r\n\x1a\n" for a in d.artefacts + s.artefacts)
    # the circles' radius is box/2 in preview pixels (not the reference's box·Ts/Xdim·Xdim)
    img = ctx.micrographs.micrographs.image(0)
    small, f = figs.preview(img)
    assert f == 2 and small.shape == (512, 512)
    from cryovalid.figures.common import subplots

    fig, ax = subplots(figsize=(3, 3))
    figs._panel(ax, img, "t", [(100.0, 200.0), (500.0, 600.0)], BOX)
    ext = ax.collections[-1].get_paths()[0].get_extents()
    assert ext.width == pytest.approx(BOX / f, rel=1e-3)  # diameter = box (24 preview px)
    assert (ext.x0 + ext.x1) / 2 == pytest.approx(100.0 / f, abs=1e-3)


# ---- the command line ----------------------------------------------------------------------
@pytest.mark.slow
def test_cli_report_with_micrographs(tmp_path):
    import simulate

    vol, voxel, origin = simulate.simulate(voxel_size=2.0, resolution=8.0, shape=(32, 32, 32))
    mp = simulate.write_mrc(tmp_path / "map.mrc", vol, voxel, origin)
    mics = []
    for k, kw in enumerate([dict(ice=ICE), {}]):
        img, _, picks = simulate_micrograph(size=512, seed=k, box=BOX, n_particles=40,
                                            ice=[(200, 200, 80)] if k == 0 else ())
        mics.append((img, picks))
    star, pat = write_dataset(str(tmp_path / "data"), mics, box=BOX)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "cryovalid", "report", mp, "--threshold",
                        repr(float(np.quantile(vol, 0.97))), "--particles", star,
                        "--micrographs", pat, "--micrographs-pixel", "1.0", "--formats",
                        "json,html", "--levels", "0,5", "--out", str(out),
                        "--max-particles", "30"],  # Level 5 still takes all 80 coordinates
                       capture_output=True, text=True, env={**os.environ,
                                                            "CRYOVALID_WORKERS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    import schema_check

    rep = schema_check.validate_file(out / "report.json")  # the schema holds the new fields
    mg = rep["inputs"]["micrographs"]
    assert mg["n_micrographs"] == 2 and [f["name"] for f in mg["files"]] == ["mic_001.mrc",
                                                                            "mic_002.mrc"]
    assert mg["coordinates"]["n_coordinates"] == 80
    pt = rep["inputs"]["particles"]
    assert (pt["n_particles"], pt["n_given"]) == (30, 80)
    assert [f["path"] for f in rep["micrograph_figures"]] == ["figures/micrographs_input.png"]
    it = next(i for i in rep["items"] if i["id"] == "5.a")
    assert it["status"] == "ok" and it["metrics"]["n_in"] == 80
    assert any(f["path"] == "figures/micrograph_cleaner.png" for f in it["figures"])
    assert os.path.isfile(out / "figures" / "micrographs_input.png")
    assert os.path.isfile(out / "micrograph_coordinates.csv")
    html = open(out / "report.html", encoding="utf-8").read()
    assert "Micrographs" in html and "2 micrographs were provided by the user" in html
