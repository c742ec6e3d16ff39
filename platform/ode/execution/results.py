"""What a run of the orchestrator returns: how each stack ended (``up``, ``destroy``, ``status``, ``refresh``), or
what ``up`` would do (``plan``). Their ``to_dict()`` is the ``--json`` output of the commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..masking import mask
from ..status import PlanAction, RunStatus, StackStatus

if TYPE_CHECKING:
    from ..engines.protocol import StackResult


@dataclass
class StackOutcome:
    """How one stack ended in a run."""

    stack: str
    context: str
    status: StackStatus
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: frozenset[str] = frozenset()
    error: str | None = None
    #: Why it ran, or why not (``contract changed``, ``producer dev.payments failed``...).
    reason: str | None = None
    attempts: int = 0
    changes: dict[str, int] = field(default_factory=dict)
    #: Where its operation ran (``{"kind", "host", "pid"}``, a CodeBuild build's id...), and its full log.
    worker: dict[str, Any] | None = None
    log: str | None = None
    #: The engine's own result (resources, diffs), for the caller in this process; not part of ``to_dict()``.
    result: StackResult | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack, "context": self.context, "status": self.status, "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 6),
            "outputs": mask(self.outputs, self.secret_outputs), "error": self.error, "reason": self.reason,
            "attempts": self.attempts, "changes": self.changes, "worker": self.worker, "log": self.log,
        }


@dataclass
class RunResult:
    """The result of ``up``, ``destroy`` or ``status`` on one environment."""

    env: str
    engine: str
    operation: str
    stacks: list[StackOutcome] = field(default_factory=list)
    simulated: bool = False
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(s.status != StackStatus.FAILED for s in self.stacks)

    @property
    def exit_code(self) -> int:
        """0 when every stack is fine, 1 when one failed, 130 when the run was interrupted."""
        return 130 if self.interrupted else 0 if self.ok else 1

    def stack(self, context: str) -> StackOutcome:
        return next(s for s in self.stacks if s.context == context)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.stacks:
            out[s.status] = out.get(s.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"env": self.env, "engine": self.engine, "operation": self.operation, "simulated": self.simulated,
                "ok": self.ok, "interrupted": self.interrupted, "stacks": [s.to_dict() for s in self.stacks]}


@dataclass
class PlannedStack:
    stack: str
    context: str
    action: PlanAction
    reason: str
    producers: list[str] = field(default_factory=list)
    #: Each resource the preview saw, with its operation and changed properties; empty (never None) when the stack
    #: is unchanged or was not previewed.
    resources: list[dict[str, Any]] = field(default_factory=list)
    changes: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"stack": self.stack, "context": self.context, "action": self.action, "reason": self.reason,
                "producers": self.producers, "changes": self.changes, "resources": self.resources,
                "error": self.error}


@dataclass
class Plan:
    env: str
    engine: str
    operation: str
    stacks: list[PlannedStack] = field(default_factory=list)
    simulated: bool = False

    @property
    def ok(self) -> bool:
        return all(s.error is None for s in self.stacks)

    def to_dict(self) -> dict[str, Any]:
        return {"env": self.env, "engine": self.engine, "operation": self.operation, "simulated": self.simulated,
                "ok": self.ok, "order": [s.stack for s in self.stacks],
                "stacks": [s.to_dict() for s in self.stacks]}


def run_status(result: RunResult) -> RunStatus:
    """How a run with this result is recorded: interrupted, succeeded (every stack fine, none skipped), or failed."""
    if result.interrupted:
        return RunStatus.INTERRUPTED
    ok = result.ok and all(s.status != StackStatus.SKIPPED for s in result.stacks)
    return RunStatus.SUCCEEDED if ok else RunStatus.FAILED

