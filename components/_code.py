"""The team's own code of a context: where its ``code`` or ``build`` directory is, and a digest of its content.

Free of Pulumi imports: the orchestrator fingerprints stacks with it, ``ode affected`` maps changed files to
contexts with it, and the components name the archive they deploy with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .kinds import CODE_FIELDS

#: Parts of a code directory that never reach the deployed artifact's meaning (caches, VCS data).
IGNORED = frozenset({"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache", ".ruff_cache",
                     "node_modules", ".venv"})


def files_of(folder: Path) -> Iterator[Path]:
    """The regular files of ``folder`` that make up its content, in a stable order."""
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).parts
        if any(p in IGNORED for p in rel) or path.suffix == ".pyc" or not path.is_file():
            continue
        yield path


def directory_digest(folder: str | Path) -> str:
    """A digest of the names and bytes of every file under ``folder`` ("missing" when it does not exist)."""
    root = Path(folder)
    if not root.is_dir():
        return "missing"
    h = hashlib.sha256()
    for path in files_of(root):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


def code_directories(settings: Mapping[str, Any], contract_dir: Path) -> dict[str, Path]:
    """The directories a context's settings name (``code``, ``build``), resolved against its contract's folder."""
    return {name: (contract_dir / settings[name]).resolve() for name in CODE_FIELDS if settings.get(name)}
