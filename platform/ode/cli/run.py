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
from ..masking import mask
from ..program import StackSpec
from ..registry.protocol import RegistryBackend
from ..registry.records import StackRecord, lock_info_of
from ..status import PlanAction
from .core import (
    Common,
    common_options,
    confirm_or_abort,
    engine_options,
    env_options,
    load_lenient,
    long_lived,
    open_orchestrator,
    open_registry,
    render_result,
    split_names,
)


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
    orchestrator = open_orchestrator(common, env=env, quiet=True, **engine)
    result = orchestrator.plan(env, split_names(contexts), preview=not no_preview)
    if common.json:
        common.emit(result.to_dict())
    else:
        for s in result.stacks:
            changes = ", ".join(f"{n} to {op}" for op, n in s.changes.items() if n and op != "same")
            click.echo(f"{s.stack:<32} {s.action:<10} {s.reason}{'  [' + changes + ']' if changes else ''}")
            if s.error:
                click.secho(f"{'':<32} error: {s.error}", fg="red")
            if show_diff:
                for line in rendering.diff_lines(s.resources, indent="    "):
                    click.echo(line)
        deploy = sum(1 for s in result.stacks if s.action == PlanAction.DEPLOY)
        same = sum(1 for s in result.stacks if s.action == PlanAction.UNCHANGED)
        orphaned = sum(1 for s in result.stacks if s.action == PlanAction.ORPHANED)
        common.say(f"plan {env}: {deploy} to deploy, {same} unchanged"
                   f"{f', {orphaned} orphaned (context gone from the library)' if orphaned else ''}"
                   f"{' (simulated)' if result.simulated else ''}", err=True)
    if not result.ok:
        sys.exit(1)


@click.command()
@env_options
@engine_options
@common_options
def up(common: Common, env: str, contexts: str | None, **engine: Any) -> None:
    """Deploy an environment: one stack per context, in dependency order, only what changed."""
    orchestrator = open_orchestrator(common, env=env, **engine)
    render_result(common, orchestrator.up(env, split_names(contexts)))


@click.command()
@env_options
@click.option("--yes", "-y", "yes", is_flag=True,
              help="Destroy without asking. Needed where no terminal can answer (CI).")
@click.option("--with-ephemeral", "with_ephemeral", is_flag=True,
              help="Also destroy the environments made on demand that reuse the stacks being destroyed (they are "
                   "refused otherwise).")
@engine_options
@common_options
def destroy(common: Common, env: str, contexts: str | None, yes: bool, with_ephemeral: bool, **engine: Any) -> None:
    """Destroy stacks of an environment, in reverse order: every stack of ENV, or with --contexts the stacks of
    those contexts AND every stack of ENV that consumes them, directly or not. Asks first on a terminal;
    elsewhere it needs --yes. A protected environment refuses; so does a base whose stacks environments made on
    demand reuse (unless --with-ephemeral)."""
    orchestrator = open_orchestrator(common, env=env, **engine)
    wanted = split_names(contexts)
    if not yes:
        recorded = [s.stack for s in orchestrator.registry.stacks(env)]
        what = (f"the stacks of {', '.join(wanted)} in {env} and every stack of {env} that consumes them"
                if wanted else f"all {len(recorded)} stacks of {env} ({', '.join(recorded) or 'none recorded'})")
        confirm_or_abort(common, f"Destroy {what}?", required=True)
    render_result(common, orchestrator.destroy(env, wanted, with_dependents=with_ephemeral))


@click.command()
@env_options
@common_options
def status(common: Common, env: str, contexts: str | None) -> None:
    """What is deployed in an environment, from the registry: each stack's status, times and outputs."""
    library = load_lenient(common)
    registry = open_registry(common, create=False)
    if env not in library.environments.environments and not registry.knows(env):
        raise UsageError(f"unknown environment {env!r}: not in environments.yaml "
                         f"({', '.join(library.environments.environments)}) and never deployed with this state "
                         f"directory ({common.state_dir})")
    # Status reads the registry alone: the orchestrator gets an engine it never runs.
    idle = make_engine("simulated", library, common.state_dir)
    result = Orchestrator(library, registry, idle).status(env, split_names(contexts))
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


@click.command()
@env_options
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
        raise UsageError(f"unknown environment {env!r}: not in environments.yaml and never deployed with this "
                         f"state directory ({common.state_dir})")
    records = [s for s in registry.stacks(env) if wanted is None or s.context in wanted]
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
