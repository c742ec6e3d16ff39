"""``ode registry init|copy``: create the registry a URL names, and copy one registry into another."""

from __future__ import annotations

import click

from ..errors import UsageError
from ..registry.copy import copy as copy_registry
from ..registry.opening import open_registry
from .core import Common, common_options


@click.group()
def registry() -> None:
    """The registry: what was deployed where. Shared by every runner when it is in DynamoDB."""


@registry.command("init")
@common_options
def registry_init(common: Common) -> None:
    """Create the registry --registry names: a DynamoDB table (on-demand billing, point-in-time recovery,
    encryption with KMS, TTL for stale leases), or a SQLite file. Running it again changes nothing."""
    url = common.registry
    if url and url.startswith("dynamodb:"):
        from ..registry.dynamodb import create_table, parse_url  # deferred: boto3, only for a DynamoDB registry

        table, region = parse_url(url)
        done = create_table(table, region=region)
        done["url"] = url
    else:
        opened = open_registry(url, common.state_dir)
        try:
            done = {"url": url or f"sqlite:///{common.state_dir / 'registry.db'}", "created": opened.created}
        finally:
            opened.close()
    if common.json:
        common.emit(done)
    else:
        common.say(f"registry {done['url']}: {'created' if done['created'] else 'exists already, checked'}")


@registry.command("copy")
@click.option("--to", "to", required=True, metavar="URL", help="The registry to copy into (sqlite:///... or "
                                                               "dynamodb://TABLE?region=R).")
@click.option("--overwrite", is_flag=True, help="Replace the environments the destination has already.")
@common_options
def registry_copy(common: Common, to: str, overwrite: bool) -> None:
    """Copy every environment and stack of the registry (--registry, or the state dir's) into another: how a team
    moves from a laptop's SQLite file to a shared DynamoDB table. Refused while a run holds a lock."""
    source = common.workspace().registry
    if to == (common.registry or ""):
        raise UsageError("--to names the registry being copied")
    destination = open_registry(to, common.state_dir)
    try:
        report = copy_registry(source, destination, overwrite=overwrite)
    finally:
        destination.close()
    if common.json:
        common.emit({"to": to, **report.to_dict()})
    else:
        common.say(f"copied {report.environments} environments and {report.stacks} stacks to {to}")
