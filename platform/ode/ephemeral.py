"""Environments made on demand: per branch or pull request, partial, cloned from a long-lived base, with a TTL.

An ephemeral environment deploys the contexts asked for plus every context they need through deploy edges, except
the ``reuse`` ones (the network, the event bus...), whose outputs are read from the base environment's deployed
stacks instead. It is recorded in the registry with its base, owner and expiry; ``gc`` destroys the expired ones.

    from ode.ephemeral import EphemeralEnvironments

    envs = EphemeralEnvironments(library, registry, orchestrator)
    record, result = envs.create("pr-42", contexts=["orders"], ttl="8h")
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .clock import Clock, iso, parse_iso, utcnow
from .contracts import ContractLibrary, parse_duration
from .errors import OdeError, ProtectedEnvironmentError, UsageError
from .naming import check_env_name
from .registry import EnvironmentRecord, Registry

__all__ = ["EphemeralEnvironments", "GcReport", "ProtectedEnvironmentError", "is_expired", "record_dict"]

if TYPE_CHECKING:
    from .orchestrator import Orchestrator, RunResult


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

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "destroyed": [{**record_dict(rec), "result": result.to_dict()} for rec, result in self.destroyed],
            "failed": [{**record_dict(rec), "error": error} for rec, error in self.failed],
            "kept": [record_dict(rec) for rec in self.kept],
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

    def __init__(self, library: ContractLibrary, registry: Registry, orchestrator: Orchestrator,
                 clock: Clock = utcnow):
        self.library = library
        self.registry = registry
        self.orchestrator = orchestrator
        self.clock = clock

    # -- checks ------------------------------------------------------------------------------------------------

    def _policy_ttl(self, ttl: str | None) -> int:
        policy = self.library.environments.ephemeral
        text = ttl or (policy.ttl if policy else "8h")
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            raise UsageError(f"--ttl {text!r}: {exc}") from None
        limit_text = policy.max_ttl if policy else None
        if limit_text is not None and seconds > parse_duration(limit_text):
            raise UsageError(f"--ttl {text} is longer than ephemeral.max_ttl ({limit_text}) in environments.yaml")
        if seconds <= 0:
            raise UsageError(f"--ttl {text} must be longer than zero")
        return seconds

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
        has, the expiry moves to now + ``ttl``, and only what changed is redeployed.
        """
        self._check_new_name(name)
        seconds = self._policy_ttl(ttl)
        existing = self.registry.environment(name)
        if existing is not None and not existing.ephemeral:
            raise ProtectedEnvironmentError(f"{name!r} is a long-lived environment; choose another name")
        live = existing if existing is not None and existing.status != "destroyed" else None
        base_env = self._base(base or (live.base if live else None))
        if live is not None and live.base != base_env:
            raise UsageError(f"environment {name!r} was made from {live.base!r}, not {base_env!r}: destroy it first")
        policy = self.library.environments.ephemeral
        reused = list(reuse) if reuse is not None else list(policy.reuse if policy else [])
        for context in reused:
            if context not in self.library.contexts:
                raise UsageError(f"--reuse: context {context!r} does not exist")
        asked = list(contexts) if contexts is not None else None
        if asked is not None and live is not None and live.contexts is not None:
            asked = sorted({*live.contexts, *asked})
        elif live is not None and live.contexts is None:
            asked = None  # it already holds every context

        now = self.clock()
        record = EnvironmentRecord(
            name=name, base=base_env, ephemeral=True, owner=_owner(owner or (live.owner if live else None)),
            created_at=live.created_at if live else iso(now) or "", expires_at=iso(now + timedelta(seconds=seconds)),
            contexts=asked, reuse=reused, status="creating")
        self.registry.put_environment(record)
        try:
            result = self.orchestrator.up(name, asked, base_env=base_env, reuse=reused)
        except BaseException:
            self.registry.set_environment_status(name, "failed")
            raise
        status = "active" if result.ok else "failed"
        self.registry.set_environment_status(name, status)
        return replace(record, status=status), result

    def extend(self, name: str, ttl: str) -> EnvironmentRecord:
        """Move an environment's expiry to now + ``ttl`` (at most ``max_ttl``)."""
        seconds = self._policy_ttl(ttl)
        record = self.get(name)
        if record.status == "destroyed":
            raise UsageError(f"environment {name!r} is destroyed; create it again")
        updated = replace(record, expires_at=iso(self.clock() + timedelta(seconds=seconds)))
        self.registry.put_environment(updated)
        return updated

    def list(self, *, include_destroyed: bool = False) -> list[EnvironmentRecord]:
        """Every environment made on demand, soonest to expire first."""
        records = [r for r in self.registry.environments()
                   if r.ephemeral and (include_destroyed or r.status != "destroyed")]
        return sorted(records, key=lambda r: (r.expires_at or "", r.name))

    def destroy(self, name: str) -> RunResult:
        """Destroy an ephemeral environment's own stacks in reverse order; the base's stacks are never touched."""
        record = self.get(name)
        self.registry.set_environment_status(name, "destroying")
        try:
            result = self.orchestrator.destroy(name, base_env=record.base, reuse=record.reuse or ())
        except BaseException:
            self.registry.set_environment_status(name, "failed")
            raise
        self.registry.set_environment_status(name, "destroyed" if result.ok else "failed")
        return result

    def gc(self) -> GcReport:
        """Destroy every expired environment made on demand; go on past a failure and report it."""
        report = GcReport()
        now = self.clock()
        for record in self.list():
            if not is_expired(record, now):
                report.kept.append(record)
                continue
            try:
                result = self.destroy(record.name)
            except OdeError as exc:
                report.failed.append((record, str(exc)))
                continue
            if result.ok:
                report.destroyed.append((record, result))
            else:
                failed = [s for s in result.stacks if s.status == "failed"]
                report.failed.append((record, "; ".join(f"{s.stack}: {s.error}" for s in failed) or "failed"))
        return report
