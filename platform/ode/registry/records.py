"""What a registry keeps, whichever store is behind it: environments, stacks, runs, and who holds a lock."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from ..status import EnvironmentStatus


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
    status: str = EnvironmentStatus.ACTIVE


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


@dataclass(frozen=True)
class LockInfo:
    """Who holds an environment's lock, and whether that holder can still be working: ``gone`` when its process
    is known to have ended (same host, pid not running), ``expired`` when its lease ran out (shared registries)."""

    env: str
    holder: str
    host: str
    pid: int | None
    command: str
    since: str
    run_id: int | None = None
    #: A lease's expiry (backends with leases); None for a lock held by a process.
    expires_at: str | None = None
    expired: bool = False
    gone: bool = False

    @property
    def live(self) -> bool:
        """Whether a run may still be working under this lock."""
        return not (self.expired or self.gone)

    def describe(self) -> str:
        """One line for people: the holder, its command and since when, and whether it is gone or its lease ran
        out (and what happens to the lock then)."""
        run = f"run {self.run_id}, " if self.run_id is not None else ""
        text = f"{self.holder} ({run}`{self.command}` since {self.since}"
        if self.expires_at is not None:
            text += f"; lease {'expired' if self.expired else 'until'} {self.expires_at}"
        text += ")"
        if self.gone:
            text += f": its process is gone (pid {self.pid} is not running on {self.host}); "
            text += ("the next run breaks the lock" if self.expires_at is None or self.expired else
                     f"its lease runs out at {self.expires_at} (or --force-unlock --force breaks it now)")
        elif self.expired:
            text += ": its lease ran out; the next run takes it over"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"holder": self.holder, "host": self.host, "pid": self.pid, "command": self.command,
                "since": self.since, "run_id": self.run_id, "expires_at": self.expires_at, "expired": self.expired,
                "gone": self.gone, "live": self.live}


@dataclass(frozen=True)
class RegistryIdentity:
    """What store a registry is, however its URL was spelled: two registries are the same store when they are of
    one kind and share a key (a SQLite file's resolved path, or its device and inode; a DynamoDB table's ARN, or
    its endpoint, region and name)."""

    kind: str
    #: One line for people: the file, or the table with its region and endpoint.
    where: str
    keys: frozenset[str]
    #: kind, path, inode, table, region, endpoint, account: what is known without a network call.
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def same_store(self, other: RegistryIdentity) -> bool:
        return self.kind == other.kind and bool(self.keys & other.keys)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where, **self.details}


def lock_info_of(registry: Any, env: str) -> LockInfo | None:
    """``registry.lock_info(env)``; for a backend written before ``lock_info`` existed, its ``lock_holder`` text,
    taken as a live lock (nothing more is known of it)."""
    inspect = getattr(registry, "lock_info", None)
    if callable(inspect):
        found: LockInfo | None = inspect(env)
        return found
    text = registry.lock_holder(env)
    return None if text is None else LockInfo(env=env, holder=str(text), host="", pid=None, command="?", since="?")


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (one we may not signal counts as running)."""
    if pid <= 0:  # 0 and negative numbers name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


def holder() -> tuple[str, str, int]:
    """``user@host pid N`` (how every registry backend names a lock's holder), the host and the pid."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        user = "unknown"
    host = socket.gethostname()
    return f"{user}@{host} pid {os.getpid()}", host, os.getpid()
