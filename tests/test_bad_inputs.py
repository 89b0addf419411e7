"""A catalogue of bad and edge inputs (issue 18): files, headers, data, options, output folders
and half maps. Each case is generated here on tiny maps and states its expected outcome:

* ``error(code, *words)``: exit status ``code``, one line on stderr (no traceback) that contains
  every word (and names the file when ``names`` is given);
* ``report(check)``: exit 0 and ``check(report_dict)`` holds (an item's status and reason, a
  note).

For every case, no input file is changed (same bytes, same modification time), and report.json
(when written) is strict JSON (no NaN). The checks themselves are listed in docs/errors.md.
"""
from __future__ import annotations

import errno
import fcntl
import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

import mrcfile
import numpy as np
import pytest

import simulate
from cryovalid import cli
from cryovalid.io.output import MANIFEST_NAME

VOXEL = 2.0  # Å: a 32³ box is 64 Å, Nyquist 4 Å
BOX = (32, 32, 32)
RES = 8.0
ROOT = os.environ.get("USER") == "root" or (hasattr(os, "geteuid") and os.geteuid() == 0)


# ---- the inputs ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A good map and two half maps (5ME2, 2 Å voxels, 32³) and a threshold for them."""
    d = tmp_path_factory.mktemp("base")
    h1, h2, sig, ts, origin = simulate.simulate_half_maps(RES, voxel_size=VOXEL, shape=BOX)
    full = ((h1 + h2) / 2).astype(np.float32)
    paths = {}
    for name, vol in (("map", full), ("h1", h1), ("h2", h2)):
        paths[name] = simulate.write_mrc(d / f"{name}.mrc", vol, ts, origin)
    t = float(np.quantile(full, 0.97))
    return {"dir": d, "vol": full, "h1_vol": h1, "h2_vol": h2, "t": t, "origin": origin,
            **paths}


def _mrc(path, data, voxel=VOXEL):
    with mrcfile.new(str(path), overwrite=True) as m:
        m.set_data(np.asarray(data))
        m.voxel_size = voxel
    return str(path)


# MRC2014 header words (4 bytes each): byte offset and struct format
FIELDS = {"nx": (0, "<i"), "ny": (4, "<i"), "nz": (8, "<i"), "mode": (12, "<i"),
          "mx": (28, "<i"), "my": (32, "<i"), "mz": (36, "<i"),
          "cella": (40, "<3f"), "cellb": (52, "<3f"), "mapcrs": (64, "<3i"),
          "ispg": (88, "<i"), "nsymbt": (92, "<i"), "origin": (196, "<3f")}


def _patch(path, **values):
    """Overwrite header fields in place (a hostile or broken writer)."""
    raw = bytearray(open(path, "rb").read())
    for k, v in values.items():
        off, fmt = FIELDS[k]
        struct.pack_into(fmt, raw, off, *(v if isinstance(v, tuple) else (v,)))
    open(path, "wb").write(bytes(raw))
    return str(path)


def _good(tmp, b, name="m.mrc", data=None, voxel=VOXEL):
    return _mrc(tmp / name, b["vol"] if data is None else data, voxel)


def _header_of(tmp, b):
    return open(_good(tmp, b, "hdr.mrc"), "rb").read()[:1024]


# ---- expected outcomes ---------------------------------------------------------------------
@dataclass
class Case:
    id: str
    make: Callable  # make(tmp, base) -> argv after "report" (without --out when out=None)
    code: int = 2
    words: tuple = ()
    names: Optional[str] = None  # a file name the message must contain
    check: Optional[Callable] = None  # check(report) for code 0
    out: Optional[str] = "out"  # --out tmp/out is appended (None: the case gives it)
    skip: str = ""
    setup: Optional[Callable] = None  # setup(tmp, monkeypatch) before the run
    post: Optional[Callable] = None  # post(tmp, err) after the run
    extra: list = field(default_factory=list)


def error(id, make, *words, names=None, code=2, **kw):
    return Case(id, make, code, words, names, **kw)


def report(id, make, check=None, **kw):
    return Case(id, make, 0, (), None, check, **kw)


def item(rep, item_id):
    return next(i for i in rep["items"] if i["id"] == item_id)


def notes_have(*words):
    def check(rep):
        text = " ".join(rep["inputs"]["notes"])
        assert all(w in text for w in words), rep["inputs"]["notes"]
    return check


def t(b, scale=1.0, offset=0.0):
    return ["--threshold", repr(b["t"] * scale + offset)]


def with_map(path_fn, *opts):
    """argv for a map made by path_fn(tmp, b), with the base threshold and options."""
    return lambda tmp, b: [path_fn(tmp, b), *t(b), "--formats", "json", *opts]


def good_with(*opts):
    return lambda tmp, b: [b["map"], *t(b), "--formats", "json", *opts]


# ---- files ---------------------------------------------------------------------------------
def _empty(tmp, b):
    (tmp / "empty.mrc").write_bytes(b"")
    return str(tmp / "empty.mrc")


def _fifo(tmp, b):
    os.mkfifo(tmp / "pipe.mrc")
    return str(tmp / "pipe.mrc")


def _broken_link(tmp, b):
    os.symlink(tmp / "nowhere.mrc", tmp / "link.mrc")
    return str(tmp / "link.mrc")


def _text(tmp, b):
    (tmp / "text.mrc").write_text("this is not a map\n" * 200)
    return str(tmp / "text.mrc")


def _random_bytes(tmp, b):
    (tmp / "rand.mrc").write_bytes(np.random.default_rng(3).bytes(5000))
    return str(tmp / "rand.mrc")


def _header_only(tmp, b):
    (tmp / "hdr_only.mrc").write_bytes(_header_of(tmp, b))
    return str(tmp / "hdr_only.mrc")


def _truncated(tmp, b):
    p = _good(tmp, b, "cut.mrc")
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 2])
    return p


def _gz(tmp, name, payload):
    with gzip.open(tmp / name, "wb") as g:
        g.write(payload)
    return str(tmp / name)


def _gzip_corrupt(tmp, b):
    p = _gz(tmp, "bad.mrc.gz", open(b["map"], "rb").read())
    raw = bytearray(open(p, "rb").read())
    for i in range(200, min(len(raw) - 20, 2200)):  # scramble the deflate stream
        raw[i] ^= 0x5A
    open(p, "wb").write(bytes(raw))
    return p


def _gzip_truncated(tmp, b):
    p = _gz(tmp, "cut.mrc.gz", open(b["map"], "rb").read())
    raw = open(p, "rb").read()
    open(p, "wb").write(raw[: len(raw) // 2])
    return p


def _gzip_text(tmp, b):
    return _gz(tmp, "text.mrc.gz", b"not a map at all\n" * 300)


def _unreadable(tmp, b):
    p = _good(tmp, b, "secret.mrc")
    os.chmod(p, 0)
    return p


def _mode_int16_over_float32(tmp, b):
    return _patch(_good(tmp, b, "i16hdr.mrc"), mode=1)


def _float64_under_float32(tmp, b):
    p = tmp / "f64.mrc"
    p.write_bytes(_header_of(tmp, b) + b["vol"].astype(np.float64).tobytes())
    return str(p)


def _int16_under_float32(tmp, b):
    p = tmp / "i16data.mrc"
    p.write_bytes(_header_of(tmp, b) + (b["vol"] * 1000).astype(np.int16).tobytes())
    return str(p)


def _trailing_bytes(tmp, b):
    p = _good(tmp, b, "tail.mrc")
    with open(p, "ab") as f:
        f.write(b"\0" * 12)
    return p


def _complex(tmp, b):
    return _mrc(tmp / "cplx.mrc", b["vol"].astype(np.complex64))


def _image2d(tmp, b):
    return _mrc(tmp / "img.mrc", b["vol"][16])


def _image2d_as_volume(tmp, b):
    return _patch(_mrc(tmp / "img3.mrc", b["vol"][16]), ispg=1)


def _image_stack(tmp, b):
    return _patch(_good(tmp, b, "stack.mrc"), ispg=0, mz=1)


def _vol_with(name, edit):
    def make(tmp, b):
        vol = b["vol"].copy()
        vol = edit(vol)
        return _mrc(tmp / name, vol)
    return make


def _set(idx, value):
    def edit(v):
        v[idx] = value
        return v
    return edit


def _header(name, **fields):
    return lambda tmp, b: _patch(_good(tmp, b, name), **fields)


NAN = float("nan")
INF = float("inf")

FILE_CASES = [
    error("missing", lambda tmp, b: [str(tmp / "nothing.mrc"), "--formats", "json"],
          "no such file", names="nothing.mrc"),
    error("empty", with_map(_empty), "empty", names="empty.mrc"),
    error("directory", lambda tmp, b: [str(tmp), "--formats", "json"], "is a directory"),
    error("fifo", with_map(_fifo), "not a regular file", "FIFO", names="pipe.mrc"),
    error("dev_urandom", lambda tmp, b: ["/dev/urandom", "--formats", "json"],
          "not a regular file", "character device", names="/dev/urandom"),
    error("dev_null", lambda tmp, b: ["/dev/null", "--formats", "json"], "not a regular file"),
    error("broken_symlink", with_map(_broken_link), "symbolic link to a missing file",
          names="link.mrc"),
    error("text_file", with_map(_text), "not a readable MRC", names="text.mrc"),
    error("random_bytes", with_map(_random_bytes), "not a readable MRC", names="rand.mrc"),
    error("header_only", with_map(_header_only), "truncated", names="hdr_only.mrc"),
    error("truncated_data", with_map(_truncated), "truncated", names="cut.mrc"),
    error("gzip_corrupt", with_map(_gzip_corrupt), "corrupt gzip", names="bad.mrc.gz"),
    error("gzip_truncated", with_map(_gzip_truncated), "gzip", names="cut.mrc.gz"),
    error("gzip_of_text", with_map(_gzip_text), "not a readable MRC", names="text.mrc.gz"),
    error("unreadable", with_map(_unreadable), "cannot be read", names="secret.mrc",
          skip="root reads every file" if ROOT else ""),
    error("mode_int16_header_over_float32_data", with_map(_mode_int16_over_float32),
          "header and the data disagree", names="i16hdr.mrc"),
    error("float64_data_under_float32_header", with_map(_float64_under_float32),
          "header and the data disagree", names="f64.mrc"),
    error("int16_data_under_float32_header", with_map(_int16_under_float32),
          "header describes more data", names="i16data.mrc"),
    report("few_trailing_bytes_noted", with_map(_trailing_bytes),
           notes_have("12 bytes after the data block")),
    error("complex_mode", with_map(_complex), "complex", names="cplx.mrc"),
    error("image_2d", with_map(_image2d), "a 2-D image", "not a volume", names="img.mrc"),
    error("image_2d_as_volume", with_map(_image2d_as_volume), "a 2-D image", "not a volume",
          names="img3.mrc"),
    error("image_stack", with_map(_image_stack), "stack of 32 2-D images", names="stack.mrc"),
    error("nan_value", with_map(_vol_with("nan.mrc", _set((3, 4, 5), NAN))), "NaN",
          names="nan.mrc"),
    error("inf_value", with_map(_vol_with("inf.mrc", _set((3, 4, 5), INF))), "infinite",
          names="inf.mrc"),
    error("constant", lambda tmp, b: [_mrc(tmp / "c.mrc", np.ones(BOX, np.float32)),
                                      "--formats", "json"], "constant", names="c.mrc"),
    error("tiny_box", lambda tmp, b: [_mrc(tmp / "tiny.mrc", b["vol"][:6, :6, :6]),
                                      "--formats", "json"], "too small", names="tiny.mrc"),
    error("header_voxel_zero", with_map(_header("v0.mrc", cella=(0.0, 0.0, 0.0))),
          "zero or negative", names="v0.mrc"),
    error("header_voxel_negative", with_map(_header("vneg.mrc", cella=(-64.0, -64.0, -64.0))),
          "zero or negative", names="vneg.mrc"),
    error("header_voxel_nan", with_map(_header("vnan.mrc", cella=(NAN, NAN, NAN))),
          "not a number", names="vnan.mrc"),
    error("header_voxel_inf", with_map(_header("vinf.mrc", cella=(INF, INF, INF))),
          "infinite", names="vinf.mrc"),
    error("header_mx_zero", with_map(_header("mx0.mrc", mx=0)), "zero or negative",
          names="mx0.mrc"),
    error("header_anisotropic", with_map(_header("aniso.mrc", cella=(64.0, 64.0, 80.0))),
          "anisotropic", names="aniso.mrc"),
    error("header_non_orthogonal", with_map(_header("tric.mrc", cellb=(90.0, 100.0, 90.0))),
          "non-orthogonal", names="tric.mrc"),
    report("header_nan_cell_angle_noted",
           with_map(_header("anan.mrc", cellb=(NAN, 90.0, 90.0))),
           notes_have("cell angle", "not a number", "assumed 90")),
    error("header_voxel_too_small", with_map(_header("v001.mrc", cella=(0.32, 0.32, 0.32))),
          "outside the sensible range", names="v001.mrc"),
    error("header_voxel_too_large", with_map(_header("v500.mrc", cella=(16000.0,) * 3)),
          "outside the sensible range", names="v500.mrc"),
    report("header_bad_axis_order_noted", with_map(_header("axes.mrc", mapcrs=(0, 0, 0))),
           notes_have("invalid axis order")),
    report("header_nan_origin_noted", with_map(_header("onan.mrc", origin=(NAN, 0.0, 0.0))),
           notes_have("ORIGIN", "not finite")),
    error("header_negative_nx", with_map(_header("nxneg.mrc", nx=-32)), "not a readable MRC",
          names="nxneg.mrc"),
    error("header_huge_box", with_map(_header("huge.mrc", nx=1 << 30)), "header describes more",
          names="huge.mrc"),
    error("header_huge_extended_header", with_map(_header("ext.mrc", nsymbt=1 << 30)),
          "header describes more", names="ext.mrc"),
    error("header_unknown_mode", with_map(_header("mode9.mrc", mode=9)), "not a readable MRC",
          names="mode9.mrc"),
    report("int8_map", lambda tmp, b: [
        _mrc(tmp / "i8.mrc", np.clip(b["vol"] / b["vol"].max() * 120, -127, 127).astype(np.int8)),
        "--threshold", repr(round(b["t"] / float(b["vol"].max()) * 120) + 0.5),
        "--formats", "json"]),
    report("uint16_map", lambda tmp, b: [
        _mrc(tmp / "u16.mrc", (b["vol"] / b["vol"].max() * 30000 + 30000).astype(np.uint16)),
        "--threshold", repr(b["t"] / float(b["vol"].max()) * 30000 + 30000),
        "--formats", "json"]),
]


# ---- options -------------------------------------------------------------------------------
OPTION_CASES = [
    error("voxel_size_1e-30", good_with("--voxel-size", "1e-30"), "outside the sensible range",
          names="map.mrc"),
    error("voxel_size_1000", good_with("--voxel-size", "1000"), "outside the sensible range"),
    error("voxel_size_nan", good_with("--voxel-size", "nan"), "voxel size must be a number"),
    error("voxel_size_inf", good_with("--voxel-size", "inf"), "positive and finite"),
    error("voxel_size_negative", good_with("--voxel-size", "-1"), "positive"),
    error("voxel_size_zero", good_with("--voxel-size", "0"), "positive"),
    error("voxel_size_text", good_with("--voxel-size", "big"), "must be a number"),
    error("resolution_below_nyquist", good_with("--resolution", "3"), "Nyquist", "4 Å",
          names="map.mrc"),
    error("resolution_0.1_on_2A_voxels", good_with("--resolution", "0.1"), "Nyquist"),
    error("resolution_larger_than_box", good_with("--resolution", "100"),
          "larger than the map's box", names="map.mrc"),
    error("resolution_below_nyquist_after_override",
          good_with("--voxel-size", "3", "--resolution", "5"), "Nyquist"),
    error("resolution_nan", good_with("--resolution", "nan"), "resolution must be a number"),
    error("resolution_zero", good_with("--resolution", "0"), "positive"),
    error("resolution_inf", good_with("--resolution", "inf"), "positive and finite"),
    report("resolution_at_nyquist_accepted", good_with("--resolution", "4")),
    error("threshold_nan", lambda tmp, b: [b["map"], "--threshold", "nan"], "finite"),
    error("threshold_inf", lambda tmp, b: [b["map"], "--threshold", "inf"], "finite"),
    error("threshold_text", lambda tmp, b: [b["map"], "--threshold", "high"], "a number"),
    error("threshold_above_max", lambda tmp, b: [b["map"], "--threshold", "1e9"],
          "above the map maximum", names="map.mrc"),
    error("threshold_below_min", lambda tmp, b: [b["map"], "--threshold", "-1e9"],
          "below the map minimum", names="map.mrc"),
    error("formats_unknown", good_with("--formats", "docx"), "unknown format"),
    error("formats_empty", lambda tmp, b: [b["map"], "--formats", ","], "unknown format"),
    error("out_missing", lambda tmp, b: [b["map"]], "--out", out=None),
    error("unknown_option", good_with("--frobnicate"), "unrecognized arguments"),
    error("half_maps_one_file", lambda tmp, b: [b["map"], "--half-maps", b["h1"]],
          "--half-maps"),
]


# ---- output folders ------------------------------------------------------------------------
def _out(tmp):
    return str(tmp / "out")


def _previous_report(tmp, b, force=False, extra=()):
    os.makedirs(tmp / "out" / "maps")
    (tmp / "out" / "report.json").write_text("{}")
    (tmp / "out" / "fsc.csv").write_text("old")
    return [b["map"], *t(b), "--formats", "json", "--out", _out(tmp),
            *(["--force"] if force else []), *extra]


def _input_in_out_maps(tmp, b):
    os.makedirs(tmp / "out" / "maps")
    p = shutil.copy(b["map"], tmp / "out" / "maps" / "bfactor_corrected.mrc")
    return [p, *t(b), "-r", str(RES), "--formats", "json", "--out", _out(tmp), "--force"]


def _input_symlinked_as_report(tmp, b):
    os.makedirs(tmp / "out")
    p = shutil.copy(b["map"], tmp / "in.mrc")
    os.symlink(p, tmp / "out" / "report.json")
    return [p, *t(b), "--formats", "json", "--out", _out(tmp), "--force"]


def _input_through_symlinked_folder(tmp, b):
    os.makedirs(tmp / "data")
    p = shutil.copy(b["map"], tmp / "data" / "mask_hard.mrc")
    os.makedirs(tmp / "out")
    os.symlink(tmp / "data", tmp / "out" / "maps")
    return [p, *t(b), "--formats", "json", "--out", _out(tmp), "--force"]


def _input_hard_linked(tmp, b):
    os.makedirs(tmp / "out" / "maps")
    p = shutil.copy(b["map"], tmp / "in.mrc")
    os.link(p, tmp / "out" / "maps" / "mask_soft.mrc")
    return [p, *t(b), "--formats", "json", "--out", _out(tmp), "--force"]


def _half_map_in_out(tmp, b):
    os.makedirs(tmp / "out" / "maps")
    p = shutil.copy(b["h2"], tmp / "out" / "maps" / "h2.mrc")
    return [b["map"], "--half-maps", b["h1"], p, *t(b), "--formats", "json",
            "--out", _out(tmp), "--force"]


def _out_is_file(tmp, b):
    (tmp / "out").write_text("a file")
    return [b["map"], *t(b), "--formats", "json", "--out", _out(tmp)]


def _out_under_file(tmp, b):
    (tmp / "f").write_text("a file")
    return [b["map"], *t(b), "--formats", "json", "--out", str(tmp / "f" / "out")]


def _out_maps_is_file(tmp, b):
    os.makedirs(tmp / "out")
    (tmp / "out" / "maps").write_text("a file")
    return [b["map"], *t(b), "--formats", "json", "--out", _out(tmp), "--force"]


def _out_report_json_is_folder(tmp, b):
    os.makedirs(tmp / "out" / "report.json")
    return [b["map"], *t(b), "--formats", "json", "--out", _out(tmp), "--force"]


def _out_read_only(tmp, b):
    os.makedirs(tmp / "out")
    os.chmod(tmp / "out", 0o555)
    return [b["map"], *t(b), "--formats", "json", "--out", _out(tmp)]


def _out_locked(tmp, b):
    os.makedirs(tmp / "out")
    fd = os.open(tmp / "out" / ".cryovalid.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another run holds it (released when the test ends)
    _HELD.append(fd)
    return [b["map"], *t(b), "--formats", "json", "--out", _out(tmp)]


def _out_stale_lock(tmp, b):
    os.makedirs(tmp / "out")
    (tmp / "out" / ".cryovalid.lock").write_text("")  # left by a killed run: not held
    return [b["map"], *t(b), "--formats", "json", "--out", _out(tmp)]


def _out_with_user_files(tmp, b):
    os.makedirs(tmp / "out")
    (tmp / "out" / "notes.txt").write_text("mine")
    return [b["map"], *t(b), "--formats", "json", "--out", _out(tmp)]


_HELD = []


def _enospc(tmp, monkeypatch):
    from cryovalid.report import render

    def full(report, out_dir):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.path.join(out_dir,
                                                                           "report.json"))
    monkeypatch.setattr(render, "write_json", full)


def _unexpected(tmp, monkeypatch):
    from cryovalid.report import model

    def broken(*a, **k):
        raise KeyError("a bug")
    monkeypatch.setattr(model, "build", broken)


def _kept_work(tmp, err):
    """A late failure keeps the work done (in the staging folder the message names) and leaves
    no report.json in --out."""
    assert not (tmp / "out" / "report.json").exists()
    kept = err.split("the work done so far is in ")[1].rstrip(")")
    assert os.path.isfile(os.path.join(kept, "maps", "mask_hard.mrc")), os.listdir(kept)


def _debug_log_written(tmp, err):
    log = err.split("details in ")[1].split(" ")[0]
    assert "KeyError" in open(log).read()


def _force_replaced(tmp, err):
    assert not (tmp / "out" / "fsc.csv").exists()  # the previous report's entries are gone
    rep = json.loads((tmp / "out" / "report.json").read_text())
    assert rep["items"]
    assert not [e for e in os.listdir(tmp / "out") if e.startswith(".cryovalid")
                and e != MANIFEST_NAME]


def _user_files_kept(tmp, err):
    assert (tmp / "out" / "notes.txt").read_text() == "mine"
    assert (tmp / "out" / "report.json").exists()


OUT_CASES = [
    error("out_holds_another_report", lambda tmp, b: _previous_report(tmp, b),
          "already holds a report", "--force", out=None),
    report("out_force_replaces_previous_report",
           lambda tmp, b: _previous_report(tmp, b, force=True), out=None, post=_force_replaced),
    error("input_inside_out_maps", _input_in_out_maps, "lies where the report writes",
          names="bfactor_corrected.mrc", out=None),
    error("input_symlinked_as_report_json", _input_symlinked_as_report,
          "lies where the report writes", names="in.mrc", out=None),
    error("input_through_symlinked_maps_folder", _input_through_symlinked_folder,
          "lies where the report writes", out=None),
    error("input_hard_linked_into_out", _input_hard_linked, "hard link", names="in.mrc",
          out=None),
    error("half_map_inside_out", _half_map_in_out, "lies where the report writes",
          names="h2.mrc", out=None),
    error("out_is_a_file", _out_is_file, "exists and is a file", out=None),
    error("out_under_a_file", _out_under_file, "cannot create the output folder", out=None),
    error("out_maps_is_a_file", _out_maps_is_file, "maps", "exists and is a file", out=None),
    error("out_report_json_is_a_folder", _out_report_json_is_folder, "report.json",
          "is a folder", out=None),
    error("out_read_only", _out_read_only, "not writable", out=None,
          skip="root writes everywhere" if ROOT else ""),
    error("out_locked_by_another_run", _out_locked, "another cryovalid run", out=None),
    report("out_stale_lock_file", _out_stale_lock, out=None),
    report("out_with_user_files", _out_with_user_files, out=None, post=_user_files_kept),
    error("disk_full_at_the_end", good_with(), "No space left on device",
          "the work done so far is in", setup=_enospc, post=_kept_work),
    error("unexpected_internal_error", good_with(), "internal error", "KeyError", code=1,
          setup=_unexpected, post=_debug_log_written),
]


# ---- half maps -----------------------------------------------------------------------------
def _identical_halves_check(rep):
    b = item(rep, "1.b")
    assert b["status"] == "failed" and "identical" in b["reason"], b
    assert {**b["metrics"], **b.get("flags", {})}["fdr_identical_halves"] is True
    a = item(rep, "1.a")
    assert a["status"] == "warnings" and "identical" in " ".join(a["warnings"])
    assert not [e for e in rep["resolution_estimates"] if e["item"] in ("1.a", "1.b")]
    assert not any("2.0 Å" in s or "4.0 Å" in s for s in rep["summary"]["resolution"][:1])


def _near_identical(tmp, b):
    rng = np.random.default_rng(9)
    h = b["h1_vol"] + rng.normal(0, 1e-4 * float(b["h1_vol"].std()), BOX).astype(np.float32)
    p = _mrc(tmp / "h1b.mrc", h)
    _patch(p, origin=tuple(float(v) for v in b["origin"]))
    return [b["map"], "--half-maps", b["h1"], p, *t(b), "-r", str(RES), "--formats", "json"]


def _half(tmp, b, name, data=None, voxel=VOXEL, origin=None):
    p = _mrc(tmp / name, b["h2_vol"] if data is None else data, voxel)
    _patch(p, origin=tuple(float(v) for v in (b["origin"] if origin is None else origin)))
    return p


def halves(second):
    return lambda tmp, b: [b["map"], "--half-maps", b["h1"], second(tmp, b), *t(b),
                           "--formats", "json"]


HALF_CASES = [
    report("half_maps_same_file_twice", lambda tmp, b: [
        b["map"], "--half-maps", b["h1"], b["h1"], *t(b), "-r", str(RES), "--formats", "json"],
        _identical_halves_check),
    report("half_maps_main_map_twice", lambda tmp, b: [
        b["map"], "--half-maps", b["map"], b["map"], *t(b), "--formats", "json"],
        _identical_halves_check),
    report("half_maps_nearly_identical", _near_identical,
           lambda rep: (item(rep, "1.b")["status"] == "failed"
                        and "nearly identical" in item(rep, "1.b")["reason"]) or
           pytest.fail(str(item(rep, "1.b")))),
    error("half_map_other_box", halves(lambda tmp, b: _half(tmp, b, "hbox.mrc",
                                                            b["h2_vol"][:-2])),
          "box", names="hbox.mrc"),
    error("half_map_other_voxel", halves(lambda tmp, b: _half(tmp, b, "hvox.mrc", voxel=2.5)),
          "voxel size", names="hvox.mrc"),
    error("half_map_other_origin", halves(lambda tmp, b: _half(
        tmp, b, "horig.mrc", origin=np.asarray(b["origin"]) + 10.0)), "origin",
        names="horig.mrc"),
    error("half_map_missing", halves(lambda tmp, b: str(tmp / "gone.mrc")), "no such file",
          names="gone.mrc"),
    error("half_map_fifo", halves(_fifo), "not a regular file", names="pipe.mrc"),
    error("half_map_text", halves(_text), "not a readable MRC", names="text.mrc"),
    error("half_map_nan", halves(_vol_with("hnan.mrc", _set((1, 2, 3), NAN))), "NaN",
          names="hnan.mrc"),
]


# ---- atomic model (Level A) ----------------------------------------------------------------
def with_model(make_model, *opts):
    """argv: the good map, its threshold, a resolution and ``--model`` from make_model."""
    return lambda tmp, b: [b["map"], *t(b), "-r", str(RES), "--formats", "json",
                           "--model", make_model(tmp, b), *opts]


def _model_text(name, text):
    def make(tmp, b):
        p = tmp / name
        p.write_text(text)
        return str(p)
    return make


def _model_moved(shift, name):
    def make(tmp, b):
        import gemmi

        st = gemmi.read_structure(simulate.EXAMPLE_MODEL)
        for m in st:
            m.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift)))
        p = str(tmp / name)
        st.write_pdb(p)
        return p
    return make


def _far_model(rep):
    """A model entirely outside the box: the gate says so with the fraction inside (0) and
    either finds a placement (moved) or says it does not fit; A.a follows the gate."""
    g = item(rep, "A.0")
    codes = [w["code"] for w in g["warning_details"]]
    assert g["status"] == "warnings" and "outside" in codes, g
    assert g["metrics"]["fraction_atoms_inside"] == 0.0
    assert ("moved" in codes) == (item(rep, "A.a")["status"] == "ok"), codes
    assert ("not_fitted" in codes) == (item(rep, "A.a")["status"] == "not_applicable"), codes


HYDROGENS = "".join(f"ATOM  {i + 1:5d}  H   GLY A   1    {i:8.3f}{0:8.3f}{0:8.3f}  1.00 10.00"
                    f"           H\n" for i in range(3)) + "END\n"
MODEL_CASES = [
    error("model_missing", with_model(lambda tmp, b: str(tmp / "nothere.pdb")), "no such file",
          names="nothere.pdb"),
    error("model_not_a_model", with_model(_model_text("notes.pdb", "just some words\n")),
          names="notes.pdb"),
    error("model_empty", with_model(_model_text("empty.cif", "")), names="empty.cif"),
    error("model_only_hydrogens", with_model(_model_text("hh.pdb", HYDROGENS)), "hydrogen",
          names="hh.pdb"),
    error("model_is_a_map", with_model(lambda tmp, b: b["h1"]), names="h1.mrc"),
    report("model_far_outside_the_map", with_model(_model_moved((1000.0, 0, 0), "far.pdb")),
           _far_model),
    report("model_without_resolution", lambda tmp, b: [
        b["map"], *t(b), "--formats", "json", "--model", simulate.EXAMPLE_MODEL],
        lambda rep: (item(rep, "A.0")["status"] == "not_applicable"
                     and "resolution" in item(rep, "A.0")["reason"]) or pytest.fail(
            str(item(rep, "A.0")))),
]


# ---- the inputs of Levels 2-4, O and W -------------------------------------------------------
def with_input(option, make_file, *opts):
    """argv: the good map, its threshold and ``option FILE`` (FILE from make_file)."""
    return lambda tmp, b: [b["map"], *t(b), "--formats", "json", option, make_file(tmp, b),
                           *opts]


def _bytes(name, data):
    def make(tmp, b):
        p = tmp / name
        p.write_bytes(data)
        return str(p)
    return make


OTHER_CASES = [
    error("classes_missing", with_input("--classes", lambda tmp, b: str(tmp / "no.mrcs")),
          "no such file", names="no.mrcs"),
    error("classes_text", with_input("--classes", _model_text("c.mrcs", "not a stack\n")),
          names="c.mrcs"),
    error("classes_is_a_volume", with_input("--classes", lambda tmp, b: b["map"]),
          "a volume, not a stack of 2-D images"),
    error("particles_not_star", with_input("--particles", _model_text("p.star", "junk\n")),
          names="p.star"),
    error("particles_missing_stack", with_input("--particles", _model_text(
        "p.star", "data_\nloop_\n_rlnImageName #1\n000001@gone.mrcs\n")),
        "point to the stack 'gone.mrcs'", names="p.star"),
    error("angles_b_missing", with_input("--angles-b", lambda tmp, b: str(tmp / "b.star")),
          "no such file", names="b.star"),
    error("crosslinks_bad_line", with_input("--crosslinks", _model_text(
        "xl.txt", "12|A|not-a-residue|B|\n")), names="xl.txt"),
    error("saxs_binary", with_input("--saxs", _bytes("curve.dat", b"\0\1\2binary")),
          "a binary file, not a SAXS curve", names="curve.dat"),
    error("workflow_not_json", with_input("--workflow", _model_text("wf.json", "{not json")),
          names="wf.json"),
    error("tilt_pairs_without_angle", lambda tmp, b: [
        b["map"], *t(b), "--formats", "json", "--tilt-pairs", b["map"], b["map"]],
        "--tilt-angle"),
    error("cs_negative", good_with("--cs", "-1"), "finite and not negative"),
    error("tilt_angle_infinite", good_with("--tilt-angle", "inf"), "tilt angle must be finite"),
    error("symmetry_unknown", good_with("--symmetry", "q7"), "not a point group"),
    error("max_particles_text", good_with("--max-particles", "many"),
          "--max-particles must be a whole number"),
    error("max_particles_negative", good_with("--max-particles", "-5"),
          "--max-particles must be at least 0"),
    error("micrographs_no_match", with_input("--micrographs", lambda tmp, b: str(
        tmp / "nomics" / "*.mrc")), "no file matches", names="nomics"),
    error("micrographs_different_pixels", with_input("--micrographs", lambda tmp, b: _mics(
        tmp, ((64, 64, 1.0), (64, 64, 1.5)))), "different pixel sizes", names="mics"),
    error("micrographs_a_stack", with_input("--micrographs", lambda tmp, b: _mics(
        tmp, ((64, 64, 1.0), (3, 64, 64, 1.0)))), "3 sections", names="mic_2.mrc"),
    error("micrographs_too_small", with_input("--micrographs", lambda tmp, b: _mics(
        tmp, ((16, 16, 1.0),))), "too small for a micrograph", names="mic_1.mrc"),
    error("tilt_coordinates_without_x", lambda tmp, b: _tilt_coordinates(
        tmp, b, u_columns=("rlnMicrographName", "rlnCoordinateY")),
        "no rlnCoordinateX column", names="u.star"),
    error("tilt_micrograph_not_found", lambda tmp, b: _tilt_coordinates(
        tmp, b, u_mic="elsewhere.mrc"), "'elsewhere.mrc' (row 1) is not among the 1 files",
        names="u.star"),
    error("tilt_coordinates_unequal_rows", lambda tmp, b: _tilt_coordinates(tmp, b, t_rows=2),
          "2 tilted coordinates", "must be as many", names="t.star"),
    report("micrographs_star_without_names", lambda tmp, b: [
        b["map"], *t(b), "--formats", "json", "--levels", "0,5", "--micrographs",
        _mics(tmp, ((128, 128, 1.0),)), "--particles", _star_without_names(tmp)],
        lambda rep: (item(rep, "5.a")["status"] == "not_applicable"
                     and "no rlnMicrographName column" in item(rep, "5.a")["reason"]
                     and not rep["inputs"]["micrographs"]["coordinates"]["available"])
        or pytest.fail(str(item(rep, "5.a")))),
]


def _star_without_names(tmp):
    """A RELION STAR of 3 particles with coordinates but no rlnMicrographName."""
    _mrc(tmp / "parts.mrcs", np.random.default_rng(0).standard_normal((3, 16, 16)).astype(
        np.float32), 1.0)
    rows = "".join(f"{i + 1:06d}@parts.mrcs {10 * i + 5} 20\n" for i in range(3))
    (tmp / "parts.star").write_text("data_\nloop_\n_rlnImageName #1\n_rlnCoordinateX #2\n"
                                    "_rlnCoordinateY #3\n" + rows)
    return str(tmp / "parts.star")


def _tilt_coordinates(tmp, b, u_columns=("rlnMicrographName", "rlnCoordinateX",
                                         "rlnCoordinateY"), u_mic="mic_1.mrc", t_rows=3):
    """argv for O.c from micrographs (--tilt-micrographs): one 128² micrograph and two
    coordinate STAR files (3 rows each unless told; the untilted one with ``u_columns`` and
    naming ``u_mic``)."""
    pattern = _mics(tmp, ((128, 128, VOXEL),))
    values = {"rlnMicrographName": u_mic, "rlnCoordinateX": "64", "rlnCoordinateY": "60"}

    def star(name, columns, mic, rows):
        head = "".join(f"_{c} #{k}\n" for k, c in enumerate(columns, 1))
        body = "".join(" ".join({**values, "rlnMicrographName": mic}[c] for c in columns) + "\n"
                       for _ in range(rows))
        (tmp / name).write_text("data_particles\nloop_\n" + head + body)
        return str(tmp / name)

    untilted = star("u.star", u_columns, u_mic, 3)
    tilted = star("t.star", ("rlnMicrographName", "rlnCoordinateX", "rlnCoordinateY"),
                  "mic_1.mrc", t_rows)
    return [b["map"], *t(b), "--formats", "json", "--tilt-pairs", untilted, tilted,
            "--tilt-micrographs", pattern, "--tilt-angle", "30"]


def _mics(tmp, specs):
    """Micrographs tmp/mics/mic_K.mrc of the given (*shape, pixel) and their glob pattern."""
    os.makedirs(tmp / "mics", exist_ok=True)
    for k, (*shape, px) in enumerate(specs, 1):
        data = np.random.default_rng(k).standard_normal(shape).astype(np.float32)
        _mrc(tmp / "mics" / f"mic_{k}.mrc", data, px)
    return str(tmp / "mics" / "*.mrc")


# ---- data scale ----------------------------------------------------------------------------
def _strict_finite(rep):
    """No item gives a verdict on a number that is not finite."""
    for it in rep["items"]:
        if it["status"] in ("ok", "warnings"):
            for k, v in it["metrics"].items():
                if isinstance(v, float):
                    assert np.isfinite(v), (it["id"], k, v)


def _scaled(factor, name):
    def make(tmp, b):
        p = _mrc(tmp / name, (b["vol"].astype(np.float64) * factor).astype(np.float32))
        return [p, *t(b, factor), "-r", str(RES), "--formats", "json"]
    return make


def _item_returns_nan(tmp, monkeypatch):
    from cryovalid.items import bfactor

    real = bfactor.run

    def nan_run(ctx):
        res = real(ctx)
        res.metrics["bfactor_A2"] = float("nan")
        return res
    monkeypatch.setattr(bfactor, "run", nan_run)


def _nan_item_failed(rep):
    d = item(rep, "0.d")
    assert d["status"] == "failed" and "bfactor_A2" in d["reason"], d
    assert "not a finite number" in d["reason"] and d["metrics"]["bfactor_A2"] is None
    assert not d["warnings"] and "0.d" not in [w["id"] for w in rep["warnings_summary"]]


def _item_raises(exc):
    def setup(tmp, monkeypatch):
        from cryovalid.items import background

        def boom(ctx):
            raise exc
        monkeypatch.setattr(background, "run", boom)
    return setup


def _reason_in_words(*words, technical):
    def check(rep):
        c = item(rep, "0.c")
        assert c["status"] == "failed", c
        assert not c["reason"].startswith(("ValueError", "ZeroDivisionError", "KeyError")), c
        assert all(w in c["reason"] for w in words), c["reason"]
        assert any(technical in n for n in c["notes"]), c["notes"]  # the detail is kept
    return check


ITEM_CASES = [
    report("item_metric_not_finite", good_with("-r", str(RES)), _nan_item_failed,
           setup=_item_returns_nan),
    report("item_raises_value_error", good_with(), _reason_in_words(
        "no background voxels", technical="ValueError"),
        setup=_item_raises(ValueError("no background voxels outside the mask"))),
    report("item_divides_by_zero", good_with(), _reason_in_words(
        "divided by zero", technical="ZeroDivisionError"),
        setup=_item_raises(ZeroDivisionError("float division by zero"))),
    report("item_has_a_bug", good_with(), _reason_in_words(
        "internal error", technical="KeyError"), setup=_item_raises(KeyError("x"))),
    error("voxel_100_resolution_4", good_with("--voxel-size", "100", "-r", "4"), "Nyquist"),
]


SCALE_CASES = [
    report("map_scaled_by_1e30", _scaled(1e30, "big.mrc"), _strict_finite),
    report("map_scaled_by_1e-30", _scaled(1e-30, "small.mrc"), _strict_finite),
]

def _previous_report_with(name, kind):
    """An --out folder whose earlier report (per its manifest) wrote ``name``; --force must
    replace it, and a same-named entry the manifest does not list must not be replaced."""
    def make(tmp, b):
        out = tmp / "prev"
        out.mkdir(exist_ok=True)
        (out / "report.json").write_text("{}")
        if kind == "dir":
            (out / name).mkdir()
            (out / name / "old.cif").write_text("old")
        else:
            (out / name).write_text("old")
        return [b["map"], *t(b), "-r", str(RES), "--formats", "json", "--model",
                simulate.EXAMPLE_MODEL, "--out", str(out), "--force"]
    return make


def _listed(make, name):
    def wrapped(tmp, b):
        argv = make(tmp, b)
        (tmp / "prev" / MANIFEST_NAME).write_text(f"report.json\n{name}\n")
        return argv
    return wrapped


MANIFEST_CASES = [
    report("force_replaces_what_the_manifest_lists",
           _listed(_previous_report_with("model", "dir"), "model"),
           lambda rep: item(rep, "A.a")["status"] in ("ok", "warnings", "not_applicable"),
           out=None),
    error("force_keeps_what_no_manifest_lists", _previous_report_with("model", "dir"),
          "not part of a cryovalid report", code=2, out=None),
]


CATALOGUE = (MANIFEST_CASES + FILE_CASES + OPTION_CASES + OUT_CASES + HALF_CASES + MODEL_CASES
             + OTHER_CASES + ITEM_CASES + SCALE_CASES)


def _no_nan(text):
    def bad(c):
        raise AssertionError(f"report.json holds {c}: not strict JSON")
    return json.loads(text, parse_constant=bad)


def _snapshot(paths):
    out = {}
    for p in paths:
        try:
            if os.path.isfile(p) and not os.path.islink(p) or os.path.islink(p) and \
                    os.path.isfile(os.path.realpath(p)):
                st = os.stat(p)
                out[os.path.realpath(p)] = (hashlib.sha256(open(p, "rb").read()).hexdigest(),
                                            st.st_mtime_ns)
        except OSError:
            pass
    return out


def test_catalogue_is_large_enough():
    assert len(CATALOGUE) >= 60
    assert len({c.id for c in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_bad_input(case, base, tmp_path, capsys, monkeypatch):
    if case.skip:
        pytest.skip(case.skip)
    argv = [str(a) for a in case.make(tmp_path, base)]
    if case.out is not None:
        argv += ["--out", str(tmp_path / case.out)]
    if case.setup is not None:
        case.setup(tmp_path, monkeypatch)
    inputs = [a for a in argv if os.path.exists(a) and not os.path.isdir(a)
              and not a.startswith("/dev/")]
    before = _snapshot(inputs)
    capsys.readouterr()
    try:
        code = cli.main(["report", *argv, "--quiet"])
    finally:
        while _HELD:
            os.close(_HELD.pop())
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert code == case.code, err
    if case.code:
        assert len(err.splitlines()) == 1, err
        assert err.startswith("cryovalid: "), err
        for w in case.words:
            assert w in err, (w, err)
        if case.names:
            assert case.names in err, err
    else:
        out = next(argv[i + 1] for i, a in enumerate(argv) if a == "--out")
        rep = _no_nan(open(os.path.join(out, "report.json")).read())
        if case.check is not None:
            case.check(rep)
        # no staging folder or lock left behind (the manifest lists what the report wrote)
        assert not [e for e in os.listdir(out) if e.startswith(".cryovalid")
                    and e != MANIFEST_NAME]
    if case.post is not None:
        case.post(tmp_path, err)
    # no input file was written to, moved or deleted
    assert _snapshot(inputs) == before


# ---- the same, as a user runs it: a separate process, no traceback on stderr ----------------
@pytest.mark.parametrize("case_id", ["gzip_corrupt", "voxel_size_1e-30", "out_maps_is_a_file",
                                     "image_stack"])
def test_no_traceback_in_a_real_process(case_id, base, tmp_path):
    case = next(c for c in CATALOGUE if c.id == case_id)
    argv = [str(a) for a in case.make(tmp_path, base)]
    if case.out is not None:
        argv += ["--out", str(tmp_path / case.out)]
    proc = subprocess.run([sys.executable, "-m", "cryovalid", "report", *argv, "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
