"""Reading a cross-linking mass spectrometry (XL-MS) list for O.a.

Two formats, chosen line by line:

* Jwalk's pipe-delimited list (Bullock et al. 2016, MCP 15:2491; the XLM-Tools input):
  ``res1|chain1|res2|chain2|`` (the trailing ``|`` is optional), optionally a fifth field with
  the linker;
* a plain CSV: ``res1,chain1,res2,chain2[,linker]``.

A residue is its sequence number with an optional insertion code (``52``, ``52A``, ``-3``);
a chain is its name as in the model (``A``, ``AA``, ``B-2``). Blank lines and lines starting
with ``#`` are skipped; a first line that is not a link (its first and third fields are not residue
numbers, e.g. ``res1,chain1,res2,chain2,linker``) is a header and skipped. Only the link lines
are counted (the reference counts every line of the file, blank and header lines too: not
replicated).

The maximum solvent-accessible surface distance (SASD, Å, Cα to Cα as Jwalk measures it) a
link may span is chosen per line from its linker (:data:`LINKER_SPACER_A`), the DSS/BS3 default
of :data:`DEFAULT_MAX_SASD_A` when no linker is named; ``max_distance_A`` overrides every line.
A linker field may also be a number: that line's maximum in Å.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

from cryovalid.errors import InputError
from cryovalid.io.maps import check_regular_file, sha256_of

# Jwalk's (and XLM-Tools') SASD limit for the lysine-lysine linkers DSS and BS3 (spacer arm
# 11.4 Å), Å, Cα to Cα: Bullock et al. 2016 (MCP 15:2491), "Jwalk", and Sinnott et al. 2020
# (Structure 28:1061), "XLM-Tools".
DEFAULT_MAX_SASD_A = 33.0
DSS_SPACER_A = 11.4
# The reach the two side chains and the linker's flexibility add to the spacer arm in that
# limit (33 - 11.4 = 21.6 Å); the maximum for another linker is its spacer arm + this reach.
SIDE_CHAIN_REACH_A = DEFAULT_MAX_SASD_A - DSS_SPACER_A
# Spacer arm lengths (Å) of common cross-linkers, fully extended (manufacturers' data sheets):
# NHS esters (Lys-Lys) DSS, BS3, DSSO, DSBU, BS2G, DSG; zero-length carbodiimides/DMTMM
# (Lys-Asp/Glu) EDC, DMTMM.
LINKER_SPACER_A = {
    "DSS": 11.4, "BS3": 11.4, "DSSO": 10.1, "DSBU": 12.5, "BS2G": 7.7, "DSG": 7.7,
    "EDC": 0.0, "DMTMM": 0.0,
}
# the longest maximum SASD accepted (Å): the longest common spacer arms are ~35 Å (PEG
# linkers), and the search (up to 1.5 × the maximum) grows with its cube
MAX_LINKER_A = 100.0
_RESIDUE = re.compile(r"^(-?\d+)([A-Za-z]?)$")
_CHAIN = re.compile(r"^[A-Za-z0-9_-]{1,8}$")  # PDB: 1 character; mmCIF auth_asym_id longer


def linker_max_A(linker: str) -> float:
    """The maximum SASD (Å) of a named linker: its spacer arm + :data:`SIDE_CHAIN_REACH_A`."""
    return LINKER_SPACER_A[linker.upper()] + SIDE_CHAIN_REACH_A


@dataclass(frozen=True)
class Link:
    """One cross-link: two residues (chain, sequence number, insertion code) and the longest
    SASD (Å) its linker may span; ``line`` is its line number in the file (1-based)."""
    line: int
    chain1: str
    resseq1: int
    icode1: str
    chain2: str
    resseq2: int
    icode2: str
    linker: str  # the linker's name as given ("" when none), or the number given
    max_A: float

    @property
    def residue1(self) -> str:
        return f"{self.resseq1}{self.icode1}"

    @property
    def residue2(self) -> str:
        return f"{self.resseq2}{self.icode2}"


@dataclass
class Crosslinks:
    """The cross-links of a file: ``links`` (one per link line, in file order), the file's
    ``path`` (absolute), ``name``, ``sha256``, ``format`` ("Jwalk" or "CSV"),
    ``max_distance_A`` (the override given, or None), ``notes`` (plain sentences)."""
    path: str
    name: str
    sha256: str
    format: str
    links: list
    max_distance_A: float | None = None
    notes: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.links)


def _residue(text):
    m = _RESIDUE.match(text)
    return (int(m.group(1)), m.group(2)) if m else None


def _check_max(value, where) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: the maximum distance {value!r} is not a number") from None
    if not math.isfinite(v) or v <= 0 or v > MAX_LINKER_A:
        raise InputError(f"{where}: the maximum distance {value!r} Å is not between 0 and "
                         f"{MAX_LINKER_A:g} Å")
    return v


def _fields(line: str):
    """The fields of a line and its format, or None when it has no separator."""
    if "|" in line:
        parts, fmt = line.split("|"), "Jwalk"
    elif "," in line:
        parts, fmt = line.split(","), "CSV"
    else:
        return None, None
    parts = [p.strip() for p in parts]
    if parts and parts[-1] == "":  # Jwalk lines end with '|'
        parts = parts[:-1]
    return parts, fmt


def read_crosslinks(path: str, max_distance_A: float | None = None) -> Crosslinks:
    """Read a Jwalk (``res1|chain1|res2|chain2|``) or CSV (``res1,chain1,res2,chain2[,linker]``)
    cross-link list.

    ``max_distance_A`` (Å) overrides every link's maximum SASD; otherwise each line's linker
    chooses it (:func:`linker_max_A`; :data:`DEFAULT_MAX_SASD_A`, DSS/BS3, when none is named).

    Raises
    ------
    InputError
        one line naming the file (and the line): missing, empty, special or undecodable file;
        a line that is not a link (wrong field count, a residue that is not a number, an empty
        or odd chain name, an unknown linker, a bad numeric maximum); no link line at all; a
        ``max_distance_A`` that is not a positive number.
    """
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a cross-link list")
    check_regular_file(path)
    path = os.path.abspath(path)
    override = None if max_distance_A is None else _check_max(max_distance_A,
                                                                "--crosslink-max")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text file (byte {exc.start} is not UTF-8)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    if "\0" in text:
        raise InputError(f"{path}: not a text file (it holds NUL bytes)")

    links, formats, header_seen, unnamed = [], set(), False, 0
    for no, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        where = f"{path}, line {no}"
        parts, fmt = _fields(s)
        if parts is None:
            raise InputError(f"{where}: not a cross-link (expected res1|chain1|res2|chain2| or "
                             f"res1,chain1,res2,chain2[,linker]): {s[:60]!r}")
        r1 = _residue(parts[0]) if parts else None
        r2 = _residue(parts[2]) if len(parts) > 2 else None
        if not links and not header_seen and r1 is None and r2 is None:
            header_seen = True  # a header line (only before the first link)
            continue
        if len(parts) not in (4, 5):
            raise InputError(f"{where}: {len(parts)} fields, expected 4 (res1, chain1, res2, "
                             f"chain2) or 5 (and the linker): {s[:60]!r}")
        for r, text_r in ((r1, parts[0]), (r2, parts[2])):
            if r is None:
                raise InputError(f"{where}: residue {text_r!r} is not a residue number "
                                 f"(e.g. 52 or 52A)")
        for c in (parts[1], parts[3]):
            if not _CHAIN.match(c):
                raise InputError(f"{where}: chain {c!r} is not a chain name (1 to 8 letters, "
                                 f"digits, '_' or '-')")
        linker = parts[4] if len(parts) == 5 else ""
        if override is not None:
            mx = override
        elif not linker:
            mx, unnamed = DEFAULT_MAX_SASD_A, unnamed + 1
        elif linker.upper() in LINKER_SPACER_A:
            mx = linker_max_A(linker)
        elif re.fullmatch(r"[0-9.eE+-]+", linker):
            mx = _check_max(linker, where)
        else:
            raise InputError(f"{where}: unknown linker {linker!r} (known: "
                             f"{', '.join(LINKER_SPACER_A)}; or give its maximum in Å, or "
                             f"--crosslink-max)")
        formats.add(fmt)
        links.append(Link(no, parts[1], r1[0], r1[1], parts[3], r2[0], r2[1], linker, mx))
    if not links:
        raise InputError(f"{path}: no cross-link found (expected lines res1|chain1|res2|chain2| "
                         f"or res1,chain1,res2,chain2[,linker])")
    notes = []
    if override is not None:
        notes.append(f"every link's maximum SASD is {override:g} Å (--crosslink-max)")
    elif unnamed:
        one = unnamed == 1
        notes.append(f"{unnamed} link{'' if one else 's'} name{'s' if one else ''} no linker: "
                     f"DSS/BS3's maximum SASD of {DEFAULT_MAX_SASD_A:g} Å is used")
    return Crosslinks(path=path, name=os.path.basename(path), sha256=sha256_of(path),
                      format=" and ".join(sorted(formats)), links=links,
                      max_distance_A=override, notes=notes)
