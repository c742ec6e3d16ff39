"""The team's own code of a context: where its ``code`` or ``build`` directory is, what may be in it, and a digest
of its content.

A code directory lies inside the library's repository (the git work tree that holds the contracts folder, or the
contracts folder's parent outside git): ``code: /etc`` or ``code: ../../..`` would put whatever is there into a
function's zip or an image. Inside the directory, a symbolic link must lead to somewhere inside that same directory,
as in a Docker build context: a link to ``~/.aws/credentials`` is refused, naming the link, and is never read. What
is read is exactly what is deployed: the digest walks the same files the function's zip and the image's build context
hold.

Free of Pulumi imports: the orchestrator fingerprints stacks with it, ``ode affected`` maps changed files to
contexts with it, ``ode validate`` checks the directories with it, and the components name the archive they deploy
with it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

#: Settings that name a directory of the team's code, relative to the contract file.
CODE_FIELDS = ("code", "build")

#: Parts of a code directory that never reach the deployed artifact's meaning (caches, VCS data).
IGNORED = frozenset({"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache", ".ruff_cache",
                     "node_modules", ".venv"})


class CodeDirectoryError(ValueError):
    """A code directory holds what may not be deployed or read: a link leading out of it, an unreadable file.
    ``inside`` is where, relative to the directory; ``reason`` says what is wrong there."""

    def __init__(self, folder: Path, inside: str, reason: str):
        self.inside = inside
        self.reason = reason
        super().__init__(f"{(Path(folder.name) / inside).as_posix()} {reason}")

    def named(self, folder: str) -> str:
        """The message with the directory named as ``folder`` (as a contract writes it)."""
        return f"{(Path(folder) / self.inside).as_posix()} {self.reason}"


@functools.lru_cache(maxsize=256)
def _repository_of(folder: str) -> Path:
    path = Path(folder)
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():  # a directory, or a file in a linked work tree or a submodule
            return candidate
    return path.parent


def code_root(contract_dir: str | Path) -> Path:
    """The library's repository, which every code directory must lie in: the git work tree that holds
    ``contract_dir`` (the contracts folder), or that folder's parent outside git."""
    return _repository_of(str(Path(contract_dir).resolve()))


def outside_repository(value: str, contract_dir: str | Path) -> str | None:
    """Why the code directory ``value`` (as a contract writes it, relative to ``contract_dir``) may not be used, or
    None: it must lie in the library's repository (:func:`code_root`) and be a directory."""
    root = code_root(contract_dir)
    folder = (Path(contract_dir) / value).resolve()
    if not folder.is_relative_to(root):
        shown = "" if str(folder) == value else f" ({folder})"
        return f"directory {value!r}{shown} is outside the library's repository {root}: a code directory lies in " \
               "the repository that holds the contracts"
    if not folder.is_dir():
        return f"directory {value!r} does not exist (relative to the contract file: {folder})"
    return None


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def files_of(folder: Path) -> Iterator[Path]:
    """The regular files of ``folder`` that make up its content, in a stable order, named as they lie in it (a link
    to a file inside ``folder`` is read as that file; a link to a directory is not entered). Raises
    :class:`CodeDirectoryError` naming a symbolic link that leads out of ``folder`` or nowhere, or what cannot be
    listed."""
    root = os.path.realpath(folder)

    def walk(here: Path, real: str) -> Iterator[Path]:
        try:
            with os.scandir(here) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            raise CodeDirectoryError(folder, _inside(here, folder), f"cannot be listed ({exc.strerror or exc})") \
                from None
        for entry in entries:
            if entry.name in IGNORED:
                continue
            path = here / entry.name
            link = entry.is_symlink()
            target = os.path.realpath(path) if link else os.path.join(real, entry.name)
            if link and not _within(target, root):
                raise CodeDirectoryError(folder, _inside(path, folder), f"is a symbolic link to {target}, outside the "
                                         "code directory: links must stay inside it")
            try:
                mode = os.stat(target).st_mode
            except OSError as exc:
                if link:
                    raise CodeDirectoryError(folder, _inside(path, folder), f"is a symbolic link to "
                                             f"{os.readlink(path)}, which does not exist") from None
                raise CodeDirectoryError(folder, _inside(path, folder), f"cannot be read ({exc.strerror or exc})") \
                    from None
            if stat.S_ISDIR(mode):
                # A link to a directory inside is left as a link, as a Docker build context leaves it.
                if not link:
                    yield from walk(path, target)
            elif stat.S_ISREG(mode) and not entry.name.endswith(".pyc"):
                yield path  # sockets, FIFOs and devices are no code (and reading a FIFO never ends)

    yield from walk(Path(folder), root)


def _inside(path: Path, folder: Path) -> str:
    """Where ``path`` lies in ``folder``, as messages name it."""
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)


def directory_digest(folder: str | Path) -> str:
    """A digest of the names and bytes of every file under ``folder`` ("missing" when it does not exist). Raises
    :class:`CodeDirectoryError` naming a link that leads out of it or a file that cannot be read."""
    root = Path(folder)
    if not root.is_dir():
        return "missing"
    h = hashlib.sha256()
    for path in files_of(root):
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise CodeDirectoryError(root, _inside(path, root), f"cannot be read ({exc.strerror or exc})") from None
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(content).digest())
    return h.hexdigest()[:16]


def check_directory(folder: str | Path) -> None:
    """Raise :class:`CodeDirectoryError` when ``folder`` holds what may not be deployed: a link leading out of it
    or nowhere, a file or directory that cannot be read (the files themselves are opened, not read)."""
    root = Path(folder)
    for path in files_of(root):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise CodeDirectoryError(root, _inside(path, root), f"cannot be read ({exc.strerror or exc})") from None


def code_directories(settings: Mapping[str, Any], contract_dir: Path) -> dict[str, Path]:
    """The directories a context's settings name (``code``, ``build``), resolved against its contract's folder."""
    return {name: (contract_dir / settings[name]).resolve() for name in CODE_FIELDS if settings.get(name)}
