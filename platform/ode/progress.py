"""Progress of a run, as people see it: a live table of the stacks on a terminal, plain lines elsewhere.

Both render the typed events of :mod:`ode.execution.events`; :func:`reporter_for` picks one. By default they are
quiet: a line per stack event (running, then how it ended with its resources counted), the engine's warnings and
errors, never a resource's URN. ``verbose`` adds a line per resource step (its type and name) and every other line
the engine said. Colour follows :func:`ode.rendering.colour` (``NO_COLOR``, ``FORCE_COLOR``).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any

from .execution.events import (
    ACTIVE,
    FINISHED,
    RUNNING,
    WAITING,
    EngineMessage,
    NullReporter,
    Reporter,
    ReporterCalls,
    ResourceProgress,
    ResourceStep,
    RunEvent,
    RunFinished,
    RunInterrupted,
    RunStarted,
    StackChanged,
    resource_step,
)
from .rendering import colour, in_ci, resource_label, short_type, terminal, without_urns

__all__ = ["MAX_RESOURCE_ROWS", "RUNNING", "WAITING", "LineReporter", "LiveReporter", "NullReporter", "Reporter",
           "ResourceStep", "reporter_for", "resource_step"]

_STYLE = {"waiting": "dim", "running": "cyan", "succeeded": "green", "unchanged": "dim green", "destroyed": "green",
          "failed": "bold red", "skipped": "yellow", "interrupted": "yellow"}
#: The same states' colours for plain lines (click's names).
_FG = {"running": "cyan", "succeeded": "green", "unchanged": "green", "destroyed": "green", "failed": "red",
       "skipped": "yellow", "interrupted": "yellow"}

#: In-flight resources shown under a running stack in the live table.
MAX_RESOURCE_ROWS = 3

#: How an engine's own lines start when they must be seen without ``--verbose``: a warning, an error, a policy.
_NOTEWORTHY = ("error:", "warning:", "policy ")


def _change(event: RunEvent) -> tuple[str, str, str] | None:
    """(stack, state, detail) of an event that changes one row of the view; None for the others."""
    if isinstance(event, StackChanged):
        return event.stack, event.state, event.detail
    if isinstance(event, ResourceProgress | EngineMessage):
        return event.stack, RUNNING, without_urns(event.line)
    if isinstance(event, RunInterrupted):
        return f"{event.env}.*", "interrupted", f"waiting for {event.running} running stack(s) to finish"
    return None


def noteworthy(event: EngineMessage) -> bool:
    """Whether an engine's line is shown without ``--verbose``: its warnings, errors and policy findings."""
    return event.line.lstrip().lower().startswith(_NOTEWORTHY)


class _Tally:
    """What each stack's resources did in a run, counted from its resource steps (``10 created, 1 failed``)."""

    def __init__(self) -> None:
        self._done: dict[str, dict[str, str]] = {}

    def add(self, stack: str, step: ResourceStep) -> None:
        if step.verb in FINISHED:
            self._done.setdefault(stack, {})[f"{step.type}::{step.name}"] = step.verb

    def summary(self, stack: str) -> str:
        counts: dict[str, int] = {}
        for verb in self._done.get(stack, {}).values():
            counts[verb] = counts.get(verb, 0) + 1
        return ", ".join(f"{n} {verb}" for verb, n in sorted(counts.items()))


class LineReporter(ReporterCalls):
    """One line per change of a stack's state, for logs and CI (``12:00:01 dev.orders  running: new stack``), the
    stack's resources counted on the line that ends it; with ``verbose`` also a line per resource step and engine
    message. ``colour``: colour the states (default: :func:`ode.rendering.colour` of the stream)."""

    def __init__(self, stream: IO[str] | None = None, *, verbose: bool = False, colour: bool | None = None):
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self.colour = colour
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        self._tally = _Tally()
        self._said: set[tuple[str, str]] = set()

    def handle(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            n = len(event.stacks)
            self._write(f"{event.operation} {event.env}: {n} stack{'s' if n != 1 else ''}")
        elif isinstance(event, ResourceProgress):
            self._tally.add(event.stack, event.step)
            if self.verbose:
                self._write(f"{event.stack:<32}   {event.step.verb} "
                            f"{resource_label(event.step.type, event.step.name)}")
        elif isinstance(event, EngineMessage):
            line = without_urns(event.line)
            if self.verbose:
                self._write(f"{event.stack:<32}   {line}")
            elif noteworthy(event) and (event.stack, line) not in self._said:
                self._said.add((event.stack, line))  # a provider's warning repeated per resource is said once
                self._write(f"{event.stack:<32}   {line}")
        elif isinstance(event, StackChanged):
            self._stack(event)
        elif isinstance(event, RunInterrupted):
            self._write(f"{event.env + '.*':<32} {self._state('interrupted')}: waiting for {event.running} running "
                        "stack(s) to finish")

    def _stack(self, event: StackChanged) -> None:
        stack, state = event.stack, str(event.state)
        detail = without_urns(event.detail)
        if not self.verbose:
            detail = detail.splitlines()[0] if detail else ""  # the run's summary prints a failure in full
        if state == RUNNING and stack not in self._started:
            self._started[stack] = time.monotonic()
        took = ""
        if state not in (WAITING, RUNNING) and stack in self._started:
            took = f" ({time.monotonic() - self._started[stack]:.1f}s)"
        counted = self._tally.summary(stack) if state not in (WAITING, RUNNING) else ""
        text = "; ".join(part for part in (detail, counted) if part)
        self._write(f"{stack:<32} {self._state(state)}{took}{': ' + text if text else ''}")

    def _state(self, state: str) -> str:
        wanted = self.colour if self.colour is not None else colour(self.stream)
        if not wanted or state not in _FG:
            return state
        import click  # deferred: only when colour is wanted

        return click.style(state, fg=_FG[state])

    def _write(self, line: str) -> None:
        with self._lock:
            print(f"{time.strftime('%H:%M:%S')} {line}", file=self.stream, flush=True)


class LiveReporter(ReporterCalls):
    """A table of every stack with its state and duration, redrawn in place (rich) while the run goes on, with the
    last resources in flight under each running stack (all of them with ``verbose``). Without colour
    (``NO_COLOR``) it is drawn with no style at all."""

    def __init__(self, *, verbose: bool = False, stream: IO[str] | None = None) -> None:
        from rich.console import Console  # deferred: rich only where a person watches a terminal

        out = stream or sys.stderr
        wanted = colour(out)
        # color_system None: rich writes no style at all (not even bold), only the cursor moves of the live view
        self.console = Console(file=out, force_terminal=True, color_system="auto" if wanted else None,
                               no_color=not wanted, highlight=False)
        self.verbose = verbose
        self._lock = threading.Lock()
        self._rows: dict[str, list[object]] = {}  # stack -> [state, detail, started, ended]
        #: stack -> resource name -> its last step (resource-level progress of running stacks)
        self._steps: dict[str, dict[str, ResourceStep]] = {}
        self._live: object | None = None
        self._title = ""

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title=self._title, title_justify="left", box=None, pad_edge=False)
        for col in ("stack", "state", "time", ""):
            table.add_column(col)
        now = time.monotonic()
        with self._lock:
            for stack, (state, detail, started, ended) in self._rows.items():
                took = ""
                if isinstance(started, float):
                    took = f"{((ended if isinstance(ended, float) else now) - started):.1f}s"
                steps = self._steps.get(stack, {})
                if steps:
                    done = sum(1 for st in steps.values() if st.verb in FINISHED and st.verb != "failed")
                    failed = sum(1 for st in steps.values() if st.verb == "failed")
                    detail = f"{done} resource(s) done" + (f", {failed} failed" if failed else "")
                shown = str(detail).splitlines()[0] if detail else ""
                table.add_row(stack, f"[{_STYLE.get(str(state), '')}]{state}[/]", took, shown[:60])
                if state == RUNNING:
                    active = [st for st in steps.values() if st.verb in ACTIVE]
                    active = active if self.verbose else active[-MAX_RESOURCE_ROWS:]
                    for st in active:
                        table.add_row(f"  {st.name}"[:40], f"[cyan]{st.verb}[/]", "", short_type(st.type)[:60])
        return table

    def handle(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            self._start(event)
        elif isinstance(event, RunFinished):
            if self._live is not None:
                self._live.stop()  # type: ignore[attr-defined]
                self._live = None
        elif isinstance(event, EngineMessage) and noteworthy(event):
            self.console.print(f"{event.stack}: {without_urns(event.line)}", markup=False)  # above the live table
        else:
            change = _change(event)
            if change is not None:
                self._update(*change, step=event.step if isinstance(event, ResourceProgress) else None)

    def _start(self, event: RunStarted) -> None:
        from rich.live import Live

        self._title = f"{event.operation} {event.env}"
        self._rows = {s: [WAITING, "", None, None] for s in event.stacks}
        live = Live(get_renderable=self._table,  # type: ignore[arg-type]
                    console=self.console, refresh_per_second=8, transient=False)
        live.start()
        self._live = live

    def _update(self, stack: str, state: str, detail: str, step: ResourceStep | None) -> None:
        with self._lock:
            row = self._rows.setdefault(stack, [WAITING, "", None, None])
            if state == RUNNING and row[2] is None:
                row[2] = time.monotonic()
            if state not in (WAITING, RUNNING) and isinstance(row[2], float):
                row[3] = time.monotonic()
            row[0], row[1] = state, detail
            if step is not None:
                self._steps.setdefault(stack, {})[step.name] = step


def reporter_for(quiet: bool = False, *, verbose: bool = False) -> Reporter:
    """A live table where a person watches a terminal (not on CI), plain lines elsewhere, nothing when ``quiet``;
    ``verbose``: resource by resource."""
    if quiet:
        return NullReporter()
    if terminal(sys.stderr) and not in_ci():
        return LiveReporter(verbose=verbose)
    return LineReporter(verbose=verbose)
