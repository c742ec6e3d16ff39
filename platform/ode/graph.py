"""The dependency graph of one environment, over ``networkx``.

Deploy edges (a consumer needs its producer's outputs) decide the order; event edges (subscriptions) do not, and
are kept for impact analysis and the picture. Callers speak of contexts, producers and consumers, never of raw
networkx.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import NewType

import networkx as nx

from .contracts import ContractLibrary
from .contracts.cycles import find_cycles
from .errors import OdeError, UsageError

__all__ = ["ContextId", "CycleError", "Edge", "EnvGraph", "find_cycles"]

ContextId = NewType("ContextId", str)


@dataclass(frozen=True, order=True)
class Edge:
    """One consumed interface between two contexts deployed in the same environment."""

    consumer: str
    producer: str
    interface: str
    kind: str
    access: str
    deploy: bool
    via: str | None = None


class CycleError(OdeError, ValueError):
    """The deploy edges of a graph form a cycle; ``path`` is it, first node repeated at the end."""

    exit_code = 2  # a contract mistake

    def __init__(self, path: list[str]):
        self.path = path
        super().__init__("cycle of deploy edges: " + " -> ".join(path))


class EnvGraph:
    """The checked graph of one environment: its contexts, deploy and event edges, and their order.

    Build it with :meth:`resolve`; it never changes afterwards.
    """

    def __init__(self, library: ContractLibrary, env: str, contexts: Iterable[str]):
        # Building makes many small objects and none is garbage: the cyclic collector would only rescan the
        # library's objects, again and again (a third of the time of a 5,000-context graph).
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._build(library, env, contexts)
        finally:
            if collecting:
                gc.enable()

    def _build(self, library: ContractLibrary, env: str, contexts: Iterable[str]) -> None:
        self.library = library
        self.env = env
        names = sorted(set(contexts))
        self._edges: list[Edge] = []
        self._deps = nx.DiGraph()  # producer -> consumer, deploy edges only
        self._deps.add_nodes_from(names)
        members = set(names)
        deploy: list[tuple[str, str]] = []
        for name in names:
            for link in library.links(name):
                if link.producer not in members:
                    continue
                self._edges.append(
                    Edge(name, link.producer, link.interface, link.kind, link.access, link.deploy, link.via)
                )
                if link.deploy:
                    deploy.append((link.producer, name))
        self._deps.add_edges_from(deploy)
        self._edges.sort(key=lambda e: (e.consumer, e.producer, e.interface, e.access))
        try:
            self._order = [ContextId(n) for n in nx.lexicographical_topological_sort(self._deps)]
        except nx.NetworkXUnfeasible:
            cycles = find_cycles(self._deps.reverse(copy=False))
            raise CycleError(cycles[0]) from None
        self._position: dict[str, int] = {n: i for i, n in enumerate(self._order)}
        self._indexes: dict[str, dict[str, list[Edge]]] = {}

    @classmethod
    def resolve(cls, library: ContractLibrary, env: str) -> EnvGraph:
        """The graph of every context deployed in ``env``. Raises ``UnknownEnvironmentError``, ``CycleError``."""
        library.environment(env)
        return cls(library, env, (n for n, c in library.contexts.items() if c.deployed_in(env)))

    # -- queries ---------------------------------------------------------------------------------------------
    @property
    def contexts(self) -> list[ContextId]:
        """The contexts in deploy order: every producer before its consumers, ties broken by name."""
        return list(self._order)

    @property
    def edges(self) -> list[Edge]:
        return list(self._edges)

    def __contains__(self, context: object) -> bool:
        return context in self._position

    def __len__(self) -> int:
        return len(self._order)

    def position(self, context: str) -> int:
        """The context's place in the deploy order (a deterministic scheduling priority)."""
        return self._position[context]

    def producers_of(self, context: str) -> list[ContextId]:
        """Contexts whose outputs ``context`` needs before it can deploy."""
        return sorted(self._deps.predecessors(context), key=self.position)

    def consumers_of(self, context: str) -> list[ContextId]:
        """Contexts that need ``context``'s outputs."""
        return sorted(self._deps.successors(context), key=self.position)

    def subscribers_of(self, context: str) -> list[str]:
        """Contexts subscribed to events that ``context`` provides."""
        return sorted({e.consumer for e in self._by("producer").get(context, ()) if not e.deploy})

    def ancestors(self, context: str) -> set[ContextId]:
        """Every context ``context`` needs, directly or not."""
        return {ContextId(n) for n in nx.ancestors(self._deps, context)}

    def descendants(self, context: str) -> set[ContextId]:
        """Every context that needs ``context``, directly or not."""
        return {ContextId(n) for n in nx.descendants(self._deps, context)}

    def edges_into(self, context: str) -> list[Edge]:
        """The interfaces ``context`` consumes within this environment."""
        return list(self._by("consumer").get(context, ()))

    def _by(self, end: str) -> dict[str, list[Edge]]:
        """The edges by consumer or by producer, indexed on first use: asked for every context, a scan of all the
        edges each time would grow with the square of the graph."""
        index = self._indexes.get(end)
        if index is None:
            index = self._indexes[end] = {}
            for edge in self._edges:
                index.setdefault(getattr(edge, end), []).append(edge)
        return index

    def levels(self) -> list[list[ContextId]]:
        """The contexts in waves: each wave needs only earlier ones (what level-by-level tools deploy)."""
        return [sorted((ContextId(n) for n in gen), key=self.position)
                for gen in nx.topological_generations(self._deps)]

    def subgraph_for(self, contexts: Iterable[str]) -> EnvGraph:
        """The graph of ``contexts`` and every context they need. Raises ``UsageError`` naming an unknown one."""
        wanted: set[str] = set()
        for name in contexts:
            if name not in self._position:
                raise UsageError(f"context {name!r} is not deployed in {self.env}")
            wanted.add(name)
        # One walk up from all of them at once: a walk per context would cross the shared producers again each time.
        todo = list(wanted)
        while todo:
            for producer in self._deps.predecessors(todo.pop()):
                if producer not in wanted:
                    wanted.add(producer)
                    todo.append(producer)
        return EnvGraph(self.library, self.env, wanted)

    def without(self, contexts: Iterable[str]) -> EnvGraph:
        """The same graph without ``contexts`` (their consumers' edges to them dropped)."""
        drop = set(contexts)
        return EnvGraph(self.library, self.env, (n for n in self._order if n not in drop))

    # -- pictures --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, object]:
        """``{"env", "nodes": [{"context", "component", "owner", "version"}], "edges": [{"consumer",
        "producer", "interface", "kind", "access", "deploy"}]}``."""
        nodes = []
        for name in self._order:
            ctx = self.library.contexts[name]
            nodes.append({"context": name, "component": ctx.component, "owner": ctx.owner, "version": ctx.version})
        return {"env": self.env, "nodes": nodes, "edges": [asdict(e) for e in self._edges]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_mermaid(self) -> str:
        """A Mermaid flowchart: producers point at consumers; event subscriptions dashed."""
        ids: dict[str, str] = {n: f"n{i}" for i, n in enumerate(self._order)}
        lines = ["flowchart LR"]
        for name in self._order:
            lines.append(f'    {ids[name]}["{name}<br/><small>{self.library.contexts[name].component}</small>"]')
        for e in self._edges:
            arrow = "-->" if e.deploy else "-.->"
            lines.append(f'    {ids[e.producer]} {arrow}|"{e.interface} ({e.access})"| {ids[e.consumer]}')
        return "\n".join(lines) + "\n"

    def to_dot(self) -> str:
        """A Graphviz digraph: producers point at consumers; event subscriptions dashed."""
        lines = [f'digraph "{self.env}" {{', "    rankdir=LR;", "    node [shape=box, style=rounded];"]
        for name in self._order:
            lines.append(f'    "{name}" [label="{name}\\n{self.library.contexts[name].component}"];')
        for e in self._edges:
            style = "solid" if e.deploy else "dashed"
            lines.append(f'    "{e.producer}" -> "{e.consumer}" [label="{e.interface} ({e.access})", style={style}];')
        lines.append("}")
        return "\n".join(lines) + "\n"
