"""Progress of a run as typed events: the orchestrator says what happened, reporters (:mod:`ode.progress`) render it.

An engine reports progress as lines (``creating urn:pulumi:...``); each line is read once, where it arrives
(:func:`engine_line`), into a :class:`ResourceProgress` or an :class:`EngineMessage`. Reporters never parse text.

    class Counting:
        def handle(self, event: RunEvent) -> None:
            if isinstance(event, StackChanged) and event.state == "failed": ...

A reporter written for the older ``start``/``update``/``finish`` calls still works: :func:`as_reporter` adapts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ..status import StackStatus

#: States a stack goes through in a run, as shown.
WAITING, RUNNING = StackStatus.WAITING, StackStatus.RUNNING

#: Verbs the engines put before a resource's URN in a progress line (``creating urn:pulumi:...``).
ACTIVE = ("creating", "updating", "deleting", "replacing")
FINISHED = ("created", "updated", "deleted", "replaced", "failed")


class ResourceStep(NamedTuple):
    """One resource's step as an engine reported it."""

    verb: str
    name: str
    type: str


def resource_step(line: str) -> ResourceStep | None:
    """The resource step a progress line reports (``creating urn:pulumi:dev.orders::shop::aws:s3/bucket:Bucket::files``
    -> ``("creating", "files", "aws:s3/bucket:Bucket")``), or None for any other line."""
    verb, _, rest = line.partition(" ")
    if verb not in ACTIVE + FINISHED or not rest.startswith("urn:"):
        return None
    parts = rest.strip().split("::")
    if len(parts) < 4:
        return None
    return ResourceStep(verb, parts[-1], parts[-2].split("$")[-1])


@dataclass(frozen=True)
class RunStarted:
    """A run of ``operation`` on ``env`` starts, over these stacks (in priority order)."""

    env: str
    operation: str
    stacks: tuple[str, ...]


@dataclass(frozen=True)
class StackChanged:
    """A stack's state changed (running, succeeded, failed, skipped...), with why or what went wrong."""

    stack: str
    state: str
    detail: str = ""


@dataclass(frozen=True)
class ResourceProgress:
    """A running stack's engine reported a step of one of its resources; ``line`` is the engine's own words."""

    stack: str
    step: ResourceStep
    line: str


@dataclass(frozen=True)
class EngineMessage:
    """Any other line a running stack's engine reported."""

    stack: str
    line: str


@dataclass(frozen=True)
class RunInterrupted:
    """Ctrl-C or SIGTERM: nothing new starts; ``running`` stacks are let finish."""

    env: str
    running: int


@dataclass(frozen=True)
class RunFinished:
    """The run is over (however it ended)."""

    env: str


RunEvent = RunStarted | StackChanged | ResourceProgress | EngineMessage | RunInterrupted | RunFinished


def engine_line(stack: str, line: str) -> ResourceProgress | EngineMessage:
    """One progress line of ``stack``'s engine as an event: a resource's step, or a message."""
    step = resource_step(line)
    return EngineMessage(stack, line) if step is None else ResourceProgress(stack, step, line)


@runtime_checkable
class Reporter(Protocol):
    """What receives a run's events (the orchestrator never prints by itself, so ``import ode`` users choose)."""

    def handle(self, event: RunEvent) -> None: ...


class ReporterCalls:
    """The older calls (``start``, ``update``, ``finish``) on a reporter that handles events, for callers that still
    speak in strings: ``update`` reads a running stack's detail as an engine line."""

    def handle(self, event: RunEvent) -> None:
        raise NotImplementedError

    def start(self, env: str, operation: str, stacks: list[str]) -> None:
        self.handle(RunStarted(env, operation, tuple(stacks)))

    def update(self, stack: str, state: str, detail: str = "") -> None:
        self.handle(engine_line(stack, detail) if state == RUNNING and resource_step(detail) else
                    StackChanged(stack, state, detail))

    def finish(self, env: str = "") -> None:
        self.handle(RunFinished(env))


class NullReporter(ReporterCalls):
    """Says nothing (the library's default)."""

    def handle(self, event: RunEvent) -> None:
        pass


class _CallsAdapter:
    """A reporter with only ``start``/``update``/``finish``, fed from events."""

    def __init__(self, calls: Any):
        self.calls = calls

    def handle(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            self.calls.start(event.env, event.operation, list(event.stacks))
        elif isinstance(event, StackChanged):
            self.calls.update(event.stack, event.state, event.detail)
        elif isinstance(event, ResourceProgress | EngineMessage):
            self.calls.update(event.stack, RUNNING, event.line)
        elif isinstance(event, RunInterrupted):
            self.calls.update(f"{event.env}.*", "interrupted",
                              f"waiting for {event.running} running stack(s) to finish")
        elif isinstance(event, RunFinished):
            self.calls.finish()


def as_reporter(reporter: Any) -> Reporter:
    """``reporter`` itself when it handles events, else an adapter feeding its ``start``/``update``/``finish``."""
    if reporter is None:
        return NullReporter()
    if callable(getattr(reporter, "handle", None)):
        return reporter  # type: ignore[no-any-return]
    return _CallsAdapter(reporter)
