"""The one way the tests run ``ode``: in this process through click's runner, or as a process of its own where the
test needs one.

    from .cli_runner import ode

    done = ode("up", "--env", "dev", "--engine", "simulated", cwd=shop, env={"ODE_SIMULATE_PROGRAMS": "0"})
    assert done.returncode == 0, done.stderr

Both ways return a :class:`Ran` (``returncode``, ``stdout``, ``stderr`` as :class:`subprocess.CompletedProcess`
has them; ``exit_code`` and ``output`` as click's ``Result`` has them), and both see the same environment: this
process's, as the autouse fixture of ``conftest.py`` leaves it (no ambient ``CI``, ``GITHUB_*``, colour or ``ODE_*``
settings), with ``env`` on top (a value of None leaves a variable out). Neither has a terminal: stdin is empty
(or ``input``), stdout and stderr are captured.

In-process is the default: it spares each command the interpreter's start-up and the imports (pulumi, boto3,
pydantic), a second or two a run. What the command starts (the pulumi stand-in found on PATH, the policy pack it
runs) are processes either way. ``process=True`` runs ``python -m ode.cli`` instead, for what only a process of its
own shows: signals and kills, a lock held by another process, a terminal, start-up itself, the exit of the
interpreter, the whole time a user waits from start to exit.

An in-process run that ends in an exception other than ``SystemExit`` (a traceback, where a user would have
seen one) fails its test with that exception, whatever exit status the test expects.

An in-process run is checked to leave the process as it found it (working directory, environment, signal
handlers, the ``ode`` logger, threads that would keep a process alive): what a command changes there, the CLI
must put back itself, and a run that does not fails its test naming what stayed changed. A run is bounded in
time: past ``timeout`` it is interrupted as Ctrl-C would (in-process) or killed (a process), and the test fails.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

#: How long one command may take before its test fails: far beyond what any command of the suite needs.
TIMEOUT_S = 180.0
#: How long threads a command started get to end after it returned, before the run counts as leaking them.
THREADS_GRACE_S = 5.0


@dataclass
class Ran:
    """What a run of ``ode`` did: its exit status and what it wrote."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    #: stdout and stderr as a terminal would show them, interleaved (a process: stdout, then stderr).
    output: str
    #: In-process: the exception the command ended with (SystemExit included), for a failing test's report.
    exception: BaseException | None = None

    @property
    def exit_code(self) -> int:
        """The exit status, as click's ``Result`` names it."""
        return self.returncode

    def __repr__(self) -> str:
        return (f"Ran(ode {' '.join(self.args)!s}: exit {self.returncode}, stdout={self.stdout[-2000:]!r}, "
                f"stderr={self.stderr[-2000:]!r})")


def ode(*args: str, cwd: Path | str | None = None, env: Mapping[str, str | None] | None = None,
        input: str | None = None, process: bool = False, timeout: float = TIMEOUT_S) -> Ran:
    """``ode ARGS`` in ``cwd`` (default: the current directory), with ``env`` over this process's environment (None:
    leave the variable out) and ``input`` on stdin; in-process unless ``process``."""
    argv = [str(a) for a in args]
    if process:
        return _in_a_process([sys.executable, "-m", "ode.cli", *argv], argv, cwd, env, input, timeout)

    def run() -> None:
        from ode.cli import main

        main.main(args=argv, prog_name="ode")

    return _in_this_process(run, argv, cwd, env, input, timeout)


def ode_script(script: Path, *args: str, cwd: Path | str | None = None, env: Mapping[str, str | None] | None = None,
               process: bool = False, timeout: float = TIMEOUT_S) -> Ran:
    """``python SCRIPT ARGS`` (a script of the repository that runs ode's CLI), as :func:`ode` runs ``ode``."""
    argv = [str(a) for a in args]
    if process:
        return _in_a_process([sys.executable, str(script), *argv], argv, cwd, env, None, timeout)

    def run() -> None:
        saved = sys.argv
        sys.argv = [str(script), *argv]
        try:
            runpy.run_path(str(script), run_name="__main__")
        finally:
            sys.argv = saved

    return _in_this_process(run, argv, cwd, env, None, timeout)


def process_env(env: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment of an ``ode`` process: this process's with ``env`` over it (None: left out), and the
    directories this process imports ``ode`` and ``components`` from first on ``PYTHONPATH``, so that the process
    runs the code under test."""
    merged = {**os.environ}
    for key, value in (env or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    merged["PYTHONPATH"] = os.pathsep.join([*_import_roots(), *filter(None, [merged.get("PYTHONPATH")])])
    return merged


def _import_roots() -> list[str]:
    import components
    import ode as package

    roots = [str(Path(m.__file__ or "").resolve().parent.parent) for m in (package, components)]
    return list(dict.fromkeys(roots))


def _in_a_process(command: list[str], argv: list[str], cwd: Path | str | None,
                  env: Mapping[str, str | None] | None, input: str | None, timeout: float) -> Ran:
    try:
        done = subprocess.run(command, cwd=cwd, env=process_env(env), capture_output=True, text=True,
                              input=input, stdin=None if input is not None else subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"ode {' '.join(argv)} did not end within {timeout:.0f} s; stderr: "
                    f"{_text(exc.stderr)[-2000:]}")
    return Ran(argv, done.returncode, done.stdout, done.stderr, done.stdout + done.stderr)


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def _in_this_process(run: Callable[[], None], argv: list[str], cwd: Path | str | None,
                     env: Mapping[str, str | None] | None, input: str | None, timeout: float) -> Ran:
    before = _ProcessState.now()
    exception: BaseException | None = None
    code = 0
    stdout = stderr = output = ""
    with _Watchdog(timeout) as watchdog:
        with contextlib.chdir(cwd or os.getcwd()), CliRunner().isolation(input=input, env=env) as streams:
            out, err, mixed = streams
            try:
                run()
            except SystemExit as exc:
                exception = exc
                if exc.code is None or isinstance(exc.code, int):
                    code = exc.code or 0
                else:  # sys.exit("message"): Python prints it on stderr and exits 1
                    print(exc.code, file=sys.stderr)
                    code = 1
            except BaseException as exc:  # noqa: BLE001 - raised again below, once the process is put back
                exception = exc
                traceback.print_exc(file=sys.stderr)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            stdout, stderr, output = (_decode(s) for s in (out, err, mixed))
    ran = Ran(argv, code, stdout, stderr, output, exception)
    if watchdog.fired:
        pytest.fail(f"ode {' '.join(argv)} did not end within {timeout:.0f} s (interrupted); {ran!r}")
    leaks = before.changes(_ProcessState.now())
    if leaks:
        pytest.fail(f"ode {' '.join(argv)} left this process changed, which the CLI must put back when a command "
                    f"ends: {'; '.join(leaks)}")
    if exception is not None and not isinstance(exception, SystemExit):
        # A traceback is a bug whatever the test expects of the exit status: the test fails with it.
        raise exception
    return ran


def _decode(stream: io.BytesIO) -> str:
    return stream.getvalue().decode("utf-8", errors="replace").replace("\r\n", "\n")


@dataclass
class _ProcessState:
    """What a command must leave as it found it in the process that runs it."""

    cwd: str
    environ: dict[str, str]
    sigterm: Any
    sigint: Any
    ode_logger: tuple[list[logging.Handler], int]
    root_logger: list[logging.Handler]
    threads: set[threading.Thread]

    @classmethod
    def now(cls) -> _ProcessState:
        ode_logger = logging.getLogger("ode")
        return cls(os.getcwd(), dict(os.environ), signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT),
                   (list(ode_logger.handlers), ode_logger.level), list(logging.getLogger().handlers),
                   {t for t in threading.enumerate() if not t.daemon})

    def changes(self, after: _ProcessState) -> list[str]:
        found = []
        if after.cwd != self.cwd:
            found.append(f"the working directory ({self.cwd} -> {after.cwd})")
        changed = sorted(k for k in self.environ.keys() | after.environ.keys()
                         if self.environ.get(k) != after.environ.get(k))
        if changed:
            found.append(f"environment variables {', '.join(changed)}")
        if (after.sigterm, after.sigint) != (self.sigterm, self.sigint):
            found.append(f"signal handlers (SIGTERM {self.sigterm} -> {after.sigterm}, SIGINT {self.sigint} -> "
                         f"{after.sigint})")
        if after.ode_logger != self.ode_logger:
            found.append(f"the 'ode' logger ({self.ode_logger} -> {after.ode_logger})")
        if after.root_logger != self.root_logger:
            found.append(f"the root logger's handlers ({self.root_logger} -> {after.root_logger})")
        started = after.threads - self.threads
        deadline = time.monotonic() + THREADS_GRACE_S
        for thread in started:  # a pool shutting down may take a moment; a thread that stays would hold an exit
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        alive = sorted(t.name for t in started if t.is_alive())
        if alive:
            found.append(f"threads still running, which would keep a process from exiting: {', '.join(alive)}")
        return found


class _Watchdog:
    """Interrupts the main thread (SIGINT: ode treats it as Ctrl-C, and stops) when a run takes longer than
    ``seconds``; ``fired`` says whether it had to. Only in the main thread, where SIGINT raises
    KeyboardInterrupt."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.fired = False
        self._done = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __enter__(self) -> _Watchdog:
        main = threading.main_thread()
        if threading.current_thread() is main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            ident = main.ident
            assert ident is not None

            def fire() -> None:
                with self._lock:
                    if not self._done:
                        self.fired = True
                        signal.pthread_kill(ident, signal.SIGINT)

            self._timer = threading.Timer(self.seconds, fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> bool:
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()
        # an interrupt that landed after the command ended, while its output was being read: the run timed out
        return bool(self.fired and exc[0] is KeyboardInterrupt)

