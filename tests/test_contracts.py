"""The contract language: every error of CONTRACTS.md, named by file and field, all in one run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ode import ContractErrors, UnknownEnvironmentError, load_library, parse_duration
from ode.contracts import ContractError
from ode.contracts.versions import Version, VersionRange

from .conftest import ENVIRONMENTS, SAMPLE, context, write_library


def errors_of(root: Path, env: str | None = None) -> list[ContractError]:
    with pytest.raises(ContractErrors) as info:
        load_library(root, env)
    return info.value.errors


def find(errors: list[ContractError], file: str, field: str, text: str) -> ContractError:
    for e in errors:
        if e.file.endswith(file) and e.field == field and text in e.message:
            return e
    raise AssertionError(f"no error {file} {field} {text!r} among:\n" + "\n".join(map(str, errors)))


BUS = context("bus", "event-bus", provides={"bus": {"kind": "event-bus", "version": "1.0.0"}})


def test_sample_library_is_valid_in_every_environment() -> None:
    library = load_library(SAMPLE)
    assert len(library.contexts) >= 9
    kinds = {i.kind for c in library.contexts.values() for i in c.provides.values()}
    assert kinds == {"event", "event-bus", "http-api", "table", "bucket", "queue", "workflow", "network", "secret"}
    assert library.environments.environments["prod"].protected
    assert library.environments.ephemeral is not None
    assert set(library.environments.ephemeral.reuse) == {"network", "shared-bus"}
    for env in ("dev", "stage", "prod"):
        load_library(SAMPLE, env)


def test_every_error_is_reported_in_one_run(tmp_path: Path) -> None:
    env = {**ENVIRONMENTS, "ephemeral": {"base": "qa", "reuse": ["nobody"]}}
    root = write_library(tmp_path, [
        BUS,
        context("api", "serverless-api", provides={
            "api": {"kind": "http-api", "version": "1.2.0"},
            "Placed": {"kind": "event", "version": "1.0.0"},
        }, consumes=[{"context": "bus", "interface": "bus", "access": "publish"}]),
        context("alpha", "serverless-api", colour="blue", settings={"memory_mb": 64, "nope": 1},
                overrides={"qa": {"memory_mb": 512}}, environments=["dev", "staging"],
                provides={
                    "x": {"kind": "gizmo", "version": "1.0.0"},
                    "vpc": {"kind": "network", "version": "1.0.0"},
                    "E": {"kind": "event", "version": "1.0.0"},
                    "y": {"kind": "table", "version": "one"},
                },
                consumes=[
                    {"context": "alpha", "interface": "x"},
                    {"context": "ghost", "interface": "x"},
                    {"context": "api", "interface": "missing"},
                    {"context": "api", "interface": "api", "access": "write"},
                    {"context": "api", "interface": "Placed", "version": "^2"},
                    {"context": "api", "interface": "Placed", "version": "not a range"},
                    {"context": "onlyprod", "interface": "t"},
                ]),
        context("onlyprod", environments=["prod"]),
        context("a", consumes=[{"context": "b", "interface": "t"}]),
        context("b", consumes=[{"context": "c", "interface": "t"}]),
        context("c", consumes=[{"context": "a", "interface": "t"}]),
        context("nameless", context="Bad_Name"),
    ], environments=env, raw={
        "dup.yaml": "context: dup\nowner: x\nversion: 1.0.0\ncomponent: data-store\nowner: y\n",
        "syntax.yaml": "context: s\nprovides: [\n",
        "copy.yaml": "context: api\nowner: x\nversion: 1.0.0\ncomponent: data-store\n",
    })
    errors = errors_of(root)
    find(errors, "environments.yaml", "ephemeral.base", "'qa' is not in environments")
    find(errors, "alpha.yaml", "colour", "not a field")
    find(errors, "alpha.yaml", "settings.memory_mb", "greater than or equal to 128")
    find(errors, "alpha.yaml", "settings.nope", "not a setting of component 'serverless-api'")
    find(errors, "alpha.yaml", "overrides.qa", "'qa' is not in environments.yaml")
    find(errors, "alpha.yaml", "environments[1]", "'staging' is not in environments.yaml")
    find(errors, "alpha.yaml", "provides.x.kind", "kind must be one of")
    find(errors, "alpha.yaml", "provides.vpc.kind", "cannot provide a 'network' interface")
    find(errors, "alpha.yaml", "provides.y.version", "not a semantic version")
    find(errors, "alpha.yaml", "provides", "cannot publish them")
    find(errors, "alpha.yaml", "consumes[0].context", "consumes itself")
    find(errors, "alpha.yaml", "consumes[1].context", "'ghost' does not exist")
    find(errors, "alpha.yaml", "consumes[2].interface", "provides no interface 'missing'")
    find(errors, "alpha.yaml", "consumes[3].access", "'write' is not an access of http-api api/api")
    find(errors, "alpha.yaml", "consumes[4].version", "at 1.0.0, outside '^2'")
    find(errors, "alpha.yaml", "consumes[5].version", "not a version range")
    find(errors, "alpha.yaml", "consumes[6].context", "deployed in dev but its producer onlyprod is not")
    cycle = find(errors, "a.yaml", "consumes[0].context", "cycle of deploy edges")
    assert cycle.message.endswith("a -> b -> c -> a")
    find(errors, "Bad_Name.yaml", "context", "is not a context name")
    find(errors, "dup.yaml", "owner", "written twice")
    syntax = find(errors, "syntax.yaml", "", "YAML syntax")
    assert syntax.line == 2  # the line of the bracket left open
    find(errors, "copy.yaml", "context", "already defined in")
    # Lines point into the files users edit.
    assert find(errors, "alpha.yaml", "colour", "").line is not None


def test_errors_name_lines(tmp_path: Path) -> None:
    root = write_library(tmp_path, [], raw={"x.yaml": (
        "context: x\nowner: o\nversion: 1.0.0\ncomponent: data-store\nprovides:\n"
        "  t: {kind: table, version: 1.0.0}\nconsumes:\n  - {context: x, interface: t, acces: read}\n")})
    (e,) = errors_of(root)
    assert (e.line, e.field) == (8, "consumes[0].acces")
    assert str(e).startswith(f"{root / 'x.yaml'}:8: consumes[0].acces:") or str(e).endswith("(a typo?)")


def test_events_flowing_both_ways_are_not_a_cycle(tmp_path: Path) -> None:
    pub = [{"context": "bus", "interface": "bus", "access": "publish"}]
    root = write_library(tmp_path, [
        BUS,
        context("orders", "serverless-api", provides={"Placed": {"kind": "event", "version": "1.0.0"}},
                consumes=[*pub, {"context": "payments", "interface": "Paid"}]),
        context("payments", "workflow", provides={"Paid": {"kind": "event", "version": "1.0.0"}},
                consumes=[*pub, {"context": "orders", "interface": "Placed"}]),
    ])
    library = load_library(root)
    assert set(library.contexts) == {"bus", "orders", "payments"}


def test_unknown_environment_is_named() -> None:
    with pytest.raises(UnknownEnvironmentError, match="unknown environment 'qa'.*dev, stage, prod"):
        load_library(SAMPLE, "qa")


def test_missing_environments_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("context: a\n")
    errors = errors_of(tmp_path)
    find(errors, "environments.yaml", "", "is missing")


def test_overrides_merge_over_settings() -> None:
    library = load_library(SAMPLE)
    orders = library.contexts["orders"]
    assert orders.settings_for("dev")["memory_mb"] == 512
    assert orders.settings_for("prod")["memory_mb"] == 1024


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("8h", 28800), ("2d", 172800)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["8", "0h", "1w", "h", "-1h", ""])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(("rng", "yes", "no"), [
    ("^1.2", ["1.2.0", "1.9.9"], ["1.1.9", "2.0.0"]),
    ("^0.3", ["0.3.0", "0.3.9"], ["0.4.0", "0.2.9"]),
    ("~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0", "1.2.2"]),
    (">=1.0,<2", ["1.0.0", "1.99.0"], ["2.0.0", "0.9.9"]),
    ("1.x", ["1.0.0", "1.5.2"], ["2.0.0", "0.1.0"]),
    ("*", ["0.0.1", "9.9.9"], []),
    ("1.2.3", ["1.2.3"], ["1.2.4"]),
])
def test_version_ranges(rng: str, yes: list[str], no: list[str]) -> None:
    r = VersionRange.parse(rng)
    assert all(r.allows(v) for v in yes)
    assert not any(r.allows(v) for v in no)


def test_versions_order_prereleases_first() -> None:
    assert Version.parse("1.0.0-rc.1") < Version.parse("1.0.0") < Version.parse("1.0.1")
    with pytest.raises(ValueError):
        Version.parse("1.0")
