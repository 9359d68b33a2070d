"""The contract's error codes (protocol/spec.md "Errors", revision 1.1): application failures are
LSP's RequestFailed (-32803) with a machine-readable `data.kind`, over the wire from a real
`zl serve`, caused by real faults (a missing model, damaged store files, a refused port, a
store another process holds). -32002 means ServerNotInitialized only."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from zero_latency import errors
from zero_latency.config import Settings
from zero_latency.engine import Engine
from zero_latency.lsp import _rpc_error
from zero_latency.protocol import schema
from zero_latency.stores import EdgeStore

from .test_reliability import started, wait_for_state

REQUEST_FAILED = -32803


def error_problems(error: Any) -> list[str]:
    """Every way a JSON-RPC error object breaks protocol/schema.json's ResponseError."""
    root = schema()
    check = Draft202012Validator({"$defs": root["$defs"], "$ref": root["errors"]["error"]})
    return [e.message for e in check.iter_errors(error)]


def assert_failed(reply: dict[str, Any], kind: str, *words: str) -> None:
    assert "error" in reply, reply
    error = reply["error"]
    assert error["code"] == REQUEST_FAILED and error.get("data") == {"kind": kind}, error
    assert error_problems(error) == []
    for word in words:
        assert word in error["message"], error["message"]


def test_every_error_kind_is_in_the_schema_and_every_failure_has_one() -> None:
    assert list(errors.ERROR_KINDS) == schema()["$defs"]["ErrorKind"]["enum"]
    failures = [errors.ModelUnavailableError, errors.DeviceUnavailableError, errors.StoreError,
                errors.StoreLockedError, errors.StoreIncompatibleError, errors.StoreCorruptError]
    for cls in failures:
        assert cls.code == REQUEST_FAILED and cls.kind in errors.ERROR_KINDS, cls
        wire = _rpc_error(cls("what happened and what to do")).to_response_error()
        assert wire.code == REQUEST_FAILED and wire.data == {"kind": cls.kind}
    assert {cls.kind for cls in failures} == set(errors.ERROR_KINDS)
    # The LSP codes keep their meanings, with no data.
    assert _rpc_error(errors.InvalidParamsError("x")).to_response_error().code == -32602
    cancelled = _rpc_error(errors.CancelledError()).to_response_error()
    assert cancelled.code == -32800 and cancelled.data is None
    assert error_problems({"code": REQUEST_FAILED, "message": "m"}), "kind is required"
    assert error_problems({"code": REQUEST_FAILED, "message": "m", "data": {"kind": "nope"}})


def test_semantic_search_without_a_model_is_model_unavailable(tmp_path: Path,
                                                              workspace: Path) -> None:
    server = started(workspace, tmp_path / "store", model=str(tmp_path / "no-such-model"))
    try:
        reply = server.request("docs/search", {"query": "ownership", "mode": "semantic"})
        assert_failed(reply, "modelUnavailable", "Model folder not found")
        # Keyword search still answers: the failure is the request's, not the server's.
        ok = server.request("docs/search", {"query": "ownership", "mode": "keyword"})
        assert "result" in ok, ok
    finally:
        assert server.close() == 0


def _built_store(tmp_path: Path, workspace: Path) -> Path:
    """A real store for `workspace`, closed; returns its metadata file."""
    engine = Engine(Settings(model="bundled", storePath=str(tmp_path / "store")))
    try:
        engine.open_workspace(workspace)
        engine.index([workspace])
        return engine.store_path(workspace) / "zl-store.json"
    finally:
        engine.close()


@pytest.mark.parametrize(("damage", "kind", "word"), [
    ("{ not json", "storeCorrupt", "corrupt"),
    ("model", "storeIncompatible", "never mixed"),
])
def test_a_store_that_cannot_open_fails_index_with_its_kind_and_force_rebuilds(
        tmp_path: Path, workspace: Path, damage: str, kind: str, word: str) -> None:
    meta = _built_store(tmp_path, workspace)
    if damage == "model":  # built by another model: same folder, other fingerprint
        found = json.loads(meta.read_text())
        meta.write_text(json.dumps({**found, "model": "another-model"}))
    else:
        meta.write_text(damage)
    server = started(workspace, tmp_path / "store")
    try:
        assert wait_for_state(server, "error")["state"] == "error"
        assert_failed(server.request("docs/index", {}, timeout=60), kind, word, "force")
        report = server.request("docs/index", {"force": True}, timeout=120)
        assert report["result"]["indexedFiles"] == 5, report
        assert server.request("docs/search", {"query": "threads"})["result"]["hits"]
    finally:
        assert server.close() == 0


def test_an_unreachable_store_server_is_store_unavailable(tmp_path: Path,
                                                          workspace: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    server = started(workspace, tmp_path / "store", storeUrl=url)
    try:
        assert wait_for_state(server, "error", seconds=60)["state"] == "error"
        assert_failed(server.request("docs/index", {}, timeout=60), "storeUnavailable", url)
        # force retries the connection, which fails the same way
        assert_failed(server.request("docs/index", {"force": True}, timeout=60),
                      "storeUnavailable", url)
    finally:
        assert server.close() == 0


def test_a_store_held_by_another_process_is_store_locked(tmp_path: Path) -> None:
    engine = Engine(Settings(model="bundled", storePath=str(tmp_path / "store")))
    path = tmp_path / "store" / "shared"
    holder = EdgeStore(path, engine.model_fingerprint(), engine.dimension())
    try:
        with pytest.raises(errors.StoreLockedError) as info:
            EdgeStore(path, engine.model_fingerprint(), engine.dimension())
        wire = _rpc_error(info.value).to_response_error()
        assert wire.code == REQUEST_FAILED and wire.data == {"kind": "storeLocked"}
        assert "locked by another" in wire.message
    finally:
        holder.close()
        engine.close()


def test_a_request_before_initialize_is_server_not_initialized_only(tmp_path: Path) -> None:
    from .rpc import RawServer

    server = RawServer()
    try:
        reply = server.request("docs/index", {})
        assert reply["error"]["code"] == -32002 and "data" not in reply["error"], reply
        assert error_problems(reply["error"]) == []
    finally:
        server.close()
