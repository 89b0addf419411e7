"""The result model: what an item returns, independent of items, figures and renderers.

Numbers go to ``metrics`` (machine-readable, documented names; booleans become ``flags`` in
report.json) and to ``facts`` (what the report's Results table shows, with a unit and a
printf-style format the renderer applies); ``tables`` likewise. Arrays that figures need go to
``data`` and files for the user to ``artefacts`` (:class:`Volume`, :class:`Curves`,
:class:`Text`, :class:`Image`, written by the store); neither is serialised.

Status rules (as the reference): an item with criteria that ran is evaluable; it passes when it
has no warnings. ``not_applicable`` and ``failed`` items count in neither number, nor do
``not_run`` items (a level whose input was not given, e.g. Level 1 without half maps).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

OK = "ok"
WARNINGS = "warnings"
NOT_APPLICABLE = "not_applicable"
FAILED = "failed"
NOT_RUN = "not_run"  # the item's level needs an input that was not given (reason says which)
# the words for each status, wherever a status is shown (report, progress lines)
STATUS_TEXT = {OK: "OK", WARNINGS: "warnings", NOT_APPLICABLE: "Does not apply",
               FAILED: "Could not be measured", NOT_RUN: "Not run"}


class ItemWarning(str):
    """A warning of an item: a stable ``code`` (e.g. ``"over_sharpened"``; unique within the
    item), its ``params`` (plain numbers and words, in the units the template states) and the
    sentence the template makes of them, which is the string's value (so that the report and
    report.json show it as before, and ``"mirrored" in warning`` reads as it should).

    The item gives the code, the template (a constant of its module, beside the constants it
    checks) and the parameters; it never formats the sentence itself."""

    code: str
    params: dict

    def __new__(cls, code: str, template: str, **params):
        return cls._make(code, template.format(**params), params)

    @classmethod
    def _make(cls, code: str, text: str, params: dict) -> "ItemWarning":
        obj = str.__new__(cls, text)
        obj.code, obj.params = code, dict(params)
        return obj

    def __reduce__(self):  # copies and pickles (worker processes) keep the code and parameters
        return (ItemWarning._make, (self.code, str(self), self.params))

    def to_dict(self) -> dict:
        return {"code": self.code, "params": dict(self.params), "text": str(self)}


@dataclass
class Fact:
    label: str
    value: object
    unit: str = ""
    fmt: str = "{:.2f}"


@dataclass
class Table:
    title: str
    columns: list
    rows: list
    formats: list  # one format string per column


@dataclass
class Figure:
    path: str  # relative to the report directory
    caption: str


@dataclass
class Volume:
    """An artefact: a map on a grid for the store to write as MRC (``name`` relative to the
    report, e.g. ``maps/local_resolution.mrc``; a boolean or int8 array is written 8-bit)."""
    name: str
    data: object  # (z, y, x) array
    voxel_size: float  # Å
    origin: tuple = (0.0, 0.0, 0.0)  # world x, y, z (Å) of voxel (0, 0, 0)


@dataclass
class Curves:
    """An artefact: columns of equal length for the store to write as CSV (``name`` relative
    to the report). Integers are written as integers, other numbers with 6 significant digits,
    words as they are, and None or a value that is not finite as an empty cell."""
    name: str
    columns: list  # [(header, 1-D sequence)]


@dataclass
class Text:
    """An artefact: a text file (a ChimeraX script) for the store to write."""
    name: str
    text: str


@dataclass
class Image:
    """An artefact: a figure as PNG bytes for the store to write (``name`` relative to the
    report, e.g. ``figures/fsc.png``)."""
    name: str
    png: bytes = field(repr=False)


@dataclass
class ItemResult:
    id: str
    title: str
    section: str
    status: str = OK
    warnings: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    criteria: str = ""
    explanation: str = ""
    seconds: float = 0.0
    reason: str = ""  # why it does not apply or could not be measured
    summary: str = ""  # the sentence this item adds to "Summarized overall quality" ('' = none)
    facts: list = field(default_factory=list)
    tables: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # plain statements (method differences, caveats)
    resolution_estimates: list = field(default_factory=list)  # [{"method", "resolution_A"}]
    data: dict = field(default_factory=dict, repr=False)  # arrays for figures; not serialised
    # Volume / Curves / Text for the store to write (items and figures never open files)
    artefacts: list = field(default_factory=list, repr=False)
    # per-residue columns of the model (Level A): name -> one value per residue, in the model's
    # residue order; merged over the items into report.json "residues" and residues.csv
    residue_columns: dict = field(default_factory=dict, repr=False)

    def warn(self, code: str, template: str, **params) -> ItemWarning:
        """Add the warning ``code`` whose sentence is ``template.format(**params)``."""
        w = ItemWarning(code, template, **params)
        self.warnings.append(w)
        return w

    def finish(self):
        """Set the status from the warnings (for an item that ran)."""
        self.status = WARNINGS if self.warnings else OK
        return self

    @property
    def evaluable(self) -> bool:
        return self.status in (OK, WARNINGS) and bool(self.criteria)

    def to_dict(self) -> dict:
        plain = [str(w) for w in self.warnings]
        d = asdict(replace(self, data={}, artefacts=[], warnings=plain,
                           residue_columns={}))  # arrays are never copied
        del d["data"], d["artefacts"], d["residue_columns"]
        d["warning_details"] = [w.to_dict() if isinstance(w, ItemWarning)
                                else {"code": "", "params": {}, "text": str(w)}
                                for w in self.warnings]
        return d
