"""What people read: tables with headers, times relative to now (with the exact moment beside a deadline), one
output picked by its path, the changed properties of resources, resources as type and name, colour or none, and
the closest name to a mistyped one.

Pure functions over records and a clock, so that what ``ode status``, ``ode env list`` and ``ode outputs`` print is
tested without a terminal: :func:`status_table` and :func:`environments_table` build a :class:`Table`, and
:func:`show` writes it with rich on a terminal and as plain aligned text elsewhere (CI, a pipe, ``NO_COLOR``), so
that scripts and logs get stable columns and no escape codes.

Colour follows no-color.org and force-color.org, in their order: ``FORCE_COLOR`` (any non-empty value) forces it,
even into a pipe; else ``NO_COLOR`` (any non-empty value) turns it off, even on a terminal; else a terminal (not
``TERM=dumb``) gets it. :func:`colour_choice` is that decision where a stream is not known yet (click's), and
:func:`colour` where it is.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
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


def _when(moment: datetime | str | None) -> datetime | None:
    """A moment read for display: naive taken as UTC, text that is no time at all as unknown (a table shows ``-``
    rather than failing on one odd record)."""
    if isinstance(moment, str):
        try:
            return parse_iso(moment)
        except ValueError:
            return None
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def ago(moment: datetime | str | None, now: datetime) -> str:
    """``3 min ago`` (``in 5 min`` for a moment still to come), ``just now`` within ten seconds, ``-`` unknown."""
    when = _when(moment)
    if when is None:
        return "-"
    delta = (now - when).total_seconds()
    if abs(delta) < 10:
        return "just now"
    return f"{span(delta)} ago" if delta > 0 else f"in {span(delta)}"


def exact(moment: datetime | str | None) -> str:
    """The moment to the minute, in UTC, as people read it: ``2026-12-05 05:19 UTC`` (``-`` unknown)."""
    when = _when(moment)
    if when is None:
        return "-"
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def moment(when: datetime | str | None, now: datetime) -> str:
    """A moment relative to now with the exact one beside it, which stays true once the text is old (a pull
    request's comment): ``in 7 h (2026-12-05 05:19 UTC)``, ``3 min ago (...)``; ``-`` unknown."""
    if when is None or when == "":
        return "-"
    return f"{ago(when, now)} ({exact(when)})"


def expiry(when: datetime | str | None, now: datetime) -> str:
    """``expires in 7 h (2026-12-05 05:19 UTC)``, ``expired 3 min ago (...)``, or ``never`` when nothing is set."""
    at = _when(when)
    if at is None:
        return "never" if not when else f"unreadable ({when})"
    delta = (at - now).total_seconds()
    relative = f"expires in {span(delta)}" if delta > 0 else f"expired {span(delta)} ago"
    return f"{relative} ({exact(at)})"


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


def colour_choice() -> bool | None:
    """What the environment says of colour: True (``FORCE_COLOR``), False (``NO_COLOR``), or None: it depends on
    the stream (see the module's docstring)."""
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("NO_COLOR"):
        return False
    return None


def terminal(stream: IO[str]) -> bool:
    """Whether ``stream`` is a terminal that understands escape codes (not ``TERM=dumb``)."""
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def colour(stream: IO[str]) -> bool:
    """Whether to colour what goes to ``stream``: ``FORCE_COLOR``, else not ``NO_COLOR``, else a terminal."""
    choice = colour_choice()
    return choice if choice is not None else terminal(stream)


def in_ci() -> bool:
    """Whether this runs on a CI runner (``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def fancy(stream: IO[str]) -> bool:
    """Whether to draw a table with rich (and colour): ``FORCE_COLOR``; else not under ``NO_COLOR``, nor on CI
    (whose logs get stable text even when the runner fakes a terminal), and only on a terminal."""
    choice = colour_choice()
    if choice is not None:
        return choice
    return not in_ci() and terminal(stream)


def show(table: Table, stream: IO[str], use_rich: bool | None = None) -> None:
    """Write ``table`` to ``stream``: with rich when ``use_rich`` (default: :func:`fancy`), else :func:`plain`."""
    if use_rich if use_rich is not None else fancy(stream):
        from rich.console import Console  # see rich_table

        # forced: FORCE_COLOR colours a pipe too, where rich would otherwise see no terminal and drop the styles
        Console(file=stream, markup=True, highlight=False, force_terminal=True, no_color=colour_choice() is False,
                width=None if terminal(stream) else 200).print(rich_table(table))
    else:
        stream.write(plain(table))


# -- names ----------------------------------------------------------------------------------------------------------


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``; did you mean 'orders'?`` for the choice closest to a mistyped ``word``, or nothing when none is close."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def some(names: Iterable[str], most: int = 12) -> str:
    """Names for a message, sorted, at most ``most`` of them (``a, b, c and 9 more``); ``none`` when empty."""
    listed = sorted(set(names))
    if not listed:
        return "none"
    shown = ", ".join(listed[:most])
    return shown + (f" and {len(listed) - most} more" if len(listed) > most else "")


# -- resources ------------------------------------------------------------------------------------------------------

#: ``pkg:module/submodule:Type`` whose submodule repeats the type's name (``aws:s3/bucket:Bucket``).
_TYPE_TOKEN = re.compile(r"^([^:/]+):([^:/]+)/([^:/]+):([^:/]+)$")
#: A Pulumi URN: ``urn:pulumi:STACK::PROJECT::[PARENT$]TYPE::NAME``.
_URN = re.compile(r"urn:pulumi:[^\s:]*::[^\s:]*::(\S+?)::(\S+)")


def short_type(token: str) -> str:
    """A resource type as Pulumi's own display writes it: ``aws:s3/bucket:Bucket`` -> ``aws:s3:Bucket`` (the
    submodule left out where it only repeats the type's name); other tokens unchanged."""
    match = _TYPE_TOKEN.match(token)
    if match and match.group(3).lower() == match.group(4).lower():
        return f"{match.group(1)}:{match.group(2)}:{match.group(4)}"
    return token


def resource_label(type_token: str, name: str) -> str:
    """A resource as people read it: its short type and its name (``aws:dynamodb:Table orders-table``)."""
    return f"{short_type(type_token.split('$')[-1])} {name}"


def without_urns(line: str) -> str:
    """``line`` with every URN in it written as the resource's type and name (a URN runs to 200 characters)."""
    return _URN.sub(lambda m: resource_label(m.group(1), m.group(2)), line)


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
        raise UsageError(f"output path {path!r}: {env} has no deployed context {context!r}"
                         f"{did_you_mean(context, outputs)} (deployed: {', '.join(sorted(outputs)) or 'none'})")
    interfaces = outputs[context]
    if interface not in interfaces:
        raise UsageError(f"output path {path!r}: {env}.{context} has no output {interface!r}"
                         f"{did_you_mean(interface, interfaces)} (it has: {', '.join(sorted(interfaces)) or 'none'})")
    value = interfaces[interface]
    if len(parts) == 2:
        return value
    if value == SECRET_MASK:
        raise UsageError(f"output path {path!r}: {env}.{context}.{interface} is secret: pass --show-secrets to "
                         "read it from the engine")
    if not isinstance(value, Mapping) or parts[2] not in value:
        fields = ", ".join(sorted(value)) if isinstance(value, Mapping) else "none"
        hint = did_you_mean(parts[2], value) if isinstance(value, Mapping) else ""
        raise UsageError(f"output path {path!r}: {env}.{context}.{interface} has no field {parts[2]!r}{hint} "
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
