"""The result every validation item returns, and the wrapper that runs an item safely.

An item is a module with constants ``ID``, ``TITLE``, ``SECTION``, ``EXPLANATION``, ``CRITERIA``
and one function ``run(ctx) -> ItemResult``. ``run`` computes; it never draws and never builds
HTML. Numbers go to ``metrics`` (machine-readable, documented names) and to ``facts`` (what the
report's Results table shows, with a unit and a printf-style format the renderer applies).
Arrays that figures need go to ``data``, which is not serialised.

Status rules (as the reference): an item with criteria that ran is evaluable; it passes when it
has no warnings. ``not_applicable`` and ``failed`` items count in neither number.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, field

from cryovalid.errors import NotApplicable

OK = "ok"
WARNINGS = "warnings"
NOT_APPLICABLE = "not_applicable"
FAILED = "failed"


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

    def finish(self):
        """Set the status from the warnings (for an item that ran)."""
        self.status = WARNINGS if self.warnings else OK
        return self

    @property
    def evaluable(self) -> bool:
        return self.status in (OK, WARNINGS) and bool(self.criteria)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("data")
        return d


def new_result(module) -> ItemResult:
    """An empty result carrying the item module's identity, explanation and criteria."""
    return ItemResult(id=module.ID, title=module.TITLE, section=module.SECTION,
                      criteria=module.CRITERIA, explanation=module.EXPLANATION)


def run_item(module, ctx) -> ItemResult:
    """Run ``module.run(ctx)``; a NotApplicable becomes 'not_applicable', any other exception
    'failed' with its reason, so that one broken item never stops the report."""
    t0 = time.perf_counter()
    try:
        res = module.run(ctx)
    except NotApplicable as exc:
        res = new_result(module)
        res.status, res.reason = NOT_APPLICABLE, str(exc)
    except MemoryError:
        res = new_result(module)
        res.status, res.reason = FAILED, "ran out of memory"
    except Exception as exc:  # noqa: BLE001 - a failing item must not stop the report
        res = new_result(module)
        res.status = FAILED
        res.reason = f"{type(exc).__name__}: {exc}"
        res.data["traceback"] = traceback.format_exc()
    res.seconds = round(time.perf_counter() - t0, 3)
    return res
