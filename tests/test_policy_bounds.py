"""Bounds on what a policy setting may say: a waiver runs at most three years, a rule's numbers stay in what the rule
can mean; and a disabled rule is named in ``ode check``'s summary, not silently absent."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ode.cli import main
from ode.contracts import ContractErrors, load_library
from ode.contracts.policies import WAIVER_HORIZON_DAYS, within_horizon

from .conftest import ENVIRONMENTS, context, write_library


def ode(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)  # a traceback fails the test


def with_waiver(root: Path, expires: str) -> Path:
    waiver = {"rule": "log-retention", "reason": "short-lived debug logs", "expires": expires}
    return write_library(root, [context("audit", waivers=[waiver])])


def with_policies(root: Path, policies: dict[str, Any]) -> Path:
    envs = {**ENVIRONMENTS, "environments": {**ENVIRONMENTS["environments"],
                                             "dev": {"account": "111111111111", "region": "us-east-1",
                                                     "policies": policies}}}
    return write_library(root, [context("audit")], environments=envs)


def errors_of(root: Path) -> list[str]:
    with pytest.raises(ContractErrors) as caught:
        load_library(root)
    return [str(e) for e in caught.value.errors]


@pytest.mark.parametrize("expires", ["9999-12-31",
                                     (date.today() + timedelta(days=WAIVER_HORIZON_DAYS + 2)).isoformat()])
def test_a_waiver_far_ahead_is_refused_naming_the_field(tmp_path: Path, expires: str) -> None:
    result = ode("validate", "--contracts", str(with_waiver(tmp_path, expires)))
    assert result.exit_code == 2
    line = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert "audit.yaml" in line and "waivers[0].expires" in line and "more than three years ahead" in line


def test_a_waiver_within_three_years_and_an_expired_one_are_accepted(tmp_path: Path) -> None:
    ahead = (date.today() + timedelta(days=2 * 365)).isoformat()
    assert load_library(with_waiver(tmp_path / "ahead", ahead)).contexts["audit"].waivers[0].expires.isoformat() \
        == ahead
    load_library(with_waiver(tmp_path / "past", "2020-01-01"))  # expired: the rule applies again, as documented


def test_the_horizon_is_three_years_to_the_day() -> None:
    today = date(2026, 12, 4)
    assert within_horizon(date(2029, 12, 4), today) == date(2029, 12, 4)  # 1,096 days: three years and a leap day
    with pytest.raises(ValueError, match="2029-12-05 is more than three years ahead"):
        within_horizon(date(2029, 12, 5), today)


@pytest.mark.parametrize(("days", "says"), [
    (10**29, "100000... (30 digits) is outside 1 to 3653"),
    (1e29, "1e+29 is not a whole number"),
    (0, "0 is outside 1 to 3653"),
    (3654, "3654 is outside 1 to 3653, the days CloudWatch can keep logs"),
    (-5, "is not a whole number of 0 or more"),
])
def test_minimum_days_beyond_cloudwatchs_retention_is_refused(tmp_path: Path, days: Any, says: str) -> None:
    found = errors_of(with_policies(tmp_path, {"log-retention": {"level": "mandatory", "minimum_days": days}}))
    assert len(found) == 1 and "environments.yaml" in found[0] and "log-retention.minimum_days" in found[0]
    assert says in found[0]


@pytest.mark.parametrize("days", [1, 365, 3653])
def test_minimum_days_within_cloudwatchs_retention_is_accepted(tmp_path: Path, days: int) -> None:
    load_library(with_policies(tmp_path, {"log-retention": {"level": "mandatory", "minimum_days": days}}))


def test_the_check_summary_names_the_disabled_rules(tmp_path: Path) -> None:
    root = with_policies(tmp_path, {"alarms": "disabled", "required-tags": {"level": "disabled"}})
    text = ode("check", "--env", "dev", "--contracts", str(root))
    assert text.exit_code == 0, text.output
    summary = text.stdout.strip().splitlines()[-1]
    assert summary.startswith("check dev: ok:") and summary.endswith("; disabled: required-tags, alarms")
    data = json.loads(ode("check", "--env", "dev", "--contracts", str(root), "--format", "json").stdout)
    assert data["disabled"] == ["required-tags", "alarms"]
    # With no rule disabled, the summary says nothing of it.
    plain = ode("check", "--env", "dev", "--contracts", str(with_policies(tmp_path / "plain", {})))
    assert "disabled" not in plain.stdout
