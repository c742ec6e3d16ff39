"""Diagnostics of a contracts library: each mistake as one :class:`ContractError` naming the file, the line where
it is known, and the field, in the words of the contract language (pydantic's errors translated)."""

from __future__ import annotations

import errno
import functools
import os
import re
import stat
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ValidationError

from components.kinds import KINDS

from ..errors import OdeError
from .model import ACCESS, did_you_mean

if TYPE_CHECKING:
    import yaml


@dataclass(frozen=True, order=True)
class ContractError:
    """One mistake in a contracts library: where it is and what is wrong."""

    file: str
    line: int | None
    field: str
    message: str
    #: The stable id of the cross-file rule it breaks (:data:`ode.contracts.rules.RULES`); None for a mistake
    #: within one file (its YAML, or a field of the contract language).
    rule: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message,
                "rule": self.rule}


class ContractErrors(OdeError, ValueError):
    """Every error found in a contracts library, in file order."""

    exit_code = 2  # a contract mistake is the user's to fix

    def __init__(self, errors: Iterable[ContractError]):
        self.errors = sorted(set(errors), key=lambda e: (e.file, e.line or 0, e.field, e.message))
        super().__init__("\n".join(str(e) for e in self.errors))


# ---------------------------------------------------------------------------------------------------------------
# Lines. Values come from one parser only, yaml_rs (see :mod:`ode.contracts.loading`). PyYAML never reads a value:
# its composer is used, once per file that has errors, only to find the line where a key or an item stands.


def __getattr__(name: str) -> Any:
    if name == "yaml":  # PyYAML, imported when a mistake's line is first looked up (never for a valid library)
        import yaml

        return yaml
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _composed(text: str) -> Any:
    """The YAML node tree of ``text`` (PyYAML's composer, its C one where built); None when it cannot be composed."""
    import yaml  # deferred: see __getattr__

    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.compose(text, Loader=loader)
    except (yaml.YAMLError, RecursionError, ValueError):
        return None

#: Largest contract file read (bytes): a contract is a page or two; a huge file is a mistake, not a contract.
MAX_FILE_BYTES = 8 * 1024 * 1024


def read_text(path: Path, label: str) -> tuple[str | None, list[ContractError]]:
    """The text of a regular file, without a UTF-8 byte-order mark; an error for anything else."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then tells what was opened.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return None, [ContractError(label, None, "", "is not a regular file")]
            if info.st_size > MAX_FILE_BYTES:
                return None, [ContractError(label, None, "", f"is {info.st_size} bytes, larger than a contract "
                                                             f"may be ({MAX_FILE_BYTES} bytes)")]
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            raw = b"".join(chunks)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            return None, [ContractError(label, None, "", "is not a regular file")]
        return None, [ContractError(label, None, "", f"cannot be read: {exc.strerror or exc}")]
    try:
        # utf-8-sig drops a byte-order mark that some editors write; it would otherwise glue onto the first key.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [ContractError(label, line, "", f"is not UTF-8 text (byte {exc.start})")]
    nul = text.find("\x00")
    if nul >= 0:
        # A NUL would end the text early for the parser: the rest of the file would be silently ignored.
        return None, [ContractError(label, text.count("\n", 0, nul) + 1, "", "contains a NUL character")]
    return text, []


def duplicate_line(text: str, key: str) -> int | None:
    """The line of the second occurrence of ``key`` in one mapping (found by position, values not read)."""
    import yaml  # deferred: see __getattr__

    root = _composed(text)
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    if key_node.value == key and key in seen:
                        return int(key_node.start_mark.line) + 1
                    seen.add(key_node.value)
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return None


class _Positions:
    """Where each key and item of one YAML file stands: built in one pass, then each lookup is a dict hit, so
    the cost of naming lines grows with the file, not with the file times its errors."""

    def __init__(self, text: str | None):
        self.lines: dict[tuple[str, ...], int] = {}
        if text is None:
            return
        import yaml  # deferred: see __getattr__

        root = _composed(text)
        if root is None:
            return
        self.lines[()] = root.start_mark.line + 1
        stack: list[tuple[tuple[str, ...], yaml.Node]] = [((), root)]
        while stack:
            prefix, node = stack.pop()
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if not isinstance(key_node, yaml.ScalarNode):
                        continue
                    here = (*prefix, key_node.value)
                    self.lines.setdefault(here, key_node.start_mark.line + 1)
                    stack.append((here, value_node))
            elif isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    here = (*prefix, str(i))
                    self.lines.setdefault(here, item.start_mark.line + 1)
                    stack.append((here, item))

    def line(self, loc: tuple[Any, ...]) -> int | None:
        """The line of the field at ``loc``, or of its nearest parent that the file has."""
        parts = tuple(str(p) for p in loc)
        for end in range(len(parts), -1, -1):
            found = self.lines.get(parts[:end])
            if found is not None:
                return found
        return None


@functools.lru_cache(maxsize=256)
def _positions_of(path: str, mtime_ns: int, size: int) -> _Positions:
    text, _ = read_text(Path(path), path)
    return _Positions(text)


def forget_positions() -> None:
    """Forget the lines cached so far: a new reading of a library starts afresh, so that a file rewritten within the
    clock's resolution is never named with its old lines."""
    _positions_of.cache_clear()


def line_of(path: Path, loc: tuple[Any, ...]) -> int | None:
    """The line of the field at ``loc`` (or of its nearest existing parent) in a YAML file."""
    try:
        info = path.stat()
    except OSError:
        return None
    return _positions_of(str(path), info.st_mtime_ns, info.st_size).line(loc)


def field_path(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _clean_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop the discriminator tags (interface kinds) and internal keys pydantic adds to error locations."""
    parts = list(loc)
    if len(parts) >= 3 and parts[0] == "provides" and parts[2] in ACCESS:
        del parts[2]
    return tuple(p for p in parts if p != "[key]")


def _model_of(annotation: Any, value: Any) -> tuple[Any, Any]:
    """The model class inside an annotation (Optional, Annotated and discriminated unions of models undone)."""
    for _ in range(4):
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            tagged = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)
                      and "kind" in m.model_fields and isinstance(value, dict)
                      and value.get("kind") in typing.get_args(m.model_fields["kind"].annotation)]
            annotation = tagged[0] if tagged else members[0] if len(members) == 1 else None
        else:
            break
    return annotation, value


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...], data: Any) -> list[str] | None:
    """The field names, as written in files, of the model that holds the last part of ``loc``."""
    current: Any = model
    value = data
    parts = list(loc[:-1])
    while parts:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        name = parts.pop(0)
        found = next((f for n, f in current.model_fields.items() if (f.alias or n) == name), None)
        if found is None:
            return None
        value = value.get(name) if isinstance(value, dict) else None
        current, value = _model_of(found.annotation, value)
        origin = typing.get_origin(current)
        if origin in (list, dict) and parts:
            key = parts.pop(0)
            if isinstance(value, list) and isinstance(key, int) and key < len(value):
                value = value[key]
            elif isinstance(value, dict):
                value = value.get(key)
            else:
                value = None
            current, value = _model_of(typing.get_args(current)[-1], value)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return None


def validation_errors(exc: ValidationError, path: Path, label: str, model: type[BaseModel] | None = None,
                       data: Any = None) -> list[ContractError]:
    """One :class:`ContractError` per pydantic error, in the words of the contract language."""
    errors = []
    for err in exc.errors(include_url=False):
        loc = _clean_loc(tuple(err["loc"]))
        message = err["msg"].removeprefix("Value error, ")
        # A model validator names its own field inside the message ("consumes[2]: ..."): lift it out.
        match = re.match(r"^([A-Za-z0-9_.\[\]-]+): (.*)$", message, re.S)
        if match and err["type"] == "value_error":
            named = _loc_from_path(match.group(1))
            here = _fields_at(model, (*loc, ""), data) if model is not None and loc else None
            if not loc or (here and named and named[0] in here):
                loc, message = (*loc, *named), match.group(2)
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(model, loc, data) if model is not None and loc else None
            if allowed:
                message = (f"is not a field of the contract language{did_you_mean(loc[-1], allowed)}; "
                           f"allowed here: {', '.join(allowed)}")
            else:
                message = "is not a field of the contract language (a typo?)"
        elif err["type"] == "missing":
            message = "is required"
        elif err["type"] == "string_pattern_mismatch" and loc and loc[-1] == "context":
            message = f"{err['input']!r} is not a context name: lowercase letters, digits and '-', " \
                "starting with a letter, at most 32 characters"
        elif err["type"] == "union_tag_invalid":
            tag = err.get("ctx", {}).get("tag", "")
            message = f"{tag!r} is not an interface kind{did_you_mean(tag, ACCESS)}: kind must be one of " \
                f"{', '.join(ACCESS)}"
            loc = (*loc, "kind")
        elif err["type"] == "union_tag_not_found":
            message = f"kind is required: one of {', '.join(ACCESS)}"
            loc = (*loc, "kind")
        errors.append(ContractError(label, line_of(path, loc), field_path(loc), message))
    return errors


def _loc_from_path(text: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", text):
        parts.append(int(index) if index else name)
    return tuple(parts)


def settings_errors(exc: ValidationError, component: str, overridden: dict[str, Any], env: str,
                    ) -> list[tuple[tuple[str | int, ...], str]]:
    """Where in a contract (``settings``, or ``overrides.<env>`` for a setting the environment overrides) and what,
    for each error of a component's settings model."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    for e in exc.errors(include_url=False):
        key = e["loc"][0] if e["loc"] else None
        in_override = key in overridden
        loc = ("overrides", env, *e["loc"]) if in_override else ("settings", *e["loc"])
        if e["type"] == "extra_forbidden":
            names = list(KINDS[component].settings.model_fields)
            msg = (f"is not a setting of component {component!r}"
                   f"{did_you_mean(loc[-1], names) if len(loc) == 2 + in_override else ''}; "
                   f"its settings: {', '.join(names)}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
        found.append((loc, msg))
    return found
