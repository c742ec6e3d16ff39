"""Planning grows with the library, not with its square: each cross-context fact is worked out once per context
(counted here, never timed), and the graph's queries answer from one walk or one index."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from components import constraints
from ode import EnvGraph, load_library
from ode.contracts import ContractLibrary

from .conftest import context, write_library

CONTEXTS = 120


def generated(root: Path, n: int = CONTEXTS) -> Path:
    """A bus, then contexts that each provide a table, an API and an event, and consume up to three tables of
    earlier contexts, one of their events and the bus (the shape of the planning benchmark)."""
    rng = random.Random(5)
    docs = [context("bus", "event-bus", {"bus": {"kind": "event-bus", "version": "1.0.0"}})]
    for i in range(1, n):
        consumes: list[dict[str, Any]] = [{"context": "bus", "interface": "bus", "access": "publish"}]
        for j in sorted(rng.sample(range(1, i), min(i - 1, rng.randint(0, 3)))):
            consumes.append({"context": f"c{j}", "interface": "table", "access": "read", "version": "^1.0"})
        if i > 1:
            producer = f"c{rng.randrange(1, i)}"
            if not any(c["context"] == producer and c["interface"] == "Changed" for c in consumes):
                consumes.append({"context": producer, "interface": "Changed"})
        docs.append(context(f"c{i}", "serverless-api", {
            "api": {"kind": "http-api", "version": "1.0.0"},
            "table": {"kind": "table", "version": "1.1.0"},
            "Changed": {"kind": "event", "version": "1.0.0"},
        }, consumes=consumes))
    return write_library(root, docs)


def counted(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> Counter[str]:
    calls: Counter[str] = Counter()
    original = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[str(args[1]) if len(args) > 1 else ""] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


def test_each_cross_context_fact_is_worked_out_once_per_context(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = generated(tmp_path)
    networks = counted(monkeypatch, constraints, "_network_of")
    links = counted(monkeypatch, ContractLibrary, "_resolve_links")
    buses = counted(monkeypatch, ContractLibrary, "_find_bus")
    library = load_library(root, "dev")
    EnvGraph.resolve(library, "dev")
    assert len(library.contexts) == CONTEXTS
    # Once per context, whatever its number of consumers (a walk per consumer grew with the square).
    assert max(networks.values()) == 1 and sum(networks.values()) == CONTEXTS
    assert max(links.values()) == 1 and sum(links.values()) == CONTEXTS
    assert max(buses.values()) == 1


def test_settings_are_validated_once_per_context_and_environment(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = generated(tmp_path, 30)
    models = counted(monkeypatch, constraints, "_model")
    load_library(root, "dev")
    assert not models  # the AWS refusals read the models the contract rules made


def test_a_subgraph_is_its_contexts_and_all_they_need(tmp_path: Path) -> None:
    library = load_library(generated(tmp_path), "dev")
    graph = EnvGraph.resolve(library, "dev")
    deps = nx.DiGraph((e.producer, e.consumer) for e in graph.edges if e.deploy)
    deps.add_nodes_from(graph.contexts)
    for picked in (["c119"], ["c40", "c77", "c119"], ["bus"]):
        expected = set(picked).union(*(nx.ancestors(deps, c) for c in picked))
        sub = graph.subgraph_for(picked)
        assert set(sub.contexts) == expected
        assert sub.contexts == [c for c in graph.contexts if c in expected]  # the same order


def test_edges_into_and_subscribers_answer_what_a_scan_would(tmp_path: Path) -> None:
    graph = EnvGraph.resolve(load_library(generated(tmp_path, 40), "dev"), "dev")
    for name in graph.contexts:
        assert graph.edges_into(name) == [e for e in graph.edges if e.consumer == name]
        assert graph.subscribers_of(name) == sorted({e.consumer for e in graph.edges
                                                     if e.producer == name and not e.deploy})
    assert any(graph.subscribers_of(name) for name in graph.contexts)
