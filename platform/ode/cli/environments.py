"""``ode env create|list|destroy|extend``, ``ode gc`` and ``ode affected``: environments made on demand."""

from __future__ import annotations

import sys
from typing import Any

import click

from .. import rendering
from ..authoring.affected import affected as find_affected
from ..clock import utcnow
from ..contracts import load_library
from ..execution.ephemeral import EphemeralEnvironments, record_dict
from ..status import EnvironmentStatus
from .core import (
    Common,
    common_options,
    confirm_or_abort,
    engine_options,
    made_on_demand,
    open_orchestrator,
    render_result,
    split_names,
)


def _envs(common: Common, lenient: bool = False, names: dict[str, list[str] | None] | None = None,
          **engine: Any) -> EphemeralEnvironments:
    """The ephemeral-environment service of the command's workspace (``names``: see ``open_orchestrator``)."""
    orchestrator = open_orchestrator(common, lenient=lenient, names=names, **engine)
    return EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator)


@click.group()
def env() -> None:
    """Environments made on demand: per branch or pull request, partial, with a TTL."""


@env.command("create")
@click.argument("name")
@click.option("--base", default=None, help="Long-lived environment to take account, region and settings from "
                                           "[default: ephemeral.base].")
@click.option("--contexts", default=None, help="Deploy these contexts (comma-separated) and what they need "
                                               "[default: every context].")
@click.option("--ttl", default=None, help="Time to live: 90s, 30m, 8h, 2d [default: ephemeral.ttl]. On an "
                                          "environment that exists, its expiry only ever moves later.")
@click.option("--reuse", default=None, help="Contexts read from the base instead of deployed "
                                            "[default: ephemeral.reuse]; '' for none.")
@click.option("--owner", default=None, help="Who answers for it [default: the CI actor or the user].")
@engine_options
@common_options
def env_create(common: Common, name: str, base: str | None, contexts: str | None, ttl: str | None,
               reuse: str | None, owner: str | None, **engine: Any) -> None:
    """Create (or update) the environment NAME and deploy what it holds.

    On an environment that exists, the contexts asked for are added to its own, and its expiry becomes the later
    of the one it has (which `env extend` may have moved) and now + TTL: a create never shortens it."""
    names, reused = split_names(contexts), split_names(reuse, "--reuse", allow_empty=True)
    envs = _envs(common, names={"--contexts": names, "--reuse": reused}, **engine)
    record, result = envs.create(name, base=base, contexts=names, ttl=ttl, reuse=reused, owner=owner)
    if not common.json:
        common.say(f"{record.name}: from {record.base}, owner {record.owner}, "
                   f"{rendering.expiry(record.expires_at, utcnow())}")
    render_result(common, result, extra={"environment": record_dict(record)})


@env.command("list")
@click.option("--all", "include_destroyed", is_flag=True, help="Include destroyed environments.")
@common_options
def env_list(common: Common, include_destroyed: bool) -> None:
    """List the environments made on demand, soonest to expire first."""
    workspace = common.workspace()
    workspace.existing_registry()  # listing never makes a registry
    records = workspace.records().list(include_destroyed=include_destroyed)
    if common.json:
        common.emit({"environments": [record_dict(r) for r in records]})
        return
    if not records:
        common.say("no environments made on demand")
        return
    rendering.show(rendering.environments_table(records, utcnow()), sys.stdout)


@env.command("destroy")
@click.argument("name")
@click.option("--yes", "-y", "yes", is_flag=True, help="Do not ask, even on a terminal.")
@engine_options
@common_options
def env_destroy(common: Common, name: str, yes: bool, **engine: Any) -> None:
    """Destroy every stack of the environment made on demand NAME, in reverse order (never the base's stacks it
    reuses, never a long-lived environment). Asks first on a terminal unless --yes; elsewhere (CI) it goes ahead,
    as environments made on demand are meant to be thrown away."""
    envs = _envs(common, **engine)
    record = made_on_demand(envs, name)
    if record.status == EnvironmentStatus.DESTROYED and not envs.registry.stacks(name):
        common.say(f"{name} was destroyed already", err=True)
    elif not yes:
        stacks = [s.stack for s in envs.registry.stacks(name)]
        confirm_or_abort(common, f"Destroy {name} (made from {record.base}): {', '.join(stacks) or 'no stacks'}?",
                         required=False)
    render_result(common, envs.destroy(name))


@env.command("extend")
@click.argument("name")
@click.option("--ttl", required=True, help="New time to live from now: 90s, 30m, 8h, 2d (at most max_ttl).")
@common_options
def env_extend(common: Common, name: str, ttl: str) -> None:
    """Move the expiry of the environment NAME to now + TTL (earlier or later), under its lock."""
    envs = common.workspace().records()
    made_on_demand(envs, name)
    record = envs.extend(name, ttl)
    if common.json:
        common.emit(record_dict(record))
    else:
        common.say(f"{record.name} now {rendering.expiry(record.expires_at, utcnow())}")


@click.command()
@engine_options
@common_options
def gc(common: Common, **engine: Any) -> None:
    """Destroy every expired environment made on demand; go on past a failure and say so (exit 1). Never asks:
    it only destroys what outlived its TTL, and runs from schedulers. An environment another run holds is left
    for the next pass; one broken contract does not stop it."""
    report = _envs(common, lenient=True, **engine).gc()
    now = utcnow()
    for rec, _ in report.destroyed:
        common.say(f"destroyed {rec.name} ({rendering.expiry(rec.expires_at, now)})")
    for rec, why in report.busy:
        common.say(f"left {rec.name} for the next pass: {why}", err=True)
    for rec, error in report.failed:
        click.secho(f"error: could not destroy {rec.name}: {error}", fg="red", err=True)
    if not report.destroyed and not report.failed:
        common.say(f"nothing expired ({len(report.kept)} environments still live)")
    if common.json:
        common.emit(report.to_dict())
    if not report.ok:
        raise SystemExit(1)


@click.command()
@click.option("--since", required=True, help="The git ref to compare with (a branch, tag or commit): changes since "
                                              "its merge-base with HEAD count.")
@click.option("--env", "env_name", default=None, help="Only contexts deployed in this environment.")
@common_options
def affected(common: Common, since: str, env_name: str | None) -> None:
    """The contexts whose contract, settings or code changed since the merge-base of a git ref and HEAD, and their
    consumers, each with why it is listed."""
    found = find_affected(load_library(common.contracts, env_name), since, env=env_name)
    if common.json:
        common.emit(found.to_dict())
        return
    if not found.contexts:
        common.say(f"nothing changed since {since}")
        return
    for context in found.contexts:  # deploy order, each with why it is listed
        click.echo(f"{context}\t{'changed' if context in found.changed else 'consumer'}\t{found.why(context)}")
