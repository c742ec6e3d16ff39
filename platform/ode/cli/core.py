"""The core of the ``ode`` command, shared by every command module (which import it, never the other way): the
root group, the options every command takes, errors turned into one line and an exit status, the workspace a
command runs with, and how a run's result is printed.

Commands are registered lazily: the root group knows each by name, module and one-line help (:data:`COMMANDS`), and
imports a command's module only when that command runs, so ``ode --help`` loads none of the heavy libraries.

Every command takes the common options after its own name: ``--contracts DIR``, ``--state-dir DIR``,
``--registry URL``, ``--json``. With ``--json`` the result goes to stdout as JSON (never more than one
document) and messages go to stderr. What a command runs with (library, registry, engine, orchestrator) comes
from one place, :mod:`ode.workspace`. ``--env`` defaults to ``ODE_ENV`` wherever it names the environment a command
works on. Colour follows ``NO_COLOR`` and ``FORCE_COLOR`` (:mod:`ode.rendering`).

Exit status, for every command (``ode ci`` and ``scripts/ephemeral_env.py`` included): 0 done; 1 a stack failed, a
check found violations, or the registry cannot be used; 2 a usage or contract mistake (a missing Pulumi CLI on CI
too, a simulated run over what a real engine deployed); 3 the environment is locked by another run, or this run lost
its lock to another one; 130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import click

from ..aws_clients import forget_silent
from ..errors import OdeError, ProtectedEnvironmentError, UsageError
from ..rendering import colour_choice, did_you_mean, some
from ..status import StackStatus
from .process_guard import guard_children, stand_down

if TYPE_CHECKING:
    from ..contracts import ContractLibrary
    from ..execution.ephemeral import EphemeralEnvironments
    from ..execution.orchestrator import Orchestrator
    from ..execution.results import RunResult
    from ..registry.protocol import RegistryBackend
    from ..registry.records import EnvironmentRecord
    from ..workspace import Workspace

#: The exit statuses, one table for every command and the CI script.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

F = TypeVar("F", bound=Callable[..., Any])


class Lazy(NamedTuple):
    """A command the root group imports when it runs: ``module:attribute``, and its one-line help."""

    target: str
    help: str


#: Every command of ``ode``: name -> where it lives, and the first paragraph of its help as ``ode --help`` lists it
#: (a test holds these to the commands' own docstrings).
COMMANDS: dict[str, Lazy] = {
    "affected": Lazy("ode.cli.environments:affected", "The contexts whose contract, settings or code changed since "
                     "the merge-base of a git ref and HEAD, and their consumers, each with why it is listed."),
    "catalog": Lazy("ode.cli.authoring:catalog", "Descriptors of the library for a developer portal: one Component "
                    "per context, one API per interface."),
    "check": Lazy("ode.cli.check:check", "Every policy rule over an environment's stacks; exit 1 when a mandatory "
                  "rule is broken."),
    "ci": Lazy("ode.cli.ci:ci", "Environments made on demand from CI jobs: up, down and gc, with GitHub outputs and "
               "summaries."),
    "components": Lazy("ode.cli.authoring:components", "Each component kind: the interface kinds it can provide, "
                       "the accesses a consumer may ask for, and its settings (type, default, limits, description)."),
    "destroy": Lazy("ode.cli.run:destroy", "Destroy stacks of an environment, in reverse order: every stack of "
                    "ENV, or with --contexts the stacks of those contexts AND every stack of ENV that consumes them, "
                    "directly or not. Names each stack first, and why it goes; asks on a terminal, elsewhere it "
                    "needs --yes. A protected environment refuses; so does a base whose stacks environments made on "
                    "demand reuse (unless --with-ephemeral)."),
    "diff": Lazy("ode.cli.authoring:diff", "Classify every change of every interface since a git ref; exit 1 when "
                 "a breaking change lacks a new major version (the rules: docs/contracts.md, \"Evolving an "
                 "interface\")."),
    "drift": Lazy("ode.cli.drift:drift_command", "Check every deployed stack for drift (a refresh-preview that "
                  "changes nothing): exit 0 when nothing drifted, 1 when something did or a stack could not be "
                  "checked. With --heal, re-apply the drifted stacks."),
    "env": Lazy("ode.cli.environments:env", "Environments made on demand: per branch or pull request, partial, "
                "with a TTL."),
    "gc": Lazy("ode.cli.environments:gc", "Destroy every expired environment made on demand; go on past a failure "
               "and say so (exit 1). Never asks: it only destroys what outlived its TTL, and runs from schedulers. "
               "An environment another run holds is left for the next pass; one broken contract does not stop it."),
    "executor": Lazy("ode.cli.workers:executor", "Where stacks run beyond this machine: set up an executor's "
                     "workers."),
    "graph": Lazy("ode.cli.library:graph", "Print the dependency graph of one environment."),
    "import": Lazy("ode.cli.authoring:import_", "Write a first draft of a contract from an OpenAPI or AsyncAPI "
                   "document."),
    "init": Lazy("ode.cli.authoring:init", "Write a valid contract for a new bounded context (and a handler for "
                 "the kinds that run code)."),
    "outputs": Lazy("ode.cli.run:outputs", "The outputs of an environment's stacks (secret ones shown as [secret] "
                    "unless --show-secrets). With PATH (orders.orders-api.url), only that value, alone on its line, "
                    "for scripts."),
    "plan": Lazy("ode.cli.run:plan", "Which stacks `up` would deploy, in which order, which are unchanged and why, "
                 "with each one's preview."),
    "refresh": Lazy("ode.cli.drift:refresh_command", "Refresh every deployed stack's state from the cloud, in "
                    "parallel (the next `up` puts the program's values back)."),
    "registry": Lazy("ode.cli.registry:registry", "The registry: what was deployed where. Shared by every runner "
                     "when it is in DynamoDB."),
    "schema": Lazy("ode.cli.library:schema", "Print the JSON Schema of a contract file, for editors: `settings` and "
                   "`overrides` checked per component."),
    "stack": Lazy("ode.cli.workers:stack", "One stack's operation on a worker: what the executors (Dask, "
                  "CodeBuild) run for each stack."),
    "status": Lazy("ode.cli.run:status", "What the registry knows of an environment's stacks, as a table: each "
                   "stack's status, when it last ran, how long it took, the engine that ran it and the first line "
                   "of its error (--json adds its outputs; `ode outputs` prints them)."),
    "up": Lazy("ode.cli.run:up", "Deploy an environment: one stack per context, in dependency order, only what "
               "changed. On a terminal it first shows which stacks will deploy and why, and asks (--yes does not "
               "ask); elsewhere (CI) it goes ahead."),
    "validate": Lazy("ode.cli.library:validate", "Load the contracts library and report every error in it (file, "
                     "line, field); exit 2 if any."),
}


class LazyGroup(click.Group):
    """A group that knows its commands by name and imports each one's module only when it runs (click's
    documented lazy loading); its help lists them from their one-line help without importing anything."""

    def __init__(self, *args: Any, lazy: Mapping[str, Lazy], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, attribute = self.lazy[cmd_name].target.partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name].target} is not a click command")
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            # A command not loaded yet is shortened as click shortens its own: through a stand-in with its help.
            command = self.commands.get(name) or click.Command(name, help=self.lazy[name].help)
            rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


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
    #: Whether a JSON document went to stdout already: a command prints one, even when it fails afterwards.
    emitted: bool = False
    _workspace: Workspace | None = None

    def workspace(self, **engine: Any) -> Workspace:
        """The command's workspace (opened once), from the common options and the engine options ``engine``."""
        from ..workspace import Workspace, WorkspaceOptions  # deferred: what a command opens, it imports

        known = set(WorkspaceOptions.__dataclass_fields__)  # the rest (--verbose) is for the command's progress
        given: dict[str, Any] = {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in engine.items()
                                 if k in known}
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
        self.emitted = True

    def warn(self, message: str) -> None:
        """One ``warning:`` line on stderr: something beside the command's work went wrong, and the work stands."""
        click.secho(f"warning: {message}", fg="yellow", err=True)

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
    """The exit status for an error a user sees, as the error says it (``exit_code``): 2 for a usage or contract
    mistake (a bad option, a broken contract, an unknown environment, a cycle), 3 for a held or a lost lock, else
    1."""
    return int(getattr(exc, "exit_code", EXIT_FAILED))


def _fail(common: Common, exc: OdeError) -> None:
    from ..contracts.diagnostics import ContractErrors  # deferred: only a failing command pays for it

    if common.json and not common.emitted:  # one document on stdout: a result already printed stands
        errors = ([e.to_dict() for e in exc.errors] if isinstance(exc, ContractErrors)
                  else [{"message": str(exc)}])
        common.emit({"ok": False, "error": type(exc).__name__, "errors": errors})
    for line in str(exc).splitlines():
        click.secho(f"error: {line}", fg="red", err=True)
    if isinstance(exc, ContractErrors):
        n = len(exc.errors)
        click.echo(f"{n} error{'s' if n != 1 else ''} in {common.contracts}", err=True)
    sys.exit(exit_status(exc))


@click.group(cls=LazyGroup, lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="ondemandenv", prog_name="ode")
def main() -> None:
    """OnDemandEnv: contracts between bounded contexts, deployed as Pulumi stacks.

    Exit status: 0 done; 1 a stack failed, a check found violations or the registry cannot be used; 2 a usage or
    contract mistake; 3 the environment is locked by another run (or this run lost its lock to one); 130
    interrupted (Ctrl-C or SIGTERM).
    """
    ctx = click.get_current_context()
    # Colour as NO_COLOR and FORCE_COLOR say, for every line click writes (subcommands inherit it); None: a terminal.
    ctx.color = colour_choice()
    # What the command changes in its process lasts as long as the command: ode called in-process (click's runner,
    # someone's tooling) leaves the process as it found it.
    ctx.with_resource(command_scope())


@contextlib.contextmanager
def command_scope() -> Iterator[None]:
    """While a command runs: SIGTERM handled like Ctrl-C (:func:`handle_sigterm`) and ode's warnings on stderr
    (:func:`log_warnings`). When it ends, however it ends: the previous SIGTERM handler and logging set-up are back,
    the guard over the processes it started (:func:`~ode.cli.process_guard.guard_children`) stands down, and the
    endpoints it found silent (:mod:`ode.aws_clients`) are asked again by the next command."""
    previous = signal.getsignal(signal.SIGTERM)
    installed = handle_sigterm()
    restore_logging = log_warnings()
    try:
        yield
    finally:
        restore_logging()
        if installed and previous is not None:  # None: a handler set outside Python, which cannot be put back
            signal.signal(signal.SIGTERM, previous)
        stand_down()
        forget_silent()


def log_warnings() -> Callable[[], None]:
    """Warnings of ode's modules (an event or an output that could not be published...) as one ``warning:`` line
    each on stderr (the stderr of the moment: click's runner swaps it). Returns what puts logging back as it was."""
    logger = logging.getLogger("ode")
    if any(getattr(h, "ode_cli", False) for h in logger.handlers):  # a command run inside a command: one line each
        return lambda: None
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    handler.ode_cli = True  # type: ignore[attr-defined]
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)

    return restore


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def handle_sigterm() -> bool:
    """Treat SIGTERM (a CI runner cancelling a job, ``kill``) like Ctrl-C: nothing new starts, running stacks
    finish and are recorded, exit 130. Returns whether the handler is set."""
    try:
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (ode called from a thread of someone's tooling): leave it be
        return False
    return True


def engine_options(func: F) -> F:
    """Add the options of commands that run stacks: ``--engine``, ``--parallel``, ``--executor``, the simulated
    engine's faults, ``--force-unlock`` and ``--target``."""
    # deferred: `ode --help` loads no execution module (the one default of every front end lives there)
    from ..execution.scheduler import DEFAULT_PARALLEL

    options = [
        click.option("--engine", "engine", default="auto", envvar="ODE_ENGINE", show_default=True,
                     metavar="auto|pulumi|simulated",
                     help="pulumi (the Automation API), simulated (in-process, creates nothing), or auto: pulumi "
                          "where its CLI is found, else simulated (never under CI=true: name it there). Other "
                          "engines come from packages (entry points `ode.engines`)."),
        click.option("--parallel", "parallel", type=click.IntRange(1, 256), default=DEFAULT_PARALLEL,
                     envvar="ODE_PARALLEL", show_default=True, help="Most stacks running at once."),
        click.option("--executor", "executor", default=None, envvar="ODE_EXECUTOR", metavar="URL",
                     help="Where each stack's operation runs: local (this machine's threads), dask://HOST:PORT (a "
                          "Dask cluster's workers), dask+local://N (N local worker processes) or "
                          "codebuild://PROJECT?region=R (a CodeBuild build per stack); `timeout=SECONDS` bounds "
                          "each stack. Others come from packages (entry points `ode.executors`)  [default: local, "
                          "or ODE_EXECUTOR]"),
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
        click.option("--verbose", "-v", "verbose", is_flag=True,
                     help="Progress resource by resource (type and name) and every line the engine says; by "
                          "default a line per stack event."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def open_orchestrator(common: Common, *, env: str | None = None, quiet: bool = False, lenient: bool = False,
                      verbose: bool = False, names: Mapping[str, list[str] | None] | None = None,
                      **engine: Any) -> Orchestrator:
    """The orchestrator a command runs with, from its workspace (``engine``: the engine options), its progress
    told to people unless ``quiet`` (resource by resource when ``verbose``). ``names``: option -> the contexts it
    names, each checked against the library (:func:`check_contexts`) before the engine or the registry opens."""
    from ..progress import reporter_for  # deferred: rendering progress is for the commands that run stacks

    workspace = common.workspace(**engine)
    checked = env if env in long_lived(common) else None
    if names:
        library = workspace.library(checked, lenient=lenient)
        for option, given in names.items():
            check_contexts(library, given, option=option, env=env)
    orchestrator = workspace.orchestrator(checked, lenient=lenient, quiet=quiet,
                                          reporter=reporter_for(quiet, verbose=verbose))
    if orchestrator.engine.name == "pulumi":
        guard_children()
    return orchestrator


def open_registry(common: Common, *, create: bool = True) -> RegistryBackend:
    """The registry ``--registry`` names (default: SQLite under ``--state-dir``); a new SQLite file is announced
    in one line (a wrong ``--state-dir`` or a deleted file must not pass for an environment with nothing
    deployed). ``create=False`` for commands that only read: a registry that is not there is one error line
    (exit 2), and nothing is created."""
    workspace = common.workspace()
    return workspace.registry if create else workspace.existing_registry()


def load_lenient(common: Common) -> ContractLibrary:
    """The library for commands that work from the registry (``status``, ``env list``, ``gc``): a broken contract
    is reported in one line and left out, instead of stopping the command. Only an unusable environments.yaml
    (or contracts directory) stops it."""
    return common.workspace().library(lenient=True)


def long_lived(common: Common) -> set[str]:
    """Names of environments.yaml's environments, read cheaply (to tell an ephemeral ``--env`` apart)."""
    return environment_names(common.contracts)


def environment_names(contracts: Path) -> set[str]:
    """Names of the environments in ``contracts``/environments.yaml, read cheaply; none when it cannot be read."""
    import yaml_rs  # deferred: see the module's docstring

    try:
        data = yaml_rs.loads((contracts / "environments.yaml").read_text())
        return set(data.get("environments") or {}) if isinstance(data, dict) else set()
    except Exception:  # noqa: BLE001 - load_library reports a broken file properly
        return set()


#: How a stack's status is coloured in a run's summary.
_COLOURS = {StackStatus.FAILED: "red", StackStatus.SKIPPED: "yellow", StackStatus.ORPHANED: "yellow",
            StackStatus.SUCCEEDED: "green", StackStatus.DESTROYED: "green"}


def render_result(common: Common, result: RunResult, extra: dict[str, Any] | None = None) -> None:
    """Print a run's result (JSON with ``--json``, a summary otherwise) and exit non-zero if a stack failed."""
    if common.json:
        common.emit({**result.to_dict(), **(extra or {})})
    else:
        for s in result.stacks:
            took = f"{s.duration_s:.1f}s" if s.duration_s is not None else ""
            line = f"{s.stack:<32} {s.status:<10} {took:>7}"
            colour = _COLOURS.get(s.status)
            click.secho(line + (f"  {s.error}" if s.error and s.status == StackStatus.FAILED else
                                f"  {s.reason}" if s.reason and s.status in (StackStatus.SKIPPED, StackStatus.ORPHANED)
                                else ""), fg=colour, reset=colour is not None)
        counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts().items()))
        sim = " (simulated: nothing was deployed)" if result.simulated else ""
        common.say(f"{result.operation} {result.env}: {counts or 'no stacks'}{sim}", err=True)
        if result.interrupted:
            common.say("interrupted: run the same command again to resume", err=True)
    if result.exit_code:
        sys.exit(result.exit_code)


#: ``--contexts`` of the commands that deploy: the contexts named and the producers they need.
WITH_NEEDS = "Only these contexts (comma-separated) and what they need."


def _library_dir(ctx: click.Context) -> Path:
    return Path(ctx.params.get("contracts") or "contracts")


def complete_environments(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of ``--env``: environments.yaml's names (read cheaply; nothing when it cannot be read)."""
    return sorted(name for name in environment_names(_library_dir(ctx)) if name.startswith(incomplete))


def complete_contexts(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of ``--contexts a,b``: the library's context files, after the names already typed."""
    done, _, last = incomplete.rpartition(",")
    try:
        names = sorted(p.stem for p in _library_dir(ctx).glob("*.yaml") if p.stem != "environments")
    except OSError:
        return []
    typed = set(done.split(",")) if done else set()
    return [f"{done + ',' if done else ''}{n}" for n in names if n.startswith(last) and n not in typed]


def env_option(text: str = "The environment.") -> Callable[[F], F]:
    """``--env``, required, defaulting to ``ODE_ENV`` (click names both when neither is given)."""
    return click.option("--env", "env", required=True, envvar="ODE_ENV", show_envvar=True, help=text,
                        shell_complete=complete_environments)


def env_options(func: F | None = None, *, contexts_help: str = WITH_NEEDS) -> Any:
    """Add ``--env`` (required, or ``ODE_ENV``) and ``--contexts`` (``contexts_help`` says what it selects)."""

    def decorate(f: F) -> F:
        f = click.option("--contexts", "contexts", default=None, help=contexts_help,
                         shell_complete=complete_contexts)(f)
        return env_option()(f)

    return decorate(func) if func is not None else decorate


def check_contexts(library: ContractLibrary, names: list[str] | None, *, option: str = "--contexts",
                   env: str | None = None, present: Iterable[str] | None = None) -> None:
    """Each of ``names`` must be a context of the library (a :class:`UsageError` naming the closest one
    otherwise), and, when ``present`` is given, one of those (``not deployed in ENV``, with what is); without
    ``present``, a long-lived ``env`` whose contracts leave a context out says so. A name in ``present`` is fine
    even when the library lost it (an orphaned stack may be destroyed)."""
    there = set(present) if present is not None else None
    for name in names or []:
        if there is not None and name in there:
            continue
        if name not in library.contexts:
            known = set(library.contexts) | (there or set())
            hint = did_you_mean(name, known) or f" (it has: {some(known)})"
            raise UsageError(f"{option}: no context {name!r} in the library{hint}")
        if there is not None:
            raise UsageError(f"{option}: context {name!r} is not deployed in {env} (deployed: {some(there)})")
        if env is not None and env in library.environments.environments and \
                not library.contexts[name].deployed_in(env):
            listed = library.contexts[name].environments or []
            raise UsageError(f"{option}: context {name!r} is not part of environment {env}: its contract lists "
                             f"only {', '.join(listed) or 'no environment'}")


def interactive() -> bool:
    """Whether a person can answer a question: stdin is a terminal, and so is stderr, where the question is asked
    (``ode up 2>log`` must not wait on a question nobody sees)."""
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def made_on_demand(envs: EphemeralEnvironments, name: str) -> EnvironmentRecord:
    """The record of the environment made on demand ``name``; when there is none, the error names the closest one
    the registry holds."""
    try:
        return envs.get(name)
    except ProtectedEnvironmentError:
        raise
    except UsageError as exc:
        known = [r.name for r in envs.registry.environments() if r.ephemeral]
        hint = did_you_mean(name, known)
        if not hint:
            raise
        raise UsageError(f"no environment made on demand is named {name!r}{hint} (see `ode env list`)") from exc


def confirm_or_abort(common: Common, question: str, *, required: bool, declined: str = "nothing was destroyed",
                     ) -> None:
    """Ask ``question`` on a terminal; without one, go on unless ``required`` (then ``--yes`` is needed). A
    declined question is an :class:`OdeError` (exit 1) saying ``declined``."""
    if interactive():
        if not click.confirm(question, default=False, err=True):
            raise OdeError(f"declined: {declined}")
    elif required:
        raise UsageError("destroying needs confirmation: pass --yes (no terminal to ask on)")


def split_names(text: str | None, option: str = "--contexts", allow_empty: bool = False) -> list[str] | None:
    """``a,b , c`` as ``["a", "b", "c"]``; None stays None. A value that names nothing (``,``) is a
    :class:`UsageError` unless ``allow_empty`` (``--reuse ''``: reuse none)."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names and not allow_empty:
        raise UsageError(f"{option} {text!r} names no context")
    return names


