"""Reading API documents (OpenAPI, AsyncAPI) for the importers, safely: a spec may come from anyone (a partner, a
pull request), and what an import reads ends up in a contract someone commits.

- **Files**: a ``$ref`` to a file is read only inside the import's folder (the spec's folder, or ``--ref-root``):
  an absolute path, a ``..`` that leaves the folder, a symlink that leads out of it and a hidden file or folder
  (``.git``, ``.aws``) are refused, naming the ref.
- **Network**: nothing is fetched unless the import allows remote references, then only ``http``/``https``, never a
  link-local address (a cloud's instance metadata), each document within a time and a size.
- **Bounds**: every document's size, the total read, YAML's anchors and aliases (an anchor bomb is refused while it
  is parsed, by yaml_rs's replay limits), its nesting (yaml_rs's own limit), and the size of what the ``$ref``\\ s
  expand to (a bomb made of references) are bounded by :class:`Limits`.
- **Recursion**: a schema that contains itself (``children: items: $ref Node``) is kept as a JSON Schema
  reference: ``{"$ref": "#"}`` to the payload's root, or ``{"$ref": "#/$defs/Node"}`` with ``Node`` under the
  payload's ``$defs``. Every other reference is inlined, so that ``ode diff`` sees the whole payload.

prance (the resolver used before) refuses recursive schemas and offers no sandbox; the ``referencing`` and
``jsonref`` libraries resolve lazily into proxies or cycles, which a contract cannot hold. The resolver here is
small: JSON pointers, relative URIs (``urllib.parse``), and the walk over a schema's subschemas.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError


@dataclass(frozen=True)
class Limits:
    """How much one import may read and write."""

    #: Bytes of one document (a file or a remote answer).
    document_bytes: int = 32 << 20
    #: Bytes of every document one import reads.
    total_bytes: int = 512 << 20
    #: YAML events replayed for aliases, per document (yaml_rs's own default is a million).
    alias_events: int = 200_000
    #: Values (each mapping, list and scalar) the resolved schemas of one import may hold once inlined.
    values: int = 5_000_000
    #: Seconds one remote document may take, connection and transfer together.
    remote_seconds: float = 10.0
    #: Remote documents one import may fetch.
    remote_documents: int = 64


LIMITS = Limits()


class Progress:
    """Lines about a long import for its user, at most one every ``every_s`` seconds, none for a short one."""

    def __init__(self, report: Callable[[str], None] | None, every_s: float = 2.0):
        self.report = report
        self.every_s = every_s
        self._last = time.monotonic()

    def note(self, line: Callable[[], str]) -> None:
        """Report ``line()`` if the last report (or the start) is ``every_s`` old."""
        if self.report is None:
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.report(line())


#: Schema keywords whose value is one subschema, a list of them, or a name -> subschema mapping. Everything else
#: (``example``, ``enum``, ``default``, extensions...) is data and kept as written, ``$ref``-looking keys included.
_ONE = frozenset({"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
                  "unevaluatedItems", "unevaluatedProperties", "additionalItems", "contentSchema"})
_MANY = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_NAMED = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})


def without_keywords(schema: Any, keywords: frozenset[str]) -> Any:
    """``schema`` without the annotation ``keywords`` (``example``, ``description``...) at any depth; a property
    that happens to be named like one stays."""
    if isinstance(schema, list):
        return [without_keywords(s, keywords) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, sub in schema.items():
        if key in _NAMED and isinstance(sub, dict):
            out[key] = {name: without_keywords(s, keywords) for name, s in sub.items()}
        elif key in keywords:
            continue
        elif key in _ONE or (key in _MANY and isinstance(sub, list)):
            out[key] = without_keywords(sub, keywords)
        else:
            out[key] = sub
    return out


def _size(value: Any) -> int:
    """How many values ``value`` holds (itself included), counted without recursion."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _pointer(fragment: str, ref: str, where: str) -> list[str]:
    """The tokens of a JSON pointer fragment (``/components/schemas/A~1B`` -> ``components, schemas, A/B``)."""
    fragment = urllib.parse.unquote(fragment)
    if not fragment:
        return []
    if not fragment.startswith("/"):
        raise UsageError(f"{where}: $ref {ref!r}: only JSON pointers (#/path/to/value) are understood")
    return [t.replace("~1", "/").replace("~0", "~") for t in fragment[1:].split("/")]


def _link_local(host: str) -> bool:
    """Whether ``host`` is (or resolves to) a link-local address, where clouds answer with instance credentials."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False  # urllib says it cannot connect, naming the host
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        mapped = getattr(address, "ipv4_mapped", None)
        if address.is_link_local or (mapped is not None and mapped.is_link_local) or str(address) == "fd00:ec2::254":
            return True
    return False


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Redirects followed only to http(s) addresses that are not link-local (urllib would follow ftp too)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        parts = urllib.parse.urlsplit(newurl)
        if parts.scheme not in ("http", "https") or _link_local(parts.hostname or ""):
            raise UsageError(f"{req.full_url}: redirected to {newurl}, which is not fetched")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class SpecReader:
    """The documents of one import: the specs, what their ``$ref``\\ s name, read once each, within ``root``.

    ``deref`` follows a chain of references to the value it ends at; ``schema`` returns a JSON Schema with its
    references inlined and its recursion kept as references (see the module's docstring)."""

    def __init__(self, root: Path, *, allow_remote: bool = False, limits: Limits | None = None,
                 progress: Progress | None = None):
        self.root = Path(os.path.normpath(root.absolute()))
        try:
            self.real_root = self.root.resolve(strict=True)
        except OSError as exc:
            raise UsageError(f"{root}: cannot be read: {exc.strerror or exc}") from None
        if not self.real_root.is_dir():
            raise UsageError(f"{root}: is not a folder")
        self.allow_remote = allow_remote
        self.limits = limits or LIMITS
        self.progress = progress or Progress(None)
        self.documents: dict[str, Any] = {}
        self.bytes_read = 0
        self.remote_fetched = 0
        self.values = 0
        #: Schemas that contain themselves, kept as references (named for the user).
        self.recursive: list[str] = []
        # Resolved schemas without recursion, shared between payloads: (result, size) per (document, pointer).
        self._memo: dict[tuple[str, str], tuple[Any, int]] = {}

    # -- documents ---------------------------------------------------------------------------------------------

    def label(self, uri: str) -> str:
        """A document as its user knows it: its path (relative to the working directory when inside it), or its
        URL."""
        if uri.startswith("file:"):
            path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(uri).path))
            try:
                return path.relative_to(Path.cwd()).as_posix()
            except ValueError:
                return str(path)
        return uri

    def open(self, spec: Path) -> tuple[str, Any]:
        """A spec named on the command line: its URI (the base of its references) and its content."""
        path = Path(os.path.normpath(spec.absolute()))
        try:
            real = path.resolve(strict=True)
        except OSError as exc:
            raise UsageError(f"{spec}: {'no such file' if isinstance(exc, FileNotFoundError) else exc.strerror}") \
                from None
        if not real.is_file():
            raise UsageError(f"{spec}: not a file")
        if not (path.is_relative_to(self.root) or real.is_relative_to(self.real_root)):
            raise UsageError(f"{spec}: not inside --ref-root {self.root}")
        uri = path.as_uri()
        return uri, self._load(uri, str(spec))

    def _load(self, uri: str, where: str) -> Any:
        if uri in self.documents:
            return self.documents[uri]
        if uri.startswith("file:"):
            path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(uri).path))
            data = self._read_file(path, where)
        else:
            data = self._fetch(uri, where)
        self.bytes_read += len(data)
        if self.bytes_read > self.limits.total_bytes:
            raise UsageError(f"{where}: the documents of this import exceed {self.limits.total_bytes >> 20} MB")
        document = self._parse(data, self.label(uri))
        self.documents[uri] = document
        self.progress.note(lambda: f"read {len(self.documents)} documents ({self.bytes_read >> 10} KB)")
        return document

    def _read_file(self, path: Path, where: str) -> bytes:
        try:
            # Looked at before it is opened: opening a FIFO blocks, reading a device never ends.
            if not stat.S_ISREG(os.stat(path).st_mode):
                raise UsageError(f"{where}: {path} is not a regular file")
            with open(path, "rb") as handle:
                data = handle.read(self.limits.document_bytes + 1)
            if len(data) > self.limits.document_bytes:
                raise UsageError(f"{where}: {path} is larger than {self.limits.document_bytes >> 20} MB")
            return data
        except FileNotFoundError:
            raise UsageError(f"{where}: {path}: no such file") from None
        except OSError as exc:
            raise UsageError(f"{where}: {path}: cannot be read: {exc.strerror or exc}") from None

    def _fetch(self, url: str, where: str) -> bytes:
        if not self.allow_remote:
            raise UsageError(f"{where}: {url} is remote and is not fetched (pass --allow-remote-refs to fetch "
                             "http(s) references)")
        parts = urllib.parse.urlsplit(url)
        if _link_local(parts.hostname or ""):
            raise UsageError(f"{where}: {url} is a link-local address (instance metadata): never fetched")
        self.remote_fetched += 1
        if self.remote_fetched > self.limits.remote_documents:
            raise UsageError(f"{where}: more than {self.limits.remote_documents} remote documents")
        opener = urllib.request.build_opener(_Redirects())
        deadline = time.monotonic() + self.limits.remote_seconds
        chunks: list[bytes] = []
        size = 0
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "ode-import", "Accept": "*/*"})
            with opener.open(request, timeout=self.limits.remote_seconds) as answer:
                while chunk := answer.read(1 << 16):
                    size += len(chunk)
                    if size > self.limits.document_bytes:
                        raise UsageError(f"{where}: {url} is larger than {self.limits.document_bytes >> 20} MB")
                    if time.monotonic() > deadline:
                        raise TimeoutError
                    chunks.append(chunk)
        except UsageError:
            raise
        except TimeoutError:
            raise UsageError(f"{where}: {url} took longer than {self.limits.remote_seconds:g} s") from None
        except OSError as exc:  # URLError, HTTPError, refused connections
            raise UsageError(f"{where}: {url} cannot be fetched: {getattr(exc, 'reason', None) or exc}") from None
        return b"".join(chunks)

    def _parse(self, data: bytes, label: str) -> Any:
        import yaml_rs  # deferred: only the importers read YAML here

        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UsageError(f"{label}: not UTF-8 text") from None
        try:
            limits = yaml_rs.AliasLimits(max_total_replayed_events=self.limits.alias_events)
            document = yaml_rs.loads(text, parse_datetime=False, alias_limits=limits)
        except yaml_rs.YAMLDecodeError as exc:
            lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
            reason = lines[0] if lines else "cannot be parsed"
            if len(lines) > 1 and "recursion limit" in lines[-1]:
                reason = f"{reason}: nested too deeply"
            elif "alias" in reason:
                reason = f"{reason} (YAML anchors and aliases expand too much)"
            raise UsageError(f"{label}: cannot be read as YAML or JSON: {reason}") from None
        except (ValueError, TypeError, OverflowError) as exc:
            raise UsageError(f"{label}: cannot be read as YAML or JSON: {exc}") from None
        return document

    # -- references --------------------------------------------------------------------------------------------

    def target(self, ref: str, base: str) -> tuple[str, str]:
        """(document URI, JSON pointer) a ``$ref`` written in document ``base`` names, once it passes the
        sandbox's checks."""
        where = self.label(base)
        if not isinstance(ref, str):
            raise UsageError(f"{where}: $ref {ref!r} is not a string")
        parts = urllib.parse.urlsplit(ref)
        remote_base = not base.startswith("file:")
        if parts.scheme and parts.scheme not in ("http", "https"):
            kind = "an absolute path" if parts.scheme == "file" else f"a {parts.scheme}: reference"
            raise UsageError(f"{where}: $ref {ref!r} is {kind}: only files inside {self.root} are read")
        if not parts.scheme and not remote_base and parts.path.startswith("/"):
            raise UsageError(f"{where}: $ref {ref!r} is an absolute path: only files inside {self.root} are read "
                             "(write it relative to the spec)")
        joined, fragment = urllib.parse.urldefrag(urllib.parse.urljoin(base, ref))
        if joined.startswith("file:"):
            self._check_file(ref, joined, where)
        return joined, fragment

    def _check_file(self, ref: str, uri: str, where: str) -> None:
        path = Path(os.path.normpath(urllib.request.url2pathname(urllib.parse.urlsplit(uri).path)))
        hint = " (pass --ref-root DIR to read a folder that holds it)"
        if not path.is_relative_to(self.root):
            raise UsageError(f"{where}: $ref {ref!r} leaves the spec's folder {self.root}{hint}")
        if any(part.startswith(".") for part in path.relative_to(self.root).parts):
            raise UsageError(f"{where}: $ref {ref!r} names a hidden file or folder: not read")
        try:
            real = path.resolve(strict=True)
        except FileNotFoundError:
            raise UsageError(f"{where}: $ref {ref!r}: no such file {path}") from None
        except OSError as exc:
            raise UsageError(f"{where}: $ref {ref!r}: {path} cannot be read: {exc.strerror or exc}") from None
        if not real.is_relative_to(self.real_root):
            raise UsageError(f"{where}: $ref {ref!r} is a symlink leading outside {self.root}: not read")
        if any(part.startswith(".") for part in real.relative_to(self.real_root).parts):
            raise UsageError(f"{where}: $ref {ref!r} leads to a hidden file or folder: not read")

    def lookup(self, key: tuple[str, str], ref: str, base: str) -> Any:
        """The value at JSON pointer ``key[1]`` of document ``key[0]``."""
        where = self.label(base)
        value = self._load(key[0], where)
        for token in _pointer(key[1], ref, where):
            if isinstance(value, dict) and token in value:
                value = value[token]
            elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
                value = value[int(token)]
            else:
                raise UsageError(f"{where}: $ref {ref!r} names nothing (no {token!r} in {self.label(key[0])})")
        return value

    def deref(self, value: Any, base: str) -> tuple[Any, str]:
        """Follow ``value``'s ``$ref`` chain: the value it ends at and the document that holds it."""
        seen: set[tuple[str, str]] = set()
        while isinstance(value, dict) and isinstance(value.get("$ref"), str):
            ref = value["$ref"]
            key = self.target(ref, base)
            if key in seen:
                raise UsageError(f"{self.label(base)}: $ref {ref!r} is part of a loop of references")
            seen.add(key)
            value, base = self.lookup(key, ref, base), key[0]
        return value, base

    @staticmethod
    def ref_name(value: Any) -> str | None:
        """The name a reference gives what it names: the last token of its pointer, else its file's stem."""
        if isinstance(value, dict) and isinstance(value.get("$ref"), str):
            ref = value["$ref"]
            _, fragment = urllib.parse.urldefrag(ref)
            tokens = [t for t in urllib.parse.unquote(fragment).split("/") if t]
            if tokens:
                return tokens[-1].replace("~1", "/").replace("~0", "~")
            stem = Path(urllib.parse.urlsplit(ref).path).stem
            return stem or None
        return None

    # -- schemas -----------------------------------------------------------------------------------------------

    def schema(self, value: Any, base: str) -> Any:
        """A JSON Schema with every reference inlined except those that recurse, which stay references into the
        returned schema (``#`` or ``#/$defs/NAME``)."""
        inliner = _Inliner(self, value, base)
        result = inliner.walk(value, base)
        for key in inliner.recursive:
            name = SpecReader.ref_name({"$ref": f"{key[0]}#{key[1]}"}) or key[1]
            if name not in self.recursive:
                self.recursive.append(name)
        if inliner.defs and isinstance(result, dict):
            defs = {name: schema for name, schema in inliner.defs.items() if name is not None}
            if defs:
                result = {**result, "$defs": {**(result.get("$defs") or {}), **defs}}
        return result

    def count(self, values: int, where: str) -> None:
        self.values += values
        if self.values > self.limits.values:
            raise UsageError(f"{where}: its schemas expand to more than {self.limits.values:,} values once their "
                             "$refs are inlined (references nested too deep)")


class _Inliner:
    """One payload's schema being resolved: the stack of references being expanded (a reference to one of them
    is recursion) and the definitions recursion needs."""

    def __init__(self, reader: SpecReader, value: Any, base: str):
        self.reader = reader
        self.stack: list[tuple[str, str]] = []
        # Per frame: the lowest stack index a recursion inside it pointed at (sys.maxsize: none, so the frame's
        # result is the same wherever it appears and can be shared).
        self.low: list[int] = []
        self.recursive: set[tuple[str, str]] = set()
        self.names: dict[tuple[str, str], str | None] = {}
        self.defs: dict[str | None, Any] = {}
        root_ref = value.get("$ref") if isinstance(value, dict) else None
        self.root_key = reader.target(root_ref, base) if isinstance(root_ref, str) else None

    def _name(self, key: tuple[str, str]) -> str | None:
        """A reference's name under ``$defs`` (None for the payload's root, referred to as ``#``)."""
        if key == self.root_key:
            return None
        if key not in self.names:
            tokens = [t for t in key[1].split("/") if t] or [Path(urllib.parse.urlsplit(key[0]).path).stem]
            stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in tokens[-1]) or "schema"
            name, n = stem, 2
            while name in self.names.values():
                name, n = f"{stem}-{n}", n + 1
            self.names[key] = name
        return self.names[key]

    def _ref_to(self, key: tuple[str, str]) -> dict[str, str]:
        name = self._name(key)
        return {"$ref": "#" if name is None else f"#/$defs/{name}"}

    def walk(self, value: Any, base: str) -> Any:
        if isinstance(value, list):
            return [self.walk(v, base) for v in value]
        if not isinstance(value, dict):
            self.reader.count(1, self.reader.label(base))
            return value
        if isinstance(value.get("$ref"), str):
            return self._reference(value, base)
        out: dict[str, Any] = {}
        for key, sub in value.items():
            if key in _NAMED and isinstance(sub, dict):
                out[key] = {name: self.walk(s, base) for name, s in sub.items()}
            elif key in _ONE or (key in _MANY and isinstance(sub, list)):
                out[key] = self.walk(sub, base)
            else:
                self.reader.count(_size(sub), self.reader.label(base))
                out[key] = sub
        self.reader.count(1, self.reader.label(base))
        return out

    def _reference(self, value: dict[str, Any], base: str) -> Any:
        ref = value["$ref"]
        key = self.reader.target(ref, base)
        siblings = {k: v for k, v in value.items() if k != "$ref"}
        if key in self.stack:
            index = self.stack.index(key)
            self.recursive.add(key)
            if self.low:
                self.low[-1] = min(self.low[-1], index)
            result: Any = self._ref_to(key)
        elif key in self.recursive and self._name(key) in self.defs:
            result = self._ref_to(key)  # already a definition of this payload
        elif key in self.reader._memo:
            result, size = self.reader._memo[key]
            self.reader.count(size, self.reader.label(base))
        else:
            target = self.reader.lookup(key, ref, base)
            self.stack.append(key)
            self.low.append(sys.maxsize)
            before = self.reader.values
            try:
                result = self.walk(target, key[0])
            finally:
                self.stack.pop()
                low = self.low.pop()
            if self.low:
                self.low[-1] = min(self.low[-1], low)
            if key in self.recursive:
                self.defs[self._name(key)] = result
                result = result if key == self.root_key else self._ref_to(key)
            elif low == sys.maxsize:  # no recursion inside: the same everywhere, shared with later payloads
                self.reader._memo[key] = (result, self.reader.values - before)
        if siblings and isinstance(result, dict):
            # OpenAPI 3.1 and JSON Schema let a reference carry keywords of its own (a description...).
            extra = self.walk({k: v for k, v in siblings.items()}, base)
            result = {**result, **extra} if "$ref" not in result else {"allOf": [result], **extra}
        return result
