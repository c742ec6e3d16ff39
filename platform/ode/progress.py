"""Progress of a run, as people see it: a live table of the stacks on a terminal, plain lines elsewhere.

Both render the typed events of :mod:`ode.execution.events`; :func:`reporter_for` picks one.
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

__all__ = ["MAX_RESOURCE_ROWS", "RUNNING", "WAITING", "LineReporter", "LiveReporter", "NullReporter", "Reporter",
           "ResourceStep", "reporter_for", "resource_step"]

_STYLE = {"waiting": "dim", "running": "cyan", "succeeded": "green", "unchanged": "dim green", "destroyed": "green",
          "failed": "bold red", "skipped": "yellow"}

#: In-flight resources shown under a running stack in the live table.
MAX_RESOURCE_ROWS = 3


def _change(event: RunEvent) -> tuple[str, str, str] | None:
    """(stack, state, detail) of an event that changes one row of the view; None for the others."""
    if isinstance(event, StackChanged):
        return event.stack, event.state, event.detail
    if isinstance(event, ResourceProgress | EngineMessage):
        return event.stack, RUNNING, event.line
    if isinstance(event, RunInterrupted):
        return f"{event.env}.*", "interrupted", f"waiting for {event.running} running stack(s) to finish"
    return None


class LineReporter(ReporterCalls):
    """One line per change of a stack's state, for logs and CI (``12:00:01 dev.orders  running``)."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}

    def handle(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            n = len(event.stacks)
            self._write(f"{event.operation} {event.env}: {n} stack{'s' if n != 1 else ''}")
            return
        change = _change(event)
        if change is None:
            return
        stack, state, detail = change
        if state == RUNNING and stack not in self._started:
            self._started[stack] = time.monotonic()
        took = ""
        if state not in (WAITING, RUNNING) and stack in self._started:
            took = f" ({time.monotonic() - self._started[stack]:.1f}s)"
        self._write(f"{stack:<32} {state}{took}{': ' + detail if detail else ''}")

    def _write(self, line: str) -> None:
        with self._lock:
            print(f"{time.strftime('%H:%M:%S')} {line}", file=self.stream, flush=True)


class LiveReporter(ReporterCalls):
    """A table of every stack with its state and duration, redrawn in place (rich) while the run goes on."""

    def __init__(self) -> None:
        from rich.console import Console  # deferred: rich only where a person watches a terminal

        self.console = Console(stderr=True)
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
                table.add_row(stack, f"[{_STYLE.get(str(state), '')}]{state}[/]", took, str(detail)[:60])
                if state == RUNNING:
                    active = [st for st in steps.values() if st.verb in ACTIVE][-MAX_RESOURCE_ROWS:]
                    for st in active:
                        table.add_row(f"  {st.name}"[:40], f"[cyan]{st.verb}[/]", "", st.type[:60])
        return table

    def handle(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            self._start(event)
        elif isinstance(event, RunFinished):
            if self._live is not None:
                self._live.stop()  # type: ignore[attr-defined]
                self._live = None
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


def reporter_for(quiet: bool = False) -> Reporter:
    """A live table on a terminal, plain lines elsewhere, nothing when ``quiet``."""
    if quiet:
        return NullReporter()
    if sys.stderr.isatty():
        return LiveReporter()
    return LineReporter()
