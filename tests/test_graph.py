"""The environment graph: order, producers and consumers, partial subgraphs, cycles, pictures."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ode import CycleError, EnvGraph, UsageError, load_library
from ode.graph import find_cycles

from .conftest import SAMPLE


@pytest.fixture(scope="module")
def dev() -> EnvGraph:
    return EnvGraph.resolve(load_library(SAMPLE), "dev")


def test_order_puts_producers_first(dev: EnvGraph) -> None:
    order = dev.contexts
    for e in dev.edges:
        if e.deploy:
            assert order.index(e.producer) < order.index(e.consumer), e


def test_contexts_limited_to_environment(dev: EnvGraph) -> None:
    assert "reporting" not in dev
    assert "storefront" in dev


def test_events_are_not_deploy_edges_but_need_the_bus(dev: EnvGraph) -> None:
    events = [e for e in dev.edges if e.kind == "event"]
    assert events and not any(e.deploy for e in events)
    # notifications only subscribes to events: it still needs the bus the events travel on.
    assert dev.producers_of("notifications") == ["identity", "shared-bus"]
    implicit = [e for e in dev.edges if e.consumer == "notifications" and e.producer == "shared-bus"]
    assert [(e.access, e.deploy) for e in implicit] == [("subscribe", True)]
    assert "orders" in dev.subscribers_of("payments")


def test_subgraph_holds_what_is_needed(dev: EnvGraph) -> None:
    sub = dev.subgraph_for(["orders"])
    assert set(sub.contexts) == {"orders", "catalog", "identity", "payments", "shared-bus", "network"}
    assert dev.ancestors("orders") == set(sub.contexts) - {"orders"}
    assert "storefront" in dev.descendants("orders")
    with pytest.raises(UsageError, match="'nope' is not deployed in dev"):
        dev.subgraph_for(["nope"])


def test_pictures(dev: EnvGraph) -> None:
    data = json.loads(dev.to_json())
    assert data["env"] == "dev"
    assert {n["context"] for n in data["nodes"]} == set(dev.contexts)
    assert {"consumer", "producer", "interface", "deploy"} <= set(data["edges"][0])
    mermaid = dev.to_mermaid()
    assert mermaid.startswith("flowchart LR") and "-.->" in mermaid and "-->" in mermaid
    dot = dev.to_dot()
    assert dot.startswith('digraph "dev"') and "style=dashed" in dot and "style=solid" in dot


@st.composite
def dags(draw: st.DrawFn) -> nx.DiGraph:
    n = draw(st.integers(1, 30))
    g = nx.DiGraph()
    g.add_nodes_from(f"c{i}" for i in range(n))
    for j in range(n):
        for i in draw(st.sets(st.integers(0, max(j - 1, 0)), max_size=4)):
            if i < j:
                g.add_edge(f"c{j}", f"c{i}")  # c_j needs c_i
    return g


def library_from(needs: nx.DiGraph, root: Path) -> Path:
    from .conftest import context, write_library

    docs = [context(str(n), consumes=[{"context": str(p), "interface": "t"} for p in sorted(needs.successors(n))])
            for n in needs.nodes]
    return write_library(root, docs)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dags())
def test_order_respects_every_deploy_edge_on_random_graphs(tmp_path_factory: pytest.TempPathFactory,
                                                            needs: nx.DiGraph) -> None:
    root = library_from(needs, tmp_path_factory.mktemp("lib"))
    graph = EnvGraph.resolve(load_library(root), "dev")
    order = graph.contexts
    assert sorted(order) == sorted(needs.nodes)
    for consumer, producer in needs.edges:
        assert order.index(producer) < order.index(consumer)
        assert producer in graph.producers_of(consumer)
    for level_index, level in enumerate(graph.levels()):
        for c in level:
            assert all(any(p in lv for lv in graph.levels()[:level_index]) for p in graph.producers_of(c))


@st.composite
def graphs_with_cycles(draw: st.DrawFn) -> nx.DiGraph:
    g = draw(dags())
    nodes = sorted(g.nodes)
    loops = draw(st.lists(st.lists(st.sampled_from(nodes), min_size=2, max_size=5, unique=True),
                          min_size=1, max_size=3)) if len(nodes) >= 2 else [[nodes[0]] * 0]
    for loop in loops:
        for a, b in zip(loop, loop[1:] + loop[:1]):
            g.add_edge(a, b)
    return g


@settings(max_examples=60, deadline=None)
@given(graphs_with_cycles())
def test_every_cycle_is_found_and_printed_as_a_path(needs: nx.DiGraph) -> None:
    cycles = find_cycles(needs)
    parts = [c for c in nx.strongly_connected_components(needs) if len(c) > 1]
    assert len(cycles) == len(parts)
    for path in cycles:
        assert path[0] == path[-1] and len(path) >= 3
        assert len(set(path[:-1])) == len(path) - 1
        for a, b in zip(path, path[1:]):
            assert needs.has_edge(a, b), (path, a, b)
    covered = [next(p for p in parts if path[0] in p) for path in cycles]
    assert len({frozenset(p) for p in covered}) == len(parts)


def test_cycle_in_library_is_reported_as_path(tmp_path: Path) -> None:
    needs = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")])
    root = library_from(needs, tmp_path)
    with pytest.raises(Exception, match=r"cycle of deploy edges: a -> b -> c -> a"):
        load_library(root)
    with pytest.raises(CycleError) as info:
        EnvGraph(load_library.__globals__["read_library"](root)[0], "dev", ["a", "b", "c", "d"])
    assert info.value.path == ["a", "b", "c", "a"]
