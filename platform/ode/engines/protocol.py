"""What every engine promises: the operations it offers on one stack (given a :class:`~ode.program.StackSpec`), the
results it returns, the errors it raises."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ..errors import OdeError
from ..program import StackSpec, Upstream

__all__ = ["CliNotFoundError", "ConcurrentUpdateError", "Engine", "EngineError", "Operation", "ProgramError",
           "ProgressCallback", "PropertyChange", "ResourceChange", "StackNotFoundError", "StackResult", "StackSpec",
           "Upstream"]

Operation = Literal["preview", "up", "destroy", "refresh"]


@dataclass
class ResourceChange:
    """One resource of a stack as an engine saw it."""

    type: str
    name: str
    parent: str | None
    inputs: dict[str, Any]
    op: Literal["create", "update", "delete", "same", "replace"] = "same"
    #: Names of the resources it depends on: explicit ``depends_on`` and those its inputs come from.
    dependencies: list[str] = field(default_factory=list)
    #: The inputs with secret values in place, for in-process policy rules only: never written or printed.
    checked_inputs: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    #: The id and computed outputs where the engine knows them in memory (the simulated engine's mocks), for
    #: in-process policy rules that follow references between resources: never written or printed.
    outputs: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    #: For an update or a replacement (or a drifted resource): each changed property, secrets masked.
    diff: list[PropertyChange] = field(default_factory=list)
    #: The resource's URN, where the engine knows it (the pulumi engine's events carry it).
    urn: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The resource as a plan shows it (inputs are already plain: secrets masked, assets described)."""
        return {"type": self.type, "name": self.name, "parent": self.parent, "inputs": self.inputs, "op": self.op,
                "dependencies": list(self.dependencies), "urn": self.urn, "diff": [d.to_dict() for d in self.diff]}


@dataclass(frozen=True)
class PropertyChange:
    """One changed property of a resource: its path (``tags.team``, ``environment.variables.MODE``), its value
    before and after (``[secret]`` for a secret one, None where it did not exist) and whether the change replaces
    the resource."""

    path: str
    old: Any
    new: Any
    replaces: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "old": self.old, "new": self.new, "replaces": self.replaces}


@dataclass
class StackResult:
    """What one engine operation on one stack did. ``simulated`` is True when nothing was really deployed."""

    stack: str
    operation: Operation
    outputs: dict[str, Any] = field(default_factory=dict)
    #: Output names whose values are secret (they are never written anywhere in plain text).
    secret_outputs: frozenset[str] = frozenset()
    resources: list[ResourceChange] = field(default_factory=list)
    changes: dict[str, int] = field(default_factory=dict)
    simulated: bool = False
    duration_s: float = 0.0
    #: Policy violations the engine reported (``{"policy", "pack", "level", "message", "urn"}``).
    policy_violations: list[dict[str, Any]] = field(default_factory=list)
    #: Where the operation ran, as the executor saw it (``{"kind": "dask", "host", "pid", "address"}``, a CodeBuild
    #: build's id...); None when no executor said.
    worker: dict[str, Any] | None = None
    #: Where the operation's full log is kept (a file, a CloudWatch Logs link); None when nowhere.
    log: str | None = None


ProgressCallback = Callable[[str, str], None]
"""Called with (stack name, one line of progress) while an engine works."""


@runtime_checkable
class Engine(Protocol):
    """One way of running stacks. Implementations must be safe to call from several threads at once."""

    name: str

    def preview(self, spec: StackSpec, progress: ProgressCallback | None = None) -> StackResult: ...

    def up(self, spec: StackSpec, progress: ProgressCallback | None = None) -> StackResult: ...

    def destroy(self, spec: StackSpec, progress: ProgressCallback | None = None) -> StackResult: ...

    def refresh(self, spec: StackSpec, progress: ProgressCallback | None = None, *,
                preview_only: bool = False) -> StackResult:
        """Read the stack's resources back from the cloud into its state; with ``preview_only``, change nothing and
        return the differences (drift) as resources with ``op="update"`` (or ``delete``) and their ``diff``."""
        ...

    def outputs(self, spec: StackSpec) -> dict[str, Any]: ...


class EngineError(OdeError):
    """An engine operation failed; ``stack`` names the stack, ``detail`` carries the engine's own words."""

    #: Worth trying again after a pause (a lock held by a run that just ended, a throttled API).
    transient = False

    def __init__(self, stack: str, message: str, detail: str = ""):
        self.stack = stack
        self.detail = detail
        super().__init__(f"{stack}: {message}")


class ConcurrentUpdateError(EngineError):
    transient = True


class StackNotFoundError(EngineError):
    pass


class ProgramError(EngineError):
    """The stack's program itself failed (a bad setting, a component that raised)."""


class CliNotFoundError(OdeError):
    """No ``pulumi`` executable could be found or installed."""
