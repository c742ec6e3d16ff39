"""The registry's errors: one that makes it unusable, and a lock held by another run."""

from __future__ import annotations

from ..errors import OdeError


class RegistryError(OdeError):
    """The registry cannot be used: written by a newer version, empty, corrupt, read-only, on a full disk, or in a
    state directory that cannot be made. Its message is one line naming the file."""


class LockedError(OdeError):
    """Another run holds the environment's lock."""

    exit_code = 3

    def __init__(self, env: str, holder: str, command: str, since: str, still_running: bool = False):
        self.env, self.holder, self.command, self.since = env, holder, command, since
        if still_running:
            super().__init__(
                f"environment {env!r} is locked by {holder} (`{command}`, since {since}), which is still running on "
                "this host: --force-unlock only breaks the lock of a process that is gone; wait for it to finish")
        else:
            super().__init__(
                f"environment {env!r} is locked by {holder} (`{command}`, since {since}); wait for it to finish, "
                "or if that process is gone, run again with --force-unlock")


class RegistryNotFoundError(RegistryError):
    """A command that only reads found no registry where ``--registry`` / ``--state-dir`` point (a wrong path,
    table or region): a usage mistake, and nothing was created."""

    exit_code = 2


class CopyLockedError(LockedError):
    """``registry copy`` met a live run in the source (its stacks are changing) or in the destination (its records
    would be replaced under it)."""

    def __init__(self, side: str, env: str, holder: str, command: str, since: str):
        self.env, self.holder, self.command, self.since = env, holder, command, since
        OdeError.__init__(self, f"registry copy: {env!r} in the {side} is locked by a live run, {holder} (`{command}`, "
                                f"since {since}); nothing was copied: wait for it to finish")
