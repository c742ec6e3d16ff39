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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .errors import OdeError, UsageError

if TYPE_CHECKING:
    from .orchestrator import Orchestrator, RunResult

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Common:
    """The options every command accepts."""

    contracts: Path
    state_dir: Path
    json: bool
    #: Run when the command ends, however it ends (an embedded AWS to stop...).
    cleanups: list[Callable[[], None]] = field(default_factory=list)

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
            _cleanup(common)
            _fail(common, exc)
        except KeyboardInterrupt:
            _cleanup(common)
            click.echo("interrupted", err=True)
            sys.exit(130)
        finally:
            _cleanup(common)

    return wrapper  # type: ignore[return-value]


def _cleanup(common: Common) -> None:
    while common.cleanups:
        common.cleanups.pop()()


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
    """Print the JSON Schema of a contract file, for editors: `settings` and `overrides` checked per component."""
    from .contracts import json_schema

    common.emit(json_schema(which))  # type: ignore[arg-type]


def engine_options(func: F) -> F:
    """Add the options of commands that run stacks: ``--engine``, ``--parallel``, the simulated engine's faults,
    ``--force-unlock`` and ``--target``."""
    options = [
        click.option("--engine", "engine", type=click.Choice(["auto", "pulumi", "simulated"]), default="auto",
                     envvar="ODE_ENGINE", show_default=True,
                     help="pulumi (the Automation API), simulated (in-process, creates nothing), or auto: pulumi "
                          "where its CLI is found, else simulated."),
        click.option("--parallel", "parallel", type=click.IntRange(1, 256), default=DEFAULT_PARALLEL,
                     show_default=True, help="Most stacks running at once."),
        click.option("--simulate-failure", "simulate_failure", multiple=True, metavar="CONTEXT",
                     help="Simulated engine: make this context's stack fail (repeatable)."),
        click.option("--simulate-delay", "simulate_delay", multiple=True, metavar="CONTEXT=SECONDS",
                     help="Simulated engine: this context's stack takes that long ('*' for every one)."),
        click.option("--force-unlock", "force_unlock", is_flag=True,
                     help="Break the environment's lock left by a process that is gone."),
        click.option("--target", "target", type=click.Choice(["aws", "local"]), default="aws", show_default=True,
                     help="local: deploy with the pulumi engine into an embedded AWS (moto) on 127.0.0.1."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


#: Stacks mostly wait on cloud APIs: more than the cores, but few enough not to hit API rate limits.
DEFAULT_PARALLEL = 8


def _delays(items: tuple[str, ...]) -> dict[str, float]:
    delays = {}
    for item in items:
        name, _, seconds = item.partition("=")
        try:
            delays[name.strip()] = float(seconds)
        except ValueError:
            raise UsageError(f"--simulate-delay {item!r}: expected CONTEXT=SECONDS") from None
    return delays


def open_orchestrator(common: Common, *, engine: str = "auto", parallel: int = DEFAULT_PARALLEL,
                      simulate_failure: tuple[str, ...] = (), simulate_delay: tuple[str, ...] = (),
                      force_unlock: bool = False, target: str = "aws", env: str | None = None,
                      quiet: bool = False) -> Orchestrator:
    """The library, registry, engine and orchestrator that a command runs with."""
    from .contracts import load_library
    from .engines import make_engine
    from .orchestrator import Orchestrator
    from .progress import reporter_for
    from .registry import Registry

    library = load_library(common.contracts, env if env in _long_lived(common) else None)
    pulumi_options: dict[str, Any] = {}
    config: dict[str, str] = {}
    if target == "local":
        if engine == "simulated":
            raise UsageError("--target local deploys with the pulumi engine; the simulated engine needs no target")
        engine = "pulumi"
        from .local_aws import LocalAws

        local = LocalAws.start()
        common.cleanups.append(local.stop)
        common.say(f"target: embedded AWS (moto) at {local.endpoint}")
        pulumi_options["env_vars"] = local.environment()
        config.update(local.stack_config())
    chosen = make_engine(engine, library, common.state_dir, failures=simulate_failure,
                         delays=_delays(simulate_delay), announce=lambda line: common.say(line, err=True),
                         **pulumi_options)
    orchestrator = Orchestrator(library, Registry(common.state_dir), chosen, parallel=parallel,
                                reporter=reporter_for(quiet), engine_config=config)
    orchestrator.force_unlock = force_unlock
    return orchestrator


def _long_lived(common: Common) -> set[str]:
    """Names of environments.yaml's environments, read cheaply (to tell an ephemeral ``--env`` apart)."""
    import yaml_rs

    try:
        data = yaml_rs.loads((common.contracts / "environments.yaml").read_text())
        return set(data.get("environments") or {}) if isinstance(data, dict) else set()
    except Exception:  # noqa: BLE001 - load_library reports a broken file properly
        return set()


def render_result(common: Common, result: RunResult, extra: dict[str, Any] | None = None) -> None:
    """Print a run's result (JSON with ``--json``, a summary otherwise) and exit non-zero if a stack failed."""
    if common.json:
        common.emit({**result.to_dict(), **(extra or {})})
    else:
        for s in result.stacks:
            took = f"{s.duration_s:.1f}s" if s.duration_s is not None else ""
            line = f"{s.stack:<32} {s.status:<10} {took:>7}"
            colour = {"failed": "red", "skipped": "yellow", "succeeded": "green", "destroyed": "green"}.get(s.status)
            click.secho(line + (f"  {s.error}" if s.error and s.status == "failed" else
                                f"  {s.reason}" if s.reason and s.status == "skipped" else ""), fg=colour)
        counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts().items()))
        sim = " (simulated: nothing was deployed)" if result.simulated else ""
        common.say(f"{result.operation} {result.env}: {counts or 'no stacks'}{sim}", err=True)
        if result.interrupted:
            common.say("interrupted: run the same command again to resume", err=True)
    if result.exit_code:
        sys.exit(result.exit_code)


def _env_options(func: F) -> F:
    func = click.option("--contexts", "contexts", default=None,
                        help="Only these contexts (comma-separated) and what they need.")(func)
    return click.option("--env", "env", required=True, help="The environment.")(func)


@main.command()
@_env_options
@click.option("--no-preview", "no_preview", is_flag=True, help="Only the order and what changed; no engine preview.")
@engine_options
@common_options
def plan(common: Common, env: str, contexts: str | None, no_preview: bool, **engine: Any) -> None:
    """Which stacks `up` would deploy, in which order, which are unchanged and why, with each one's preview."""
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
        deploy = sum(1 for s in result.stacks if s.action == "deploy")
        common.say(f"plan {env}: {deploy} to deploy, {len(result.stacks) - deploy} unchanged"
                   f"{' (simulated)' if result.simulated else ''}", err=True)
    if not result.ok:
        sys.exit(1)


@main.command()
@_env_options
@engine_options
@common_options
def up(common: Common, env: str, contexts: str | None, **engine: Any) -> None:
    """Deploy an environment: one stack per context, in dependency order, only what changed."""
    orchestrator = open_orchestrator(common, env=env, **engine)
    render_result(common, orchestrator.up(env, split_names(contexts)))


@main.command()
@_env_options
@engine_options
@common_options
def destroy(common: Common, env: str, contexts: str | None, **engine: Any) -> None:
    """Destroy an environment's stacks in reverse order (a protected environment refuses)."""
    orchestrator = open_orchestrator(common, env=env, **engine)
    render_result(common, orchestrator.destroy(env, split_names(contexts)))


@main.command()
@_env_options
@common_options
def status(common: Common, env: str, contexts: str | None) -> None:
    """What is deployed in an environment, from the registry: each stack's status, times and outputs."""
    from .contracts import load_library
    from .engines.simulated import SimulatedEngine
    from .orchestrator import Orchestrator
    from .registry import Registry

    library = load_library(common.contracts)
    registry = Registry(common.state_dir)
    result = Orchestrator(library, registry, SimulatedEngine(library, common.state_dir)).status(
        env, split_names(contexts))
    result.engine = "registry"
    if common.json:
        common.emit(result.to_dict())
        return
    if not result.stacks:
        common.say(f"nothing deployed in {env}")
    holder = registry.lock_holder(env)
    for s in result.stacks:
        click.echo(f"{s.stack:<32} {s.status:<10} {s.finished_at or '-':<34} {s.error or ''}".rstrip())
    if holder:
        common.say(f"a run holds {env}: {holder}", err=True)


@main.command()
@_env_options
@common_options
def outputs(common: Common, env: str, contexts: str | None) -> None:
    """The outputs of an environment's stacks (secret ones shown as [secret])."""
    from .orchestrator import mask
    from .registry import Registry

    wanted = split_names(contexts)
    found = {s.context: mask(s.outputs, s.secret_outputs) for s in Registry(common.state_dir).stacks(env)
             if wanted is None or s.context in wanted}
    if common.json:
        common.emit({"env": env, "outputs": found})
        return
    if not found:
        common.say(f"nothing deployed in {env}")
    for context, outs in found.items():
        for interface, value in outs.items():
            click.echo(f"{env}.{context}\t{interface}\t{json.dumps(value, sort_keys=True)}")


def split_names(text: str | None) -> list[str] | None:
    """``a,b , c`` as ``["a", "b", "c"]``; None stays None."""
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


from . import cli_env  # noqa: E402,F401  - registers `ode env`, `ode gc`, `ode affected`

from . import cli_contracts  # noqa: E402,F401  # isort: skip  - registers components, init, diff, import, catalog

if __name__ == "__main__":  # pragma: no cover - `python -m ode.cli`: run the registered module's group
    from ode.cli import main as _main

    _main()
