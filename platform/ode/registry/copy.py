"""Copying a registry into another (``ode registry copy --to URL``): a laptop's SQLite file into a team's table."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from ..status import StackStatus
from .protocol import RegistryBackend
from .records import StackRecord


@dataclass
class CopyReport:
    """What :func:`copy` moved."""

    environments: int = 0
    stacks: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"environments": self.environments, "stacks": self.stacks}


def copy(src: RegistryBackend, dst: RegistryBackend, *, overwrite: bool = False) -> CopyReport:
    """Copy every environment and stack of ``src`` into ``dst`` (for ``ode registry copy --to URL``).

    Refused while a run holds a lock in ``src`` (its stacks are changing), and, unless ``overwrite``, when ``dst``
    already knows one of the environments. Run history and locks stay behind: the copy starts with no run.
    """
    envs = src.environments()
    locked = [e.name for e in envs if src.lock_holder(e.name)]
    if locked:
        raise UsageError(f"registry copy: {', '.join(locked)} locked by a running `ode` (holder: "
                         f"{src.lock_holder(locked[0])}); wait for it to finish")
    if not overwrite:
        clash = [e.name for e in envs if dst.environment(e.name) is not None]
        if clash:
            raise UsageError(f"registry copy: the destination already has {', '.join(clash)}; use --overwrite to "
                             "replace them")
    report = CopyReport()
    for env in envs:
        dst.put_environment(env)
        report.environments += 1
        for old in dst.stacks(env.name):
            dst.forget_stack(env.name, old.context)
        for rec in src.stacks(env.name):
            _copy_stack(rec, dst)
            report.stacks += 1
    return report


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
