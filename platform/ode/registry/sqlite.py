"""What was deployed where: environments, stacks (status, fingerprint, outputs, durations), runs, and a lock per
environment. SQLite in ``<state dir>/registry.db``; safe across threads and processes.

    from ode.registry.sqlite import Registry

    registry = Registry(".ode")
    registry.stack("dev", "orders").outputs      # {"orders-api": {"url": ...}, ...}

Secrets never reach this file: a stack's secret outputs are kept by name only (their values stay in Pulumi's
encrypted state).

**Fencing.** While this object holds an environment's lock (from ``begin_run`` to ``end_run``), every write it makes
about that environment checks, inside its own transaction, that the lock is still that run's: the lock row has the
run's holder and start time, and the run still says ``running``. A lock is lost only when it is broken (another
host's lock, ``--force-unlock``): the write then changes nothing and raises :class:`LeaseLostError`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..clock import iso, parse_iso, utcnow
from ..errors import UsageError
from ..state_dir import StateDirError, make_state_dir
from ..status import StackStatus
from .errors import LeaseLostError, LockedError, RegistryError, RegistryNotFoundError
from .protocol import RegistryBackend
from .records import EnvironmentRecord, LockInfo, RegistryIdentity, RunRecord, StackRecord, holder, process_alive

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


class Registry:
    """The SQLite registry under ``state_dir``. Every method is one transaction; safe to share between threads.

    A registry file that does not exist is created (``created`` is then True, so that a command can say so: a
    new registry knows no environment, and a wrong ``--state-dir`` must not pass for an empty one). An empty,
    unreadable, read-only or corrupt file is a :class:`RegistryError`, never a fresh start. Every SQLite error
    from any method is a :class:`RegistryError` naming the file.
    """

    def __init__(self, state_dir: str | Path, *, create: bool = True):
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / "registry.db"
        self._lock = threading.RLock()
        self.created = False
        #: Environment -> the run whose lock this object holds (the fencing token of its writes), and what a
        #: fenced write found when that lock was lost. A lost lock's token stays until a new run: every later
        #: write about the environment is refused, even from a thread that was still at work.
        self._fences: dict[str, int] = {}
        self._lost: dict[str, LeaseLostError] = {}
        if not create:
            try:
                present = self.path.exists()
            except OSError as exc:  # a directory this user may not look into
                raise RegistryError(f"{self.path}: {exc.strerror or exc}") from None
            if not present:
                raise RegistryNotFoundError(_not_found(self.path))
        _make_state_dir(self.state_dir)
        try:
            if self.path.exists() and not self.path.is_file():
                raise RegistryError(f"{self.path}: not a file")
            if self.path.is_file():
                if self.path.stat().st_size == 0:
                    raise RegistryError(f"{self.path} is empty: restore it from a backup, or delete it to start a "
                                        "new registry that knows nothing deployed")
                if not os.access(self.path, os.R_OK | os.W_OK):
                    raise RegistryError(f"{self.path} cannot be read and written by this user")
            else:
                self.created = True
        except OSError as exc:
            raise RegistryError(f"{self.path}: {exc.strerror or exc}") from None
        try:
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise RegistryError(f"{self.path}: cannot be opened ({exc})") from None
        try:
            if self.created:
                os.chmod(self.path, 0o600)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if not self.created:
                check = self._db.execute("PRAGMA quick_check").fetchone()
                if check is None or check[0] != "ok":
                    raise RegistryError(f"{self.path} is corrupt ({check[0] if check else 'no answer'}): restore "
                                        "it from a backup")
            self._migrate()
        except RegistryError:
            self._db.close()
            raise
        except (sqlite3.Error, OSError) as exc:
            self._db.close()
            raise _registry_error(self.path, exc) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self, fence: str | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so that racing processes queue up. An SQLite
        error rolls it back and becomes a :class:`RegistryError`. ``fence``: the environment the write is about;
        while this object holds its lock, the transaction first checks that it still does
        (:class:`LeaseLostError` otherwise, and nothing is written)."""
        if fence is not None and fence in self._lost:
            raise self._lost[fence]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _registry_error(self.path, exc) from None
            try:
                if fence is not None and fence in self._fences:
                    self._check_fence(self._db, fence, self._fences[fence])
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # a failed COMMIT may have rolled back already; the first error is the one to tell
                if isinstance(exc, sqlite3.Error):
                    raise _registry_error(self.path, exc) from None
                raise

    #: The lock row of ``env`` when it is run ``?``'s own: taken by that run (same holder, same time) still running.
    _OWN_LOCK = ("SELECT 1 FROM locks l JOIN runs r ON r.id = ? WHERE l.env = ? AND l.holder = r.holder AND "
                 "l.acquired_at = r.started_at AND r.status = 'running'")

    def _check_fence(self, db: sqlite3.Connection, env: str, run_id: int) -> None:
        """Raise :class:`LeaseLostError` (and remember it) when run ``run_id`` no longer holds ``env``'s lock."""
        if db.execute(self._OWN_LOCK, (run_id, env)).fetchone() is not None:
            return
        row = db.execute("SELECT holder, command, acquired_at FROM locks WHERE env = ?", (env,)).fetchone()
        if row is None:  # free again: the successor, if any, is the first run after this one
            later = db.execute("SELECT holder, id, command FROM runs WHERE env = ? AND id > ? ORDER BY id LIMIT 1",
                               (env, run_id)).fetchone()
            lost = LeaseLostError(env, run_id, *later) if later else LeaseLostError(env, run_id)
        else:
            successor = db.execute("SELECT id FROM runs WHERE env = ? AND holder = ? AND started_at = ? ORDER BY id "
                                   "DESC LIMIT 1", (env, row[0], row[2])).fetchone()
            lost = LeaseLostError(env, run_id, row[0], successor[0] if successor else None, row[1])
        self._lost[env] = lost
        raise lost

    def lease_lost(self, env: str) -> LeaseLostError | None:
        """The lost lock a fenced write found on ``env`` (see the module's docstring); None while it is held."""
        return self._lost.get(env)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one query; an SQLite error becomes a :class:`RegistryError`."""
        with self._lock:
            try:
                return list(self._db.execute(sql, params).fetchall())
            except sqlite3.Error as exc:
                raise _registry_error(self.path, exc) from None

    def _migrate(self) -> None:
        with self._tx() as db:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            try:
                version = int(row[0]) if row else 0
            except (TypeError, ValueError):
                raise RegistryError(f"registry {self.path}: its schema version {row[0]!r} is not a number; restore "
                                    "it from a backup") from None
            if version > SCHEMA_VERSION:
                raise RegistryError(f"{self.path} was written by a newer ode (schema {version}, this one knows "
                                    f"{SCHEMA_VERSION}): upgrade ode")
            if version < SCHEMA_VERSION:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                           (str(SCHEMA_VERSION),))

    @property
    def schema_version(self) -> int:
        rows = self._read("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(rows[0][0])

    # -- environments --------------------------------------------------------------------------------------------

    def put_environment(self, record: EnvironmentRecord) -> None:
        """Insert or replace an environment's record."""
        with self._tx(record.name) as db:
            db.execute(
                "INSERT OR REPLACE INTO environments (name, base, ephemeral, owner, created_at, expires_at, contexts,"
                " reuse, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.name, record.base, int(record.ephemeral), record.owner, record.created_at or iso(utcnow()),
                 record.expires_at, None if record.contexts is None else json.dumps(record.contexts),
                 json.dumps(list(record.reuse)), record.status, iso(utcnow())))

    def ensure_environment(self, name: str, base: str | None = None) -> None:
        """Record a long-lived environment on its first run (a no-op when it is known)."""
        with self._tx(name) as db:
            db.execute("INSERT OR IGNORE INTO environments (name, base, ephemeral, created_at, status, updated_at)"
                       " VALUES (?, ?, 0, ?, 'active', ?)", (name, base, iso(utcnow()), iso(utcnow())))

    def set_environment_status(self, name: str, status: str) -> None:
        with self._tx(name) as db:
            db.execute("UPDATE environments SET status = ?, updated_at = ? WHERE name = ?",
                       (status, iso(utcnow()), name))

    def environment(self, name: str) -> EnvironmentRecord | None:
        rows = self._read("SELECT * FROM environments WHERE name = ?", (name,))
        return _env_record(self.path, rows[0]) if rows else None

    def environments(self) -> list[EnvironmentRecord]:
        rows = self._read("SELECT * FROM environments ORDER BY name")
        return [_env_record(self.path, r) for r in rows]

    def knows(self, env: str) -> bool:
        """Whether the registry has any record of ``env``: the environment itself, a stack or a run."""
        return bool(self._read("SELECT 1 FROM environments WHERE name = ? UNION ALL SELECT 1 FROM stacks WHERE "
                               "env = ? UNION ALL SELECT 1 FROM runs WHERE env = ? LIMIT 1", (env, env, env)))

    # -- stacks --------------------------------------------------------------------------------------------------

    def stack(self, env: str, context: str) -> StackRecord | None:
        rows = self._read("SELECT * FROM stacks WHERE env = ? AND context = ?", (env, context))
        return _stack_record(self.path, rows[0]) if rows else None

    def stacks(self, env: str) -> list[StackRecord]:
        rows = self._read("SELECT * FROM stacks WHERE env = ? ORDER BY context", (env,))
        return [_stack_record(self.path, r) for r in rows]

    def mark_running(self, env: str, context: str, *, engine: str, started_at: str, run_id: int | None,
                     operation: str = "up") -> None:
        """Record that a stack's engine run starts. Its fingerprint is cleared first: if the process dies now, the
        next run does the stack again instead of trusting a half-done deploy."""
        status = StackStatus.DESTROYING if operation == "destroy" else StackStatus.RUNNING
        with self._tx(env) as db:
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
        with self._tx(env) as db:
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
        with self._tx(env) as db:
            db.execute("UPDATE stacks SET status = 'failed', fingerprint = NULL, error = ?, finished_at = ?, "
                       "duration_s = ? WHERE env = ? AND context = ?",
                       (error, finished_at, duration_s, env, context))

    def forget_stack(self, env: str, context: str) -> None:
        """A stack was destroyed: it leaves the registry."""
        with self._tx(env) as db:
            db.execute("DELETE FROM stacks WHERE env = ? AND context = ?", (env, context))

    def interrupted(self, env: str) -> list[StackRecord]:
        """Stacks left running or destroying by a run that did not finish (a killed process)."""
        return [s for s in self.stacks(env) if s.status in (StackStatus.RUNNING, StackStatus.DESTROYING)]

    # -- runs and locks ------------------------------------------------------------------------------------------

    def begin_run(self, env: str, command: str, engine: str, *, force_unlock: bool = False,
                  force: bool = False) -> int:
        """Take the environment's lock and record a run; :class:`LockedError` when a live process holds it.

        A lock left by a process that is gone (same host, pid not running) is broken with a warning in the run's
        record; one from another host needs ``force_unlock``. A lock whose process still runs on this host is never
        broken, not even with ``force_unlock``: two runs would deploy the same stacks at once. (``force`` is the
        protocol's: a pid that runs on this host is known to be live, so it changes nothing here.)
        """
        holder_text, host, pid = holder()
        now = iso(utcnow())
        with self._tx() as db:
            row = db.execute("SELECT holder, host, pid, command, acquired_at FROM locks WHERE env = ?",
                             (env,)).fetchone()
            if row is not None:
                here = row[1] == host
                alive = here and isinstance(row[2], int) and process_alive(row[2])  # a hand-edited pid names no process
                if alive and force_unlock:
                    raise LockedError(env, row[0], row[3], row[4], still_running=True)
                if not (force_unlock or (here and not alive)):
                    raise LockedError(env, row[0], row[3], row[4])
                db.execute("DELETE FROM locks WHERE env = ?", (env,))
            # Whoever holds the lock is the only run of the environment: a run still marked running lost its end
            # (a killed process, a write that failed) and is recorded as abandoned.
            db.execute("UPDATE runs SET status = 'abandoned', finished_at = ? WHERE env = ? AND status = 'running'",
                       (now, env))
            db.execute("INSERT INTO locks (env, holder, host, pid, command, acquired_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (env, holder_text, host, pid, command, now))
            cur = db.execute("INSERT INTO runs (env, command, engine, holder, started_at, status) VALUES "
                             "(?, ?, ?, ?, ?, 'running')", (env, command, engine, holder_text, now))
            run_id = int(cur.lastrowid or 0)
        self._fences[env] = run_id
        self._lost.pop(env, None)
        return run_id

    def end_run(self, run_id: int, env: str, status: str) -> None:
        """Record how a run ended and release the environment's lock. When that write fails (a full disk...),
        the lock alone is released in a second, smaller write before the error is raised. A run that lost its
        lock is recorded ``abandoned`` (if its record still says running or abandoned); the successor's lock and
        run are left as they are."""
        try:
            with self._tx() as db:
                if db.execute(self._OWN_LOCK, (run_id, env)).fetchone() is not None:
                    db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                               (status, iso(utcnow()), run_id))
                    db.execute(_DELETE_OWN_LOCK, (env, run_id))
                    mine = True
                else:
                    db.execute("UPDATE runs SET status = 'abandoned', finished_at = COALESCE(finished_at, ?) "
                               "WHERE id = ? AND status IN ('running', 'abandoned')", (iso(utcnow()), run_id))
                    mine = False
        except RegistryError:
            self.release_lock(env)
            raise
        if self._fences.get(env) == run_id:
            if mine:
                self._fences.pop(env)
                self._lost.pop(env, None)
            else:
                self._lost.setdefault(env, LeaseLostError(env, run_id))

    def release_lock(self, env: str) -> bool:
        """Release this process's lock on ``env`` (the lock of the run this object holds it with: never a
        successor's); False when even that write failed (the lock then names a pid that is gone once this process
        ends, and the next run on this host breaks it)."""
        run_id = self._fences.get(env)
        released = 0
        try:
            with self._tx() as db:
                if run_id is None:
                    db.execute("DELETE FROM locks WHERE env = ? AND pid = ?", (env, os.getpid()))
                else:
                    released = db.execute(_DELETE_OWN_LOCK, (env, run_id)).rowcount
        except RegistryError:
            return False
        if run_id is not None:
            if released:
                self._fences.pop(env, None)
                self._lost.pop(env, None)
            else:  # not ours any more: keep refusing this run's writes
                self._lost.setdefault(env, LeaseLostError(env, run_id))
        return True

    def lock_holder(self, env: str) -> str | None:
        rows = self._read("SELECT holder FROM locks WHERE env = ?", (env,))
        return str(rows[0][0]) if rows else None

    def lock_info(self, env: str) -> LockInfo | None:
        """Who holds ``env``'s lock; ``gone`` when it was taken on this host by a process that no longer runs."""
        rows = self._read("SELECT holder, host, pid, command, acquired_at FROM locks WHERE env = ?", (env,))
        if not rows:
            return None
        name, host, pid, command, since = rows[0]
        pid = pid if isinstance(pid, int) else None  # a hand-edited pid names no process
        here = host == holder()[1]
        return LockInfo(env=env, holder=str(name), host=str(host), pid=pid, command=str(command), since=str(since),
                        gone=here and (pid is None or not process_alive(pid)))

    def identity(self) -> RegistryIdentity:
        """This file: its resolved path (symlinks followed) and its device and inode (hard links, bind mounts)."""
        return sqlite_identity(self.path)

    def runs(self, env: str) -> list[RunRecord]:
        rows = self._read("SELECT id, env, command, engine, holder, started_at, finished_at, status "
                          "FROM runs WHERE env = ? ORDER BY id", (env,))
        return [RunRecord(*r) for r in rows]

    # -- where stacks ran (executors) ------------------------------------------------------------------------------

    def record_worker(self, env: str, context: str, *, worker: dict[str, Any], log: str | None) -> None:
        """Record where ``env.context``'s last operation ran (host and pid, a build's id) and where its log is."""
        with self._tx(env) as db:
            # Created on first use: registries written before executors existed need no migration.
            db.execute("CREATE TABLE IF NOT EXISTS workers (env TEXT NOT NULL, context TEXT NOT NULL, worker TEXT "
                       "NOT NULL, log TEXT, PRIMARY KEY (env, context))")
            db.execute("INSERT OR REPLACE INTO workers (env, context, worker, log) VALUES (?, ?, ?, ?)",
                       (env, context, json.dumps(worker, sort_keys=True, default=str), log))

    def workers(self, env: str) -> dict[str, dict[str, Any]]:
        """Where each stack of ``env`` last ran: context -> ``{"worker", "log"}`` (none before any was recorded)."""
        if not self._read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'workers'"):
            return {}  # nothing was recorded yet (a command that only reads creates no table)
        rows = self._read("SELECT context, worker, log FROM workers WHERE env = ?", (env,))
        return {r[0]: {"worker": _loads(self.path, "workers", r[0], "worker", r[1]), "log": r[2]} for r in rows}

    # -- drift checks (``ode drift``) -----------------------------------------------------------------------------

    def _drift_table(self, db: sqlite3.Connection) -> None:
        # Created on first use: registries written before drift checks existed need no migration.
        db.execute("CREATE TABLE IF NOT EXISTS drift (env TEXT NOT NULL, context TEXT NOT NULL, checked_at TEXT "
                   "NOT NULL, drifted TEXT, error TEXT, healed_at TEXT, heal_run INTEGER, "
                   "PRIMARY KEY (env, context))")

    def record_drift_check(self, env: str, context: str, *, checked_at: str, drifted: list[dict[str, Any]] | None,
                           error: str | None = None) -> None:
        """Record that ``env.context`` was checked for drift: the drifted resources (``[]``: none; each with its
        changed properties, secrets already masked), or ``error`` when it could not be checked."""
        with self._tx(env) as db:
            self._drift_table(db)
            db.execute("INSERT INTO drift (env, context, checked_at, drifted, error) VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT (env, context) DO UPDATE SET checked_at = excluded.checked_at, "
                       "drifted = excluded.drifted, error = excluded.error",
                       (env, context, checked_at, None if drifted is None else json.dumps(drifted, default=str),
                        error))

    def record_heal(self, env: str, context: str, *, healed_at: str, run_id: int | None) -> None:
        """Record that ``env.context`` was redeployed to undo its drift, by run ``run_id``."""
        with self._tx(env) as db:
            self._drift_table(db)
            db.execute("INSERT INTO drift (env, context, checked_at, healed_at, heal_run) VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT (env, context) DO UPDATE SET healed_at = excluded.healed_at, "
                       "heal_run = excluded.heal_run", (env, context, healed_at, healed_at, run_id))

    def drift_checks(self, env: str) -> list[dict[str, Any]]:
        """The last drift check of each stack of ``env``: ``context``, ``checked_at``, ``drifted`` (a list, or None
        when it could not be checked), ``error``, ``healed_at``, ``heal_run``; by context."""
        with self._tx() as db:  # a write transaction: the table may have to be created first
            self._drift_table(db)
            rows = db.execute("SELECT context, checked_at, drifted, error, healed_at, heal_run FROM drift "
                              "WHERE env = ? ORDER BY context", (env,)).fetchall()
        return [{"env": env, "context": r[0], "checked_at": r[1],
                 "drifted": None if r[2] is None else _loads(self.path, "drift", r[0], "drifted", r[2]),
                 "error": r[3], "healed_at": r[4], "heal_run": r[5]} for r in rows]


#: Delete ``env``'s lock if it is run ``?``'s (the same holder and time as the run's record).
_DELETE_OWN_LOCK = ("DELETE FROM locks WHERE env = ? AND EXISTS (SELECT 1 FROM runs r WHERE r.id = ? AND "
                    "r.holder = locks.holder AND r.started_at = locks.acquired_at)")


def _make_state_dir(state_dir: Path) -> None:
    """Create the state directory, readable by its owner only (it holds the registry, Pulumi state and the
    passphrase); a path that cannot be a directory is a :class:`RegistryError`."""
    try:
        make_state_dir(state_dir)
    except StateDirError as exc:
        raise RegistryError(str(exc)) from None


def _not_found(path: Path) -> str:
    """Why a command that only reads stops where no registry file is, and what to check."""
    left = [p for p in ("pulumi", "simulated", "workspaces") if any((path.parent / p).glob("*"))]
    if left:
        return (f"no registry at {path}, though {path.parent} holds stack state ({', '.join(left)}/): was "
                "registry.db deleted? Restore it; nothing was created")
    return (f"no registry at {path}: nothing was deployed with this state directory (check --state-dir or "
            "--registry); nothing was created")


def sqlite_identity(path: Path) -> RegistryIdentity:
    """The identity of the SQLite registry file ``path`` (which may not exist yet)."""
    resolved = path.resolve()
    keys = {f"path:{resolved}"}
    details: dict[str, Any] = {"path": str(resolved)}
    try:
        stat = os.stat(resolved)
    except OSError:
        pass
    else:
        keys.add(f"inode:{stat.st_dev}:{stat.st_ino}")
        details["inode"] = stat.st_ino
        details["device"] = stat.st_dev
    return RegistryIdentity(kind="sqlite", where=str(resolved), keys=frozenset(keys), details=details)


def _registry_error(path: Path, exc: BaseException) -> RegistryError:
    """One line for an SQLite or file error on the registry, with what to do about the common ones."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    lowered = text.lower()
    if "readonly" in lowered or "read-only" in lowered:
        hint = "it is read-only: give this user write access to it and its directory"
    elif "full" in lowered:
        hint = "the disk is full: free space and run again"
    elif "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        hint = "it is corrupt: restore it from a backup"
    elif "locked" in lowered or "busy" in lowered:
        hint = "another process kept it busy too long: run again"
    else:
        hint = "it cannot be used"
    return RegistryError(f"registry {path}: {text} ({hint})")


def _loads(path: Path, table: str, key: str, column: str, text: Any) -> Any:
    """A JSON column, or a :class:`RegistryError` naming the row when it was edited into something else."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise RegistryError(f"registry {path}: {table} row {key!r} has a broken {column} column ({str(text)[:40]!r})"
                            "; fix or delete that row") from None


def _env_record(path: Path, row: tuple[Any, ...]) -> EnvironmentRecord:
    name, base, ephemeral, owner, created_at, expires_at, contexts, reuse, status, _updated = row
    parsed = None if contexts is None else _loads(path, "environments", name, "contexts", contexts)
    reused = _loads(path, "environments", name, "reuse", reuse)
    if not (parsed is None or (isinstance(parsed, list) and all(isinstance(c, str) for c in parsed))) or not (
            isinstance(reused, list) and all(isinstance(c, str) for c in reused)):
        raise RegistryError(f"registry {path}: environments row {name!r} has contexts or reuse that are not lists "
                            "of names; fix or delete that row")
    try:
        if expires_at is not None:
            parse_iso(expires_at)
    except (TypeError, ValueError):
        raise RegistryError(f"registry {path}: environments row {name!r} has a broken expires_at "
                            f"({str(expires_at)[:40]!r}); fix or delete that row") from None
    return EnvironmentRecord(name=name, base=base, ephemeral=bool(ephemeral), owner=owner, created_at=created_at,
                             expires_at=expires_at, contexts=parsed, reuse=reused, status=status)


def _stack_record(path: Path, row: tuple[Any, ...]) -> StackRecord:
    (env, context, status, fingerprint, inputs, outputs, secret_outputs, engine, simulated, started_at, finished_at,
     duration_s, error, _run_id) = row
    key = f"{env}.{context}"
    parsed_inputs = _loads(path, "stacks", key, "inputs", inputs)
    parsed_outputs = _loads(path, "stacks", key, "outputs", outputs)
    secrets = _loads(path, "stacks", key, "secret_outputs", secret_outputs)
    if not isinstance(parsed_inputs, dict) or not isinstance(parsed_outputs, dict) or not isinstance(secrets, list):
        raise RegistryError(f"registry {path}: stacks row {key!r} has inputs, outputs or secret_outputs of the "
                            "wrong shape; fix or delete that row")
    if duration_s is not None and not isinstance(duration_s, (int, float)):
        raise RegistryError(f"registry {path}: stacks row {key!r} has a duration that is not a number")
    return StackRecord(env=env, context=context, status=status, fingerprint=fingerprint, inputs=parsed_inputs,
                       outputs=parsed_outputs, secret_outputs=secrets, engine=engine, simulated=bool(simulated),
                       started_at=started_at, finished_at=finished_at, duration_s=duration_s, error=error)


def _sqlite_is_a_backend(registry: Registry) -> RegistryBackend:
    # Never called: mypy checks here that the SQLite registry satisfies the protocol.
    return registry


def sqlite_state_dir(url: str, state_dir: str | Path) -> Path:
    """The directory of a ``sqlite://`` URL's ``registry.db``.

    As in SQLAlchemy, ``sqlite:///rel/registry.db`` is relative and ``sqlite:////abs/registry.db`` absolute; a URL
    may name the file or its directory. ``sqlite://`` alone means ``<state dir>/registry.db``.
    """
    parts = urlsplit(url)
    if parts.netloc:
        raise UsageError(f"--registry {url}: write sqlite:///relative/path or sqlite:////absolute/path")
    raw = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not raw:
        return Path(state_dir)
    path = Path(raw)
    if path.suffix == ".db":
        if path.name != "registry.db":
            raise UsageError(f"--registry {url}: the SQLite registry file is named registry.db; give its directory "
                             f"({path.parent})")
        return path.parent
    return path


def open_sqlite(url: str, state_dir: Path, *, create: bool = True) -> Registry:
    """The ``sqlite`` entry point: the SQLite registry a ``sqlite://`` URL names; with ``create=False`` a missing
    file is a :class:`RegistryNotFoundError` and nothing is made."""
    return Registry(sqlite_state_dir(url, state_dir), create=create)
