"""The ``ode`` command. Thin: each command parses its options, calls the library, and renders the result.

Every command takes the common options after its own name: ``--contracts DIR``, ``--state-dir DIR``,
``--registry URL``, ``--json``. With ``--json`` the result goes to stdout as JSON and messages go to stderr. What a
command runs with (library, registry, engine, orchestrator) comes from one place, :mod:`ode.workspace`.

Exit status, for every command (``ode ci`` and ``scripts/ephemeral_env.py`` included): 0 done; 1 a stack failed, a
check found violations, or the registry cannot be used; 2 a usage or contract mistake (a missing Pulumi CLI on CI
too); 3 the environment is locked by another run; 130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import render
from .clock import utcnow
from .contracts import ContractErrors, ContractLibrary, UnknownEnvironmentError, json_schema, load_library
from .engines import EngineError, StackSpec, make_engine
from .engines.simulated import SimulatedEngine
from .errors import OdeError, UsageError
from .graph import CycleError, EnvGraph
from .orchestrator import Orchestrator, RunResult, mask
from .registry_api import RegistryBackend
from .workspace import DEFAULT_PARALLEL, Workspace, WorkspaceOptions, parse_delays

#: ``--simulate-delay`` parsing, under the name older callers import.
_delays = parse_delays

if TYPE_CHECKING:
    from .registry import StackRecord

#: The exit statuses, one table for every command and the CI script.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Common:
    """The options every command accepts."""

    contracts: Path
    state_dir: Path
    json: bool
    #: ``--registry`` / ``ODE_REGISTRY``; None: SQLite under the state dir.
    registry: str | None = None
    #: Run when the command ends, however it ends (an embedded AWS to stop...).
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    _workspace: Workspace | None = None

    def workspace(self, **engine: Any) -> Workspace:
        """The command's workspace (opened once), from the common options and the engine options ``engine``."""
        given: dict[str, Any] = {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in engine.items()}
        options = WorkspaceOptions(contracts=self.contracts, state_dir=self.state_dir, registry=self.registry,
                                   **given)
        if self._workspace is None:
            self._workspace = Workspace(options, announce=lambda line: self.say(line, err=True))
            self.cleanups.append(self._workspace.close)
        elif engine:  # the library or registry was opened first (a lenient read): the engine options apply now
            self._workspace.options = options.resolved()
        return self._workspace

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
    @click.option("--registry", "registry", default=None, envvar="ODE_REGISTRY", metavar="URL",
                  help="Where the registry lives: sqlite:///DIR/registry.db or dynamodb://TABLE?region=R (shared by "
                       "every runner)  [default: <state dir>/registry.db, or ODE_REGISTRY]")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
    @functools.wraps(func)
    def wrapper(contracts: Path, state_dir: Path | None, registry: str | None, as_json: bool, **kwargs: Any) -> Any:
        common = Common(contracts, state_dir or Path(".ode"), as_json, registry=registry or None)
        try:
            return func(common, **kwargs)
        except OdeError as exc:
            _cleanup(common)
            _fail(common, exc)
        except KeyboardInterrupt:
            _cleanup(common)
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        finally:
            _cleanup(common)

    return wrapper  # type: ignore[return-value]


def _cleanup(common: Common) -> None:
    while common.cleanups:
        common.cleanups.pop()()


def exit_status(exc: BaseException) -> int:
    """The exit status for an error a user sees: 2 for a usage or contract mistake (a bad option, a broken
    contract, an unknown environment, a cycle), 3 for a held lock, else the error's own (1)."""
    if isinstance(exc, (ContractErrors, UnknownEnvironmentError, CycleError)):
        return EXIT_USAGE
    return int(getattr(exc, "exit_code", EXIT_FAILED))


def _fail(common: Common, exc: OdeError) -> None:
    if common.json:
        errors = ([e.to_dict() for e in exc.errors] if isinstance(exc, ContractErrors)
                  else [{"message": str(exc)}])
        common.emit({"ok": False, "error": type(exc).__name__, "errors": errors})
    for line in str(exc).splitlines():
        click.secho(f"error: {line}", fg="red", err=True)
    if isinstance(exc, ContractErrors):
        n = len(exc.errors)
        click.echo(f"{n} error{'s' if n != 1 else ''} in {common.contracts}", err=True)
    sys.exit(exit_status(exc))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="ondemandenv", prog_name="ode")
def main() -> None:
    """OnDemandEnv: contracts between bounded contexts, deployed as Pulumi stacks.

    Exit status: 0 done; 1 a stack failed, a check found violations or the registry cannot be used; 2 a usage or
    contract mistake; 3 the environment is locked by another run; 130 interrupted (Ctrl-C or SIGTERM).
    """
    # Colour and live views only where a person watches.
    if os.environ.get("NO_COLOR"):
        os.environ.setdefault("TERM", "dumb")
    handle_sigterm()
    log_warnings()


def log_warnings() -> None:
    """Warnings of ode's modules (an event or an output that could not be published...) as one ``warning:`` line
    each on stderr."""
    logger = logging.getLogger("ode")
    if not any(getattr(h, "ode_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        handler.ode_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def handle_sigterm() -> None:
    """Treat SIGTERM (a CI runner cancelling a job, ``kill``) like Ctrl-C: nothing new starts, running stacks
    finish and are recorded, exit 130."""
    try:
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (ode called from a thread of someone's tooling): leave it be
        pass


# The watcher that outlives a killed ode: the kernel sends it SIGTERM when its parent dies (PR_SET_PDEATHSIG). It
# then finds every process that inherited this run's guard token in its environment (the pulumi CLIs, their
# language hosts and plugins: all started by ode, however they were reparented), asks them to stop (SIGINT: pulumi
# cancels and saves its state), and kills what is left after the grace period.
_WATCHER = """
import ctypes, os, signal, sys, time
token, parent, grace = sys.argv[1].encode(), int(sys.argv[2]), float(sys.argv[3])
mark = b"ODE_GUARD=" + token
def marked():
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as env:
                    if mark in env.read().split(b"\\0"):
                        found.append(int(entry))
            except OSError:
                pass
    return found
def fire(*_):
    for pid in marked():
        try:
            os.kill(pid, signal.SIGINT)
        except OSError:
            pass
    end = time.monotonic() + grace
    while marked() and time.monotonic() < end:
        time.sleep(0.1)
    for pid in marked():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    os._exit(0)
signal.signal(signal.SIGTERM, fire)
signal.signal(signal.SIGINT, signal.SIG_IGN)
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != parent:
    fire()
while True:
    signal.pause()
"""

_GUARD: list[subprocess.Popen[bytes]] = []


def guard_children(grace_s: float = 20.0) -> bool:
    """Make sure that the processes this one starts from now on (the ``pulumi`` CLIs and what they start) do not
    run on as orphans when this process is killed with SIGKILL: they inherit a token in their environment
    (``ODE_GUARD``), and a small watcher process, told by the kernel when this one dies without exiting normally,
    stops every process carrying it (SIGINT, then SIGKILL after ``grace_s``). Nothing changes in process groups,
    so Ctrl-C on a terminal and a CI runner's signals reach ``ode`` as before. Linux only; returns whether the
    guard is set."""
    if _GUARD:
        return True
    if not sys.platform.startswith("linux") or not Path("/proc/self/environ").exists():
        return False
    token = secrets.token_hex(16)
    watcher_env = {k: v for k, v in os.environ.items() if k != "ODE_GUARD"}
    try:
        watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, token, str(os.getpid()), str(grace_s)],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True, close_fds=True, env=watcher_env)
    except OSError:
        return False
    os.environ["ODE_GUARD"] = token  # inherited by every process started from here on
    _GUARD.append(watcher)

    def stand_down() -> None:  # a normal exit: the children are done, the watcher must not signal anyone
        for proc in _GUARD:
            proc.kill()
            proc.wait()
        _GUARD.clear()

    import atexit

    atexit.register(stand_down)
    return True


@main.command()
@click.option("--env", "env", default=None, help="Check only what this environment deploys.")
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


@main.command()
@click.option("--env", "env", required=True, help="The environment to draw.")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "json"]), default="mermaid",
              show_default=True, help="Mermaid or Graphviz picture (events dashed), or JSON.")
@click.option("--contexts", "contexts", default=None, help="Only these contexts (comma-separated) and their needs.")
@common_options
def graph(common: Common, env: str, fmt: str, contexts: str | None) -> None:
    """Print the dependency graph of one environment."""
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
    common.emit(json_schema(which))  # type: ignore[arg-type]


def engine_options(func: F) -> F:
    """Add the options of commands that run stacks: ``--engine``, ``--parallel``, the simulated engine's faults,
    ``--force-unlock`` and ``--target``."""
    options = [
        click.option("--engine", "engine", default="auto", envvar="ODE_ENGINE", show_default=True,
                     metavar="auto|pulumi|simulated",
                     help="pulumi (the Automation API), simulated (in-process, creates nothing), or auto: pulumi "
                          "where its CLI is found, else simulated (never under CI=true: name it there). Other "
                          "engines come from packages (entry points `ode.engines`)."),
        click.option("--parallel", "parallel", type=click.IntRange(1, 256), default=DEFAULT_PARALLEL,
                     envvar="ODE_PARALLEL", show_default=True, help="Most stacks running at once."),
        click.option("--simulate-failure", "simulate_failure", multiple=True, metavar="CONTEXT",
                     help="Simulated engine: make this context's stack fail (repeatable)."),
        click.option("--simulate-delay", "simulate_delay", multiple=True, metavar="CONTEXT=SECONDS",
                     help="Simulated engine: this context's stack takes that long ('*' for every one)."),
        click.option("--force-unlock", "force_unlock", is_flag=True,
                     help="Break the environment's lock left by a process that is gone (another host's, a dead "
                          "pid, an expired lease); a lock whose process still runs on this host is never broken."),
        click.option("--force", "force", is_flag=True,
                     help="With --force-unlock: break a shared registry's live lease too (its runner may still be "
                          "working: be sure it is gone)."),
        click.option("--target", "target", type=click.Choice(["aws", "local"]), default="aws", show_default=True,
                     help="local: deploy with the pulumi engine into an embedded AWS (moto) on 127.0.0.1."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def open_orchestrator(common: Common, *, env: str | None = None, quiet: bool = False, lenient: bool = False,
                      **engine: Any) -> Orchestrator:
    """The orchestrator a command runs with, from its workspace (``engine``: the engine options)."""
    workspace = common.workspace(**engine)
    orchestrator = workspace.orchestrator(env if env in _long_lived(common) else None, lenient=lenient, quiet=quiet)
    if orchestrator.engine.name == "pulumi":
        guard_children()
    return orchestrator


def open_registry(common: Common) -> RegistryBackend:
    """The registry ``--registry`` names (default: SQLite under ``--state-dir``); a new SQLite file is announced
    in one line (a wrong ``--state-dir`` or a deleted file must not pass for an environment with nothing
    deployed)."""
    return common.workspace().registry


def load_lenient(common: Common) -> ContractLibrary:
    """The library for commands that work from the registry (``status``, ``env list``, ``gc``): a broken contract
    is reported in one line and left out, instead of stopping the command. Only an unusable environments.yaml
    (or contracts directory) stops it."""
    return common.workspace().library(lenient=True)


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
            colour = {"failed": "red", "skipped": "yellow", "orphaned": "yellow", "succeeded": "green",
                      "destroyed": "green"}.get(s.status)
            click.secho(line + (f"  {s.error}" if s.error and s.status == "failed" else
                                f"  {s.reason}" if s.reason and s.status in ("skipped", "orphaned") else ""),
                        fg=colour)
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
                for line in cli_day2.render_diff(s.resources, indent="    "):  # imported at the bottom
                    click.echo(line)
        deploy = sum(1 for s in result.stacks if s.action == "deploy")
        same = sum(1 for s in result.stacks if s.action == "unchanged")
        orphaned = sum(1 for s in result.stacks if s.action == "orphaned")
        common.say(f"plan {env}: {deploy} to deploy, {same} unchanged"
                   f"{f', {orphaned} orphaned (context gone from the library)' if orphaned else ''}"
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


def interactive() -> bool:
    """Whether a person can answer a question: stdin is a terminal."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def confirm_or_abort(common: Common, question: str, *, required: bool) -> None:
    """Ask ``question`` on a terminal; without one, go on unless ``required`` (then ``--yes`` is needed)."""
    if interactive():
        if not click.confirm(question, default=False, err=True):
            raise OdeError("declined: nothing was destroyed")
    elif required:
        raise UsageError("destroying needs confirmation: pass --yes (no terminal to ask on)")


@main.command()
@_env_options
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


@main.command()
@_env_options
@common_options
def status(common: Common, env: str, contexts: str | None) -> None:
    """What is deployed in an environment, from the registry: each stack's status, times and outputs."""
    library = load_lenient(common)
    registry = open_registry(common)
    if env not in library.environments.environments and not registry.knows(env):
        raise UsageError(f"unknown environment {env!r}: not in environments.yaml "
                         f"({', '.join(library.environments.environments)}) and never deployed with this state "
                         f"directory ({common.state_dir})")
    result = Orchestrator(library, registry, SimulatedEngine(library, common.state_dir)).status(
        env, split_names(contexts))
    result.engine = "registry"
    if common.json:
        common.emit(result.to_dict())
        return
    holder = registry.lock_holder(env)
    if not result.stacks:
        common.say(f"nothing deployed in {env}")
    else:
        engines = {r.stack: r.engine for r in registry.stacks(env)}
        render.show(render.status_table(result.stacks, utcnow(), engines), sys.stdout)
    if holder:
        common.say(f"a run holds {env}: {holder}", err=True)


@main.command()
@_env_options
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
    registry = open_registry(common)
    if env not in _long_lived(common) and not registry.knows(env):
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
        value = render.output_at(everything, path, env)
        if common.json:
            common.emit({"env": env, "outputs": found, "path": path, "value": value})
        else:
            click.echo(render.scalar(value))
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


def split_names(text: str | None, option: str = "--contexts", allow_empty: bool = False) -> list[str] | None:
    """``a,b , c`` as ``["a", "b", "c"]``; None stays None. A value that names nothing (``,``) is a
    :class:`UsageError` unless ``allow_empty`` (``--reuse ''``: reuse none)."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names and not allow_empty:
        raise UsageError(f"{option} {text!r} names no context")
    return names


from . import cli_check, cli_env  # noqa: E402,F401  - register `ode check`, `ode env`, `ode gc`, `ode affected`

from . import cli_ci  # noqa: E402,F401  # isort: skip  - registers `ode ci` and `ode registry`

from . import cli_contracts  # noqa: E402,F401  # isort: skip  - registers components, init, diff, import, catalog
from . import cli_day2  # noqa: E402,F401  # isort: skip  - registers refresh, drift

if __name__ == "__main__":  # pragma: no cover - `python -m ode.cli`: run the registered module's group
    from ode.cli import main as _main

    _main()
