"""Writing contracts: YAML as people read it, the checks a new contract's name and kind must pass, and a file
never replaced by accident. Shared by ``ode init``, the importers and the catalogue."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from components.kinds import KINDS

from ..contracts import NAME_PATTERN
from ..contracts.versions import is_version
from ..errors import UsageError


def check_name(name: str) -> None:
    if not re.fullmatch(NAME_PATTERN.strip("^$"), name):
        raise UsageError(f"{name!r} is not a context name: lowercase letters, digits and '-', starting with a "
                         "letter, at most 32 characters")


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UsageError(f"--component: unknown kind {kind!r}; one of {', '.join(sorted(KINDS))}")



@functools.cache
def _dumper() -> Any:
    """Safe YAML whose multi-line strings (a Backstage API definition) are literal blocks."""
    import yaml  # deferred: only the commands that write YAML need PyYAML

    class Dumper(yaml.SafeDumper):
        pass

    def literal(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
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



def contract_text(contract: dict[str, Any], source: Path, unmatched: list[str] | None = None) -> str:
    """A contract as YAML, with a header saying where it came from and what is left to do."""
    head = [f"# Imported from {source.name} by `ode import`; review it, then `ode validate`."]
    for name in unmatched or []:
        head.append(f"# received message {name!r}: no context of the library provides it as an event")
    return "\n".join(head) + "\n" + as_yaml(contract)


def write_contract(text: str, target: Path, force: bool = False) -> None:
    """Write a contract file; refuse to replace one unless ``force``."""
    if target.exists() and not force:
        raise UsageError(f"{target} exists already; pass --force to replace it, or --output - to print")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)

