"""The one SARIF 2.1.0 writer, for ``ode check`` (policy violations) and ``ode diff`` (interface changes).

Both logs have the same shape, as GitHub code scanning takes it: one rule per stable rule id, each result at the
contract file (relative to the checkout where it was named so, else a ``file://`` URI) and line that owns it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
VERSION = "2.1.0"


def artifact(file: str) -> dict[str, str]:
    """A contract file as SARIF locates it: relative to the checkout (code scanning's source root) when it was
    named so, else a ``file://`` URI."""
    path = Path(file)
    if path.is_absolute():
        return {"uri": path.as_uri()}
    return {"uri": path.as_posix(), "uriBaseId": "%SRCROOT%"}


def physical_location(file: str, line: int | None) -> dict[str, Any]:
    """Where a result stands: the file, and the line when known (SARIF lines start at 1)."""
    return {"artifactLocation": artifact(file), "region": {"startLine": line or 1}}


def log(tool: str, rules: list[dict[str, Any]], results: list[dict[str, Any]], *, version: str | None = None,
        information_uri: str | None = None, automation_id: str | None = None) -> dict[str, Any]:
    """A SARIF log of one run of ``tool``."""
    driver: dict[str, Any] = {"name": tool}
    if version is not None:
        driver["version"] = version
    if information_uri is not None:
        driver["informationUri"] = information_uri
    driver["rules"] = rules
    run: dict[str, Any] = {"tool": {"driver": driver}}
    if automation_id is not None:
        run["automationDetails"] = {"id": automation_id}
    run["results"] = results
    return {"$schema": SCHEMA, "version": VERSION, "runs": [run]}


# -- ode check --------------------------------------------------------------------------------------------------------


def policy_level(level: str) -> str:
    """A policy level as SARIF says it: mandatory is an error, advisory a warning, anything else a note."""
    return {"mandatory": "error", "advisory": "warning"}.get(level, "note")


def check_log(report: Any, rules: Mapping[str, Any], tool_version: str = "0.1.0") -> dict[str, Any]:
    """The SARIF of a policy report (``ode.policy.Report``) over the rule catalogue ``rules`` (id -> ``RuleInfo``):
    one rule per rule id with its help, each violation at the contract file and line that owns the resource.
    Waived results carry an accepted suppression."""
    ids = list(rules)
    described = [{"id": r.id, "name": "".join(p.capitalize() for p in r.id.split("-")),
                  "shortDescription": {"text": r.description}, "fullDescription": {"text": r.help},
                  "help": {"text": r.help, "markdown": f"**{r.id}**: {r.help}"},
                  "defaultConfiguration": {"level": policy_level(r.level), "enabled": r.level != "disabled"},
                  "properties": {"tags": ["security", "compliance", r.scope]}} for r in rules.values()]
    results = []
    for v in report.violations:
        result: dict[str, Any] = {
            "ruleId": v.rule, "ruleIndex": ids.index(v.rule), "level": policy_level(v.level),
            "message": {"text": f"{v.stack}: {v.message}"},
            "locations": [{"physicalLocation": physical_location(v.file, v.line),
                           "logicalLocations": [{"name": v.resource or v.context, "kind": "resource",
                                                 "fullyQualifiedName": f"{v.stack}/{v.resource or v.context}"}]}],
            "partialFingerprints": {"odeViolation/v1": f"{v.rule}:{v.stack}:{v.resource or ''}"},
            "properties": {"stack": v.stack, "context": v.context, "resourceType": v.type},
        }
        if v.waived:
            result["suppressions"] = [{"kind": "external", "status": "accepted",
                                       "justification": "waived in the contract"}]
        results.append(result)
    return log("ode check", described, results, version=tool_version, automation_id=f"ode-check/{report.env}/")


# -- ode diff ---------------------------------------------------------------------------------------------------------


def diff_log(report: Any, rules: Mapping[str, tuple[bool, str]], tool_version: str = "0.1.0") -> dict[str, Any]:
    """The SARIF of an interface diff (``ode.authoring.evolution.DiffReport``) over its rule table ``rules``
    (id -> (breaking, description)): one result per change; a breaking change without a new major version is an
    error, a needless major version or a breaking one with it a warning, the rest notes."""
    ids = list(rules)
    described = [{"id": rule, "name": "".join(p.capitalize() for p in rule.split("-")),
                  "shortDescription": {"text": text}, "fullDescription": {"text": text},
                  "help": {"text": text, "markdown": f"**{rule}**: {text}"},
                  "defaultConfiguration": {"level": "error" if breaking else "note"},
                  "properties": {"breaking": breaking, "tags": ["contracts", "compatibility"]}}
                 for rule, (breaking, text) in rules.items()]
    results = []
    for r in report.interfaces:
        level = {"error": "error", "major": "warning", "needless-major": "warning"}.get(r.verdict, "note")
        for c in r.changes or [None]:
            rule = c.rule if c is not None else "interface-added"
            breaking = c.breaking if c is not None else False
            result: dict[str, Any] = {
                "ruleId": rule, "ruleIndex": ids.index(rule),
                "level": level if breaking or r.verdict == "needless-major" else "note",
                "message": {"text": f"{r.headline()}: {c.detail if c is not None else ''}"},
                "properties": {"consumers": r.consumers, "mustMove": r.must_move},
            }
            if r.file:
                result["locations"] = [{"physicalLocation": physical_location(r.file, r.line),
                                        "logicalLocations": [{"name": f"{r.context}/{r.interface}",
                                                              "kind": "interface"}]}]
            results.append(result)
    return log("ode diff", described, results, version=tool_version, information_uri="docs/contracts.md",
               automation_id=f"ode-diff/{report.since}/")
