"""Command line: ``cryovalid report MAP [options]``, ``cryovalid emdb EMD-N``, ``cryovalid batch
…`` and ``cryovalid serve``.

Exit status: 0 when the report is written; 2 with a one-line message for bad input (a missing,
corrupt or inconsistent file, an option out of range, an output folder that cannot be used, a
file that cannot be read or written); 1 for an internal error (one line, the traceback in a
debug log); 130 when interrupted. docs/errors.md lists every check.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time

from cryovalid import __version__
from cryovalid.api import FORMATS, MAX_PARTICLES
from cryovalid.errors import InputError

DESCRIPTION = """\
Validate a cryo-EM map and write a report (report.json, report.html, report.pdf, figures/,
maps/, chimerax/) to --out. Level 0 needs only the map; --half-maps adds Level 1, --classes
Level 2, --particles Level 3 (and Level 4 when they carry angles), --micrographs Level 5,
--model Level A, --crosslinks/--saxs/--tilt-pairs Level O, --workflow Level W.

Level 0: Input data (slices, projections, isosurfaces, masks); 0.a mass analysis (centring,
free space); 0.b mask analysis (threshold, connectivity, threshold-mass table); 0.c background
(zero-mean noise, 5-sigma outliers); 0.d B-factor (Guinier fit); 0.e local resolution
(monogenic); 0.f local B-factor; 0.g local occupancy; 0.h hand (alpha-helix twist).
Level 1: half maps; 1.a global resolution (FSC, DPR, SSNR; fsc.csv); 1.b FDR-FSC; 1.c local
FSC; 1.d ResMap; 1.e MonoRes; 1.f MonoDir; 1.g FSO; 1.h 3D FSC; with --model also A.b FSC-Q.
Level 2: 2D classes; 2.a reprojection consistency (projection matching, residuals).
Level 3 (--particles with --classes): 3.a outliers (core analysis); 3.b internal consistency
(split-half FRC; with rlnClassNumber, do the particles fit their classes); 3.c external
consistency (our own 2-D classification); particles with a CTF are phase-flipped. Level 4 (particles with angles): 4.a similarity (CC, IMED); 4.b alignability
smoothness; 4.c alignability precision and accuracy; 4.d against --angles-b; 4.e
classification without alignment; 4.f overfitting; 4.g angular efficiency (cryoEF model); 4.h
SCF; 4.i CTF stability. Level 5 (--micrographs with the particles' coordinates): 5.a bad
regions (a non-learned local-statistics detector).
Level O: O.a cross-links (SASD, with --model); O.b SAXS (map profile vs curve); O.c tilt
pairs (extracted stacks, or coordinates with --tilt-micrographs). Level W: W.a workflow graph.
Level A: atomic model; A.0 fit gate (CC_mask, candidate placements); A.a map-model fit
(CC_mask/box/volume/peaks, per-residue CC, d99, d_model, FSC-model; residues.csv); A.c
multimodel; A.d map-model Guinier match; A.e Q-score (MapQ); A.f EMRinger; A.g SMOC.
Items that need --resolution say 'Does not apply' without it.
"""


BATCH_DESCRIPTION = """\
Write one report per entry into OUT/<entry>/ (EMDB entries are fetched as 'cryovalid emdb'
does; local maps are graded as 'cryovalid report' does) on Dask: a local cluster of --workers
processes by default, or the cluster of a running scheduler (--scheduler; Dask's deployments
start one on SLURM, PBS or Kubernetes). Each entry is isolated: a bad entry fails alone with
its one-line reason, and an entry whose worker died is run once more, then failed. A rerun
skips the entries whose report is complete. summary.csv, summary.json and summary.html list
every entry: its status, levels, score, and each item's status and headline metric.
Exit 0 when every entry is complete, 3 when the batch ran but some entries failed (see
summary.csv), 2 for bad input (an entry list, an option), 1 for an internal error.
"""

EXIT_SOME_FAILED = 3


def _positive(name, zero: bool = False):
    """An argparse type: a finite number above 0 (``zero``: at least 0), else one line."""
    rule = "finite and not negative" if zero else "positive and finite"

    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if v != v:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}")
        if not ((v >= 0 if zero else v > 0) and v < float("inf")):
            raise argparse.ArgumentTypeError(f"{name} must be {rule}, got {text}")
        return v
    return parse


def _count(name):
    """An argparse type: a whole number, at least 0, else one line."""
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got "
                                             f"{text!r}") from None
        if v < 0:
            raise argparse.ArgumentTypeError(f"{name} must be at least 0, got {v}")
        return v
    return parse


def _finite_number(name):
    """An argparse type: any finite number (negative too), else one line."""
    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if v != v or v in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{name} must be finite, got {text}")
        return v
    return parse


_finite = _finite_number("threshold")


def _levels(text):
    from cryovalid.api import check_levels

    try:
        return check_levels(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _symmetry(text):
    from cryovalid.api import check_symmetry

    try:
        return check_symmetry(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _workers(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"workers must be a whole number, got {text!r}") \
            from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"workers must be at least 1, got {v}")
    return v


LEVELS_HELP = ("comma-separated levels to grade, e.g. 0,1 (default: every level whose input "
               "is given); the others are listed as not run")


def _formats(text):
    out = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise argparse.ArgumentTypeError(
            f"unknown format(s) {', '.join(bad) or text!r}; choose from {', '.join(FORMATS)}")
    return out


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # read "-1e9" as a negative number (a threshold), not as an unknown option
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

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
                        "automatically (1 %% false discovery rate against the noise measured "
                        "next to the molecule, checked to show one body) and the report says so")
    r.add_argument("--resolution", "-r", type=_positive("resolution"), metavar="R",
                   help="reported global resolution in Å. Without it, the items that need it "
                        "say 'Does not apply'")
    r.add_argument("--out", "-o", required=True, metavar="DIR", help="output directory")
    r.add_argument("--voxel-size", type=_positive("voxel size"), metavar="A",
                   help="voxel size in Å, overriding the map header")
    r.add_argument("--half-maps", nargs=2, metavar=("H1", "H2"),
                   help="the two half maps (adds Level 1); they must match the map in box, "
                        "voxel size and origin")
    r.add_argument("--model", metavar="FILE",
                   help="atomic model fitted to the map, PDB or mmCIF (.gz too; adds Level A: "
                        "fit gate, map-model CCs and FSC, Q-score, EMRinger, SMOC, and "
                        "FSC-Q with half maps)")
    r.add_argument("--classes", metavar="STACK",
                   help="2D class averages, an MRC stack (.mrcs; adds Level 2: reprojection "
                        "consistency)")
    r.add_argument("--classes-pixel", type=_positive("classes pixel size"), metavar="A",
                   help="pixel size of the classes in Å, overriding the stack's header")
    r.add_argument("--symmetry", type=_symmetry, default="c1", metavar="SYM",
                   help="point group of the particle: c1 (default), cN, dN, t, o or i")
    r.add_argument("--particles", metavar="FILE",
                   help="the particles: a RELION STAR file (3.0 or 3.1+) or an MRC stack (adds "
                        "Level 3 with --classes)")
    r.add_argument("--particles-pixel", type=_positive("particles pixel size"), metavar="A",
                   help="pixel size of the particles in Å, overriding the file's")
    r.add_argument("--max-particles", type=_count("--max-particles"), metavar="N",
                   default=None,
                   help=f"analyse at most N particles, a seeded random subset beyond "
                        f"(default {MAX_PARTICLES}; 0: all); Level 5 uses every particle's "
                        f"coordinates")
    r.add_argument("--kv", type=_positive("voltage"), metavar="KV",
                   help="acceleration voltage, kV (overriding the STAR file's)")
    r.add_argument("--cs", type=_positive("Cs", zero=True), metavar="MM",
                   help="spherical aberration, mm (overriding the STAR file's)")
    r.add_argument("--q0", type=_positive("Q0", zero=True), metavar="Q0",
                   help="amplitude contrast, a fraction (overriding the STAR file's)")
    r.add_argument("--angles-b", metavar="FILE",
                   help="a second, independent angular assignment of the same particles (RELION "
                        "STAR): 4.d compares the two")
    r.add_argument("--crosslinks", metavar="FILE",
                   help="XL-MS cross-links, Jwalk's res1|chain1|res2|chain2| lines or a CSV "
                        "res1,chain1,res2,chain2[,linker] (adds Level O: O.a, with --model)")
    r.add_argument("--crosslink-max", type=_positive("cross-link maximum"), metavar="A",
                   help="longest solvent-accessible surface distance a link may span, Å "
                        "(default: by linker; DSS/BS3 33 Å)")
    r.add_argument("--saxs", metavar="CURVE",
                   help="experimental SAXS curve, columns q I(q) [sigma] (adds Level O: O.b)")
    r.add_argument("--tilt-pairs", nargs=2, metavar=("UNTILTED", "TILTED"),
                   help="particle pairs from an untilted and a tilted micrograph: two stacks "
                        "(or STAR files) whose images are paired by position (adds Level O: O.c)")
    r.add_argument("--tilt-angle", type=_finite_number("tilt angle"), metavar="DEG",
                   help="the nominal tilt of the pairs, degrees, either sign (needed with "
                        "--tilt-pairs)")
    r.add_argument("--tilt-micrographs", metavar="GLOB",
                   help="the tilt pairs' micrographs, a quoted glob of MRC files (untilted and "
                        "tilted): --tilt-pairs are then two coordinate STAR files "
                        "(rlnMicrographName, rlnCoordinateX/Y) paired by row (or EMAN2 info "
                        "JSONs, or Xmipp .pos files, of one pair), and the pairs are "
                        "cut from the micrographs with the map's box, contrast inverted")
    r.add_argument("--tilt-pixel", type=_positive("tilt-pair pixel size"), metavar="A",
                   help="pixel size of the pair images (or of their micrographs) in Å, "
                        "overriding their header")
    r.add_argument("--micrographs", metavar="GLOB",
                   help="the micrographs, a quoted glob pattern of MRC files, e.g. 'mics/*.mrc' "
                        "(adds Level 5, with --particles carrying rlnMicrographName and "
                        "rlnCoordinateX/Y)")
    r.add_argument("--micrographs-pixel", type=_positive("micrograph pixel size"), metavar="A",
                   help="pixel size of the micrographs in Å, overriding their header")
    r.add_argument("--workflow", metavar="FILE",
                   help="the image-processing workflow: a Scipion workflow JSON or a RELION "
                        "default_pipeline.star (adds Level W)")
    r.add_argument("--formats", type=_formats, default=list(FORMATS), metavar="LIST",
                   help="comma-separated output formats among json,html,pdf (default: all)")
    r.add_argument("--levels", type=_levels, default=None, metavar="LIST", help=LEVELS_HELP)
    r.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    r.add_argument("--force", action="store_true",
                   help="replace the report already in --out (without it, a folder that holds "
                        "another report is refused, so that two reports never mix)")

    e = sub.add_parser(
        "emdb", help="fetch an EMDB entry (map, half maps, fitted model) and report on it",
        description=("Fetch an EMDB entry's header, primary map, half maps and fitted models "
                     "(mmCIF from the PDB) into a cache, then write the report as 'cryovalid "
                     "report' does, with the entry's recommended contour as the threshold, "
                     "its reported resolution, and a front page naming the entry and where "
                     "each input came from (URL and SHA-256). Files the archive lacks lower "
                     "the levels graded, with a note. Archive locations: --mirror / "
                     "--pdb-mirror, or CRYOVALID_EMDB_MIRROR / CRYOVALID_PDB_MIRROR; a URL, a "
                     "file:// URL or a local folder laid out like the archive."),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("entry", metavar="EMD-N", help="the entry, e.g. EMD-5138 (or 5138)")
    e.add_argument("--out", "-o", required=True, metavar="DIR", help="output directory")
    e.add_argument("--cache", metavar="DIR", default=None,
                   help="where downloads are kept, by entry (default: ~/.cache/cryovalid/emdb)")
    e.add_argument("--mirror", metavar="URL_OR_DIR", default=None,
                   help="EMDB archive base (default: CRYOVALID_EMDB_MIRROR, else EBI's FTP site)")
    e.add_argument("--pdb-mirror", metavar="URL_OR_DIR", default=None,
                   help="PDB archive base (default: CRYOVALID_PDB_MIRROR, else wwPDB's)")
    e.add_argument("--formats", type=_formats, default=list(FORMATS), metavar="LIST",
                   help="comma-separated output formats among json,html,pdf (default: all)")
    e.add_argument("--levels", type=_levels, default=None, metavar="LIST",
                   help=LEVELS_HELP + "; half maps and models are fetched only for the levels "
                                      "that grade them")
    e.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    e.add_argument("--force", action="store_true",
                   help="replace the report already in --out")

    b = sub.add_parser(
        "batch", help="many reports (EMDB IDs or local maps) on a Dask cluster",
        description=BATCH_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("sources", nargs="+", metavar="ENTRIES.txt|ENTRIES.csv|DIR",
                   help="text files (one EMDB ID or map path per line), CSV files (a map or "
                        "emdb_id column, and optionally name, half_map_1, half_map_2, model, "
                        "threshold, resolution, voxel_size, levels) or folders of maps")
    b.add_argument("--out", "-o", required=True, metavar="DIR",
                   help="output folder: one report folder per entry, and summary.csv, "
                        "summary.json, summary.html")
    b.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="address of a running Dask scheduler (tcp://host:8786); default: a "
                        "local cluster on this machine")
    b.add_argument("--workers", type=_workers, default=None, metavar="N",
                   help="local worker processes, one report each at a time (default: the "
                        "number of CPUs); ignored with --scheduler")
    b.add_argument("--cache", metavar="DIR", default=None,
                   help="EMDB download cache, by entry (default: ~/.cache/cryovalid/emdb); "
                        "with --scheduler it must be on a file system every worker sees")
    b.add_argument("--mirror", metavar="URL_OR_DIR", default=None,
                   help="EMDB archive base (default: CRYOVALID_EMDB_MIRROR, else EBI's FTP site)")
    b.add_argument("--pdb-mirror", metavar="URL_OR_DIR", default=None,
                   help="PDB archive base (default: CRYOVALID_PDB_MIRROR, else wwPDB's)")
    b.add_argument("--formats", type=_formats, default=list(FORMATS), metavar="LIST",
                   help="comma-separated output formats among json,html,pdf (default: all)")
    b.add_argument("--levels", type=_levels, default=None, metavar="LIST",
                   help=LEVELS_HELP + " (a CSV's levels column overrides it per entry)")
    b.add_argument("--quiet", "-q", action="store_true", help="no progress bar on stderr")

    from cryovalid.service.cli import add_parser as add_serve_parser

    add_serve_parser(sub)
    return p


def _progress_printer():
    """progress(label, seconds, status): one line per step on stderr (rich)."""
    from rich.console import Console

    console = Console(stderr=True, highlight=False)

    def progress(label, seconds, status=""):
        tail = f"  [dim]{status}[/dim]" if status else ""
        console.print(f"[green]✓[/green] {label:<44} {seconds:6.1f} s{tail}")

    return progress


def report(args) -> int:
    from cryovalid.api import Inputs, Options, validate
    from cryovalid.io.output import OutputFolder

    t_start = time.perf_counter()
    inputs = Inputs(map=args.map, half_maps=tuple(args.half_maps) if args.half_maps else None,
                    model=args.model, classes=args.classes, particles=args.particles,
                    angles_b=args.angles_b,
                    crosslinks=args.crosslinks,
                    saxs=args.saxs, workflow=args.workflow,
                    tilt_pairs=tuple(args.tilt_pairs) if args.tilt_pairs else None,
                    micrographs=args.micrographs, tilt_micrographs=args.tilt_micrographs)
    options = Options(threshold=args.threshold, resolution=args.resolution,
                      voxel_size=args.voxel_size, formats=tuple(args.formats),
                      levels=args.levels, classes_pixel=args.classes_pixel,
                      symmetry=args.symmetry, crosslink_max_A=args.crosslink_max,
                      particles_pixel=args.particles_pixel, max_particles=args.max_particles,
                      voltage_kv=args.kv, cs_mm=args.cs,
                      q0=args.q0, tilt_angle=args.tilt_angle, tilt_pixel=args.tilt_pixel,
                      micrographs_pixel=args.micrographs_pixel)
    # the CLI owns the store, so that on a failure it can say where the work done was kept
    args.output_folder = OutputFolder(args.out, inputs=inputs.paths(), force=args.force)
    rep = validate(inputs, options, store=args.output_folder,
                   progress=None if args.quiet else _progress_printer())
    if not args.quiet:
        sc = rep["score"]
        print(f"cryovalid: {sc['passed']} of {sc['evaluable']} evaluable items passed; report "
              f"in {args.out} ({time.perf_counter() - t_start:.1f} s)", file=sys.stderr)
    return 0


def emdb(args) -> int:
    from cryovalid.api import validate
    from cryovalid.emdb.entry import prepare
    from cryovalid.emdb.fetch import Mirror
    from cryovalid.io.output import OutputFolder

    t_start = time.perf_counter()
    kw = {k: v for k, v in (("emdb", args.mirror), ("pdb", args.pdb_mirror)) if v}
    with _download_bars(args.quiet) as downloaded:
        entry = prepare(args.entry, cache=_cache(args), mirror=Mirror(**kw),
                        formats=args.formats, levels=args.levels, progress=downloaded)
    if not args.quiet:
        for note in entry.notes:
            print(f"  note: {note}", file=sys.stderr)
    args.output_folder = OutputFolder(args.out, inputs=entry.inputs.paths(), force=args.force)
    rep = validate(entry.inputs, entry.options, store=args.output_folder,
                   progress=None if args.quiet else _progress_printer())
    if not args.quiet:
        sc = rep["score"]
        print(f"cryovalid: {entry.metadata['emdb_id']}: {sc['passed']} of {sc['evaluable']} "
              f"evaluable items passed; report in {args.out} "
              f"({time.perf_counter() - t_start:.1f} s)", file=sys.stderr)
    return 0


def _cache(args) -> str:
    return args.cache or os.path.join(os.path.expanduser("~"), ".cache", "cryovalid", "emdb")


class _download_bars:
    """A rich progress bar per downloaded file (bytes, speed, time left) on stderr; a callback
    ``(name, done_bytes, total_bytes)`` for :func:`cryovalid.emdb.entry.prepare`."""

    def __init__(self, quiet: bool):
        self.quiet, self.bars, self.tasks = quiet, None, {}

    def __enter__(self):
        if self.quiet:
            return lambda name, done, total: None
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)

        self.bars = Progress(TextColumn("  {task.description:<28}"), BarColumn(),
                             DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                             console=Console(stderr=True), transient=False)
        self.bars.start()
        return self.update

    def update(self, name, done, total):
        task = self.tasks.get(name)
        if task is None:
            task = self.tasks[name] = self.bars.add_task(name, total=total)
        self.bars.update(task, completed=done, total=total)

    def __exit__(self, *exc):
        if self.bars is not None:
            self.bars.stop()
        return False


def batch(args) -> int:
    from cryovalid.batch import BatchSettings, read_entries, run_batch

    entries = read_entries(args.sources)
    settings = BatchSettings(cache=os.path.abspath(_cache(args)), emdb_mirror=args.mirror,
                             pdb_mirror=args.pdb_mirror, formats=tuple(args.formats),
                             levels=args.levels)
    with _batch_bar(args.quiet, len(entries)) as progress:
        summary = run_batch(entries, os.path.abspath(args.out), settings=settings,
                            scheduler=args.scheduler, workers=args.workers, progress=progress)
    if not args.quiet:
        print(f"cryovalid: {summary['complete']} of {summary['entries']} entries complete, "
              f"{summary['failed']} failed; summary in "
              f"{os.path.join(args.out, 'summary.html')} ({summary['seconds']:.1f} s)",
              file=sys.stderr)
        for row in summary["rows"]:
            if row["status"] == "failed":
                print(f"  {row['entry']}: {row['error']}", file=sys.stderr)
    return EXIT_SOME_FAILED if summary["failed"] else 0


class _batch_bar:
    """One rich bar for the whole batch: entries done / failed / running."""

    def __init__(self, quiet: bool, total: int):
        self.quiet, self.total, self.bar, self.task = quiet, total, None, None

    def __enter__(self):
        if self.quiet:
            return lambda *a: None
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        self.bar = Progress(TextColumn("batch"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
                            console=Console(stderr=True))
        self.task = self.bar.add_task("batch", total=self.total, counts="")
        self.bar.start()
        return self.update

    def update(self, done, failed, running, total, skipped):
        counts = f"done {done} · failed {failed} · running {running}"
        if skipped:
            counts += f" · {skipped} complete before"
        self.bar.update(self.task, completed=done + failed, total=total, counts=counts)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a one-line usage error (exit 2)
        return int(exc.code or 0)
    from cryovalid.allocator import keep_freed_memory

    keep_freed_memory()  # this process owns its allocator: reuse freed arrays (allocator.py)
    try:
        from cryovalid.kernels.fourier import workers

        workers()  # CRYOVALID_WORKERS is read here first, so that a bad value is one line
    except ValueError as exc:
        print(f"cryovalid: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    # Every failure ends in one line on stderr, never a traceback (docs/errors.md): 2 for bad
    # input or a file that cannot be read or written, 1 for an internal error (its traceback
    # goes to a debug log whose path the line gives), 130 when interrupted. Work already done
    # is kept in the staging folder and the line says where.
    try:
        if args.command == "report":
            return report(args)
        if args.command == "emdb":
            return emdb(args)
        if args.command == "batch":
            return batch(args)
        if args.command == "serve":
            from cryovalid.service.cli import serve

            return serve(args)
    except InputError as exc:
        print(f"cryovalid: error: {_one_line(exc)}{_kept(args, keep=False)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cryovalid: interrupted{_kept(args)}", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk, a permission, a folder where a file goes, ...
        where = exc.filename or getattr(args, "out", "")
        what = exc.strerror or _one_line(exc)
        print(f"cryovalid: error: {where}: {what}{_kept(args)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"cryovalid: error: ran out of memory{_kept(args)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - last resort: one line and a debug log
        log = _write_debug_log(args)
        print(f"cryovalid: internal error ({type(exc).__name__}: {_one_line(exc)}); please "
              f"report it with the details in {log}{_kept(args)}", file=sys.stderr)
        return 1
    finally:
        out = getattr(args, "output_folder", None)
        if out is not None:
            out.release()
    return 1


def _one_line(exc) -> str:
    text = str(exc).strip()
    return " ".join(text.split()) if text else type(exc).__name__


def _kept(args, keep: bool = True) -> str:
    """Remove the staging folder (or keep it when work was done) and say where it is."""
    out = getattr(args, "output_folder", None)
    if out is None:
        return ""
    already_said = out.keep  # a failed move into place names the staging folder itself
    kept = out.abandon(keep=keep)
    return f" (the work done so far is in {kept})" if kept and not already_said else ""


def _write_debug_log(args) -> str:
    import traceback

    from cryovalid.io.output import debug_log_path

    path = debug_log_path(getattr(args, "out", None))
    inputs = [getattr(args, "map", None), *(getattr(args, "half_maps", None) or []),
              *(getattr(args, k, None) for k in ("model", "classes", "particles", "angles_b",
                                                 "crosslinks", "saxs", "workflow")),
              *(getattr(args, "tilt_pairs", None) or [])]
    if any(p and os.path.realpath(p) == os.path.realpath(path) for p in inputs):
        path = debug_log_path(None)  # never write over an input, even here
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(f"cryovalid {__version__}\nargv: {sys.argv!r}\n\n")
            fh.write(traceback.format_exc())
    except OSError:
        return "(no debug log could be written)"
    return path


if __name__ == "__main__":
    raise SystemExit(main())
