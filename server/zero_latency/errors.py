"""Errors the engine raises, each with the JSON-RPC code the wire contract gives it."""

from __future__ import annotations

# JSON-RPC / LSP codes used by the contract (protocol/spec.md).
INVALID_PARAMS = -32602
REQUEST_CANCELLED = -32800
MODEL_UNAVAILABLE = -32001
STORE_UNAVAILABLE = -32002


class ZeroLatencyError(Exception):
    """Base class: `code` is the JSON-RPC error code, `message` says what to do."""

    code = -32603

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParamsError(ZeroLatencyError):
    code = INVALID_PARAMS


class ModelUnavailableError(ZeroLatencyError):
    code = MODEL_UNAVAILABLE


class DeviceUnavailableError(ModelUnavailableError):
    """The model is fine but the device asked for (CUDA) is not there."""


class StoreError(ZeroLatencyError):
    """The store cannot be used: unavailable, locked, corrupt or built for another model."""

    code = STORE_UNAVAILABLE


class StoreLockedError(StoreError):
    pass


class StoreIncompatibleError(StoreError):
    pass


class StoreFullError(StoreError):
    """The disk holding the store has too little room to write safely: nothing was written,
    searches still work, and writing resumes once there is room again."""


class CancelledError(ZeroLatencyError):
    code = REQUEST_CANCELLED

    def __init__(self, message: str = "request cancelled") -> None:
        super().__init__(message)
