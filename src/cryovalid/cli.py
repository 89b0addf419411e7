"""Command line: ``cryovalid report MAP [options]``.

Exit status: 0 when the report is written; 2 with a one-line message for bad input (a missing,
corrupt or inconsistent file, an option out of range); 1 for an internal error.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from cryovalid import __version__
from cryovalid.errors import InputError

FORMATS = ("json", "html", "pdf")

DESCRIPTION = """\
Validate a cryo-EM map and write a report (report.json, report.html, report.pdf, figures/,
maps/, chimerax/) to --out. Level 0 needs only the map; --half-maps adds Level 1.

Level 0: Input data (slices, projections, isosurfaces, masks); 0.a mass analysis (centring,
free space); 0.b mask analysis (threshold, connectivity, threshold-mass table); 0.c background
(zero-mean noise, 5-sigma outliers); 0.d B-factor (Guinier fit); 0.e local resolution
(monogenic); 0.f local B-factor; 0.g local occupancy; 0.h hand (alpha-helix twist).
Level 1: half maps; 1.a global resolution (FSC, DPR, SSNR; fsc.csv); 1.b FDR-FSC.
Items that need --resolution say 'Does not apply' without it.
"""


def _positive(name):
    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not (v > 0 and v < float("inf")):
            raise argparse.ArgumentTypeError(f"{name} must be positive, got {text}")
        return v
    return parse


def _finite(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"threshold must be a number, got {text!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"threshold must be finite, got {text}")
    return v


def _formats(text):
    out = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise argparse.ArgumentTypeError(
            f"unknown format(s) {', '.join(bad) or text!r}; choose from {', '.join(FORMATS)}")
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, as for every user mistake
        self.exit(2, f"cryovalid: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cryovalid", description="cryo-EM map validation reports",
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"cryovalid {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("report", help="validate a map and write the report",
                       description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("map", metavar="MAP", help="the map (.mrc, .map, .ccp4, optionally .gz)")
    r.add_argument("--threshold", "-t", type=_finite, metavar="T",
                   help="visualisation threshold (density level). Without it, one is chosen "
                        "automatically (robust noise level + 5 sigma) and the report says so")
    r.add_argument("--resolution", "-r", type=_positive("resolution"), metavar="R",
                   help="reported global resolution in Å. Without it, the items that need it "
                        "say 'Does not apply'")
    r.add_argument("--out", "-o", required=True, metavar="DIR", help="output directory")
    r.add_argument("--voxel-size", type=_positive("voxel size"), metavar="A",
                   help="voxel size in Å, overriding the map header")
    r.add_argument("--half-maps", nargs=2, metavar=("H1", "H2"),
                   help="the two half maps (adds Level 1); they must match the map in box, "
                        "voxel size and origin")
    r.add_argument("--formats", type=_formats, default=list(FORMATS), metavar="LIST",
                   help="comma-separated output formats among json,html,pdf (default: all)")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    return p


def report(args) -> int:
    from cryovalid.context import Context
    from cryovalid.io.maps import read_map
    from cryovalid.kernels import threshold as thr
    from cryovalid.pipeline import run_analyses
    from cryovalid.report import model, render

    t_start = time.perf_counter()
    m = read_map(args.map, voxel_size=args.voxel_size)
    halves = None
    if args.half_maps:
        from cryovalid.io.halfmaps import read_half_maps

        halves = read_half_maps(args.half_maps[0], args.half_maps[1], m,
                                voxel_size=args.voxel_size)
    if args.threshold is None:
        threshold, method = thr.auto_threshold(m.data), thr.METHOD
    else:
        threshold, method = args.threshold, "given by the user"
    vmin, vmax = float(m.data.min()), float(m.data.max())
    if threshold >= vmax:
        raise InputError(f"{args.map}: threshold {threshold:g} is at or above the map maximum "
                         f"({vmax:g}); the mask would be empty, lower the threshold")
    if threshold <= vmin:
        raise InputError(f"{args.map}: threshold {threshold:g} is at or below the map minimum "
                         f"({vmin:g}); the whole box would be masked, raise the threshold")
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{args.out}: cannot create the output directory ({exc.strerror})") \
            from None
    ctx = Context(map=m, threshold=float(threshold), resolution=args.resolution,
                  out_dir=os.path.abspath(args.out), threshold_method=method, half_maps=halves)
    ctx.timings["read"] = time.perf_counter() - t_start
    sections, results = run_analyses(ctx, quiet=args.quiet)
    rep = model.build(ctx, sections, results)
    # report.json is always written (it is the machine-readable truth), last, so that it holds
    # the timings of the other writers too.
    for fmt in [f for f in args.formats if f != "json"]:
        t0 = time.perf_counter()
        render.WRITERS[fmt](rep, ctx.out_dir)
        ctx.timings[f"write {fmt}"] = time.perf_counter() - t0
    rep["timings_s"] = {k: round(float(v), 3) for k, v in ctx.timings.items()}
    render.write_json(rep, ctx.out_dir)
    if not args.quiet:
        sc = rep["score"]
        print(f"cryovalid: {sc['passed']} of {sc['evaluable']} evaluable items passed; report "
              f"in {args.out} ({time.perf_counter() - t_start:.1f} s)", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a one-line usage error (exit 2)
        return int(exc.code or 0)
    try:
        if args.command == "report":
            return report(args)
    except InputError as exc:
        print(f"cryovalid: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cryovalid: interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
