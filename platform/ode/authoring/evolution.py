"""How a contracts library changed between a git ref and the working tree, interface by interface, and which
changes break the consumers (``ode diff``).

The rules are written once here and documented in ``docs/contracts.md`` ("Evolving an interface"):

* an interface removed, its kind changed, an access its consumers use no longer allowed, a route removed, a key of
  a table or the FIFO-ness of a queue changed: **breaking**;
* an event's payload schema, or an HTTP route's request or response schema (``payloads``), that no longer accepts
  what it accepted: a property removed or retyped, an enum narrowed, a property newly required (or, in what
  consumers read, no longer required), a constraint tightened (``minimum``, ``maxLength``, ``pattern``,
  ``additionalProperties: false``...): **breaking**; a response schema removed: **breaking**;
* anything added (an interface, a route, an optional property, an enum value): **compatible**.

A breaking change needs a new major version of that interface. Without one it is an error that names the interface,
the change and every consumer; with one, the consumers whose ``version`` range excludes the new version are named as
the ones that must move. A major version for compatible changes only is reported as needless.
"""

from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import git, sarif
from ..contracts import ACCESS, MAX_FILE_BYTES, ContractErrors, ContractLibrary, line_of, read_library
from ..contracts.versions import Version, VersionRange
from ..errors import OdeError, UsageError

#: Rule id -> (breaking?, what it means). The ids are stable: SARIF results and JSON output name them.
RULES: dict[str, tuple[bool, str]] = {
    "interface-removed": (True, "an interface that consumers may use was removed"),
    "kind-changed": (True, "an interface changed its kind"),
    "access-removed": (True, "an access a consumer uses is no longer allowed"),
    "route-removed": (True, "an HTTP route was removed"),
    "key-changed": (True, "a table's key or a queue's ordering changed"),
    "property-removed": (True, "a payload property was removed"),
    "property-retyped": (True, "a payload property changed its type"),
    "enum-narrowed": (True, "a payload enum lost values or became an enum"),
    "required-added": (True, "a payload property became required"),
    "required-removed": (True, "a payload property is no longer required: consumers that read it may miss it"),
    "constraint-tightened": (True, "a payload constraint became stricter"),
    "payload-removed": (True, "a route's response schema was removed: consumers lose what they read"),
    "interface-added": (False, "an interface was added"),
    "payload-described": (False, "a route's request or response schema was first written down"),
    "route-added": (False, "an HTTP route was added"),
    "property-added": (False, "an optional payload property was added"),
    "enum-widened": (False, "a payload enum gained values"),
    "constraint-relaxed": (False, "a payload constraint became looser"),
    "description-changed": (False, "a description changed"),
}

# JSON Schema keywords whose larger value is stricter, and those whose smaller value is stricter.
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_EXACT = ("pattern", "format", "const", "multipleOf", "uniqueItems")


@dataclass(frozen=True)
class Change:
    """One change of one interface."""

    rule: str
    context: str
    interface: str
    detail: str

    @property
    def breaking(self) -> bool:
        return RULES[self.rule][0]


@dataclass
class InterfaceReport:
    """Every change of one interface, its versions, its consumers and the verdict."""

    context: str
    interface: str
    old_version: str | None
    new_version: str | None
    changes: list[Change] = field(default_factory=list)
    consumers: list[str] = field(default_factory=list)
    #: consumers whose version range excludes the new version (they must move to it)
    must_move: list[str] = field(default_factory=list)
    file: str | None = None
    line: int | None = None

    @property
    def breaking(self) -> bool:
        return any(c.breaking for c in self.changes)

    @property
    def major_bump(self) -> bool:
        if self.old_version is None or self.new_version is None:
            return False
        return Version.parse(self.new_version).major > Version.parse(self.old_version).major

    @property
    def verdict(self) -> str:
        """``error`` (breaking without a major version), ``major`` (breaking, declared), ``needless-major``
        (a major version for compatible changes), ``compatible``."""
        if self.breaking and not self.major_bump and self.new_version is not None:
            return "error"
        if self.breaking and self.new_version is None:
            return "error" if self.consumers else "removed"
        if self.breaking:
            return "major"
        if self.major_bump:
            return "needless-major"
        return "compatible"

    def to_dict(self) -> dict[str, Any]:
        return {
            "context": self.context, "interface": self.interface, "old_version": self.old_version,
            "new_version": self.new_version, "verdict": self.verdict, "breaking": self.breaking,
            "changes": [{**asdict(c), "breaking": c.breaking} for c in self.changes],
            "consumers": self.consumers, "must_move": self.must_move, "file": self.file, "line": self.line,
        }

    def headline(self) -> str:
        """One line: the interface, its versions and the verdict."""
        name = f"{self.context}/{self.interface}"
        versions = f"{self.old_version or '-'} -> {self.new_version or '-'}"
        if self.verdict == "error":
            if self.new_version is None:
                return f"{name}: removed while consumed by {', '.join(self.consumers)}"
            return (f"{name}: breaking change without a new major version ({versions}); consumers: "
                    f"{', '.join(self.consumers) or 'none'}")
        if self.verdict == "major":
            moving = ", ".join(self.must_move) if self.must_move else "none (every consumer's range allows it)"
            return f"{name}: breaking change with a new major version ({versions}); consumers that must move: {moving}"
        if self.verdict == "needless-major":
            return f"{name}: new major version ({versions}) for compatible changes only: needless"
        if self.verdict == "removed":
            return f"{name}: removed (no consumer)"
        return f"{name}: compatible ({versions})"


@dataclass
class DiffReport:
    """The result of :func:`diff_libraries`."""

    since: str
    interfaces: list[InterfaceReport]

    @property
    def ok(self) -> bool:
        """False when any breaking change lacks a new major version."""
        return not any(r.verdict == "error" for r in self.interfaces)

    def to_dict(self) -> dict[str, Any]:
        return {"since": self.since, "ok": self.ok, "interfaces": [r.to_dict() for r in self.interfaces]}

    def to_text(self) -> str:
        if not self.interfaces:
            return f"no interface changed since {self.since}\n"
        lines = []
        for r in self.interfaces:
            lines.append(("error: " if r.verdict == "error" else "") + r.headline())
            for c in r.changes:
                lines.append(f"  {'breaking' if c.breaking else 'compatible'}: {c.rule}: {c.detail}")
        return "\n".join(lines) + "\n"

    def to_sarif(self) -> dict[str, Any]:
        """SARIF 2.1.0 (:mod:`ode.sarif`): one result per change; breaking changes without a major version are
        errors."""
        return sarif.diff_log(self, RULES)


# ---------------------------------------------------------------------------------------------------------------
# Schema rules


def _types(schema: dict[str, Any]) -> set[str] | None:
    t = schema.get("type")
    if t is None:
        return None
    found = {t} if isinstance(t, str) else {str(x) for x in t} if isinstance(t, list) else set()
    if "number" in found:
        found.add("integer")  # every integer is a number
    return found


def schema_changes(old: Any, new: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(rule, detail) for each difference between two JSON Schemas of a payload, by the rules above."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        if old != new:
            yield "property-retyped", f"{where or 'the payload'}: schema replaced"
        return
    here = where or "the payload"
    old_types, new_types = _types(old), _types(new)
    if old_types is not None and (new_types is None or not old_types <= new_types):
        if new_types is not None:
            yield "property-retyped", f"{here}: type {old.get('type')} -> {new.get('type')}"
    elif old_types is None and new_types is not None:
        yield "property-retyped", f"{here}: now restricted to type {new.get('type')}"
    elif old_types is not None and new_types is not None and new_types > old_types:
        yield "constraint-relaxed", f"{here}: type {old.get('type')} -> {new.get('type')}"
    if "enum" in new and "enum" not in old:
        yield "enum-narrowed", f"{here}: now limited to {new['enum']}"
    elif "enum" in old and "enum" in new:
        lost = [v for v in old["enum"] if v not in new["enum"]]
        gained = [v for v in new["enum"] if v not in old["enum"]]
        if lost:
            yield "enum-narrowed", f"{here}: no longer allows {lost}"
        if gained:
            yield "enum-widened", f"{here}: now also allows {gained}"
    for key in _LOWER_BOUNDS:
        o: Any = old.get(key)
        n: Any = new.get(key)
        if _num(n) and (not _num(o) or n > o):
            yield "constraint-tightened", f"{here}: {key} {o} -> {n}"
        elif _num(o) and (not _num(n) or n < o):
            yield "constraint-relaxed", f"{here}: {key} {o} -> {n}"
    for key in _UPPER_BOUNDS:
        o, n = old.get(key), new.get(key)
        if _num(n) and (not _num(o) or n < o):
            yield "constraint-tightened", f"{here}: {key} {o} -> {n}"
        elif _num(o) and (not _num(n) or n > o):
            yield "constraint-relaxed", f"{here}: {key} {o} -> {n}"
    for key in _EXACT:
        if key in new and old.get(key) != new[key]:
            yield "constraint-tightened", f"{here}: {key} {old.get(key)!r} -> {new[key]!r}"
        elif key in old and key not in new:
            yield "constraint-relaxed", f"{here}: {key} {old[key]!r} dropped"
    if old.get("additionalProperties", True) is not False and new.get("additionalProperties", True) is False:
        yield "constraint-tightened", f"{here}: additionalProperties now false"
    old_props: dict[str, Any] = old["properties"] if isinstance(old.get("properties"), dict) else {}
    new_props: dict[str, Any] = new["properties"] if isinstance(new.get("properties"), dict) else {}
    prefix = f"{where}." if where else ""
    for name in old_props:
        if name not in new_props:
            yield "property-removed", f"property {prefix}{name} removed"
        else:
            yield from schema_changes(old_props[name], new_props[name], f"{prefix}{name}")
    for name in new_props:
        if name not in old_props:
            yield "property-added", f"property {prefix}{name} added"
    old_req = set(old.get("required") or []) if isinstance(old.get("required"), list) else set()
    new_req = set(new.get("required") or []) if isinstance(new.get("required"), list) else set()
    for name in sorted(new_req - old_req):
        yield "required-added", f"property {prefix}{name} is now required"
    for name in sorted(old_req - new_req):
        if name in new_props or name not in old_props:
            yield "required-removed", f"property {prefix}{name} is no longer required"
    if "items" in old and "items" in new:
        yield from schema_changes(old["items"], new["items"], f"{prefix}[]" if where else "[]")


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------------------------
# Interfaces


def _dump(iface: Any) -> dict[str, Any]:
    return iface.model_dump(by_alias=True) if iface is not None else {}


def interface_changes(context: str, name: str, old: Any, new: Any) -> list[Change]:
    """Every change between two versions of one interface (``None`` for absent)."""
    if old is None and new is None:
        return []
    if old is None:
        return [Change("interface-added", context, name, f"{new.kind} {name} added")]
    if new is None:
        return [Change("interface-removed", context, name, f"{old.kind} {name} removed")]
    if old.kind != new.kind:
        return [Change("kind-changed", context, name, f"kind {old.kind} -> {new.kind}")]
    changes: list[Change] = []
    o, n = _dump(old), _dump(new)
    if o.get("description") != n.get("description"):
        changes.append(Change("description-changed", context, name, "description changed"))
    if old.kind == "http-api":
        for route in o.get("routes", []):
            if route not in n.get("routes", []):
                changes.append(Change("route-removed", context, name, f"route {route!r} removed"))
        for route in n.get("routes", []):
            if route not in o.get("routes", []):
                changes.append(Change("route-added", context, name, f"route {route!r} added"))
    if old.kind == "http-api":
        changes.extend(_payload_changes(context, name, o.get("payloads") or {}, n.get("payloads") or {}))
    if old.kind == "table":
        for key in ("partition_key", "sort_key"):
            if o.get(key) != n.get(key):
                changes.append(Change("key-changed", context, name, f"{key} {o.get(key)!r} -> {n.get(key)!r}"))
    if old.kind == "queue" and o.get("fifo") != n.get("fifo"):
        changes.append(Change("key-changed", context, name, f"fifo {o.get('fifo')} -> {n.get('fifo')}"))
    if old.kind == "event":
        for rule, detail in schema_changes(o.get("schema", {}), n.get("schema", {})):
            changes.append(Change(rule, context, name, detail))
    return changes


def _payload_changes(context: str, name: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    """Changes of the request and response schemas of the routes both versions describe. A request is what
    consumers send: it may stop requiring a property. A response is what they read, judged like an event."""
    for route in sorted(set(old) | set(new)):
        before, after = old.get(route) or {}, new.get(route) or {}
        for part in ("request", "response"):
            was, now = before.get(part), after.get(part)
            where = f"{route} {part}"
            if was is None and now is not None:
                yield Change("payload-described", context, name, f"{where}: schema written down")
            elif was is not None and now is None:
                if part == "response":
                    yield Change("payload-removed", context, name, f"{where}: schema removed")
            elif was is not None and now is not None:
                for rule, detail in schema_changes(was, now):
                    if part == "request" and rule == "required-removed":
                        rule = "constraint-relaxed"
                    yield Change(rule, context, name, f"{where}: {detail}")


def _consumers(library: ContractLibrary | None, context: str, interface: str) -> dict[str, str | None]:
    """consumer -> its version range (None: any), for one interface."""
    found: dict[str, str | None] = {}
    if library is None:
        return found
    for name, ctx in library.contexts.items():
        for entry in ctx.consumes:
            if entry.context == context and entry.interface == interface:
                found[name] = entry.version
    return found


def diff_libraries(old: ContractLibrary | None, new: ContractLibrary, since: str) -> DiffReport:
    """Compare two libraries interface by interface (see the module's rules)."""
    keys: set[tuple[str, str]] = set()
    for lib in (old, new):
        if lib is not None:
            keys |= {(c, i) for c, ctx in lib.contexts.items() for i in ctx.provides}
    reports = []
    for context, name in sorted(keys):
        before: Any = old.interface(context, name) if old is not None else None
        after: Any = new.interface(context, name)
        changes = interface_changes(context, name, before, after)
        if not changes:
            continue
        report = InterfaceReport(context, name, getattr(before, "version", None), getattr(after, "version", None),
                                 changes)
        consumers = {**_consumers(old, context, name), **_consumers(new, context, name)}
        report.consumers = sorted(consumers)
        if after is not None:
            allowed = ACCESS[after.kind]
            for consumer in sorted(_consumers(new, context, name)):
                for entry in new.contexts[consumer].consumes:
                    if (entry.context, entry.interface) == (context, name) and entry.access \
                            and entry.access not in allowed:
                        report.changes.append(Change("access-removed", context, name,
                                                     f"{consumer} uses access {entry.access!r}, which a "
                                                     f"{after.kind} does not offer"))
            for consumer, rng in sorted(_consumers(new, context, name).items()):
                if rng is not None and not _allows(rng, after.version):
                    report.must_move.append(consumer)
        lib = new if after is not None else old
        if lib is not None and context in lib.files:
            report.file = lib.label(context) if lib is new else f"{since}:{lib.files[context].name}"
            if lib is new:
                report.line = line_of(lib.files[context], ("provides", name))
        reports.append(report)
    return DiffReport(since, reports)


def _allows(rng: str, version: str) -> bool:
    try:
        return VersionRange.parse(rng).allows(version)
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------------------------
# The library at a git ref


#: What ``ode diff`` needs git for, as a failure says it.
_PURPOSE = "`ode diff --since` reads the library at a git ref"


#: Why a symbolic link of the library could not be read through at a ref, as messages say it.
_UNREADABLE = {"outside": "outside the repository; only links inside it are followed",
               "dangling": "which does not exist there", "loop": "which leads round in a loop of links"}


def library_at(contracts: Path, ref: str, into: Path) -> ContractLibrary | None:
    """The contracts library as it was at git ``ref``, written under ``into``; None when it did not exist there.
    ``UsageError`` when the directory is not in a git work tree or the ref is unknown; :class:`DiffError` (one line)
    for a file the library cannot be read from at ``ref``: a symbolic link that leads out of the repository,
    nowhere or round, a file larger than a contract may be.

    Only the library's own files are read (its ``.yaml`` files, ``environments.yaml`` among them), from git's
    objects: a symbolic link is followed inside the repository as it was at ``ref`` (as git follows it) and what
    it leads to is read as the file itself, as reading the library in a working tree would."""
    contracts = contracts.resolve()
    if not contracts.is_dir():
        raise UsageError(f"--contracts: {contracts} is not a directory")
    top = git.top(contracts, purpose=_PURPOSE)
    git.check_ref(top, ref, purpose=_PURPOSE)
    relative = contracts.relative_to(top.resolve()).as_posix() or "."
    entries = git.tree_entries(top, ref, relative, purpose=_PURPOSE)
    if not entries:
        return None  # the library did not exist then: everything in it is new
    # Folders (the teams' code), submodules and other files are not the library's.
    files = {posixpath.basename(e.path): e for e in entries
             if e.kind == "blob" and not posixpath.basename(e.path).startswith(".")
             and e.path.endswith((".yaml", ".yml"))}
    found = git.resolve_at(top, ref, [e.path for e in files.values()], purpose=_PURPOSE)
    wanted: dict[str, str] = {}
    for name, entry in sorted(files.items()):
        where = found[entry.path]
        if where.kind in _UNREADABLE:
            target = git.blobs(top, [entry.oid], purpose=_PURPOSE)[entry.oid].decode(errors="replace")
            raise DiffError(f"--since {ref}: {entry.path} is a symbolic link to {target}, {_UNREADABLE[where.kind]}")
        if where.kind != "blob" or where.oid is None:
            continue  # a link to a folder: not a contract
        if where.size > MAX_FILE_BYTES:
            raise DiffError(f"--since {ref}: {entry.path} is {where.size} bytes there, larger than a contract may be "
                            f"({MAX_FILE_BYTES} bytes)")
        wanted[name] = where.oid
    contents = git.blobs(top, sorted(set(wanted.values())), purpose=_PURPOSE)
    folder = into / "tree"
    folder.mkdir(parents=True, exist_ok=True)
    for name, oid in wanted.items():
        (folder / name).write_bytes(contents[oid])
    library, errors = read_library(folder)
    if library is None:
        reason = next((e.message for e in errors), "no environments.yaml")
        raise DiffError(f"the library at {ref} cannot be read ({relative}/environments.yaml: {reason})")
    return library


def diff_since(contracts: Path, ref: str) -> DiffReport:
    """Compare the library at git ``ref`` with the working tree's (see :func:`diff_libraries`)."""
    new, errors = read_library(contracts)
    if errors or new is None:
        # A file with errors of its own would look like removed interfaces: say what to fix instead. (Cross-file
        # errors are fine here: a consumer outside a new major version's range is what diff reports.)
        raise ContractErrors(errors)
    with tempfile.TemporaryDirectory(prefix="ode-diff-") as tmp:
        old = library_at(contracts, ref, Path(tmp))
        return diff_libraries(old, new, ref)


class DiffError(OdeError):
    """A library that cannot be compared."""

    exit_code = 2
