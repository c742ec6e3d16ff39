"""``ode check`` over a whole environment: every rule over every stack's resources, in dependency order.

The resources of each stack come from its program run in-process under Pulumi's mocks (nothing is created), in
dependency order so that each consumer sees its producers' outputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..clock import Clock, utcnow
from ..contracts import ContractLibrary
from ..engines.protocol import EngineError
from ..graph import EnvGraph
from ..program import StackSpec
from ._environment import environment_view
from ._evaluate import Policies, Report
from ._model import Res
from .gate import StackRun, preview_stack


@dataclass
class EnvironmentCheck:
    """The report of one environment, and the seconds spent previewing programs and evaluating rules."""

    report: Report
    preview_s: float = 0.0
    check_s: float = 0.0
    stacks: list[str] = field(default_factory=list)


def check_environment(library: ContractLibrary, env: str, contexts: Iterable[str] | None = None, *,
                      clock: Clock = utcnow,
                      preview: Callable[[StackSpec, ContractLibrary], StackRun] = preview_stack) -> EnvironmentCheck:
    """Check ``env`` (``contexts`` and what they need, or all): every stack's program previewed in dependency
    order, every rule evaluated with the environment's levels and the contracts' waivers; the environment rules
    (edges between contexts) over every previewed stack at once."""
    graph = EnvGraph.resolve(library, env)
    if contexts is not None:
        graph = graph.subgraph_for(list(contexts))
    policies = Policies(library, env, clock=clock)
    result = EnvironmentCheck(Report(env))
    produced: dict[str, dict[str, Any]] = {}
    previewed: dict[str, list[Res]] = {}
    for context in graph.contexts:
        stack = f"{env}.{context}"
        result.stacks.append(stack)
        upstream: dict[str, dict[str, Any]] = {}
        missing = []
        for link in library.links(context):
            if not link.deploy:
                continue
            if link.producer not in produced or link.interface not in produced[link.producer]:
                missing.append(link.producer)
                continue
            upstream.setdefault(link.producer, {})[link.interface] = produced[link.producer][link.interface]
        resources: list[Res] | None = None
        if missing:
            result.report.errors[stack] = f"not previewed: its producers {', '.join(sorted(set(missing)))} failed"
        else:
            spec = StackSpec(project=library.project, env=env, context=context, contracts_dir=library.root,
                             upstream=upstream)
            try:
                run = preview(spec, library)
            except EngineError as exc:
                result.report.errors[stack] = str(exc)
            else:
                result.preview_s += run.seconds
                produced[context] = run.outputs
                resources = previewed[context] = run.resources
        started = time.perf_counter()
        result.report.violations.extend(policies.check_stack(context, resources, upstream, stack=stack))
        result.check_s += time.perf_counter() - started
    started = time.perf_counter()
    names = list(graph.contexts)
    view = environment_view(library, env, previewed, produced, names)
    result.report.violations.extend(policies.check_environment(view, names, {c: f"{env}.{c}" for c in names}))
    result.check_s += time.perf_counter() - started
    return result
