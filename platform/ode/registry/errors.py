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


class LeaseLostError(OdeError):
    """A run no longer holds its environment's lock: another run took it over (a lease that ran out while this
    runner was paused, a lock broken with ``--force-unlock``), or it was broken and is free. Raised by a fenced
    write, which then changed nothing; the run must write nothing more, start nothing more, and stop (exit 3).

    ``successor`` names the run that holds the lock now (``user@host pid N``), with its run id and command; None
    when nobody holds it."""

    exit_code = 3

    def __init__(self, env: str, run_id: int, successor: str | None = None, successor_run: int | None = None,
                 command: str | None = None):
        self.env, self.run_id = env, run_id
        self.successor, self.successor_run, self.command = successor, successor_run, command
        if successor:
            who = successor + (f" (run {successor_run}, `{command}`)" if successor_run is not None else "")
            what = f"lost the lock on environment {env!r} to {who}"
        else:
            what = f"lost the lock on environment {env!r}: it was broken and no run holds it now"
        super().__init__(f"{what}: this run (run {run_id}) stopped, wrote nothing more and is abandoned")
