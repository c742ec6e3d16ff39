"""The one place ode runs git: the work tree's top, refs, merge-bases, changed paths, files, trees and blobs at a
ref.

Every failure a user can cause (no git, an unknown ref, a directory outside a work tree) is a :class:`UsageError`
naming the git command, never a traceback. ``purpose`` says, in that message, what the command needed git for.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

from .errors import UsageError


@overload
def run(cwd: Path, *args: str, purpose: str, binary: Literal[False] = False, timeout: float = 60) -> str: ...


@overload
def run(cwd: Path, *args: str, purpose: str, binary: Literal[True], timeout: float = 60) -> bytes: ...


def run(cwd: Path, *args: str, purpose: str, binary: bool = False, timeout: float = 60) -> str | bytes:
    """``git -C cwd ARGS``'s standard output (text, or bytes with ``binary``)."""
    try:
        done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise UsageError(f"git is not installed: {purpose}") from None
    if done.returncode != 0:
        raise UsageError(f"git {' '.join(args)}: {done.stderr.decode(errors='replace').strip() or 'failed'}")
    return done.stdout if binary else done.stdout.decode()


def top(path: Path, *, purpose: str) -> Path:
    """The top of the git work tree that holds ``path``."""
    return Path(run(path, "rev-parse", "--show-toplevel", purpose=purpose).strip())


def check_ref(repo: Path, ref: str, *, purpose: str) -> None:
    """A :class:`UsageError` naming ``ref`` (as ``--since`` gave it) when git does not know it as a commit."""
    try:
        run(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", purpose=purpose)
    except UsageError:
        raise UsageError(f"--since: git does not know the ref {ref!r}") from None


def merge_base(repo: Path, since: str, *, purpose: str) -> str:
    """The commit a branch forked from ``since``: the merge-base of ``since`` and HEAD (so that what ``since``
    gained after the fork, on main say, is not counted as this branch's change). ``UsageError`` naming the ref when
    git does not know it, or when the two share no history."""
    check_ref(repo, since, purpose=purpose)
    try:
        return run(repo, "merge-base", since, "HEAD", purpose=purpose).strip()
    except UsageError:
        raise UsageError(f"--since {since}: it shares no history with HEAD (no merge-base)") from None


def changed_paths(repo: Path, since: str, *, purpose: str) -> set[str]:
    """Paths (relative to the work tree's top) that differ between ``since`` (a commit) and the work tree, new
    untracked files included."""
    diff = run(repo, "diff", "--name-only", "-z", since, "--", purpose=purpose)
    untracked = run(repo, "ls-files", "--others", "--exclude-standard", "-z", purpose=purpose)
    return {p for p in (diff + untracked).split("\0") if p}


def file_at(repo: Path, ref: str, path: str) -> str | None:
    """The text of ``path`` (relative to the work tree's top) at ``ref``, a symbolic link followed inside the
    repository; None where there was no such file (or the link led out of the repository, nowhere, or round)."""
    purpose = "reading a file at a git ref"
    try:
        found = resolve_at(repo, ref, [path], purpose=purpose)[path]
        if found.kind != "blob" or found.oid is None:
            return None
        return blobs(repo, [found.oid], purpose=purpose)[found.oid].decode(errors="replace")
    except UsageError:
        return None


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a git tree at a ref: its mode, type (``blob``, ``tree``, ``commit``), object id and path
    (relative to the work tree's top)."""

    mode: str
    kind: str
    oid: str
    path: str

    @property
    def is_link(self) -> bool:
        """Whether it is a symbolic link (a blob whose content is the link's target)."""
        return self.mode == "120000"


def tree_entries(repo: Path, ref: str, folder: str, *, purpose: str) -> list[TreeEntry]:
    """What ``folder`` (relative to the work tree's top; ``.`` for the top) held directly at ``ref``: files,
    links, folders (empty when it did not exist)."""
    spec = [] if folder in (".", "") else ["--", folder.rstrip("/") + "/"]
    found = []
    for record in run(repo, "ls-tree", "-z", "--full-tree", ref, *spec, purpose=purpose).split("\0"):
        if record:
            meta, _, path = record.partition("\t")
            mode, kind, oid = meta.split(" ", 2)
            found.append(TreeEntry(mode, kind, oid, path))
    return found


@dataclass(frozen=True)
class Found:
    """What a path led to at a ref, symbolic links followed inside the repository: ``kind`` is ``blob`` or
    ``tree`` (with ``oid`` and ``size``), or why nothing was found: ``missing``, ``outside`` (a link leading out of
    the repository), ``dangling`` (a link to nothing), ``loop`` (links leading round)."""

    kind: str
    oid: str | None = None
    size: int = 0


#: ``git cat-file --follow-symlinks`` answers, for a path it cannot lead to a file: why.
_UNFOLLOWED = {b"symlink": "outside", b"dangling": "dangling", b"loop": "loop", b"notdir": "missing"}


def resolve_at(repo: Path, ref: str, paths: list[str], *, purpose: str) -> dict[str, Found]:
    """What each of ``paths`` (relative to the work tree's top) led to at ``ref``, by one git process; symbolic
    links are followed as git follows them (``git cat-file --follow-symlinks``): inside the repository only."""
    out = _cat_file(repo, ["--batch-check", "--follow-symlinks"], [f"{ref}:{path}" for path in paths],
                    purpose=purpose)
    found: dict[str, Found] = {}
    at = 0
    for path in paths:
        end = out.index(b"\n", at)
        header = out[at:end].split(b" ")
        at = end + 1
        if header[-1] in (b"missing", b"ambiguous"):
            found[path] = Found("missing")
        elif header[0] in _UNFOLLOWED:  # followed by a line of the given size: where the link led
            found[path] = Found(_UNFOLLOWED[header[0]])
            at += int(header[1]) + 1
        else:
            found[path] = Found(header[1].decode(), header[0].decode(), int(header[2]))
    return found


def blobs(repo: Path, oids: list[str], *, purpose: str) -> dict[str, bytes]:
    """The content of each blob of ``oids``, read by one git process."""
    out = _cat_file(repo, ["--batch"], oids, purpose=purpose)
    found: dict[str, bytes] = {}
    at = 0
    for oid in oids:
        end = out.index(b"\n", at)
        header = out[at:end].split(b" ")
        if len(header) < 3:
            raise UsageError(f"git cat-file: {oid} is missing")
        size = int(header[2])
        found[oid] = out[end + 1:end + 1 + size]
        at = end + 1 + size + 1
    return found


def _cat_file(repo: Path, options: list[str], requests: list[str], *, purpose: str) -> bytes:
    if not requests:
        return b""
    try:
        done = subprocess.run(["git", "-C", str(repo), "cat-file", *options], capture_output=True, timeout=120,
                              input="".join(f"{r}\n" for r in requests).encode())
    except FileNotFoundError:
        raise UsageError(f"git is not installed: {purpose}") from None
    if done.returncode != 0:
        raise UsageError(f"git cat-file: {done.stderr.decode(errors='replace').strip() or 'failed'}")
    return done.stdout


def current_branch(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The branch checked out in ``cwd`` (default: here); None when detached, outside a work tree or without git."""
    try:
        out = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True, cwd=cwd).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out if out and out != "HEAD" else None
