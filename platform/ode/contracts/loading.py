"""Reading a contracts library: one YAML file per bounded context plus ``environments.yaml``.

:func:`load_library` reads it and raises :class:`ContractErrors` carrying *every* error found, each naming the file,
the line where it is known, and the field. Values come from one parser only, yaml_rs (YAML 1.2: ``yes``/``on`` stay
strings, ``0o17`` is 15, a duplicate key is an error).
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml_rs
from pydantic import ValidationError

from .diagnostics import (
    ContractError,
    ContractErrors,
    duplicate_line,
    forget_positions,
    line_of,
    read_text,
    validation_errors,
)
from .library import ContractLibrary, file_label
from .model import ENVIRONMENTS_FILE, Context, EnvironmentsFile

_YAML_LINE = re.compile(r"at line (\d+)")


def _read_yaml(path: Path, label: str) -> tuple[Any, list[ContractError]]:
    """Parse one file with yaml_rs; a file it rejects is one error with the line it names."""
    text, errors = read_text(path, label)
    if text is None:
        return None, errors
    try:
        return yaml_rs.loads(text), []
    except yaml_rs.YAMLDecodeError as exc:
        message = str(exc)
        dup = re.match(r"duplicate mapping key: (.*)$", message.splitlines()[0] if message else "")
        if dup:
            key = dup.group(1).strip("'\"")
            return None, [ContractError(label, duplicate_line(text, key), key, "is written twice in the same mapping")]
        match = _YAML_LINE.search(message)
        reason = message.strip().splitlines()[-1].strip() if message.strip() else "cannot be parsed"
        return None, [ContractError(label, int(match.group(1)) if match else None, "", f"YAML syntax: {reason}")]
    except Exception as exc:  # noqa: BLE001 - whatever the parser raises, it is this file's error, not a crash
        return None, [ContractError(label, None, "", f"YAML cannot be parsed: {type(exc).__name__}")]


def _context_files(root: Path) -> Iterator[Path]:
    """The contract files of a library: ``*.yaml``/``*.yml`` except environments.yaml and dot-files (editors'
    and tools' own), and only regular files: reading a FIFO or a device would block or never end."""
    with os.scandir(root) as entries:
        names = []
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not name.endswith((".yaml", ".yml")):
                continue
            if name in (ENVIRONMENTS_FILE, "environments.yml"):
                continue
            try:
                if entry.is_file():  # follows symlinks; no extra system call where the directory says the type
                    names.append(name)
            except OSError:
                continue
    for name in sorted(names):
        yield root / name


_CONTEXT_LINE = re.compile(r"^context:[ \t]*[\"']?([a-z][a-z0-9-]{0,31})[\"']?[ \t]*(?:#.*)?$", re.M)


def _claimed_name(path: Path, text: str | None) -> str:
    """The context a file that cannot be read means to define: its ``context:`` line, else its file name.
    Consumers of that context are then not told it "does not exist": the file's own error says why."""
    match = _CONTEXT_LINE.search(text or "")
    return match.group(1) if match else path.stem


def read_library(root: str | Path) -> tuple[ContractLibrary | None, list[ContractError]]:
    """Read and validate each file of a library on its own; return the library (None when environments.yaml
    is unusable) and the errors of the files, without the cross-file checks."""
    root = Path(root)
    # Line lookups are cached per file for one reading of the library; a new reading starts afresh, so that a file
    # rewritten within the clock's resolution is never named with its old lines.
    forget_positions()
    if not root.is_dir():
        return None, [ContractError(str(root), None, "", "is not a directory of contracts")]
    errors: list[ContractError] = []
    env_path = root / ENVIRONMENTS_FILE
    env_file: EnvironmentsFile | None = None
    env_label = file_label(root, env_path)
    if not env_path.exists():
        errors.append(ContractError(env_label, None, "", "is missing: a library needs its environments"))
    else:
        data, errs = _read_yaml(env_path, env_label)
        errors.extend(errs)
        if not errs:
            try:
                env_file = EnvironmentsFile.model_validate(data if data is not None else {})
            except ValidationError as exc:
                errors.extend(validation_errors(exc, env_path, env_label, EnvironmentsFile, data))
                env_file = _salvage_environments(data, exc)
    contexts: dict[str, Context] = {}
    files: dict[str, Path] = {}
    broken: set[str] = set()
    labels: dict[str, str] = {}
    # Every file lies in root: name them from root's label instead of relating each path to the cwd again.
    root_label = file_label(root, root, Path.cwd())
    for path in _context_files(root):
        label = path.name if root_label == "." else os.path.join(root_label, path.name)
        data, errs = _read_yaml(path, label)
        if errs:
            errors.extend(errs)
            text, _ = read_text(path, label)
            broken.add(_claimed_name(path, text))
            continue
        if not isinstance(data, dict):
            errors.append(ContractError(label, 1, "", "a contract is a mapping with context, owner, version, ..."))
            broken.add(path.stem)
            continue
        try:
            ctx = Context.model_validate(data)
        except ValidationError as exc:
            errors.extend(validation_errors(exc, path, label, Context, data))
            partial = _salvage(data, exc)
            if partial is None:
                name = data.get("context")
                broken.add(name if isinstance(name, str) else path.stem)
                continue
            ctx = partial
        if ctx.context in contexts:
            errors.append(ContractError(
                label, line_of(path, ("context",)), "context",
                f"context {ctx.context!r} is already defined in {file_label(root, files[ctx.context])}"))
            continue
        contexts[ctx.context] = ctx
        files[ctx.context] = path
        labels[ctx.context] = label
    if env_file is None:
        return None, errors
    return ContractLibrary(root, env_file, contexts, files, broken, _labels=labels), errors


_PLACEHOLDERS = {"owner": "?", "version": "0.0.0"}
#: Stand-ins for the fields of an environment whose own errors are reported already.
_ENV_PLACEHOLDERS = {"project": "project", "account": "000000000000", "region": "us-east-1", "protected": False,
                     "role_arn": None}


def _salvage_environments(data: Any, exc: ValidationError) -> EnvironmentsFile | None:
    """What environments.yaml still says when it has errors: the ephemeral policy dropped, bad fields replaced by
    stand-ins, unknown fields dropped, so that the contracts are still checked against its environments (and a
    typo in one account does not turn into "environment 'dev' is not in environments.yaml" everywhere)."""
    if not isinstance(data, dict):
        return None
    fixed: dict[str, Any] = {**data, "ephemeral": None}
    envs = fixed.get("environments")
    if isinstance(envs, dict):
        envs = fixed["environments"] = {k: dict(v) if isinstance(v, dict) else {} for k, v in envs.items()}
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if loc and loc[0] == "project":
            fixed["project"] = _ENV_PLACEHOLDERS["project"]
        elif len(loc) == 1 and err["type"] == "extra_forbidden":
            fixed.pop(loc[0], None)  # type: ignore[arg-type]
        elif len(loc) == 3 and loc[0] == "environments" and isinstance(envs, dict) and loc[1] in envs:
            entry = envs[loc[1]]  # type: ignore[index]
            if err["type"] == "extra_forbidden":
                entry.pop(loc[2], None)
            elif loc[2] in _ENV_PLACEHOLDERS:
                entry[str(loc[2])] = _ENV_PLACEHOLDERS[str(loc[2])]
        elif len(loc) == 2 and loc[0] == "environments" and isinstance(envs, dict):
            envs.pop(loc[1], None)  # type: ignore[call-overload]
    try:
        return EnvironmentsFile.model_validate(fixed)
    except ValidationError:
        return None


def _salvage(data: dict[str, Any], exc: ValidationError) -> Context | None:
    """The valid rest of a contract whose validation failed: unknown fields, bad interfaces and bad consumes
    entries dropped, so that the cross-file checks can still report what else is wrong in one run."""
    data = dict(data)
    provides = dict(data["provides"]) if isinstance(data.get("provides"), dict) else None
    consumes = list(data["consumes"]) if isinstance(data.get("consumes"), list) else None
    bad_consumes: set[int] = set()
    dropped: set[str] = set()
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if not loc:
            return None
        if loc[0] == "provides" and len(loc) > 1 and provides is not None:
            provides.pop(loc[1], None)  # type: ignore[call-overload]
            dropped.add(str(loc[1]))
        elif loc[0] == "consumes" and len(loc) > 1 and isinstance(loc[1], int):
            bad_consumes.add(loc[1])
        elif err["type"] == "extra_forbidden" or loc[0] in ("settings", "overrides", "description", "environments"):
            data.pop(loc[0], None)  # type: ignore[arg-type]
        elif loc[0] in _PLACEHOLDERS and len(loc) == 1:
            # Reported already; a stand-in lets the other files' checks still see this context.
            data[str(loc[0])] = _PLACEHOLDERS[str(loc[0])]
        else:
            return None
    if provides is not None:
        data["provides"] = provides
    kept = [i for i in range(len(consumes or [])) if i not in bad_consumes]
    if consumes is not None:
        data["consumes"] = [consumes[i] for i in kept]
    try:
        ctx = Context.model_validate(data)
    except ValidationError:
        return None
    ctx._positions = kept
    ctx._dropped = frozenset(dropped)
    return ctx


def load_library(root: str | Path, env: str | None = None) -> ContractLibrary:
    """Load a contracts library and check it whole (for ``env`` only, where given).

    Raises :class:`ContractErrors` with every error found, or :class:`UnknownEnvironmentError`.
    """
    # Loading makes many small objects and none of them is garbage: the cyclic collector would only rescan them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        library, errors = read_library(root)
        if library is not None:
            if env is not None:
                library.environment(env)
            errors.extend(library.check(env))
    finally:
        if collecting:
            gc.enable()
    if errors:
        raise ContractErrors(errors)
    assert library is not None
    return library
