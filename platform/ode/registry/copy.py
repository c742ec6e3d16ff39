"""Copying a registry into another (``ode registry copy --to URL``): a laptop's SQLite file into a team's table."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from ..status import StackStatus
from .errors import CopyLockedError
from .protocol import RegistryBackend
from .records import EnvironmentRecord, LockInfo, RegistryIdentity, StackRecord, lock_info_of


@dataclass
class CopyReport:
    """What :func:`copy` moved."""

    environments: int = 0
    stacks: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"environments": self.environments, "stacks": self.stacks}


def identity_of(registry: RegistryBackend) -> RegistryIdentity | None:
    """What store ``registry`` is, or None for a backend that cannot say (a package's own, written before
    identities)."""
    identify = getattr(registry, "identity", None)
    return identify() if callable(identify) else None


def same_store(a: RegistryBackend, b: RegistryBackend) -> bool:
    """Whether ``a`` and ``b`` are one store however they were spelled (one object, one SQLite file, one table)."""
    if a is b:
        return True
    first, second = identity_of(a), identity_of(b)
    return first is not None and second is not None and first.same_store(second)


def live_lock(registry: RegistryBackend, env: str) -> LockInfo | None:
    """The lock on ``env`` when a run may still be working under it; None when free, or held by a process that is
    gone or a lease that ran out. A backend without ``lock_info`` is taken at its word (``lock_holder``)."""
    info = lock_info_of(registry, env)
    return info if info is not None and info.live else None


def copy(src: RegistryBackend, dst: RegistryBackend, *, overwrite: bool = False) -> CopyReport:
    """Copy every environment and stack of ``src`` into ``dst`` (for ``ode registry copy --to URL``).

    Refused, before anything is written:

    - when ``dst`` is ``src`` under another spelling (:func:`same_store`): replacing each environment's records
      with themselves would first forget every stack (a :class:`UsageError`);
    - while a live run holds the lock of one of the environments in ``src`` (its stacks are changing) or in ``dst``
      (its records would be replaced under it): :class:`CopyLockedError`, exit status 3. A lock whose process is
      gone or whose lease ran out holds nothing;
    - unless ``overwrite``, when ``dst`` already knows one of the environments.

    Each environment's lock in ``dst`` is looked at again just before its records are replaced. Run history and
    locks stay behind: the copy starts with no run.
    """
    if same_store(src, dst):
        where = identity_of(src)
        raise UsageError("registry copy: --to names the registry being copied"
                         + (f" ({where.kind} {where.where})" if where is not None else "") + "; nothing was copied")
    envs = refuse_live_source(src)
    for env in envs:
        _refuse_live("destination", dst, env.name)
    if not overwrite:
        clash = [e.name for e in envs if dst.environment(e.name) is not None]
        if clash:
            raise UsageError(f"registry copy: the destination already has {', '.join(clash)}; use --overwrite to "
                             "replace them")
    report = CopyReport()
    for env in envs:
        _refuse_live("destination", dst, env.name)  # a run may have started there since the first look
        dst.put_environment(env)
        report.environments += 1
        for old in dst.stacks(env.name):
            dst.forget_stack(env.name, old.context)
        for rec in src.stacks(env.name):
            _copy_stack(rec, dst)
            report.stacks += 1
    return report


def refuse_live_source(src: RegistryBackend) -> list[EnvironmentRecord]:
    """The environments of ``src``, or :class:`CopyLockedError` when a live run holds one of them (checked before a
    destination is made for them)."""
    envs = src.environments()
    for env in envs:
        _refuse_live("source", src, env.name)
    return envs


def _refuse_live(side: str, registry: RegistryBackend, env: str) -> None:
    lock = live_lock(registry, env)
    if lock is not None:
        raise CopyLockedError(side, env, lock.holder, lock.command, lock.since)


def _copy_stack(rec: StackRecord, dst: RegistryBackend) -> None:
    """Rebuild ``rec`` in ``dst`` with the protocol's own writes (so any backend can be a destination)."""
    # Outputs are laid down by a success first: a failed or interrupted stack keeps its last outputs.
    dst.record_success(rec.env, rec.context, fingerprint=rec.fingerprint or "", inputs=rec.inputs,
                       outputs=rec.outputs, secret_outputs=rec.secret_outputs, engine=rec.engine or "",
                       simulated=rec.simulated, started_at=rec.started_at or "", finished_at=rec.finished_at or "",
                       duration_s=rec.duration_s or 0.0)
    if rec.status in (StackStatus.RUNNING, StackStatus.DESTROYING):
        dst.mark_running(rec.env, rec.context, engine=rec.engine or "", started_at=rec.started_at or "",
                         run_id=None, operation="destroy" if rec.status == StackStatus.DESTROYING else "up")
    elif rec.status == StackStatus.FAILED:
        dst.record_failure(rec.env, rec.context, error=rec.error or "", finished_at=rec.finished_at or "",
                           duration_s=rec.duration_s or 0.0)
