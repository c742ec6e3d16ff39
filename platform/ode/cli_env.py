"""``ode env create|list|destroy|extend``, ``ode gc`` and ``ode affected``: environments made on demand."""

from __future__ import annotations

from typing import Any

import click

from .cli import Common, common_options, engine_options, main, open_orchestrator, render_result, split_names
from .clock import parse_iso, utcnow
from .ephemeral import EphemeralEnvironments, record_dict


def _envs(common: Common, **engine: Any) -> EphemeralEnvironments:
    orchestrator = open_orchestrator(common, **engine)
    return EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator)


def _remaining(expires_at: str | None) -> str:
    moment = parse_iso(expires_at)
    if moment is None:
        return "-"
    seconds = int((moment - utcnow()).total_seconds())
    if seconds <= 0:
        return "expired"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


@main.group()
def env() -> None:
    """Environments made on demand: per branch or pull request, partial, with a TTL."""


@env.command("create")
@click.argument("name")
@click.option("--base", default=None, help="Long-lived environment to take account, region and settings from "
                                           "[default: ephemeral.base].")
@click.option("--contexts", default=None, help="Deploy these contexts (comma-separated) and what they need "
                                               "[default: every context].")
@click.option("--ttl", default=None, help="Time to live: 90s, 30m, 8h, 2d [default: ephemeral.ttl].")
@click.option("--reuse", default=None, help="Contexts read from the base instead of deployed "
                                            "[default: ephemeral.reuse]; '' for none.")
@click.option("--owner", default=None, help="Who answers for it [default: the CI actor or the user].")
@engine_options
@common_options
def env_create(common: Common, name: str, base: str | None, contexts: str | None, ttl: str | None,
               reuse: str | None, owner: str | None, **engine: Any) -> None:
    """Create (or update) the environment NAME and deploy what it holds."""
    envs = _envs(common, **engine)
    record, result = envs.create(name, base=base, contexts=split_names(contexts), ttl=ttl,
                                 reuse=split_names(reuse), owner=owner)
    if not common.json:
        common.say(f"{record.name}: from {record.base}, owner {record.owner}, expires {record.expires_at}")
    render_result(common, result, extra={"environment": record_dict(record)})


@env.command("list")
@click.option("--all", "include_destroyed", is_flag=True, help="Include destroyed environments.")
@common_options
def env_list(common: Common, include_destroyed: bool) -> None:
    """List the environments made on demand, soonest to expire first."""
    from .contracts import load_library
    from .registry import Registry

    library = load_library(common.contracts)
    registry = Registry(common.state_dir)
    records = EphemeralEnvironments(library, registry, None).list(include_destroyed=include_destroyed)  # type: ignore[arg-type]
    if common.json:
        common.emit({"environments": [record_dict(r) for r in records]})
        return
    if not records:
        common.say("no environments made on demand")
        return
    rows = [("NAME", "BASE", "OWNER", "CONTEXTS", "STATUS", "EXPIRES", "LEFT")]
    for r in records:
        rows.append((r.name, r.base or "-", r.owner or "-", ",".join(r.contexts) if r.contexts else "all",
                     r.status, r.expires_at or "-", _remaining(r.expires_at)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


@env.command("destroy")
@click.argument("name")
@engine_options
@common_options
def env_destroy(common: Common, name: str, **engine: Any) -> None:
    """Destroy the environment NAME in reverse order (never the base's stacks, never a protected environment)."""
    result = _envs(common, **engine).destroy(name)
    render_result(common, result)


@env.command("extend")
@click.argument("name")
@click.option("--ttl", required=True, help="New time to live from now: 90s, 30m, 8h, 2d (at most max_ttl).")
@common_options
def env_extend(common: Common, name: str, ttl: str) -> None:
    """Move the expiry of the environment NAME to now + TTL."""
    from .contracts import load_library
    from .registry import Registry

    envs = EphemeralEnvironments(load_library(common.contracts), Registry(common.state_dir), None)  # type: ignore[arg-type]
    record = envs.extend(name, ttl)
    if common.json:
        common.emit(record_dict(record))
    else:
        common.say(f"{record.name} now expires {record.expires_at}")


@main.command()
@engine_options
@common_options
def gc(common: Common, **engine: Any) -> None:
    """Destroy every expired environment made on demand; go on past a failure and say so (exit 1)."""
    report = _envs(common, **engine).gc()
    for rec, _ in report.destroyed:
        common.say(f"destroyed {rec.name} (expired {rec.expires_at})")
    for rec, error in report.failed:
        click.secho(f"error: could not destroy {rec.name}: {error}", fg="red", err=True)
    if not report.destroyed and not report.failed:
        common.say(f"nothing expired ({len(report.kept)} environments still live)")
    if common.json:
        common.emit(report.to_dict())
    if not report.ok:
        raise SystemExit(1)


@main.command()
@click.option("--since", required=True, help="The git ref to compare with (a branch, tag or commit).")
@click.option("--env", "env_name", default=None, help="Only contexts deployed in this environment.")
@common_options
def affected(common: Common, since: str, env_name: str | None) -> None:
    """The contexts whose contract, settings or component code changed since a git ref, and their consumers."""
    from .affected import affected as find_affected
    from .contracts import load_library

    found = find_affected(load_library(common.contracts, env_name), since, env=env_name)
    if common.json:
        common.emit(found.to_dict())
        return
    if not found.contexts:
        common.say(f"nothing changed since {since}")
        return
    for context in sorted(found.contexts):
        why = "changed" if context in found.changed else "consumer of a changed context"
        click.echo(f"{context}\t{why}")
