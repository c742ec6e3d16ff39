"""No ``pulumi`` runs on as an orphan when ``ode`` is killed: the processes it starts carry a token in their
environment (``ODE_GUARD``), and a small watcher process, told by the kernel when ``ode`` dies (``kill -9``
included), stops every process carrying it. Linux only."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

# The watcher that outlives a killed ode: the kernel sends it SIGTERM when its parent dies (PR_SET_PDEATHSIG). It
# then finds every process that inherited this run's guard token in its environment (the pulumi CLIs, their
# language hosts and plugins: all started by ode, however they were reparented), asks them to stop (SIGINT: pulumi
# cancels and saves its state), and kills what is left after the grace period.
_WATCHER = """
import ctypes, os, signal, sys, time
token, parent, grace = sys.argv[1].encode(), int(sys.argv[2]), float(sys.argv[3])
mark = b"ODE_GUARD=" + token
def marked():
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as env:
                    if mark in env.read().split(b"\\0"):
                        found.append(int(entry))
            except OSError:
                pass
    return found
def fire(*_):
    for pid in marked():
        try:
            os.kill(pid, signal.SIGINT)
        except OSError:
            pass
    end = time.monotonic() + grace
    while marked() and time.monotonic() < end:
        time.sleep(0.1)
    for pid in marked():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    os._exit(0)
signal.signal(signal.SIGTERM, fire)
signal.signal(signal.SIGINT, signal.SIG_IGN)
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != parent:
    fire()
while True:
    signal.pause()
"""

_GUARD: list[subprocess.Popen[bytes]] = []


def guard_children(grace_s: float = 20.0) -> bool:
    """Make sure that the processes this one starts from now on (the ``pulumi`` CLIs and what they start) do not
    run on as orphans when this process is killed with SIGKILL: they inherit a token in their environment
    (``ODE_GUARD``), and a small watcher process, told by the kernel when this one dies without exiting normally,
    stops every process carrying it (SIGINT, then SIGKILL after ``grace_s``). Nothing changes in process groups,
    so Ctrl-C on a terminal and a CI runner's signals reach ``ode`` as before. Linux only; returns whether the
    guard is set."""
    if _GUARD:
        return True
    if not sys.platform.startswith("linux") or not Path("/proc/self/environ").exists():
        return False
    token = secrets.token_hex(16)
    watcher_env = {k: v for k, v in os.environ.items() if k != "ODE_GUARD"}
    try:
        watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, token, str(os.getpid()), str(grace_s)],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True, close_fds=True, env=watcher_env)
    except OSError:
        return False
    os.environ["ODE_GUARD"] = token  # inherited by every process started from here on
    _GUARD.append(watcher)

    import atexit

    atexit.unregister(stand_down)  # once, however many commands one process runs
    atexit.register(stand_down)
    return True


def stand_down() -> None:
    """The command is over and the processes it started are done: stop the watcher (it must not signal anyone) and
    stop marking new processes. Called when a command ends, and at a normal exit; nothing when no guard is set."""
    if not _GUARD:
        return
    for proc in _GUARD:
        proc.kill()
        proc.wait()
    _GUARD.clear()
    os.environ.pop("ODE_GUARD", None)
