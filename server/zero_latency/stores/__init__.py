"""Vector stores: one `Store` protocol (`base.py`), the backend-neutral query plan each backend
translates, the embedded Qdrant Edge backend (`edge.py`) and the Qdrant server backend
(`server.py`, loaded only when `storeUrl` is set). The engine and the CLI reach a backend only
through `open_store`, `index_exists` and `discard_store` here, so a new backend is one new
module plus a branch in these three functions.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from ..config import Settings
from ..errors import StoreError
from .base import (
    DENSE,
    HYBRID_FUSION,
    MARKER_HASH,
    SPARSE,
    ChunkPayload,
    ChunkPoint,
    FileState,
    Fusion,
    Mode,
    PathFilter,
    PendingChunk,
    QueryPlan,
    SparseVec,
    Store,
    StoreCounts,
    StoredHit,
    Vector,
    candidate_depth,
    file_marker_id,
    plan_query,
    point_id,
)
from .edge import EdgeStore, store_dir

log = logging.getLogger(__name__)

#: An index made with index-shaping settings that no client has used this long (a settings
#: file changed since, an editor's workspace settings long gone) is deleted when another
#: index of its workspace opens: each holds a copy of the workspace's chunks, and a few
#: `exclude` edits would otherwise leave several on disk for good.
STALE_VARIANT_DAYS = 30

__all__ = [
    "DENSE", "HYBRID_FUSION", "MARKER_HASH", "SPARSE", "STALE_VARIANT_DAYS", "ChunkPayload",
    "ChunkPoint", "EdgeStore", "FileState", "Fusion", "Mode", "PathFilter", "PendingChunk",
    "QueryPlan", "SparseVec", "Store", "StoreCounts", "StoreIdentity", "StoredHit", "Vector",
    "candidate_depth", "discard_store", "edge_path", "file_marker_id", "index_exists",
    "open_store", "other_variants", "plan_query", "point_id", "store_dir",
]


@dataclasses.dataclass(frozen=True)
class StoreIdentity:
    """The model a store is built for: vectors of two models are never mixed."""

    model_id: str
    fingerprint: str
    dimension: int


def open_store(settings: Settings, workspace: Path, model: StoreIdentity) -> Store:
    """The store of `workspace` for `model`: on the Qdrant server of `storeUrl`, else an
    embedded one under the data folder. Raises StoreError (and its kinds) when it cannot."""
    if settings.storeUrl:
        from .server import ServerStore  # qdrant-client loads only when used

        return ServerStore(settings.storeUrl, settings.storeApiKey, workspace,
                           model.fingerprint, model.dimension,
                           variant=settings.index_variant())
    path = edge_path(settings, workspace, model)
    first = first_variant_path(settings, workspace, model)
    if not path.exists() and not (path != first
                                  and EdgeStore.adopt(first, path, model.fingerprint)):
        # A first index for these settings starts as a copy of one of other settings (the
        # default settings' first, then the one opened last), if one is closed now.
        others = sorted(other_variants(settings, workspace, model),
                        key=lambda p: (p != first, -EdgeStore.last_opened(p)))
        for other in others:
            if EdgeStore.seed(other, path, model.fingerprint):
                break
    store = EdgeStore(path, model.fingerprint, model.dimension)
    prune_stale_variants(first, keep=path)
    return store


def prune_stale_variants(first: Path, keep: Path, now: float | None = None) -> list[Path]:
    """Delete the stores beside `first` made with other index-shaping settings
    (`<model>~<variant>`) that no process has open and none has opened for
    STALE_VARIANT_DAYS; the default settings' store (`first`) and `keep` stay. Returns
    those deleted. Never raises: a store it cannot delete now is left for the next time."""
    cutoff = (time.time() if now is None else now) - STALE_VARIANT_DAYS * 86400
    deleted: list[Path] = []
    for path in _variant_folders(first):
        if path == keep:
            continue
        try:
            if EdgeStore.last_opened(path) > cutoff:
                continue
            EdgeStore.destroy(path, lock_file_too=True)  # StoreLockedError: open, so in use
        except (OSError, StoreError) as err:
            log.debug("left the unused index %s: %s", path, err)
            continue
        log.info("deleted the index %s: made with other settings (include/exclude, chunking, "
                 "runtime), unused for over %d days", path, STALE_VARIANT_DAYS)
        deleted.append(path)
    return deleted


def index_exists(settings: Settings, workspace: Path, model: StoreIdentity) -> bool:
    """Whether `workspace` has an index for `model`, creating nothing (for `zl search` run
    inside a workspace, with either backend)."""
    if settings.storeUrl:
        from .server import ServerStore

        return ServerStore.holds_workspace(settings.storeUrl, settings.storeApiKey, workspace,
                                           model.fingerprint, model.dimension,
                                           variant=settings.index_variant())
    return (edge_path(settings, workspace, model) / "shard").exists()


def other_settings_index_exists(settings: Settings, workspace: Path,
                                 model: StoreIdentity) -> bool:
    """Whether `workspace` has an index for `model` made with other index-shaping settings
    than these (`Settings.index_variant`): an embedded store beside this one's folder, or on a
    server the default settings' tenant. Creates nothing."""
    if settings.storeUrl:
        if not settings.index_variant():
            return False
        from .server import ServerStore

        return ServerStore.holds_workspace(settings.storeUrl, settings.storeApiKey, workspace,
                                           model.fingerprint, model.dimension)
    return bool(other_variants(settings, workspace, model))


def discard_store(settings: Settings, workspace: Path, model: StoreIdentity) -> bool:
    """Delete a store that cannot be opened (damaged, or built for another model) so that it
    can be made again; True when there was one. An embedded store's folder goes (refused with
    StoreLockedError while another process has it open); a server collection is never
    deleted for one workspace (it is shared), so that is left to the user: False."""
    if settings.storeUrl:
        return False
    return EdgeStore.destroy(edge_path(settings, workspace, model))


def edge_path(settings: Settings, workspace: Path, model: StoreIdentity) -> Path:
    """The folder of the embedded store of `workspace` for `model` and the settings that shape
    its index (`Settings.index_variant`): `<model>` for the default ones, `<model>~<variant>`
    for others, so that clients of one daemon whose settings differ there each have theirs."""
    path = first_variant_path(settings, workspace, model)
    variant = settings.index_variant()
    return path.with_name(f"{path.name}~{variant}") if variant else path


def first_variant_path(settings: Settings, workspace: Path, model: StoreIdentity) -> Path:
    """Where every store of `workspace` for `model` was before indexes had variants (and where
    the default settings' is): the first settings to open the workspace take it over
    (`EdgeStore.adopt`) if it holds their model build's vectors."""
    return store_dir(settings.data_dir(), workspace.resolve(), model.model_id)


def other_variants(settings: Settings, workspace: Path, model: StoreIdentity) -> list[Path]:
    """The embedded stores of `workspace` for `model` made with other index-shaping settings
    than these: to tell a user whose own settings have none yet why, and to start theirs
    from (`EdgeStore.seed`)."""
    first = first_variant_path(settings, workspace, model)
    own = edge_path(settings, workspace, model)
    return sorted(p for p in [first, *_variant_folders(first)]
                  if p != own and (p / "shard").exists())


def _variant_folders(first: Path) -> list[Path]:
    """The store folders beside `first` (the default settings' one) made with other
    index-shaping settings: `<model>~<variant>`."""
    try:
        return [p for p in first.parent.iterdir()
                if p.name.startswith(first.name + "~") and p.is_dir()]
    except OSError:  # no store of this workspace yet
        return []
