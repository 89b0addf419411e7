"""Validation of report.json against the JSON Schema shipped in the package.

Used by the conftest hook that checks every report.json the suite writes, and by
test_report_schema.py."""
import json

import jsonschema

from cryovalid.report.model import SCHEMA_PATH

with open(SCHEMA_PATH, encoding="utf-8") as _f:
    SCHEMA = json.load(_f)
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def errors(report: dict) -> list:
    """['path: message', …] for every way ``report`` breaks the schema ([] when valid)."""
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in sorted(VALIDATOR.iter_errors(report), key=lambda e: list(e.absolute_path))]


def validate_file(path) -> dict:
    """Load a report.json, fail with every schema violation listed, return the report."""
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    errs = errors(report)
    assert not errs, f"{path} breaks report.schema.json:\n" + "\n".join(errs[:20])
    return report
