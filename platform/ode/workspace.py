"""The composition root: one place that opens what a command (or a script, or your own tooling) runs with.

    from ode.workspace import open_workspace

    with open_workspace(contracts="contracts", registry="dynamodb://ode-registry?region=eu-west-1",
                        engine="simulated") as ws:
        result = ws.orchestrator().up("dev")
        record, created = ws.environments().create("pr-7", contexts=["orders"], ttl="4h")

Options left out come from the ``ODE_*`` variables, then from the defaults:

=================  ====================  ===========================================================
option             variable              default
=================  ====================  ===========================================================
``contracts``      ``ODE_CONTRACTS``     ``contracts``
``state_dir``      ``ODE_STATE_DIR``     ``.ode``
``registry``       ``ODE_REGISTRY``      ``sqlite:`` ``<state dir>/registry.db``
``engine``         ``ODE_ENGINE``        ``auto``: pulumi where its CLI is found, else simulated
``parallel``       ``ODE_PARALLEL``      8
``executor``       ``ODE_EXECUTOR``      ``local``: this machine's threads (``dask://``, ``codebuild://``...)
``target``                               ``aws`` (``local``: an embedded AWS on 127.0.0.1)
=================  ====================  ===========================================================

Engines (``ode.engines``), registry backends (``ode.registries``) and executors (``ode.executors``, by the URL's
scheme) are found by name through entry points, so a package adds one without editing ode. Under ``CI=true`` the
``auto`` engine never falls back to the simulated one: a runner without the Pulumi CLI fails in one line unless
``engine="simulated"`` is asked for by name.

The orchestrator a workspace hands out has the policy gate installed in its engine, sends lifecycle events to the
bus its environment names (``events: {bus: NAME}``) and publishes outputs to SSM where the environment says
``publish: ssm``; neither of those can fail a deploy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .contracts import ContractErrors, ContractLibrary, load_library, read_library
from .engines.factory import make_engine
from .engines.protocol import Engine
from .errors import UsageError
from .execution.ephemeral import EphemeralEnvironments
from .execution.events import Reporter
from .execution.executor import Executor
from .execution.orchestrator import Orchestrator
from .execution.scheduler import DEFAULT_PARALLEL
from .policy.gate import install_gate
from .progress import reporter_for
from .publishing.lifecycle_events import LifecycleEmitter, wanted_bus
from .publishing.ssm_outputs import ROOT, OutputsPublisher, wants_ssm
from .registry.opening import open_registry
from .registry.protocol import RegistryBackend
from .registry.sqlite import Registry
from .rendering import did_you_mean

_TRUE = ("1", "true", "yes", "on")


def in_ci() -> bool:
    """Whether this runs on a CI runner (``CI=true``, as GitHub Actions, GitLab and most others set it)."""
    return os.environ.get("CI", "").strip().lower() in _TRUE


@dataclass(frozen=True)
class WorkspaceOptions:
    """What a workspace is opened with. ``None`` fields are read from the ``ODE_*`` variables, then defaulted
    (see the module's table); :meth:`resolved` does that once."""

    contracts: Path | None = None
    state_dir: Path | None = None
    registry: str | None = None
    engine: str | None = None
    parallel: int | None = None
    #: Where each stack's operation runs (``local``, ``dask://HOST:PORT``, ``codebuild://PROJECT?region=R``...).
    executor: str | None = None
    target: str = "aws"
    #: The simulated engine's faults: contexts that fail, and ``CONTEXT=SECONDS`` delays.
    simulate_failure: tuple[str, ...] = ()
    simulate_delay: tuple[str, ...] = ()
    #: Break a lock whose holder is gone; with ``force`` also a live lease.
    force_unlock: bool = False
    force: bool = False
    #: None: from ``CI``.
    ci: bool | None = None

    def resolved(self) -> WorkspaceOptions:
        """These options with every default filled in from the environment."""
        parallel = self.parallel
        if parallel is None:
            text = os.environ.get("ODE_PARALLEL")
            try:
                parallel = int(text) if text else DEFAULT_PARALLEL
            except ValueError:
                raise UsageError(f"ODE_PARALLEL={text!r}: expected a whole number of stacks") from None
        if parallel < 1:
            raise UsageError(f"--parallel must be at least 1, not {parallel}")
        return replace(
            self,
            contracts=Path(self.contracts or os.environ.get("ODE_CONTRACTS") or "contracts"),
            state_dir=Path(self.state_dir or os.environ.get("ODE_STATE_DIR") or ".ode"),
            registry=self.registry or os.environ.get("ODE_REGISTRY") or None,
            engine=self.engine or os.environ.get("ODE_ENGINE") or "auto",
            executor=self.executor or os.environ.get("ODE_EXECUTOR") or None,
            parallel=parallel,
            ci=in_ci() if self.ci is None else self.ci)


def parse_delays(items: Iterable[str]) -> dict[str, float]:
    """``CONTEXT=SECONDS`` pairs; a value that is not a finite number of seconds, zero or more, is refused."""
    delays = {}
    for item in items:
        name, sep, seconds = item.partition("=")
        try:
            value = float(seconds)
        except ValueError:
            value = math.nan
        if not sep or not name.strip() or not math.isfinite(value) or value < 0:
            raise UsageError(f"--simulate-delay {item!r}: expected CONTEXT=SECONDS, with SECONDS a number of zero "
                             "or more")
        delays[name.strip()] = value
    return delays


def _check_fault_targets(library: ContractLibrary, option: str, names: Iterable[str]) -> None:
    """Each name of ``--simulate-failure``/``--simulate-delay`` must be a context (or ``ENV.CONTEXT``, or ``*``
    for a delay): a typo would otherwise rehearse nothing, silently."""
    for name in names:
        context = name.split(".", 1)[1] if "." in name else name
        if name != "*" and context not in library.contexts:
            hint = did_you_mean(context, library.contexts)
            raise UsageError(f"{option} {name!r}: no context {context!r} in {library.root}"
                             f"{hint or ' (known: ' + ', '.join(sorted(library.contexts)) + ')'}")


@dataclass
class Workspace:
    """A contracts library, a registry, an engine and what they hand out, opened once from :class:`WorkspaceOptions`.

    Everything is opened when first asked for, so a command that only reads the registry never starts an engine,
    and a usage mistake is found before any state is written. ``announce`` receives one-line notes for people
    (the engine chosen, a new registry); ``close()`` (or ``with``) releases the registry and stops what was
    started (an embedded AWS).
    """

    options: WorkspaceOptions = field(default_factory=WorkspaceOptions)
    announce: Callable[[str], None] | None = None
    _library: ContractLibrary | None = None
    _registry: RegistryBackend | None = None
    _engine: Engine | None = None
    _executor: Executor | None = None
    _cleanups: list[Callable[[], None]] = field(default_factory=list)
    #: Stack config every stack gets (an embedded AWS's target).
    _engine_config: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.options = self.options.resolved()

    # -- the parts -----------------------------------------------------------------------------------------------

    @property
    def contracts(self) -> Path:
        assert self.options.contracts is not None
        return self.options.contracts

    @property
    def state_dir(self) -> Path:
        assert self.options.state_dir is not None
        return self.options.state_dir

    def _say(self, line: str) -> None:
        if self.announce is not None:
            self.announce(line)

    def library(self, env: str | None = None, *, lenient: bool = False) -> ContractLibrary:
        """The contracts library (checked for ``env`` when given). ``lenient``: a broken contract is reported in
        one line and left out (for commands that work from the registry: status, env list, gc)."""
        if self._library is None:
            self._library = self._load_lenient() if lenient else load_library(self.contracts, env)
        return self._library

    def _load_lenient(self) -> ContractLibrary:
        library, errors = read_library(self.contracts)
        if library is None:
            raise ContractErrors(errors)
        try:
            errors.extend(library.check(None))
        except Exception:  # noqa: BLE001 - the cross-file check of a partly broken library may trip; go on
            pass
        if errors:
            n = len(errors)
            self._say(f"warning: {n} error{'s' if n != 1 else ''} in {self.contracts} (first: {errors[0]}); going "
                      "on without the broken contracts (`ode validate` lists them)")
        return library

    @property
    def registry(self) -> RegistryBackend:
        """The registry ``--registry`` / ``ODE_REGISTRY`` names (default: SQLite under the state dir). A new SQLite
        file or table is announced: a wrong ``--state-dir`` or a deleted file must not pass for an empty registry."""
        if self._registry is None:
            self._registry = open_registry(self.options.registry, self.state_dir)
            if isinstance(self._registry, Registry) and self._registry.created:
                self._say(f"note: new registry {self._registry.path}: it knows no environment deployed before")
                left = [p for p in ("pulumi", "simulated", "workspaces") if any((self.state_dir / p).glob("*"))]
                if left:
                    self._say(f"warning: {self.state_dir} holds stack state ({', '.join(left)}/) that the new "
                              "registry does not know: was registry.db deleted? Restore it before deploying or "
                              "destroying")
            elif getattr(self._registry, "created", False):
                self._say(f"note: new registry {getattr(self._registry, 'url', self.options.registry)}: its table "
                          "was created (as `ode registry init` does); it knows no environment deployed before")
        return self._registry

    def existing_registry(self) -> RegistryBackend:
        """The registry as :attr:`registry` opens it, for commands that only read (``status``, ``env list``,
        ``outputs``, ``drift``, the source of ``registry copy``): one that does not exist is a
        :class:`~ode.registry.errors.RegistryNotFoundError` (exit 2) and nothing is created, no file, no table,
        no state directory."""
        if self._registry is None:
            self._registry = open_registry(self.options.registry, self.state_dir, create=False)
        return self._registry

    def engine(self, library: ContractLibrary) -> Engine:
        """The engine the options name, with the policy gate installed (mandatory rules run before any stack's
        engine run). Its usage mistakes (faults of an unknown context, the simulated engine refused on CI) are
        raised before anything is written."""
        if self._engine is not None:
            return self._engine
        opts = self.options
        delays = parse_delays(opts.simulate_delay)
        if "*" in opts.simulate_failure:
            raise UsageError("--simulate-failure '*': name a context (repeat the option for several)")
        _check_fault_targets(library, "--simulate-failure", opts.simulate_failure)
        _check_fault_targets(library, "--simulate-delay", delays)
        engine_name = opts.engine or "auto"
        pulumi_options: dict[str, Any] = {}
        if opts.target == "local":
            if engine_name == "simulated":
                raise UsageError("--target local deploys with the pulumi engine; the simulated engine needs no "
                                 "target")
            engine_name = "pulumi"
            from .embedded_aws import LocalAws  # deferred: imports moto's server, only for --target local

            local = LocalAws.start()
            self._cleanups.append(local.stop)
            self._say(f"target: embedded AWS (moto) at {local.endpoint}")
            pulumi_options["env_vars"] = local.environment()
            self._engine_config.update(local.stack_config())
        elif opts.target != "aws":
            raise UsageError(f"--target {opts.target!r}: choose aws or local")
        chosen = make_engine(engine_name, library, self.state_dir, failures=opts.simulate_failure, delays=delays,
                             announce=self._say, ci=bool(opts.ci), **pulumi_options)
        install_gate(chosen, library, self.state_dir)
        for part in (chosen, getattr(chosen, "gate", None)):  # worker processes they may start for programs
            close = getattr(part, "close", None)
            if callable(close):
                self._cleanups.append(close)
        self._engine = chosen
        return chosen

    def executor(self, library: ContractLibrary) -> Executor | None:
        """The executor ``--executor`` / ``ODE_EXECUTOR`` names (found by its URL's scheme through the
        ``ode.executors`` entry points); None for the default, this machine's threads. A remote one refuses, in
        one line, state and secrets its workers cannot use; it is closed with the workspace."""
        if self._executor is not None or self.options.executor in (None, "", "local"):
            return self._executor
        from .executors import ExecutorSetup, open_executor  # deferred: Dask and boto3 only when one is named

        opts = self.options
        engine = self.engine(library)
        publisher = self.outputs(library)
        setup = ExecutorSetup(
            engine=engine, library=library, state_dir=self.state_dir, registry_url=opts.registry,
            engine_options={"failures": list(opts.simulate_failure), "delays": parse_delays(opts.simulate_delay),
                            "run_programs": bool(getattr(engine, "run_programs", True))},
            parallel=opts.parallel or DEFAULT_PARALLEL, announce=self._say,
            ssm_place=None if publisher is None else self._ssm_place(library))
        self._executor = open_executor(opts.executor, setup)
        self._cleanups.append(self._close_executor)
        return self._executor

    def _close_executor(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    def _ssm_place(self, library: ContractLibrary) -> Callable[[str, str], tuple[str, str | None] | None]:
        """Where an environment's outputs are in SSM Parameter Store, for workers reading secret upstream values."""

        def place(env: str, producer: str) -> tuple[str, str | None] | None:
            settings = self._settings_env(library, env)
            if settings is None:
                return None
            where = library.environments.environments[settings]
            return (f"{ROOT}/{library.project}/{env}/{producer}", where.region) if wants_ssm(where) else None

        return place

    def orchestrator(self, env: str | None = None, *, lenient: bool = False, reporter: Reporter | None = None,
                     quiet: bool = True) -> Orchestrator:
        """The orchestrator of this workspace: library, registry, engine, ``parallel``, the lock options, the
        lifecycle events and the SSM outputs of the environments that ask for them."""
        library = self.library(env, lenient=lenient)
        engine = self.engine(library)
        executor = self.executor(library)
        registry = self.registry  # after the usage checks: a refused command leaves no new state behind
        orchestrator = Orchestrator(library, registry, engine, parallel=self.options.parallel or DEFAULT_PARALLEL,
                                    reporter=reporter or reporter_for(quiet),
                                    engine_config=dict(self._engine_config), executor=executor)
        orchestrator.force_unlock = self.options.force_unlock
        orchestrator.force = self.options.force
        orchestrator.events = self.events(library)
        orchestrator.outputs = self.outputs(library)
        return orchestrator

    def environments(self, *, lenient: bool = False, reporter: Reporter | None = None,
                     quiet: bool = True) -> EphemeralEnvironments:
        """The service of environments made on demand, over :meth:`orchestrator`."""
        orchestrator = self.orchestrator(lenient=lenient, reporter=reporter, quiet=quiet)
        return EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator)

    def records(self, *, lenient: bool = True) -> EphemeralEnvironments:
        """The same service without an engine: to list and extend environments (registry-only changes)."""
        return EphemeralEnvironments(self.library(lenient=lenient), self.registry, None)

    # -- publishing ----------------------------------------------------------------------------------------------

    def _settings_env(self, library: ContractLibrary, env: str) -> str | None:
        """The environment whose settings apply to ``env``: itself, or the base of one made on demand."""
        if env in library.environments.environments:
            return env
        record = self.registry.environment(env)
        return record.base if record is not None and record.base in library.environments.environments else None

    def events(self, library: ContractLibrary) -> LifecycleEmitter | None:
        """Lifecycle events to each environment's bus; None when no environment names one."""
        if not any(wanted_bus(e) for e in library.environments.environments.values()):
            return None

        def place(env: str) -> tuple[str, str | None] | None:
            settings = self._settings_env(library, env)
            if settings is None:
                return None
            where = library.environments.environments[settings]
            bus = wanted_bus(where)
            return (bus, where.region) if bus else None

        return LifecycleEmitter(library.project, place)

    def outputs(self, library: ContractLibrary) -> OutputsPublisher | None:
        """Outputs to SSM for the environments that say ``publish: ssm``; None when none does."""
        if not any(wants_ssm(e) for e in library.environments.environments.values()):
            return None

        def place(env: str) -> tuple[bool, str | None]:
            settings = self._settings_env(library, env)
            if settings is None:
                return False, None
            where = library.environments.environments[settings]
            return wants_ssm(where), where.region

        return OutputsPublisher(library.project, place)

    # -- lifetime ------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the registry and stop what this workspace started."""
        while self._cleanups:
            self._cleanups.pop()()
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def open_workspace(options: WorkspaceOptions | None = None, *, announce: Callable[[str], None] | None = None,
                   **overrides: Any) -> Workspace:
    """A :class:`Workspace` from ``options`` and/or keyword overrides of its fields (``contracts``,
    ``state_dir``, ``registry``, ``engine``, ``parallel``, ``target``, ``force_unlock``...)."""
    known = {f.name for f in fields(WorkspaceOptions)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"open_workspace: unknown option {unknown[0]!r} (known: {', '.join(sorted(known))})")
    for key in ("contracts", "state_dir"):
        if overrides.get(key) is not None:
            overrides[key] = Path(overrides[key])
    return Workspace(replace(options or WorkspaceOptions(), **overrides), announce=announce)
