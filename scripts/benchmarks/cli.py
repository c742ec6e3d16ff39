"""Start-up of the ``ode`` command, as whole processes: ``ode --help``, ``ode validate`` of the sample library, and a
no-op ``ode up`` of the sample's ``dev`` environment (simulated engine, after one real ``up`` into a temporary state
directory: every stack is unchanged, no engine run starts).

Each figure is the median of several runs after a warm-up, in seconds and as a ratio to ``python -c pass`` measured
in the same run (Python's own start-up on this machine, at this moment), so that a slower or busier machine moves
both together.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "contracts"

#: Seconds each figure should stay within on a quiet 2-core machine.
GOALS = {"ode --help": 0.2, "ode validate": 0.5, "ode up (no-op)": 0.5}


def _ode() -> list[str]:
    """The ``ode`` console script beside this interpreter (what users run), else ``python -m ode``."""
    script = Path(sys.executable).parent / "ode"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ode"]


def _environment() -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE left out: the warm-up run writes the bytecode of ode's own modules, as a first run
    # does on any machine, so that the counted runs measure start-up rather than compiling.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODE_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(NO_COLOR="1", CI="")  # plain output, and the simulated engine is named explicitly below
    return env


def _seconds(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=300)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    return took


def run(quick: bool = False) -> dict[str, Any]:
    runs = 5 if quick else 9
    env = _environment()
    ode = _ode()
    with tempfile.TemporaryDirectory(prefix="ode-bench-cli-") as tmp:
        state = Path(tmp) / "state"
        common = ["--contracts", str(SAMPLE), "--state-dir", str(state)]
        # The one real `up`: every stack's program runs under mocks and is recorded, so the next `up` is a no-op.
        subprocess.run([*ode, "up", "--env", "dev", "--engine", "simulated", *common], env=env, check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "ode --help": [*ode, "--help"],
            "ode validate": [*ode, "validate", *common],
            "ode up (no-op)": [*ode, "up", "--env", "dev", "--engine", "simulated", *common],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for command in commands.values():
            _seconds(command, env)  # warm-up: the OS file cache, bytecode
        for _ in range(runs):  # interleaved, so that a slow moment of the machine touches every figure alike
            for name, command in commands.items():
                times[name].append(_seconds(command, env))
        shutil.rmtree(state, ignore_errors=True)
    base = statistics.median(times["python -c pass"])
    figures: dict[str, Any] = {"runs": runs, "python -c pass": {"seconds": round(base, 4)}}
    for name in ("ode --help", "ode validate", "ode up (no-op)"):
        median = statistics.median(times[name])
        figures[name] = {"seconds": round(median, 4), "ratio_to_python": round(median / base, 2),
                         "min_seconds": round(min(times[name]), 4), "max_seconds": round(max(times[name]), 4),
                         "goal_seconds": GOALS[name]}
    return figures
