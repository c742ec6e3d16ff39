"""Progress of a run, as people see it: a live table of the stacks on a terminal, plain lines elsewhere.

The orchestrator calls a :class:`Reporter`; it never prints by itself, so that ``import ode`` users choose.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any, NamedTuple, Protocol

#: States a stack goes through in a run, as shown.
WAITING, RUNNING = "waiting", "running"

_STYLE = {"waiting": "dim", "running": "cyan", "succeeded": "green", "unchanged": "dim green", "destroyed": "green",
          "failed": "bold red", "skipped": "yellow"}


#: Verbs the engines put before a resource's URN in a progress line (``creating urn:pulumi:...``).
_ACTIVE = ("creating", "updating", "deleting", "replacing")
_FINISHED = ("created", "updated", "deleted", "replaced", "failed")
#: In-flight resources shown under a running stack in the live table.
MAX_RESOURCE_ROWS = 3


class ResourceStep(NamedTuple):
    """One resource's step as a progress line tells it."""

    verb: str
    name: str
    type: str


def resource_step(line: str) -> ResourceStep | None:
    """The resource step a progress line reports (``creating urn:pulumi:dev.orders::shop::aws:s3/bucket:Bucket::files``
    -> ``("creating", "files", "aws:s3/bucket:Bucket")``), or None for any other line."""
    verb, _, rest = line.partition(" ")
    if verb not in _ACTIVE + _FINISHED or not rest.startswith("urn:"):
        return None
    parts = rest.strip().split("::")
    if len(parts) < 4:
        return None
    return ResourceStep(verb, parts[-1], parts[-2].split("$")[-1])


class Reporter(Protocol):
    def start(self, env: str, operation: str, stacks: list[str]) -> None: ...

    def update(self, stack: str, state: str, detail: str = "") -> None: ...

    def finish(self) -> None: ...


class NullReporter:
    """Says nothing (the library's default)."""

    def start(self, env: str, operation: str, stacks: list[str]) -> None:
        pass

    def update(self, stack: str, state: str, detail: str = "") -> None:
        pass

    def finish(self) -> None:
        pass


class LineReporter:
    """One line per change of a stack's state, for logs and CI (``12:00:01 dev.orders  running``)."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}

    def start(self, env: str, operation: str, stacks: list[str]) -> None:
        self._write(f"{operation} {env}: {len(stacks)} stack{'s' if len(stacks) != 1 else ''}")

    def update(self, stack: str, state: str, detail: str = "") -> None:
        if state == RUNNING and stack not in self._started:
            self._started[stack] = time.monotonic()
        took = ""
        if state not in (WAITING, RUNNING) and stack in self._started:
            took = f" ({time.monotonic() - self._started[stack]:.1f}s)"
        self._write(f"{stack:<32} {state}{took}{': ' + detail if detail else ''}")

    def finish(self) -> None:
        pass

    def _write(self, line: str) -> None:
        with self._lock:
            print(f"{time.strftime('%H:%M:%S')} {line}", file=self.stream, flush=True)


class LiveReporter:
    """A table of every stack with its state and duration, redrawn in place (rich) while the run goes on."""

    def __init__(self) -> None:
        from rich.console import Console

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
                    done = sum(1 for st in steps.values() if st.verb in _FINISHED and st.verb != "failed")
                    failed = sum(1 for st in steps.values() if st.verb == "failed")
                    detail = f"{done} resource(s) done" + (f", {failed} failed" if failed else "")
                table.add_row(stack, f"[{_STYLE.get(str(state), '')}]{state}[/]", took, str(detail)[:60])
                if state == RUNNING:
                    active = [st for st in steps.values() if st.verb in _ACTIVE][-MAX_RESOURCE_ROWS:]
                    for st in active:
                        table.add_row(f"  {st.name}"[:40], f"[cyan]{st.verb}[/]", "", st.type[:60])
        return table

    def start(self, env: str, operation: str, stacks: list[str]) -> None:
        from rich.live import Live

        self._title = f"{operation} {env}"
        self._rows = {s: [WAITING, "", None, None] for s in stacks}
        live = Live(get_renderable=self._table,  # type: ignore[arg-type]
                    console=self.console, refresh_per_second=8, transient=False)
        live.start()
        self._live = live

    def update(self, stack: str, state: str, detail: str = "") -> None:
        with self._lock:
            row = self._rows.setdefault(stack, [WAITING, "", None, None])
            if state == RUNNING and row[2] is None:
                row[2] = time.monotonic()
            if state not in (WAITING, RUNNING) and isinstance(row[2], float):
                row[3] = time.monotonic()
            row[0], row[1] = state, detail
            step = resource_step(detail)
            if step is not None:
                self._steps.setdefault(stack, {})[step.name] = step

    def finish(self) -> None:
        if self._live is not None:
            self._live.stop()  # type: ignore[attr-defined]
            self._live = None


def reporter_for(quiet: bool = False) -> Reporter:
    """A live table on a terminal, plain lines elsewhere, nothing when ``quiet``."""
    if quiet:
        return NullReporter()
    if sys.stderr.isatty():
        return LiveReporter()
    return LineReporter()
