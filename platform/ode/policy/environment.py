"""``ode check`` over a whole environment: every rule over every stack's resources, in dependency order.

The resources of each stack come from its program run under Pulumi's mocks (nothing is created), each after its
producers so that it sees their outputs; programs of stacks that do not wait on each other run side by side, in
worker processes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from ..clock import Clock, utcnow
from ..contracts import ContractLibrary
from ..engines.protocol import EngineError
from ..engines.simulated import ProgramRunner, program_workers
from ..graph import EnvGraph
from ..program import StackSpec
from ._environment import environment_view
from ._evaluate import Policies, Report, Violation
from ._model import Res
from .gate import StackRun, preview_stack


@dataclass
class EnvironmentCheck:
    """The report of one environment, the seconds spent previewing programs (wall time: previews run side by side)
    and evaluating rules, and the stacks checked."""

    report: Report
    preview_s: float = 0.0
    check_s: float = 0.0
    stacks: list[str] = field(default_factory=list)


def check_environment(library: ContractLibrary, env: str, contexts: Iterable[str] | None = None, *,
                      clock: Clock = utcnow,
                      preview: Callable[[StackSpec, ContractLibrary], StackRun] = preview_stack) -> EnvironmentCheck:
    """Check ``env`` (``contexts`` and what they need, or all): every stack's program previewed once its producers
    were (in worker processes, several at once, where there are enough stacks: :class:`ProgramRunner`), every rule
    evaluated with the environment's levels and the contracts' waivers; the environment rules (edges between
    contexts) over every previewed stack at once. The report lists stacks in dependency order whatever order the
    previews finished in."""
    graph = EnvGraph.resolve(library, env)
    if contexts is not None:
        graph = graph.subgraph_for(list(contexts))
    policies = Policies(library, env, clock=clock)
    result = EnvironmentCheck(Report(env, disabled=policies.disabled()))
    names: list[str] = list(graph.contexts)
    result.stacks = [f"{env}.{c}" for c in names]
    produced: dict[str, dict[str, Any]] = {}
    previewed: dict[str, list[Res]] = {}
    errors: dict[str, str] = {}
    found: dict[str, list[Violation]] = {}

    def inputs(context: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """The producers' outputs a context needs, and the producers that failed to give them."""
        upstream: dict[str, dict[str, Any]] = {}
        missing = []
        for link in library.links(context):
            if not link.deploy:
                continue
            if link.producer not in produced or link.interface not in produced[link.producer]:
                missing.append(link.producer)
                continue
            upstream.setdefault(link.producer, {})[link.interface] = produced[link.producer][link.interface]
        return upstream, missing

    def evaluate(context: str, resources: list[Res] | None, upstream: dict[str, dict[str, Any]]) -> None:
        started = time.perf_counter()
        found[context] = policies.check_stack(context, resources, upstream, stack=f"{env}.{context}")
        result.check_s += time.perf_counter() - started

    workers = program_workers(len(names))
    waiting: dict[str, set[str]] = {c: set(graph.producers_of(c)) for c in names}
    ready: deque[str] = deque(c for c in names if not waiting[c])
    running: dict[Future[StackRun], tuple[str, dict[str, dict[str, Any]]]] = {}
    started = time.perf_counter()
    with ProgramRunner(library, workers=workers, eager=True), \
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ode-preview") as threads:
        while ready or running:
            while ready:
                context = ready.popleft()
                upstream, missing = inputs(context)
                if not missing:
                    spec = StackSpec(project=library.project, env=env, context=context, contracts_dir=library.root,
                                     upstream=upstream)
                    running[threads.submit(preview, spec, library)] = (context, upstream)
                    continue
                errors[context] = f"not previewed: its producers {', '.join(sorted(set(missing)))} failed"
                evaluate(context, None, upstream)
                ready.extend(_unblocked(graph, waiting, context))
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: graph.position(running[f][0])):
                context, upstream = running.pop(future)
                resources: list[Res] | None = None
                try:
                    run = future.result()
                except EngineError as exc:
                    errors[context] = str(exc)
                else:
                    produced[context] = run.outputs
                    resources = previewed[context] = run.resources
                evaluate(context, resources, upstream)
                ready.extend(_unblocked(graph, waiting, context))
    result.preview_s = max(0.0, time.perf_counter() - started - result.check_s)
    for context in names:  # the report in dependency order, as the previews would run one after another
        if context in errors:
            result.report.errors[f"{env}.{context}"] = errors[context]
        result.report.violations.extend(found[context])
    started = time.perf_counter()
    view = environment_view(library, env, {c: previewed[c] for c in names if c in previewed},
                            {c: produced[c] for c in names if c in produced}, names)
    result.report.violations.extend(policies.check_environment(view, names, {c: f"{env}.{c}" for c in names}))
    result.check_s += time.perf_counter() - started
    return result


def _unblocked(graph: EnvGraph, waiting: dict[str, set[str]], done: str) -> list[str]:
    """The consumers of ``done`` whose producers are now all done (``waiting`` updated)."""
    found: list[str] = []
    for consumer in graph.consumers_of(done):
        waiting[consumer].discard(done)
        if not waiting[consumer]:
            found.append(consumer)
    return found
