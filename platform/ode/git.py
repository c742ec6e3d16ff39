"""The one place ode runs git: the work tree's top, refs, merge-bases, changed paths, files and trees at a ref.

Every failure a user can cause (no git, an unknown ref, a directory outside a work tree) is a :class:`UsageError`
naming the git command, never a traceback. ``purpose`` says, in that message, what the command needed git for.
"""

from __future__ import annotations

import os
import subprocess
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
    """The text of ``path`` (relative to the work tree's top) at ``ref``; None where it did not exist."""
    try:
        return run(repo, "show", f"{ref}:{path}", purpose="reading a file at a git ref")
    except UsageError:
        return None


def tree_names(repo: Path, ref: str, pathspec: list[str], *, purpose: str) -> str:
    """``git ls-tree --name-only``: what ``pathspec`` held at ``ref`` (empty when nothing)."""
    return run(repo, "ls-tree", "--name-only", ref, *pathspec, purpose=purpose)


def archive(repo: Path, ref: str, pathspec: list[str], *, purpose: str) -> bytes:
    """A tar archive of ``pathspec`` as it was at ``ref``."""
    return run(repo, "archive", "--format=tar", ref, *pathspec, purpose=purpose, binary=True, timeout=120)


def current_branch(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The branch checked out in ``cwd`` (default: here); None when detached, outside a work tree or without git."""
    try:
        out = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True, cwd=cwd).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out if out and out != "HEAD" else None
