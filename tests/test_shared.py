"""The small shared modules: one SARIF writer, one secret mask, statuses as enums, typed progress events, one git
helper, and the contract rules' stable ids."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest

from ode import git, sarif
from ode.authoring.evolution import RULES as DIFF_RULES
from ode.authoring.evolution import Change, DiffReport, InterfaceReport
from ode.contracts import RULES as CONTRACT_RULES
from ode.contracts import read_library
from ode.contracts.policies import RULES as POLICY_RULES
from ode.errors import UsageError
from ode.execution.events import (
    EngineMessage,
    ResourceProgress,
    RunFinished,
    RunInterrupted,
    RunStarted,
    StackChanged,
    as_reporter,
    engine_line,
)
from ode.execution.results import RunResult, StackOutcome
from ode.masking import SECRET_MASK, mask
from ode.policy import Report, Violation
from ode.progress import LineReporter
from ode.status import StackStatus

from .conftest import ENVIRONMENTS, context, write_library

SCHEMA = Path(__file__).resolve().parent / "data" / "sarif-schema-2.1.0.json"
URN = "urn:pulumi:dev.orders::shop::ode:index:Service$aws:lambda/function:Function::orders-api"


def _violation(rule: str, *, file: str = "contracts/orders.yaml", line: int | None = 7, waived: bool = False,
               level: str = "mandatory") -> Violation:
    return Violation(rule, level, "prod.orders", "orders", "orders-api", "aws:lambda/function:Function",
                     "something is wrong", waived, file, line)


# -- SARIF ------------------------------------------------------------------------------------------------------------


def test_the_check_log_is_what_the_policy_report_wrote_and_valid_sarif() -> None:
    report = Report("prod", [_violation("log-retention"), _violation("alarms", level="advisory", waived=True),
                             _violation("required-tags", file="/abs/catalog.yaml", line=None)])
    log = sarif.check_log(report, POLICY_RULES)
    assert log == report.to_sarif()  # the same document the policy package's own method writes
    jsonschema.Draft4Validator(json.loads(SCHEMA.read_text())).validate(log)
    results = log["runs"][0]["results"]
    assert results[0]["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "contracts/orders.yaml", "uriBaseId": "%SRCROOT%"}
    assert results[1]["suppressions"][0]["status"] == "accepted" and results[1]["level"] == "warning"
    assert results[2]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "file:///abs/catalog.yaml"
    assert results[2]["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}


def test_the_diff_log_has_the_same_shape_as_the_check_log() -> None:
    broken = InterfaceReport("orders", "OrderPlaced", "1.0.0", "1.1.0",
                             [Change("property-removed", "orders", "OrderPlaced", "total: removed")],
                             consumers=["payments"], file="contracts/orders.yaml", line=12)
    added = InterfaceReport("orders", "refunds", None, "1.0.0", [], file="/abs/orders.yaml")
    assert broken.verdict == "error" and added.verdict == "compatible"
    log = sarif.diff_log(DiffReport("main", [broken, added]), DIFF_RULES)
    jsonschema.Draft4Validator(json.loads(SCHEMA.read_text())).validate(log)
    check = sarif.check_log(Report("prod", [_violation("alarms")]), POLICY_RULES)
    assert log["$schema"] == check["$schema"] and log["version"] == check["version"] == "2.1.0"
    assert set(log["runs"][0]) == set(check["runs"][0])  # tool, automationDetails, results
    first, second = log["runs"][0]["results"]
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert rules[first["ruleIndex"]]["id"] == first["ruleId"] == "property-removed" and first["level"] == "error"
    assert first["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "contracts/orders.yaml",
                                                                            "uriBaseId": "%SRCROOT%"}
    assert first["locations"][0]["physicalLocation"]["region"] == {"startLine": 12}
    assert second["ruleId"] == "interface-added" and second["level"] == "note"
    assert DiffReport("main", [broken]).to_sarif() == sarif.diff_log(DiffReport("main", [broken]), DIFF_RULES)


# -- the secret mask and statuses --------------------------------------------------------------------------------------


def test_one_mask_everywhere() -> None:
    from ode import rendering
    from ode.engines import pulumi as pulumi_engine

    assert mask({"a": 1, "b": 2}, ["b"]) == {"a": 1, "b": "[secret]"}
    assert rendering.SECRET_MASK is pulumi_engine.SECRET_MASK is SECRET_MASK
    source = Path(__file__).resolve().parents[1] / "platform" / "ode"
    defined = [p.relative_to(source).as_posix() for p in source.rglob("*.py")
               if re.search(r"^SECRET_MASK\s*=", p.read_text(), re.M)]
    assert defined == ["masking.py"]
    outcome = StackOutcome("dev.a", "a", StackStatus.SUCCEEDED, outputs={"db": {"password": "x"}},
                           secret_outputs=frozenset({"db"}))
    assert outcome.to_dict()["outputs"] == {"db": SECRET_MASK}


def test_statuses_are_enums_that_read_and_write_as_their_strings() -> None:
    result = RunResult("dev", "simulated", "up", [StackOutcome("dev.a", "a", StackStatus.FAILED),
                                                   StackOutcome("dev.b", "b", StackStatus.SKIPPED)])
    assert not result.ok and result.counts() == {"failed": 1, "skipped": 1}
    text = json.dumps(result.to_dict())
    assert '"status": "failed"' in text and "StackStatus" not in text
    assert f"{StackStatus.FAILED:<8}|" == "failed  |" and StackStatus("succeeded") is StackStatus.SUCCEEDED


# -- typed progress events ---------------------------------------------------------------------------------------------


def test_an_engine_line_is_read_once_into_a_typed_event() -> None:
    step = engine_line("dev.orders", f"creating {URN}")
    assert isinstance(step, ResourceProgress) and step.step == ("creating", "orders-api",
                                                                "aws:lambda/function:Function")
    assert engine_line("dev.orders", "up (simulated)") == EngineMessage("dev.orders", "up (simulated)")


def _rendered(verbose: bool) -> list[str]:
    out = io.StringIO()
    reporter = LineReporter(out, verbose=verbose, colour=False)
    table = URN.replace("ode:index:Service$aws:lambda/function:Function::orders-api",
                        "aws:dynamodb/table:Table::orders-table")
    for event in (RunStarted("dev", "up", ("dev.a", "dev.b")), StackChanged("dev.a", "running", "new stack"),
                  engine_line("dev.a", "up (simulated)"), engine_line("dev.a", f"creating {URN}"),
                  engine_line("dev.a", f"created {URN}"), engine_line("dev.a", f"created {table}"),
                  engine_line("dev.a", f"warning: {URN} is deprecated"),
                  engine_line("dev.a", f"warning: {URN} is deprecated"), StackChanged("dev.a", "succeeded"),
                  RunInterrupted("dev", 1), RunFinished("dev")):
        reporter.handle(event)
    return [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]  # without the time of day


def test_the_line_reporter_says_a_line_per_stack_event_and_counts_resources() -> None:
    lines = _rendered(verbose=False)
    assert lines[0] == "up dev: 2 stacks"
    assert lines[1] == f"{'dev.a':<32} running: new stack"
    # an engine's warning is said, once, with the resource as type and name
    assert lines[2] == f"{'dev.a':<32}   warning: aws:lambda:Function orders-api is deprecated"
    assert re.fullmatch(rf"{'dev.a':<32} succeeded \(\d+\.\ds\): 2 created", lines[3])
    assert lines[4] == f"{'dev.*':<32} interrupted: waiting for 1 running stack(s) to finish"
    assert len(lines) == 5


def test_the_line_reporter_says_each_resource_with_verbose_and_never_a_urn() -> None:
    lines = _rendered(verbose=True)
    assert f"{'dev.a':<32}   creating aws:lambda:Function orders-api" in lines
    assert f"{'dev.a':<32}   created aws:dynamodb:Table orders-table" in lines
    assert f"{'dev.a':<32}   up (simulated)" in lines
    assert len([line for line in lines if "warning:" in line]) == 2  # verbose repeats what the engine said
    assert not [line for line in lines if "urn:" in line]


def test_a_reporter_with_the_older_calls_still_hears_everything() -> None:
    heard: list[tuple[str, ...]] = []

    class Old:
        def start(self, env: str, operation: str, stacks: list[str]) -> None:
            heard.append(("start", env, operation, *stacks))

        def update(self, stack: str, state: str, detail: str = "") -> None:
            heard.append(("update", stack, state, detail))

        def finish(self) -> None:
            heard.append(("finish",))

    reporter = as_reporter(Old())
    for event in (RunStarted("dev", "up", ("dev.a",)), engine_line("dev.a", f"created {URN}"),
                  StackChanged("dev.a", "failed", "boom"), RunFinished("dev")):
        reporter.handle(event)
    assert heard == [("start", "dev", "up", "dev.a"), ("update", "dev.a", "running", f"created {URN}"),
                     ("update", "dev.a", "failed", "boom"), ("finish",)]


# -- git ---------------------------------------------------------------------------------------------------------------


def test_the_git_helper_names_what_went_wrong(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.email=a@b.c", "-c", "user.name=a", "commit", "-q",
                    "--allow-empty", "-m", "first"], check=True)
    (tmp_path / "a.txt").write_text("one")
    assert git.top(tmp_path, purpose="testing") == tmp_path.resolve()
    assert git.changed_paths(tmp_path, "HEAD", purpose="testing") == {"a.txt"}
    assert git.file_at(tmp_path, "HEAD", "a.txt") is None
    with pytest.raises(UsageError, match=r"^--since: git does not know the ref 'nope'$"):
        git.merge_base(tmp_path, "nope", purpose="testing")
    assert git.current_branch(tmp_path) in ("master", "main")
    assert git.current_branch(tmp_path / "nowhere") is None


# -- the contract rules' ids ----------------------------------------------------------------------------------------


def test_each_cross_file_mistake_names_its_rule(tmp_path: Path) -> None:
    root = write_library(tmp_path, [
        context("a", consumes=[{"context": "ghost", "interface": "t"}, {"context": "a", "interface": "x"}],
                overrides={"nowhere": {}}),
    ], environments={**ENVIRONMENTS, "ephemeral": {"base": "dev", "reuse": ["nobody"]}})
    library, errors = read_library(root)
    assert library is not None and not errors
    rules = {e.rule for e in library.check()}
    assert {"unknown-context", "consumes-itself", "unknown-environment", "reused-context"} <= rules
    assert rules <= set(CONTRACT_RULES)
    source = (Path(__file__).resolve().parents[1] / "platform/ode/contracts/rules.py").read_text()
    outside_err = {"reused-context", "deploy-cycle", "aws-refusal"}  # appended directly, not through err()
    assert set(re.findall(r'err\("([a-z-]+)"', source)) | outside_err == set(CONTRACT_RULES)
