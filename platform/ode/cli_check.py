"""``ode check``: every policy rule over an environment's stacks, and the gate that runs the same check before
``ode plan``, ``ode up`` and ``ode env create`` send a stack to its engine.

The resources of each stack come from its program run in-process under Pulumi's mocks (nothing is created), in
dependency order so that each consumer sees its producers' outputs; the rules are ``ode.policy``'s.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from .cli import Common, common_options, main, split_names

# The gate lives in cli_gate (the workspace installs it); its names stay importable from here.
from .cli_gate import POLICY_PACK, PolicyGate, StackRun, install_gate, preview_stack  # noqa: F401
from .clock import Clock, utcnow
from .contracts import ContractLibrary, load_library
from .engines import EngineError, StackSpec
from .errors import UsageError
from .graph import EnvGraph
from .policy import Policies, Report, Res, environment_view


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


@main.command()
@click.option("--env", "env", required=True, help="The environment whose levels and configuration apply.")
@click.option("--contexts", "contexts", default=None, help="Only these contexts (comma-separated) and what they need.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif"]), default="text", show_default=True,
              help="Violations as text, JSON, or SARIF 2.1.0 for code scanning.")
@click.option("--output", "output", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help="Write the report to this file instead of stdout.")
@common_options
def check(common: Common, env: str, contexts: str | None, fmt: str, output: Path | None) -> None:
    """Every policy rule over an environment's stacks; exit 1 when a mandatory rule is broken."""
    library = load_library(common.contracts, env)
    wanted = split_names(contexts)
    for name in wanted or []:
        if name not in library.contexts:
            raise UsageError(f"--contexts: no context {name!r} in {common.contracts}")
    report = check_environment(library, env, wanted).report
    if fmt == "sarif":
        text = json.dumps(report.to_sarif(), indent=2)
    elif fmt == "json" or common.json:
        text = json.dumps(report.to_dict(), indent=2)
    else:
        text = report.to_text()
    if output is not None:
        try:
            output.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--output {output}: {exc.strerror or exc}") from None
        common.say(report.to_text().splitlines()[-1], err=True)
    else:
        click.echo(text)
    if not report.ok:
        sys.exit(1)
