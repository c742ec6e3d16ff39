"""``ode refresh`` and ``ode drift [--heal]``: the cloud read back into the stacks' state, drift found and healed
(the logic lives in :mod:`ode.execution.drift`)."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import UsageError
from ..execution.drift import DriftReport, check_drift, heal, refresh
from ..execution.orchestrator import Orchestrator
from ..rendering import diff_lines
from ..status import DriftStatus, HealStatus, StackStatus
from .core import (
    Common,
    check_contexts,
    common_options,
    engine_options,
    env_options,
    open_orchestrator,
    render_result,
    split_names,
)

#: ``--contexts`` of refresh and drift: exactly these deployed contexts.
DEPLOYED_ONES = "Only these deployed contexts (comma-separated)."


def _names(orchestrator: Orchestrator, env: str, contexts: str | None) -> list[str] | None:
    """``--contexts`` as names, each a context of the library deployed in ``env`` (else one line saying which)."""
    names = split_names(contexts)
    if names:
        recorded = [s.context for s in orchestrator.registry.stacks(env)]
        check_contexts(orchestrator.library, names, env=env, present=recorded if recorded else None)
    return names


def _simulate_drift_option(func: Any) -> Any:
    return click.option("--simulate-drift", "simulate_drift", multiple=True, metavar="CONTEXT[=RESOURCE]",
                        help="Simulated engine: change one property of one resource of this context's deployed "
                             "stack (the named resource, or the first with tags), as a change made in the console "
                             "would, until the stack is healed (repeatable).")(func)


def _inject(common: Common, orchestrator: Orchestrator, env: str, items: tuple[str, ...]) -> None:
    """Apply ``--simulate-drift`` items to the simulated engine's state of ``env``'s stacks."""
    if not items:
        return
    inject = getattr(orchestrator.engine, "inject_drift", None)  # what the simulated engine alone can do
    if inject is None:
        raise UsageError("--simulate-drift needs the simulated engine (--engine simulated)")
    for item in items:
        context, _, resource = item.partition("=")
        context = context.strip()
        if context.startswith(f"{env}.") and context not in orchestrator.library.contexts:
            context = context[len(env) + 1:]  # ENV.CONTEXT, as --simulate-failure takes it
        if context not in orchestrator.library.contexts:
            check_contexts(orchestrator.library, [context], option=f"--simulate-drift {item!r}")
        name, path = inject(f"{env}.{context}", resource.strip() or None)
        common.say(f"simulated drift: {env}.{context} {name}: {path} changed", err=True)


def _render(common: Common, report: DriftReport) -> None:
    if common.json:
        common.emit(report.to_dict())
    else:
        for s in report.stacks:
            colour = {DriftStatus.DRIFTED: "yellow", DriftStatus.UNCHECKED: "red"}.get(s.status)
            heal_note = f"  -> {s.heal}" + (f": {s.heal_error}" if s.heal_error else "") if s.heal else ""
            click.secho(f"{s.stack:<32} {s.status:<10}{'  ' + s.error if s.error else ''}{heal_note}", fg=colour,
                        reset=colour is not None)
            for line in diff_lines(s.resources):
                click.echo(line)
        if report.healed is not None:
            for outcome in report.healed.stacks:
                drifted = {d.context for d in report.drifted}
                if outcome.status != StackStatus.UNCHANGED and outcome.context not in drifted:
                    click.echo(f"{outcome.stack:<32} {outcome.status:<10} "
                               f"{outcome.reason or outcome.error or ''}")
        healed = sum(1 for s in report.drifted if s.heal == HealStatus.HEALED)
        sim = " (simulated)" if report.simulated else ""
        summary = (f"drift {report.env}: {len(report.stacks)} checked, {len(report.drifted)} drifted"
                   f"{f', {len(report.unchecked)} could not be checked' if report.unchecked else ''}"
                   f"{f', {healed} healed' if report.healed is not None else ''}{sim}")
        common.say(summary, err=True)
    if report.exit_code:
        sys.exit(report.exit_code)


@click.command("refresh")
@env_options(contexts_help=DEPLOYED_ONES)
@_simulate_drift_option
@engine_options
@common_options
def refresh_command(common: Common, env: str, contexts: str | None, simulate_drift: tuple[str, ...],
                    **engine: Any) -> None:
    """Refresh every deployed stack's state from the cloud, in parallel (the next `up` puts the program's values
    back)."""
    orchestrator = open_orchestrator(common, env=env, **engine)
    names = _names(orchestrator, env, contexts)
    _inject(common, orchestrator, env, simulate_drift)
    render_result(common, refresh(orchestrator, env, names, force_unlock=engine["force_unlock"]))


@click.command("drift")
@env_options(contexts_help=DEPLOYED_ONES)
@click.option("--heal", "do_heal", is_flag=True,
              help="Redeploy the drifted stacks in dependency order (their consumers only if outputs change).")
@_simulate_drift_option
@engine_options
@common_options
def drift_command(common: Common, env: str, contexts: str | None, do_heal: bool, simulate_drift: tuple[str, ...],
                  **engine: Any) -> None:
    """Check every deployed stack for drift (a refresh-preview that changes nothing): exit 0 when nothing drifted,
    1 when something did or a stack could not be checked. With --heal, re-apply the drifted stacks."""
    if not do_heal:
        common.workspace(**engine).existing_registry()  # a check reads: it never makes a registry
    orchestrator = open_orchestrator(common, env=env, quiet=not do_heal, **engine)
    names = _names(orchestrator, env, contexts)
    _inject(common, orchestrator, env, simulate_drift)
    force = engine["force_unlock"]
    report = heal(orchestrator, env, names, force_unlock=force) if do_heal else check_drift(
        orchestrator, env, names, force_unlock=force)
    _render(common, report)
