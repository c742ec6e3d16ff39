"""``ode registry init|copy``: create the registry a URL names, and copy one registry into another.

Exit statuses as for every command: 0 done; 1 a registry cannot be used (corrupt, unreachable, no answer); 2 a usage
mistake (a bad URL, ``--to`` naming the source however spelled, a source that does not exist, environments the
destination has without ``--overwrite``); 3 a live run holds an environment being copied, in the source or the
destination.
"""

from __future__ import annotations

import click

from ..errors import UsageError
from ..registry.copy import copy as copy_registry
from ..registry.copy import identity_of, refuse_live_source
from ..registry.errors import RegistryNotFoundError
from ..registry.opening import open_registry
from ..registry.protocol import RegistryBackend
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


def _open_destination(common: Common, url: str, source: RegistryBackend) -> RegistryBackend:
    """The registry ``url`` names, opened as it is when it exists (so that it can be compared with the source
    before anything is written); made only when it is not there and the source can be copied."""
    try:
        return open_registry(url, common.state_dir, create=False)
    except RegistryNotFoundError:
        refuse_live_source(source)  # refused before a new registry is left behind
        made = open_registry(url, common.state_dir)
        common.say(f"note: new registry {url}: created to copy into", err=True)
        return made


@registry.command("copy")
@click.option("--to", "to", required=True, metavar="URL", help="The registry to copy into (sqlite:///... or "
                                                               "dynamodb://TABLE?region=R).")
@click.option("--overwrite", is_flag=True, help="Replace the environments the destination has already.")
@common_options
def registry_copy(common: Common, to: str, overwrite: bool) -> None:
    """Copy every environment and stack of the registry (--registry, or the state dir's) into another: how a team
    moves from a laptop's SQLite file to a shared DynamoDB table. Refused when --to names the same registry however
    spelled (exit 2), and while a live run holds an environment being copied, in either registry (exit 3)."""
    if to == (common.registry or ""):
        raise UsageError("registry copy: --to names the registry being copied; nothing was copied")
    source = common.workspace().existing_registry()  # a copy never makes its source
    destination = _open_destination(common, to, source)
    common.cleanups.append(destination.close)
    report = copy_registry(source, destination, overwrite=overwrite)
    if common.json:
        found = identity_of(destination)
        common.emit({"to": to, **report.to_dict(), **({"destination": found.to_dict()} if found else {})})
    else:
        common.say(f"copied {report.environments} environments and {report.stacks} stacks to {to}")
