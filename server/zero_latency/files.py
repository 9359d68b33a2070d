"""Which files of a workspace are indexed, and how they are read.

Walks with `os.scandir` (one stat per entry, which is what makes a warm re-index cheap),
prunes VCS/dependency/build folders, honours every `.gitignore` on the way (via `pathspec`,
git's own matching rules), the user's include/exclude globs and the secret-file defaults.
Symlinks are not followed unless asked, and never out of the workspace.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import logging
import os
import stat as stat_module
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pathspec

from .chunking import language_for, normalise_newlines
from .config import (
    DEFAULT_EXCLUDED_DIRS,
    DEFAULT_INCLUDE_EXTENSIONS,
    DEFAULT_SECRET_GLOBS,
    Settings,
)
from .paths import canonical_path as canonical_path  # where the rest looks it up
from .paths import resolves_inside

log = logging.getLogger(__name__)

BINARY_SNIFF_BYTES = 8192
#: Recorded instead of an mtime that cannot be trusted: never equal to a file's, so the file is
#: read again (and, its hash unchanged, only its stat is updated).
UNTRUSTED_MTIME = -2


class SkipFile(Exception):
    """A file that is not indexed, with the reason a user sees."""


@dataclasses.dataclass(frozen=True)
class FileEntry:
    path: Path  # absolute
    rel: str  # workspace-relative, POSIX separators
    size: int
    mtime_ns: int


@dataclasses.dataclass(frozen=True)
class Document:
    text: str  # newlines normalised to \n
    content_hash: str  # of the raw bytes (or buffer text)
    warning: str | None = None  # e.g. undecodable bytes were replaced
    # The stat of the version read (taken before reading it); -1 for buffers.
    size: int = -1
    mtime_ns: int = -1


def glob_spec(globs: tuple[str, ...] | list[str]) -> pathspec.PathSpec[Any] | None:
    return pathspec.PathSpec.from_lines("gitwildmatch", globs) if globs else None


class WorkspaceFilter:
    """Decides what is indexed under one workspace root."""

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.settings = settings
        self.include = glob_spec(settings.include)
        self.exclude = glob_spec(settings.exclude)
        self.secrets = pathspec.GitIgnoreSpec.from_lines(DEFAULT_SECRET_GLOBS)
        self.excluded_dirs = set(DEFAULT_EXCLUDED_DIRS)
        # Workspace folders open inside this one (relative paths): their files belong to the
        # innermost folder only, so this folder's walk skips them.
        self.nested_roots: frozenset[str] = frozenset()

    def wants(self, rel: str) -> bool:
        """True when a (workspace-relative) file path is one to index, .gitignore aside."""
        if self.secrets.match_file(rel):
            return False
        if self.exclude is not None and self.exclude.match_file(rel):
            return False
        if self.include is not None:
            return self.include.match_file(rel) and language_for(rel) is not None
        return Path(rel).suffix.lower() in DEFAULT_INCLUDE_EXTENSIONS

    def wants_dir(self, name: str) -> bool:
        return name not in self.excluded_dirs

    def contains(self, path: Path) -> bool:
        return resolves_inside(path, self.root)

    def is_ignored(self, rel: str) -> bool:
        """Full check for one path (used for events on single files): dirs, globs, .gitignore."""
        parts = rel.split("/")
        if any(not self.wants_dir(p) for p in parts[:-1]) or not self.wants(rel):
            return True
        if not self.settings.respectGitignore:
            return False
        for depth in range(len(parts)):
            spec = _gitignore(self.root.joinpath(*parts[:depth]))
            if spec is None:
                continue
            sub = "/".join(parts[depth:])
            if spec.match_file(sub):
                return True
            # a parent folder ignored with "dir/" style rules
            for k in range(depth + 1, len(parts)):
                if spec.match_file("/".join(parts[depth:k]) + "/"):
                    return True
        return False

    def walk(self, start: Path | None = None) -> Iterator[FileEntry]:
        """Every indexable file under `start` (default: the root)."""
        base = start or self.root
        specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []
        if self.settings.respectGitignore:
            # .gitignore files above `start` inside the workspace apply too.
            rel_base = _rel(self.root, base)
            parts = rel_base.split("/") if rel_base else []
            for depth in range(len(parts)):
                spec = _gitignore(self.root.joinpath(*parts[:depth]))
                if spec is not None:
                    specs.append(("/".join(parts[:depth]), spec))
        seen: set[tuple[int, int]] = set()
        yield from self._walk(base, specs, seen)

    def _walk(self, folder: Path, specs: list[tuple[str, pathspec.GitIgnoreSpec]],
              seen: set[tuple[int, int]]) -> Iterator[FileEntry]:
        try:
            st = folder.stat()
        except OSError:
            return
        if (st.st_dev, st.st_ino) in seen:  # a symlink loop
            return
        seen.add((st.st_dev, st.st_ino))
        if self.settings.respectGitignore:
            spec = _gitignore(folder)
            if spec is not None:
                specs = [*specs, (_rel(self.root, folder), spec)]
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            log.warning("cannot list %s: %s", folder, err)
            return
        for entry in entries:
            rel = _rel(self.root, Path(entry.path))
            try:
                is_link = entry.is_symlink()
                if is_link and (not self.settings.followSymlinks
                                or not self.contains(Path(entry.path))):
                    continue
                is_dir = entry.is_dir()
                if is_dir:
                    if (not self.wants_dir(entry.name) or rel in self.nested_roots
                            or _ignored(specs, rel + "/")):
                        continue
                    yield from self._walk(Path(entry.path), specs, seen)
                    continue
                if not entry.is_file() or not self.wants(rel) or _ignored(specs, rel):
                    continue
                stat = entry.stat()
            except OSError:
                continue
            yield FileEntry(Path(entry.path), rel, stat.st_size, stat.st_mtime_ns)


def _rel(root: Path, path: Path) -> str:
    rel = os.path.relpath(path, root)
    return "" if rel == "." else rel.replace(os.sep, "/")


def _ignored(specs: list[tuple[str, pathspec.GitIgnoreSpec]], rel: str) -> bool:
    for base, spec in specs:
        sub = rel[len(base) + 1:] if base else rel
        if spec.match_file(sub):
            return True
    return False


_GITIGNORE_CACHE: dict[tuple[str, int], pathspec.GitIgnoreSpec | None] = {}


def _gitignore(folder: Path) -> pathspec.GitIgnoreSpec | None:
    path = folder / ".gitignore"
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    key = (str(path), mtime)
    if key not in _GITIGNORE_CACHE:
        try:
            with open_regular(path) as file:  # a FIFO named .gitignore must not block a walk
                text = file.read().decode("utf-8", errors="replace")
            _GITIGNORE_CACHE[key] = pathspec.GitIgnoreSpec.from_lines(text.splitlines())
        except (OSError, SkipFile):
            _GITIGNORE_CACHE[key] = None
    return _GITIGNORE_CACHE[key]


def hash_bytes(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


#: A file modified this recently may be modified again within the same timestamp tick (a
#: jiffy on Linux, up to 2 s on some filesystems) without its mtime changing: its stat is not
#: trusted, so the next run reads it once more ("racy git").
RACY_MTIME_NS = 100_000_000
#: Reads retried when the file changes while it is being read, before settling for the
#: version read (with the stat taken before it, which makes the next run read it again).
READ_ATTEMPTS = 3


def read_document(path: Path, max_bytes: int) -> Document:
    """Read a file as text, or raise SkipFile saying why it is not indexed.

    The stat recorded with the text is the one taken *before* reading it, and it is compared
    with one taken after (and with the bytes read): a file rewritten while it is read is read again,
    so a stat never describes content that was not read (else a later run, seeing the same
    stat, would keep the half-read text forever)."""
    for attempt in range(READ_ATTEMPTS):
        read_started = time.time_ns()
        try:
            before = path.stat()
            if before.st_size > max_bytes:
                raise SkipFile(f"file is {before.st_size:,} bytes, over the maxFileBytes "
                               f"limit of {max_bytes:,}: not indexed")
            with open_regular(path) as file:  # never blocks on a FIFO
                data = file.read(max_bytes + 1)  # one byte more tells it grew over the limit
            after = path.stat()
        except FileNotFoundError as err:
            raise SkipFile("file vanished before it could be read") from err
        except PermissionError as err:
            raise SkipFile("permission denied: not indexed") from err
        except IsADirectoryError as err:
            raise SkipFile("is a directory") from err
        except OSError as err:
            raise SkipFile(f"cannot read file: {err.strerror or err}") from err
        if len(data) > max_bytes:
            raise SkipFile(f"file grew over the maxFileBytes limit of {max_bytes:,}: "
                           "not indexed")
        stable = (before.st_size == after.st_size == len(data)
                  and before.st_mtime_ns == after.st_mtime_ns)
        if not stable and attempt + 1 < READ_ATTEMPTS:
            continue  # rewritten while being read: read the new version
        mtime = before.st_mtime_ns
        if not stable or read_started - mtime < RACY_MTIME_NS:
            mtime = UNTRUSTED_MTIME  # the next run reads it again
        text, warning = decode(data)
        return Document(normalise_newlines(text), hash_bytes(data), warning,
                        size=before.st_size, mtime_ns=mtime)
    raise AssertionError("unreachable")


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading, or raise SkipFile. Opened non-blocking, so that a FIFO
    (or a device) put where a document was expected never waits for a writer; the type is
    checked on the open descriptor, so nothing can swap the file in between."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            raise SkipFile("not a regular file (a FIFO, socket or device): not indexed")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def without_lone_surrogates(text: str) -> str:
    """Editor text with lone UTF-16 surrogates ("\\ud800", which JSON allows) made U+FFFD: no
    encoder, tokenizer or store takes them. Valid pairs are kept."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def decode(data: bytes) -> tuple[str, str | None]:
    """Bytes to text: BOMs for UTF-8/UTF-16/UTF-32, else UTF-8. A NUL byte outside UTF-16/32
    means binary. Invalid UTF-8 is replaced (U+FFFD) and reported, so the rest is searchable."""
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                       (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(codec), None
            except UnicodeDecodeError as err:
                return data.decode(codec, errors="replace"), (
                    f"invalid {codec} at byte {err.start}: replaced with U+FFFD")
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        raise SkipFile("binary file (contains NUL bytes): not indexed")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as err:
        return data.decode("utf-8", errors="replace"), (
            f"invalid UTF-8 at byte {err.start}: undecodable bytes replaced with U+FFFD, "
            "the rest is indexed")
