"""Errors the engine raises, each with the JSON-RPC code (and, for application failures, the
`data.kind`) that the wire contract gives it (protocol/spec.md, "Errors", revision 1.1)."""

from __future__ import annotations

from typing import Any, Literal, get_args

# JSON-RPC / LSP codes used by the contract. Codes in -32768..-32000 and -32899..-32800 keep
# their JSON-RPC/LSP meanings only: every application failure is RequestFailed plus a kind.
INTERNAL_ERROR = -32603
INVALID_PARAMS = -32602
SERVER_NOT_INITIALIZED = -32002
REQUEST_FAILED = -32803
REQUEST_CANCELLED = -32800

#: The machine-readable `data.kind` of a RequestFailed error; protocol/schema.json's
#: `ErrorKind` enum lists the same names (a test holds the two together).
ErrorKind = Literal["modelUnavailable", "storeUnavailable", "storeLocked", "storeIncompatible",
                    "storeCorrupt"]
ERROR_KINDS: tuple[str, ...] = get_args(ErrorKind)


class ZeroLatencyError(Exception):
    """Base class: `code` is the JSON-RPC error code, `message` says what to do, and `kind`
    (application failures only) tells a client which failure it is without parsing text."""

    code = INTERNAL_ERROR
    kind: ErrorKind | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def wire_data(self) -> dict[str, Any] | None:
        """The JSON-RPC error's `data` member: `{"kind": …}`, or None when there is no kind."""
        return {"kind": self.kind} if self.kind is not None else None


class InvalidParamsError(ZeroLatencyError):
    code = INVALID_PARAMS


class ModelUnavailableError(ZeroLatencyError):
    code = REQUEST_FAILED
    kind: ErrorKind | None = "modelUnavailable"


class DeviceUnavailableError(ModelUnavailableError):
    """The model is fine but the device asked for (CUDA) is not there."""


class StoreError(ZeroLatencyError):
    """The store cannot be used: unreachable, unwritable (disk full) or failing. The
    subclasses are the cases a client can act on differently."""

    code = REQUEST_FAILED
    kind: ErrorKind | None = "storeUnavailable"


class StoreLockedError(StoreError):
    """Another process holds the store (Qdrant Edge allows one writer)."""

    kind: ErrorKind | None = "storeLocked"


class StoreIncompatibleError(StoreError):
    """The store was built for another model, dimension or schema: rebuild it.
    `same_model`: only the build of the same model differs (its graph or the runtime that ran
    it), so the engine rebuilds it without asking: the user's choice of model stands."""

    kind: ErrorKind | None = "storeIncompatible"

    def __init__(self, message: str, same_model: bool = False) -> None:
        super().__init__(message)
        self.same_model = same_model


class StoreCorruptError(StoreError):
    """The store's files are damaged or unreadable: rebuild it."""

    kind: ErrorKind | None = "storeCorrupt"


class StoreFullError(StoreError):
    """The disk holding the store has too little room to write safely: nothing was written,
    searches still work, and writing resumes once there is room again."""


class CancelledError(ZeroLatencyError):
    code = REQUEST_CANCELLED

    def __init__(self, message: str = "request cancelled") -> None:
        super().__init__(message)
