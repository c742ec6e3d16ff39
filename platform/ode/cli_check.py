"""``ode check``: every policy rule over an environment's stacks, and the gate that runs the same check before
``ode plan``, ``ode up`` and ``ode env create`` send a stack to its engine.

The resources of each stack come from its program run in-process under Pulumi's mocks (nothing is created), in
dependency order so that each consumer sees its producers' outputs; the rules are ``ode.policy``'s.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from .cli import Common, common_options, main, split_names
from .clock import Clock, utcnow
from .contracts import ContractLibrary
from .engines import EngineError, ResourceChange, StackSpec
from .errors import UsageError
from .graph import EnvGraph
from .policy import Policies, PolicyViolationError, Report, Res, bounds_for, resources_from

#: The CrossGuard pack in a source checkout (``pulumi up --policy-pack policies``).
POLICY_PACK = Path(__file__).resolve().parents[2] / "policies"


@dataclass
class StackRun:
    """One stack's previewed program: its resources as the rules see them, its outputs, and the time it took."""

    resources: list[Res]
    outputs: dict[str, Any]
    seconds: float


def preview_stack(spec: StackSpec, library: ContractLibrary) -> StackRun:
    """Run a stack's program under mocks and return its resources and outputs (raises ``ProgramError``)."""
    from .program import run_simulated  # imports pulumi: deferred until a program really runs

    started = time.perf_counter()
    run = run_simulated(spec, library, preview=True)
    return StackRun(resources_from(run.resources), dict(run.outputs), time.perf_counter() - started)


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
    order, every rule evaluated with the environment's levels and the contracts' waivers."""
    graph = EnvGraph.resolve(library, env)
    if contexts is not None:
        graph = graph.subgraph_for(list(contexts))
    policies = Policies(library, env, clock=clock)
    result = EnvironmentCheck(Report(env))
    produced: dict[str, dict[str, Any]] = {}
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
                resources = run.resources
        started = time.perf_counter()
        result.report.violations.extend(policies.check_stack(context, resources, upstream, stack=stack))
        result.check_s += time.perf_counter() - started
    return result


class PolicyGate:
    """Run before an engine previews or deploys a stack: raises :class:`PolicyViolationError` (an engine error,
    so the stack fails and its consumers are skipped) when the stack breaks a mandatory rule.

    Engines call it as ``gate(spec, resources)`` with the resources their program recorded; with ``None`` (an
    engine that has not run the program, such as the pulumi engine) the gate runs it under mocks first, so a
    violating stack never reaches the cloud. ``pulumi_options(spec)`` gives the pulumi engine the policy pack and
    this stack's pack configuration, so that the CLI applies the same rules.
    """

    def __init__(self, library: ContractLibrary, state_dir: str | Path, *, clock: Clock = utcnow):
        self.library = library
        self.state_dir = Path(state_dir)
        self.clock = clock
        self._policies: dict[str, Policies] = {}

    def policies(self, env: str) -> Policies:
        if env not in self._policies:
            self._policies[env] = Policies(self.library, env, clock=self.clock)
        return self._policies[env]

    def __call__(self, spec: StackSpec, resources: Sequence[ResourceChange] | None) -> None:
        if spec.context not in self.library.contexts:
            return
        views = resources_from(resources) if resources is not None else \
            preview_stack(spec, self.library).resources
        violations = self.policies(spec.settings_env).check_stack(spec.context, views, spec.upstream,
                                                                  stack=spec.stack_name)
        blocking = [v for v in violations if v.blocking]
        if blocking:
            raise PolicyViolationError(spec.stack_name, blocking)

    def pulumi_options(self, spec: StackSpec) -> dict[str, list[str]]:
        """``policy_packs`` and ``policy_pack_configs`` for the Automation API's up and preview (empty where
        the pack is not beside the sources, as in an installed copy)."""
        if not (POLICY_PACK / "PulumiPolicy.yaml").exists():
            return {}
        policies = self.policies(spec.settings_env)
        bounds = bounds_for(self.library, spec.context, spec.upstream, spec.secret_upstream)
        config = policies.pack_config(spec.context, bounds)
        folder = self.state_dir / "policy"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{spec.stack_name}.json"
        path.write_text(json.dumps(config, indent=2, sort_keys=True))
        return {"policy_packs": [str(POLICY_PACK)], "policy_pack_configs": [str(path)]}


def install_gate(engine: object, library: ContractLibrary, state_dir: str | Path) -> None:
    """Give an engine the policy gate (engines without a ``gate`` attribute are left as they are)."""
    if hasattr(engine, "gate"):
        engine.gate = PolicyGate(library, state_dir)


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
    from .contracts import load_library

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
