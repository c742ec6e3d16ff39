"""What people read: tables with headers, times relative to now, one output picked by its path, and the changed
properties of resources.

Pure functions over records and a clock, so that what ``ode status``, ``ode env list`` and ``ode outputs`` print is
tested without a terminal: :func:`status_table` and :func:`environments_table` build a :class:`Table`, and
:func:`show` writes it with rich on a terminal and as plain aligned text elsewhere (CI, a pipe, ``NO_COLOR``), so
that scripts and logs get stable columns and no escape codes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from .clock import parse_iso
from .errors import UsageError
from .masking import SECRET_MASK

#: Colours of statuses on a terminal.
STATUS_STYLES = {"succeeded": "green", "unchanged": "green", "active": "green", "destroyed": "dim",
                 "failed": "red", "running": "yellow", "destroying": "yellow", "skipped": "yellow",
                 "orphaned": "yellow", "expired": "red"}


@dataclass
class Table:
    """Rows under headers; ``styles`` names the rich style of a column's cells by their value."""

    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    #: column index -> value -> style (rich only)
    styles: dict[int, Mapping[str, str]] = field(default_factory=dict)
    title: str | None = None


# -- times ----------------------------------------------------------------------------------------------------------


def span(seconds: float) -> str:
    """A span of time the way people say it: ``40 s``, ``3 min``, ``7 h``, ``2 d`` (rounded to its unit)."""
    seconds = abs(seconds)
    if seconds < 90:
        return f"{round(seconds)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} d"


def ago(moment: datetime | str | None, now: datetime) -> str:
    """``3 min ago`` (``in 5 min`` for a moment still to come), ``just now`` within ten seconds, ``-`` unknown."""
    when = parse_iso(moment) if isinstance(moment, str) else moment
    if when is None:
        return "-"
    delta = (now - when).total_seconds()
    if abs(delta) < 10:
        return "just now"
    return f"{span(delta)} ago" if delta > 0 else f"in {span(delta)}"


def expiry(moment: datetime | str | None, now: datetime) -> str:
    """``expires in 7 h``, ``expired 3 min ago``, or ``never`` when nothing is set."""
    when = parse_iso(moment) if isinstance(moment, str) else moment
    if when is None:
        return "never"
    delta = (when - now).total_seconds()
    return f"expires in {span(delta)}" if delta > 0 else f"expired {span(delta)} ago"


def took(seconds: float | None) -> str:
    """How long something ran: ``0.4 s``, ``12 s``, ``3 min``."""
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 10 else span(seconds)


# -- tables ---------------------------------------------------------------------------------------------------------


def status_table(stacks: Iterable[Any], now: datetime, engines: Mapping[str, str | None] | None = None,
                 ) -> Table:
    """The stacks of one environment: status, when they last ran (relative to ``now``), how long, which engine,
    and the error of a failed one."""
    table = Table(["STACK", "STATUS", "UPDATED", "TOOK", "ENGINE", "ERROR"], styles={1: STATUS_STYLES})
    for s in stacks:
        when = s.finished_at or s.started_at
        table.rows.append([s.stack, s.status, ago(when, now), took(s.duration_s),
                           (engines or {}).get(s.stack) or "-", _first_line(s.error)])
    return table


def environments_table(records: Iterable[Any], now: datetime) -> Table:
    """The environments made on demand: where from, whose, what, in which state, since when and until when."""
    table = Table(["NAME", "BASE", "OWNER", "CONTEXTS", "STATUS", "CREATED", "EXPIRES"],
                  styles={4: STATUS_STYLES})
    for r in records:
        table.rows.append([r.name, r.base or "-", r.owner or "-", ",".join(r.contexts) if r.contexts else "all",
                           r.status, ago(r.created_at or None, now), expiry(r.expires_at, now)])
    return table


def _first_line(text: str | None) -> str:
    return (text or "").splitlines()[0] if text else ""


def plain(table: Table) -> str:
    """The table as aligned text: headers, then one line per row, columns two spaces apart, no trailing blanks."""
    rows = [table.headers, *table.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(table.headers))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(([table.title] if table.title else []) + lines) + "\n"


def rich_table(table: Table) -> Any:
    """The table as a rich ``Table`` (headers bold, statuses coloured)."""
    from rich.table import Table as RichTable  # rich costs ~50 ms to import: only when a terminal shows it

    out = RichTable(title=table.title, header_style="bold", box=None, pad_edge=False)
    for header in table.headers:
        out.add_column(header, overflow="fold")
    for row in table.rows:
        out.add_row(*[f"[{table.styles[i][cell]}]{cell}[/]" if cell in table.styles.get(i, {}) else cell
                      for i, cell in enumerate(row)])
    return out


def fancy(stream: IO[str]) -> bool:
    """Whether to draw for a person: ``stream`` is a terminal, and neither CI nor ``NO_COLOR`` nor a dumb
    terminal says otherwise."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def show(table: Table, stream: IO[str], use_rich: bool | None = None) -> None:
    """Write ``table`` to ``stream``: with rich when ``use_rich`` (default: :func:`fancy`), else :func:`plain`."""
    if use_rich if use_rich is not None else fancy(stream):
        from rich.console import Console  # see rich_table

        Console(file=stream, markup=True, highlight=False).print(rich_table(table))
    else:
        stream.write(plain(table))


# -- one output -----------------------------------------------------------------------------------------------------


def output_at(outputs: Mapping[str, Mapping[str, Any]], path: str, env: str) -> Any:
    """The output at ``path`` (``context.interface.field``, or ``context.interface`` for all of its fields) in
    ``outputs`` (context -> interface -> fields). A wrong path is a :class:`UsageError` naming what exists at the
    step that went wrong."""
    parts = path.split(".")
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(f"output path {path!r}: expected CONTEXT.INTERFACE.FIELD (or CONTEXT.INTERFACE), "
                         f"e.g. {_example(outputs)}")
    context, interface = parts[0], parts[1]
    if context not in outputs:
        raise UsageError(f"output path {path!r}: {env} has no deployed context {context!r} (deployed: "
                         f"{', '.join(sorted(outputs)) or 'none'})")
    interfaces = outputs[context]
    if interface not in interfaces:
        raise UsageError(f"output path {path!r}: {env}.{context} has no output {interface!r} (it has: "
                         f"{', '.join(sorted(interfaces)) or 'none'})")
    value = interfaces[interface]
    if len(parts) == 2:
        return value
    if value == SECRET_MASK:
        raise UsageError(f"output path {path!r}: {env}.{context}.{interface} is secret: pass --show-secrets to "
                         "read it from the engine")
    if not isinstance(value, Mapping) or parts[2] not in value:
        fields = ", ".join(sorted(value)) if isinstance(value, Mapping) else "none"
        raise UsageError(f"output path {path!r}: {env}.{context}.{interface} has no field {parts[2]!r} "
                         f"(fields: {fields})")
    return value[parts[2]]


def _example(outputs: Mapping[str, Mapping[str, Any]]) -> str:
    for context, interfaces in sorted(outputs.items()):
        for interface, value in sorted(interfaces.items()):
            if isinstance(value, Mapping) and value:
                return f"{context}.{interface}.{sorted(value)[0]}"
    return "orders.orders-api.url"


def scalar(value: Any) -> str:
    """A value as a script reads it: a string as it is (no quotes), anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


# -- changes of resources ---------------------------------------------------------------------------------------------


def _value(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, default=str) if not isinstance(value, str) else value


def diff_lines(resources: list[dict[str, Any]], indent: str = "  ") -> list[str]:
    """Lines for resources with their operation and, for each changed property, ``path: old -> new`` (resources
    whose operation is ``same`` are left out)."""
    lines = []
    for r in resources:
        if r.get("op") == "same":
            continue
        lines.append(f"{indent}{r.get('op', ''):<8} {r['type']}  {r['name']}")
        for d in r.get("diff") or []:
            mark = "  (replaces)" if d.get("replaces") else ""
            lines.append(f"{indent}    {d['path']}: {_value(d.get('old'))} -> {_value(d.get('new'))}{mark}")
    return lines
