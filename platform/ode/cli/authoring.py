"""``ode components``, ``ode init``, ``ode diff``, ``ode import openapi|asyncapi`` and ``ode catalog``: the
commands that explain the contract language, catch breaking changes and write first drafts of contracts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..authoring.asyncapi import DEFAULT_BUS, asyncapi_contracts
from ..authoring.catalog import backstage_catalog, catalog_yaml, components_table, components_text
from ..authoring.contract_files import Draft, check_target, contract_text, write_contract
from ..authoring.evolution import diff_since
from ..authoring.openapi import openapi_contract
from ..authoring.scaffold import init_contract, write_environments
from ..contracts import ENVIRONMENTS_FILE, load_library, read_library
from ..errors import UsageError
from .core import Common, F, common_options


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
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
              help="Where to write NAME.yaml  [default: the --contracts directory]")
@click.option("--code-dir", "code_dir", type=click.Path(path_type=Path), default=None,
              help="Where a function kind's code goes, named from the contract as `code:`  "
                   "[default: DIR/services/NAME/src]")
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
    """Write a first draft of a contract from an OpenAPI or AsyncAPI document.

    A document's file references are read only inside its folder (or --ref-root); nothing is fetched from the
    network unless --allow-remote-refs. What the draft maps and leaves out is listed in its header."""


_OUTPUT_HELP = "Where to write the contract ('-': stdout)  [default: CONTRACTS/CONTEXT.yaml]"


def _sandbox_options(func: F) -> F:
    func = click.option("--allow-remote-refs", "allow_remote", is_flag=True,
                        help="Fetch http(s) $refs (each within 10 s and 32 MB; never a link-local address). "
                             "Without it nothing is fetched.")(func)
    return click.option("--ref-root", "ref_root", type=click.Path(path_type=Path, file_okay=False), default=None,
                        help="The folder file $refs may read  [default: the folder of the document(s)]")(func)


def _progress(line: str) -> None:
    click.echo(f"import: {line}", err=True)


@import_.command("openapi")
@click.argument("spec", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--context", "context", required=True, help="The bounded context's name.")
@click.option("--component", "kind", default="serverless-api", show_default=True, help="Its component kind.")
@click.option("--interface", default=None, help="The http-api's name  [default: CONTEXT-api]")
@click.option("--owner", default=None, help="Who answers for it  [default: team-CONTEXT]")
@click.option("--output", "output", default=None, help=_OUTPUT_HELP)
@click.option("--force", is_flag=True, help="Replace an existing contract file.")
@_sandbox_options
@common_options
def import_openapi(common: Common, spec: Path, context: str, kind: str, interface: str | None, owner: str | None,
                   output: str | None, force: bool, ref_root: Path | None, allow_remote: bool) -> None:
    """A contract providing one http-api: version from info.version, routes from paths and methods, payloads
    from the JSON request and response schemas (recursive ones kept as $refs)."""
    draft = openapi_contract(spec, context, kind, interface, owner, ref_root=ref_root, allow_remote=allow_remote,
                             progress=_progress)
    _write(common, [draft], output, force, [])


@import_.command("asyncapi")
@click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--context", "contexts", multiple=True,
              help="The bounded context's name, once per SPEC in order  [default: from each info.title]")
@click.option("--component", "kinds", multiple=True, metavar="KIND|CONTEXT=KIND",
              help="The component kind of every context, or of one (repeatable). Naming a kind also imports a "
                   "client application or an external API as a context  [default: event-worker]")
@click.option("--owner", default=None, help="Who answers for them  [default: team-CONTEXT]")
@click.option("--bus", "bus", default=DEFAULT_BUS, show_default=True,
              help="The event-bus context to create when the library has none.")
@click.option("--output", "output", default=None,
              help="Where to write one document's contract ('-': every draft to stdout)  "
                   "[default: CONTRACTS/CONTEXT.yaml]")
@click.option("--force", is_flag=True, help="Replace existing contract files.")
@_sandbox_options
@common_options
def import_asyncapi(common: Common, specs: tuple[Path, ...], contexts: tuple[str, ...], kinds: tuple[str, ...],
                    owner: str | None, bus: str, output: str | None, force: bool, ref_root: Path | None,
                    allow_remote: bool) -> None:
    """Contracts from AsyncAPI documents, one context per document: an event per message it sends, `consumes`
    for the messages it receives, matched across every document given and the library whatever their order;
    an event bus when the library has none. Each mapping and what is dropped is listed."""
    library = read_library(common.contracts)[0] if common.contracts.is_dir() else None
    if library is None and (common.contracts / ENVIRONMENTS_FILE).exists():
        # Its contexts are what the drafts consume from and publish on: guessing without them would add a bus.
        raise UsageError(f"{common.contracts / ENVIRONMENTS_FILE}: cannot be read, so neither can the library the "
                         "drafts are matched against; `ode validate` says why")
    drafts, notes = asyncapi_contracts(list(specs), library, contexts=contexts, component=kinds, owner=owner,
                                       bus=bus, ref_root=ref_root, allow_remote=allow_remote, progress=_progress)
    made = [d for d in drafts if d.made_bus]
    if output is not None and made:
        # The bus is part of the library, never of a file elsewhere or of what is printed: its command is named.
        drafts = [d for d in drafts if not d.made_bus]
        notes = [n for n in notes if not n.startswith("the library has no event bus")]
        notes.append(f"the library has no event bus: create it with `ode init {bus} --component event-bus` "
                     f"(the drafts publish on {bus}/{bus})")
    if output not in (None, "-") and len(drafts) > 1:
        raise UsageError("--output FILE takes the draft of one document; leave it out to write each into the "
                         "library, or pass --output - to print them")
    _write(common, drafts, output, force, notes)


def _write(common: Common, drafts: list[Draft], output: str | None, force: bool, notes: list[str]) -> None:
    """Write the drafts (every target checked before any is written) and, into a new library, its
    environments.yaml; or print them (``--output -``). Their notes go to stderr."""
    if output == "-":
        if common.json:
            contracts = [d.contract for d in drafts]
            click.echo(json.dumps(contracts[0] if len(contracts) == 1 else contracts, indent=2))
        else:
            click.echo("---\n".join(contract_text(d) for d in drafts), nl=False)
        _say_notes(drafts, notes)
        return
    targets = [(draft, Path(output) if output else common.contracts / f"{draft.context}.yaml") for draft in drafts]
    for _, target in targets:
        check_target(target, force)
    written: list[str] = []
    for draft, target in targets:
        write_contract(contract_text(draft), target, force)
        written.append(str(target))
        common.say(f"wrote {target}", err=True)
    if output is None and write_environments(common.contracts):
        written.append(str(common.contracts / ENVIRONMENTS_FILE))
        common.say(f"wrote {common.contracts / ENVIRONMENTS_FILE} (a new library: put your AWS accounts there)",
                   err=True)
    _say_notes(drafts, notes)
    if common.json:
        common.emit({"written": written,
                     "notes": [f"{d.context}: {n}" for d in drafts for n in d.notes] + notes})


def _say_notes(drafts: list[Draft], notes: list[str]) -> None:
    several = len(drafts) > 1
    for draft in drafts:
        for note in draft.notes:
            click.echo(f"note: {draft.context + ': ' if several else ''}{note}", err=True)
    for note in notes:
        click.echo(f"note: {note}", err=True)


@click.command()
@click.option("--format", "fmt", type=click.Choice(["backstage"]), default="backstage", show_default=True,
              help="The developer portal's descriptor format.")
@click.option("--output", "output", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help="Write to this file (YAML, or JSON with --json)  [default: stdout]")
@common_options
def catalog(common: Common, fmt: str, output: Path | None) -> None:
    """Descriptors of the library for a developer portal: one Component per context, one API per interface."""
    if fmt != "backstage":
        raise UsageError(f"--format: {fmt!r} is not supported")
    if output is not None and not output.parent.is_dir():
        raise UsageError(f"--output {output}: folder {output.parent} does not exist")
    entities = backstage_catalog(load_library(common.contracts))
    text = json.dumps(entities, indent=2) + "\n" if common.json else catalog_yaml(entities)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--output {output}: cannot be written: {exc.strerror or exc}") from None
    click.echo(f"wrote {output} ({len(entities)} entities{', JSON' if common.json else ''})", err=True)
