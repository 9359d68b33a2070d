"""The wire contract's JSON Schema (protocol/schema.json), used to validate incoming params
with messages that name the offending field, and by the tests to hold results to it.

Beyond the schema, params are checked for what JSON allows but the rest of the server cannot
take (a lone UTF-16 surrogate, a NUL or an over-long file name in a uri), so odd input gets
InvalidParams (-32602), never an internal error; and an error quotes at most a short piece of
the input, however large it was.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from .errors import InvalidParamsError

METHODS = ("docs/index", "docs/search", "docs/status", "docs/files")
#: How much of a value an error message quotes (a 50 MB query is not sent back).
QUOTE_CHARS = 80
#: A whole error message, at most.
MESSAGE_CHARS = 500
#: Longest file name (one path segment) and path, in bytes, that the file systems take.
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4095
_SURROGATE = re.compile("[\ud800-\udfff]")


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


def clip(text: str, limit: int = MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters in all)"


def quote(value: Any) -> str:
    """A short repr of `value` for an error message."""
    if isinstance(value, str) and len(value) > QUOTE_CHARS:
        return f"{value[:QUOTE_CHARS]!r}… ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= QUOTE_CHARS else f"{text[:QUOTE_CHARS]}…"


def describe(error: ValidationError) -> str:
    field = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [k for k in required if k not in error.instance] or ["?"]
        return f"{'.'.join([field, missing[0]]) if field else missing[0]}: is required"
    message = error.message
    if isinstance(error.instance, str | int | float | list | dict):
        full = repr(error.instance)  # jsonschema quotes the whole instance
        if len(full) > QUOTE_CHARS:
            message = message.replace(full, quote(error.instance))
    return f"{field or 'params'}: {clip(message)}"


def text_problem(value: str) -> str | None:
    """Why a string from the wire cannot be used as text, or None: JSON allows a lone UTF-16
    surrogate (`"\\ud800"`), which is no Unicode character (the tokenizer, the store and
    UTF-8 all refuse it)."""
    if _SURROGATE.search(value):
        return "contains a lone UTF-16 surrogate (not valid Unicode)"
    return None


def uri_problem(uri: str) -> str | None:
    """Why a `file:` uri cannot name a file here, or None: a NUL (`%00`), a file name longer
    than any file system takes, or a path longer than the system takes."""
    path = unquote(urlsplit(uri).path) if uri.startswith("file:") else ""
    if "\x00" in uri or "\x00" in path:
        return "contains a NUL character (%00), which no file name can hold"
    if any(_byte_length(part) > NAME_MAX_BYTES for part in path.split("/")):
        return f"has a file or folder name longer than {NAME_MAX_BYTES} bytes"
    if _byte_length(path) > PATH_MAX_BYTES:
        return f"is a path longer than {PATH_MAX_BYTES:,} bytes"
    return None


def _byte_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _first_text_problem(value: Any, field: str) -> str | None:
    """The first string (key or value) in `value` that is not valid Unicode, as an error."""
    if isinstance(value, str):
        problem = text_problem(value)
        return f"{field or 'params'}: {problem}" if problem else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{field}.{key}" if field else str(key)
            if isinstance(key, str) and (problem := text_problem(key)):
                return f"{field or 'params'}: a key {problem}"
            if found := _first_text_problem(item, name):
                return found
    if isinstance(value, list):
        for n, item in enumerate(value):
            if found := _first_text_problem(item, f"{field}.{n}" if field else str(n)):
                return found
    return None


def _integral_floats_to_int(value: Any) -> Any:
    """JSON Schema counts 5.0 and 1e2 as integers (and JavaScript clients may send them):
    once the schema accepted them, hand the handlers real ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_floats_to_int(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats_to_int(v) for v in value]
    return value


def validate_params(method: str, params: Any) -> dict[str, Any]:
    """Check a request's params; raise InvalidParamsError naming the field."""
    if params is None:
        params = {}
    error = best_match(validator(method, "params").iter_errors(params))
    if error is not None:
        raise InvalidParamsError(f"{method}: {describe(error)}")
    if not isinstance(params, dict):
        raise InvalidParamsError(f"{method}: params must be an object")
    if problem := _first_text_problem(params, ""):
        raise InvalidParamsError(f"{method}: {problem}")
    for n, uri in enumerate(params.get("uris") or []):
        if problem := uri_problem(uri):
            raise InvalidParamsError(f"{method}: uris.{n}: {problem}")
    if isinstance(params.get("uri"), str) and (problem := uri_problem(params["uri"])):
        raise InvalidParamsError(f"{method}: uri: {problem}")
    checked: dict[str, Any] = _integral_floats_to_int(params)
    return checked


def check_text(method: str, field: str, value: str) -> str:
    """`value` when it is valid text; InvalidParamsError naming the field otherwise (for the
    standard LSP requests, whose params pygls has already structured)."""
    if problem := text_problem(value):
        raise InvalidParamsError(f"{method}: {field}: {problem}")
    return value


def result_errors(method: str, result: Any) -> list[str]:
    """Every way `result` breaks the contract (empty when it conforms)."""
    return [describe(e) for e in validator(method, "result").iter_errors(result)]
