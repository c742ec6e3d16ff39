"""Standing guard: no command waits long on an AWS endpoint that accepts connections and never answers.

Every boto3 client ode makes comes from :mod:`ode.aws_clients` (timeouts, a capped retry, a silent endpoint not
asked again). The hang tests run ``ode`` as a user does, against :class:`SilentServer` standing in for SSM, EventBridge
and DynamoDB, with the default timeouts; each is bounded by its subprocess timeout (a hang fails the test) and prints
how long it took.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from ode import aws_clients
from ode.errors import UsageError
from ode.registry.sqlite import Registry

from .cli_runner import Ran, ode
from .conftest import SAMPLE
from .silent_server import SilentServer

#: A hang test fails when ode takes longer than this (it is expected to give up after about 27 s).
BOUND_S = 55


def _offline_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and no shared files: nothing here can reach a real account."""
    for name in [n for n in os.environ if n.startswith(("AWS_", "ODE_AWS_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def _ode(cwd: Path, *args: str) -> tuple[Ran, float]:
    """``ode ARGS`` as a user runs it, a process of its own (what an endpoint that never answers costs it, start to
    exit), failing past :data:`BOUND_S`; and how long it took."""
    started = time.monotonic()
    done = ode(*args, cwd=cwd, env={"NO_COLOR": "1", "ODE_SIMULATE_PROGRAMS": "0"}, process=True, timeout=BOUND_S)
    return done, time.monotonic() - started


# -- the clients ---------------------------------------------------------------------------------------------------

def test_every_client_has_timeouts_and_a_capped_standard_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    _offline_aws(monkeypatch)
    made = aws_clients.client("ssm", "eu-west-1")
    config = made.meta.config
    assert (config.connect_timeout, config.read_timeout) == (aws_clients.CONNECT_TIMEOUT_S,
                                                             aws_clients.READ_TIMEOUT_S)
    assert config.retries == {"mode": "standard", "total_max_attempts": aws_clients.MAX_ATTEMPTS}
    # standard mode waits at most 2 ** (attempt - 1) s between attempts
    worst = aws_clients.MAX_ATTEMPTS * aws_clients.READ_TIMEOUT_S + sum(2 ** i for i in range(aws_clients.MAX_ATTEMPTS))
    assert worst < 60
    assert made.meta.region_name == "eu-west-1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", "http://127.0.0.1:9")
    assert aws_clients.endpoint_of(aws_clients.client("ssm", "eu-west-1")) == "http://127.0.0.1:9"


@pytest.mark.parametrize("variable, value", [("ODE_AWS_READ_TIMEOUT", "soon"), ("ODE_AWS_READ_TIMEOUT", "0"),
                                             ("ODE_AWS_CONNECT_TIMEOUT", "nan"), ("ODE_AWS_MAX_ATTEMPTS", "2.5"),
                                             ("ODE_AWS_MAX_ATTEMPTS", "100")])
def test_a_bad_limit_is_a_usage_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                         value: str) -> None:
    _offline_aws(monkeypatch)
    monkeypatch.setenv(variable, value)
    with pytest.raises(UsageError, match=f"{variable}={value!r}"):
        aws_clients.client("ssm", "eu-west-1")


def test_a_silent_endpoint_is_waited_on_once_then_not_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import BotoCoreError, ReadTimeoutError

    _offline_aws(monkeypatch)
    monkeypatch.setenv("ODE_AWS_READ_TIMEOUT", "0.5")
    monkeypatch.setenv("ODE_AWS_MAX_ATTEMPTS", "2")
    aws_clients.forget_silent()
    try:
        with SilentServer() as silent:
            monkeypatch.setenv("AWS_ENDPOINT_URL", silent.url)
            ssm = aws_clients.client("ssm", "us-east-1")
            with pytest.raises(ReadTimeoutError):
                ssm.get_parameter(Name="/ode/x")
            assert silent.connections == 2  # one per attempt
            assert aws_clients.is_silent(silent.url)
            events = aws_clients.client("events", "us-east-1")  # another service on the same endpoint
            with pytest.raises(BotoCoreError, match="did not answer earlier in this run"):
                events.put_events(Entries=[{"Source": "ode", "DetailType": "x", "Detail": "{}"}])
            assert silent.connections == 2  # not asked again
            aws_clients.forget_silent()
            with pytest.raises(ReadTimeoutError):
                events.put_events(Entries=[{"Source": "ode", "DetailType": "x", "Detail": "{}"}])
            assert silent.connections == 4
    finally:
        aws_clients.forget_silent()


# -- the commands --------------------------------------------------------------------------------------------------

@pytest.mark.slow  # waits out the default timeouts, as a user would
def test_up_publishing_to_a_silent_ssm_and_bus_ends_with_warnings(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """SSM and EventBridge accept connections and never answer: the deploy is recorded, the lock is released and
    the run ends normally. A simulated run cannot check what a real engine published in SSM, so it says so once and
    publishes nothing there; each stack's lifecycle event is one warning (the endpoint is waited on once)."""
    _offline_aws(monkeypatch)
    library = tmp_path / "contracts"
    shutil.copytree(SAMPLE, library)
    envs = yaml.safe_load((library / "environments.yaml").read_text())
    envs["environments"]["dev"].update(publish="ssm", events={"bus": "platform-events"})
    (library / "environments.yaml").write_text(yaml.safe_dump(envs, sort_keys=False))
    state = tmp_path / "state"
    with SilentServer() as silent:
        monkeypatch.setenv("AWS_ENDPOINT_URL", silent.url)
        done, took = _ode(tmp_path, "up", "--env", "dev", "--contexts", "notifications", "--engine", "simulated",
                          "--contracts", str(library), "--state-dir", str(state))
        asked = silent.connections
    print(f"up against a silent SSM and bus: {took:.1f} s, {asked} connections")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "error:" not in done.stderr
    ssm = [line for line in done.stderr.splitlines() if line.startswith("warning:") and "SSM" in line]
    assert len(ssm) == 1 and "publishes nothing to SSM" in ssm[0], done.stderr
    assert any("did not answer earlier in this run" in line for line in done.stderr.splitlines())
    registry = Registry(state)
    assert {s.context: s.status for s in registry.stacks("dev")} == {
        "identity": "succeeded", "shared-bus": "succeeded", "notifications": "succeeded"}
    assert registry.lock_holder("dev") is None
    assert [r.status for r in registry.runs("dev")] == ["succeeded"]


@pytest.mark.slow  # waits out the default timeouts, as a user would
def test_status_against_a_silent_dynamodb_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _offline_aws(monkeypatch)
    with SilentServer() as silent:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", silent.url)
        done, took = _ode(tmp_path, "status", "--env", "dev", "--registry", "dynamodb://ode-reg?region=us-east-1",
                          "--contracts", str(SAMPLE), "--state-dir", str(tmp_path / "state"))
        asked = silent.connections
    print(f"status against a silent DynamoDB: {took:.1f} s, {asked} connections")
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "dynamodb://ode-reg" in errors[0] and "timeout" in errors[0].lower()
    assert asked == aws_clients.MAX_ATTEMPTS
    assert not (tmp_path / "state").exists()


def test_the_next_command_in_the_same_process_asks_a_silent_endpoint_again(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """ode run in-process (someone's tooling, a long-lived process): what one command learned of a silent endpoint is
    that command's; the next one asks again, as a new ``ode`` process would."""
    _offline_aws(monkeypatch)
    monkeypatch.setenv("ODE_AWS_READ_TIMEOUT", "0.5")
    monkeypatch.setenv("ODE_AWS_MAX_ATTEMPTS", "1")
    aws_clients.forget_silent()
    args = ["status", "--env", "dev", "--registry", "dynamodb://ode-reg?region=us-east-1", "--contracts", str(SAMPLE),
            "--state-dir", str(tmp_path / "state")]
    try:
        with SilentServer() as silent:
            monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", silent.url)
            for asked in (1, 2):
                done = ode(*args, env={"NO_COLOR": "1"})
                assert done.returncode == 1 and "timeout" in done.stderr.lower(), done.stderr
                assert silent.connections == asked  # this command waited on it: the last one's silence was forgotten
                assert not aws_clients.is_silent(silent.url)
    finally:
        aws_clients.forget_silent()
