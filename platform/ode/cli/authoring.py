"""``ode components``, ``ode init``, ``ode diff``, ``ode import openapi|asyncapi`` and ``ode catalog``: the
commands that explain the contract language, catch breaking changes and write first drafts of contracts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..authoring.asyncapi import asyncapi_contract
from ..authoring.catalog import backstage_catalog, catalog_yaml, components_table, components_text
from ..authoring.contract_files import contract_text, write_contract
from ..authoring.evolution import diff_since
from ..authoring.openapi import openapi_contract
from ..authoring.scaffold import init_contract
from ..contracts import load_library, read_library
from ..errors import UsageError
from .core import Common, common_options


@click.command()
@common_options
def components(common: Common) -> None:
    """Each component kind: the interface kinds it can provide, the accesses a consumer may ask for, and its
    settings (type, default, limits, description)."""
    if common.json:
        common.emit(components_table())
    else:
        click.echo(components_text(), nl=False)


@click.command()
@click.argument("name")
@click.option("--component", "kind", required=True, help="The component kind (see `ode components`).")
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where to write NAME.yaml  [default: the --contracts directory]")
@click.option("--code-dir", "code_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where a function kind's code goes  [default: DIR/../services/NAME]")
@click.option("--owner", default=None, help="Who answers for the context  [default: team-NAME]")
@common_options
def init(common: Common, name: str, kind: str, directory: Path | None, code_dir: Path | None,
         owner: str | None) -> None:
    """Write a valid contract for a new bounded context (and a handler for the kinds that run code)."""
    written = init_contract(name, kind, directory or common.contracts, code_dir, owner)
    if common.json:
        common.emit({"written": [str(p) for p in written]})
        return
    for path in written:
        click.echo(f"wrote {path}")
    common.say(f"next: edit {written[0].name}, then `ode validate --contracts {written[0].parent}`")


@click.command()
@click.option("--since", "since", required=True, help="The git ref to compare the working tree's library with.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif"]), default="text", show_default=True,
              help="Text for people, JSON, or SARIF 2.1.0 for code-scanning tools.")
@common_options
def diff(common: Common, since: str, fmt: str) -> None:
    """Classify every change of every interface since a git ref; exit 1 when a breaking change lacks a new
    major version (the rules: docs/contracts.md, "Evolving an interface")."""
    report = diff_since(common.contracts, since)
    if common.json or fmt == "json":
        common.emit(report.to_dict())
    elif fmt == "sarif":
        common.emit(report.to_sarif())
    else:
        click.echo(report.to_text(), nl=False)
    if not report.ok:
        broken = [r for r in report.interfaces if r.verdict == "error"]
        click.secho(f"error: {len(broken)} breaking change{'s' if len(broken) != 1 else ''} without a new major "
                    "version: " + ", ".join(f"{r.context}/{r.interface}" for r in broken), fg="red", err=True)
        sys.exit(1)


@click.group("import")
def import_() -> None:
    """Write a first draft of a contract from an OpenAPI or AsyncAPI document."""


def _output(common: Common, name: str, output: str | None) -> Path | None:
    if output == "-":
        return None
    return Path(output) if output else common.contracts / f"{name}.yaml"


_OUTPUT_HELP = "Where to write the contract ('-': stdout)  [default: CONTRACTS/CONTEXT.yaml]"


@import_.command("openapi")
@click.argument("spec", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--context", "context", required=True, help="The bounded context's name.")
@click.option("--component", "kind", default="serverless-api", show_default=True, help="Its component kind.")
@click.option("--interface", default=None, help="The http-api's name  [default: CONTEXT-api]")
@click.option("--owner", default=None, help="Who answers for it  [default: team-CONTEXT]")
@click.option("--output", "output", default=None, help=_OUTPUT_HELP)
@click.option("--force", is_flag=True, help="Replace an existing contract file.")
@common_options
def import_openapi(common: Common, spec: Path, context: str, kind: str, interface: str | None, owner: str | None,
                   output: str | None, force: bool) -> None:
    """A contract providing one http-api: version from info.version, routes from paths and methods."""
    contract = openapi_contract(spec, context, kind, interface, owner)
    _write(common, contract_text(contract, spec), _output(common, context, output), force, contract)


@import_.command("asyncapi")
@click.argument("spec", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--context", "context", required=True, help="The bounded context's name.")
@click.option("--component", "kind", default="event-worker", show_default=True, help="Its component kind.")
@click.option("--owner", default=None, help="Who answers for it  [default: team-CONTEXT]")
@click.option("--output", "output", default=None, help=_OUTPUT_HELP)
@click.option("--force", is_flag=True, help="Replace an existing contract file.")
@common_options
def import_asyncapi(common: Common, spec: Path, context: str, kind: str, owner: str | None, output: str | None,
                    force: bool) -> None:
    """A contract with one event per message the application sends, and `consumes` for the messages it receives
    that a context of the library provides; the others are listed."""
    library = read_library(common.contracts)[0] if common.contracts.is_dir() else None
    contract, unmatched = asyncapi_contract(spec, context, library, kind, owner)
    _write(common, contract_text(contract, spec, unmatched), _output(common, context, output), force, contract)
    for name in unmatched:
        common.say(f"note: received message {name!r}: no context of {common.contracts} provides it", err=True)


def _write(common: Common, text: str, target: Path | None, force: bool, contract: dict[str, object]) -> None:
    if target is None:
        click.echo(json.dumps(contract, indent=2) if common.json else text, nl=common.json)
        return
    write_contract(text, target, force)
    common.say(f"wrote {target}")


@click.command()
@click.option("--format", "fmt", type=click.Choice(["backstage"]), default="backstage", show_default=True,
              help="The developer portal's descriptor format.")
@click.option("--output", "output", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help="Write to this file  [default: stdout]")
@common_options
def catalog(common: Common, fmt: str, output: Path | None) -> None:
    """Descriptors of the library for a developer portal: one Component per context, one API per interface."""
    if fmt != "backstage":
        raise UsageError(f"--format: {fmt!r} is not supported")
    entities = backstage_catalog(load_library(common.contracts))
    if common.json:
        common.emit(entities)
        return
    text = catalog_yaml(entities)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output} ({len(entities)} entities)", err=True)
