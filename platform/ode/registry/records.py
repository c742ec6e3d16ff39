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


def holder() -> tuple[str, str, int]:
    """``user@host pid N`` (how every registry backend names a lock's holder), the host and the pid."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        user = "unknown"
    host = socket.gethostname()
    return f"{user}@{host} pid {os.getpid()}", host, os.getpid()
