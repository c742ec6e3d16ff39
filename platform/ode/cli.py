"""The ``ode`` command. Thin: each command parses its options, calls the library, and renders the result.

Every command takes the common options after its own name: ``--contracts DIR``, ``--state-dir DIR``, ``--json``.
With ``--json`` the result goes to stdout as JSON and messages go to stderr.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import OdeError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Common:
    """The options every command accepts."""

    contracts: Path
    state_dir: Path
    json: bool

    def emit(self, data: Any) -> None:
        """Write a command's result as JSON on stdout."""
        click.echo(json.dumps(data, indent=2, default=str))

    def say(self, message: str, err: bool = False) -> None:
        """A message for people: on stderr when stdout carries JSON."""
        click.echo(message, err=err or self.json)


def common_options(func: F) -> F:
    """Add ``--contracts``, ``--state-dir`` and ``--json`` to a command, and turn user errors into one clear
    message and a non-zero exit."""

    @click.option("--contracts", "contracts", default="contracts", show_default=True,
                  type=click.Path(path_type=Path, file_okay=False), help="The contracts library directory.")
    @click.option("--state-dir", "state_dir", default=None, envvar="ODE_STATE_DIR",
                  type=click.Path(path_type=Path, file_okay=False),
                  help="Where the platform keeps its state  [default: ./.ode, or ODE_STATE_DIR]")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
    @functools.wraps(func)
    def wrapper(contracts: Path, state_dir: Path | None, as_json: bool, **kwargs: Any) -> Any:
        common = Common(contracts, state_dir or Path(".ode"), as_json)
        try:
            return func(common, **kwargs)
        except OdeError as exc:
            _fail(common, exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def _fail(common: Common, exc: OdeError) -> None:
    from .contracts import ContractErrors

    if common.json:
        errors = ([e.to_dict() for e in exc.errors] if isinstance(exc, ContractErrors)
                  else [{"message": str(exc)}])
        common.emit({"ok": False, "error": type(exc).__name__, "errors": errors})
    for line in str(exc).splitlines():
        click.secho(f"error: {line}", fg="red", err=True)
    if isinstance(exc, ContractErrors):
        n = len(exc.errors)
        click.echo(f"{n} error{'s' if n != 1 else ''} in {common.contracts}", err=True)
    sys.exit(exc.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="ondemandenv", prog_name="ode")
def main() -> None:
    """OnDemandEnv: contracts between bounded contexts, deployed as Pulumi stacks."""
    # Colour and live views only where a person watches.
    if os.environ.get("NO_COLOR"):
        os.environ.setdefault("TERM", "dumb")


@main.command()
@click.option("--env", "env", default=None, help="Check only what this environment deploys.")
@common_options
def validate(common: Common, env: str | None) -> None:
    """Load the contracts library and report every error in it (file, line, field); exit 1 if any."""
    from .contracts import load_library
    from .graph import EnvGraph

    library = load_library(common.contracts, env)
    envs = [env] if env else list(library.environments.environments)
    sizes = {e: len(EnvGraph.resolve(library, e)) for e in envs}
    if common.json:
        common.emit({"ok": True, "contexts": len(library.contexts), "environments": sizes})
        return
    per_env = ", ".join(f"{e}: {n} stacks" for e, n in sizes.items())
    click.secho(f"ok: {len(library.contexts)} contexts in {common.contracts} ({per_env})", fg="green")


@main.command()
@click.option("--env", "env", required=True, help="The environment to draw.")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "json"]), default="mermaid",
              show_default=True, help="Mermaid or Graphviz picture (events dashed), or JSON.")
@click.option("--contexts", "contexts", default=None, help="Only these contexts (comma-separated) and their needs.")
@common_options
def graph(common: Common, env: str, fmt: str, contexts: str | None) -> None:
    """Print the dependency graph of one environment."""
    from .contracts import load_library
    from .graph import EnvGraph

    g = EnvGraph.resolve(load_library(common.contracts, env), env)
    if contexts:
        g = g.subgraph_for(split_names(contexts) or [])
    if common.json or fmt == "json":
        click.echo(g.to_json())
    elif fmt == "dot":
        click.echo(g.to_dot(), nl=False)
    else:
        click.echo(g.to_mermaid(), nl=False)


@main.command()
@click.option("--file", "which", type=click.Choice(["context", "environments"]), default="context",
              show_default=True, help="Schema of a context file or of environments.yaml.")
@common_options
def schema(common: Common, which: str) -> None:
    """Print the JSON Schema of a contract file, for editors."""
    from .contracts import json_schema

    common.emit(json_schema(which))  # type: ignore[arg-type]


def split_names(text: str | None) -> list[str] | None:
    """``a,b , c`` as ``["a", "b", "c"]``; None stays None."""
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


if __name__ == "__main__":  # pragma: no cover
    main()
