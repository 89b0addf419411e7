"""Receiving a submission: a multipart/form-data body streamed to disk, limited, checked.

* The declared size (``Content-Length``) is checked before a byte of the body is read: a too
  large upload is refused at once (413). The body is then parsed as it arrives (python-multipart's
  push parser) and each file written to the job folder with a running byte count, so that an
  upload that lied about its size, or sent none, is cut off at the limit too.
* Stored names never come from the client: the files become ``map.mrc``, ``half_map_1.mrc``,
  ``half_map_2.mrc`` and ``model.pdb`` / ``model.cif`` in ``DATA/jobs/<id>/``, with ``.gz``
  appended when the content is gzip (its magic bytes, not its name); the 2D classes
  ``classes.mrcs``, the particles ``particles.star`` (a STAR file, with its one stack as
  ``particles_stack.mrcs``) or ``particles.mrcs`` (a plain stack). Stacks are memory-mapped,
  so a gzipped stack is refused. A client file name is kept
  only to be shown (the job's default name, the names the report and the pages show: the
  row's ``names``), and one that is not a plain name (``../../etc/passwd``, a separator, a
  control character) is refused.
* Before a job is queued its files are read by the same readers the report uses
  (:func:`cryovalid.io.maps.read_map`, :func:`cryovalid.io.halfmaps.read_half_maps`,
  :func:`cryovalid.io.model.read_model`, :func:`cryovalid.io.stacks.read_classes`,
  :func:`cryovalid.io.particles.read_particles`), so that a truncated MRC, a PNG, an empty file or a
  file that is not a model is refused with the reader's one-line message (422), in which the
  server's path is replaced by the field and the client's file name.

Every refusal raises :class:`UploadError` (an HTTP status and a one-line message); the caller
removes the job folder, so nothing half written remains.
"""
from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Optional

from python_multipart.multipart import MultipartParser, parse_options_header

FILE_FIELDS = ("map", "half_map_1", "half_map_2", "model", "classes", "particles",
               "particles_stack")
STACK_FIELDS = ("classes", "particles", "particles_stack")  # memory-mapped: never gzipped
TEXT_FIELDS = ("threshold", "resolution", "emdb_id", "formats", "private", "name",
               "symmetry", "classes_pixel", "particles_pixel", "kv", "cs", "q0")
# the classes' and particles' options: form field -> (cryovalid.Options field, needs a file)
PARTICLE_OPTIONS = {"symmetry": ("symmetry", ("classes", "particles")),
                    "classes_pixel": ("classes_pixel", ("classes",)),
                    "particles_pixel": ("particles_pixel", ("particles",)),
                    "kv": ("voltage_kv", ("particles",)), "cs": ("cs_mm", ("particles",)),
                    "q0": ("q0", ("particles",))}
MAX_TEXT_BYTES = 1024           # a text field (a number, an ID, a list of formats)
MAX_PARTS = 32                  # parts in one submission (the form sends 19)
GZIP_MAGIC = b"\x1f\x8b"
MODEL_EXTENSIONS = {".pdb": ".pdb", ".ent": ".pdb", ".cif": ".cif", ".mmcif": ".cif"}
# at most this many submissions are read and checked at once (each check reads its maps)
CHECKS = threading.BoundedSemaphore(2)


class UploadError(Exception):
    """A refused submission: ``status`` (HTTP) and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(" ".join(str(message).split()))
        self.status = status


@dataclass
class StoredFile:
    field: str
    path: str          # absolute, inside the job folder
    client_name: str   # shown only
    size: int = 0
    head: bytes = b""  # the first bytes (content sniffing)


@dataclass
class Submission:
    fields: dict = field(default_factory=dict)   # text fields
    files: dict = field(default_factory=dict)    # field -> StoredFile


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n < (1 << 30) else f"{n / (1 << 30):.2f} GiB"


def check_client_name(name: str, fieldname: str) -> str:
    """The client's file name if it is a plain name, else UploadError (400)."""
    if len(name) > 255:
        raise UploadError(400, f"{fieldname}: the file name is longer than 255 characters")
    if ("/" in name or "\\" in name or name in (".", "..") or
            any(ord(c) < 32 or ord(c) == 127 for c in name)):
        raise UploadError(400, f"{fieldname}: the file name {name[:80]!r} is not a plain file "
                               f"name (no folders, no '..', no control characters)")
    return name


class _Receiver:
    """The callbacks of the push parser: headers, then data written with a byte count."""

    def __init__(self, folder: str, max_file: int, max_total: int):
        self.folder, self.max_file, self.max_total = folder, max_file, max_total
        self.sub = Submission()
        self.total = 0
        self.parts = 0
        self._reset()

    def _reset(self):
        self.headers, self.hname, self.hvalue = {}, b"", b""
        self.file, self.fh, self.text, self.textname = None, None, None, None

    # headers
    def on_part_begin(self):
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise UploadError(400, f"too many parts in the form (at most {MAX_PARTS})")
        self._reset()

    def on_header_field(self, data, start, end):
        self.hname += data[start:end]

    def on_header_value(self, data, start, end):
        self.hvalue += data[start:end]

    def on_header_end(self):
        self.headers[self.hname.decode("latin-1").lower()] = self.hvalue.decode("utf-8",
                                                                                "replace")
        self.hname, self.hvalue = b"", b""

    def on_headers_finished(self):
        disp, params = parse_options_header(self.headers.get("content-disposition", ""))
        if disp != b"form-data" or b"name" not in params:
            raise UploadError(400, "a part of the form has no field name")
        name = params[b"name"].decode("utf-8", "replace")
        if b"filename" in params:
            if name not in FILE_FIELDS:
                raise UploadError(400, f"unknown file field {name[:40]!r}; the files are "
                                       f"{', '.join(FILE_FIELDS)}")
            if name in self.sub.files:
                raise UploadError(400, f"{name}: given twice")
            client = params[b"filename"].decode("utf-8", "replace")
            if client == "":  # a file input left empty in a browser form: no file
                self.file = StoredFile(name, "", "")
                return
            check_client_name(client, name)
            tmp = os.path.join(self.folder, f".upload-{name}")
            self.fh = open(tmp, "xb")
            self.file = StoredFile(name, tmp, client)
        else:
            if name not in TEXT_FIELDS + FILE_FIELDS:  # a file field left empty: no file
                raise UploadError(400, f"unknown form field {name[:40]!r}; the fields are "
                                       f"{', '.join(FILE_FIELDS + TEXT_FIELDS)}")
            self.text, self.textname = bytearray(), name

    # data
    def on_part_data(self, data, start, end):
        n = end - start
        if self.text is not None:
            self.text += data[start:end]
            if len(self.text) > MAX_TEXT_BYTES:
                raise UploadError(400, f"{self.textname}: longer than {MAX_TEXT_BYTES} bytes")
            return
        if self.file is None:
            return
        if self.fh is None:
            if n:
                raise UploadError(400, f"{self.file.field}: file data without a file name")
            return
        self.file.size += n
        self.total += n
        if self.file.size > self.max_file:
            raise UploadError(413, f"{self.file.field} ({self.file.client_name}): larger than "
                                   f"the limit of {_mib(self.max_file)} per file")
        if self.total > self.max_total:
            raise UploadError(413, f"the upload is larger than the limit of "
                                   f"{_mib(self.max_total)}")
        if len(self.file.head) < 64:
            self.file.head += data[start:min(end, start + 64)]
        self.fh.write(data[start:end])

    def on_part_end(self):
        if self.text is not None and self.textname in FILE_FIELDS:
            if self.text.strip():
                raise UploadError(400, f"{self.textname}: send a file (a part with a file "
                                       f"name), not a text field")
        elif self.text is not None:
            self.sub.fields[self.textname] = self.text.decode("utf-8", "replace").strip()
        elif self.file is not None and self.fh is not None:
            self.fh.close()
            self.fh = None
            f = self.file
            if f.size == 0:
                raise UploadError(422, f"{f.field} ({f.client_name}): the file is empty")
            final = os.path.join(self.folder, stored_name(f))
            os.replace(f.path, final)
            f.path = final
            self.sub.files[f.field] = f
        self._reset()

    def close(self):
        if self.fh is not None:
            self.fh.close()
            self.fh = None

    def callbacks(self) -> dict:
        return {k: getattr(self, k) for k in (
            "on_part_begin", "on_header_field", "on_header_value", "on_header_end",
            "on_headers_finished", "on_part_data", "on_part_end")}


def stored_name(f: StoredFile) -> str:
    """The server's name for an uploaded file: fixed by its field, ``.gz`` by its content."""
    gz = ".gz" if f.head[:2] == GZIP_MAGIC else ""
    if f.field == "model":
        base = f.client_name.lower()
        if base.endswith(".gz"):
            base = base[:-3]
        ext = MODEL_EXTENSIONS.get(os.path.splitext(base)[1])
        if ext is None:  # no known extension: an mmCIF file starts with a data_ block
            ext = ".cif" if f.head.lstrip()[:5].lower() == b"data_" else ".pdb"
        return f"model{ext}{gz}"
    if f.field in STACK_FIELDS:
        if gz:
            raise UploadError(422, f"{f.field} ({f.client_name}): a gzipped file; the stacks "
                                   f"are memory-mapped, upload them uncompressed")
        if f.field == "particles" and is_star(f):
            return "particles.star"
        return f"{f.field}.mrcs"
    return f"{f.field}.mrc{gz}"


def is_star(f: StoredFile) -> bool:
    """Whether an uploaded particles file is a STAR file (its name, or a text start), not an
    MRC stack."""
    head = f.head.lstrip()
    return (f.client_name.lower().endswith(".star") or head[:5].lower() == b"data_" or
            head[:1] == b"#")


def check_declared_size(headers, max_total: int) -> None:
    """Refuse a body whose declared size is over the limit, before reading it (413)."""
    length = headers.get("content-length")
    if length is None:
        return
    try:
        n = int(length)
    except ValueError:
        raise UploadError(400, f"invalid Content-Length header {length[:40]!r}") from None
    if n < 0:
        raise UploadError(400, f"invalid Content-Length header {length[:40]!r}")
    if n > max_total:
        raise UploadError(413, f"the upload is {_mib(n)}, more than the limit of "
                               f"{_mib(max_total)}")


async def receive(request, folder: str, max_file: int, max_total: int) -> Submission:
    """Stream the multipart body of ``request`` into ``folder`` (which must exist, empty)."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype == b"application/x-www-form-urlencoded":  # fields only (an EMDB ID)
        return await _receive_fields(request)
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadError(415, "send the submission as multipart/form-data (fields map, "
                               "half_map_1, half_map_2, model, classes, particles, "
                               "particles_stack, threshold, resolution, emdb_id)")
    check_declared_size(request.headers, max_total)
    rec = _Receiver(folder, max_file, max_total)
    parser = MultipartParser(params[b"boundary"], rec.callbacks())
    try:
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except OSError as exc:
        raise UploadError(507, f"the upload could not be stored ({exc.strerror})") from None
    except Exception as exc:  # noqa: BLE001 - the parser's errors on a malformed body
        if type(exc).__name__ == "ClientDisconnect":
            raise
        raise UploadError(400, f"malformed multipart body ({type(exc).__name__}: "
                               f"{str(exc)[:120]})") from None
    finally:
        rec.close()
    return rec.sub


async def _receive_fields(request) -> Submission:
    from urllib.parse import parse_qsl

    limit = MAX_TEXT_BYTES * len(TEXT_FIELDS)
    check_declared_size(request.headers, limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise UploadError(413, f"the form is larger than {limit} bytes")
    sub = Submission()
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UploadError(400, f"malformed form ({exc})") from None
    for k, v in pairs:
        if k in FILE_FIELDS:
            raise UploadError(415, f"{k}: files must be sent as multipart/form-data")
        if k not in TEXT_FIELDS:
            raise UploadError(400, f"unknown form field {k[:40]!r}; the fields are "
                                   f"{', '.join(FILE_FIELDS + TEXT_FIELDS)}")
        sub.fields[k] = v.strip()
    return sub


# ---------------------------------------------------------------------------- checks


def _number(fields, name, positive=False) -> Optional[float]:
    text = fields.get(name, "")
    if text == "":
        return None
    try:
        v = float(text)
    except ValueError:
        raise UploadError(422, f"{name} must be a number, got {text[:40]!r}") from None
    if not math.isfinite(v):
        raise UploadError(422, f"{name} must be finite, got {text[:40]!r}")
    if positive and v <= 0:
        raise UploadError(422, f"{name} must be positive, got {text[:40]}")
    return v


def _truthy(text: str) -> bool:
    return str(text).strip().lower() in ("1", "true", "on", "yes")


def display_name(text: str) -> str:
    """A name to show: printable characters only, at most 120."""
    text = re.sub(r"[\x00-\x1f\x7f]", "", str(text)).strip()
    return text[:120]


@dataclass
class Checked:
    """A submission that passed every check: what the job row stores."""

    files: dict            # field -> stored file name (relative to the job folder)
    threshold: Optional[float]
    resolution: Optional[float]
    formats: tuple
    emdb_id: Optional[str]
    private: bool
    name: str
    # field -> the client's file name (checked by check_client_name): what the report shows
    names: dict = field(default_factory=dict)
    # cryovalid.Options fields of the classes and particles that were given (PARTICLE_OPTIONS)
    options: dict = field(default_factory=dict)


def particle_options(fields: dict, files: dict) -> dict:
    """The classes' and particles' options given in the form, as cryovalid.Options fields;
    UploadError (422) for a bad value or an option whose file was not uploaded."""
    from cryovalid.api import check_symmetry
    from cryovalid.errors import InputError

    out = {}
    for name, (key, needs) in PARTICLE_OPTIONS.items():
        if fields.get(name, "") == "":
            continue
        if not any(n in files for n in needs):
            raise UploadError(422, f"{name} is an option of the {' or '.join(needs)}, which "
                                   f"were not uploaded")
        if name == "symmetry":
            try:
                out[key] = check_symmetry(fields[name])
            except InputError as exc:
                raise UploadError(422, str(exc)) from None
        elif name == "q0":
            v = _number(fields, name)
            if not 0.0 <= v < 1.0:
                raise UploadError(422, f"q0 (the amplitude contrast) must lie in [0, 1), got "
                                       f"{fields[name][:40]}")
            out[key] = v
        elif name == "cs":  # 0 for a Cs-corrected microscope, as the command line's --cs
            v = _number(fields, name)
            if v < 0:
                raise UploadError(422, f"cs must not be negative, got {fields[name][:40]}")
            out[key] = v
        else:
            out[key] = _number(fields, name, positive=True)
    return out


def check(sub: Submission, default_formats=("json", "html", "pdf")) -> Checked:
    """Check a received submission with the report's own readers; UploadError (422) if not."""
    from cryovalid.api import FORMATS, check_resolution
    from cryovalid.errors import InputError

    f = sub.fields
    threshold = _number(f, "threshold")
    resolution = _number(f, "resolution", positive=True)
    formats = tuple(x.strip().lower() for x in f.get("formats", "").split(",") if x.strip())
    formats = tuple(dict.fromkeys(formats or default_formats))  # each once (a 32-char column)
    bad = [x for x in formats if x not in FORMATS]
    if bad:
        raise UploadError(422, f"unknown format(s) {', '.join(bad)[:80]}; choose from "
                               f"{', '.join(FORMATS)}")
    private = _truthy(f.get("private", ""))
    emdb_id = f.get("emdb_id", "") or None
    files = sub.files
    options = particle_options(f, files)
    if emdb_id:
        from cryovalid.emdb.header import normalise_emdb_id

        if files:
            raise UploadError(422, "give either an EMDB ID or files, not both")
        try:
            emdb_id = normalise_emdb_id(emdb_id)
        except InputError as exc:
            raise UploadError(422, str(exc)) from None
        return Checked({}, threshold, resolution, formats, emdb_id, private,
                       display_name(f.get("name") or emdb_id))
    if "map" not in files:
        raise UploadError(422, "no map: upload one (field map) or give an EMDB ID (emdb_id)")
    if ("half_map_1" in files) != ("half_map_2" in files):
        raise UploadError(422, "give both half maps (half_map_1 and half_map_2) or neither")
    star = "particles" in files and files["particles"].path.endswith(".star")
    if star and "particles_stack" not in files:
        raise UploadError(422, f"particles ({files['particles'].client_name}): a STAR file "
                               f"needs the stack of its particles (field particles_stack; "
                               f"one stack, as relion_stack_create writes it), or upload the "
                               f"stack itself as particles")
    if "particles_stack" in files and not star:
        raise UploadError(422, "particles_stack goes with a STAR file of the particles "
                               "(field particles)")

    def said(exc) -> str:  # the reader's message, with the client's names for our paths
        msg = str(exc)
        for sf in files.values():
            msg = msg.replace(os.path.abspath(sf.path), f"{sf.field} ({sf.client_name})")
            msg = msg.replace(sf.path, f"{sf.field} ({sf.client_name})")
        return msg

    with CHECKS:
        try:
            from cryovalid.io.maps import read_map

            m = read_map(files["map"].path)
            check_resolution(resolution, m)
            if threshold is not None:
                vmin, vmax = float(m.data.min()), float(m.data.max())
                if not vmin < threshold < vmax:
                    raise UploadError(422, f"threshold {threshold:g} lies outside the map's "
                                           f"values ({vmin:g} to {vmax:g}); the mask would be "
                                           f"{'empty' if threshold >= vmax else 'the whole box'}")
            if "half_map_1" in files:
                from cryovalid.io.halfmaps import read_half_maps

                read_half_maps(files["half_map_1"].path, files["half_map_2"].path, m)
            del m
            if "model" in files:
                from cryovalid.io.model import read_model

                read_model(files["model"].path)
            if "classes" in files:
                from cryovalid.io.stacks import read_classes

                read_classes(files["classes"].path, pixel_size=options.get("classes_pixel"))
            if "particles" in files:
                from cryovalid.io.particles import read_particles

                read_particles(files["particles"].path,
                               pixel_size=options.get("particles_pixel"),
                               voltage_kv=options.get("voltage_kv"),
                               cs_mm=options.get("cs_mm"), q0=options.get("q0"),
                               stack=files["particles_stack"].path if star else None)
        except InputError as exc:
            raise UploadError(422, said(exc)) from None
    stored = {k: os.path.basename(v.path) for k, v in files.items()}
    return Checked(stored, threshold, resolution, formats, None, private,
                   display_name(f.get("name") or files["map"].client_name),
                   {k: v.client_name for k, v in files.items()}, options)
