"""Path identity: the one name of a file, and whether a path lies inside a folder (a question
the server asks about workspace folders, trusted folders, scopes and watched events)."""

from __future__ import annotations

from pathlib import Path


def canonical_path(path: Path) -> Path | None:
    """The one absolute, symlink-free name of `path` (None where it cannot be resolved: a
    symlink loop, a name the OS refuses)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):  # RuntimeError: a symlink loop (Python 3.11)
        return None


def is_inside(path: Path, folder: Path) -> bool:
    """`path` is `folder` or below it, as spelled (both already canonical)."""
    return path == folder or folder in path.parents


def resolves_inside(path: Path, folder: Path) -> bool:
    """`path` is `folder` or below it once both are resolved (symlinks, `..`); False where
    either cannot be resolved."""
    resolved, base = canonical_path(path), canonical_path(folder)
    return resolved is not None and base is not None and is_inside(resolved, base)
