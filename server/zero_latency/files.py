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
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
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
from .languages import suffix_of
from .paths import canonical_path as canonical_path  # where the rest looks it up
from .paths import is_inside, resolves_inside

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


@dataclasses.dataclass(frozen=True)
class Surveyed:
    """One path the walk looked at: a file it takes (`reason` None, `entry` set), or a file or
    folder it leaves out and why (a folder left out is not entered: one entry stands for it)."""

    rel: str
    is_dir: bool
    reason: str | None
    entry: FileEntry | None = None


@dataclasses.dataclass(frozen=True)
class _Gitignore:
    """One .gitignore: its rules, and where it is (for saying which rule ignored a path)."""

    base: str  # the folder it is in, workspace-relative ("" at the root)
    spec: pathspec.GitIgnoreSpec

    def rule_for(self, rel: str) -> str | None:
        """`.gitignore:3: build/` (workspace-relative) when a rule here ignores `rel` (a folder
        ends with "/"), else None."""
        if self.base and not rel.startswith(self.base + "/"):
            return None
        result = self.spec.check_file(rel[len(self.base) + 1:] if self.base else rel)
        if not result.include or result.index is None:
            return None
        pattern = getattr(self.spec.patterns[result.index], "pattern", "")
        where = f"{self.base}/.gitignore" if self.base else ".gitignore"
        return f"{where}:{result.index + 1}: {pattern}"


class WorkspaceFilter:
    """Decides what is indexed under one workspace root, and says why a path is not."""

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

    def file_exclusion(self, rel: str) -> str | None:
        """Why a (workspace-relative) file is not indexed by the settings and defaults, or None
        when it is one to index (.gitignore aside)."""
        if (rule := _matching(self.secrets, DEFAULT_SECRET_GLOBS, rel)) is not None:
            return f"may hold secrets: never read (default rule: {rule})"
        if (rule := _matching(self.exclude, self.settings.exclude, rel)) is not None:
            return f"excluded by the exclude setting: {rule}"
        if self.include is not None:
            if not self.include.match_file(rel):
                return "not matched by the include setting"
            return None if language_for(rel) is not None else "not a document type"
        if suffix_of(rel).lower() not in DEFAULT_INCLUDE_EXTENSIONS:
            return "not a document type"
        return None

    def dir_exclusion(self, rel: str) -> str | None:
        """Why a folder is not entered (a default ignore, a workspace folder of its own)."""
        name = rel.rsplit("/", 1)[-1]
        if name in self.excluded_dirs:
            return f"default ignore: {name}"
        if rel in self.nested_roots:
            return "a workspace folder of its own (indexed there)"
        return None

    def wants(self, rel: str) -> bool:
        """True when a (workspace-relative) file path is one to index, .gitignore aside."""
        return self.file_exclusion(rel) is None

    def wants_dir(self, name: str) -> bool:
        return name not in self.excluded_dirs

    def contains(self, path: Path) -> bool:
        return resolves_inside(path, self.root)

    def exclusion(self, rel: str, is_dir: bool = False) -> str | None:
        """Why one file (or folder) is not indexed, or None: the rules the walk applies on its
        way down to it (its folders', then its own), by the same code (used for events on
        single files)."""
        parts = rel.split("/")
        rules = self._with_gitignore([], "")  # the root's own .gitignore
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if (reason := self._entry_exclusion(folder, True, rules)) is not None:
                return reason
            rules = self._with_gitignore(rules, folder)
        return self._entry_exclusion(rel, is_dir, rules)

    def refusal(self, path: Path, check_size: bool = True) -> str | None:
        """The file rules for one path a request names (an opened or edited buffer, a
        `docs/index` uri, `docs/related`, `docs/files`): why it must not be read, or None.
        The same rules as the walk's — inside this workspace once symlinks are resolved, not
        under an ignored folder, not ignored, not a secret, a document type — plus a folder
        or a regular file (never a FIFO or device) within `maxFileBytes` (`check_size`; a
        buffer's own size is the indexer's to judge). Looks at the file's metadata only: it
        never opens it. A file not on disk (a new buffer) is judged by its name."""
        resolved = canonical_path(path)
        if resolved is None or not is_inside(resolved, self.root):
            return "outside the workspace folder: never read"
        rel = _rel(self.root, resolved)
        try:
            info: os.stat_result | None = os.stat(resolved)
        except FileNotFoundError:
            info = None
        except OSError as err:
            return f"unreadable: {err.strerror or err}"
        if info is not None and stat_module.S_ISDIR(info.st_mode):
            return self.exclusion(rel, is_dir=True) if rel else None
        if not rel:
            return "not a file"
        if (reason := self.exclusion(rel)) is not None:
            return reason
        if info is None:
            return None
        if not stat_module.S_ISREG(info.st_mode):
            return "not a regular file (a FIFO, socket or device): never read"
        if check_size and info.st_size > self.settings.maxFileBytes:
            return (f"file is {info.st_size:,} bytes, over the maxFileBytes limit of "
                    f"{self.settings.maxFileBytes:,}: not read")
        return None

    def is_ignored(self, rel: str) -> bool:
        """Full check for one path (used for events on single files): dirs, globs, .gitignore."""
        return self.exclusion(rel) is not None

    def walk(self, start: Path | None = None) -> Iterator[FileEntry]:
        """Every indexable file under `start` (default: the root)."""
        for found in self.survey(start):
            if found.entry is not None:
                yield found.entry

    def survey(self, start: Path | None = None) -> Iterator[Surveyed]:
        """Every file under `start` (default: the root) the walk takes, and every file or
        folder it leaves out with the reason (`zl status --files`, `docs/files`)."""
        base = start or self.root
        # .gitignore files above `start` inside the workspace apply too.
        rules = self._gitignores_above(_rel(self.root, base))
        seen: set[tuple[int, int]] = set()
        yield from self._survey(base, rules, seen)

    def _gitignores_above(self, rel_base: str) -> list[_Gitignore]:
        """The .gitignore files of the root and of the folders down to (not including)
        `rel_base`."""
        rules: list[_Gitignore] = []
        parts = rel_base.split("/") if rel_base else []
        for depth in range(len(parts)):
            rules = self._with_gitignore(rules, "/".join(parts[:depth]))
        return rules

    def _with_gitignore(self, rules: list[_Gitignore], folder_rel: str) -> list[_Gitignore]:
        if not self.settings.respectGitignore:
            return rules
        spec = _gitignore(self.root / folder_rel if folder_rel else self.root)
        return [*rules, _Gitignore(folder_rel, spec)] if spec is not None else rules

    def _entry_exclusion(self, rel: str, is_dir: bool, rules: list[_Gitignore]) -> str | None:
        """The one check per path, for the walk and for single files alike."""
        reason = self.dir_exclusion(rel) if is_dir else self.file_exclusion(rel)
        if reason is not None:
            return reason
        for rule in rules:
            if (matched := rule.rule_for(rel + "/" if is_dir else rel)) is not None:
                return f"ignored by {matched}"
        return None

    def _survey(self, folder: Path, rules: list[_Gitignore],
                seen: set[tuple[int, int]]) -> Iterator[Surveyed]:
        try:
            st = folder.stat()
        except OSError:
            return
        if (st.st_dev, st.st_ino) in seen:  # a symlink loop
            return
        seen.add((st.st_dev, st.st_ino))
        folder_rel = _rel(self.root, folder)
        rules = self._with_gitignore(rules, folder_rel)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            log.warning("cannot list %s: %s", folder, err)
            if folder_rel:
                yield Surveyed(folder_rel, True,
                               f"unreadable folder: {err.strerror or err}")
            return
        for entry in entries:
            # Its path relative to the root, as _rel gives it (the folder's, plus its name).
            rel = f"{folder_rel}/{entry.name}" if folder_rel else entry.name
            try:
                is_link = entry.is_symlink()
                if is_link and not self.settings.followSymlinks:
                    yield Surveyed(rel, entry.is_dir(), "a symbolic link (followSymlinks is off)")
                    continue
                if is_link and not self.contains(Path(entry.path)):
                    yield Surveyed(rel, entry.is_dir(), "a symbolic link out of the workspace")
                    continue
                is_dir = entry.is_dir()
                if not is_dir and not entry.is_file():
                    yield Surveyed(rel, False, "not a regular file (a FIFO, socket or device)")
                    continue
                reason = self._entry_exclusion(rel, is_dir, rules)
                if reason is not None:
                    yield Surveyed(rel, is_dir, reason)
                elif is_dir:
                    yield from self._survey(Path(entry.path), rules, seen)
                else:
                    stat = entry.stat()
                    yield Surveyed(rel, False, None,
                                   FileEntry(folder / entry.name, rel, stat.st_size,
                                             stat.st_mtime_ns))
            except OSError as err:
                yield Surveyed(rel, False, f"unreadable: {err.strerror or err}")


def _rel(root: Path, path: Path) -> str:
    rel = os.path.relpath(path, root)
    return "" if rel == "." else rel.replace(os.sep, "/")


def _matching(spec: pathspec.PathSpec[Any] | None, globs: Sequence[str], rel: str) -> str | None:
    """The glob of `globs` (compiled as `spec`, one pattern per glob) that matches `rel`."""
    if spec is None:
        return None
    result = spec.check_file(rel)
    if not result.include or result.index is None:
        return None
    return globs[result.index] if result.index < len(globs) else "?"


#: Parsed .gitignore files by (path, mtime): a bounded LRU, so that a long-lived daemon
#: walking many workspaces (and every edit of a .gitignore) does not grow it for ever.
GITIGNORE_CACHE_SIZE = 4096
_GITIGNORE_CACHE: OrderedDict[tuple[str, int], pathspec.GitIgnoreSpec | None] = OrderedDict()
_GITIGNORE_LOCK = threading.Lock()


def _gitignore(folder: Path) -> pathspec.GitIgnoreSpec | None:
    path = folder / ".gitignore"
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    key = (str(path), mtime)
    with _GITIGNORE_LOCK:
        if key in _GITIGNORE_CACHE:
            _GITIGNORE_CACHE.move_to_end(key)
            return _GITIGNORE_CACHE[key]
    spec: pathspec.GitIgnoreSpec | None
    try:
        with open_regular(path) as file:  # a FIFO named .gitignore must not block a walk
            text = file.read().decode("utf-8", errors="replace")
        # A blank line becomes a comment: one pattern per line, so a rule's index is its line.
        spec = pathspec.GitIgnoreSpec.from_lines(
            [line if line.strip() else "#" for line in text.splitlines()])
    except (OSError, SkipFile):
        spec = None
    with _GITIGNORE_LOCK:
        _GITIGNORE_CACHE[key] = spec
        while len(_GITIGNORE_CACHE) > GITIGNORE_CACHE_SIZE:
            _GITIGNORE_CACHE.popitem(last=False)
    return spec


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


def probe(path: Path, max_bytes: int) -> tuple[bool, str | None]:
    """What the indexer would make of a file the walk takes: (False, why it is skipped) —
    too large, binary, unreadable, not a regular file — or (True, a warning such as invalid
    UTF-8 replaced, or None). Reads it as the indexer does (`docs/files` asks this)."""
    try:
        return True, read_document(path, max_bytes).warning
    except SkipFile as skip:
        return False, str(skip)


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
