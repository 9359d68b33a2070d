"""The wire contract's JSON Schema (protocol/schema.json), used to validate incoming params
with messages that name the offending field, and by the tests to hold results to it."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from .errors import InvalidParamsError

METHODS = ("docs/index", "docs/search", "docs/status")


def schema_path() -> Path:
    """The installed copy (a wheel carries it) or the repository's protocol/ folder."""
    here = Path(__file__).parent
    for candidate in (here / "protocol.schema.json",
                      here.parent.parent / "protocol" / "schema.json"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("protocol schema.json not found beside the package")


@functools.cache
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(schema_path().read_text(encoding="utf-8"))
    return data


@functools.cache
def validator(method: str, part: str) -> Draft202012Validator:
    root = schema()
    ref = root["methods"][method][part]
    return Draft202012Validator({"$defs": root["$defs"], "$ref": ref})


def describe(error: ValidationError) -> str:
    field = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [k for k in required if k not in error.instance] or ["?"]
        return f"{'.'.join([field, missing[0]]) if field else missing[0]}: is required"
    return f"{field or 'params'}: {error.message}"


def validate_params(method: str, params: Any) -> dict[str, Any]:
    """Check a request's params; raise InvalidParamsError naming the field."""
    if params is None:
        params = {}
    error = best_match(validator(method, "params").iter_errors(params))
    if error is not None:
        raise InvalidParamsError(f"{method}: {describe(error)}")
    if not isinstance(params, dict):
        raise InvalidParamsError(f"{method}: params must be an object")
    return params


def result_errors(method: str, result: Any) -> list[str]:
    """Every way `result` breaks the contract (empty when it conforms)."""
    return [describe(e) for e in validator(method, "result").iter_errors(result)]
