"""Environments made on demand: per branch or pull request, partial, cloned from a long-lived base, with a TTL.

An ephemeral environment deploys the contexts asked for plus every context they need through deploy edges, except
the ``reuse`` ones (the network, the event bus...), whose outputs are read from the base environment's deployed
stacks instead. It is recorded in the registry with its base, owner and expiry; ``gc`` destroys the expired ones.

    from ode.execution.ephemeral import EphemeralEnvironments

    envs = EphemeralEnvironments(library, registry, orchestrator)
    record, result = envs.create("pr-42", contexts=["orders"], ttl="8h")
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ..clock import Clock, iso, parse_iso, utcnow
from ..contracts import ContractLibrary, parse_duration
from ..errors import NothingToDeployError, OdeError, ProtectedEnvironmentError, UsageError
from ..naming import check_env_name
from ..publishing.lifecycle_events import environment_created, environment_expired
from ..registry.errors import LeaseLostError, LockedError
from ..registry.protocol import RegistryBackend
from ..registry.records import EnvironmentRecord
from ..status import EnvironmentStatus, RunStatus, StackStatus
from .orchestrator import Orchestrator
from .planning import environment_tags
from .results import RunResult

__all__ = ["EphemeralEnvironments", "GcReport", "ProtectedEnvironmentError", "is_expired", "record_dict"]


def _owner(owner: str | None) -> str:
    if owner:
        return owner
    for var in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "USER"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "unknown"


@dataclass
class _Held:
    """A registry-only run holding an environment's lock; ``status`` is what it is recorded with."""

    id: int
    status: RunStatus = RunStatus.FAILED


def _quietly(write: Any, *args: Any) -> None:
    """A registry write made while another error is on its way out: if it fails too, the first error is the one
    the user must see."""
    try:
        write(*args)
    except Exception:  # noqa: BLE001 - see the docstring
        pass


def _run_status(result: RunResult) -> RunStatus:
    """How a create or destroy of an environment made on demand is recorded (skipped stacks do not fail it)."""
    return RunStatus.SUCCEEDED if result.ok else RunStatus.INTERRUPTED if result.interrupted else RunStatus.FAILED


def is_expired(record: EnvironmentRecord, now: datetime) -> bool:
    """Whether an ephemeral environment's time is up."""
    expires = parse_iso(record.expires_at)
    return expires is not None and expires <= now


@dataclass
class GcReport:
    """What one ``gc`` pass did: each expired environment with its destroy result, or the error that stopped it."""

    destroyed: list[tuple[EnvironmentRecord, RunResult]] = field(default_factory=list)
    failed: list[tuple[EnvironmentRecord, str]] = field(default_factory=list)
    kept: list[EnvironmentRecord] = field(default_factory=list)
    #: Expired, but another run held its lock: left for the next pass.
    busy: list[tuple[EnvironmentRecord, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "destroyed": [{**record_dict(rec), "result": result.to_dict()} for rec, result in self.destroyed],
            "failed": [{**record_dict(rec), "error": error} for rec, error in self.failed],
            "kept": [record_dict(rec) for rec in self.kept],
            "busy": [{**record_dict(rec), "error": error} for rec, error in self.busy],
        }


def record_dict(record: EnvironmentRecord) -> dict[str, Any]:
    """An environment record as JSON: name, base, owner, contexts, reuse, status, created and expiry times."""
    return {
        "name": record.name,
        "base": record.base,
        "owner": record.owner,
        "contexts": list(record.contexts or []),
        "reuse": list(record.reuse or []),
        "status": record.status,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
    }


class EphemeralEnvironments:
    """Create, extend, list, destroy and collect the environments made on demand.

    Every deployment goes through ``orchestrator`` (so ordering, locking, incremental deploys and failure isolation
    are the same as ``ode up``); ``clock`` decides what is expired, so tests can move time.
    """

    def __init__(self, library: ContractLibrary, registry: RegistryBackend, orchestrator: Orchestrator | None,
                 clock: Clock = utcnow):
        self.library = library
        self.registry = registry
        self.orchestrator = orchestrator
        self.clock = clock

    def _orchestrator(self) -> Orchestrator:
        if self.orchestrator is None:
            raise UsageError("this service was opened without an orchestrator: it can list and extend, not deploy")
        return self.orchestrator

    # -- checks ------------------------------------------------------------------------------------------------

    def _policy_ttl(self, ttl: str | None) -> int:
        policy = self.library.environments.ephemeral
        text = ttl or (policy.ttl if policy else "8h")
        try:
            seconds = parse_duration(text)
        except (ValueError, OverflowError) as exc:
            raise UsageError(f"--ttl {text!r}: {exc}") from None
        limit_text = policy.max_ttl if policy else None
        if limit_text is not None:
            try:
                limit = parse_duration(limit_text)
            except (ValueError, OverflowError) as exc:
                raise UsageError(f"ephemeral.max_ttl {limit_text!r} in environments.yaml: {exc}") from None
            if seconds > limit:
                raise UsageError(f"--ttl {text} is longer than ephemeral.max_ttl ({limit_text}) in "
                                 "environments.yaml")
        if seconds <= 0:
            raise UsageError(f"--ttl {text} must be longer than zero")
        self._expiry(seconds, text)  # a TTL past the calendar's end is a usage mistake, found before any write
        return seconds

    def _expiry(self, seconds: int, text: str | None = None) -> str:
        """The ISO time ``seconds`` from now; a :class:`UsageError` when that is past what a date can hold."""
        try:
            return iso(self.clock() + timedelta(seconds=seconds)) or ""
        except (OverflowError, ValueError):
            raise UsageError(f"--ttl {text or seconds}: too long (the expiry would be past the year 9999)") from None

    def _check_new_name(self, name: str) -> None:
        check_env_name(name)
        if name in self.library.environments.environments:
            raise ProtectedEnvironmentError(
                f"{name!r} is a long-lived environment of environments.yaml, not one made on demand: "
                "choose another name")

    def _base(self, base: str | None) -> str:
        policy = self.library.environments.ephemeral
        chosen = base or (policy.base if policy else None)
        if chosen is None:
            raise UsageError("no base environment: pass --base or set ephemeral.base in environments.yaml")
        self.library.environment(chosen)  # UnknownEnvironmentError names the known ones
        return chosen

    def get(self, name: str) -> EnvironmentRecord:
        """The record of an ephemeral environment; a clear error when there is none."""
        record = self.registry.environment(name)
        if record is None or not record.ephemeral:
            if name in self.library.environments.environments:
                raise ProtectedEnvironmentError(
                    f"{name!r} is a long-lived environment, not one made on demand (use `ode destroy --env {name}`)")
            raise UsageError(f"no environment made on demand is named {name!r} (see `ode env list`)")
        return record

    # -- operations --------------------------------------------------------------------------------------------

    def create(self, name: str, *, base: str | None = None, contexts: Iterable[str] | None = None,
               ttl: str | None = None, reuse: Iterable[str] | None = None, owner: str | None = None,
               ) -> tuple[EnvironmentRecord, RunResult]:
        """Record the environment and deploy the asked-for contexts and what they need (minus ``reuse``).

        Creating an environment that exists already updates it: the contexts asked for are added to the ones it
        has, its expiry becomes the later of the one it has (which ``extend`` may have moved) and now + ``ttl``,
        and only what changed is redeployed. Everything is checked and the environment's lock taken before its
        record is written, so a create that cannot start (a mistake, a lock held by another run) changes nothing.
        Asking only for contexts that are reused from the base is a :class:`NothingToDeployError`.
        """
        self._check_new_name(name)
        seconds = self._policy_ttl(ttl)
        existing = self.registry.environment(name)
        if existing is not None and not existing.ephemeral:
            raise ProtectedEnvironmentError(f"{name!r} is a long-lived environment; choose another name")
        live = existing if existing is not None and existing.status != EnvironmentStatus.DESTROYED else None
        base_env = self._base(base or (live.base if live else None))
        if live is not None and live.base != base_env:
            raise UsageError(f"environment {name!r} was made from {live.base!r}, not {base_env!r}: destroy it first")
        policy = self.library.environments.ephemeral
        reused = list(reuse) if reuse is not None else list(policy.reuse if policy else [])
        for context in reused:
            if context not in self.library.contexts:
                raise UsageError(f"--reuse: context {context!r} does not exist")
        asked = list(contexts) if contexts is not None else None
        if asked is not None and not asked:
            raise UsageError("--contexts names no context")
        orchestrator = self._orchestrator()
        own = orchestrator.graph(name, asked, base_env=base_env, reuse=reused).contexts  # checks the names
        if not own:
            raise NothingToDeployError(
                f"nothing to deploy in {name}: {', '.join(asked or sorted(self.library.contexts))} "
                f"{'is' if asked and len(asked) == 1 else 'are all'} reused from {base_env} (--reuse); leave "
                "them out of --reuse to deploy them in the new environment")
        orchestrator.refuse_rehearsal(name, own)  # before the record is written

        with orchestrator.hold(name, "env create") as run:
            # Read again under the lock: another run may have extended or changed the environment meanwhile.
            current = self.registry.environment(name)
            live = (current if current is not None and current.ephemeral
                    and current.status != EnvironmentStatus.DESTROYED else None)
            if asked is not None and live is not None and live.contexts is not None:
                asked = sorted({*live.contexts, *asked})
            elif live is not None and live.contexts is None:
                asked = None  # it already holds every context
            expires = self._expiry(seconds, ttl)
            if live is not None and live.expires_at and live.expires_at > expires:
                expires = live.expires_at  # never shorten a TTL that `env extend` moved
            record = EnvironmentRecord(
                name=name, base=base_env, ephemeral=True, owner=_owner(owner or (live.owner if live else None)),
                created_at=live.created_at if live else iso(self.clock()) or "", expires_at=expires,
                contexts=asked, reuse=reused, status=EnvironmentStatus.CREATING)
            self.registry.put_environment(record)
            orchestrator.tags[name] = environment_tags(record)  # the expiry as of this deploy
            try:
                result = orchestrator.up(name, asked, base_env=base_env, reuse=reused, run=run)
            except BaseException:
                # Keep what was there: a live environment that could not be updated is still what it was.
                _quietly(self.registry.put_environment,
                         live if live is not None else replace(record, status=EnvironmentStatus.FAILED))
                raise
            run.status = _run_status(result)
            status = EnvironmentStatus.ACTIVE if result.ok else EnvironmentStatus.FAILED
            self.registry.set_environment_status(name, status)
        if orchestrator.events is not None and not result.interrupted:
            orchestrator.events.emit(*environment_created(
                name, base=base_env, ephemeral=True, owner=record.owner, expires_at=record.expires_at,
                contexts=record.contexts, reuse=record.reuse, ok=result.ok, simulated=orchestrator.simulated))
        return replace(record, status=status), result

    def extend(self, name: str, ttl: str) -> EnvironmentRecord:
        """Move an environment's expiry to now + ``ttl`` (at most ``max_ttl``), under its lock: an environment
        that ``gc`` or ``env destroy`` is destroying at that moment is not extended (:class:`LockedError`)."""
        seconds = self._policy_ttl(ttl)
        self.get(name)
        with self.registry_lock(name, "env extend") as run:
            record = self.get(name)
            if record.status == EnvironmentStatus.DESTROYED:
                raise UsageError(f"environment {name!r} is destroyed; create it again")
            updated = replace(record, expires_at=self._expiry(seconds, ttl))
            self.registry.put_environment(updated)
            run.status = RunStatus.SUCCEEDED
        return updated

    @contextmanager
    def registry_lock(self, name: str, command: str) -> Iterator[_Held]:
        """Hold ``name``'s lock for a registry-only change (no engine involved)."""
        held = _Held(self.registry.begin_run(name, command, "registry"))
        try:
            yield held
        finally:
            try:
                self.registry.end_run(held.id, name, held.status)
            except OdeError:
                if held.status == RunStatus.SUCCEEDED:
                    raise

    def list(self, *, include_destroyed: bool = False) -> list[EnvironmentRecord]:
        """Every environment made on demand, soonest to expire first."""
        records = [r for r in self.registry.environments()
                   if r.ephemeral and (include_destroyed or r.status != EnvironmentStatus.DESTROYED)]
        return sorted(records, key=lambda r: (r.expires_at or "", r.name))

    def destroy(self, name: str) -> RunResult:
        """Destroy an ephemeral environment's own stacks in reverse order; the base's stacks are never touched.
        The environment's lock is taken before its record is read and changed."""
        result = self._destroy(name, only_if_expired=False)
        assert result is not None
        return result

    def _destroy(self, name: str, *, only_if_expired: bool) -> RunResult | None:
        """:meth:`destroy`; with ``only_if_expired`` (``gc``), an environment whose expiry moved before its lock
        was taken is left alone and None returned."""
        self.get(name)
        orchestrator = self._orchestrator()
        orchestrator.refuse_rehearsal(name, [s.context for s in self.registry.stacks(name)])
        with orchestrator.hold(name, "env destroy") as run:
            record = self.get(name)
            if only_if_expired and not is_expired(record, self.clock()):
                run.status = RunStatus.SUCCEEDED
                return None
            if record.status == EnvironmentStatus.DESTROYED and not self.registry.stacks(name):
                # Destroyed already (a second `down` of a closed pull request): nothing to do, and that is fine.
                run.status = RunStatus.SUCCEEDED
                return RunResult(env=name, engine=orchestrator.engine.name, operation="destroy",
                                 simulated=orchestrator.simulated)
            if only_if_expired and orchestrator.events is not None:
                orchestrator.events.emit(*environment_expired(name, base=record.base, owner=record.owner,
                                                              expires_at=record.expires_at,
                                                              simulated=orchestrator.simulated))
            self.registry.set_environment_status(name, EnvironmentStatus.DESTROYING)
            try:
                result = orchestrator.destroy(name, base_env=record.base, reuse=record.reuse or (), run=run)
            except BaseException:
                _quietly(self.registry.set_environment_status, name, EnvironmentStatus.FAILED)
                raise
            run.status = _run_status(result)
            self.registry.set_environment_status(name, EnvironmentStatus.DESTROYED if result.ok
                                                 else EnvironmentStatus.FAILED)
        return result

    def gc(self) -> GcReport:
        """Destroy every expired environment made on demand; go on past a failure and report it. Each one's
        expiry is checked again under its lock (an environment extended meanwhile is kept); one that another run
        holds is kept for the next pass."""
        report = GcReport()
        now = self.clock()
        for record in self.list():
            if not is_expired(record, now):
                report.kept.append(record)
                continue
            try:
                result = self._destroy(record.name, only_if_expired=True)
            except (LockedError, LeaseLostError) as exc:  # another run holds it, or took it over meanwhile
                report.busy.append((record, str(exc)))
                continue
            except OdeError as exc:
                report.failed.append((record, str(exc)))
                continue
            if result is None:
                report.kept.append(self.registry.environment(record.name) or record)
                continue
            if result.ok:
                report.destroyed.append((record, result))
            else:
                failed = [s for s in result.stacks if s.status == StackStatus.FAILED]
                report.failed.append((record, "; ".join(f"{s.stack}: {s.error}" for s in failed) or "failed"))
        return report
