"""CodeBuild for the tests: moto answers every API call, and this runner does what moto does not, running the build.

moto's CodeBuild accepts ``CreateProject`` and ``StartBuild`` but runs nothing, drops ``environmentVariablesOverride``
and reports ``SUCCEEDED`` on the first ``BatchGetBuilds``. :class:`LocalCodeBuild` is the executor's
:class:`~ode.executors.codebuild.CodeBuildService` with every call still made to moto (so botocore checks each
request against CodeBuild's model and moto keeps the project and the build ids), plus, for each started build, a
local build: the project's buildspec (as ``CreateProject`` stored it in moto) run phase by phase with bash, with the
variables ``StartBuild`` was given, its output written line by line to the project's CloudWatch Logs group on moto,
and its phases and status reported as CodeBuild reports them. ``StopBuild`` sends the build's shell SIGTERM, as
CodeBuild does; :meth:`LocalCodeBuild.kill` stands for the build's machine dying (SIGKILL to every process of it).

The install phase is reported as done without running its command: this machine has ode installed already and no
index to install from (the build's PATH starts with this interpreter's bin directory instead).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ode.executors.codebuild import CodeBuildService

PHASES = ("SUBMITTED", "QUEUED", "PROVISIONING", "DOWNLOAD_SOURCE", "INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD",
          "UPLOAD_ARTIFACTS", "FINALIZING", "COMPLETED")
#: Seconds a stopped build's shell is given after SIGTERM before everything of it is killed.
STOP_GRACE_S = 20.0


def _descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (Linux's /proc), children first."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class LocalBuild:
    """One build run here: its phases, its status, its shell."""

    def __init__(self, service: LocalCodeBuild, build_id: str, spec: dict[str, Any], env: dict[str, str],
                 group: str, stream: str):
        self.service, self.id, self.spec, self.env = service, build_id, spec, env
        self.group, self.stream = group, stream
        self.phase = "SUBMITTED"
        self.status = "IN_PROGRESS"
        self.phases: list[dict[str, Any]] = []
        self.shell: subprocess.Popen[str] | None = None
        self.stopping = False
        self.killed = False
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {"id": self.id, "buildStatus": self.status, "currentPhase": self.phase,
                    "phases": [dict(p) for p in self.phases],
                    "logs": {"groupName": self.group, "streamName": self.stream,
                             "deepLink": f"https://console.aws.amazon.com/cloudwatch/home#logsV2:log-groups/log-group/"
                                         f"{self.group}/log-events/{self.stream}"}}

    def _enter(self, phase: str, status: str = "SUCCEEDED") -> None:
        with self._lock:
            self.phase = phase
            self.phases.append({"phaseType": phase, "phaseStatus": status})

    def _log(self, text: str) -> None:
        self.lines.append(text)
        stamp = int(time.time() * 1000)
        self.service.logs.put_log_events(logGroupName=self.group, logStreamName=self.stream,
                                         logEvents=[{"timestamp": stamp, "message": text}])

    def run(self) -> None:
        failed = False
        for phase in PHASES[:-1]:
            if self.stopping:
                break
            key = phase.lower()
            if failed and key not in ("post_build", "finalizing"):
                continue  # as CodeBuild: after a failed phase, only POST_BUILD and FINALIZING run
            self._enter(phase)
            if key == "install":
                continue  # reported done without running (see the module's docstring)
            commands = ((self.spec.get("phases") or {}).get(key) or {}).get("commands")
            if not commands:
                continue
            if self._shell("\n".join(commands)) != 0:
                failed = True
                with self._lock:
                    self.phases[-1]["phaseStatus"] = "STOPPED" if self.stopping else "FAILED"
        self._enter("COMPLETED")
        with self._lock:
            self.status = ("STOPPED" if self.stopping and not self.killed else "FAILED" if failed or self.killed
                           else "SUCCEEDED")

    def _shell(self, script: str) -> int:
        self.shell = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env=self.env, start_new_session=True,
                                      cwd=self.env.get("CODEBUILD_SRC_DIR"))
        assert self.shell.stdout is not None
        for raw in self.shell.stdout:
            self._log(raw.rstrip("\n"))
        return self.shell.wait()

    def stop(self) -> None:
        """What CodeBuild does on StopBuild: SIGTERM to the build's shell, everything killed after a grace."""
        self.stopping = True
        if self.shell is not None and self.shell.poll() is None:
            self.shell.send_signal(signal.SIGTERM)
            threading.Thread(target=self._kill_later, daemon=True).start()

    def _kill_later(self) -> None:
        end = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < end and self.shell is not None and self.shell.poll() is None:
            time.sleep(0.1)
        self.kill()

    def kill(self) -> None:
        """The build's machine dies: every process of the build is killed at once."""
        if self.shell is None:
            return
        self.killed = True
        for pid in [*_descendants(self.shell.pid), self.shell.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def pids(self) -> list[int]:
        return [] if self.shell is None else [self.shell.pid, *_descendants(self.shell.pid)]


class LocalCodeBuild(CodeBuildService):
    """See the module's docstring. ``source_dir`` is what a build checks out (its ``CODEBUILD_SRC_DIR``)."""

    def __init__(self, region: str | None, source_dir: Path):
        super().__init__(region)
        self.source_dir = source_dir
        self.builds: dict[str, LocalBuild] = {}
        #: What each StartBuild was asked (the variables included, which moto drops).
        self.requests: list[dict[str, Any]] = []

    def start(self, project: str, *, source_version: str | None, variables: dict[str, str],
              timeout_minutes: int | None) -> str:
        build_id = super().start(project, source_version=source_version, variables=variables,
                                 timeout_minutes=timeout_minutes)
        self.requests.append({"project": project, "source_version": source_version, "variables": dict(variables),
                              "timeout_minutes": timeout_minutes, "build_id": build_id})
        stored = self.codebuild.batch_get_projects(names=[project])["projects"][0]
        spec = yaml.safe_load(stored["source"]["buildspec"])
        group = stored["logsConfig"]["cloudWatchLogs"]["groupName"]
        stream = build_id.split(":", 1)[1]
        self.logs.create_log_stream(logGroupName=group, logStreamName=stream)
        env = {**os.environ, **{v["name"]: v["value"] for v in (stored.get("environment") or {}).get(
            "environmentVariables", [])}, **variables, "CODEBUILD_BUILD_ID": build_id,
            "CODEBUILD_SRC_DIR": str(self.source_dir), "CODEBUILD_START_TIME": str(int(
                datetime.now(UTC).timestamp() * 1000)),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        build = LocalBuild(self, build_id, spec, env, group, stream)
        self.builds[build_id] = build
        threading.Thread(target=build.run, name=f"codebuild-{build_id}", daemon=True).start()
        return build_id

    def build(self, build_id: str) -> dict[str, Any]:
        super().build(build_id)  # the call moto answers (its status is made up: ours is the build's own)
        return self.builds[build_id].describe()

    def stop(self, build_id: str) -> None:
        super().stop(build_id)
        self.builds[build_id].stop()

    def kill(self, build_id: str) -> None:
        self.builds[build_id].kill()

    def running(self) -> list[LocalBuild]:
        return [b for b in self.builds.values() if b.status == "IN_PROGRESS"]

    def close(self) -> None:
        for build in self.builds.values():
            if build.status == "IN_PROGRESS":
                build.kill()
