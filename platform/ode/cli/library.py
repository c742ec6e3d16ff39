"""``ode validate``, ``ode graph`` and ``ode schema``: the contracts library, its graph, and its JSON Schema."""

from __future__ import annotations

import click

from ..contracts import json_schema, load_library
from ..graph import EnvGraph
from .core import Common, check_contexts, common_options, env_option, split_names


@click.command()
@click.option("--env", "env", default=None,
              help="Check only what this environment deploys (never ODE_ENV: a check is whole unless narrowed here).")
@common_options
def validate(common: Common, env: str | None) -> None:
    """Load the contracts library and report every error in it (file, line, field); exit 2 if any."""
    library = load_library(common.contracts, env)
    envs = [env] if env else list(library.environments.environments)
    sizes = {e: len(EnvGraph.resolve(library, e)) for e in envs}
    if common.json:
        common.emit({"ok": True, "contexts": len(library.contexts), "environments": sizes})
        return
    per_env = ", ".join(f"{e}: {n} stacks" for e, n in sizes.items())
    click.secho(f"ok: {len(library.contexts)} contexts in {common.contracts} ({per_env})", fg="green")


@click.command()
@env_option("The environment to draw.")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "json"]), default="mermaid",
              show_default=True, help="Mermaid or Graphviz picture (events dashed), or JSON.")
@click.option("--contexts", "contexts", default=None, help="Only these contexts (comma-separated) and their needs.")
@common_options
def graph(common: Common, env: str, fmt: str, contexts: str | None) -> None:
    """Print the dependency graph of one environment."""
    library = load_library(common.contracts, env)
    g = EnvGraph.resolve(library, env)
    if contexts:
        names = split_names(contexts) or []
        check_contexts(library, names, env=env)
        g = g.subgraph_for(names)
    if common.json or fmt == "json":
        click.echo(g.to_json())
    elif fmt == "dot":
        click.echo(g.to_dot(), nl=False)
    else:
        click.echo(g.to_mermaid(), nl=False)


@click.command()
@click.option("--file", "which", type=click.Choice(["context", "environments"]), default="context",
              show_default=True, help="Schema of a context file or of environments.yaml.")
@common_options
def schema(common: Common, which: str) -> None:
    """Print the JSON Schema of a contract file, for editors: `settings` and `overrides` checked per component."""
    common.emit(json_schema(which))  # type: ignore[arg-type]
