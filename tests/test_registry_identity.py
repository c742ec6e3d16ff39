"""Standing guard: a registry knows what store it is, however its URL is spelled.

``ode registry copy`` onto the registry being copied would forget every stack record before writing them again (the
live resources would be orphaned): it is refused for every spelling of the same SQLite file (relative, ``..``,
a symlinked directory or file, a hard link, the directory or the file, the default) and of the same DynamoDB table
(query parameters reordered, an extra ``lease=``, the region from ``AWS_REGION`` or ``AWS_DEFAULT_REGION``), while
another region or file is copied. Also here: copy's exit statuses (the README's table), the lock holder ``status``
names (a killed process, an expired lease), read-only commands against a wrong region, and the state directory's
mode whoever makes it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from ode.clock import utcnow
from ode.contracts import load_library
from ode.registry import EnvironmentRecord, RegistryBackend, open_registry, same_store
from ode.registry.dynamodb import DynamoDBRegistry, create_table
from ode.registry.sqlite import Registry

from .cli_runner import Ran
from .cli_runner import ode as run_ode
from .conftest import ROOT, SAMPLE
from .moto_server import REGION, aws, moto_server  # noqa: F401  (pytest fixtures)

TABLE = "ode-reg"


def fill(registry: RegistryBackend) -> None:
    """Two environments, three stacks."""
    registry.ensure_environment("dev")
    registry.put_environment(EnvironmentRecord(name="pr-1", base="dev", ephemeral=True, owner="ana",
                                               created_at="2026-01-01T00:00:00+00:00",
                                               expires_at="2026-01-02T00:00:00+00:00"))
    for env, context in (("dev", "orders"), ("dev", "catalog"), ("pr-1", "orders")):
        registry.record_success(env, context, fingerprint="f1", inputs={}, outputs={"api": {"url": "https://x"}},
                                secret_outputs=[], engine="pulumi", simulated=False,
                                started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:00:01+00:00",
                                duration_s=1.0)


def stacks_of(registry: RegistryBackend) -> list[str]:
    return sorted(s.stack for e in registry.environments() for s in registry.stacks(e.name))


def ode(*args: str) -> Ran:
    return run_ode(*args, "--contracts", str(SAMPLE), env={"NO_COLOR": "1"})


def error_lines(done: Ran) -> list[str]:
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


def assert_one_error(done: Ran, code: int, *needles: str) -> None:
    assert done.exit_code == code, (done.exit_code, done.output)
    errors = error_lines(done)
    assert len(errors) == 1 and "Traceback" not in done.output, done.output
    for needle in needles:
        assert needle in errors[0], errors[0]


# -- SQLite: one file, many spellings ------------------------------------------------------------------------------

@pytest.fixture
def laptop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A filled SQLite registry in ``<tmp>/state``, with the test in ``<tmp>``."""
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "state"
    registry = Registry(state)
    fill(registry)
    registry.close()
    return state


def _sqlite_spellings(state: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (the source's options, the destination URL), each naming ``state/registry.db``."""
    root = state.parent
    (root / "link").symlink_to(state, target_is_directory=True)
    (root / "file-link").mkdir()
    (root / "file-link" / "registry.db").symlink_to(state / "registry.db")
    (root / "hard").mkdir()
    os.link(state / "registry.db", root / "hard" / "registry.db")
    default = ["--state-dir", str(state)]
    return {
        "the file, absolute": (default, f"sqlite:///{state}/registry.db"),
        "the directory": (default, f"sqlite:///{state}"),
        "the state dir's default": (default, "sqlite://"),
        "relative": (default, "sqlite:///state/registry.db"),
        "with ..": (default, f"sqlite:///{state}/../state/registry.db"),
        "a symlinked directory": (default, f"sqlite:///{root}/link/registry.db"),
        "a symlinked file": (default, f"sqlite:///{root}/file-link/registry.db"),
        "a hard link": (default, f"sqlite:///{root}/hard/registry.db"),
        "both as URLs": (["--registry", "sqlite:///state"], f"sqlite:///{root}/link"),
        "the source relative": (["--registry", "sqlite:///state/registry.db"], f"sqlite:///{state}"),
    }


def test_copy_onto_the_same_sqlite_file_is_refused_however_spelled(laptop: Path) -> None:
    before = stacks_of(Registry(laptop))
    assert len(before) == 3
    for name, (source, to) in _sqlite_spellings(laptop).items():
        done = ode("registry", "copy", *source, "--to", to, "--overwrite")
        assert done.exit_code == 2, (name, done.output)
        errors = error_lines(done)
        assert len(errors) == 1 and "--to names the registry being copied" in errors[0], (name, done.output)
        assert stacks_of(Registry(laptop)) == before, name
    elsewhere = ode("registry", "copy", "--state-dir", str(laptop), "--to", "sqlite:///other", "--overwrite")
    assert elsewhere.exit_code == 0, elsewhere.output
    assert stacks_of(Registry(laptop.parent / "other")) == before  # another file is copied into


def test_the_identity_of_a_sqlite_registry_names_its_file(laptop: Path) -> None:
    registry = Registry(laptop)
    found = registry.identity()
    assert found.kind == "sqlite" and found.where == str((laptop / "registry.db").resolve())
    assert found.details["inode"] == (laptop / "registry.db").stat().st_ino
    (laptop.parent / "link").symlink_to(laptop, target_is_directory=True)
    assert same_store(registry, Registry(laptop.parent / "link"))
    assert not same_store(registry, Registry(laptop.parent / "other"))


# -- DynamoDB: one table, many spellings ---------------------------------------------------------------------------

@pytest.fixture
def team_table(aws: str) -> Iterator[DynamoDBRegistry]:  # noqa: F811 - the fixture of the same name
    create_table(TABLE, region=REGION)
    registry = DynamoDBRegistry(TABLE, region=REGION)
    fill(registry)
    yield registry
    registry.close()


@pytest.mark.parametrize("source, to, region_from", [
    (f"dynamodb://{TABLE}?region={REGION}", f"dynamodb://{TABLE}?region={REGION}&lease=60", None),
    (f"dynamodb://{TABLE}?region={REGION}&lease=30", f"dynamodb://{TABLE}?lease=60&region={REGION}", None),
    (f"dynamodb://{TABLE}?region={REGION}", f"dynamodb://{TABLE}", "AWS_REGION"),
    (f"dynamodb://{TABLE}", f"dynamodb://{TABLE}/?region={REGION}", "AWS_DEFAULT_REGION"),
])
def test_copy_onto_the_same_table_is_refused_however_spelled(team_table: DynamoDBRegistry, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch, source: str, to: str,
                                                             region_from: str | None) -> None:
    if region_from == "AWS_DEFAULT_REGION":
        monkeypatch.delenv("AWS_REGION")
    before = stacks_of(team_table)
    done = ode("registry", "copy", "--registry", source, "--to", to, "--overwrite", "--state-dir",
               str(tmp_path / "s"))
    assert_one_error(done, 2, "--to names the registry being copied", f"table {TABLE} in {REGION}")
    assert stacks_of(team_table) == before == ["dev.catalog", "dev.orders", "pr-1.orders"]


def test_a_table_of_the_same_name_in_another_region_is_copied_into(team_table: DynamoDBRegistry,
                                                                    tmp_path: Path) -> None:
    done = ode("registry", "copy", "--registry", f"dynamodb://{TABLE}?region={REGION}", "--to",
               f"dynamodb://{TABLE}?region=eu-west-1", "--json", "--state-dir", str(tmp_path / "s"))
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["stacks"] == 3 and report["destination"]["region"] == "eu-west-1"
    other = DynamoDBRegistry(TABLE, region="eu-west-1", create=False)
    assert stacks_of(other) == stacks_of(team_table)
    assert not other.identity().same_store(team_table.identity())
    assert team_table.identity().details["account"] == other.identity().details["account"] is not None


# -- copy's exit statuses ------------------------------------------------------------------------------------------

def test_copy_exit_statuses_follow_the_table(laptop: Path) -> None:
    registry = Registry(laptop)
    missing = ode("registry", "copy", "--state-dir", str(laptop.parent / "nothing"), "--to", "sqlite:///dest")
    assert_one_error(missing, 2, "no registry at")
    assert not (laptop.parent / "nothing").exists() and not (laptop.parent / "dest").exists()

    run = registry.begin_run("dev", "up", "pulumi")  # this process holds it: a live run
    locked = ode("registry", "copy", "--state-dir", str(laptop), "--to", "sqlite:///dest")
    assert_one_error(locked, 3, "'dev' in the source is locked by a live run")
    assert not (laptop.parent / "dest").exists()  # refused before a destination was made
    registry.end_run(run, "dev", "succeeded")

    target = Registry(laptop.parent / "team")
    target.ensure_environment("pr-1")
    busy = target.begin_run("pr-1", "up", "pulumi")
    into_live = ode("registry", "copy", "--state-dir", str(laptop), "--to", "sqlite:///team", "--overwrite")
    assert_one_error(into_live, 3, "'pr-1' in the destination is locked by a live run")
    assert target.environment("dev") is None  # nothing was written
    target.end_run(busy, "pr-1", "succeeded")

    clash = ode("registry", "copy", "--state-dir", str(laptop), "--to", "sqlite:///team")
    assert_one_error(clash, 2, "already has pr-1")
    done = ode("registry", "copy", "--state-dir", str(laptop), "--to", "sqlite:///team", "--overwrite")
    assert done.exit_code == 0 and "copied 2 environments and 3 stacks" in done.stdout, done.output

    (laptop.parent / "broken").mkdir()
    (laptop.parent / "broken" / "registry.db").write_bytes(b"")
    unusable = ode("registry", "copy", "--state-dir", str(laptop.parent / "broken"), "--to", "sqlite:///team")
    assert_one_error(unusable, 1, "is empty")
    bad_url = ode("registry", "init", "--registry", "dynamodb:///nameless")
    assert_one_error(bad_url, 2, "dynamodb://TABLE")


def _killed_holder(state: Path) -> int:
    """Take ``dev``'s lock in a process that is then SIGKILLed; its pid."""
    code = ("import os, signal, sys\nfrom ode.registry.sqlite import Registry\n"
            "Registry(sys.argv[1]).begin_run('dev', 'up', 'pulumi')\nprint(os.getpid(), flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", code, str(state)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "platform")})
    assert done.returncode == -signal.SIGKILL, done.stderr
    return int(done.stdout.strip())


def test_copy_goes_ahead_past_the_lock_of_a_killed_process(laptop: Path) -> None:
    _killed_holder(laptop)
    done = ode("registry", "copy", "--state-dir", str(laptop), "--to", "sqlite:///dest")
    assert done.exit_code == 0, done.output
    assert stacks_of(Registry(laptop.parent / "dest")) == stacks_of(Registry(laptop))


# -- the holder status names ---------------------------------------------------------------------------------------

def test_status_says_the_lock_holders_process_is_gone(laptop: Path) -> None:
    pid = _killed_holder(laptop)
    done = ode("status", "--env", "dev", "--state-dir", str(laptop))
    assert done.exit_code == 0, done.output
    line = next(line for line in done.stderr.splitlines() if "lock" in line)
    assert line.startswith("a stale lock on dev:") and f"pid {pid} is not running" in line
    assert "the next run breaks the lock" in line
    lock = json.loads(ode("status", "--env", "dev", "--state-dir", str(laptop), "--json").stdout)["lock"]
    assert (lock["pid"], lock["gone"], lock["live"]) == (pid, True, False)
    registry = Registry(laptop)
    registry.begin_run("dev", "up", "pulumi")  # the next run does break it
    lock = json.loads(ode("status", "--env", "dev", "--state-dir", str(laptop), "--json").stdout)["lock"]
    assert (lock["pid"], lock["live"]) == (os.getpid(), True)
    held = ode("status", "--env", "dev", "--state-dir", str(laptop))
    assert f"a run holds dev: {lock['holder']}" in held.stderr and "gone" not in held.stderr


def test_status_says_a_lease_expired(team_table: DynamoDBRegistry, tmp_path: Path) -> None:
    earlier = DynamoDBRegistry(TABLE, region=REGION, lease_s=60, clock=lambda: utcnow() - timedelta(hours=1))
    earlier.begin_run("dev", "up", "pulumi")
    earlier.close()  # its heartbeat stops: the lease ran out an hour ago
    url = f"dynamodb://{TABLE}?region={REGION}"
    done = ode("status", "--env", "dev", "--registry", url, "--state-dir", str(tmp_path / "s"))
    assert done.exit_code == 0, done.output
    line = next(line for line in done.stderr.splitlines() if "lock" in line)
    assert line.startswith("a stale lock on dev:") and "lease expired" in line and "lease ran out" in line
    lock = json.loads(ode("status", "--env", "dev", "--registry", url, "--json").stdout)["lock"]
    assert (lock["expired"], lock["live"], lock["run_id"]) == (True, False, 1)


# -- read-only commands create nothing -------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [("status", "--env", "dev"), ("env", "list"), ("outputs", "--env", "dev"),
                                     ("drift", "--env", "dev", "--engine", "simulated")])
def test_a_read_against_a_wrong_region_creates_no_table(team_table: DynamoDBRegistry, tmp_path: Path,
                                                        command: tuple[str, ...]) -> None:
    state = tmp_path / "state"
    done = ode(*command, "--registry", f"dynamodb://{TABLE}?region=eu-west-1", "--state-dir", str(state))
    assert_one_error(done, 2, f"dynamodb://{TABLE}?region=eu-west-1: no such table in region eu-west-1",
                     "nothing was created")
    assert boto3.client("dynamodb", region_name="eu-west-1").list_tables()["TableNames"] == []
    assert not state.exists()


def test_up_still_creates_the_table_and_a_private_state_dir(team_table: DynamoDBRegistry, tmp_path: Path) -> None:
    state = tmp_path / "fresh" / "state"
    done = ode("up", "--env", "dev", "--contexts", "identity", "--engine", "simulated", "--registry",
               f"dynamodb://{TABLE}?region=eu-west-1", "--state-dir", str(state))
    assert done.exit_code == 0, done.output
    assert "its table was created" in done.stderr
    assert boto3.client("dynamodb", region_name="eu-west-1").list_tables()["TableNames"] == [TABLE]
    assert state.stat().st_mode & 0o777 == 0o700  # made by the simulated engine: private all the same
    assert not (state / "registry.db").exists()


def test_the_pulumi_engine_makes_a_private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ode.engines.pulumi import PulumiEngine

    monkeypatch.setenv("PATH", os.pathsep.join([str(ROOT / "tests" / "fakes"), os.path.dirname(sys.executable),
                                                os.environ["PATH"]]))
    monkeypatch.delenv("ODE_BACKEND_URL", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    old = os.umask(0o022)  # the usual umask, under which a plain mkdir makes 0755
    try:
        state = tmp_path / "deep" / "state"
        engine: Any = PulumiEngine(load_library(SAMPLE), state)
    finally:
        os.umask(old)
    assert state.stat().st_mode & 0o777 == 0o700
    assert (state / "pulumi").is_dir() and (state / "passphrase").stat().st_mode & 0o077 == 0
    assert engine.backend_url == f"file://{state.resolve() / 'pulumi'}"


def test_a_third_party_factory_without_create_is_opened_as_before(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    import ode.registry.opening as api

    opened: list[tuple[str, Path]] = []

    def factory(url: str, state_dir: Path) -> Registry:
        opened.append((url, state_dir))
        return Registry(state_dir)

    module = type(sys)("third_party_registry")
    module.open_memo = factory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "third_party_registry", module)
    monkeypatch.setattr(api, "entry_points", lambda group: [
        EntryPoint("memo", "third_party_registry:open_memo", group)] if group == api.ENTRY_POINT_GROUP else [])
    registry = open_registry("memo://x", tmp_path, create=False)
    assert isinstance(registry, Registry) and opened == [("memo://x", tmp_path)]
