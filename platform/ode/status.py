"""Statuses, one enum each: what a stack, a run, an environment, a drift check and a plan step can be.

They are ``str`` enums, so that JSON output, the registry's rows and comparisons with the plain strings stored by
earlier versions keep working unchanged (``StackStatus.FAILED == "failed"``).
"""

from __future__ import annotations

from enum import StrEnum


class StackStatus(StrEnum):
    """How a stack stands: in the registry, in a run's result, in the progress a person watches."""

    WAITING = "waiting"
    RUNNING = "running"
    DESTROYING = "destroying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNCHANGED = "unchanged"
    DESTROYED = "destroyed"
    #: The registry holds a stack of a context the library no longer has: reported, left alone, destroyable.
    ORPHANED = "orphaned"


#: A stack that ended this way does not hold its consumers back.
GOOD = frozenset({StackStatus.SUCCEEDED, StackStatus.UNCHANGED, StackStatus.DESTROYED})


class RunStatus(StrEnum):
    """How a run (``up``, ``destroy``, ``drift``...) is recorded in the registry."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    #: Left running by a process that is gone; its lock was broken by a later run.
    ABANDONED = "abandoned"


class EnvironmentStatus(StrEnum):
    """Where an environment stands in its life."""

    ACTIVE = "active"
    CREATING = "creating"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"
    FAILED = "failed"


class PlanAction(StrEnum):
    """What ``up`` would do with a stack."""

    DEPLOY = "deploy"
    UNCHANGED = "unchanged"
    ORPHANED = "orphaned"


class DriftStatus(StrEnum):
    """How a stack came out of a drift check."""

    CLEAN = "clean"
    DRIFTED = "drifted"
    UNCHECKED = "unchecked"


class HealStatus(StrEnum):
    """How the heal of a drifted stack ended."""

    HEALED = "healed"
    NOT_HEALED = "not healed"
