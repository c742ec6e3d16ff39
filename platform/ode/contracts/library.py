"""A loaded contracts library: its contexts, environments and files, and what each context consumes, resolved."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OdeError
from .diagnostics import ContractError
from .model import Context, Environment, EnvironmentsFile, Link, _InterfaceBase, is_deploy_kind
from .rules import check_library


@dataclass
class ContractLibrary:
    """A loaded, individually valid contracts library. Use :meth:`check` (or :func:`load_library`) for the
    cross-file rules; :class:`ode.graph.EnvGraph` builds one environment's graph from it."""

    root: Path
    environments: EnvironmentsFile
    contexts: dict[str, Context]
    files: dict[str, Path] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    _links: dict[str, tuple[Link, ...]] = field(default_factory=dict, repr=False, compare=False)
    _labels: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    _buses: dict[str, tuple[str, str] | None] = field(default_factory=dict, repr=False, compare=False)

    @property
    def project(self) -> str:
        return self.environments.project

    def label(self, context: str) -> str:
        """The file a context came from, as written in messages."""
        if context not in self._labels:
            path = self.files.get(context)
            self._labels[context] = file_label(self.root, path) if path else f"<{context}>"
        return self._labels[context]

    def environment(self, env: str) -> Environment:
        """The named long-lived environment; ``KeyError`` with the known names otherwise."""
        try:
            return self.environments.environments[env]
        except KeyError:
            known = ", ".join(self.environments.environments)
            close = difflib.get_close_matches(str(env), list(self.environments.environments), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UnknownEnvironmentError(f"unknown environment {env!r}{hint} (environments.yaml has: {known})"
                                          ) from None

    def interface(self, context: str, name: str) -> _InterfaceBase | None:
        ctx = self.contexts.get(context)
        return ctx.provides.get(name) if ctx else None  # type: ignore[return-value]

    def bus_of(self, context: str) -> tuple[str, str] | None:
        """The event bus ``context`` publishes on, as (context, interface): one it provides, else one it
        consumes with ``publish``."""
        # Asked once per subscription to the context's events: found once.
        if context not in self._buses:
            self._buses[context] = self._find_bus(context)
        return self._buses[context]

    def _find_bus(self, context: str) -> tuple[str, str] | None:
        ctx = self.contexts[context]
        for name, iface in ctx.provides.items():
            if iface.kind == "event-bus":
                return context, name
        for entry in ctx.consumes:
            producer = self.contexts.get(entry.context)
            used = producer.provides.get(entry.interface) if producer else None
            if used is not None and used.kind == "event-bus" and entry.access_for(used.kind) == "publish":
                return entry.context, entry.interface
        return None

    def links(self, context: str) -> tuple[Link, ...]:
        """What ``context`` consumes, resolved: each existing interface it names, and for each event it
        subscribes to, the bus that event travels on (a deploy need: the rule lives on that bus)."""
        found = self._links.get(context)
        if found is None:
            found = self._links[context] = tuple(self._resolve_links(context))
        return found

    def _resolve_links(self, context: str) -> Iterator[Link]:
        buses: dict[tuple[str, str], str] = {}
        explicit: set[tuple[str, str]] = set()
        for entry in self.contexts[context].consumes:
            producer = self.contexts.get(entry.context)
            iface = producer.provides.get(entry.interface) if producer else None
            if iface is None:
                continue
            explicit.add((entry.context, entry.interface))
            yield Link(entry.context, entry.interface, iface.kind, entry.access_for(iface.kind),
                       is_deploy_kind(iface.kind), None)
            if iface.kind == "event":
                bus = self.bus_of(entry.context)
                if bus is not None and bus[0] != context:
                    buses.setdefault(bus, entry.interface)
        for (bus_context, bus_interface), event in buses.items():
            if (bus_context, bus_interface) not in explicit:
                yield Link(bus_context, bus_interface, "event-bus", "subscribe", True, event)

    def check(self, env: str | None = None) -> list[ContractError]:
        """Every cross-file error (:data:`ode.contracts.rules.RULES`): consumed interfaces that do not exist,
        accesses, versions, environments, events that cannot be published, deploy cycles. Limited to ``env`` where
        given."""
        return check_library(self, env)


class UnknownEnvironmentError(OdeError, KeyError):
    """An environment name that environments.yaml does not have."""

    exit_code = 2  # a usage mistake

    def __str__(self) -> str:
        return str(self.args[0])


def file_label(root: Path, path: Path, cwd: Path | None = None) -> str:
    """How a file is named in messages: relative to the working directory where it lies below it."""
    try:
        return str(path.relative_to(cwd or Path.cwd()))
    except ValueError:
        return str(path)
