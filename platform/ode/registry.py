"""What was deployed where: environments, stacks (status, fingerprint, outputs, durations), runs, and a lock per
environment. SQLite in ``<state dir>/registry.db``; safe across threads and processes.

    from ode.registry import Registry

    registry = Registry(".ode")
    registry.stack("dev", "orders").outputs      # {"orders-api": {"url": ...}, ...}

Secrets never reach this file: a stack's secret outputs are kept by name only (their values stay in Pulumi's
encrypted state).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .clock import iso, utcnow
from .errors import OdeError

#: Bumped whenever the tables change; older files are migrated, newer ones refused.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS environments (
    name TEXT PRIMARY KEY,
    base TEXT,
    ephemeral INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    contexts TEXT,
    reuse TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stacks (
    env TEXT NOT NULL,
    context TEXT NOT NULL,
    status TEXT NOT NULL,
    fingerprint TEXT,
    inputs TEXT NOT NULL DEFAULT '{}',
    outputs TEXT NOT NULL DEFAULT '{}',
    secret_outputs TEXT NOT NULL DEFAULT '[]',
    engine TEXT,
    simulated INTEGER NOT NULL DEFAULT 0,
    started_at TEXT,
    finished_at TEXT,
    duration_s REAL,
    error TEXT,
    run_id INTEGER,
    PRIMARY KEY (env, context)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    env TEXT NOT NULL,
    command TEXT NOT NULL,
    engine TEXT NOT NULL,
    holder TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS locks (
    env TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    command TEXT NOT NULL,
    acquired_at TEXT NOT NULL
);
"""


class RegistryError(OdeError):
    """The registry file cannot be used (written by a newer version, corrupt)."""


class LockedError(OdeError):
    """Another run holds the environment's lock."""

    exit_code = 3

    def __init__(self, env: str, holder: str, command: str, since: str):
        self.env, self.holder, self.command, self.since = env, holder, command, since
        super().__init__(
            f"environment {env!r} is locked by {holder} (`{command}`, since {since}); wait for it to finish, or "
            f"if that process is gone, run again with --force-unlock")


@dataclass(frozen=True)
class EnvironmentRecord:
    """An environment the platform has deployed to. Long-lived ones are recorded on their first run; ephemeral
    ones carry their base, owner, expiry and the contexts asked for (None: every context)."""

    name: str
    base: str | None = None
    ephemeral: bool = False
    owner: str | None = None
    created_at: str = ""
    expires_at: str | None = None
    contexts: list[str] | None = None
    reuse: list[str] = field(default_factory=list)
    status: str = "active"


@dataclass(frozen=True)
class StackRecord:
    """One stack's last known state. ``fingerprint`` is that of its last successful deploy (None while running
    or after a failure, so that the next run deploys it again); ``outputs`` hold no secret values."""

    env: str
    context: str
    status: str
    fingerprint: str | None = None
    #: Digest of each part of the fingerprint (contract, settings, code, place, upstream), to say what changed.
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: list[str] = field(default_factory=list)
    engine: str | None = None
    simulated: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    error: str | None = None

    @property
    def stack(self) -> str:
        return f"{self.env}.{self.context}"


@dataclass(frozen=True)
class RunRecord:
    id: int
    env: str
    command: str
    engine: str
    holder: str
    started_at: str
    finished_at: str | None
    status: str


def _holder() -> tuple[str, str, int]:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        user = "unknown"
    host = socket.gethostname()
    return f"{user}@{host} pid {os.getpid()}", host, os.getpid()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Registry:
    """The SQLite registry under ``state_dir``. Every method is one transaction; safe to share between threads."""

    def __init__(self, state_dir: str | Path):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.state_dir / "registry.db"
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise RegistryError(f"{self.path}: not a usable registry ({exc})") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so that racing processes queue up."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._tx() as db:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise RegistryError(f"{self.path} was written by a newer ode (schema {version}, this one knows "
                                    f"{SCHEMA_VERSION}): upgrade ode")
            if version < SCHEMA_VERSION:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                           (str(SCHEMA_VERSION),))

    @property
    def schema_version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    # -- environments --------------------------------------------------------------------------------------------

    def put_environment(self, record: EnvironmentRecord) -> None:
        """Insert or replace an environment's record."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO environments (name, base, ephemeral, owner, created_at, expires_at, contexts,"
                " reuse, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.name, record.base, int(record.ephemeral), record.owner, record.created_at or iso(utcnow()),
                 record.expires_at, None if record.contexts is None else json.dumps(record.contexts),
                 json.dumps(list(record.reuse)), record.status, iso(utcnow())))

    def ensure_environment(self, name: str, base: str | None = None) -> None:
        """Record a long-lived environment on its first run (a no-op when it is known)."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO environments (name, base, ephemeral, created_at, status, updated_at)"
                       " VALUES (?, ?, 0, ?, 'active', ?)", (name, base, iso(utcnow()), iso(utcnow())))

    def set_environment_status(self, name: str, status: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE environments SET status = ?, updated_at = ? WHERE name = ?",
                       (status, iso(utcnow()), name))

    def environment(self, name: str) -> EnvironmentRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM environments WHERE name = ?", (name,)).fetchone()
        return _env_record(row) if row else None

    def environments(self) -> list[EnvironmentRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM environments ORDER BY name").fetchall()
        return [_env_record(r) for r in rows]

    # -- stacks --------------------------------------------------------------------------------------------------

    def stack(self, env: str, context: str) -> StackRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM stacks WHERE env = ? AND context = ?", (env, context)).fetchone()
        return _stack_record(row) if row else None

    def stacks(self, env: str) -> list[StackRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM stacks WHERE env = ? ORDER BY context", (env,)).fetchall()
        return [_stack_record(r) for r in rows]

    def mark_running(self, env: str, context: str, *, engine: str, started_at: str, run_id: int | None,
                     operation: str = "up") -> None:
        """Record that a stack's engine run starts. Its fingerprint is cleared first: if the process dies now, the
        next run does the stack again instead of trusting a half-done deploy."""
        status = "destroying" if operation == "destroy" else "running"
        with self._tx() as db:
            db.execute(
                "INSERT INTO stacks (env, context, status, engine, started_at, run_id) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (env, context) DO UPDATE SET status = excluded.status, fingerprint = NULL, "
                "engine = excluded.engine, started_at = excluded.started_at, finished_at = NULL, duration_s = NULL,"
                " error = NULL, run_id = excluded.run_id",
                (env, context, status, engine, started_at, run_id))

    def record_success(self, env: str, context: str, *, fingerprint: str, inputs: dict[str, str],
                       outputs: dict[str, Any],
                       secret_outputs: list[str], engine: str, simulated: bool, started_at: str,
                       finished_at: str, duration_s: float) -> None:
        """A stack deployed: its fingerprint and outputs (secret values already removed by the caller)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO stacks (env, context, status, fingerprint, inputs, outputs, secret_outputs,"
                " engine, simulated, started_at, finished_at, duration_s, error, run_id) VALUES "
                "(?, ?, 'succeeded', ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, "
                "(SELECT run_id FROM stacks WHERE env = ? AND context = ?))",
                (env, context, fingerprint, json.dumps(inputs, sort_keys=True), json.dumps(outputs, sort_keys=True),
                 json.dumps(sorted(secret_outputs)),
                 engine, int(simulated), started_at, finished_at, duration_s, env, context))

    def record_failure(self, env: str, context: str, *, error: str, finished_at: str, duration_s: float) -> None:
        """A stack's run failed: no fingerprint (it runs again next time); its last outputs are kept."""
        with self._tx() as db:
            db.execute("UPDATE stacks SET status = 'failed', fingerprint = NULL, error = ?, finished_at = ?, "
                       "duration_s = ? WHERE env = ? AND context = ?",
                       (error, finished_at, duration_s, env, context))

    def forget_stack(self, env: str, context: str) -> None:
        """A stack was destroyed: it leaves the registry."""
        with self._tx() as db:
            db.execute("DELETE FROM stacks WHERE env = ? AND context = ?", (env, context))

    def interrupted(self, env: str) -> list[StackRecord]:
        """Stacks left running or destroying by a run that did not finish (a killed process)."""
        return [s for s in self.stacks(env) if s.status in ("running", "destroying")]

    # -- runs and locks ------------------------------------------------------------------------------------------

    def begin_run(self, env: str, command: str, engine: str, *, force_unlock: bool = False) -> int:
        """Take the environment's lock and record a run; :class:`LockedError` when a live process holds it.

        A lock left by a process that is gone (same host, pid not running) is broken with a warning in the run's
        record; one from another host needs ``force_unlock``.
        """
        holder, host, pid = _holder()
        now = iso(utcnow())
        with self._tx() as db:
            row = db.execute("SELECT holder, host, pid, command, acquired_at FROM locks WHERE env = ?",
                             (env,)).fetchone()
            if row is not None:
                dead = row[1] == host and not _alive(row[2])
                if not (force_unlock or dead):
                    raise LockedError(env, row[0], row[3], row[4])
                db.execute("UPDATE runs SET status = 'abandoned', finished_at = ? WHERE env = ? AND status = "
                           "'running'", (now, env))
                db.execute("DELETE FROM locks WHERE env = ?", (env,))
            db.execute("INSERT INTO locks (env, holder, host, pid, command, acquired_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (env, holder, host, pid, command, now))
            cur = db.execute("INSERT INTO runs (env, command, engine, holder, started_at, status) VALUES "
                             "(?, ?, ?, ?, ?, 'running')", (env, command, engine, holder, now))
            return int(cur.lastrowid or 0)

    def end_run(self, run_id: int, env: str, status: str) -> None:
        """Record how a run ended and release the environment's lock."""
        with self._tx() as db:
            db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (status, iso(utcnow()), run_id))
            db.execute("DELETE FROM locks WHERE env = ? AND pid = ?", (env, os.getpid()))

    def lock_holder(self, env: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT holder FROM locks WHERE env = ?", (env,)).fetchone()
        return row[0] if row else None

    def runs(self, env: str) -> list[RunRecord]:
        with self._lock:
            rows = self._db.execute("SELECT id, env, command, engine, holder, started_at, finished_at, status "
                                    "FROM runs WHERE env = ? ORDER BY id", (env,)).fetchall()
        return [RunRecord(*r) for r in rows]


def _env_record(row: tuple[Any, ...]) -> EnvironmentRecord:
    name, base, ephemeral, owner, created_at, expires_at, contexts, reuse, status, _updated = row
    return EnvironmentRecord(name=name, base=base, ephemeral=bool(ephemeral), owner=owner, created_at=created_at,
                             expires_at=expires_at, contexts=None if contexts is None else json.loads(contexts),
                             reuse=json.loads(reuse), status=status)


def _stack_record(row: tuple[Any, ...]) -> StackRecord:
    (env, context, status, fingerprint, inputs, outputs, secret_outputs, engine, simulated, started_at, finished_at,
     duration_s, error, _run_id) = row
    return StackRecord(env=env, context=context, status=status, fingerprint=fingerprint, inputs=json.loads(inputs),
                       outputs=json.loads(outputs),
                       secret_outputs=json.loads(secret_outputs), engine=engine, simulated=bool(simulated),
                       started_at=started_at, finished_at=finished_at, duration_s=duration_s, error=error)
