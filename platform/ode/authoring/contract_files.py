"""Writing contracts: YAML as people read it, the checks a new contract's name and kind must pass, and a file
never replaced by accident. Shared by ``ode init``, the importers and the catalogue."""

from __future__ import annotations

import functools
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.kinds import KINDS

from ..contracts import ENVIRONMENTS_FILE, NAME_PATTERN
from ..contracts.versions import is_version
from ..errors import UsageError

#: Names a context cannot take: its file would be the library's own (``environments.yaml``).
RESERVED_NAMES = frozenset({ENVIRONMENTS_FILE.removesuffix(".yaml")})


def check_name(name: str) -> None:
    if not re.fullmatch(NAME_PATTERN.strip("^$"), name):
        raise UsageError(f"{name!r} is not a context name: lowercase letters, digits and '-', starting with a "
                         "letter, at most 32 characters")
    if name in RESERVED_NAMES:
        raise UsageError(f"{name!r} is reserved: {name}.yaml is the library's list of environments, not a "
                         "contract; choose another name")


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UsageError(f"--component: unknown kind {kind!r}; one of {', '.join(sorted(KINDS))}")



@functools.cache
def _dumper() -> Any:
    """Safe YAML whose multi-line strings (a Backstage API definition) are literal blocks."""
    import yaml  # deferred: only the commands that write YAML need PyYAML

    # libyaml's emitter where PyYAML has it: a large draft (hundreds of routes) is written in seconds, not minutes.
    class Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
        def ignore_aliases(self, data: Any) -> bool:
            # A value shared by several places (a schema two routes use) is written out at each: a contract holds
            # no anchors (`&id001`) or aliases (`*id001`) for its readers to chase. What is written is acyclic:
            # recursion stays a JSON Schema `$ref`.
            return True

    def literal(dumper: Any, value: str) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, literal)
    return Dumper


def as_yaml(data: Any) -> str:
    """``data`` as YAML: keys in their order, multi-line strings as literal blocks, lines up to 110 characters."""
    import yaml  # deferred: see _dumper

    return yaml.dump(data, Dumper=_dumper(), sort_keys=False, allow_unicode=True, width=110)


def semver_of(text: Any, where: str) -> str:
    """``info.version`` as a semantic version: ``1.2`` becomes ``1.2.0``; anything else is an error."""
    value = str(text).strip() if text is not None else ""
    if is_version(value):
        return value
    parts = value.lstrip("v").split(".")
    if 1 <= len(parts) <= 2 and all(p.isdigit() for p in parts):
        return ".".join([str(int(p)) for p in parts] + ["0"] * (3 - len(parts)))
    raise UsageError(f"{where}: info.version {value!r} is not a semantic version (MAJOR.MINOR.PATCH)")


def interface_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-")
    if not name or not name[0].isalpha():
        name = "I" + name
    return name[:64]



@dataclass
class Draft:
    """A contract an importer wrote, where it came from, and what its user should know: each mapping the import
    made and everything it left out, one line each (in the file's header and on stderr)."""

    contract: dict[str, Any]
    source: Path
    notes: list[str] = field(default_factory=list)
    #: How many documents the import read (the spec and the files its references name).
    documents: int = 1
    #: An event bus the import made because the library had none (not drafted from a document).
    made_bus: bool = False

    @property
    def context(self) -> str:
        return str(self.contract["context"])


def contract_text(draft: Draft) -> str:
    """A draft as YAML, with a header saying where it came from and what is left to do."""
    head = [f"# Made by `ode import`: the library had no event bus for the events of {draft.source.name}."
            if draft.made_bus else f"# Imported from {draft.source.name} by `ode import`; review it, then "
            "`ode validate`."]
    head.extend(f"# {line}" for note in draft.notes for line in note.splitlines())
    return "\n".join(head) + "\n" + as_yaml(draft.contract)


def _reserved_file(target: Path) -> bool:
    return target.name in (ENVIRONMENTS_FILE, "environments.yml")


def write_new(target: Path, text: str) -> None:
    """Create ``target`` with ``text``; never through a symlink (even a dangling one) and never over a file. A
    place that cannot be written is one line naming it."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except FileExistsError:
        kind = "a symlink" if target.is_symlink() else "exists already"
        raise UsageError(f"{target}: {kind}; not written") from None
    except OSError as exc:
        raise UsageError(f"{target}: cannot be written: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def make_dirs(directory: Path, option: str) -> None:
    """Create ``directory`` (and its parents), or say in one line why it cannot be."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{option} {directory}: not a folder") from None
    except OSError as exc:
        raise UsageError(f"{option} {directory}: cannot be created: {exc.strerror or exc}") from None
    if not directory.is_dir():
        raise UsageError(f"{option} {directory}: not a folder")


def check_target(target: Path, force: bool = False) -> None:
    """Refuse, in one line, a contract file that must not be written: an existing one unless ``force``, the
    library's environments.yaml, a symlink (even a dangling one), something that is not a file."""
    if _reserved_file(target):
        raise UsageError(f"{target}: the library's list of environments, never replaced by a contract")
    if target.is_symlink():
        raise UsageError(f"{target}: a symlink; not written through (remove it, or choose another --output)")
    if target.exists() and not force:
        raise UsageError(f"{target} exists already; pass --force to replace it, or --output - to print")
    if target.exists() and not target.is_file():
        raise UsageError(f"{target}: not a file; not replaced")


def write_contract(text: str, target: Path, force: bool = False) -> None:
    """Write a contract file, after :func:`check_target`. ``force`` replaces the file itself (written beside
    it, then renamed over it), never what a symlink points at."""
    check_target(target, force)
    make_dirs(target.parent, "--output")
    if not target.exists():
        write_new(target, text)
        return
    temp: str | None = None
    try:
        # Replaced whole or not at all: written beside it, then renamed over it.
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, target)
        temp = None
    except OSError as exc:
        raise UsageError(f"{target}: cannot be written: {exc.strerror or exc}") from None
    finally:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
