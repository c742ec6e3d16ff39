"""Deploy cycles: a consumer that needs, directly or not, itself deployed first. Each is reported as a readable path.

The usual library has none: :mod:`graphlib` proves that in a fraction of networkx's time, and networkx is imported
only to find the readable paths when there is a cycle to report.
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx as nx


def find_cycles(needs: nx.DiGraph) -> list[list[str]]:
    """One cycle per strongly connected part of a consumer -> producer graph, each as a path that starts at its
    smallest name and repeats it at the end: ``[a, b, c, a]`` reads "a needs b needs c needs a"."""
    import networkx as nx  # deferred: only a library with a cycle pays for it

    cycles = []
    for component in nx.strongly_connected_components(needs):
        if len(component) == 1:
            (node,) = component
            if not needs.has_edge(node, node):
                continue
        start = min(component)
        sub = needs.subgraph(component)
        # Shortest way back to the start: a short cycle is the readable one.
        back = min((p for p in sub.predecessors(start)), key=lambda p: (nx.shortest_path_length(sub, start, p), p))
        path = nx.shortest_path(sub, start, back) + [start]
        cycles.append([str(n) for n in path])
    return sorted(cycles)


def deploy_cycles(needs: Mapping[str, set[str]]) -> list[list[str]]:
    """The cycles of ``needs`` (consumer -> the producers it needs first), each as :func:`find_cycles` says it."""
    try:
        graphlib.TopologicalSorter(needs).prepare()
    except graphlib.CycleError:
        import networkx as nx  # deferred: see the module's docstring

        graph = nx.DiGraph()
        graph.add_nodes_from(needs)
        graph.add_edges_from((consumer, producer) for consumer, producers in needs.items() for producer in producers)
        return find_cycles(graph)
    return []
