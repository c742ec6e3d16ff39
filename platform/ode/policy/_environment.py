"""Environment rules: every previewed stack of an environment at once, and the edges between its contexts.

``ode check`` runs them over the whole environment; the deploy gate over a stack and the stacks it checked before
it in the same run; the CrossGuard pack over one stack, with the edges its configuration (the bounds) names. What a
view does not hold is not judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..contracts import ContractLibrary
from ._combinations import aws_combinations
from ._model import Bounds, Edge, EnvFinding, EnvironmentRule, EnvView, Res
from ._reachability import contract_reachable, ingress_reachable

ENVIRONMENT_RULES: dict[str, EnvironmentRule] = {
    "contract-reachable": contract_reachable,
    "ingress-reachable": ingress_reachable,
    "aws-combinations": aws_combinations,
}


def _actions() -> Mapping[tuple[str, str], tuple[str, ...]]:
    from components.common import ACTIONS  # the one table of access -> actions; it imports pulumi: deferred

    return ACTIONS


def edges_of(library: ContractLibrary, context: str, produced: Mapping[str, Mapping[str, Any]]) -> list[Edge]:
    """The resolved ``consumes`` entries of ``context`` (implicit bus needs included), with the producers' outputs
    where ``produced`` has them."""
    ctx = library.contexts[context]
    index = {(c.context, c.interface): i for i, c in ctx.numbered_consumes()}
    actions = _actions()
    found = []
    for link in library.links(context):
        producer = library.contexts.get(link.producer)
        outputs = (produced.get(link.producer) or {}).get(link.interface)
        i = index.get((link.producer, link.interface))
        if i is None and link.via is not None:
            i = next((j for (p, name), j in index.items() if name == link.via), None)
        iface = producer.provides.get(link.interface) if producer is not None else None
        found.append(Edge(context, link.producer, link.interface, link.kind, link.access,
                          producer.component if producer is not None else None,
                          dict(outputs) if isinstance(outputs, Mapping) else {},
                          frozenset(actions.get((link.kind, link.access), ())), link.via,
                          f"consumes[{i}]" if i is not None else None, tuple(getattr(iface, "routes", ()) or ())))
    return found


def environment_view(library: ContractLibrary, env: str, stacks: Mapping[str, Sequence[Res]],
                     produced: Mapping[str, Mapping[str, Any]], contexts: Iterable[str] | None = None) -> EnvView:
    """The view of ``env`` over the previewed ``stacks`` (context -> resources) and their outputs; edges of
    ``contexts`` (default: every context deployed in ``env``)."""
    place = library.environment(env)
    names = list(contexts) if contexts is not None else [c for c, ctx in library.contexts.items()
                                                          if ctx.deployed_in(env)]
    edges = [e for name in names for e in edges_of(library, name, produced)]
    deployed = [c for c, ctx in library.contexts.items() if ctx.deployed_in(env)]
    return EnvView(
        env=env, stacks={c: list(r) for c, r in stacks.items()}, edges=edges,
        components={c: library.contexts[c].component for c in deployed},
        settings={c: library.contexts[c].settings_for(env) for c in deployed},
        account=place.account, region=place.region,
        provides={c: {n: i.kind for n, i in library.contexts[c].provides.items()} for c in deployed},
        outputs={c: dict(o) for c, o in produced.items()})


def view_from_bounds(resources: Sequence[Res], bounds: Bounds | None, config: Mapping[str, Any]) -> EnvView:
    """One stack's view as the CrossGuard pack sees it: its resources, and the edges its bounds name."""
    context = bounds.context if bounds is not None else str(config.get("context") or "stack")
    edges = [Edge(context, c.producer, c.interface, c.kind, c.access, c.component, dict(c.outputs), c.actions,
                  c.via) for c in (bounds.consumed if bounds is not None else ())]
    settings: dict[str, Mapping[str, Any]] = {context: {"public": bool(config.get("public"))}}
    return EnvView(env=str(config.get("env") or ""), stacks={context: list(resources)}, edges=edges,
                   settings=settings, components={context: str(config.get("component") or "")} if
                   config.get("component") else {})


def environment_findings(view: EnvView, settings: Mapping[str, tuple[str, dict[str, Any]]],
                         ) -> list[tuple[str, EnvFinding]]:
    """Every environment rule not disabled in ``settings``, as (rule, finding)."""
    found: list[tuple[str, EnvFinding]] = []
    for rule, fn in ENVIRONMENT_RULES.items():
        level, config = settings[rule]
        if level == "disabled":
            continue
        found.extend((rule, f) for f in fn(view, config))
    return found
