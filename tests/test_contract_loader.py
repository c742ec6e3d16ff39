"""The loader against careless and hostile input: odd files, odd bytes, many errors, and random mutations.

Each case here once crashed, hung or misread a library; the property-based tests keep it that way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ode import ContractErrors, load_library, parse_duration
from ode.contracts import ContractError, json_schema
from ode.contracts import diagnostics as contracts_module
from ode.contracts.versions import Version, VersionRange

from .cli_runner import ode
from .conftest import ENVIRONMENTS, ROOT, SAMPLE, context, write_library


def errors_of(root: Path, env: str | None = None) -> list[ContractError]:
    with pytest.raises(ContractErrors) as info:
        load_library(root, env)
    return info.value.errors


def one(errors: list[ContractError], file: str, field: str, text: str) -> ContractError:
    hits = [e for e in errors if e.file.endswith(file) and e.field == field and text in e.message]
    assert hits, f"no error {file} {field} {text!r} among:\n" + "\n".join(map(str, errors))
    return hits[0]


BUS = context("bus", "event-bus", provides={"bus": {"kind": "event-bus", "version": "1.0.0"}})


# -- odd files --------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_named_like_a_contract_does_not_hang_validate(tmp_path: Path) -> None:
    root = write_library(tmp_path / "lib", [context("a")])
    os.mkfifo(root / "x.yaml")
    (root / ".#a.yaml").write_text("this: [is an editor's lock file\n")
    # Bounded: a regression that blocks on the FIFO is interrupted (as Ctrl-C would) and fails the test instead of
    # blocking the suite.
    result = ode("validate", "--contracts", str(root), cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert set(load_library(root).contexts) == {"a"}


def test_environments_file_that_is_not_a_regular_file(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    (root / "environments.yaml").mkdir()
    one(errors_of(root), "environments.yaml", "", "not a regular file")


def test_a_byte_order_mark_is_not_part_of_the_first_key(tmp_path: Path) -> None:
    root = write_library(tmp_path, [])
    (root / "a.yaml").write_bytes(b"\xef\xbb\xbf" + yaml.safe_dump(context("a")).encode())
    assert "a" in load_library(root).contexts


def test_a_nul_byte_is_an_error_not_a_truncated_file(tmp_path: Path) -> None:
    text = "context: a\nowner: x\x00\nversion: 1.0.0\ncomponent: data-store\n"
    root = write_library(tmp_path, [], raw={"a.yaml": text})
    e = one(errors_of(root), "a.yaml", "", "NUL")
    assert e.line == 2


def test_text_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    root = write_library(tmp_path, [])
    (root / "a.yaml").write_bytes(b"context: a\nowner: \xff\xfe\n")
    assert one(errors_of(root), "a.yaml", "", "not UTF-8").line == 2


def test_yaml_is_read_as_yaml_1_2_once(tmp_path: Path) -> None:
    # YAML 1.1 would read `on` and `yes` as booleans and 017 as octal 15: one parser, one reading.
    root = write_library(tmp_path, [], raw={"on.yaml": (
        "context: on-call\nowner: on\nversion: 1.0.0\ndescription: yes\ncomponent: data-store\n"
        "settings: {queue_retention_s: 0o17000}\n")})
    ctx = load_library(root).contexts["on-call"]
    assert (ctx.owner, ctx.description) == ("on", "yes")
    assert ctx.settings["queue_retention_s"] == 0o17000


# -- durations --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["9999999999d", "3651d", "8h\n\n", "٣h"])
def test_durations_out_of_bounds_or_foreign_are_value_errors(text: str) -> None:
    if text.strip() == "8h":
        assert parse_duration(text) == 8 * 3600
        return
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_a_huge_max_ttl_is_a_field_error_not_an_overflow(tmp_path: Path) -> None:
    env = {**ENVIRONMENTS, "ephemeral": {"base": "dev", "ttl": "8h", "max_ttl": "9999999999d"}}
    root = write_library(tmp_path, [context("a")], environments=env)
    e = one(errors_of(root), "environments.yaml", "ephemeral.max_ttl", "longest duration")
    assert e.line is not None


# -- many errors: linear --------------------------------------------------------------------------------------


def test_lines_of_many_errors_come_from_one_pass_per_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    consumes = [{"context": "ghost", "interface": f"i{i}", "acces": "read"} for i in range(4000)]
    root = write_library(tmp_path, [context("a", consumes=consumes)])
    calls = []
    real = contracts_module.yaml.compose

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    contracts_module._positions_of.cache_clear()
    monkeypatch.setattr(contracts_module.yaml, "compose", counting)
    errors = errors_of(root)
    assert len([e for e in errors if e.field.endswith(".acces")]) == 4000
    assert errors[-1].line is not None and errors[-1].line > 4000
    assert len(calls) == 1  # not one parse per error


# -- messages that help -----------------------------------------------------------------------------------------


def test_misspelt_names_get_suggestions(tmp_path: Path) -> None:
    pub = {"context": "bus", "interface": "bus", "access": "publish"}
    root = write_library(tmp_path, [
        BUS,
        context("orders", "serverless-api", provids={}, settings={"memroy_mb": 512},
                overrides={"prod": {"timeout": 3}}, provides={"api": {"kind": "http-apii", "version": "1.0.0"},
                                                               "t": {"kind": "table", "version": "1.0.0"}},
                consumes=[pub, {"context": "payment", "interface": "t"},
                          {"context": "payments", "interface": "tabel"},
                          {"context": "payments", "interface": "t", "access": "reed"}]),
        context("payments", environments=["dev", "prd"]),
        context("store", "data-store", provides={"E": {"kind": "event", "version": "1.0.0"}}),
        context("typo", "serverles-api"),
    ])
    errors = errors_of(root)
    field = one(errors, "orders.yaml", "provids", "did you mean 'provides'?")
    assert "allowed here:" in field.message and "consumes" in field.message
    setting = one(errors, "orders.yaml", "settings.memroy_mb", "did you mean 'memory_mb'?")
    assert "timeout_s" in setting.message  # what is allowed
    one(errors, "orders.yaml", "overrides.prod.timeout", "did you mean 'timeout_s'?")
    one(errors, "orders.yaml", "provides.api.kind", "did you mean 'http-api'?")
    one(errors, "orders.yaml", "consumes[1].context", "did you mean 'payments'?")
    one(errors, "orders.yaml", "consumes[3].access", "did you mean 'read'?")
    one(errors, "payments.yaml", "environments[1]", "did you mean 'prod'?")
    one(errors, "typo.yaml", "component", "did you mean 'serverless-api'?")
    can = one(errors, "store.yaml", "provides.E.kind", "cannot provide a 'event'")
    assert "serverless-api" in can.message and "event-worker" in can.message
    events = one(errors, "store.yaml", "provides", "cannot publish them")
    assert "(E)" in events.message


def test_no_such_interface_suggests_the_closest(tmp_path: Path) -> None:
    root = write_library(tmp_path, [
        context("a", provides={"orders-table": {"kind": "table", "version": "1.0.0"}}),
        context("b", consumes=[{"context": "a", "interface": "order-table"}]),
    ])
    e = one(errors_of(root), "b.yaml", "consumes[0].interface", "did you mean 'orders-table'?")
    assert "it provides orders-table" in e.message


def test_a_file_that_does_not_parse_is_reported_once_without_cascade(tmp_path: Path) -> None:
    root = write_library(tmp_path, [
        context("orders", consumes=[{"context": "media", "interface": "t"}, {"context": "bad", "interface": "x"}],
                colour="red"),
        context("bad", provides={"x": {"kind": "table", "version": "one"}}),
    ], raw={"media.yaml": "context: media\nowner: team\nprovides: [\n"})
    errors = errors_of(root)
    assert [e for e in errors if e.file.endswith("media.yaml")] == [one(errors, "media.yaml", "", "YAML syntax")]
    one(errors, "orders.yaml", "colour", "not a field")  # the other file's error is still there
    one(errors, "bad.yaml", "provides.x.version", "not a semantic version")
    assert not [e for e in errors if "does not exist" in e.message or "provides no interface" in e.message], errors


def test_a_missing_owner_does_not_hide_the_files_other_errors(tmp_path: Path) -> None:
    doc = context("a", "serverless-api", settings={"memry_mb": 1})
    del doc["owner"]
    root = write_library(tmp_path, [doc])
    errors = errors_of(root)
    one(errors, "a.yaml", "owner", "is required")
    one(errors, "a.yaml", "settings.memry_mb", "did you mean 'memory_mb'?")


# -- versions ---------------------------------------------------------------------------------------------------


def test_prereleases_order_numerically() -> None:
    assert Version.parse("1.0.0-rc.2") < Version.parse("1.0.0-rc.10") < Version.parse("1.0.0")
    assert not Version.parse("1.0.0-rc.10") < Version.parse("1.0.0-rc.2")
    for bad in ("v1.2.3", " 1.2.3", "1.2", "01.2.3"):
        with pytest.raises(ValueError):
            Version.parse(bad)


@pytest.mark.parametrize("text", ["^1.2", "~1.2.3", ">=1.0,<2", ">=1.0, <2", "1.x", "*", "1.2.3"])
def test_documented_range_forms_parse(text: str) -> None:
    assert VersionRange.parse(text).allows("1.2.3")


@pytest.mark.parametrize("text", ["", "banana", "^^1", ">=1.0;<2"])
def test_bad_ranges_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError, match="version range"):
        VersionRange.parse(text)


# -- the schema -------------------------------------------------------------------------------------------------


def test_schema_checks_settings_per_component() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema ships with the test tools")
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    import yaml_rs

    for path in sorted(SAMPLE.glob("*.yaml")):
        if path.name != "environments.yaml":
            assert not list(validator.iter_errors(yaml_rs.loads(path.read_text()))), path
    orders = yaml_rs.loads((SAMPLE / "orders.yaml").read_text())
    assert not validator.is_valid({**orders, "settings": {"memory": 512}})
    assert not validator.is_valid({**orders, "settings": {"memory_mb": 64}})  # below the limit
    assert not validator.is_valid({**orders, "overrides": {"prod": {"cidr": "10.0.0.0/16"}}})  # a network setting
    assert not validator.is_valid({**orders, "component": "serverless"})
    assert validator.is_valid({**orders, "overrides": {"prod": {"timeout_s": 30}}})
    assert set(schema["properties"]["component"]["enum"]) == set(contracts_module.KINDS)
    access = schema["$defs"]["Consumes"]["properties"]["access"]
    assert {"publish", "subscribe", "read-write"} <= set(access["enum"])
    memory = schema["$defs"]["settings-serverless-api"]["properties"]["memory_mb"]
    assert memory["minimum"] == 128 and memory["default"] == 256 and memory["description"]


# -- the standing guard: random and mutated files ---------------------------------------------------------------


def _check_errors(root: Path) -> None:
    try:
        load_library(root)
    except ContractErrors as exc:
        assert exc.errors
        names = {p.name for p in root.iterdir()} | {root.name}
        for e in exc.errors:
            assert e.file and Path(e.file).name in names, e


_YAML_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
_SAMPLE_TEXTS = sorted(p.read_text() for p in SAMPLE.glob("*.yaml") if p.name != "environments.yaml")
_ENV_TEXT = (SAMPLE / "environments.yaml").read_text()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_YAML_TEXT)
def test_random_text_never_crashes_the_loader(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    root = write_library(tmp_path_factory.mktemp("lib"), [])
    (root / "r.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    _check_errors(root)


@st.composite
def _mutated(draw: st.DrawFn, texts: list[str] = _SAMPLE_TEXTS) -> str:
    text = draw(st.sampled_from(texts))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "dup", "cut"]))
        if not text:
            break
        at = draw(st.integers(0, len(text) - 1))
        if op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        elif op == "insert":
            text = text[:at] + draw(st.sampled_from(["\x00", "\ufeff", ": ", "- ", "[", "{", "}", "\t", "&a ", "*a",
                                                     "!!binary ", "? ", "---\n", "'", '"', "\n  ", "9999999999d",
                                                     "kind: event\n", "context: orders\n"])) + text[at:]
        elif op == "replace":
            text = text[:at] + draw(st.characters(blacklist_categories=("Cs",))) + text[at + 1:]
        elif op == "dup":
            lines = text.splitlines(keepends=True)
            i = draw(st.integers(0, len(lines) - 1))
            text = "".join(lines[: i + 1] + [lines[i]] + lines[i + 1:])
        else:
            text = text[:at]
    return text


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(_mutated(), min_size=1, max_size=3))
def test_mutated_contracts_never_crash_the_loader(tmp_path_factory: pytest.TempPathFactory, texts: list[str]) -> None:
    root = write_library(tmp_path_factory.mktemp("lib"), [])
    for path in SAMPLE.glob("*.yaml"):
        (root / path.name).write_text(path.read_text())
    for i, text in enumerate(texts):
        (root / f"m{i}.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    _check_errors(root)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20))
def test_any_yaml_value_as_environments_or_contract(tmp_path_factory: pytest.TempPathFactory, data: Any) -> None:
    root = tmp_path_factory.mktemp("lib")
    (root / "environments.yaml").write_text(yaml.safe_dump(data))
    (root / "c.yaml").write_text(yaml.safe_dump(data))
    _check_errors(root)


def test_errors_in_environments_yaml_do_not_hide_the_contracts_errors(tmp_path: Path) -> None:
    env = {"projct": "shop", "environments": {"dev": {"acount": "111111111111", "region": "us-east-1"},
                                              "prod": {"account": "33", "region": "eu-west-1"}},
           "ephemeral": {"base": "dev", "tll": "8h"}}
    root = write_library(tmp_path, [context("a", "serverless-api", settings={"memri_mb": 1},
                                            environments=["dev", "prod"])], environments=env)
    errors = errors_of(root)
    one(errors, "environments.yaml", "projct", "did you mean 'project'?")
    one(errors, "environments.yaml", "environments.dev.acount", "did you mean 'account'?")
    one(errors, "environments.yaml", "ephemeral.tll", "did you mean 'ttl'?")
    one(errors, "a.yaml", "settings.memri_mb", "did you mean 'memory_mb'?")
    assert not [e for e in errors if "is not in environments.yaml" in e.message]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(env_text=_mutated([_ENV_TEXT]), text=_mutated())
def test_mutated_environments_never_crash_the_loader(tmp_path_factory: pytest.TempPathFactory, env_text: str,
                                                     text: str) -> None:
    root = tmp_path_factory.mktemp("lib")
    for path in SAMPLE.glob("*.yaml"):
        (root / path.name).write_text(path.read_text())
    (root / "environments.yaml").write_text(env_text, encoding="utf-8", errors="surrogatepass")
    (root / "m.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    _check_errors(root)


def test_values_come_from_one_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    # PyYAML only locates lines of errors; reading a valid library never asks it for a value.
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("PyYAML read a value")

    for name in ("load", "safe_load", "load_all", "safe_load_all", "compose"):
        monkeypatch.setattr(contracts_module.yaml, name, refuse)
    assert len(load_library(SAMPLE).contexts) >= 9
