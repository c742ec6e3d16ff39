"""``ode plan``, ``ode up``, ``ode destroy``, ``ode status`` and ``ode outputs``: an environment's stacks."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .. import rendering
from ..clock import utcnow
from ..engines.factory import make_engine
from ..engines.protocol import EngineError
from ..errors import OdeError, UsageError
from ..execution.orchestrator import Orchestrator
from ..execution.results import Plan
from ..masking import mask
from ..program import StackSpec
from ..registry.protocol import RegistryBackend
from ..registry.records import StackRecord, lock_info_of
from ..status import PlanAction
from .core import (
    Common,
    check_contexts,
    common_options,
    confirm_or_abort,
    engine_options,
    env_options,
    interactive,
    load_lenient,
    long_lived,
    open_orchestrator,
    open_registry,
    render_result,
    split_names,
)

#: ``--contexts`` of the commands that only read: exactly the contexts named.
ONLY_THESE = "Only these contexts (comma-separated)."


def plan_lines(result: Plan, diff: bool = False) -> list[tuple[str, str | None]]:
    """A plan as people read it, each line with its colour: every stack with its action and why (and its
    resources' changes), its error, and with ``diff`` each resource's operation and changed properties."""
    lines: list[tuple[str, str | None]] = []
    for s in result.stacks:
        changes = ", ".join(f"{n} to {op}" for op, n in s.changes.items() if n and op != "same")
        lines.append((f"{s.stack:<32} {s.action:<10} {s.reason}{'  [' + changes + ']' if changes else ''}", None))
        if s.error:
            lines.append((f"{'':<32} error: {s.error}", "red"))
        if diff:
            lines += [(line, None) for line in rendering.diff_lines(s.resources, indent="    ")]
    return lines


def plan_summary(result: Plan, what: str = "plan") -> str:
    """``plan dev: 2 to deploy, 8 unchanged`` (and the orphaned stacks, and whether it was simulated)."""
    deploy = sum(1 for s in result.stacks if s.action == PlanAction.DEPLOY)
    same = sum(1 for s in result.stacks if s.action == PlanAction.UNCHANGED)
    orphaned = sum(1 for s in result.stacks if s.action == PlanAction.ORPHANED)
    return (f"{what} {result.env}: {deploy} to deploy, {same} unchanged"
            f"{f', {orphaned} orphaned (context gone from the library)' if orphaned else ''}"
            f"{' (simulated)' if result.simulated else ''}")


@click.command()
@env_options
@click.option("--no-preview", "no_preview", is_flag=True, help="Only the order and what changed; no engine preview.")
@click.option("--diff", "show_diff", is_flag=True,
              help="Each resource's operation and, for updates and replacements, each changed property as old -> "
                   "new (secrets masked).")
@engine_options
@common_options
def plan(common: Common, env: str, contexts: str | None, no_preview: bool, show_diff: bool, **engine: Any) -> None:
    """Which stacks `up` would deploy, in which order, which are unchanged and why, with each one's preview."""
    if show_diff and no_preview:
        raise UsageError("--diff needs the engine's preview: drop --no-preview")
    names = split_names(contexts)
    orchestrator = open_orchestrator(common, env=env, quiet=True, names={"--contexts": names}, **engine)
    result = orchestrator.plan(env, names, preview=not no_preview)
    if common.json:
        common.emit(result.to_dict())
    else:
        for text, colour in plan_lines(result, show_diff):
            click.secho(text, fg=colour, reset=colour is not None)
        common.say(plan_summary(result), err=True)
    if not result.ok:
        sys.exit(1)


@click.command()
@env_options
@click.option("--yes", "-y", "yes", is_flag=True,
              help="Deploy without asking, even on a terminal (as `pulumi up --yes`).")
@click.option("--diff", "show_diff", is_flag=True,
              help="First show each stack's preview, as `plan --diff` does: every resource's operation and each "
                   "changed property as old -> new (secrets masked); then deploy (asking on a terminal).")
@engine_options
@common_options
def up(common: Common, env: str, contexts: str | None, yes: bool, show_diff: bool, **engine: Any) -> None:
    """Deploy an environment: one stack per context, in dependency order, only what changed. On a terminal it
    first shows which stacks will deploy and why, and asks (--yes does not ask); elsewhere (CI) it goes ahead."""
    names = split_names(contexts)
    orchestrator = open_orchestrator(common, env=env, names={"--contexts": names}, **engine)
    ask = not yes and interactive()
    if ask or show_diff:
        # What `up` will do, from the plan: stacks and why (their resources too with --diff), before anything runs.
        planned = orchestrator.plan(env, names, preview=show_diff)
        for text, colour in plan_lines(planned, show_diff):
            click.secho(text, fg=colour, reset=colour is not None, err=True)
        click.echo(plan_summary(planned, "up"), err=True)
        changing = sum(1 for s in planned.stacks if s.action == PlanAction.DEPLOY)
        if ask and changing:
            confirm_or_abort(common, f"Deploy {changing} stack{'s' if changing != 1 else ''} of {env}?",
                             required=False, declined="nothing was deployed")
    render_result(common, orchestrator.up(env, names))


def doomed(orchestrator: Orchestrator, env: str, wanted: list[str] | None, recorded: list[str],
           ) -> list[tuple[str, str]]:
    """The stacks ``destroy`` takes down and why, in the order it does (consumers first): every recorded one, or
    those ``wanted`` (asked for) and every recorded stack that consumes one going (named)."""
    library = orchestrator.library
    if wanted is None:
        why = dict.fromkeys(recorded, "")
    else:
        why = {c: "asked for" for c in wanted}
        grow = True
        while grow:  # as destroy does: every recorded consumer of what goes, directly or not
            grow = False
            for c in recorded:
                if c in why or c not in library.contexts:
                    continue
                producer = next((link.producer for link in library.links(c) if link.deploy and link.producer in why
                                 and link.producer != c), None)
                if producer is not None:
                    why[c] = f"consumes {env}.{producer}"
                    grow = True
    record = orchestrator.registry.environment(env)
    base = record.base if record is not None and record.ephemeral else None
    position = orchestrator.positions(base or env)
    order = sorted(why, key=lambda c: (-position.get(c, len(position)), c))
    return [(f"{env}.{c}", why[c]) for c in order]


@click.command()
@env_options(contexts_help="Destroy these contexts (comma-separated) and every stack of ENV that consumes them, "
                           "directly or not.")
@click.option("--yes", "-y", "yes", is_flag=True,
              help="Destroy without asking. Needed where no terminal can answer (CI).")
@click.option("--with-ephemeral", "with_ephemeral", is_flag=True,
              help="Also destroy the environments made on demand that reuse the stacks being destroyed (they are "
                   "refused otherwise).")
@engine_options
@common_options
def destroy(common: Common, env: str, contexts: str | None, yes: bool, with_ephemeral: bool, **engine: Any) -> None:
    """Destroy stacks of an environment, in reverse order: every stack of ENV, or with --contexts the stacks of
    those contexts AND every stack of ENV that consumes them, directly or not. Names each stack first, and why it
    goes; asks on a terminal, elsewhere it needs --yes. A protected environment refuses; so does a base whose
    stacks environments made on demand reuse (unless --with-ephemeral)."""
    orchestrator = open_orchestrator(common, env=env, **engine)
    library = orchestrator.library
    wanted = split_names(contexts)
    recorded = [s.context for s in orchestrator.registry.stacks(env)]
    check_contexts(library, wanted, env=env, present=recorded if recorded else None)
    protected = env in library.environments.environments and library.environment(env).protected
    going = doomed(orchestrator, env, wanted, recorded) if recorded and not protected else []
    first = (orchestrator.dependent_environments(env, {s.split(".", 1)[1] for s, _ in going})
             if going and env in library.environments.environments else [])
    if going and (not first or with_ephemeral):  # else destroy refuses at once, naming them: nothing to ask
        n = len(going)
        common.say(f"destroy {env}: {'every stack' if wanted is None else 'these stacks'} ({n}), consumers first",
                   err=True)
        for dep in first:
            common.say(f"  first {dep.name}, made on demand from {env}: it reuses "
                       f"{', '.join(sorted(set(dep.reuse)))}", err=True)
        for stack, reason in going:
            common.say(f"  {stack:<32} {reason}".rstrip(), err=True)
        if not yes:
            confirm_or_abort(common, f"Destroy {'these ' if n != 1 else ''}{n} stack{'s' if n != 1 else ''} of "
                                     f"{env}?", required=True)
    render_result(common, orchestrator.destroy(env, wanted, with_dependents=with_ephemeral))


@click.command()
@env_options(contexts_help=ONLY_THESE)
@common_options
def status(common: Common, env: str, contexts: str | None) -> None:
    """What the registry knows of an environment's stacks, as a table: each stack's status, when it last ran, how
    long it took, the engine that ran it and the first line of its error (--json adds its outputs; `ode outputs`
    prints them)."""
    library = load_lenient(common)
    registry = open_registry(common, create=False)
    if env not in library.environments.environments and not registry.knows(env):
        known = [*library.environments.environments, *(r.name for r in registry.environments())]
        raise UsageError(f"unknown environment {env!r}{rendering.did_you_mean(env, known)}: not in "
                         f"environments.yaml ({', '.join(library.environments.environments)}) and never deployed "
                         f"with this registry ({_where(common)})")
    names = split_names(contexts)
    if names:
        check_contexts(library, names, env=env, present=[s.context for s in registry.stacks(env)])
    # Status reads the registry alone: the orchestrator gets an engine it never runs.
    idle = make_engine("simulated", library, common.state_dir)
    result = Orchestrator(library, registry, idle).status(env, names)
    result.engine = "registry"
    lock = lock_info_of(registry, env)
    if common.json:
        common.emit({**result.to_dict(), "lock": None if lock is None else lock.to_dict()})
        return
    if not result.stacks:
        common.say(f"nothing deployed in {env}")
    else:
        engines = {r.stack: r.engine for r in registry.stacks(env)}
        rendering.show(rendering.status_table(result.stacks, utcnow(), engines), sys.stdout)
    if lock is not None:
        common.say(f"{'a run holds' if lock.live else 'a stale lock on'} {env}: {lock.describe()}", err=True)


def _where(common: Common) -> str:
    return common.registry or f"state directory {common.state_dir}"


@click.command()
@env_options(contexts_help=ONLY_THESE)
@click.argument("path", required=False, metavar="[CONTEXT.INTERFACE.FIELD]")
@click.option("--show-secrets", "show_secrets", is_flag=True,
              help="Show secret outputs' values, read from the engine (the stack's encrypted state), never from the "
                   "registry.")
@click.option("--engine", "engine", type=click.Choice(["auto", "pulumi", "simulated"]), default=None,
              help="The engine --show-secrets reads from  [default: the one that deployed the stack]")
@common_options
def outputs(common: Common, env: str, contexts: str | None, path: str | None, show_secrets: bool,
            engine: str | None) -> None:
    """The outputs of an environment's stacks (secret ones shown as [secret] unless --show-secrets). With PATH
    (orders.orders-api.url), only that value, alone on its line, for scripts."""
    wanted = split_names(contexts)
    if path and wanted is None:
        wanted = [path.split(".", 1)[0]]  # only the stack the path names: secrets are read from that one alone
    registry = open_registry(common, create=False)
    if env not in long_lived(common) and not registry.knows(env):
        known = [*long_lived(common), *(r.name for r in registry.environments())]
        raise UsageError(f"unknown environment {env!r}{rendering.did_you_mean(env, known)}: not in "
                         f"environments.yaml and never deployed with this registry ({_where(common)})")
    every = registry.stacks(env)
    if wanted and contexts is not None and not set(wanted) <= {s.context for s in every}:
        # only on a mistake: the library tells a mistyped name from a context that is not deployed
        check_contexts(load_lenient(common), wanted, env=env, present=[s.context for s in every])
    records = [s for s in every if wanted is None or s.context in wanted]
    # The registry never holds a secret value: its name is shown, masked, beside the public outputs.
    found = {s.context: mask({**s.outputs, **dict.fromkeys(s.secret_outputs)}, s.secret_outputs) for s in records}
    if show_secrets:
        for context, values in _secret_outputs(common, registry, [r for r in records if r.secret_outputs],
                                               engine).items():
            found[context].update(values)
    if path:
        everything = found if found else {s.context: s.outputs for s in registry.stacks(env)}
        value = rendering.output_at(everything, path, env)
        if common.json:
            common.emit({"env": env, "outputs": found, "path": path, "value": value})
        else:
            click.echo(rendering.scalar(value))
        return
    if common.json:
        common.emit({"env": env, "outputs": found})
        return
    if not found:
        common.say(f"nothing deployed in {env}")
    for context, outs in found.items():
        for interface, value in outs.items():
            click.echo(f"{env}.{context}\t{interface}\t{json.dumps(value, sort_keys=True)}")


def _secret_outputs(common: Common, registry: RegistryBackend, records: list[StackRecord], engine: str | None,
                    ) -> dict[str, dict[str, Any]]:
    """The secret outputs of deployed stacks (context -> name -> value), read from the engine that holds each
    one's state (the registry never holds them); a stack the engine cannot read is one clear error naming it."""
    if not records:
        return {}
    library = load_lenient(common)
    record = registry.environment(records[0].env)
    base = record.base if record is not None and record.ephemeral else None
    engines: dict[str, Any] = {}
    found: dict[str, dict[str, Any]] = {}
    for rec in records:
        name = engine or rec.engine or "auto"
        if name not in engines:
            engines[name] = make_engine(name, library, common.state_dir,
                                        announce=lambda line: common.say(line, err=True))
        chosen = engines[name]
        spec = StackSpec(project=library.project, env=rec.env, context=rec.context, contracts_dir=library.root,
                         base_env=base)
        try:
            values = chosen.outputs(spec)
        except EngineError as exc:
            raise OdeError(f"{rec.stack}: its secret outputs could not be read from the {chosen.name} engine: "
                           f"{str(exc).splitlines()[0]}") from None
        found[rec.context] = {k: values[k] for k in rec.secret_outputs if k in values}
    return found
