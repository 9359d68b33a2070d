"""Settings: one typed object fed by defaults, a config file, the CLI and `initializationOptions`.

Every source goes through :func:`Settings.merged`, which structures each value by its field's
type with cattrs, so a wrong type is reported the same way everywhere, naming the key.

A workspace's own `.zero-latency.toml` comes from whoever wrote the repository, not from the
user: the settings that decide where data goes or what runs (:data:`PROTECTED_KEYS`) are taken
from it only for a folder the user trusts in their own configuration (`trustedWorkspaces`), and
then only for that folder (:attr:`Settings.boundTo`, checked by :func:`check_workspace_folder`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_type_hints

import platformdirs

from .errors import InvalidParamsError
from .languages import LANGUAGE_IDS, SUFFIXES
from .paths import is_inside

if TYPE_CHECKING:
    import cattrs

if sys.platform != "win32":
    import pwd

DEFAULT_MODEL = "Supabase/gte-small"
CONFIG_FILE_NAME = ".zero-latency.toml"

Device = Literal["cpu", "cuda"]
#: What runs the model on a CPU: "auto" is OpenVINO where it is installed and passes its probe
#: (openvino_runtime: ~1.3-2x ONNX Runtime here), ONNX Runtime otherwise.
Runtime = Literal["auto", "onnxruntime", "openvino"]
#: The search modes: the one definition (the store's query plan, the engine, the CLI, the MCP
#: tool and the wire schema's enums, checked by tests/test_languages.py, derive from it). It
#: lives here, not in the store, because every command reads this module and the store's
#: import costs the CLI ~0.6 s.
SearchMode = Literal["hybrid", "semantic", "keyword"]
SEARCH_MODES: tuple[SearchMode, ...] = get_args(SearchMode)
DEFAULT_SEARCH_MODE: SearchMode = "hybrid"
#: A query: how long it may be and how many hits it may ask for (the wire schema says the
#: same, held to these by tests/test_search_modes.py).
MAX_QUERY_CHARS = 2000
MAX_LIMIT = 100
DEFAULT_LIMIT = 10
#: What `docs/files` says of a file (the schema's FileIndexState is held to it by a test).
FileIndexState = Literal["indexed", "keywordOnly", "pending", "skipped"]
FILE_STATES: tuple[FileIndexState, ...] = get_args(FileIndexState)
#: Without a model only keyword search works.
KEYWORD_ONLY_MODES: tuple[SearchMode, ...] = ("keyword",)

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
    # Folders that hold keys and tokens (everything under them).
    ".ssh/", ".gnupg/", ".aws/", ".kube/", ".password-store/",
)
#: The language ids a hit can carry (and a search can be limited to): languages.py's table.
LANGUAGES = LANGUAGE_IDS
#: The file suffixes indexed when `include` is empty: every suffix in languages.py's table.
DEFAULT_INCLUDE_EXTENSIONS = SUFFIXES
#: Settings that decide where your text goes (a store, a server) or what runs (the model, the
#: device): a workspace's `.zero-latency.toml` sets them only where the user trusts the folder.
PROTECTED_KEYS = ("storeUrl", "storeApiKey", "storePath", "model", "device", "runtime")
#: Settings that decide what a workspace's index holds: which files, cut how, and the build of
#: the model that embeds them (`Settings.index_variant`).
INDEX_SHAPING_KEYS = ("include", "exclude", "maxFileBytes", "chunkTokens", "chunkOverlap",
                      "followSymlinks", "respectGitignore", "runtime", "device")
#: Settings that grant trust: only the user's own configuration holds them, never a workspace
#: file (trusted or not: a folder cannot vouch for itself).
USER_ONLY_KEYS = ("trustedWorkspaces", "allowHomeOrRootFolders")
#: `model` values a workspace file may always set: nothing outside the package or the Hub.
_SAFE_MODEL_NAMES = frozenset({"bundled", "offline", DEFAULT_MODEL})  # and any "bundled:…"


class SettingsError(ValueError):
    """A setting has the wrong type or value; the message names the key, and the file that
    set it (`source`) where it came from one."""

    def __init__(self, key: str, message: str, source: str | None = None) -> None:
        where = f"{source}: " if source else ""
        super().__init__(f"{where}setting '{key}': {message}" if key else f"{where}{message}")
        self.key = key
        self.message = message
        self.source = source

    def found_in(self, source: str) -> SettingsError:
        """This error, saying which file (or other source) held the value."""
        return SettingsError(self.key, self.message, source)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the engine can be told. Field names are the camelCase keys on the wire."""

    model: str = DEFAULT_MODEL
    device: Device = "cpu"
    runtime: Runtime = "auto"  # on a CPU; a store holds one runtime's vectors
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
    # Pass 2 of indexing (dense vectors, after every file is keyword-searchable): paused keeps
    # the workspace keyword-only until unpaused (edits are still embedded at once); a rate
    # above 0 caps it at that many chunks per second (leaves the CPU to other work).
    backfillPaused: bool = False
    backfillChunksPerSecond: int = 0
    # Folders whose own `.zero-latency.toml` may set the protected keys (user configuration only).
    trustedWorkspaces: tuple[str, ...] = ()
    # Index a filesystem root or a home folder itself (user configuration only; off: refused).
    allowHomeOrRootFolders: bool = False
    #: Not a setting: the trusted workspace folder whose own file chose a protected setting;
    #: no other folder may be indexed with these settings (its text would go where that file
    #: chose). Set by load_settings, never read from a config source.
    boundTo: str | None = dataclasses.field(default=None, metadata={"internal": True})
    #: Not a setting: the home folder of the client these settings are for (the daemon serves
    #: clients whose $HOME is not its own): `~` means it, and it is the home folder refused
    #: as a workspace. None: this process's. Set by load_settings.
    home: str | None = dataclasses.field(default=None, metadata={"internal": True})

    def merged(self, values: Mapping[str, Any]) -> tuple[Settings, list[str]]:
        """Return new settings with `values` applied, plus warnings for unknown keys.

        Raises SettingsError naming the key whose value has the wrong type.
        """
        types = _setting_types(type(self))
        changes: dict[str, Any] = {}
        warnings: list[str] = []
        for key, value in values.items():
            annotation = types.get(key)
            if annotation is None:
                warnings.append(f"unknown setting '{key}' ignored")
                continue
            try:
                changes[key] = _converter().structure(value, annotation)
            except _InvalidValue as err:
                raise SettingsError(key, str(err)) from None
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
        if self.backfillChunksPerSecond < 0:
            raise SettingsError("backfillChunksPerSecond", "must be 0 (no cap) or more")
        if not self.model.strip():
            raise SettingsError("model", "must not be empty")

    def index_variant(self) -> str:
        """Which of a workspace's indexes for its model these settings use: "" where every
        setting that decides what the index holds (`INDEX_SHAPING_KEYS`) has its default,
        else a short hash of those that do not. Two clients of one daemon whose settings
        differ there (an editor's workspace settings exclude a folder, an agent's do not;
        another runtime) each get an index of their own instead of one refused the other's
        store, which Qdrant Edge lets one writer hold."""
        defaults = Settings()
        changed = {key: getattr(self, key) for key in INDEX_SHAPING_KEYS
                   if getattr(self, key) != getattr(defaults, key)}
        if not changed:
            return ""
        text = json.dumps(changed, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def data_dir(self) -> Path:
        if self.storePath:
            return expand_user(self.storePath, self.home)
        return Path(platformdirs.user_data_dir("zero-latency", appauthor=False))


class _InvalidValue(ValueError):
    """A value a setting's type does not take; the message says what it must be."""


def _got(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _strict(expected: type, name: str) -> Callable[[Any, Any], Any]:
    """A structure hook that takes `expected` as it is: cattrs's own would call int("5") or
    bool("no") and so accept what the user did not mean (and a JSON true is not a number)."""
    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            raise _InvalidValue(f"must be {name}, got {_got(value)}")
        return value
    return structure


def _structure_float(value: Any, _: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _InvalidValue(f"must be a number, got {_got(value)}")
    return float(value)


def _literal_hook(annotation: Any) -> Callable[[Any, Any], Any]:
    allowed = get_args(annotation)

    def structure(value: Any, _: Any) -> Any:
        if value not in allowed:
            raise _InvalidValue(f"must be one of {', '.join(map(str, allowed))}, got {value!r}")
        return value
    return structure


def _structure_strings(value: Any, _: Any) -> tuple[str, ...]:
    """A list of strings; one string alone is a list of one (`include = "docs/**"`)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _InvalidValue(f"must be a list of strings, got {type(value).__name__}")
    return tuple(value)


@functools.cache
def _converter() -> cattrs.Converter:
    """Settings are structured by type (as jedi-language-server structures its initialization
    options with cattrs), so a field of any type cattrs knows works without a branch here;
    these hooks only make the scalar types strict and keep the messages the user reads.
    Made on first use: `zl serve`'s bridge imports this module, and never reads settings."""
    import cattrs

    converter = cattrs.Converter()
    converter.register_structure_hook(str, _strict(str, "a string"))
    converter.register_structure_hook(int, _strict(int, "an integer"))
    converter.register_structure_hook(bool, _strict(bool, "a boolean"))
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook_func(
        lambda annotation: annotation == tuple[str, ...], _structure_strings)
    converter.register_structure_hook_factory(
        lambda annotation: getattr(annotation, "__origin__", None) is Literal, _literal_hook)
    return converter



def _setting_types(cls: type[Settings]) -> dict[str, Any]:
    """The settings a source may set, with their types (resolved: the annotations are strings
    under `from __future__ import annotations`)."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)
            if not f.metadata.get("internal")}


def user_config_path() -> Path:
    """The user's own config file: `$ZL_CONFIG`, else `~/.config/zero-latency/config.toml`."""
    if os.environ.get("ZL_CONFIG"):
        return Path(os.environ["ZL_CONFIG"]).expanduser()
    return Path(platformdirs.user_config_dir("zero-latency", appauthor=False)) / "config.toml"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise SettingsError("", f"cannot read config file: {err}", str(path)) from err


def expand_user(path: str, home: str | None) -> Path:
    """`path` with a leading `~` made the client's home (`home`; None: this process's own).
    `~user` forms ask the password database, as the shell does."""
    if home and (path == "~" or path.startswith("~/")):
        return Path(home) / path[2:]
    return Path(path).expanduser()


def is_trusted(folder: Path, settings: Settings) -> bool:
    """The user's configuration names this very folder in `trustedWorkspaces`."""
    resolved = folder.resolve()
    for entry in settings.trustedWorkspaces:
        try:
            if expand_user(entry, settings.home).resolve() == resolved:
                return True
        except (OSError, RuntimeError, ValueError):  # a NUL, `~nobody`: trusts nothing
            continue
    return False


def _workspace_model(spec: Any, workspace: Path | None, trusted: bool, home: str | None) -> Any:
    """A workspace file's `model`, with a relative folder anchored at the workspace (not at
    wherever the editor started the server); None where an untrusted file may not set it: a
    URL, or a folder outside the workspace. A Hub repo id or the bundled model is fine."""
    if not isinstance(spec, str) or spec in _SAFE_MODEL_NAMES or spec.startswith("bundled:"):
        return spec  # a wrong type is reported by Settings.merged, naming the key
    if "://" in spec:
        return spec if trusted else None
    if workspace is None:  # no folder to be inside of: only a Hub repo id is safe
        return spec if not spec.startswith((".", "/", "~")) and not Path(spec).is_dir() else None
    root = workspace.resolve()
    try:
        as_path = expand_user(spec, home)
        anchored = (root / as_path).resolve()  # an absolute path stays itself
    except (OSError, RuntimeError, ValueError):  # a NUL, `~nobody`, a symlink loop
        return spec if trusted else None
    looks_like_path = spec.startswith((".", "/", "~")) or anchored.is_dir() or as_path.is_dir()
    if not looks_like_path:
        return spec  # a Hub repo id
    if trusted or is_inside(anchored, root):
        return str(anchored)
    return None


def _filter_workspace_values(values: Mapping[str, Any], workspace: Path | None, user: Settings,
                             source: str) -> tuple[dict[str, Any], set[str], list[str]]:
    """What a workspace's own configuration (`source`: its `.zero-latency.toml`, or the
    editor's workspace settings a client passes as `workspaceSettings`) may set, which of
    those only the user's trust allowed, and warnings for what it may not set."""
    trusted = workspace is not None and is_trusted(workspace, user)
    kept: dict[str, Any] = {}
    by_trust: set[str] = set()
    refused: list[str] = []
    warnings: list[str] = []
    for key, value in values.items():
        if key in USER_ONLY_KEYS:
            warnings.append(f"{source}: '{key}' ignored: only your own configuration "
                            f"({user_config_path()}) may set it, not a workspace's file")
            continue
        if key == "model":
            if _workspace_model(value, workspace, False, user.home) is None:
                by_trust.add(key)
            value = _workspace_model(value, workspace, trusted, user.home)
        elif key in PROTECTED_KEYS:
            by_trust.add(key)
        if key in by_trust and not trusted:
            refused.append(key)
            continue
        kept[key] = value
    if refused:
        trust = "" if workspace is None else (
            ", or, if you trust this folder, add it there: trustedWorkspaces = "
            f"[{json.dumps(str(workspace.resolve()))}]")  # a TOML basic string is JSON's
        warnings.append(
            f"{source}: {', '.join(refused)} ignored: a workspace's own settings may not "
            "decide where your text goes or what runs. Set "
            f"{'it' if len(refused) == 1 else 'them'} in your own configuration "
            f"({user_config_path()}, CLI flags or your editor's User settings){trust}")
    return kept, by_trust if trusted else set(), warnings


#: The `initializationOptions` key under which a client passes the values it read from the
#: workspace's own configuration (VS Code's `.vscode/settings.json`, a `.code-workspace`
#: file): treated as a `.zero-latency.toml` is. Every other key is the user's own word.
WORKSPACE_SETTINGS_KEY = "workspaceSettings"


def load_settings(
    workspace: Path | None = None, overrides: Mapping[str, Any] | None = None,
    workspace_settings: Mapping[str, Any] | None = None, home: str | None = None,
) -> tuple[Settings, list[str]]:
    """Defaults, then `$ZL_CONFIG` or the user config file, then the workspace's
    `.zero-latency.toml`, then `overrides` (CLI flags or initializationOptions: the user's),
    then `workspace_settings` (an editor's workspace-level settings, which beat the user's
    there, as in the editor).

    Both workspace sources set the protected keys only for a folder in `trustedWorkspaces`
    (the others are ignored with a warning that says how to trust it); settings that only
    trust let them set are bound to that folder (`boundTo`). A model inside the workspace, a
    Hub repo id or the bundled model needs no trust (the text stays on this machine). `home`
    is the client's home folder: what `~` means, and the home folder refused as a workspace."""
    settings = Settings(home=home)
    warnings: list[str] = []
    user_file = user_config_path()
    if user_file.is_file():
        try:
            settings, more = settings.merged(_read_toml(user_file))
        except SettingsError as err:
            raise err.found_in(str(user_file)) from None
        warnings += [f"{user_file}: {w}" for w in more]
    user, _ = settings.merged(overrides or {})  # trust is the user's word only
    from_workspace: set[str] = set()
    workspace_file = workspace / CONFIG_FILE_NAME if workspace is not None else None
    if workspace is not None and workspace_file is not None and workspace_file.is_file():
        values, from_workspace, more = _filter_workspace_values(
            _read_toml(workspace_file), workspace, user, str(workspace_file))
        warnings += more
        try:
            settings, more = settings.merged(values)
        except SettingsError as err:
            raise err.found_in(str(workspace_file)) from None
        warnings += [f"{workspace_file}: {w}" for w in more]
    if overrides:
        settings, more = settings.merged(overrides)
        warnings += more
        from_workspace -= set(overrides)
    if workspace_settings:
        source = "the editor's workspace settings"
        values, trusted_keys, more = _filter_workspace_values(
            workspace_settings, workspace, user, source)
        warnings += more
        try:
            settings, more = settings.merged(values)
        except SettingsError as err:
            raise err.found_in(f"initializationOptions.{WORKSPACE_SETTINGS_KEY}") from None
        warnings += [f"{source}: {w}" for w in more]
        from_workspace |= trusted_keys
    if from_workspace and workspace is not None:
        settings = dataclasses.replace(settings, boundTo=str(workspace.resolve()))
    return _with_home_expanded(settings), warnings


def _with_home_expanded(settings: Settings) -> Settings:
    """`~` in the path settings made the client's home now, so that nothing later expands it
    with this process's $HOME (the daemon's)."""
    def expanded(value: str) -> str:
        return str(expand_user(value, settings.home)) if value.startswith("~") else value

    return dataclasses.replace(
        settings, model=expanded(settings.model),
        storePath=expanded(settings.storePath) if settings.storePath else None,
        trustedWorkspaces=tuple(expanded(t) for t in settings.trustedWorkspaces))


class WorkspaceRefusedError(InvalidParamsError):
    """A folder that must not be indexed with these settings; the message says why and how."""


def _home_folders(client_home: str | None) -> set[Path]:
    """The client's home folder, this process's user's (as $HOME and as the password database
    say) and root's."""
    homes = {Path("/root"), Path.home()}
    if client_home:
        homes.add(Path(client_home))
    if sys.platform != "win32":
        with contextlib.suppress(KeyError, OSError):  # a uid without an entry (containers)
            homes.add(Path(pwd.getpwuid(os.getuid()).pw_dir))
    return {home.resolve() for home in homes if str(home) not in ("", "/")}


def check_workspace_folder(root: Path, settings: Settings) -> None:
    """Refuse a workspace folder that must not be indexed (one check for the CLI and the
    server): a filesystem root or a home folder itself (everything the user has, secrets and
    all) unless the user's configuration allows it, and any folder other than the one whose
    trusted file chose where data goes or what runs."""
    resolved = root.resolve()
    if not settings.allowHomeOrRootFolders:
        what = ("a filesystem root" if resolved.parent == resolved
                else "a home folder" if resolved in _home_folders(settings.home) else None)
        if what is not None:
            raise WorkspaceRefusedError(
                f"{resolved} is {what}: not indexed (it holds far more than documentation, "
                "and secrets). Open a project folder instead, or, if you mean it, set "
                f"allowHomeOrRootFolders = true in {user_config_path()}.")
    if settings.boundTo is not None:
        bound = Path(settings.boundTo)
        if not is_inside(resolved, bound):
            raise WorkspaceRefusedError(
                f"{resolved} is not indexed: the store and model settings in use come from "
                f"{bound / CONFIG_FILE_NAME} and apply to that folder only, so this folder's "
                "text would go where another workspace's file chose. Open it in a window of "
                "its own, or set those settings in your own configuration "
                f"({user_config_path()}).")
